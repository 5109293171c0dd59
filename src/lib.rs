//! arithlens: train small transformers on integer arithmetic on a CPU and explain, mechanistically,
//! the algorithm they learn (after Quirke & Barez, "Understanding Addition in Transformers").
//!
//! Layout, one concept per module:
//! - [`task`]: questions, tokens, labels, complexity classes and generators;
//! - [`model`]: config, weights, forward/backward pass and hooks (TransformerLens-compatible);
//! - [`train`]: run configs and presets, AdamW, the training loop and its record;
//! - [`eval`]: predictions and accuracy;
//! - [`analysis`]: interventions on the hooks and the analyses that find the algorithm;
//! - [`report`]: figures and the HTML report;
//! - [`pipeline`]: train -> evaluate -> analyze -> report of a run folder, as one call or stage
//!   by stage, with plain option structs (what the command line, Python and a model zoo call);
//! - [`progress`]: the one progress-event type every long operation reports, and the stop
//!   handle every long operation honours;
//! - [`task_model`]: a model file together with the task it answers;
//! - [`run_folder`]: the files of a run and where each lives;
//! - [`provenance`]: the model hash and options every derived file records;
//! - [`limits`]: the largest sizes and counts accepted, and the memory they would need;
//! - [`io`]: tensor files, atomic writes and output checks;
//! - [`zoo`]: many models from one manifest, run locally or on Slurm, gathered into one table.
//!
//! The public API is what the command line, the Python package (`python/`), a model zoo and the
//! integration tests call: [`pipeline`] (with [`progress`] and [`run_folder`]) for whole runs;
//! [`task_model::TaskModel`], [`model`]'s weights, hooks and forward pass, [`eval`] and
//! [`analysis::intervene`] for working with one model; the typed artifacts
//! ([`train::log::TrainingLog`], [`eval::EvalReport`], [`analysis::Analysis`], read and written
//! through [`io::schema::Versioned`]) and their parts; and one typed error per layer
//! ([`pipeline::Error`] gathers them). The rest is crate-private: the model's kernels and fast
//! paths, the task's building blocks (their types re-exported from [`task`]), and the report's
//! figures (the report is [`report::write_report`]).
//!
//! The command line (`src/bin/arithlens/`: flags, progress bars, Ctrl-C, `bench`) is a thin binary
//! over this library, which builds without it (`cargo build --lib --no-default-features`).

pub mod analysis;
pub mod eval;
pub mod io;
pub mod limits;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod provenance;
pub mod report;
pub mod run_folder;
pub mod task;
pub mod task_model;
pub mod train;
pub mod zoo;
