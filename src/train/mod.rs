//! Training: the optimiser and schedules, and the training loop with checkpoints.

pub mod optim;
