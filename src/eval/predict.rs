//! Getting answers out of a model: real autoregressive greedy decoding (what `ask` shows), and
//! teacher-forced prediction (one pass over question + true answer), which decides correctness
//! exactly as greedy decoding would: greedy decoding reproduces the true answer if and only if
//! every answer token is the argmax when the true previous tokens are fed.

use crate::model::{forward, loss, NoHooks, Span, Targets, Workspace};
use crate::task::Question;
use crate::task_model::TaskModel;

/// Teacher-forced results for a list of questions, `n_answer` entries per question.
#[derive(Clone, Debug, Default)]
pub struct Predictions {
    /// Answer tokens per question.
    pub n_answer: usize,
    /// The model's argmax token at each answer position.
    pub argmax: Vec<u32>,
    /// Negative log-likelihood of the true token at each answer position.
    pub nll: Vec<f64>,
}

impl Predictions {
    /// Whether question `i` is answered correctly (every argmax equals the true token).
    pub fn correct(&self, i: usize, true_tokens: &[u32]) -> bool {
        self.argmax[i * self.n_answer..(i + 1) * self.n_answer] == *true_tokens
    }
}

/// Index of the largest value (the first one on ties, as torch.argmax).
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0
}

/// Reusable buffers for teacher-forced passes over batches of up to `batch` questions. One-layer
/// models go through the exact table-based fast path (`one_layer`), others through the
/// transformer pass (`model::forward`), which splits each batch into passes of [`LANE`] questions run in
/// parallel.
pub struct Predictor<'m> {
    model: &'m TaskModel,
    batch: usize,
    /// The transformer pass's buffers per [`LANE`] questions of the batch, made on first use (the
    /// fast path rarely needs them).
    lanes: Vec<Lane>,
    targets: Targets,
    fast: Option<super::one_layer::OneLayerTables>,
    /// Questions whose near-tie logits were re-decided by the transformer pass.
    pub rechecked: u64,
}

impl<'m> Predictor<'m> {
    /// Buffers for batches of `batch` questions, with the one-layer fast path where it applies.
    pub fn new(model: &'m TaskModel, batch: usize) -> Predictor<'m> {
        let mut p = Self::transformer(model, batch);
        let span = Span::predictions(p.targets.first, p.targets.n);
        p.fast = super::one_layer::OneLayerTables::new(&model.params, span.t, span.q0);
        p
    }

    /// The transformer pass (`model::forward`) only (what hooked passes compare against; no tables built).
    pub fn transformer(model: &'m TaskModel, batch: usize) -> Predictor<'m> {
        let targets = Targets { first: model.answer_start() - 1, n: model.n_answer() };
        Predictor { model, batch, lanes: Vec::new(), targets, fast: None, rechecked: 0 }
    }

    /// Predicts `questions` (at most the batch size), appending to `out`.
    pub fn run(&mut self, questions: &[Question], out: &mut Predictions) {
        let Some(fast) = &self.fast else { return self.run_transformer(questions, out) };
        let r = fast.predict(&self.model.params, self.model.format, questions);
        let (start, n) = (out.argmax.len(), self.targets.n);
        out.n_answer = n;
        out.argmax.extend(r.argmax);
        out.nll.extend(r.nll);
        if r.near_ties.is_empty() {
            return;
        }
        let tied: Vec<Question> = r.near_ties.iter().map(|&i| questions[i]).collect();
        let mut exact = Predictions::default();
        for chunk in tied.chunks(self.batch) {
            self.run_transformer(chunk, &mut exact);
        }
        for (k, &i) in r.near_ties.iter().enumerate() {
            let (dst, src) = (start + i * n..start + (i + 1) * n, k * n..(k + 1) * n);
            out.argmax[dst.clone()].copy_from_slice(&exact.argmax[src.clone()]);
            out.nll[dst].copy_from_slice(&exact.nll[src]);
        }
        self.rechecked += tied.len() as u64;
    }

    /// Predicts any number of questions, batch by batch.
    pub fn run_all(&mut self, questions: &[Question], out: &mut Predictions) {
        for chunk in questions.chunks(self.batch) {
            self.run(chunk, out);
        }
    }

    /// Predicts `questions` with the transformer pass (`model::forward`), [`LANE`] questions per parallel pass.
    pub fn run_transformer(&mut self, questions: &[Question], out: &mut Predictions) {
        use rayon::prelude::*;
        assert!(questions.len() <= self.batch, "more questions than the batch holds");
        if self.lanes.is_empty() {
            let size = self.batch.min(LANE);
            let span = Span::predictions(self.targets.first, self.targets.n);
            self.lanes = (0..self.batch.div_ceil(size)).map(|_| Lane::new(&self.model.params.config, size, span)).collect();
        }
        let size = self.lanes[0].ws.batch;
        let (model, targets) = (self.model, &self.targets);
        let shares: Vec<Predictions> =
            self.lanes.par_iter_mut().zip(questions.par_chunks(size)).map(|(lane, qs)| lane.run(model, targets, qs)).collect();
        out.n_answer = targets.n;
        for share in shares {
            out.argmax.extend(share.argmax);
            out.nll.extend(share.nll);
        }
    }
}

/// Questions per transformer pass: a batch is split into passes of this size run in parallel, each
/// pass's products on one thread, and small passes keep their activations in the cores' caches.
/// Measurements of the pass size: docs/speed.md (Evaluation speed).
pub const LANE: usize = 128;

/// One pass's buffers for the transformer pass over up to `ws.batch` questions.
struct Lane {
    ws: Workspace,
    tokens: Vec<u32>,
    nll: Vec<f64>,
}

impl Lane {
    fn new(c: &crate::model::ModelConfig, batch: usize, span: Span) -> Lane {
        Lane { ws: Workspace::new(c, batch, span), tokens: Vec::new(), nll: Vec::new() }
    }

    /// Teacher-forced predictions of `questions` (at most the lane's batch; the rest of the
    /// batch is padded with the first question and ignored).
    fn run(&mut self, model: &TaskModel, targets: &Targets, questions: &[Question]) -> Predictions {
        let (n_ctx, b, n) = (model.params.config.n_ctx, self.ws.batch, targets.n);
        self.tokens.resize(b * n_ctx, 0);
        self.nll.resize(b * n, 0.0);
        for (i, row) in self.tokens.chunks_exact_mut(n_ctx).enumerate() {
            let q = questions.get(i).unwrap_or(&questions[0]);
            q.write_tokens(model.format, &mut row[..model.n_ctx()]);
        }
        let ws = &mut self.ws;
        forward(&model.params, &self.tokens, n_ctx, ws, &mut NoHooks);
        let v = model.params.config.d_vocab_out;
        loss(ws, &self.tokens, n_ctx, v, targets, &mut self.nll, false);
        let mut out = Predictions { n_answer: n, argmax: Vec::with_capacity(questions.len() * n), nll: Vec::new() };
        let tq = ws.span.tq();
        let off = targets.first - ws.span.q0;
        for i in 0..questions.len() {
            for d in 0..n {
                let r = (i * tq + off + d) * v;
                out.argmax.push(argmax(&ws.logits[r..r + v]) as u32);
            }
        }
        out.nll.extend_from_slice(&self.nll[..questions.len() * n]);
        out
    }
}

/// Teacher-forced predictions for any number of questions, in batches of `batch`.
pub fn teacher_forced(model: &TaskModel, questions: &[Question], batch: usize) -> Predictions {
    let mut out = Predictions::default();
    Predictor::new(model, batch.min(questions.len()).max(1)).run_all(questions, &mut out);
    out
}

/// Teacher-forced predictions through the transformer pass (`model::forward`) only (no one-layer tables):
/// the baseline that hooked passes, which always take the transformer pass, compare against.
pub fn teacher_forced_transformer(model: &TaskModel, questions: &[Question], batch: usize) -> Predictions {
    let mut out = Predictions::default();
    Predictor::transformer(model, batch.min(questions.len()).max(1)).run_all(questions, &mut out);
    out
}

/// Greedy autoregressive decoding: feeds each question, appends the argmax token, and repeats
/// until the answer is complete. Returns each question's answer tokens and, per answer token,
/// the probability the model gave it.
pub fn greedy(model: &TaskModel, questions: &[Question]) -> Vec<(Vec<u32>, Vec<f32>)> {
    let c = &model.params.config;
    let (n_ctx, start, n) = (c.n_ctx, model.answer_start(), model.n_answer());
    let b = questions.len();
    let mut tokens = vec![0u32; b * n_ctx];
    for (q, row) in questions.iter().zip(tokens.chunks_exact_mut(n_ctx)) {
        q.write_tokens(model.format, &mut row[..model.n_ctx()]);
        row[start..].fill(0);
    }
    let mut out = vec![(Vec::with_capacity(n), Vec::with_capacity(n)); b];
    for s in 0..n {
        let t = start + s;
        let mut ws = Workspace::new(c, b, Span { t, q0: t - 1 });
        forward(&model.params, &tokens, n_ctx, &mut ws, &mut NoHooks);
        for (i, o) in out.iter_mut().enumerate() {
            let row = &ws.logits[i * c.d_vocab_out..(i + 1) * c.d_vocab_out];
            let tok = argmax(row);
            let max = row[tok];
            let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
            tokens[i * n_ctx + t] = tok as u32;
            o.0.push(tok as u32);
            o.1.push(1.0 / sum);
        }
    }
    out
}
