//! Training: run configs and presets, the optimiser and schedules, the loss record, and the
//! training loop with checkpoints (and a clean stop on Ctrl-C).

pub mod config;
pub mod insert;
pub mod interrupt;
pub mod log;
pub mod optim;
pub mod trainer;

pub use config::{TaskConfig, TrainConfig};
pub use trainer::Trainer;
