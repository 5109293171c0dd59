//! Command-line definitions and their dispatch (`arithlens train|ask|eval|bench|run`).

use crate::display::Display;
use crate::interrupt::Guard;
use arithlens::eval::predict;
use arithlens::model::file::LoadOptions;
use arithlens::pipeline::{self, TrainOptions};
use arithlens::run_folder::{files, RunFolder};
use arithlens::task_model::TaskModel;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

/// A command's error: the library's typed errors and the messages of this layer, shown as
/// "error: MESSAGE".
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

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
    /// Questions per corrupted column for path patching between the useful nodes (the circuit);
    /// 0 skips it.
    #[arg(long, default_value_t = arithlens::analysis::AnalyzeOptions::default().circuit_questions)]
    pub circuit_questions: usize,
    /// Edges path-patched per corrupted column, those edge attribution patching ranks highest (0:
    /// every candidate edge).
    #[arg(long, default_value_t = arithlens::analysis::AnalyzeOptions::default().circuit_edges)]
    pub circuit_edges: usize,
    /// Gradient points of edge attribution patching (1: plain; more: integrated gradients).
    #[arg(long, default_value_t = arithlens::analysis::AnalyzeOptions::default().eap_steps)]
    pub eap_steps: usize,
    /// Draw every circuit question from this complexity class (S3, M2, N1, ...) instead of the
    /// ablation set's mix: the paths of a rare class, such as a deep carry cascade.
    #[arg(long, value_name = "CLASS")]
    pub circuit_class: Option<String>,
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
    /// The library's options for these flags.
    pub fn options(&self) -> TrainOptions {
        TrainOptions {
            preset: self.preset.clone(),
            overrides: self.overrides.clone(),
            steps: self.steps,
            seed: self.seed,
            out: self.out.clone(),
            resume: self.resume,
            force: self.force,
        }
    }

    /// The run folder these flags select, if their config is valid.
    fn dir(&self) -> Option<PathBuf> {
        let o = self.options();
        o.config().ok().map(|c| o.dir(&c))
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        arithlens::limits::check_threads("--threads", n)?;
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().map_err(|e| e.to_string())?;
    }
    remove_leftovers(&cli.command);
    let load = LoadOptions { allow_non_finite: cli.allow_non_finite };
    match cli.command {
        Command::Train(a) => train(&a),
        Command::Ask { model, question } => Ok(ask(&load_model(&model, load)?, &question)?),
        Command::Eval(a) => eval(&a, load),
        Command::Bench(a) => Ok(crate::bench::run_with(&a, load)?),
        Command::Run(a) => run_all(&a),
        Command::Analyze { run_dir, options } => analyze(&run_dir, &options, load),
        Command::Report { run_dir } => {
            let path = pipeline::report(&run_dir, load, &mut |e| Display::new(false, false).show(e))?;
            println!("{}", path.display());
            Ok(())
        }
        Command::Cache { model, questions, random, seed, hooks, out, force } => {
            arithlens::io::outputs::check_new_file(&out, "the cache file (--out)", force, cache_replaceable)?;
            Ok(cache(&load_model(&model, load)?, &questions, (random, seed), &hooks, &out)?)
        }
        Command::Zoo { command } => Ok(crate::zoo::run(command, cli.threads)?),
    }
}

/// The folders `command` writes into.
fn output_folders(command: &Command) -> Vec<PathBuf> {
    match command {
        Command::Train(a) => a.dir().into_iter().collect(),
        Command::Eval(a) => vec![a.model.clone()],
        Command::Analyze { run_dir, .. } => vec![RunFolder::of_model_path(run_dir).dir().to_path_buf()],
        Command::Cache { out, .. } => vec![out.parent().unwrap_or(Path::new("")).to_path_buf()],
        Command::Run(_) | Command::Report { .. } | Command::Ask { .. } | Command::Bench(_) | Command::Zoo { .. } => Vec::new(),
    }
}

/// The run folders (with their figures) `command` writes into.
fn output_run_folders(command: &Command) -> Vec<RunFolder> {
    match command {
        Command::Run(a) => a.dir().map(RunFolder::new).into_iter().collect(),
        Command::Report { run_dir } => vec![RunFolder::new(run_dir)],
        _ => Vec::new(),
    }
}

/// Removes the temporary files that killed processes left in the folders `command` writes into
/// (see [`arithlens::io::atomic::remove_stale_temporaries`]), saying which.
fn remove_leftovers(command: &Command) {
    let mut removed: Vec<PathBuf> = output_run_folders(command).iter().flat_map(RunFolder::remove_leftovers).collect();
    for dir in output_folders(command) {
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        removed.extend(arithlens::io::atomic::remove_stale_temporaries(&dir));
    }
    for path in removed {
        eprintln!("removed {}, left by a process killed while writing it", path.display());
    }
}

/// Loads a model per `opts`, warning on standard error when it holds non-finite weights.
pub fn load_model(path: &Path, opts: LoadOptions) -> std::result::Result<TaskModel, String> {
    pipeline::load_model(path, opts, &mut |e| Display::new(false, false).show(e)).map_err(|e| e.to_string())
}

/// `arithlens train`: Ctrl-C saves a checkpoint and stops; `--resume` continues from it.
fn train(a: &TrainArgs) -> Result<()> {
    let mut display = Display::new(a.quiet, false);
    let guard = Guard::install();
    let trained = pipeline::train(&a.options(), guard.stop(), &mut |e| display.show(e));
    show_trained(&mut display, trained)?;
    Ok(())
}

/// Ends training's display: a finished session's last line, or the bar left as it stood.
fn show_trained(display: &mut Display, trained: std::result::Result<pipeline::Trained, pipeline::Error>) -> Result<()> {
    match trained {
        Ok(t) => {
            if let Some(session) = &t.session {
                display.trained(session);
            }
            Ok(())
        }
        Err(e) => {
            display.finish();
            Err(e.into())
        }
    }
}

fn ask(model: &TaskModel, question: &str) -> std::result::Result<(), String> {
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

/// `arithlens eval`: evaluates per `a` (writing eval.json into a run folder) and prints the
/// tables, or eval.json with `--json`. Ctrl-C keeps the progress; the same command continues.
fn eval(a: &EvalArgs, load: LoadOptions) -> Result<()> {
    let mut display = Display::new(false, a.json);
    let guard = Guard::install();
    let report = pipeline::evaluate(&a.model, &a.options(), load, guard.stop(), &mut |e| display.show(e));
    display.finish();
    drop(guard);
    let report = report?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_eval(&report);
    }
    Ok(())
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

/// `arithlens run`: the pipeline, printing each stage's result as it comes.
fn run_all(a: &TrainArgs) -> Result<()> {
    let mut display = Display::new(a.quiet, false);
    let mut run = pipeline::Run::new(&a.options())?;
    let guard = Guard::install();
    let trained = run.train(guard.stop(), &mut |e| display.show(e)).transpose();
    if let Some(trained) = trained {
        show_trained(&mut display, trained)?;
    }
    let evaluated = run.evaluate(guard.stop(), &mut |e| display.show(e));
    display.finish();
    if let Some(e) = evaluated? {
        print_eval(&e);
        eprintln!("  {}", e.summary.first().cloned().unwrap_or_default());
    }
    let analyzed = run.analyze(guard.stop(), &mut |e| display.show(e));
    display.finish();
    if let Some(a) = analyzed? {
        print_analyzed(&a);
    }
    drop(guard);
    let path = run.report(&mut |e| display.show(e))?;
    println!("{}", path.display());
    Ok(())
}

/// `arithlens cache`: the listed questions, then `random.0` random ones per operation.
fn cache(model: &TaskModel, questions: &[String], random: (usize, u64), hooks: &[String], out: &Path) -> std::result::Result<(), String> {
    let format = cache_format(out)?;
    check_cache_size(model, questions.len(), random.0)?;
    let mut qs = questions.iter().map(|q| model.parse_question(q)).collect::<std::result::Result<Vec<_>, _>>()?;
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
            circuit_questions: self.circuit_questions,
            circuit_edges: self.circuit_edges,
            eap_steps: self.eap_steps,
            circuit_class: self.circuit_class.clone(),
            ..Default::default()
        }
    }
}

/// The metadata entry (a JSON [`arithlens::provenance::Provenance`]) that marks a file as a cache
/// `arithlens cache` wrote: in safetensors metadata, or as `provenance.npy` in an .npz.
const CACHE_PROVENANCE: &str = "provenance";

/// Whether `cache --force` may replace the existing file `path`: a cache it wrote may be
/// replaced; a model or checkpoint never, nor any other file inside a run folder.
fn cache_replaceable(path: &Path) -> std::result::Result<(), String> {
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

/// `arithlens analyze`: writes analysis.json and prints its summary. Ctrl-C stops it before
/// its next stage.
fn analyze(dir: &Path, a: &AnalyzeArgs, load: LoadOptions) -> Result<()> {
    let mut display = Display::new(false, false);
    let guard = Guard::install();
    let analyzed = pipeline::analyze(dir, &a.options(), load, guard.stop(), &mut |e| display.show(e));
    display.finish();
    print_analyzed(&analyzed?);
    Ok(())
}

/// The analysis's summary and where it went.
fn print_analyzed(a: &pipeline::Analyzed) {
    print!("{}", arithlens::analysis::summary(&a.analysis));
    println!("wrote {} in {:.1} s", a.path.display(), a.seconds);
}

/// What `cache --out` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CacheFormat {
    Safetensors,
    Npz,
}

/// The format by `out`'s extension, in any case (`.npz`, `.NPZ`); `.npy` is refused.
fn cache_format(out: &Path) -> std::result::Result<CacheFormat, String> {
    match out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("npz") => Ok(CacheFormat::Npz),
        Some("npy") => Err(format!("{}: a cache holds several arrays; name it .npz (NumPy) or .safetensors", out.display())),
        _ => Ok(CacheFormat::Safetensors),
    }
}

/// Refuses a cache whose activations would not fit in [`arithlens::limits::MAX_MEMORY_BYTES`],
/// before any question is generated.
fn check_cache_size(model: &TaskModel, listed: usize, random: usize) -> std::result::Result<(), String> {
    use arithlens::limits::{product, sum};
    let c = &model.params.config;
    let (d, h, dh, ff, ctx) = (c.d_model as u64, c.n_heads as u64, c.d_head as u64, c.d_mlp as u64, model.n_ctx() as u64);
    // Every hook of a layer per position: ~8 residual-wide vectors, q/k/v/z, scores and pattern, MLP pre/post.
    let per_layer = sum(&[product(&[8, d]), product(&[4, h, dh]), product(&[2, h, ctx]), product(&[2, ff])]);
    let per_question =
        sum(&[per_layer.and_then(|p| p.checked_mul(c.n_layers as u64)), product(&[3, d])]).and_then(|p| product(&[p, ctx, 4]));
    let n = (random as u64).checked_mul(model.ops.len() as u64).and_then(|r| r.checked_add(listed as u64));
    let what = format!("a cache of {} question(s)", n.map_or("too many".into(), |n| n.to_string()));
    Ok(arithlens::limits::check_memory(&what, n.and_then(|n| per_question?.checked_mul(n)), "their activations (every hook)")?)
}
