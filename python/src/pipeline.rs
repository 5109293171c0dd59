//! Training, the whole pipeline and the report, as `arithlens.train`, `arithlens.run` and
//! `arithlens.report` do them: the same steps, checks and files as the command line's `train`,
//! `run` and `report` (src/bin/arithlens/cli.rs), which the library's coming `pipeline` module
//! will hold once for both.

use crate::errors::{Failure, Kind, Result};
use crate::progress::{self, Progress};
use arithlens::run_folder::{files, RunFolder};
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};
use pyo3::prelude::*;
use std::path::{Path, PathBuf};

/// What to train: a preset with `key=value` overrides, into `out` (default runs/NAME).
fn config(preset: &str, overrides: &[String]) -> Result<TrainConfig> {
    TrainConfig::preset(preset).map_err(Failure::value)?.with_overrides(overrides).map_err(Failure::value)
}

fn run_dir(cfg: &TrainConfig, out: Option<PathBuf>) -> PathBuf {
    out.unwrap_or_else(|| arithlens::train::trainer::default_run_dir(cfg))
}

/// Removes the temporary files killed processes left in `dirs`.
fn remove_leftovers(dirs: &[PathBuf]) {
    for d in dirs {
        arithlens::io::atomic::remove_stale_temporaries(d);
    }
}

/// Trains per `cfg` into `dir` (as `arithlens train`): refuses to replace a model, checkpoint
/// or training.json unless `force`; `resume` continues the checkpoint.
fn train_into(cfg: TrainConfig, dir: &Path, resume: bool, force: bool, p: &Progress) -> Result<()> {
    arithlens::io::outputs::check_dir(dir, "the run folder (out)").map_err(Failure::value)?;
    let mut t = if resume {
        Trainer::resume(dir, Some(cfg))?
    } else {
        let held = [files::MODEL, files::CHECKPOINT, files::TRAINING].into_iter().find(|f| dir.join(f).exists());
        if let (Some(f), false) = (held, force) {
            return Err(Failure::new(
                Kind::Os,
                format!(
                    "{} already exists: pass force=True to train a new model in its place (the old model stays until the new one is complete), \
                     resume=True to continue its checkpoint, or out= for another folder",
                    dir.join(f).display()
                ),
            ));
        }
        Trainer::new(cfg)?
    };
    if t.step_count() >= t.cfg.steps && dir.join(files::MODEL).exists() {
        return Ok(());
    }
    t.stop_when(p.stop_flag());
    Ok(t.train(dir, &mut |t| {
        let loss = t.last_loss().map_or("-".to_string(), |l| format!("{l:.3e}"));
        p.report_info("train", t.step_count(), t.cfg.steps, &format!("loss {loss}"));
    })?)
}

/// `arithlens.train`: trains and returns the run folder.
#[pyfunction]
#[pyo3(signature = (preset, overrides, out=None, resume=false, force=false, threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    preset: &str,
    overrides: Vec<String>,
    out: Option<PathBuf>,
    resume: bool,
    force: bool,
    threads: Option<usize>,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<PathBuf> {
    let cfg = config(preset, &overrides)?;
    let dir = run_dir(&cfg, out);
    remove_leftovers(std::slice::from_ref(&dir));
    progress::run(py, threads, progress, |p: &Progress| train_into(cfg, &dir, resume, force, p))?;
    Ok(dir)
}

/// Refuses evaluation counts that could not be held in memory (as `arithlens eval` does).
pub fn check_eval(opts: &arithlens::eval::EvalOptions) -> Result<()> {
    use arithlens::limits::{MAX_HELD_QUESTIONS, MAX_TOP};
    if opts.per_class > MAX_HELD_QUESTIONS {
        return Err(Failure::value(format!(
            "per_class {} is too many: at most {MAX_HELD_QUESTIONS} (all are held in memory)",
            opts.per_class
        )));
    }
    if opts.top_k > MAX_TOP {
        return Err(Failure::value(format!("top_k {} is too many: at most {MAX_TOP}", opts.top_k)));
    }
    Ok(())
}

/// A run folder's training.json, if it has one.
pub fn training_log(dir: &Path) -> Result<Option<arithlens::train::log::TrainingLog>> {
    let path = RunFolder::new(dir).training();
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| Failure::value(format!("{}: {e}", path.display())))?)),
        Err(_) => Ok(None),
    }
}

/// The analysis with its progress reported (and stopped on request at a progress report).
pub fn analyze(
    model: &TaskModel,
    log: Option<&arithlens::train::log::TrainingLog>,
    opts: &arithlens::analysis::AnalyzeOptions,
    p: &Progress,
) -> arithlens::analysis::Analysis {
    arithlens::analysis::analyze_with_progress(model, log, opts, &mut |s| {
        p.report_or_unwind(&format!("analyze {}", s.stage.name()), s.done as u64, s.total as u64)
    })
}

/// Whether the derived file `name` in `dir` is current for the model hashing to `sha` with
/// `options` (as `arithlens run` decides).
fn is_current<T: arithlens::provenance::Derived>(dir: &Path, name: &str, sha: &str, options: &serde_json::Value) -> bool {
    arithlens::provenance::read_current::<T>(&dir.join(name), sha, Some(options)).is_ok()
}

/// The stages of `arithlens run` after training: evaluate, analyze (each unless current), report.
fn derive(dir: &Path, cfg: &TrainConfig, p: &Progress) -> Result<PathBuf> {
    let run = RunFolder::new(dir);
    let sha = arithlens::provenance::sha256_file(&run.model())?;
    let model = TaskModel::load(dir)?;
    let eval = arithlens::eval::EvalOptions {
        exhaustive: cfg.task.n_digits <= arithlens::eval::accuracy::EXHAUSTIVE_MAX_DIGITS,
        progress_file: Some(run.eval_partial()),
        stop: Some(p.stop_flag()),
        ..Default::default()
    };
    if !is_current::<arithlens::eval::EvalReport>(dir, files::EVAL, &sha, &eval.provenance_options()) {
        arithlens::io::outputs::check_file(&run.eval(), "the evaluation's output")?;
        let report = arithlens::eval::evaluate(&model, &eval, &mut |stage, done, total| p.report(stage, done, total))?;
        arithlens::io::atomic::write_json(&run.eval(), &report)
            .map_err(|e| Failure::new(Kind::Os, format!("cannot write eval.json: {e}")))?;
    }
    let opts = arithlens::analysis::AnalyzeOptions::default();
    let analyze_options = serde_json::to_value(&opts).map_err(|e| Failure::new(Kind::Other, e.to_string()))?;
    if !is_current::<arithlens::analysis::Analysis>(dir, files::ANALYSIS, &sha, &analyze_options) {
        arithlens::io::outputs::check_file(&run.analysis(), "the analysis's output")?;
        let result = analyze(&model, training_log(dir)?.as_ref(), &opts, p);
        arithlens::io::atomic::write_json(&run.analysis(), &result)
            .map_err(|e| Failure::new(Kind::Os, format!("writing {}: {e}", run.analysis().display())))?;
    }
    p.report("report", 0, 1);
    Ok(arithlens::report::write_report(dir)?)
}

/// `arithlens.run`: trains (unless already trained), evaluates, analyses and writes the report;
/// returns the run folder.
#[pyfunction]
#[pyo3(signature = (preset, overrides, out=None, resume=false, force=false, threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn run(
    py: Python<'_>,
    preset: &str,
    overrides: Vec<String>,
    out: Option<PathBuf>,
    resume: bool,
    force: bool,
    threads: Option<usize>,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<PathBuf> {
    let cfg = config(preset, &overrides)?;
    let dir = run_dir(&cfg, out);
    remove_leftovers(&[dir.clone(), RunFolder::new(&dir).figures()]);
    progress::run(py, threads, progress, |p: &Progress| {
        arithlens::io::outputs::check_dir(&dir, "the run folder (out)").map_err(Failure::value)?;
        let model = dir.join(files::MODEL);
        if !model.exists() || force || resume {
            // An interrupted run (a checkpoint but no model) continues where it stopped.
            let resume = resume || (!force && !model.exists() && dir.join(files::CHECKPOINT).exists());
            train_into(cfg.clone(), &dir, resume, force, p)?;
        }
        derive(&dir, &cfg, p)
    })?;
    Ok(dir)
}

/// `arithlens.report`: writes RUN_DIR/report.html and its figures; returns the page's path.
#[pyfunction]
pub fn report(py: Python<'_>, run_dir: PathBuf) -> PyResult<PathBuf> {
    remove_leftovers(&[run_dir.clone(), RunFolder::new(&run_dir).figures()]);
    progress::run(py, None, None, |_: &Progress| {
        if run_dir.is_dir() {
            let run = RunFolder::new(&run_dir);
            arithlens::io::outputs::check_file(&run.report(), "the report")?;
            arithlens::io::outputs::check_dir(&run.figures(), "the report's figures folder")?;
        } else if !run_dir.exists() {
            return Err(Failure::new(
                Kind::NotFound,
                format!("no run folder at {}: give a folder written by arithlens.train or arithlens.run", run_dir.display()),
            ));
        }
        Ok(arithlens::report::write_report(&run_dir)?)
    })
}
