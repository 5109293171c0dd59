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
    /// The run's config is not valid (the error names the field and what is allowed).
    #[error(transparent)]
    Config(#[from] ConfigError),
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
    /// The checkpoint to resume cannot be read as a tensor file.
    #[error("cannot resume: {0}")]
    Resume(crate::io::TensorFileError),
    /// A model or checkpoint file could not be written, or a checkpoint's weights read.
    #[error(transparent)]
    Weights(#[from] crate::model::ModelFileError),
}

impl From<TrainError> for String {
    fn from(e: TrainError) -> String {
        e.to_string()
    }
}

/// Why a preset name, an override or a run config is refused: the name, field or value at
/// fault and what is allowed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// No preset has this name, and it is not a follow-up model name.
    #[error("unknown preset '{name}': expected one of {}", super::config::PRESETS.join(", "))]
    UnknownPreset {
        /// The name given.
        name: String,
    },
    /// A follow-up model name whose numbers are out of range (the problem says which).
    #[error("preset '{name}': {problem}")]
    Preset {
        /// The name given.
        name: String,
        /// Which number, and what is allowed.
        problem: String,
    },
    /// An override without `=`.
    #[error("override '{given}' is not key=value (e.g. d_model=256)")]
    NotKeyValue {
        /// The override given.
        given: String,
    },
    /// An override of a field the config does not have.
    #[error("unknown config field '{key}': expected one of {}", known.join(", "))]
    UnknownField {
        /// The key given.
        key: String,
        /// Every field name.
        known: Vec<String>,
    },
    /// An override whose value does not fit its field's type.
    #[error("bad value in --set {key}={value}: {reason}")]
    BadValue {
        /// The field.
        key: String,
        /// The value given.
        value: String,
        /// The parser's complaint.
        reason: String,
    },
    /// `n_heads` does not divide into `d_model` (with `d_head` derived).
    #[error(
        "n_heads={n_heads} does not fit d_model={d_model}: d_head = d_model / n_heads would be 0; \
         use n_heads from 1 to {d_model} (ideally one that divides d_model), or set d_head explicitly"
    )]
    HeadsDontFit {
        /// The heads asked.
        n_heads: usize,
        /// The model width.
        d_model: usize,
    },
    /// The model's config is not valid.
    #[error(transparent)]
    Model(#[from] crate::model::ModelConfigError),
    /// A count beyond the limits, or training beyond the memory limit.
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),
    /// A run name unusable as a folder name.
    #[error(
        "run name '{}' is not allowed: use 1 to 100 letters, digits, '_', '-' or '.', not starting with '.' (it names the folder runs/NAME)",
        name.escape_debug()
    )]
    Name {
        /// The name given.
        name: String,
    },
    /// A field's value is out of its range (the problem names the field, its value and the range).
    #[error("{problem}")]
    Field {
        /// The field.
        field: &'static str,
        /// Its value and what is allowed.
        problem: String,
    },
}

impl From<ConfigError> for String {
    fn from(e: ConfigError) -> String {
        e.to_string()
    }
}
