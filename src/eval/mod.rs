//! Evaluation: predictions (greedy and teacher-forced), accuracy over random, exhaustive,
//! class-stratified and curated question sets, nines, and the hardest questions.

pub mod accuracy;
pub mod one_layer;
pub mod predict;
pub mod stats;

pub use accuracy::{evaluate, EvalOptions, EvalReport};
