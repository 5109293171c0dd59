//! The training loop: fresh random questions every step, AdamW, records into training.json,
//! atomic checkpoints that resume bit-identically (the model, the checkpoint and training.json are
//! the same bytes, resumed or not; wall-clock time goes to timing.json), and a progress bar.

use super::config::TrainConfig;
use super::error::TrainError;
use super::log::{Accumulator, Record, TrainingLog};
use super::optim::AdamW;
use super::timing::{TimePoint, Timing};
use crate::io::schema::Versioned;
use crate::io::tensors::{self, TensorFile};
use crate::io::IoError;
use crate::model::file::{save_weights, ModelFile};
use crate::model::{backward, forward, loss, NoHooks, Params, Span, Targets, Workspace};
use crate::progress::{Event, Stop, Stopped};
use crate::run_folder::RunFolder;
use crate::task::generate::{Enrichment, OpMix, QuestionGenerator};
use crate::task::Question;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A training run in progress: weights, optimiser, buffers and the log.
pub struct Trainer {
    /// The run's configuration.
    pub cfg: TrainConfig,
    /// Current weights.
    pub params: Params,
    /// Optimiser state; `opt.step` is the number of steps done.
    pub opt: AdamW,
    /// Loss curves so far.
    pub log: TrainingLog,
    /// The inserted model, when the run re-imposes it.
    inserted: Option<Params>,
    shards: Vec<Shard>,
    nll: Vec<f64>,
    acc: Accumulator,
    targets: Targets,
    elapsed_before: f64,
    times: Vec<TimePoint>,
    steps_per_s: f64,
    /// The step of the checkpoint on disk that this run wrote or resumed from.
    saved_step: Option<u64>,
}

/// What a run carries from its earlier sessions: the records, the sums since the last one, and
/// the time spent (nothing for a fresh run).
#[derive(Default)]
struct Earlier {
    records: Vec<Record>,
    acc: Option<Accumulator>,
    elapsed_s: f64,
    times: Vec<TimePoint>,
    saved_step: Option<u64>,
}

/// One thread's share of a batch: rows `rows` of it, with its own buffers and gradient. Splitting
/// the batch across threads (rather than each matrix product) keeps every thread busy through
/// the many small kernels of a step; results depend only on the seed and the thread count.
struct Shard {
    rows: std::ops::Range<usize>,
    ws: Workspace,
    tokens: Vec<u32>,
    nll: Vec<f64>,
    grad: Vec<f32>,
    loss: f64,
}

impl Shard {
    fn new(cfg: &TrainConfig, rows: std::ops::Range<usize>, targets: &Targets, n_params: usize) -> Shard {
        let b = rows.len();
        Shard {
            ws: Workspace::new(&cfg.model, b, Span::predictions(targets.first, targets.n)),
            tokens: vec![0; b * cfg.model.n_ctx],
            nll: vec![0.0; b * targets.n],
            grad: vec![0.0; n_params],
            loss: 0.0,
            rows,
        }
    }

    /// Forward, loss and backward of this shard's questions.
    fn run(&mut self, p: &Params, questions: &[Question], fmt: crate::task::Format, targets: &Targets) {
        let n_ctx = p.config.n_ctx;
        for (q, row) in questions[self.rows.clone()].iter().zip(self.tokens.chunks_exact_mut(n_ctx)) {
            q.write_tokens(fmt, row);
        }
        forward(p, &self.tokens, n_ctx, &mut self.ws, &mut NoHooks);
        self.loss = loss(&mut self.ws, &self.tokens, n_ctx, p.config.d_vocab_out, targets, &mut self.nll, true);
        self.grad.fill(0.0);
        if self.loss.is_finite() {
            backward(p, &self.tokens, n_ctx, &mut self.ws, &mut self.grad);
        }
    }
}

/// Splits `batch` rows into `n` nearly equal contiguous shards.
fn shard_rows(batch: usize, n: usize) -> Vec<std::ops::Range<usize>> {
    let n = n.clamp(1, batch.max(1));
    (0..n).map(|i| (i * batch / n)..((i + 1) * batch / n)).collect()
}

/// The questions of step `step`: a pure function of the data seed and the step, so a resumed
/// run sees exactly the batches an uninterrupted one would.
pub fn batch_for_step(cfg: &TrainConfig, step: u64) -> Vec<Question> {
    let t = &cfg.task;
    let seed = cfg.data_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut g = QuestionGenerator::new(
        t.n_digits,
        seed,
        OpMix { sub_share: t.sub_share },
        Enrichment { batch_share: t.add_enrich_batches, digit_share: t.add_enrich_digits },
        Enrichment { batch_share: t.sub_enrich_batches, digit_share: t.sub_enrich_digits },
    )
    .expect("a validated config makes a valid generator");
    g.next_batch(cfg.batch_size)
}

impl Trainer {
    /// A fresh run with TransformerLens-initialised weights.
    pub fn new(cfg: TrainConfig) -> Result<Trainer, TrainError> {
        cfg.validate()?;
        let mut params = Params::init(&cfg.model);
        let from = cfg.insert.as_ref().map(|_| load_inserted(&cfg)).transpose()?;
        if let Some(from) = &from {
            super::insert::insert(from, &mut params)?;
        }
        let opt = AdamW::new(cfg.optim.clone(), params.data.len());
        Ok(Self::with_state(cfg, params, opt, Earlier::default(), from))
    }

    fn with_state(cfg: TrainConfig, params: Params, opt: AdamW, earlier: Earlier, inserted: Option<Params>) -> Trainer {
        // Kept only when the run re-imposes it.
        let inserted = inserted.filter(|_| cfg.insert.as_ref().is_some_and(|i| i.every > 0));
        let (n, fmt) = (cfg.task.n_digits, cfg.task.format);
        let targets = Targets { first: fmt.answer_start(n) - 1, n: fmt.n_answer(n) };
        let shards = shard_rows(cfg.batch_size, rayon::current_num_threads())
            .into_iter()
            .map(|r| Shard::new(&cfg, r, &targets, params.data.len()))
            .collect();
        let log = TrainingLog {
            config: cfg.clone(),
            answer_names: fmt.answer_names(n),
            records: earlier.records,
            threads: rayon::current_num_threads(),
            model_sha256: None,
        };
        Trainer {
            inserted,
            nll: vec![0.0; cfg.batch_size * targets.n],
            acc: earlier.acc.filter(|a| a.fits(targets.n)).unwrap_or_else(|| Accumulator::new(targets.n)),
            shards,
            targets,
            elapsed_before: earlier.elapsed_s,
            times: earlier.times,
            steps_per_s: 0.0,
            saved_step: earlier.saved_step,
            cfg,
            params,
            opt,
            log,
        }
    }

    /// Distinct (token, position) pairs in the last step's batch (see `Workspace::layer0_pairs`).
    pub fn layer0_pairs(&self) -> Option<usize> {
        self.shards.iter().map(|s| s.ws.layer0_pairs()).sum()
    }

    /// Steps done so far.
    pub fn step_count(&self) -> u64 {
        self.opt.step
    }

    /// Training steps per second in this session so far.
    pub fn steps_per_s(&self) -> f64 {
        self.steps_per_s
    }

    /// One optimiser step on a fresh batch; returns the batch's loss, or an error if the loss
    /// is not finite (the weights are then left as they were before the step), which numbers
    /// the step from 1 as every other message does.
    pub fn step(&mut self) -> Result<f64, TrainError> {
        let questions = batch_for_step(&self.cfg, self.opt.step);
        self.step_on(&questions)
    }

    /// One optimiser step on the given batch instead of the run's own (`batch_size` questions of
    /// its task): lets tests replay batches recorded elsewhere, e.g. by TransformerLens.
    pub fn step_on(&mut self, questions: &[Question]) -> Result<f64, TrainError> {
        if questions.len() != self.cfg.batch_size {
            return Err(TrainError::BatchSize { expected: self.cfg.batch_size, given: questions.len() });
        }
        let step = self.opt.step;
        let fmt = self.cfg.task.format;
        let (params, targets) = (&self.params, &self.targets);
        self.shards.par_iter_mut().for_each(|s| s.run(params, questions, fmt, targets));
        let batch = questions.len() as f64;
        let l: f64 = self.shards.iter().map(|s| s.loss * s.rows.len() as f64 / batch).sum();
        if !l.is_finite() {
            return Err(TrainError::Diverged { loss: l, step: step + 1, steps: self.cfg.steps, kept: None });
        }
        let n = self.targets.n;
        for s in &self.shards {
            self.nll[s.rows.start * n..s.rows.end * n].copy_from_slice(&s.nll);
        }
        let lr = self.cfg.optim.lr * self.cfg.schedule.factor(step);
        let (first, rest) = self.shards.split_first_mut().expect("at least one shard");
        if !rest.is_empty() {
            combine_gradients(first, rest, batch);
        }
        self.opt.step(&mut self.params.data, &first.grad, lr);
        if let (Some(from), Some(ins)) = (&self.inserted, &self.cfg.insert) {
            if self.opt.step.is_multiple_of(ins.every) {
                super::insert::reimpose(from, &mut self.params, ins.mlps);
            }
        }
        self.acc.add(questions, fmt, &self.nll, l);
        Ok(l)
    }

    /// Trains to `cfg.steps`, writing records, checkpoints and finally the model into `dir`,
    /// reporting each step as an [`Event::Train`]. After the first step that ends with `stop`
    /// set, it saves a checkpoint and stops with an error that says how to continue (the command
    /// line sets it on Ctrl-C or SIGTERM). A run resumed from there writes the same files, byte
    /// for byte, as one never stopped (the checkpoint holds the sums the next loss record
    /// averages).
    pub fn train(&mut self, dir: &Path, stop: &Stop, progress: &mut dyn FnMut(Event)) -> Result<(), TrainError> {
        self.train_until(dir, self.cfg.steps, stop, progress)?;
        self.save_model(&RunFolder::new(dir))
    }

    /// Trains until `until` steps are done (as if interrupted there), with records and
    /// checkpoints; see [`Trainer::train`].
    pub fn train_until(&mut self, dir: &Path, until: u64, stop: &Stop, progress: &mut dyn FnMut(Event)) -> Result<(), TrainError> {
        let run = RunFolder::new(dir);
        let start = Instant::now();
        let first = self.opt.step;
        while self.opt.step < until.min(self.cfg.steps) {
            if let Err(e) = self.step() {
                return Err(match e {
                    TrainError::Diverged { loss, step, steps, .. } => {
                        TrainError::Diverged { loss, step, steps, kept: Some(self.kept(&run)) }
                    }
                    other => other,
                });
            }
            let step = self.opt.step;
            let elapsed = self.elapsed_before + start.elapsed().as_secs_f64();
            self.steps_per_s = (step - first) as f64 / start.elapsed().as_secs_f64().max(1e-9);
            if step.is_multiple_of(self.cfg.log_every) || step == self.cfg.steps {
                let lr = self.cfg.optim.lr * self.cfg.schedule.factor(step - 1);
                self.log.records.push(self.acc.take(step, lr));
                self.times.push(TimePoint { step, elapsed_s: elapsed });
            }
            let checkpoint = step.is_multiple_of(self.cfg.checkpoint_every) || step == self.cfg.steps;
            if checkpoint {
                self.save_checkpoint(&run, elapsed)?;
            }
            progress(Event::Train { step, steps: self.cfg.steps, loss: self.last_loss(), steps_per_s: self.steps_per_s });
            if step < self.cfg.steps && stop.requested() {
                if !checkpoint {
                    self.save_checkpoint(&run, elapsed)?;
                }
                return Err(TrainError::Stopped(Stopped(format!(
                    "stopped after step {step} of {}: checkpoint saved in {}; continue with --resume",
                    self.cfg.steps,
                    dir.display()
                ))));
            }
        }
        Ok(())
    }

    /// What of this run is on disk in `dir` after a failed step: the checkpoint it wrote (or
    /// resumed from), or nothing.
    fn kept(&self, run: &RunFolder) -> String {
        let path = run.checkpoint();
        match self.saved_step {
            Some(s) => format!("the checkpoint of step {s} is kept in {}", path.display()),
            None => {
                let earlier = if path.exists() { format!("; {} is an earlier run's", path.display()) } else { String::new() };
                format!(
                    "nothing of this run was saved (its first checkpoint was due at step {}){earlier}",
                    self.cfg.checkpoint_every.min(self.cfg.steps)
                )
            }
        }
    }

    /// The last record's loss, if any.
    pub fn last_loss(&self) -> Option<f64> {
        self.log.records.last().map(|r| r.loss)
    }

    /// The model file: weights plus the task it answers (`n_digits`, `format`, `ops`) and the
    /// training config.
    pub fn model_file(&self) -> ModelFile {
        ModelFile { params: self.params.clone(), metadata: self.metadata() }
    }

    /// The model file's (and checkpoint's) metadata: the task, the training config and steps
    /// done, and for a run started from another model by insertion, that model's SHA-256.
    fn metadata(&self) -> std::collections::BTreeMap<String, String> {
        let t = &self.cfg.task;
        let ops: Vec<&str> = t.ops().iter().map(|o| if *o == crate::task::Op::Add { "add" } else { "sub" }).collect();
        let metadata = [
            ("n_digits", t.n_digits.to_string()),
            ("format", t.format.name().to_string()),
            ("ops", ops.join(",")),
            ("name", self.cfg.name.clone()),
            ("train_config", serde_json::to_string(&self.cfg).expect("config serialises")),
            ("steps_done", self.opt.step.to_string()),
        ];
        let mut metadata: std::collections::BTreeMap<String, String> = metadata.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        // Provenance of a run started from another model: that model file's hash.
        if let Some(ins) = &self.cfg.insert {
            if let Ok(sha) = crate::provenance::sha256_file(&crate::task_model::model_path(&ins.from)) {
                metadata.insert("insert_from_sha256".into(), sha);
            }
        }
        metadata
    }

    /// Writes DIR/model.safetensors and a training.json that records its hash: the model goes
    /// to a temporary file first, training.json names its hash, then the model is renamed into
    /// place. A model already there stays whole and usable until the new one is complete.
    fn save_model(&mut self, run: &RunFolder) -> Result<(), TrainError> {
        let path = run.model();
        let tmp = run.file(&format!(".{}.{}.tmp", crate::run_folder::files::MODEL, std::process::id()));
        save_weights(&self.params, &self.metadata(), &[], &tmp)?;
        let result = (|| {
            self.log.model_sha256 = Some(crate::provenance::sha256_file(&tmp)?);
            self.log.save(&run.training())?;
            std::fs::rename(&tmp, &path).map_err(|source| IoError::Write { path: path.clone(), source }.into())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Writes training.json, the checkpoint (weights, optimiser state, and the sums of the loss
    /// record in progress) and timing.json. Wall-clock time goes only into timing.json, so the
    /// first two are the same bytes for the same step, resumed or not.
    fn save_checkpoint(&mut self, run: &RunFolder, elapsed: f64) -> Result<(), TrainError> {
        let mut meta = self.metadata();
        let sums = serde_json::to_string(&self.acc)
            .map_err(|e| TrainError::Checkpoint { path: run.checkpoint(), problem: format!("cannot record the loss sums: {e}") })?;
        meta.insert(LOG_SUMS.into(), sums);
        let mut optim = self.params.refs("optim.m.", &self.opt.m);
        optim.extend(self.params.refs("optim.v.", &self.opt.v));
        // training.json first: a checkpoint never points past the records on disk.
        self.log.save(&run.training())?;
        save_weights(&self.params, &meta, &optim, &run.checkpoint())?;
        self.saved_step = Some(self.opt.step);
        let timing = Timing {
            step: self.opt.step,
            elapsed_s: elapsed,
            steps_per_s: self.steps_per_s,
            threads: rayon::current_num_threads(),
            records: self.times.clone(),
        };
        Ok(timing.save(run.dir())?)
    }

    /// Continues the run whose checkpoint is in `dir`; `cfg` must match the checkpoint's config
    /// except for the number of steps. training.json is read schema-checked: one of another
    /// version is refused, and nothing is written.
    pub fn resume(dir: &Path, cfg: Option<TrainConfig>) -> Result<Trainer, TrainError> {
        let run = RunFolder::new(dir);
        let path = run.checkpoint();
        let bad = |problem: String| TrainError::Checkpoint { path: path.clone(), problem };
        let mut f: TensorFile = tensors::load(&path).map_err(TrainError::Resume)?;
        let saved = f.metadata.get("train_config").ok_or_else(|| bad("the checkpoint has no train_config".into()))?;
        let saved: TrainConfig = serde_json::from_str(saved).map_err(|e| bad(format!("bad train_config: {e}")))?;
        saved.validate().map_err(|e| bad(format!("bad train_config: {e}")))?;
        let cfg = match cfg {
            Some(c) if TrainConfig { steps: saved.steps, schedule: saved.schedule.clone(), ..c.clone() } != saved => {
                return Err(TrainError::ConfigChanged { dir: dir.to_path_buf() });
            }
            Some(c) => c,
            None => saved,
        };
        let step: u64 =
            f.metadata.get("steps_done").and_then(|s| s.parse().ok()).ok_or_else(|| bad("the checkpoint has no steps_done".into()))?;
        let log = TrainingLog::load(&run.training())?;
        // Checkpoints from before timing.json held the seconds themselves.
        let timing = Timing::load(dir).unwrap_or_default();
        let elapsed: f64 = f.metadata.get("elapsed_s").and_then(|s| s.parse().ok()).unwrap_or_else(|| timing.elapsed_at(step));
        let times = timing.records.into_iter().filter(|t| t.step <= step).collect();
        // Checkpoints from before the sums were kept start the record in progress afresh.
        let acc = match f.metadata.get(LOG_SUMS) {
            Some(json) => Some(serde_json::from_str(json).map_err(|e| bad(format!("bad {LOG_SUMS}: {e}")))?),
            None => None,
        };
        let mut opt = AdamW::new(cfg.optim.clone(), 0);
        read_moments(&mut f, &cfg, &mut opt).map_err(bad)?;
        opt.step = step;
        let model = ModelFile::from_tensor_file(f, &path.display().to_string())?;
        if model.params.config != cfg.model {
            return Err(bad("the weights' config differs from the run's train_config: the checkpoint is damaged".into()));
        }
        let records = log.records.into_iter().filter(|r| r.step <= step).collect();
        let inserted = match &cfg.insert {
            Some(ins) if ins.every > 0 => Some(load_inserted(&cfg)?),
            _ => None,
        };
        let earlier = Earlier { records, acc, elapsed_s: elapsed, times, saved_step: Some(step) };
        Ok(Self::with_state(cfg, model.params, opt, earlier, inserted))
    }
}

/// AdamW's two moments from a checkpoint's `optim.m.*` and `optim.v.*` tensors (taken out of
/// `f`); an error names the tensor missing or of the wrong size.
fn read_moments(f: &mut TensorFile, cfg: &TrainConfig, opt: &mut AdamW) -> Result<(), String> {
    let layout = crate::model::params::ParamLayout::new(&cfg.model);
    for (prefix, buf) in [("optim.m.", &mut opt.m), ("optim.v.", &mut opt.v)] {
        *buf = vec![0.0; layout.total];
        for e in &layout.entries {
            let t = f.tensors.remove(&format!("{prefix}{}", e.name)).ok_or_else(|| format!("the checkpoint lacks {prefix}{}", e.name))?;
            if t.data.len() != e.range.len() {
                return Err(format!("{prefix}{} holds {} values but the config needs {}", e.name, t.data.len(), e.range.len()));
            }
            buf[e.range.clone()].copy_from_slice(&t.data);
        }
    }
    Ok(())
}

/// The batch gradient into `first.grad`: the shards' mean gradients weighted by their share of
/// the batch.
fn combine_gradients(first: &mut Shard, rest: &[Shard], batch: f64) {
    const CHUNK: usize = 1 << 14;
    let w0 = (first.rows.len() as f64 / batch) as f32;
    first.grad.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
        let range = c * CHUNK..c * CHUNK + o.len();
        o.iter_mut().for_each(|g| *g *= w0);
        for s in rest {
            let w = (s.rows.len() as f64 / batch) as f32;
            o.iter_mut().zip(&s.grad[range.clone()]).for_each(|(o, g)| *o += w * g);
        }
    });
}

/// The model a run inserts, checked to answer the same task format and width.
fn load_inserted(cfg: &TrainConfig) -> Result<Params, TrainError> {
    let ins = cfg.insert.as_ref().expect("called for insertion runs");
    let insert = |problem| TrainError::Insert { from: ins.from.clone(), problem };
    let m = crate::task_model::TaskModel::load(&ins.from).map_err(|e| insert(format!("{e} (train it first, or set insert.from=PATH)")))?;
    if m.format != cfg.task.format || m.n_digits != cfg.task.n_digits {
        return Err(insert(format!(
            "it answers {}-digit {} questions, the run trains on {}-digit {} questions",
            m.n_digits,
            m.format.name(),
            cfg.task.n_digits,
            cfg.task.format.name()
        )));
    }
    Ok(m.params)
}

/// The checkpoint's metadata entry with the sums of the loss record in progress (JSON).
const LOG_SUMS: &str = "log_sums";

/// The default run folder of a config: `runs/<name>`.
pub fn default_run_dir(cfg: &TrainConfig) -> PathBuf {
    PathBuf::from("runs").join(&cfg.name)
}
