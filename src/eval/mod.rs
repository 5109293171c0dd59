//! Evaluation: predictions (greedy and teacher-forced), accuracy over random, exhaustive,
//! class-stratified and curated question sets, nines, the hardest questions, and the families
//! the wrong answers fall into.

pub mod accuracy;
pub mod failure_families;
pub mod one_layer;
pub mod predict;
pub(crate) mod rule_tree;
pub mod stats;

pub use accuracy::{evaluate, EvalError, EvalOptions, EvalReport};
