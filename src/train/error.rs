//! Why training, or starting or resuming a run, failed: one variant per cause, each carrying
//! the step, path or value at fault; the messages are the ones the command line prints after
//! "error: ".

use crate::io::schema::ReadError;
use crate::io::IoError;
use crate::progress::Stopped;
use std::path::PathBuf;

/// Why a training run could not start, continue or finish.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Its [`crate::progress::Stop`] was set: the checkpoint of the last step is saved (the
    /// message says where, and how to continue).
    #[error(transparent)]
    Stopped(#[from] Stopped),
    /// The run's config is not valid (the message names the field and what is allowed).
    #[error("{0}")]
    Config(String),
    /// The loss of step `step` (from 1) was not finite; `kept` says what of the run is on disk
    /// (when the loop, not a single step, failed).
    #[error("the loss became {loss} at step {step} of {steps}{}", kept.as_ref().map_or(String::new(), |k| format!(": training stopped; {k}; try a lower lr")))]
    Diverged {
        /// The batch's loss.
        loss: f64,
        /// The step, numbered from 1.
        step: u64,
        /// The steps the run trains for.
        steps: u64,
        /// What of the run is kept on disk, in words.
        kept: Option<String>,
    },
    /// A step was given another number of questions than the run's batch size.
    #[error("a step takes batch_size = {expected} questions, not {given}")]
    BatchSize {
        /// The run's batch size.
        expected: usize,
        /// The questions given.
        given: usize,
    },
    /// A file of the run could not be written (or a model read to hash it).
    #[error(transparent)]
    Io(#[from] IoError),
    /// The run's training.json cannot be read, does not parse or is of another schema version.
    #[error(transparent)]
    Log(#[from] ReadError),
    /// The checkpoint at `path` cannot be resumed (the problem says what it lacks or holds).
    #[error("{}: {problem}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// `--resume` was asked with a config that differs from the checkpoint's in more than steps.
    #[error("cannot resume {}: its config differs from the one requested (only steps may change)", dir.display())]
    ConfigChanged {
        /// The run folder.
        dir: PathBuf,
    },
    /// The model a run inserts cannot be used (missing, unreadable, or of another task).
    #[error("cannot insert {}: {problem}", from.display())]
    Insert {
        /// The model to insert (`insert.from`).
        from: PathBuf,
        /// Why it cannot be inserted.
        problem: String,
    },
    /// The inserted model does not fit inside the new one.
    #[error(transparent)]
    Incompatible(#[from] super::insert::InsertError),
    /// A model or checkpoint file could not be written or read as weights.
    #[error("{0}")]
    Weights(String),
}

impl From<TrainError> for String {
    fn from(e: TrainError) -> String {
        e.to_string()
    }
}
