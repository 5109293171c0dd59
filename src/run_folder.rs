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

use crate::io::schema::{ReadError, Versioned};
use crate::io::IoError;
use crate::provenance::{Derived, Stale};
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

/// How far a run folder's training got: what `arithlens run` and the zoo decide training by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Training {
    /// Neither a model nor a checkpoint: training starts afresh.
    NotStarted,
    /// A checkpoint but no model: training was interrupted and resumes from the checkpoint.
    Interrupted,
    /// model.safetensors is there: training finished.
    Finished,
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

    /// The folder a model path's derived files go to: the path itself when it is a folder, else
    /// the model file's folder.
    pub fn of_model_path(path: &Path) -> RunFolder {
        if path.is_dir() {
            RunFolder::new(path)
        } else {
            RunFolder::new(path.parent().unwrap_or(Path::new("")))
        }
    }

    /// Refuses (unless `force`) a fresh run in a folder holding a model, checkpoint or
    /// training.json, whoever put them there: a model may have taken hours to train.
    pub fn refuse_to_replace(&self, force: bool) -> Result<(), IoError> {
        let held = [files::MODEL, files::CHECKPOINT, files::TRAINING].into_iter().map(|f| self.file(f)).find(|p| p.exists());
        match held {
            Some(path) if !force => Err(IoError::RunExists { path }),
            _ => Ok(()),
        }
    }

    /// Removes the temporary files that killed processes left in the folder and its figures
    /// folder (see [`crate::io::atomic::remove_stale_temporaries`]); returns their paths.
    pub fn remove_leftovers(&self) -> Vec<PathBuf> {
        let dir = if self.dir.as_os_str().is_empty() { PathBuf::from(".") } else { self.dir.clone() };
        let mut removed = crate::io::atomic::remove_stale_temporaries(&dir);
        removed.extend(crate::io::atomic::remove_stale_temporaries(&self.figures()));
        removed
    }

    /// How far the folder's training got (from which files exist).
    pub fn training_state(&self) -> Training {
        if self.model().exists() {
            Training::Finished
        } else if self.checkpoint().exists() {
            Training::Interrupted
        } else {
            Training::NotStarted
        }
    }

    /// The hex SHA-256 of the folder's model file: the provenance its derived files must record.
    pub fn model_sha256(&self) -> Result<String, crate::io::IoError> {
        crate::provenance::sha256_file(&self.model())
    }

    /// The folder's artifact `T` (eval.json, analysis.json: [`Versioned::FILE`]), if it belongs
    /// to the model hashing to `model_sha256` and was made with `options` (what the artifact's
    /// provenance records: `EvalOptions::provenance_options`, the `AnalyzeOptions` as JSON);
    /// else why not.
    pub fn current<T: Derived>(&self, model_sha256: &str, options: &serde_json::Value) -> Result<T, Stale> {
        crate::provenance::read_current(&self.file(T::FILE), model_sha256, Some(options))
    }

    /// Whether report.html was made from the model hashing to `model_sha256` showing the files
    /// `expected` names with their options (the provenance `arithlens report` records in its
    /// `<meta name="arithlens-provenance">` entry); else why not.
    pub fn current_report(&self, model_sha256: &str, expected: &serde_json::Value) -> Result<(), Stale> {
        let html = match std::fs::read_to_string(self.report()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Stale::Missing),
            Err(e) => return Err(Stale::Unusable(format!("cannot read it: {e}"))),
            Ok(h) => h,
        };
        let found = meta_provenance(&html).ok_or_else(|| Stale::Unusable("no arithlens-provenance entry".into()))?;
        match crate::provenance::mismatch(Some(&found), model_sha256, Some(expected)) {
            Some(why) => Err(Stale::Foreign(why)),
            None => Ok(()),
        }
    }

    /// Writes the artifact `T` (training.json, eval.json, analysis.json) at its place
    /// ([`Versioned::FILE`]), atomically.
    pub fn save<T: Versioned>(&self, artifact: &T) -> Result<(), IoError> {
        artifact.save(&self.file(T::FILE))
    }

    /// The artifact `T` (e.g. training.json), or `None` when the folder has none; an error naming
    /// the file when it is there but cannot be read, does not parse, or is of another schema
    /// version.
    pub fn load_if_present<T: Versioned>(&self) -> Result<Option<T>, ReadError> {
        let path = self.file(T::FILE);
        if !path.exists() {
            return Ok(None);
        }
        T::load(&path).map(Some)
    }
}

/// The provenance in a page's `<meta name="arithlens-provenance" content="...">`.
fn meta_provenance(html: &str) -> Option<crate::provenance::Provenance> {
    let key = "<meta name=\"arithlens-provenance\" content=\"";
    let start = html.find(key)? + key.len();
    let end = start + html[start..].find('"')?;
    let text =
        html[start..end].replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&#39;", "'").replace("&amp;", "&");
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_state_and_report_freshness_come_from_the_folder() {
        let dir = std::env::temp_dir().join(format!("arithlens-runfolder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunFolder::new(&dir);
        assert_eq!(run.training_state(), Training::NotStarted);
        std::fs::write(run.checkpoint(), b"x").unwrap();
        assert_eq!(run.training_state(), Training::Interrupted);
        std::fs::write(run.model(), b"x").unwrap();
        assert_eq!(run.training_state(), Training::Finished);
        let opts = serde_json::json!({"eval.json": {"questions": 5}});
        assert!(matches!(run.current_report("ab", &opts), Err(Stale::Missing)));
        std::fs::write(run.report(), "<html></html>").unwrap();
        assert!(matches!(run.current_report("ab", &opts), Err(Stale::Unusable(_))));
        let p = serde_json::to_string(&crate::provenance::Provenance::new("ab", &opts)).unwrap();
        let page = format!("<meta name=\"arithlens-provenance\" content=\"{}\">", crate::report::svg::escape_xml(&p));
        std::fs::write(run.report(), page).unwrap();
        assert!(run.current_report("ab", &opts).is_ok());
        assert!(matches!(run.current_report("cd", &opts), Err(Stale::Foreign(_))), "another model's page");
        assert!(matches!(run.current_report("ab", &serde_json::json!({})), Err(Stale::Foreign(_))), "other options");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
