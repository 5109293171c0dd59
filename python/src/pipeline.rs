//! `arithlens.train`, `arithlens.run` and `arithlens.report`: the library's pipeline
//! ([`arithlens::pipeline`], the same calls the command line makes), with the binding's progress
//! display and stop.

use crate::errors::{Failure, Result};
use crate::progress::{self, Progress};
use arithlens::model::file::LoadOptions;
use arithlens::pipeline::{self as lib, TrainOptions};
use arithlens::progress::{Event, Stop};
use arithlens::run_folder::RunFolder;
use pyo3::prelude::*;
use std::path::PathBuf;

/// What to train (a preset with `key=value` overrides) and where (`out`, default runs/NAME),
/// and the run folder that gives.
fn options(preset: &str, overrides: Vec<String>, out: Option<PathBuf>, resume: bool, force: bool) -> Result<(TrainOptions, PathBuf)> {
    let opts = TrainOptions { overrides, out, resume, force, ..TrainOptions::new(preset) };
    let dir = opts.dir(&opts.config()?);
    // Temporary files that killed processes left there go first.
    RunFolder::new(&dir).remove_leftovers();
    Ok((opts, dir))
}

/// A library pipeline call (`pipeline::train` or `pipeline::run`).
type Call = fn(&TrainOptions, &Stop, &mut dyn FnMut(Event)) -> std::result::Result<(), lib::Error>;

/// Runs `call` for the run folder of `preset` with `overrides` (see [`options`]) under the
/// binding's progress display and stop; returns the run folder.
fn drive(
    py: Python<'_>,
    call: Call,
    preset: &str,
    overrides: Vec<String>,
    (out, resume, force): (Option<PathBuf>, bool, bool),
    threads: Option<usize>,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<PathBuf> {
    let (opts, dir) = options(preset, overrides, out, resume, force)?;
    progress::run(py, threads, progress, |p: &Progress| Ok(call(&opts, p.stop(), &mut |e| p.event(e))?))?;
    Ok(dir)
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
    drive(py, |o, s, p| lib::train(o, s, p).map(drop), preset, overrides, (out, resume, force), threads, progress)
}

/// `arithlens.run`: trains (unless already trained), evaluates, analyses and writes the report,
/// each stage skipped when its output is current; returns the run folder.
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
    drive(py, |o, s, p| lib::run(o, s, p).map(drop), preset, overrides, (out, resume, force), threads, progress)
}

/// `arithlens.report`: writes RUN_DIR/report.html and its figures; returns the page's path.
#[pyfunction]
pub fn report(py: Python<'_>, run_dir: PathBuf) -> PyResult<PathBuf> {
    if !run_dir.exists() {
        let why = format!("no run folder at {}: give a folder written by arithlens.train or arithlens.run", run_dir.display());
        return Err(Failure::new(crate::errors::Kind::NotFound, why).into());
    }
    RunFolder::new(&run_dir).remove_leftovers();
    progress::run(py, None, None, |p: &Progress| Ok(lib::report(&run_dir, LoadOptions::default(), &mut |e| p.event(e))?))
}

/// A run folder's training.json, if it has one.
pub fn training_log(dir: &std::path::Path) -> Result<Option<arithlens::train::log::TrainingLog>> {
    Ok(RunFolder::new(dir).load_if_present()?)
}
