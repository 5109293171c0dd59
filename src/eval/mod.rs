//! Evaluation: predictions (greedy and teacher-forced), accuracy over random, exhaustive and
//! class-stratified question sets, and the hardest questions.

pub mod predict;
