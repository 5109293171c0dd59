//! Training: run configs and presets, the optimiser and schedules, the loss record, and the
//! training loop with checkpoints; its timing apart from the record.

pub mod config;
pub(crate) mod error;
pub mod insert;
pub mod log;
pub mod optim;
pub mod timing;
pub mod trainer;

pub use config::{TaskConfig, TrainConfig};
pub use error::{ConfigError, TrainError};
pub use trainer::Trainer;
