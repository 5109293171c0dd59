//! Accuracy over question sets: random samples (the million-question test), every question
//! (exhaustive proof for small n), class-stratified samples and the curated examples.

use super::failure_families::{answered_families, Answered, FailureFamilies, FamilyOptions};
use super::predict::{Predictions, Predictor};
use super::stats::{nines, ClassRow, ClassTallies, HardQuestion, Tally, TopLoss};
use crate::io::schema::Versioned;
use crate::progress::{Event, Stop, Stopped};
use crate::task::curated::curated;
use crate::task::generate::{all_questions, random_questions};
use crate::task::stratified::stratified_set;
use crate::task::{Op, Question};
use crate::task_model::TaskModel;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `evaluate` measures.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Random questions per operation (the follow-up paper uses 1,000,000).
    pub questions: u64,
    /// Seed of the random and stratified sets.
    pub seed: u64,
    /// Evaluate every question instead of a random sample (n <= 3).
    pub exhaustive: bool,
    /// Stratified questions per complexity class.
    pub per_class: usize,
    /// Highest-loss questions to list.
    pub top_k: usize,
    /// Questions per forward pass.
    pub batch: usize,
    /// Where a random-sample evaluation keeps its progress after every slice of questions: a
    /// run that finds progress for the same model and options continues from it (with the same
    /// final report), and the file is removed when the evaluation ends.
    pub progress_file: Option<PathBuf>,
}

impl EvalOptions {
    /// The options that change the report, as recorded in eval.json's provenance (the batch
    /// size and progress file do not change it).
    pub fn provenance_options(&self) -> serde_json::Value {
        serde_json::json!({
            "questions": self.questions,
            "seed": self.seed,
            "exhaustive": self.exhaustive,
            "per_class": self.per_class,
            "top_k": self.top_k,
        })
    }
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            questions: 1_000_000,
            seed: 673023,
            exhaustive: false,
            per_class: 10_000,
            top_k: 20,
            batch: 1024,
            progress_file: None,
        }
    }
}

/// Why an evaluation ended without a report: one variant per cause, with the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Its [`Stop`] was set: the progress is kept (the message says where, and how to continue).
    #[error(transparent)]
    Stopped(#[from] Stopped),
    /// `--exhaustive` was asked of a model too wide for it.
    #[error(
        "--exhaustive covers n <= {EXHAUSTIVE_MAX_DIGITS} (10^6 questions at n = 3); this model answers {n_digits}-digit questions, {:.0e} of them, \
         which would take about {:.0} hours at 10,000 questions/s: use --questions N for a random sample",
        exhaustive_count(*n_digits),
        exhaustive_count(*n_digits) / 1e4 / 3600.0
    )]
    TooWideForExhaustive {
        /// The model's operand width.
        n_digits: usize,
    },
    /// A random sample of no questions was asked.
    #[error("--questions must be at least 1 (the follow-up paper uses 1,000,000)")]
    NoQuestions,
    /// A batch of no questions was asked.
    #[error("the batch size must be at least 1")]
    NoBatch,
    /// The questions could not be generated (the width or operation is not valid).
    #[error(transparent)]
    Task(#[from] crate::task::TaskError),
    /// The progress file could not be written.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
}

/// The number of questions of every pair of `n_digits`-digit operands.
fn exhaustive_count(n_digits: usize) -> f64 {
    10f64.powi(2 * n_digits as i32)
}

impl From<EvalError> for String {
    fn from(e: EvalError) -> String {
        e.to_string()
    }
}

/// Random questions generated and evaluated together (and progress saved after each).
pub const SLICE: u64 = 1 << 16;

/// What an interrupted evaluation has done: the contents of its progress file (eval.partial.json).
#[derive(Debug, Default, Serialize, Deserialize)]
struct PartialEval {
    /// The model's fingerprint and the options: progress made for anything else is ignored.
    key: String,
    /// Seconds spent so far.
    seconds: f64,
    /// Reports of the operations finished.
    finished: Vec<OpReport>,
    /// The operation in progress: its random questions done and their tallies.
    current: Option<(Op, u64, ClassTallies, TopLoss)>,
    /// The operation in progress: the wrong answers kept so far (question, answer tokens).
    #[serde(default)]
    wrong: Vec<(Question, Vec<u32>)>,
}

impl PartialEval {
    /// What a progress file must match: the model file's SHA-256 (the provenance eval.json
    /// records; a hash of the weights for a model made in memory) and every option that
    /// changes the report.
    fn key(model: &TaskModel, opts: &EvalOptions) -> String {
        let id = match &model.sha256 {
            Some(sha) => format!("sha256 {sha}"),
            None => {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for v in &model.params.data {
                    h = (h ^ v.to_bits() as u64).wrapping_mul(0x0100_0000_01b3);
                }
                format!("weights-fnv {h:016x}")
            }
        };
        format!("{} {id} seed {} questions {} per_class {} top_k {}", model.name, opts.seed, opts.questions, opts.per_class, opts.top_k)
    }

    /// The saved progress for `key`, or a note saying why the file at `path` is not used (it
    /// holds another model's or other options' progress, e.g. one keyed the older way, or does
    /// not parse): that evaluation starts afresh and replaces it.
    fn load_or_note(path: &Path, key: &str) -> (Option<PartialEval>, Option<String>) {
        if !path.exists() {
            return (None, None);
        }
        match PartialEval::load(path, key) {
            Some(p) => (Some(p), None),
            None => (
                None,
                Some(format!(
                    "{} holds progress of another model or other options (or does not parse); not used: this evaluation starts afresh and replaces it",
                    path.display()
                )),
            ),
        }
    }

    /// The saved progress for `key`, if the file holds it.
    fn load(path: &Path, key: &str) -> Option<PartialEval> {
        let p: PartialEval = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        (p.key == key).then_some(p)
    }

    fn save(&self, path: &Path) -> Result<(), crate::io::IoError> {
        crate::io::atomic::write_json(path, self).map_err(|source| crate::io::IoError::Write { path: path.to_path_buf(), source })
    }
}

/// Random questions already evaluated in the progress `opts.progress_file` holds for this model
/// and these options (0 if none): lets a caller say that an evaluation continues.
pub fn resumed_questions(model: &TaskModel, opts: &EvalOptions) -> u64 {
    let Some(path) = &opts.progress_file else { return 0 };
    PartialEval::load(path, &PartialEval::key(model, opts))
        .map_or(0, |p| p.finished.iter().map(|r| r.questions).sum::<u64>() + p.current.map_or(0, |c| c.1))
}

/// The largest operand width `--exhaustive` accepts: 10^6 questions at n = 3.
pub const EXHAUSTIVE_MAX_DIGITS: usize = 3;

/// One curated question's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CuratedResult {
    /// Class.
    pub class: String,
    /// Question text.
    pub question: String,
    /// The model's answer tokens.
    pub predicted: String,
    /// Whether it is right.
    pub correct: bool,
}

/// Results for one operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpReport {
    /// "add" or "sub".
    pub op: Op,
    /// Whether `random` covers every question (a proof) rather than a sample.
    pub exhaustive: bool,
    /// Questions evaluated in the random (or exhaustive) set.
    pub questions: u64,
    /// Wrong answers among them.
    pub failures: u64,
    /// Share correct.
    pub accuracy: f64,
    /// Nines of the accuracy (see `stats::nines`).
    pub nines: u32,
    /// Failures per million questions.
    pub failures_per_million: f64,
    /// Per-class table of the random (or exhaustive) set, then "all".
    pub random: Vec<ClassRow>,
    /// Per-class table of the stratified set.
    pub stratified: Vec<ClassRow>,
    /// Share of the random set's total loss held by each class.
    pub loss_share: Vec<(String, f64)>,
    /// The curated examples.
    pub curated: Vec<CuratedResult>,
    /// Highest-loss questions over the random and stratified sets.
    pub top_loss: Vec<HardQuestion>,
    /// The families of the random (or exhaustive) set's wrong answers (the first
    /// [`MAX_KEPT_FAILURES`] of them), told apart from the right answers among its first
    /// [`FAMILY_CONTRAST`] questions; `None` in an eval.json of an older arithlens.
    #[serde(default)]
    pub failure_families: Option<FailureFamilies>,
}

impl OpReport {
    /// Accuracy in one line: on a random set with its nines (a lower bound when nothing failed)
    /// and failures per million; on every question (`--exhaustive`) as the exact figure it is.
    pub fn accuracy_line(&self) -> String {
        let (right, n, pct) = (self.questions - self.failures, self.questions, 100.0 * self.accuracy);
        if self.exhaustive {
            return format!("{right} of all {n} questions correct ({pct:.6}%, exact: every question asked), {} failures", self.failures);
        }
        let bound = if self.failures == 0 { "at least " } else { "" };
        format!(
            "{right} of {n} random questions correct ({pct:.6}%), {} failures, {bound}{} nines, {:.1} failures per million",
            self.failures, self.nines, self.failures_per_million
        )
    }
}

/// eval.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Schema version ([`EvalReport::SCHEMA`]; 1 in a file that records none, written before
    /// versions were recorded).
    #[serde(default = "schema_v1")]
    pub schema: u32,
    /// Model name.
    pub model: String,
    /// Operand width.
    pub n_digits: usize,
    /// Seed of the question sets.
    pub seed: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Questions per second over all sets.
    pub questions_per_s: f64,
    /// One report per operation the model knows.
    pub ops: Vec<OpReport>,
    /// Findings in words.
    pub summary: Vec<String>,
    /// The model file's hash and the options (see [`EvalOptions::provenance_options`]); `None`
    /// for a model built in memory or an eval.json of an older arithlens.
    #[serde(default)]
    pub provenance: Option<crate::provenance::Provenance>,
}

fn schema_v1() -> u32 {
    crate::io::schema::UNVERSIONED
}

impl EvalReport {
    /// The schema version of eval.json this arithlens writes and reads.
    pub const SCHEMA: u32 = 1;
}

impl Versioned for EvalReport {
    const FILE: &'static str = crate::run_folder::files::EVAL;
    const SCHEMA: u32 = EvalReport::SCHEMA;
}

impl crate::provenance::Derived for EvalReport {
    fn provenance(&self) -> Option<&crate::provenance::Provenance> {
        self.provenance.as_ref()
    }
}

/// Wrong answers an evaluation keeps per operation for its failure families (a model that
/// fails this often shows its families in these already).
pub const MAX_KEPT_FAILURES: usize = 20_000;

/// Random questions whose right answers the failure families are told apart from (the decision
/// tree weighs right and wrong answers half each, so a sample of the right ones suffices).
pub const FAMILY_CONTRAST: usize = 20_000;

/// Runs `questions` through the model in batches, folding results into `tallies` and `top`;
/// `done(questions)` is told how many questions are done.
pub fn evaluate_set(
    model: &TaskModel,
    questions: impl Iterator<Item = Question>,
    batch: usize,
    tallies: &mut ClassTallies,
    top: &mut TopLoss,
    done_so_far: &mut dyn FnMut(u64),
) {
    run_set(model, questions, batch, (tallies, top, None), done_so_far);
}

/// Where [`run_set`] folds its results: the class tallies, the highest-loss questions, and
/// (optionally) the wrong answers, up to [`MAX_KEPT_FAILURES`].
type Sinks<'a> = (&'a mut ClassTallies, &'a mut TopLoss, Option<&'a mut Vec<(Question, Vec<u32>)>>);

fn run_set(model: &TaskModel, questions: impl Iterator<Item = Question>, batch: usize, sinks: Sinks, done_so_far: &mut dyn FnMut(u64)) {
    let (tallies, top, mut wrong) = sinks;
    let mut pred = Predictor::new(model, batch);
    let mut chunk = Vec::with_capacity(batch);
    let mut out = Predictions::default();
    let mut questions = questions.peekable();
    let mut done = 0;
    while questions.peek().is_some() {
        chunk.clear();
        chunk.extend(questions.by_ref().take(batch));
        out.argmax.clear();
        out.nll.clear();
        pred.run(&chunk, &mut out);
        fold(model, &chunk, &out, tallies, top);
        if let Some(w) = wrong.as_deref_mut() {
            keep_wrong(model, &chunk, &out, w);
        }
        done += chunk.len() as u64;
        done_so_far(done);
    }
}

fn fold(model: &TaskModel, qs: &[Question], out: &Predictions, tallies: &mut ClassTallies, top: &mut TopLoss) {
    let n = out.n_answer;
    let mut ok = vec![false; n];
    for (i, q) in qs.iter().enumerate() {
        let truth = q.answer_tokens(model.format);
        let pred = &out.argmax[i * n..(i + 1) * n];
        ok.iter_mut().zip(truth.iter().zip(pred)).for_each(|(o, (a, b))| *o = a == b);
        let loss = out.nll[i * n..(i + 1) * n].iter().sum::<f64>() / n as f64;
        tallies.add(q.class(), ok.iter().all(|&v| v), loss, &ok);
        top.offer(loss, q, pred);
    }
}

/// Adds the wrong answers among `qs` to `wrong`, up to [`MAX_KEPT_FAILURES`].
fn keep_wrong(model: &TaskModel, qs: &[Question], out: &Predictions, wrong: &mut Vec<(Question, Vec<u32>)>) {
    let n = out.n_answer;
    for (i, q) in qs.iter().enumerate() {
        if wrong.len() < MAX_KEPT_FAILURES && !out.correct(i, &q.answer_tokens(model.format)) {
            wrong.push((*q, out.argmax[i * n..(i + 1) * n].to_vec()));
        }
    }
}

/// The families of the kept wrong answers, told apart from the right answers among the first
/// [`FAMILY_CONTRAST`] random questions (those the random set starts with); `seen` is the whole
/// set's tally, by which each kept answer stands for its share of the set.
fn families(
    model: &TaskModel,
    op: Op,
    opts: &EvalOptions,
    wrong: Vec<(Question, Vec<u32>)>,
    seen: &Tally,
) -> Result<FailureFamilies, EvalError> {
    let contrast = random_questions(model.n_digits, op, FAMILY_CONTRAST, opts.seed)?;
    let p = super::predict::teacher_forced(model, &contrast, opts.batch);
    let right = contrast.iter().enumerate().filter(|(i, q)| p.correct(*i, &q.answer_tokens(model.format)));
    let mut answers: Vec<Answered> = wrong.into_iter().map(|(question, tokens)| Answered { question, tokens }).collect();
    let kept = answers.len();
    answers.extend(right.map(|(_, q)| Answered { question: *q, tokens: q.answer_tokens(model.format) }));
    let per_right = seen.correct as f64 / (answers.len() - kept).max(1) as f64;
    let per_wrong = (seen.n - seen.correct) as f64 / kept.max(1) as f64;
    let right_weight = if per_right > 0.0 && per_wrong > 0.0 { per_right / per_wrong } else { 1.0 };
    Ok(answered_families(model, &answers, &FamilyOptions { right_weight, ..FamilyOptions::default() }))
}

/// Evaluates `model` per `opts` on each operation it knows, reporting [`Event::Eval`]s.
/// With `opts.progress_file`, a random-sample evaluation saves its progress after every
/// [`SLICE`] questions and continues from saved progress; when `stop` is set, it stops cleanly
/// after the slice in progress (or between operations) with an error that says how to continue.
pub fn evaluate(model: &TaskModel, opts: &EvalOptions, stop: &Stop, progress: &mut dyn FnMut(Event)) -> Result<EvalReport, EvalError> {
    check_options(model, opts)?;
    let start = Instant::now();
    let key = PartialEval::key(model, opts);
    let saving = opts.progress_file.as_deref().filter(|_| !opts.exhaustive);
    let (found, note) = saving.map_or((None, None), |p| PartialEval::load_or_note(p, &key));
    if let Some(note) = note {
        progress(Event::Note(note));
    }
    let mut state = found.unwrap_or(PartialEval { key, ..Default::default() });
    let before = state.seconds;
    let mut save = |s: &mut PartialEval| {
        s.seconds = before + start.elapsed().as_secs_f64();
        saving.map_or(Ok(()), |p| s.save(p))
    };
    let mut total_q = 0;
    let mut ops = Vec::new();
    for &op in &model.ops {
        let r = match state.finished.iter().find(|r| r.op == op) {
            Some(r) => r.clone(),
            None if stop.requested() => {
                return Err(Stopped("stopped between operations; progress kept: run the same command again to continue".into()).into());
            }
            None => {
                let r = evaluate_op(model, op, (opts, stop), &mut state, &mut save, progress)?;
                state.finished.push(r.clone());
                save(&mut state)?;
                r
            }
        };
        total_q += r.questions + r.stratified.last().map_or(0, |row| row.n);
        ops.push(r);
    }
    if let Some(p) = saving {
        let _ = std::fs::remove_file(p);
    }
    let seconds = before + start.elapsed().as_secs_f64();
    let summary = ops.iter().flat_map(summarise).collect();
    Ok(EvalReport {
        schema: EvalReport::SCHEMA,
        model: model.name.clone(),
        n_digits: model.n_digits,
        seed: opts.seed,
        seconds,
        questions_per_s: total_q as f64 / seconds,
        ops,
        summary,
        provenance: model.provenance(&opts.provenance_options()),
    })
}

fn check_options(model: &TaskModel, opts: &EvalOptions) -> Result<(), EvalError> {
    if opts.exhaustive && model.n_digits > EXHAUSTIVE_MAX_DIGITS {
        return Err(EvalError::TooWideForExhaustive { n_digits: model.n_digits });
    }
    if !opts.exhaustive && opts.questions == 0 {
        return Err(EvalError::NoQuestions);
    }
    if opts.batch == 0 {
        return Err(EvalError::NoBatch);
    }
    Ok(())
}

fn evaluate_op(
    model: &TaskModel,
    op: Op,
    (opts, stop): (&EvalOptions, &Stop),
    state: &mut PartialEval,
    save: &mut dyn FnMut(&mut PartialEval) -> Result<(), crate::io::IoError>,
    progress: &mut dyn FnMut(Event),
) -> Result<OpReport, EvalError> {
    let n = model.n_digits;
    let label = format!("{} {}", if opts.exhaustive { "all" } else { "random" }, if op == Op::Add { "addition" } else { "subtraction" });
    let total = if opts.exhaustive { 10u64.pow(2 * n as u32) } else { opts.questions };
    let (mut done, mut random, mut top, mut wrong) = match state.current.take() {
        Some((o, done, tallies, top)) if o == op => (done, tallies, top, std::mem::take(&mut state.wrong)),
        _ => (0, ClassTallies::default(), TopLoss::new(opts.top_k), Vec::new()),
    };
    if opts.exhaustive {
        let qs = all_questions(n, op)?;
        let mut tell = |d| progress(Event::Eval { set: label.clone(), done: d, total });
        run_set(model, qs, opts.batch, (&mut random, &mut top, Some(&mut wrong)), &mut tell);
    } else {
        // Generated in slices so a million questions never sit in memory at once; each slice's
        // questions depend only on the seed and where it starts.
        while done < total {
            let count = SLICE.min(total - done);
            let qs = random_questions(n, op, count as usize, opts.seed ^ done.wrapping_mul(0x9E37_79B9_7F4A_7C15))?;
            let sinks = (&mut random, &mut top, Some(&mut wrong));
            let mut tell = |d| progress(Event::Eval { set: label.clone(), done: done + d, total });
            run_set(model, qs.into_iter(), opts.batch, sinks, &mut tell);
            done += count;
            state.current = Some((op, done, random.clone(), top.clone()));
            state.wrong = wrong.clone();
            save(state)?;
            state.current = None;
            state.wrong.clear();
            if done < total && stop.requested() {
                let kept = opts.progress_file.as_ref().map_or("nowhere (no progress file)".to_string(), |p| p.display().to_string());
                return Err(Stopped(format!(
                    "stopped after {done} of {total} {label} questions; progress kept in {kept}: run the same command again to continue"
                ))
                .into());
            }
        }
    }
    let failure_families = Some(families(model, op, opts, wrong, &random.total())?);
    let mut strat = ClassTallies::default();
    let sets = stratified_set(n, op, opts.per_class, opts.seed.wrapping_add(1))?;
    let strat_total = sets.iter().map(|(_, v)| v.len() as u64).sum();
    let mut done = 0;
    for (_, qs) in sets {
        let len = qs.len() as u64;
        let mut tell = |d| progress(Event::Eval { set: "stratified by class".into(), done: done + d, total: strat_total });
        evaluate_set(model, qs.into_iter(), opts.batch, &mut strat, &mut top, &mut tell);
        done += len;
    }
    let all = random.total();
    let names = model.format.answer_names(n);
    Ok(OpReport {
        op,
        exhaustive: opts.exhaustive,
        questions: all.n,
        failures: all.failures(),
        accuracy: all.correct as f64 / all.n.max(1) as f64,
        nines: nines(all.failures(), all.n),
        failures_per_million: all.failures() as f64 * 1e6 / all.n.max(1) as f64,
        loss_share: random.0.iter().map(|(c, t)| (c.to_string(), t.loss_sum / all.loss_sum.max(f64::MIN_POSITIVE))).collect(),
        random: random.rows(),
        stratified: strat.rows(),
        curated: curated_results(model, op)?,
        top_loss: top.describe(model.format, &names),
        failure_families,
    })
}

fn curated_results(model: &TaskModel, op: Op) -> Result<Vec<CuratedResult>, crate::task::TaskError> {
    let sets = curated(model.n_digits, op)?;
    let qs: Vec<Question> = sets.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let p = super::predict::teacher_forced(model, &qs, 256);
    let text = |toks: &[u32]| model.format.tokens_text(toks);
    let n = p.n_answer;
    Ok(qs
        .iter()
        .enumerate()
        .map(|(i, q)| CuratedResult {
            class: q.class().to_string(),
            question: q.text(),
            predicted: text(&p.argmax[i * n..(i + 1) * n]),
            correct: p.correct(i, &q.answer_tokens(model.format)),
        })
        .collect())
}

/// "17 x S5, 2 x S4, 1 x S1": the classes of the hardest questions, most frequent first.
fn class_counts(top: &[HardQuestion]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for h in top {
        match counts.iter_mut().find(|(c, _)| *c == h.class) {
            Some((_, n)) => *n += 1,
            None => counts.push((h.class.clone(), 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts.iter().map(|(c, n)| format!("{n} x {c}")).collect::<Vec<_>>().join(", ")
}

/// Findings in words: accuracy and nines, the weakest class, and where the loss sits.
pub fn summarise(r: &OpReport) -> Vec<String> {
    let op = if r.op == Op::Add { "addition" } else { "subtraction" };
    let mut v = vec![format!("{op}: {}", r.accuracy_line())];
    let classes = &r.stratified[..r.stratified.len().saturating_sub(1)];
    if classes.iter().all(|c| c.failures == 0) {
        v.push(format!(
            "{op}: every complexity class answered correctly on {} stratified questions each",
            classes.first().map_or(0, |c| c.n)
        ));
    } else if let Some(worst) = classes.iter().min_by(|a, b| a.accuracy.total_cmp(&b.accuracy)) {
        v.push(format!(
            "{op}: weakest class {} with {:.2}% correct on {} stratified questions",
            worst.class,
            100.0 * worst.accuracy,
            worst.n
        ));
    }
    if let Some(worst) = classes.iter().max_by(|a, b| a.mean_loss.total_cmp(&b.mean_loss)) {
        v.push(format!(
            "{op}: the loss sits in class {}: highest mean loss per question ({:.2e}), and {} of the {} highest-loss questions ({})",
            worst.class,
            worst.mean_loss,
            r.top_loss.iter().filter(|h| h.class == worst.class).count(),
            r.top_loss.len(),
            class_counts(&r.top_loss)
        ));
    }
    if let Some((class, share)) = r.loss_share.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        v.push(format!(
            "{op}: by frequency x loss, class {class} holds the largest share of the random questions' total loss ({:.0}%)",
            100.0 * share
        ));
    }
    if let Some(h) = r.top_loss.first() {
        v.push(format!("{op}: hardest question {}{} (class {}), answered {}", h.question, h.truth, h.class, h.predicted));
    }
    v.extend(r.failure_families.iter().flat_map(|f| f.lines(&format!("{op}: "))));
    v
}
