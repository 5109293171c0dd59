//! The run folder: the one place that names every file a run keeps, and where each lives.
//!
//! ```text
//! runs/NAME/
//!   model.safetensors       the trained model (train)
//!   checkpoint.safetensors  weights, AdamW state and the record in progress (train)
//!   training.json           config and loss records (train)
//!   timing.json             wall-clock time and speed of training (train)
//!   eval.json               accuracy, nines, classes (eval)
//!   eval.partial.json       an interrupted evaluation's progress (eval)
//!   analysis.json           the algorithm found (analyze)
//!   report.html, figures/   the report (report)
//! ```

use std::path::{Path, PathBuf};

/// File names inside a run folder.
pub mod files {
    /// The trained model.
    pub const MODEL: &str = "model.safetensors";
    /// Weights, optimiser state and the loss sums of the record in progress at the last checkpoint.
    pub const CHECKPOINT: &str = "checkpoint.safetensors";
    /// Loss curves and the run's config.
    pub const TRAINING: &str = "training.json";
    /// Wall-clock figures of training (kept apart so training.json is byte-reproducible).
    pub const TIMING: &str = "timing.json";
    /// The evaluation (`arithlens eval`).
    pub const EVAL: &str = "eval.json";
    /// An interrupted evaluation's progress.
    pub const EVAL_PARTIAL: &str = "eval.partial.json";
    /// The analysis (`arithlens analyze`).
    pub const ANALYSIS: &str = "analysis.json";
    /// The page.
    pub const REPORT: &str = "report.html";
    /// Folder of the standalone figures.
    pub const FIGURES: &str = "figures";
}

/// A run folder's paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFolder {
    dir: PathBuf,
}

impl RunFolder {
    /// The run folder at `dir` (which need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> RunFolder {
        RunFolder { dir: dir.into() }
    }

    /// The folder itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `dir/NAME` for one of [`files`].
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The trained model.
    pub fn model(&self) -> PathBuf {
        self.file(files::MODEL)
    }

    /// The last checkpoint.
    pub fn checkpoint(&self) -> PathBuf {
        self.file(files::CHECKPOINT)
    }

    /// training.json.
    pub fn training(&self) -> PathBuf {
        self.file(files::TRAINING)
    }

    /// timing.json.
    pub fn timing(&self) -> PathBuf {
        self.file(files::TIMING)
    }

    /// eval.json.
    pub fn eval(&self) -> PathBuf {
        self.file(files::EVAL)
    }

    /// eval.partial.json.
    pub fn eval_partial(&self) -> PathBuf {
        self.file(files::EVAL_PARTIAL)
    }

    /// analysis.json.
    pub fn analysis(&self) -> PathBuf {
        self.file(files::ANALYSIS)
    }

    /// report.html.
    pub fn report(&self) -> PathBuf {
        self.file(files::REPORT)
    }

    /// The figures folder.
    pub fn figures(&self) -> PathBuf {
        self.file(files::FIGURES)
    }
}
