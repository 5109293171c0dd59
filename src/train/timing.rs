//! timing.json: how long a run has trained and how fast, kept apart from training.json so that
//! training.json (like the model and the checkpoint) is the same byte for byte for the same seed
//! and thread count, whether the run was stopped and resumed or not; wall-clock figures never are.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file's name inside a run folder.
pub const FILE: &str = crate::run_folder::files::TIMING;

/// Seconds of training at one logged step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimePoint {
    /// Steps done.
    pub step: u64,
    /// Seconds of training so far (every session of the run together).
    pub elapsed_s: f64,
}

/// timing.json.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Steps done when the file was written.
    pub step: u64,
    /// Seconds of training so far, every session of the run together.
    pub elapsed_s: f64,
    /// Training steps per second in the latest session.
    pub steps_per_s: f64,
    /// Threads of the latest session.
    pub threads: usize,
    /// The seconds at each record of training.json.
    pub records: Vec<TimePoint>,
}

/// The timing figures that training.json held before they moved here.
#[derive(Deserialize)]
struct Legacy {
    records: Vec<LegacyRecord>,
    steps_per_s: f64,
    threads: usize,
}

#[derive(Deserialize)]
struct LegacyRecord {
    step: u64,
    elapsed_s: f64,
}

impl Timing {
    /// The timing of the run in `dir`: timing.json, or for a run trained before it existed, the
    /// figures its training.json held; `None` when neither has them.
    pub fn load(dir: &Path) -> Option<Timing> {
        if let Some(t) = std::fs::read(dir.join(FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            return Some(t);
        }
        let bytes = std::fs::read(dir.join(crate::run_folder::files::TRAINING)).ok()?;
        let old: Legacy = serde_json::from_slice(&bytes).ok()?;
        let records: Vec<TimePoint> = old.records.into_iter().map(|r| TimePoint { step: r.step, elapsed_s: r.elapsed_s }).collect();
        let last = records.last()?;
        Some(Timing { step: last.step, elapsed_s: last.elapsed_s, steps_per_s: old.steps_per_s, threads: old.threads, records })
    }

    /// The seconds of training at `step` (a checkpoint being resumed): exact when the file was
    /// written at that step, else scaled from the file's figure (a kill between the checkpoint
    /// and this file's write).
    pub fn elapsed_at(&self, step: u64) -> f64 {
        if self.step == step || self.step == 0 {
            return self.elapsed_s;
        }
        self.elapsed_s * step as f64 / self.step as f64
    }

    /// Writes the file into `dir` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), crate::io::IoError> {
        let path = dir.join(FILE);
        crate::io::atomic::write_json(&path, self).map_err(|source| crate::io::IoError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folder_from_before_timing_json_keeps_its_figures() {
        let dir = std::env::temp_dir().join(format!("arithlens-timing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = r#"{"config": {}, "answer_names": [], "steps_per_s": 12.5, "threads": 2,
                      "records": [{"step": 50, "elapsed_s": 4.0}, {"step": 100, "elapsed_s": 8.0}]}"#;
        std::fs::write(dir.join("training.json"), old).unwrap();
        let t = Timing::load(&dir).unwrap();
        assert_eq!((t.step, t.elapsed_s, t.steps_per_s, t.threads, t.records.len()), (100, 8.0, 12.5, 2, 2));
        assert_eq!(t.elapsed_at(50), 4.0);
        let new = Timing { step: 7, elapsed_s: 1.5, steps_per_s: 3.0, threads: 1, records: vec![] };
        new.save(&dir).unwrap();
        assert_eq!(Timing::load(&dir), Some(new), "timing.json comes first");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(Timing::load(&dir), None);
    }
}
