//! The pipeline of a run folder, train -> evaluate -> analyze -> report, as the command line,
//! a Python notebook or a model zoo calls it: plain option structs in, typed results out, every
//! long step reporting [`Event`]s to the caller's callback and honouring the caller's [`Stop`].
//! Nothing here prints; the lines a user should read arrive as [`Event::Note`].
//!
//! Each command is one call ([`train`], [`evaluate`], [`analyze`], [`report`]); `run` is [`run`],
//! or [`Run`] stage by stage (a caller that shows each stage's result as it comes, or schedules
//! stages of many runs). A run recomputes a derived file only when it is missing, unusable, or
//! belongs to another model or other options (its provenance says which).

use crate::analysis::{Analysis, AnalyzeOptions};
use crate::eval::{EvalError, EvalOptions, EvalReport};
use crate::io::schema::ReadError;
use crate::io::IoError;
use crate::limits::{LimitError, OptionError};
use crate::model::file::LoadOptions;
use crate::progress::{Event, Stop, Stopped};
use crate::provenance::Stale;
use crate::report::ReportError;
use crate::run_folder::{RunFolder, Training};
use crate::task_model::{ModelError, TaskModel};
use crate::train::{ConfigError, TrainConfig, TrainError, Trainer};
use std::path::{Path, PathBuf};

/// Why a pipeline step failed: the path or value at fault and what would be right. Each
/// variant keeps its layer's message, so `to_string()` is what the command line prints after
/// "error: ".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The step stopped because its [`Stop`] was set; the message says what was kept and how to
    /// continue (the same call continues).
    #[error(transparent)]
    Stopped(#[from] Stopped),
    /// A file or folder could not be read, written or used as an output.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A size or count beyond what arithlens accepts.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The preset or an override is not valid (the error names it and what is allowed).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An option's value is out of its range (the error names the flag and what is allowed).
    #[error(transparent)]
    Options(#[from] OptionError),
    /// A run's training.json, eval.json or analysis.json cannot be read, does not parse or is of
    /// another schema version.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Training failed (the error names the step, file or value).
    #[error(transparent)]
    Train(TrainError),
    /// Evaluation failed (the error names the option or file).
    #[error(transparent)]
    Eval(EvalError),
    /// The report could not be written (the error names the folder).
    #[error(transparent)]
    Report(ReportError),
    /// `--circuit-class` names no class of the model (the error lists its classes).
    #[error("--circuit-class {class} {problem}")]
    CircuitClass {
        /// The class as given.
        class: String,
        /// What is wrong with it and which classes the model has.
        problem: String,
    },
}

impl From<TrainError> for Error {
    fn from(e: TrainError) -> Error {
        match e {
            TrainError::Stopped(s) => Error::Stopped(s),
            TrainError::Io(e) => Error::Io(e),
            TrainError::Log(e) => Error::Read(e),
            TrainError::Config(e) => Error::Config(e),
            other => Error::Train(other),
        }
    }
}

impl From<ReportError> for Error {
    fn from(e: ReportError) -> Error {
        match e {
            ReportError::Model(e) => Error::Model(e),
            ReportError::Io(e) => Error::Io(e),
            other => Error::Report(other),
        }
    }
}

impl From<EvalError> for Error {
    fn from(e: EvalError) -> Error {
        match e {
            EvalError::Stopped(s) => Error::Stopped(s),
            EvalError::Io(e) => Error::Io(e),
            other => Error::Eval(other),
        }
    }
}

/// What `train` and `run` train, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Preset name (`paper1`, `tiny`, a follow-up name such as `add_d6_l2_h3_t15K_s372001`, ...).
    pub preset: String,
    /// Config overrides, `key=value` each (`d_model=256`, `optim.eps=1e-6`).
    pub overrides: Vec<String>,
    /// Training steps (shorthand for the override `steps=N`).
    pub steps: Option<u64>,
    /// Seed of weights and data (shorthand for the override `seed=N`).
    pub seed: Option<u64>,
    /// Run folder (default `runs/NAME`, NAME the config's run name).
    pub out: Option<PathBuf>,
    /// Continue the run in the folder from its last checkpoint.
    pub resume: bool,
    /// Train a new model even where the folder holds one (or a checkpoint or training.json).
    pub force: bool,
}

impl TrainOptions {
    /// Options that train `preset` into its default folder.
    pub fn new(preset: &str) -> TrainOptions {
        TrainOptions { preset: preset.into(), overrides: Vec::new(), steps: None, seed: None, out: None, resume: false, force: false }
    }

    /// The run's config: preset plus overrides.
    pub fn config(&self) -> Result<TrainConfig, Error> {
        let mut o = self.overrides.clone();
        o.extend(self.steps.map(|s| format!("steps={s}")));
        o.extend(self.seed.map(|s| format!("seed={s}")));
        Ok(TrainConfig::preset(&self.preset)?.with_overrides(&o)?)
    }

    /// The run folder of `cfg`: `out`, else `runs/NAME`.
    pub fn dir(&self, cfg: &TrainConfig) -> PathBuf {
        self.out.clone().unwrap_or_else(|| crate::train::trainer::default_run_dir(cfg))
    }
}

/// What [`train`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Trained {
    /// The run folder.
    pub dir: PathBuf,
    /// `None` when the folder already held the finished run (a `resume` with nothing left to
    /// train); else the last record's loss and this session's steps per second.
    pub session: Option<TrainSession>,
}

/// The end of a training session.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainSession {
    /// The loss of the last record, if any.
    pub final_loss: Option<f64>,
    /// Training steps per second in this session.
    pub steps_per_s: f64,
}

/// Trains per `opts` into its run folder (never over a model, checkpoint or training.json
/// without `force`); Ctrl-C-style stops save a checkpoint that `resume` continues.
pub fn train(opts: &TrainOptions, stop: &Stop, progress: &mut dyn FnMut(Event)) -> Result<Trained, Error> {
    let cfg = opts.config()?;
    let dir = opts.dir(&cfg);
    crate::io::outputs::check_dir(&dir, "the run folder (--out)")?;
    let run = RunFolder::new(&dir);
    let mut t = if opts.resume {
        Trainer::resume(&dir, Some(cfg.clone()))?
    } else {
        run.refuse_to_replace(opts.force)?;
        let t = Trainer::new(cfg.clone())?;
        if let Some(ins) = &cfg.insert {
            progress(Event::Note(format!("initialised from {}", ins.from.display())));
        }
        t
    };
    if t.step_count() >= t.cfg.steps && run.model().exists() {
        let note = format!("{} is already trained ({} of {} steps); nothing to resume", dir.display(), t.step_count(), t.cfg.steps);
        progress(Event::Note(note));
        return Ok(Trained { dir, session: None });
    }
    progress(Event::Note(training_line(&t.cfg, &dir)));
    t.train(&dir, stop, progress)?;
    Ok(Trained { dir, session: Some(TrainSession { final_loss: t.last_loss(), steps_per_s: t.steps_per_s() }) })
}

/// "training NAME (N parameters, ...) into DIR".
fn training_line(c: &TrainConfig, dir: &Path) -> String {
    format!(
        "training {} ({} parameters, {} layer(s), {} heads, d_model {}) for {} steps of {} {}-digit questions into {}",
        c.name,
        c.model.n_params(),
        c.model.n_layers,
        c.model.n_heads,
        c.model.d_model,
        c.steps,
        c.batch_size,
        c.task.n_digits,
        dir.display()
    )
}

/// Loads a model file or run folder per `load`, with a warning note when it holds non-finite
/// weights (loaded only with `load.allow_non_finite`).
pub fn load_model(path: &Path, load: LoadOptions, progress: &mut dyn FnMut(Event)) -> Result<TaskModel, Error> {
    let model = TaskModel::load_with(path, load)?;
    let bad = crate::model::file::non_finite(&model.params);
    if !bad.is_empty() {
        let list: Vec<String> = bad.iter().map(|(name, n)| format!("{name} ({n})")).collect();
        let warning = format!("warning: {} holds NaN or infinite weights in {}; its answers mean nothing", path.display(), list.join(", "));
        progress(Event::Note(warning));
    }
    Ok(model)
}

/// Evaluates the model at `model` (a model file, or a run folder: then eval.json is written
/// there, and the progress of the random set is kept in eval.partial.json so that a stopped
/// or killed evaluation continues where it was).
pub fn evaluate(
    model: &Path,
    opts: &EvalOptions,
    load: LoadOptions,
    stop: &Stop,
    progress: &mut dyn FnMut(Event),
) -> Result<EvalReport, Error> {
    check_eval_options(opts)?;
    let run = model.is_dir().then(|| RunFolder::new(model));
    if let Some(run) = &run {
        crate::io::outputs::check_file(&run.eval(), "the evaluation's output")?;
    }
    let m = load_model(model, load, progress)?;
    let mut opts = opts.clone();
    opts.progress_file = run.as_ref().map(RunFolder::eval_partial);
    let resumed = crate::eval::accuracy::resumed_questions(&m, &opts);
    if resumed > 0 {
        let note = format!("continuing an interrupted evaluation: {resumed} random questions already done (eval.partial.json)");
        progress(Event::Note(note));
    }
    let report = crate::eval::evaluate(&m, &opts, stop, progress)?;
    if let Some(run) = &run {
        run.save(&report)?;
    }
    Ok(report)
}

/// Refuses evaluation counts that could not be held in memory, before the model is loaded.
pub fn check_eval_options(opts: &EvalOptions) -> Result<(), Error> {
    use crate::limits::{MAX_HELD_QUESTIONS, MAX_TOP};
    if opts.per_class > MAX_HELD_QUESTIONS {
        let problem = format!("is too many: at most {MAX_HELD_QUESTIONS} (all are held in memory; default 10000)");
        return Err(OptionError { flag: "--per-class", value: opts.per_class, problem }.into());
    }
    if opts.top_k > MAX_TOP {
        return Err(OptionError { flag: "--top", value: opts.top_k, problem: format!("is too many: at most {MAX_TOP}") }.into());
    }
    Ok(())
}

/// What [`analyze`] found and where it wrote it.
#[derive(Clone, Debug)]
pub struct Analyzed {
    /// The analysis (as written to `path`).
    pub analysis: Analysis,
    /// analysis.json.
    pub path: PathBuf,
    /// Seconds from the start of the analysis to the file written.
    pub seconds: f64,
}

/// Analyses the model at `path` (a run folder, whose training.json adds the training
/// dynamics, or a model file) and writes analysis.json beside it.
pub fn analyze(
    path: &Path,
    opts: &AnalyzeOptions,
    load: LoadOptions,
    stop: &Stop,
    progress: &mut dyn FnMut(Event),
) -> Result<Analyzed, Error> {
    opts.validate()?;
    let folder = RunFolder::of_model_path(path);
    let out = folder.analysis();
    crate::io::outputs::check_file(&out, "the analysis's output")?;
    let model = load_model(path, load, progress)?;
    if let Err(problem) = opts.circuit_class_for(&model) {
        return Err(Error::CircuitClass { class: opts.circuit_class.clone().unwrap_or_default(), problem });
    }
    let log = if path.is_dir() { folder.load_if_present::<crate::train::log::TrainingLog>()? } else { None };
    let t0 = std::time::Instant::now();
    let analysis = crate::analysis::analyze_with_progress(&model, log.as_ref(), opts, stop, progress)?;
    folder.save(&analysis)?;
    Ok(Analyzed { analysis, path: out, seconds: t0.elapsed().as_secs_f64() })
}

/// Writes `dir`/report.html and its figures from what the run folder holds (the model loaded
/// per `load`); returns the page's path.
pub fn report(dir: &Path, load: LoadOptions, progress: &mut dyn FnMut(Event)) -> Result<PathBuf, Error> {
    let run = RunFolder::new(dir);
    if load.allow_non_finite && crate::task_model::model_path(dir).exists() {
        load_model(dir, load, progress)?; // for its warning
    }
    if dir.is_dir() {
        crate::io::outputs::check_file(&run.report(), "the report")?;
        crate::io::outputs::check_dir(&run.figures(), "the report's figures folder")?;
    }
    Ok(crate::report::write_report_with(dir, load)?)
}

/// Stages of [`run`], in order.
pub const STAGES: usize = 4;

/// "[k/4] what".
fn stage_note(k: usize, what: &str) -> Event {
    Event::Note(format!("[{k}/{STAGES}] {what}"))
}

/// The main job, `arithlens run`, stage by stage: [`Run::train`] (skipped when the folder holds
/// a finished model, resumed from a lone checkpoint), [`Run::evaluate`] and [`Run::analyze`]
/// (each skipped when its file is current), [`Run::report`]. Each stage announces itself as
/// "[k/4] ..." in an [`Event::Note`].
#[derive(Clone, Debug)]
pub struct Run {
    opts: TrainOptions,
    cfg: TrainConfig,
    folder: RunFolder,
    model_sha256: Option<String>,
}

impl Run {
    /// The run `opts` selects, with its folder checked (created if missing) before any work.
    pub fn new(opts: &TrainOptions) -> Result<Run, Error> {
        let cfg = opts.config()?;
        let dir = opts.dir(&cfg);
        crate::io::outputs::check_dir(&dir, "the run folder (--out)")?;
        Ok(Run { opts: opts.clone(), cfg, folder: RunFolder::new(dir), model_sha256: None })
    }

    /// The run's folder.
    pub fn folder(&self) -> &RunFolder {
        &self.folder
    }

    /// The run's config.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The evaluation a run does: [`EvalOptions::default`], and every question for n <= 3.
    pub fn eval_options(&self) -> EvalOptions {
        EvalOptions { exhaustive: self.cfg.task.n_digits <= crate::eval::accuracy::EXHAUSTIVE_MAX_DIGITS, ..EvalOptions::default() }
    }

    /// The analysis a run does: [`AnalyzeOptions::default`].
    pub fn analyze_options(&self) -> AnalyzeOptions {
        AnalyzeOptions::default()
    }

    /// Stage 1: trains unless the folder holds a finished model (or `force`/`resume` asks for
    /// training); an interrupted run (a checkpoint but no model) continues where it stopped.
    /// `None` when skipped.
    pub fn train(&mut self, stop: &Stop, progress: &mut dyn FnMut(Event)) -> Result<Option<Trained>, Error> {
        self.model_sha256 = None;
        let state = self.folder.training_state();
        if state == Training::Finished && !self.opts.force && !self.opts.resume {
            let note =
                format!("train: {} already holds a trained model; skipping training (--force retrains)", self.folder.dir().display());
            progress(stage_note(1, &note));
            return Ok(None);
        }
        let mut opts = TrainOptions { out: Some(self.folder.dir().to_path_buf()), ..self.opts.clone() };
        opts.resume |= !opts.force && state == Training::Interrupted;
        progress(stage_note(1, if opts.resume { "train (resuming from the last checkpoint)" } else { "train" }));
        train(&opts, stop, progress).map(Some)
    }

    /// The folder's model hash (computed once per trained model).
    fn sha(&mut self) -> Result<String, Error> {
        if self.model_sha256.is_none() {
            self.model_sha256 = Some(self.folder.model_sha256()?);
        }
        Ok(self.model_sha256.clone().unwrap_or_default())
    }

    /// Stage 2: evaluates (writing eval.json) unless eval.json is current; `None` when skipped.
    pub fn evaluate(&mut self, stop: &Stop, progress: &mut dyn FnMut(Event)) -> Result<Option<EvalReport>, Error> {
        let sha = self.sha()?;
        let opts = self.eval_options();
        let found = self.folder.current::<EvalReport>(&sha, &opts.provenance_options()).map(|_| ());
        if !self.needs_recompute(2, "evaluate", &self.folder.eval(), found, progress) {
            return Ok(None);
        }
        evaluate(self.folder.dir(), &opts, LoadOptions::default(), stop, progress).map(Some)
    }

    /// Stage 3: analyses (writing analysis.json) unless analysis.json is current; `None` when
    /// skipped.
    pub fn analyze(&mut self, stop: &Stop, progress: &mut dyn FnMut(Event)) -> Result<Option<Analyzed>, Error> {
        let sha = self.sha()?;
        let opts = self.analyze_options();
        let options = serde_json::to_value(&opts).expect("options serialise");
        let found = self.folder.current::<Analysis>(&sha, &options).map(|_| ());
        if !self.needs_recompute(3, "analyze", &self.folder.analysis(), found, progress) {
            return Ok(None);
        }
        analyze(self.folder.dir(), &opts, LoadOptions::default(), stop, progress).map(Some)
    }

    /// Stage 4: writes the report; returns its path.
    pub fn report(&mut self, progress: &mut dyn FnMut(Event)) -> Result<PathBuf, Error> {
        progress(stage_note(4, "report"));
        let path = crate::report::write_report(self.folder.dir())?;
        progress(Event::Note(format!("report: {}", path.display())));
        Ok(path)
    }

    /// Whether stage `k` must (re)compute the file at `path` given what reading it `found`;
    /// announces the stage as skipped when the file is current, or with the reason when it is
    /// not (a missing file needs none).
    fn needs_recompute(&self, k: usize, what: &str, path: &Path, found: Result<(), Stale>, progress: &mut dyn FnMut(Event)) -> bool {
        match found {
            Ok(()) => {
                progress(stage_note(k, &format!("{what}: {} is up to date; skipping", path.display())));
                false
            }
            Err(Stale::Missing) => {
                progress(stage_note(k, what));
                true
            }
            Err(why) => {
                progress(stage_note(k, &format!("{what}: {} {}; recomputing it", path.display(), why.reason())));
                true
            }
        }
    }
}

/// `arithlens run` in one call: every stage of [`Run`] in order; returns the report's path.
pub fn run(opts: &TrainOptions, stop: &Stop, progress: &mut dyn FnMut(Event)) -> Result<PathBuf, Error> {
    let mut run = Run::new(opts)?;
    run.train(stop, progress)?;
    run.evaluate(stop, progress)?;
    run.analyze(stop, progress)?;
    run.report(progress)
}
