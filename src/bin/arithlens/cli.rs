//! Command-line definitions and their dispatch (`arithlens train|ask|eval|bench|run`).

use arithlens::eval::predict;
use arithlens::model::file::LoadOptions;
use arithlens::run_folder::{files, RunFolder};
use arithlens::task_model::TaskModel;
use arithlens::train::trainer::default_run_dir;
use arithlens::train::{TrainConfig, Trainer};
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Train small transformers on integer arithmetic and explain the algorithm they learn.
#[derive(Parser, Debug)]
#[command(name = "arithlens", version, about)]
pub struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Load a model whose weights hold NaN or infinite values (refused otherwise), with a
    /// warning: for ask, eval, analyze, cache, report and bench --model.
    #[arg(long, global = true)]
    pub allow_non_finite: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model; writes DIR/model.safetensors, DIR/training.json and checkpoints (never over
    /// files already there without --force).
    Train(TrainArgs),
    /// Ask a model a question: its greedy answer, the true answer, and each digit's probability.
    Ask {
        /// Model file or run folder.
        model: PathBuf,
        /// The question, e.g. "12345+67890=" (a leading '-' is read as part of it, not as a flag).
        #[arg(allow_hyphen_values = true)]
        question: String,
    },
    /// Evaluate a model: accuracy and nines on random questions, per-class tables, the hardest
    /// questions; writes eval.json into a run folder.
    Eval(EvalArgs),
    /// Benchmark training and evaluation speed against the machine's matrix-product peak.
    Bench(crate::bench::BenchArgs),
    /// The main job: train (unless already trained), evaluate, analyze, and write report.html.
    Run(TrainArgs),
    /// Find the model's algorithm: ablations, attention, sub-task tags, symbolic check;
    /// writes RUN_DIR/analysis.json and prints a summary.
    Analyze {
        /// Run folder (holding model.safetensors and, optionally, training.json).
        run_dir: PathBuf,
        /// Analysis settings.
        #[command(flatten)]
        options: AnalyzeArgs,
    },
    /// Save the activations of questions under TransformerLens hook names (`run_with_cache`),
    /// plus the tokens, for work in Python: a safetensors file, or NumPy's .npz if `--out` ends
    /// in .npz.
    Cache {
        /// Model file or run folder.
        model: PathBuf,
        /// Questions, e.g. "44445+55555=".
        #[arg(required_unless_present = "random")]
        questions: Vec<String>,
        /// Also this many random questions per operation of the model (a data set for probes or
        /// PCA in Python), drawn with `--seed`.
        #[arg(long, default_value_t = 0)]
        random: usize,
        /// Seed of the `--random` questions.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Hook names to keep (repeatable; default: every hook).
        #[arg(long = "hook")]
        hooks: Vec<String>,
        /// Output file: NAME.npz for NumPy (`numpy.load`), anything else is safetensors.
        #[arg(long, default_value = "cache.safetensors")]
        out: PathBuf,
        /// Replace `--out` if it exists. Even so, a model, a checkpoint, or a file in a run
        /// folder that is not a cache written by `arithlens cache` is never replaced.
        #[arg(long)]
        force: bool,
    },
    /// Write RUN_DIR/report.html (one self-contained page) and RUN_DIR/figures/*.svg from what the
    /// run folder holds (training.json, eval.json, analysis.json, the model).
    Report {
        /// The run folder.
        run_dir: PathBuf,
    },
    /// Many models from one manifest (zoo/*.toml): run them here or on Slurm, follow them, and
    /// gather one table beside the papers' figures.
    Zoo {
        /// What to do.
        #[command(subcommand)]
        command: crate::zoo::ZooCommand,
    },
}

/// Options of `analyze`.
#[derive(Args, Debug, Clone)]
pub struct AnalyzeArgs {
    /// Questions in the ablation set.
    #[arg(long, default_value_t = arithlens::analysis::AnalyzeOptions::default().questions)]
    pub questions: usize,
    /// Seed of the question sets.
    #[arg(long, default_value_t = arithlens::analysis::AnalyzeOptions::default().seed)]
    pub seed: u64,
    /// Question pairs per candidate sub-task when tagging nodes by patching.
    #[arg(long, default_value_t = arithlens::analysis::AnalyzeOptions::default().pairs)]
    pub pairs: usize,
    /// Questions with the same column values asked per symbolic-check question, to measure how
    /// far any formula over sub-tasks can agree with the model (0 skips it).
    #[arg(long, default_value_t = arithlens::analysis::AnalyzeOptions::default().siblings)]
    pub siblings: usize,
}

/// Options of `eval`.
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// Model file or run folder.
    pub model: PathBuf,
    /// Random questions per operation.
    #[arg(long, default_value_t = arithlens::eval::EvalOptions::default().questions)]
    pub questions: u64,
    /// Seed of the question sets.
    #[arg(long, default_value_t = arithlens::eval::EvalOptions::default().seed)]
    pub seed: u64,
    /// Evaluate every question (n <= 3): an exact accuracy, not a sample.
    #[arg(long)]
    pub exhaustive: bool,
    /// Stratified questions per complexity class.
    #[arg(long, default_value_t = arithlens::eval::EvalOptions::default().per_class)]
    pub per_class: usize,
    /// Highest-loss questions to list.
    #[arg(long, default_value_t = arithlens::eval::EvalOptions::default().top_k)]
    pub top: usize,
    /// Print eval.json to standard output instead of the tables.
    #[arg(long)]
    pub json: bool,
}

impl EvalArgs {
    fn options(&self) -> arithlens::eval::EvalOptions {
        arithlens::eval::EvalOptions {
            questions: self.questions,
            seed: self.seed,
            exhaustive: self.exhaustive,
            per_class: self.per_class,
            top_k: self.top,
            ..Default::default()
        }
    }
}

/// Options shared by `train` and `run`.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Preset: paper1 (default), paper1_constant, tiny, tiny_l2, tiny_sub, tiny_mix, or a follow-up model name
    /// such as add_d6_l2_h3_t15K_s372001.
    #[arg(long, default_value = "paper1")]
    pub preset: String,
    /// Override any config field, e.g. --set d_model=256 --set lr=1e-3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Training steps (shorthand for --set steps=N).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Seed of weights and data (shorthand for --set seed=N).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run folder (default runs/NAME, NAME the preset's run name).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in the folder from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Train a new model even if the folder holds one (or a checkpoint or training.json):
    /// `train` and `run` never replace them without it. The old model stays whole and usable
    /// until the new one is complete.
    #[arg(long)]
    pub force: bool,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    /// The run's config: preset plus overrides.
    pub fn config(&self) -> Result<TrainConfig, String> {
        let mut o = self.overrides.clone();
        o.extend(self.steps.map(|s| format!("steps={s}")));
        o.extend(self.seed.map(|s| format!("seed={s}")));
        TrainConfig::preset(&self.preset)?.with_overrides(&o)
    }

    /// The run folder.
    pub fn dir(&self, cfg: &TrainConfig) -> PathBuf {
        self.out.clone().unwrap_or_else(|| default_run_dir(cfg))
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), String> {
    if let Some(n) = cli.threads {
        arithlens::limits::check_threads("--threads", n)?;
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().map_err(|e| e.to_string())?;
    }
    remove_leftovers(&cli.command);
    let load = LoadOptions { allow_non_finite: cli.allow_non_finite };
    match cli.command {
        Command::Train(a) => train(&a).map(|_| ()),
        Command::Ask { model, question } => ask(&load_model(&model, load)?, &question),
        Command::Eval(a) => eval_with(&a, load).map(|_| ()),
        Command::Bench(a) => crate::bench::run_with(&a, load),
        Command::Run(a) => run_all(&a),
        Command::Analyze { run_dir, options } => analyze_with(&run_dir, &options, load),
        Command::Report { run_dir } => {
            if load.allow_non_finite && arithlens::task_model::model_path(&run_dir).exists() {
                load_model(&run_dir, load)?; // for its warning
            }
            report_with(&run_dir, load).map(|_| ())
        }
        Command::Cache { model, questions, random, seed, hooks, out, force } => {
            arithlens::io::outputs::check_new_file(&out, "the cache file (--out)", force, cache_replaceable)?;
            cache(&load_model(&model, load)?, &questions, (random, seed), &hooks, &out)
        }
        Command::Zoo { command } => crate::zoo::run(command, cli.threads),
    }
}

/// The folders `command` writes into.
fn output_folders(command: &Command) -> Vec<PathBuf> {
    let in_dir = |d: &Path| if d.is_dir() { d.to_path_buf() } else { d.parent().unwrap_or(Path::new("")).to_path_buf() };
    let run_folder = |d: &Path| vec![d.to_path_buf(), RunFolder::new(d).figures()];
    match command {
        Command::Train(a) => a.config().map(|c| vec![a.dir(&c)]).unwrap_or_default(),
        Command::Run(a) => a.config().map(|c| run_folder(&a.dir(&c))).unwrap_or_default(),
        Command::Eval(a) => vec![a.model.clone()],
        Command::Analyze { run_dir, .. } => vec![in_dir(run_dir)],
        Command::Report { run_dir } => run_folder(run_dir),
        Command::Cache { out, .. } => vec![out.parent().unwrap_or(Path::new("")).to_path_buf()],
        Command::Ask { .. } | Command::Bench(_) | Command::Zoo { .. } => Vec::new(),
    }
}

/// Removes the temporary files that killed processes left in the folders `command` writes into
/// (see [`arithlens::io::atomic::remove_stale_temporaries`]), saying which.
fn remove_leftovers(command: &Command) {
    for dir in output_folders(command) {
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        for path in arithlens::io::atomic::remove_stale_temporaries(&dir) {
            eprintln!("removed {}, left by a process killed while writing it", path.display());
        }
    }
}

/// Loads a model per `opts`, warning on standard error when it holds non-finite weights.
pub fn load_model(path: &Path, opts: LoadOptions) -> Result<TaskModel, String> {
    let model = TaskModel::load_with(path, opts)?;
    let bad = arithlens::model::file::non_finite(&model.params);
    if !bad.is_empty() {
        let list: Vec<String> = bad.iter().map(|(name, n)| format!("{name} ({n})")).collect();
        eprintln!("warning: {} holds NaN or infinite weights in {}; its answers mean nothing", path.display(), list.join(", "));
    }
    Ok(model)
}

/// Trains per `a`, returning the run folder.
pub fn train(a: &TrainArgs) -> Result<PathBuf, String> {
    let cfg = a.config()?;
    let dir = a.dir(&cfg);
    arithlens::io::outputs::check_dir(&dir, "the run folder (--out)")?;
    let mut t = if a.resume {
        Trainer::resume(&dir, Some(cfg.clone()))?
    } else {
        refuse_to_replace(&dir, a.force)?;
        Trainer::new(cfg.clone())?
    };
    if t.step_count() >= t.cfg.steps && dir.join(files::MODEL).exists() {
        eprintln!("{} is already trained ({} of {} steps); nothing to resume", dir.display(), t.step_count(), t.cfg.steps);
        return Ok(dir);
    }
    let c = &t.cfg;
    eprintln!(
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
    );
    let mut progress = Progress::new(t.cfg.steps, t.step_count(), a.quiet);
    // Ctrl-C saves a checkpoint and stops; `--resume` continues from it.
    let guard = crate::interrupt::Guard::install();
    t.stop_when(guard.flag());
    if let Err(e) = t.train(&dir, &mut |t| progress.update(t)) {
        if let Some(b) = &progress.bar {
            b.abandon();
        }
        return Err(e);
    }
    progress.finish(&t);
    Ok(dir)
}

/// Refuses (unless `force`) a fresh run in a folder holding a model, checkpoint or training.json,
/// whoever put them there: a model may have taken hours to train.
fn refuse_to_replace(dir: &Path, force: bool) -> Result<(), String> {
    let held = [files::MODEL, files::CHECKPOINT, files::TRAINING].into_iter().find(|f| dir.join(f).exists());
    match held {
        Some(f) if !force => Err(format!(
            "{} already exists: pass --force to train a new model in its place (the old model stays until the new one is complete), \
             --resume to continue its checkpoint, or --out for another folder",
            dir.join(f).display()
        )),
        _ => Ok(()),
    }
}

/// Progress output: a bar on a terminal, periodic lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    last_line: std::time::Instant,
}

impl Progress {
    fn new(total: u64, done: u64, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total).with_position(done);
            let style = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]")
                .expect("valid template");
            b.set_style(style);
            b
        });
        Progress { bar, quiet, last_line: std::time::Instant::now() }
    }

    fn update(&mut self, t: &Trainer) {
        // The loss of the last logged record (none before the first `log_every` steps).
        let loss = t.last_loss().map_or("-".to_string(), |l| format!("{l:.3e}"));
        let msg = format!("loss {loss}  {:.1} steps/s", t.steps_per_s());
        if let Some(b) = &self.bar {
            b.set_position(t.step_count());
            b.set_message(msg);
        } else if !self.quiet && (self.last_line.elapsed().as_secs() >= 10 || t.step_count() == t.cfg.steps) {
            let left = eta((t.cfg.steps - t.step_count()) as f64, t.steps_per_s());
            eprintln!("step {}/{}  {msg}{left}", t.step_count(), t.cfg.steps);
            self.last_line = std::time::Instant::now();
        }
    }

    fn finish(&self, t: &Trainer) {
        if let Some(b) = &self.bar {
            b.finish();
        }
        if !self.quiet {
            eprintln!("done: final loss {:.3e}, {:.1} steps/s", t.last_loss().unwrap_or(f64::NAN), t.steps_per_s());
        }
    }
}

fn ask(model: &TaskModel, question: &str) -> Result<(), String> {
    let q = model.parse_question(question)?;
    let (tokens, probs) = predict::greedy(model, &[q]).remove(0);
    let got = arithlens::task::decode_answer(model.format, &tokens).map_err(|e| e.to_string());
    let names: Vec<&str> = tokens.iter().map(|&t| model.format.token_name(t)).collect();
    let truth = q.answer_tokens(model.format);
    println!("question: {}", q.text());
    println!(
        "model:    {}{}",
        names.concat(),
        match &got {
            Ok(v) => format!("  (= {v})"),
            Err(e) => format!("  (not a number: {e})"),
        }
    );
    println!("true:     {}  (= {})", model.format.tokens_text(&truth), q.answer());
    let answer_names = model.format.answer_names(model.n_digits);
    for ((name, p), (&tok, &want)) in answer_names.iter().zip(&probs).zip(tokens.iter().zip(&truth)) {
        let mark = if tok == want { "" } else { "  <- wrong" };
        println!("  {name:>4}: {} with p = {p:.4}{mark}", model.format.token_name(tok));
    }
    println!("{}", if tokens == truth { "correct" } else { "WRONG" });
    Ok(())
}

/// Evaluates per `a`, prints the result and writes eval.json beside a run folder's model.
pub fn eval(a: &EvalArgs) -> Result<arithlens::eval::EvalReport, String> {
    eval_with(a, LoadOptions::default())
}

/// [`eval`] with the model loaded per `load`.
pub fn eval_with(a: &EvalArgs, load: LoadOptions) -> Result<arithlens::eval::EvalReport, String> {
    check_eval_args(a)?;
    if a.model.is_dir() {
        arithlens::io::outputs::check_file(&RunFolder::new(&a.model).eval(), "the evaluation's output")?;
    }
    let model = load_model(&a.model, load)?;
    let mut opts = a.options();
    // Progress is kept next to the model, so Ctrl-C (or a killed session) loses at most a slice.
    if a.model.is_dir() {
        opts.progress_file = Some(RunFolder::new(&a.model).eval_partial());
    }
    let guard = crate::interrupt::Guard::install();
    opts.stop = Some(guard.flag());
    let resumed = arithlens::eval::accuracy::resumed_questions(&model, &opts);
    if resumed > 0 {
        eprintln!("continuing an interrupted evaluation: {resumed} random questions already done (eval.partial.json)");
    }
    let mut bar = StageBar::new(a.json);
    let report = arithlens::eval::evaluate(&model, &opts, &mut |stage, done, total| bar.update(stage, done, total));
    bar.finish();
    drop(guard);
    let report = report?;
    if a.model.is_dir() {
        arithlens::io::atomic::write_json(&RunFolder::new(&a.model).eval(), &report).map_err(|e| format!("cannot write eval.json: {e}"))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print_eval(&report);
    }
    Ok(report)
}

fn print_eval(r: &arithlens::eval::EvalReport) {
    for op in &r.ops {
        for (title, rows) in
            [(if op.exhaustive { "every question" } else { "random questions" }, &op.random), ("stratified by class", &op.stratified)]
        {
            println!("\n{}, {title}:", op.op.word());
            println!("  {:>5} {:>9} {:>9} {:>11} {:>10}  per-digit accuracy", "class", "n", "failures", "accuracy", "mean loss");
            for row in rows {
                let digits: Vec<String> = row.digit_accuracy.iter().map(|a| format!("{:.4}", a)).collect();
                println!(
                    "  {:>5} {:>9} {:>9} {:>10.5}% {:>10.2e}  {}",
                    row.class,
                    row.n,
                    row.failures,
                    100.0 * row.accuracy,
                    row.mean_loss,
                    digits.join(" ")
                );
            }
        }
        println!("\nhighest-loss questions:");
        for h in op.top_loss.iter().take(10) {
            println!(
                "  {}{}  class {:>3}  loss {:.2e}  model {}  wrong {}",
                h.question,
                h.truth,
                h.class,
                h.loss,
                h.predicted,
                if h.wrong_digits.is_empty() { "-".to_string() } else { h.wrong_digits.join(",") }
            );
        }
    }
    println!();
    for line in &r.summary {
        println!("{line}");
    }
    println!("{:.1} s, {:.0} questions/s", r.seconds, r.questions_per_s);
}

/// `"  eta 1h05m"`: how long `remaining` units take at `rate` units per second, for progress
/// lines in a log file (a terminal's bar shows its own); empty while no rate is known and once
/// nothing remains.
fn eta(remaining: f64, rate: f64) -> String {
    if !(rate > 0.0 && remaining > 0.0 && remaining.is_finite()) {
        return String::new();
    }
    let s = (remaining / rate).ceil() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("  eta {s}s"),
        (0, m, s) => format!("  eta {m}m{s:02}s"),
        (h, m, _) => format!("  eta {h}h{m:02}m"),
    }
}

/// A progress bar per stage on a terminal; otherwise (a log file) a line every 30 seconds, with
/// the time left at the stage's rate so far, and at the end of each stage; nothing with `hidden`.
struct StageBar {
    bar: Option<indicatif::ProgressBar>,
    stage: String,
    hidden: bool,
    terminal: bool,
    last: Option<(std::time::Instant, u64, u64)>,
    /// When the current stage began, and how much of it was done then (a resumed evaluation).
    started: Option<(std::time::Instant, u64)>,
}

impl StageBar {
    fn new(hidden: bool) -> StageBar {
        StageBar { bar: None, stage: String::new(), hidden, terminal: std::io::stderr().is_terminal(), last: None, started: None }
    }

    fn update(&mut self, stage: &str, done: u64, total: u64) {
        if self.hidden {
            return;
        }
        if self.stage != stage {
            self.finish();
            self.stage = stage.to_string();
            if self.terminal {
                let b = indicatif::ProgressBar::new(total);
                let style = indicatif::ProgressStyle::with_template("{msg:>24} {bar:40} {pos}/{len} [{elapsed_precise} < {eta_precise}]")
                    .expect("valid template");
                b.set_style(style);
                b.set_message(stage.to_string());
                self.bar = Some(b);
            }
            self.last = Some((std::time::Instant::now(), done, total));
            self.started = Some((std::time::Instant::now(), done));
        }
        if let Some(b) = &self.bar {
            b.set_position(done);
        } else if let Some((at, _, _)) = self.last {
            if at.elapsed().as_secs() >= 30 {
                let (since, from) = self.started.expect("set with the stage");
                let rate = done.saturating_sub(from) as f64 / since.elapsed().as_secs_f64();
                eprintln!("{stage}: {done}/{total}{}", eta(total.saturating_sub(done) as f64, rate));
                self.last = Some((std::time::Instant::now(), done, total));
            } else {
                self.last = Some((at, done, total));
            }
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        } else if let Some((_, done, total)) = self.last.take() {
            eprintln!("{}: {done}/{total}", self.stage);
        }
    }
}

/// Writes the report of a run folder, with the model loaded per `load`, and prints its path.
pub fn report_with(dir: &Path, load: LoadOptions) -> Result<PathBuf, String> {
    if dir.is_dir() {
        let run = RunFolder::new(dir);
        arithlens::io::outputs::check_file(&run.report(), "the report")?;
        arithlens::io::outputs::check_dir(&run.figures(), "the report's figures folder")?;
    }
    let path = arithlens::report::write_report_with(dir, load)?;
    println!("{}", path.display());
    Ok(path)
}

/// Stages of `run`, in order.
const STAGES: usize = 4;

fn stage(k: usize, what: &str) {
    eprintln!("[{k}/{STAGES}] {what}");
}

/// Whether the derived file `name` in `dir` must be (re)computed for the model hashing to `sha`
/// with `options`: prints stage `k` as skipped when it is current, or with the reason when it
/// is not (missing files need none).
fn needs_recompute<T: arithlens::provenance::Derived>(
    k: usize,
    what: &str,
    dir: &Path,
    name: &str,
    (sha, options): (&str, &serde_json::Value),
) -> bool {
    let path = dir.join(name);
    match arithlens::provenance::read_current::<T>(&path, sha, Some(options)) {
        Ok(_) => {
            stage(k, &format!("{what}: {} is up to date; skipping", path.display()));
            false
        }
        Err(arithlens::provenance::Stale::Missing) => {
            stage(k, what);
            true
        }
        Err(why) => {
            stage(k, &format!("{what}: {} {}; recomputing it", path.display(), why.reason()));
            true
        }
    }
}

/// The evaluation `run` does: `eval`'s defaults, and every question for n <= 3.
fn run_eval_args(dir: &Path, cfg: &TrainConfig) -> EvalArgs {
    let d = arithlens::eval::EvalOptions::default();
    EvalArgs {
        model: dir.to_path_buf(),
        questions: d.questions,
        seed: d.seed,
        exhaustive: cfg.task.n_digits <= arithlens::eval::accuracy::EXHAUSTIVE_MAX_DIGITS,
        per_class: d.per_class,
        top: d.top_k,
        json: false,
    }
}

/// The analysis `run` does: the defaults of `analyze`.
fn run_analyze_args() -> AnalyzeArgs {
    let defaults = arithlens::analysis::AnalyzeOptions::default();
    AnalyzeArgs { questions: defaults.questions, seed: defaults.seed, pairs: defaults.pairs, siblings: defaults.siblings }
}

fn run_all(a: &TrainArgs) -> Result<(), String> {
    let cfg = a.config()?;
    let dir = a.dir(&cfg);
    arithlens::io::outputs::check_dir(&dir, "the run folder (--out)")?;
    let model = dir.join(files::MODEL);
    if !model.exists() || a.force || a.resume {
        let mut a = a.clone();
        // An interrupted run (a checkpoint but no model) continues where it stopped.
        a.resume |= !a.force && !model.exists() && dir.join(files::CHECKPOINT).exists();
        stage(1, if a.resume { "train (resuming from the last checkpoint)" } else { "train" });
        train(&a)?;
    } else {
        stage(1, &format!("train: {} already holds a trained model; skipping training (--force retrains)", dir.display()));
    }
    // What to recompute follows from the model's hash and the options each file records.
    let sha = arithlens::provenance::sha256_file(&model)?;
    let eval_args = run_eval_args(&dir, &cfg);
    let eval_options = eval_args.options().provenance_options();
    if needs_recompute::<arithlens::eval::EvalReport>(2, "evaluate", &dir, files::EVAL, (&sha, &eval_options)) {
        let e = eval(&eval_args)?;
        eprintln!("  {}", e.summary.first().cloned().unwrap_or_default());
    }
    let analyze_args = run_analyze_args();
    let analyze_options = serde_json::to_value(analyze_args.options()).map_err(|e| e.to_string())?;
    if needs_recompute::<arithlens::analysis::Analysis>(3, "analyze", &dir, files::ANALYSIS, (&sha, &analyze_options)) {
        analyze(&dir, &analyze_args)?;
    }
    stage(4, "report");
    let path = arithlens::report::write_report(&dir)?;
    eprintln!("report: {}", path.display());
    println!("{}", path.display());
    Ok(())
}

/// `arithlens cache`: the listed questions, then `random.0` random ones per operation.
fn cache(model: &TaskModel, questions: &[String], random: (usize, u64), hooks: &[String], out: &Path) -> Result<(), String> {
    let format = cache_format(out)?;
    check_cache_size(model, questions.len(), random.0)?;
    let mut qs = questions.iter().map(|q| model.parse_question(q)).collect::<Result<Vec<_>, _>>()?;
    for (i, &op) in model.ops.iter().enumerate() {
        let seed = random.1.wrapping_add(i as u64);
        qs.extend(arithlens::task::generate::random_questions(model.n_digits, op, random.0, seed).map_err(|e| e.to_string())?);
    }
    if qs.is_empty() {
        return Err("no questions to cache: list some (\"12+34=\") or give --random N".into());
    }
    let n_layers = model.params.config.n_layers;
    for h in hooks {
        arithlens::model::HookPoint::parse(h, n_layers)?;
    }
    let names: Vec<&str> = hooks.iter().map(String::as_str).collect();
    let mut file = arithlens::analysis::intervene::full_cache(model, &qs, &names).to_tensor_file();
    let toks: Vec<f32> = qs.iter().flat_map(|q| q.tokens(model.format).unwrap_or_default()).map(|t| t as f32).collect();
    file.tensors.insert("tokens".into(), arithlens::io::tensors::Tensor { shape: vec![qs.len(), model.n_ctx()], data: toks });
    file.integer.insert("tokens".into());
    let texts: Vec<String> = qs.iter().map(|q| q.text()).collect();
    let options = serde_json::json!({"hooks": hooks, "random": random.0, "seed": random.1});
    if let Some(p) = model.provenance(&options) {
        file.metadata.insert(CACHE_PROVENANCE.into(), serde_json::to_string(&p).map_err(|e| e.to_string())?);
    }
    if format == CacheFormat::Npz {
        arithlens::io::npy::save_npz_with_strings(out, &file, &[("questions", &texts)])?;
    } else {
        file.metadata.insert("questions".into(), texts.join(" "));
        arithlens::io::tensors::save(out, &file)?;
    }
    println!("wrote {} tensors for {} question(s) to {}", file.tensors.len(), qs.len(), out.display());
    Ok(())
}

impl AnalyzeArgs {
    /// The analysis options these arguments select.
    fn options(&self) -> arithlens::analysis::AnalyzeOptions {
        arithlens::analysis::AnalyzeOptions {
            questions: self.questions,
            seed: self.seed,
            pairs: self.pairs,
            siblings: self.siblings,
            ..Default::default()
        }
    }
}

/// The metadata entry (a JSON [`arithlens::provenance::Provenance`]) that marks a file as a cache
/// `arithlens cache` wrote: in safetensors metadata, or as `provenance.npy` in an .npz.
const CACHE_PROVENANCE: &str = "provenance";

/// Whether `cache --force` may replace the existing file `path`: a cache it wrote may be
/// replaced; a model or checkpoint never, nor any other file inside a run folder.
fn cache_replaceable(path: &Path) -> Result<(), String> {
    use arithlens::io::outputs::{is_model_file, safetensors_header};
    let marked = match safetensors_header(path) {
        Some(h) => h.get("__metadata__").and_then(|m| m.get(CACHE_PROVENANCE)).is_some() && !is_model_file(path),
        None => std::fs::File::open(path)
            .ok()
            .and_then(|f| zip::ZipArchive::new(f).ok())
            .is_some_and(|z| z.file_names().any(|n| n.is_ok_and(|n| n == format!("{CACHE_PROVENANCE}.npy")))),
    };
    if marked {
        return Ok(());
    }
    if is_model_file(path) {
        return Err(format!(
            "{} is a model or checkpoint: `cache` never replaces one, even with --force; choose another --out",
            path.display()
        ));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if [files::MODEL, files::CHECKPOINT].iter().any(|f| parent.join(f).exists()) {
        return Err(format!(
            "{} is in a run folder and is not a cache written by `arithlens cache`: it is not replaced, even with --force; choose another --out",
            path.display()
        ));
    }
    Ok(())
}

fn analyze(dir: &Path, a: &AnalyzeArgs) -> Result<(), String> {
    analyze_with(dir, a, LoadOptions::default())
}

fn analyze_with(dir: &Path, a: &AnalyzeArgs, load: LoadOptions) -> Result<(), String> {
    let opts = a.options();
    opts.validate()?;
    let out = if dir.is_dir() { dir.join(files::ANALYSIS) } else { dir.with_file_name(files::ANALYSIS) };
    arithlens::io::outputs::check_file(&out, "the analysis's output")?;
    let model = load_model(dir, load)?;
    let log_path = dir.join(files::TRAINING);
    let log: Option<arithlens::train::log::TrainingLog> = match std::fs::read(&log_path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", log_path.display()))?),
        Err(_) => None,
    };
    let t0 = std::time::Instant::now();
    let mut bar = StageBar::new(false);
    let mut report = |p: arithlens::analysis::stages::Progress| {
        let name = p.stage.name();
        if p.total == 0 {
            bar.finish();
            let of = arithlens::analysis::stages::Stage::ALL.len();
            eprintln!("analyze [{}/{of}] {name} ({:.0} s so far)", p.stage.number(), t0.elapsed().as_secs_f64());
        } else {
            bar.update(&format!("analyze {name}"), p.done as u64, p.total as u64);
        }
    };
    let result = arithlens::analysis::analyze_with_progress(&model, log.as_ref(), &opts, &mut report);
    bar.finish();
    arithlens::io::atomic::write_json(&out, &result).map_err(|e| format!("writing {}: {e}", out.display()))?;
    print!("{}", arithlens::analysis::summary(&result));
    println!("wrote {} in {:.1} s", out.display(), t0.elapsed().as_secs_f64());
    Ok(())
}

/// Refuses `eval` counts that could not be held in memory, before the model is loaded.
fn check_eval_args(a: &EvalArgs) -> Result<(), String> {
    use arithlens::limits::{MAX_HELD_QUESTIONS, MAX_TOP};
    if a.per_class > MAX_HELD_QUESTIONS {
        return Err(format!(
            "--per-class {} is too many: at most {MAX_HELD_QUESTIONS} (all are held in memory; default 10000)",
            a.per_class
        ));
    }
    if a.top > MAX_TOP {
        return Err(format!("--top {} is too many: at most {MAX_TOP}", a.top));
    }
    Ok(())
}

/// What `cache --out` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CacheFormat {
    Safetensors,
    Npz,
}

/// The format by `out`'s extension, in any case (`.npz`, `.NPZ`); `.npy` is refused.
fn cache_format(out: &Path) -> Result<CacheFormat, String> {
    match out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("npz") => Ok(CacheFormat::Npz),
        Some("npy") => Err(format!("{}: a cache holds several arrays; name it .npz (NumPy) or .safetensors", out.display())),
        _ => Ok(CacheFormat::Safetensors),
    }
}

/// Refuses a cache whose activations would not fit in [`arithlens::limits::MAX_MEMORY_BYTES`],
/// before any question is generated.
fn check_cache_size(model: &TaskModel, listed: usize, random: usize) -> Result<(), String> {
    use arithlens::limits::{product, sum};
    let c = &model.params.config;
    let (d, h, dh, ff, ctx) = (c.d_model as u64, c.n_heads as u64, c.d_head as u64, c.d_mlp as u64, model.n_ctx() as u64);
    // Every hook of a layer per position: ~8 residual-wide vectors, q/k/v/z, scores and pattern, MLP pre/post.
    let per_layer = sum(&[product(&[8, d]), product(&[4, h, dh]), product(&[2, h, ctx]), product(&[2, ff])]);
    let per_question =
        sum(&[per_layer.and_then(|p| p.checked_mul(c.n_layers as u64)), product(&[3, d])]).and_then(|p| product(&[p, ctx, 4]));
    let n = (random as u64).checked_mul(model.ops.len() as u64).and_then(|r| r.checked_add(listed as u64));
    let what = format!("a cache of {} question(s)", n.map_or("too many".into(), |n| n.to_string()));
    arithlens::limits::check_memory(&what, n.and_then(|n| per_question?.checked_mul(n)), "their activations (every hook)")
}

#[cfg(test)]
mod tests {
    use super::eta;

    #[test]
    fn eta_reads_as_hours_minutes_or_seconds() {
        assert_eq!(eta(100.0, 4.0), "  eta 25s");
        assert_eq!(eta(36_000.0, 4.0), "  eta 2h30m");
        assert_eq!(eta(1_000.0, 4.0), "  eta 4m10s");
        assert_eq!(eta(1_000.0, 0.0), "", "no rate yet, no estimate");
        assert_eq!(eta(0.0, 4.0), "", "nothing left, no estimate");
    }
}
