//! The model zoo: many models from one manifest (`zoo/*.toml`), each trained, evaluated, analysed
//! and reported by the arithlens binary's own stage commands, run on this machine or submitted to
//! Slurm, and gathered into one table beside the figures the papers report.
//!
//! - [`manifest`]: the TOML manifest and its resolution into models and configs;
//! - [`graph`]: the jobs (model, stage), their dependencies and command lines;
//! - [`fresh`]: whether a job's output is current (by provenance): the one freshness check;
//! - [`job`]: running one job with its log (both engines);
//! - [`local`], [`slurm`]: the engines; [`lock`]: one `zoo run` per root at a time;
//! - [`progress`]: the whole zoo's progress line;
//! - [`status`], [`table`]: what `zoo status` and `zoo table` print and write;
//! - [`estimate`]: what a zoo costs, from rates measured on this machine (`zoo estimate`).
//!
//! Every model's files live in `ROOT/NAME/` (a run folder, see [`crate::run_folder`]) with the
//! jobs' logs in `ROOT/NAME/logs/STAGE.log`; the engines keep their own state (and the lock) in
//! `ROOT/.zoo/`.

pub mod estimate;
pub mod fresh;
pub mod graph;
pub mod job;
pub mod local;
pub mod lock;
pub mod manifest;
pub mod progress;
pub mod slurm;
pub mod status;
pub mod table;

pub use graph::{Job, Stage};
pub use manifest::Zoo;
