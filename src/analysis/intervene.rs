//! The intervention engine: hooks that zero, mean-ablate, patch (replace with another question's
//! activation) or scale an activation at chosen positions and heads (or neurons), any number at
//! once, and a runner that returns teacher-forced answers and per-digit losses under them.
//!
//! Interventions apply to hook points whose position axis is axis 1 (everything except
//! `hook_attn_scores` / `hook_pattern`). Runs use [`Span::predictions`]: the last layer computes
//! only the answer-predicting positions, so an intervention there at an earlier position is a
//! no-op, exactly as it would be in a full pass (those rows cannot reach the answer logits).
//! A sweep over many interventions on one question list makes a [`Prefix`] (the clean input of
//! every later block) once, and each pass then starts at the first block it touches.

use crate::eval::predict::{argmax, Predictions};
use crate::model::{forward, forward_blocks, loss, Cache, HookPoint, HookTensor, Hooks, Span, Targets, Workspace};
use crate::task::Question;
use crate::task_model::TaskModel;

/// Which features of a position's activation an intervention touches.
#[derive(Clone, Debug, PartialEq)]
pub enum Units {
    /// The whole activation at the position.
    All,
    /// These heads of a `[.., head, d_head]` hook (hook_q/k/v/z).
    Heads(Vec<usize>),
    /// These single features (MLP neurons of hook_pre/hook_post, or residual dimensions).
    Neurons(Vec<usize>),
}

/// Stored activations of one hook for a range of positions: `[rows, npos, feat]`, where `feat`
/// is the product of the hook's trailing dimensions. One row broadcasts to every question.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// Questions stored (1 for a mean).
    pub rows: usize,
    /// First absolute position stored.
    pub pos0: usize,
    /// Number of positions stored.
    pub npos: usize,
    /// Features per position.
    pub feat: usize,
    /// Values, row-major `[rows, npos, feat]`.
    pub data: Vec<f32>,
}

impl Stored {
    /// The stored features of question `row` at absolute position `pos`, if stored.
    pub fn at(&self, row: usize, pos: usize) -> Option<&[f32]> {
        let row = if self.rows == 1 { 0 } else { row };
        if row >= self.rows || pos < self.pos0 || pos >= self.pos0 + self.npos {
            return None;
        }
        let o = (row * self.npos + pos - self.pos0) * self.feat;
        Some(&self.data[o..o + self.feat])
    }

    /// The mean over rows (a one-row `Stored`).
    pub fn mean(&self) -> Stored {
        let per = self.npos * self.feat;
        let mut data = vec![0.0f64; per];
        for r in self.data.chunks_exact(per) {
            data.iter_mut().zip(r).for_each(|(a, &b)| *a += b as f64);
        }
        let n = self.rows.max(1) as f64;
        Stored { rows: 1, data: data.iter().map(|v| (v / n) as f32).collect(), ..*self }
    }
}

/// What to do to the selected values.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Set to 0.
    Zero,
    /// Multiply by a factor.
    Scale(f32),
    /// Replace by stored values: a mean (one row, broadcast) or, per question, another
    /// question's activation (activation patching).
    Replace(Stored),
}

/// One intervention: an action at a hook point, restricted to positions and units.
#[derive(Clone, Debug, PartialEq)]
pub struct Intervention {
    /// Hook point (position axis 1).
    pub point: HookPoint,
    /// Absolute positions; `None` means every position.
    pub positions: Option<Vec<usize>>,
    /// Heads or neurons.
    pub units: Units,
    /// What to do.
    pub action: Action,
}

impl Intervention {
    /// Zero ablation.
    pub fn zero(point: HookPoint, positions: Option<Vec<usize>>, units: Units) -> Intervention {
        Intervention { point, positions, units, action: Action::Zero }
    }

    /// Mean ablation with a precomputed mean (see [`mean_activation`]).
    pub fn mean(point: HookPoint, positions: Option<Vec<usize>>, units: Units, mean: Stored) -> Intervention {
        assert_eq!(mean.rows, 1, "a mean has one row");
        Intervention { point, positions, units, action: Action::Replace(mean) }
    }

    /// Activation patching: question i of the batch gets row i of `source`.
    pub fn patch(point: HookPoint, positions: Option<Vec<usize>>, units: Units, source: Stored) -> Intervention {
        Intervention { point, positions, units, action: Action::Replace(source) }
    }

    /// Scaling by `factor`.
    pub fn scale(point: HookPoint, positions: Option<Vec<usize>>, units: Units, factor: f32) -> Intervention {
        Intervention { point, positions, units, action: Action::Scale(factor) }
    }

    fn apply(&self, t: &mut HookTensor, row0: usize) {
        assert_eq!(self.point.pos_axis(), 1, "interventions need a hook with the position axis second, not {}", self.point.name());
        let (b, np) = (t.shape[0], t.shape[1]);
        let feat: usize = t.shape[2..].iter().product();
        let head_dim = if t.shape.len() == 4 { t.shape[3] } else { 1 };
        let ranges: Vec<std::ops::Range<usize>> = match &self.units {
            Units::All => std::iter::once(0..feat).collect(),
            Units::Heads(hs) => hs.iter().map(|&h| h * head_dim..(h + 1) * head_dim).collect(),
            Units::Neurons(ns) => ns.iter().map(|&n| n..n + 1).collect(),
        };
        let all: Vec<usize>;
        let positions = match &self.positions {
            Some(p) => p,
            None => {
                all = (t.pos_offset..t.pos_offset + np).collect();
                &all
            }
        };
        for &pos in positions {
            if pos < t.pos_offset || pos >= t.pos_offset + np {
                continue;
            }
            for bi in 0..b {
                let o = (bi * np + pos - t.pos_offset) * feat;
                let row = &mut t.data[o..o + feat];
                match &self.action {
                    Action::Zero => ranges.iter().for_each(|r| row[r.clone()].fill(0.0)),
                    Action::Scale(f) => ranges.iter().for_each(|r| row[r.clone()].iter_mut().for_each(|v| *v *= f)),
                    Action::Replace(s) => {
                        assert_eq!(
                            s.feat,
                            feat,
                            "stored activation has {} features per position, hook {} has {feat}",
                            s.feat,
                            self.point.name()
                        );
                        if let Some(src) = s.at(row0 + bi, pos) {
                            ranges.iter().for_each(|r| row[r.clone()].copy_from_slice(&src[r.clone()]));
                        }
                    }
                }
            }
        }
    }
}

/// A set of interventions applied together, as a [`Hooks`]. `row0` is the index, in the whole
/// question list, of the current batch's first question (the runner sets it), so patches pick
/// the right source rows.
#[derive(Clone, Debug, Default)]
pub struct Interventions {
    /// The interventions, applied in order at their hook points.
    pub list: Vec<Intervention>,
    /// First question of the current batch.
    pub row0: usize,
}

impl Interventions {
    /// These interventions.
    pub fn new(list: Vec<Intervention>) -> Interventions {
        Interventions { list, row0: 0 }
    }

    /// The first block any intervention touches (the embeddings count as block 0, `ln_final` as
    /// the last block): the blocks before it compute exactly what a clean pass does.
    pub fn first_block(&self, n_layers: usize) -> usize {
        let block = |p: HookPoint| match p {
            HookPoint::Embed | HookPoint::PosEmbed => 0,
            _ => p.layer().unwrap_or(n_layers - 1),
        };
        self.list.iter().map(|iv| block(iv.point)).min().unwrap_or(n_layers - 1)
    }

    /// The first position any intervention touches (0 when one covers every position): causal
    /// attention leaves every earlier position as a clean pass computes it.
    pub fn first_position(&self) -> usize {
        let first = |iv: &Intervention| iv.positions.as_ref().map_or(0, |ps| ps.iter().copied().min().unwrap_or(usize::MAX));
        self.list.iter().map(first).min().unwrap_or(0)
    }
}

impl Hooks for Interventions {
    fn call(&mut self, point: HookPoint, mut t: HookTensor) {
        for iv in self.list.iter().filter(|iv| iv.point == point) {
            iv.apply(&mut t, self.row0);
        }
    }
}

/// The span the runner uses: just the answer-predicting positions in the last layer.
pub fn answer_span(model: &TaskModel) -> Span {
    Span::predictions(model.answer_start() - 1, model.n_answer())
}

/// The clean `hook_resid_pre` of every block after the first, for one question list. A pass
/// whose interventions all sit in block l or later starts from block l's input instead of
/// recomputing blocks 0..l ([`predict_from`]): the same answers, and a multi-layer ablation
/// sweep does a fraction of the work.
pub struct Prefix {
    /// Questions covered.
    rows: usize,
    /// Block l's input is `resid[l - 1]`, `[rows, t, d_model]`.
    resid: Vec<Stored>,
}

impl Prefix {
    /// Runs `questions` once (batches of `batch`) and keeps each later block's input.
    pub fn new(model: &TaskModel, questions: &[Question], batch: usize) -> Prefix {
        let nl = model.params.config.n_layers;
        let t = answer_span(model).t;
        let points: Vec<HookPoint> = (1..nl).map(HookPoint::ResidPre).collect();
        let resid = if points.is_empty() {
            Vec::new()
        } else {
            let mut grab = Grab::new(points, questions.len(), 0, t);
            run_batches(model, questions, batch, &mut grab, |h, r| h.cur = r, 0..nl, None);
            grab.out
        };
        Prefix { rows: questions.len(), resid }
    }

    /// Writes the clean input of `blocks` (from block 1 on) for questions `row0..row0 + batch`
    /// into `ws` (rows past the end repeat the first, as the runner pads its last batch): a pass
    /// starting at block l needs l's input, and one that skips the rows before its first
    /// intervened position ([`Workspace::set_first_row`]) needs them clean in every later block.
    fn load(&self, blocks: std::ops::Range<usize>, row0: usize, ws: &mut Workspace) {
        for block in blocks.start.max(1)..blocks.end {
            let s = &self.resid[block - 1];
            let per = s.npos * s.feat;
            for (i, dst) in ws.resid_pre_mut(block).chunks_exact_mut(per).enumerate() {
                let q = if row0 + i < self.rows { row0 + i } else { row0 };
                dst.copy_from_slice(&s.data[q * per..(q + 1) * per]);
            }
        }
    }
}

/// Runs `questions` in batches of `batch` through `blocks` of the model with `hooks` (row0 is
/// kept up to date by `set_row0`), returning teacher-forced argmax answers and per-digit losses
/// when the blocks reach the logits (empty predictions otherwise). With a `prefix` (made for
/// `questions`), a range starting after block 0 reads its input from it, and every block but
/// the last computes only the rows from `prefix.1` on, the others being the prefix's clean ones.
fn run_batches<H: Hooks>(
    model: &TaskModel,
    questions: &[Question],
    batch: usize,
    hooks: &mut H,
    mut set_row0: impl FnMut(&mut H, usize),
    blocks: std::ops::Range<usize>,
    prefix: Option<(&Prefix, usize)>,
) -> Predictions {
    let c = &model.params.config;
    let span = answer_span(model);
    let b = batch.min(questions.len()).max(1);
    let mut ws = Workspace::new(c, b, span);
    let first_row = prefix.map_or(0, |(_, r)| r.min(span.t - 1));
    ws.set_first_row(first_row);
    let targets = Targets { first: model.answer_start() - 1, n: model.n_answer() };
    let (n_ctx, v, n) = (c.n_ctx, c.d_vocab_out, targets.n);
    let logits = blocks.end == c.n_layers;
    let mut tokens = vec![0u32; b * n_ctx];
    let mut nll = vec![0.0; b * n];
    let cap = if logits { questions.len() * n } else { 0 };
    let mut out = Predictions { n_answer: n, argmax: Vec::with_capacity(cap), nll: Vec::with_capacity(cap) };
    for (ci, chunk) in questions.chunks(b).enumerate() {
        for (i, row) in tokens.chunks_exact_mut(n_ctx).enumerate() {
            chunk.get(i).unwrap_or(&chunk[0]).write_tokens(model.format, &mut row[..model.n_ctx()]);
        }
        // Block inputs to load: the first block's, and with skipped rows every later block's.
        let inputs = if first_row > 0 { blocks.start..blocks.end } else { blocks.start..blocks.start + 1 };
        if blocks.start > 0 || first_row > 0 {
            prefix.expect("a pass starting after block 0 needs a prefix").0.load(inputs, ci * b, &mut ws);
        }
        set_row0(hooks, ci * b);
        forward_blocks(&model.params, &tokens, n_ctx, blocks.clone(), &mut ws, hooks);
        if !logits {
            continue;
        }
        loss(&mut ws, &tokens, n_ctx, v, &targets, &mut nll, false);
        let tq = span.tq();
        for i in 0..chunk.len() {
            for d in 0..n {
                let r = (i * tq + d) * v;
                out.argmax.push(argmax(&ws.logits[r..r + v]) as u32);
            }
            out.nll.extend_from_slice(&nll[i * n..(i + 1) * n]);
        }
    }
    out
}

/// Teacher-forced answers and per-digit losses of `questions` under `ivs` (batches of `batch`).
pub fn predict(model: &TaskModel, questions: &[Question], ivs: &mut Interventions, batch: usize) -> Predictions {
    run_batches(model, questions, batch, ivs, |h, r| h.row0 = r, 0..model.params.config.n_layers, None)
}

/// [`predict`], starting at the first block `ivs` touches from `prefix` (made for `questions`),
/// and computing in every block before the last only the rows from the first position `ivs`
/// touches on: the same answers, for a fraction of the work.
pub fn predict_from(model: &TaskModel, questions: &[Question], prefix: &Prefix, ivs: &mut Interventions, batch: usize) -> Predictions {
    assert_eq!(prefix.rows, questions.len(), "the prefix was made for another question list");
    let nl = model.params.config.n_layers;
    let start = ivs.first_block(nl);
    let first_row = ivs.first_position();
    run_batches(model, questions, batch, ivs, |h, r| h.row0 = r, start..nl, Some((prefix, first_row)))
}

/// Caches hook `point` at absolute positions `pos0..pos0 + npos` for every question (rows in
/// question order), with `ivs` applied first (use an empty set for a clean cache). Positions the
/// pass does not compute (early positions of the last layer) are left at 0.
pub fn cache_activation(model: &TaskModel, questions: &[Question], point: HookPoint, pos0: usize, npos: usize, batch: usize) -> Stored {
    cache_with(model, questions, point, pos0, npos, batch, Interventions::default())
}

/// [`cache_activation`] under interventions. The pass stops after the hook's block.
pub fn cache_with(
    model: &TaskModel,
    questions: &[Question],
    point: HookPoint,
    pos0: usize,
    npos: usize,
    batch: usize,
    ivs: Interventions,
) -> Stored {
    let nl = model.params.config.n_layers;
    let end = point.layer().map_or(nl, |l| l + 1);
    let mut grab = (ivs, Grab::new(vec![point], questions.len(), pos0, npos));
    run_batches(
        model,
        questions,
        batch,
        &mut grab,
        |h, r| {
            h.0.row0 = r;
            h.1.cur = r;
        },
        0..end,
        None,
    );
    grab.1.out.pop().expect("one hook")
}

/// Copies hooks' activations at a position range into one [`Stored`] each.
struct Grab {
    points: Vec<HookPoint>,
    cur: usize,
    out: Vec<Stored>,
}

impl Grab {
    fn new(points: Vec<HookPoint>, rows: usize, pos0: usize, npos: usize) -> Grab {
        let out = points.iter().map(|_| Stored { rows, pos0, npos, feat: 0, data: Vec::new() }).collect();
        Grab { points, cur: 0, out }
    }
}

impl Hooks for Grab {
    fn call(&mut self, point: HookPoint, t: HookTensor) {
        let Some(i) = self.points.iter().position(|&p| p == point) else { return };
        let (b, np) = (t.shape[0], t.shape[1]);
        let feat: usize = t.shape[2..].iter().product();
        let o = &mut self.out[i];
        if o.data.is_empty() {
            o.feat = feat;
            o.data = vec![0.0; o.rows * o.npos * feat];
        }
        for bi in 0..b {
            let q = self.cur + bi;
            if q >= o.rows {
                break;
            }
            for p in 0..o.npos {
                let abs = o.pos0 + p;
                if abs < t.pos_offset || abs >= t.pos_offset + np {
                    continue;
                }
                let src = (bi * np + abs - t.pos_offset) * feat;
                let dst = (q * o.npos + p) * feat;
                o.data[dst..dst + feat].copy_from_slice(&t.data[src..src + feat]);
            }
        }
    }
}

/// The mean of hook `point` over `reference` questions at positions `pos0..pos0 + npos` (one
/// row), for mean ablation.
pub fn mean_activation(model: &TaskModel, reference: &[Question], point: HookPoint, pos0: usize, npos: usize, batch: usize) -> Stored {
    cache_activation(model, reference, point, pos0, npos, batch).mean()
}

/// Questions per forward pass of [`full_cache`]: bounds its workspace (the activations of one
/// batch) whatever the question count, so only the outputs grow with it.
pub const FULL_CACHE_BATCH: usize = 512;

/// Caches a hook over a full pass (every position, every layer), as TransformerLens's
/// `run_with_cache` with a name filter; for attention patterns and exports. Runs in batches of
/// [`FULL_CACHE_BATCH`] questions.
pub fn full_cache(model: &TaskModel, questions: &[Question], names: &[&str]) -> Cache {
    full_cache_in_batches(model, questions, names, FULL_CACHE_BATCH)
}

/// [`full_cache`] with `batch` questions per forward pass (the values do not depend on it).
pub fn full_cache_in_batches(model: &TaskModel, questions: &[Question], names: &[&str], batch: usize) -> Cache {
    let t = model.n_ctx();
    let mut tokens = vec![0u32; questions.len() * t];
    for (q, row) in questions.iter().zip(tokens.chunks_exact_mut(t)) {
        q.write_tokens(model.format, row);
    }
    let batch = batch.clamp(1, questions.len().max(1));
    let names = (!names.is_empty()).then_some(names);
    cache_tokens(model, &tokens, t, names, batch).expect("questions of the model's task give valid tokens").1
}

/// The logits (`[rows, t, d_vocab_out]`) and the activations of the hooks in `names` (every
/// hook when `None`), batch axis first, of a full pass over token rows (`[rows, t]` row-major,
/// any `t` up to `n_ctx`, as TransformerLens's `run_with_cache` takes), run in batches of
/// `batch` rows so that only the outputs grow with the row count. Refuses tokens outside the
/// vocabulary, an unknown hook name and outputs larger than [`crate::limits::MAX_MEMORY_BYTES`].
pub fn cache_tokens(
    model: &TaskModel,
    tokens: &[u32],
    t: usize,
    names: Option<&[&str]>,
    batch: usize,
) -> Result<(crate::io::tensors::Tensor, Cache), CacheError> {
    let c = &model.params.config;
    check_token_rows(tokens, t, c.n_ctx, c.d_vocab)?;
    for name in names.unwrap_or_default() {
        HookPoint::parse(name, c.n_layers)?;
    }
    let rows = tokens.len() / t;
    let b = batch.clamp(1, rows.max(1));
    let mut ws = Workspace::new(c, b, Span::full(t));
    let mut out = Cache { filter: names.map(|ns| ns.iter().map(|s| s.to_string()).collect()), ..Default::default() };
    let mut logits = crate::io::tensors::Tensor { shape: vec![rows, t, c.d_vocab_out], data: Vec::new() };
    let mut padded = vec![0u32; b * t];
    for (i, chunk) in tokens.chunks(b * t).enumerate() {
        let n = chunk.len() / t;
        padded[..chunk.len()].copy_from_slice(chunk);
        padded[chunk.len()..].fill(0);
        let mut cache = Cache { filter: out.filter.clone(), ..Default::default() };
        forward(&model.params, &padded, t, &mut ws, &mut cache);
        if i == 0 {
            reserve_outputs(&mut out, &mut logits, &cache, rows, b)?;
        }
        logits.data.extend_from_slice(&ws.logits[..n * t * c.d_vocab_out]);
        for (name, tensor) in cache.tensors {
            let per = tensor.data.len() / b;
            out.tensors.get_mut(&name).expect("reserved from the first batch").data.extend_from_slice(&tensor.data[..n * per]);
        }
    }
    Ok((logits, out))
}

/// Checks token rows for [`cache_tokens`]: a length from 1 to `n_ctx`, whole rows, ids in the
/// vocabulary.
fn check_token_rows(tokens: &[u32], t: usize, n_ctx: usize, d_vocab: usize) -> Result<(), CacheError> {
    if t == 0 || t > n_ctx {
        return Err(CacheError::RowLength { t, n_ctx });
    }
    if !tokens.len().is_multiple_of(t) {
        return Err(CacheError::Ragged { tokens: tokens.len(), t });
    }
    match tokens.iter().position(|&tok| tok as usize >= d_vocab) {
        Some(i) => Err(CacheError::Vocabulary { token: tokens[i], row: i / t, position: i % t, d_vocab }),
        None => Ok(()),
    }
}

/// Why [`cache_tokens`] refused its input: the value at fault and what the model takes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// Rows of a length the model cannot take.
    #[error("token rows of length {t}: the model takes 1 to {n_ctx} positions (its n_ctx)")]
    RowLength {
        /// The row length given.
        t: usize,
        /// The model's context length.
        n_ctx: usize,
    },
    /// A token count that is not a whole number of rows.
    #[error("{tokens} tokens do not make rows of {t}")]
    Ragged {
        /// The tokens given.
        tokens: usize,
        /// The row length.
        t: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token {token} at row {row}, position {position} is outside the vocabulary: ids run from 0 to {}", d_vocab - 1)]
    Vocabulary {
        /// The id.
        token: u32,
        /// Its row.
        row: usize,
        /// Its position in the row.
        position: usize,
        /// The model's vocabulary size.
        d_vocab: usize,
    },
    /// A hook name the model does not have.
    #[error(transparent)]
    Hook(#[from] crate::model::UnknownHook),
    /// Outputs beyond the memory limit.
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),
}

impl From<CacheError> for String {
    fn from(e: CacheError) -> String {
        e.to_string()
    }
}

/// Sizes the outputs of [`cache_tokens`] for `rows` rows from the first batch's tensors (of `b`
/// rows each), refusing more than [`crate::limits::MAX_MEMORY_BYTES`] in all.
fn reserve_outputs(
    out: &mut Cache,
    logits: &mut crate::io::tensors::Tensor,
    first: &Cache,
    rows: usize,
    b: usize,
) -> Result<(), CacheError> {
    let per_row: usize = first.tensors.values().map(|t| t.data.len() / b).sum::<usize>() + logits.shape[1..].iter().product::<usize>();
    let bytes = crate::limits::product(&[per_row as u64, rows as u64, 4]);
    crate::limits::check_memory(&format!("a cache of {rows} row(s)"), bytes, "the logits and the cached activations")?;
    logits.data.reserve_exact(rows * logits.shape[1..].iter().product::<usize>());
    for (name, tensor) in &first.tensors {
        let mut shape = tensor.shape.clone();
        shape[0] = rows;
        let data = Vec::with_capacity(rows * tensor.data.len() / b);
        out.tensors.insert(name.clone(), crate::io::tensors::Tensor { shape, data });
    }
    Ok(())
}

/// Which answer digits changed: for each question and answer token, whether `after` differs
/// from `before` (both with the same `n_answer`).
pub fn changed(before: &Predictions, after: &Predictions) -> Vec<bool> {
    before.argmax.iter().zip(&after.argmax).map(|(a, b)| a != b).collect()
}

/// Accumulates the mean of several hooks over every computed position.
struct MeanGrab {
    points: Vec<HookPoint>,
    sums: Vec<Vec<f64>>,
    feats: Vec<usize>,
    n_ctx: usize,
    rows: usize,
    valid: usize,
    count: usize,
}

impl Hooks for MeanGrab {
    fn call(&mut self, point: HookPoint, t: HookTensor) {
        let Some(i) = self.points.iter().position(|&p| p == point) else { return };
        let (b, np) = (t.shape[0], t.shape[1]);
        let feat: usize = t.shape[2..].iter().product();
        if self.sums[i].is_empty() {
            self.sums[i] = vec![0.0; self.n_ctx * feat];
            self.feats[i] = feat;
        }
        let valid = self.valid.min(b);
        for bi in 0..valid {
            for p in 0..np {
                let src = &t.data[(bi * np + p) * feat..(bi * np + p + 1) * feat];
                let dst = &mut self.sums[i][(t.pos_offset + p) * feat..(t.pos_offset + p + 1) * feat];
                dst.iter_mut().zip(src).for_each(|(a, &v)| *a += v as f64);
            }
        }
        self.count = self.count.max(self.rows);
    }
}

/// Means of each hook in `points` over `reference`, at every position (one row each; positions
/// the pass does not compute hold 0), for mean ablation.
pub fn mean_activations(model: &TaskModel, reference: &[Question], points: &[HookPoint], batch: usize) -> Vec<Stored> {
    let n = points.len();
    let mut g = MeanGrab {
        points: points.to_vec(),
        sums: vec![Vec::new(); n],
        feats: vec![0; n],
        n_ctx: model.n_ctx(),
        rows: 0,
        valid: 0,
        count: 0,
    };
    let b = batch.min(reference.len()).max(1);
    let total = reference.len();
    let set = |h: &mut MeanGrab, r: usize| {
        h.valid = (total - r).min(b);
        h.rows = total;
    };
    run_batches(model, reference, b, &mut g, set, 0..model.params.config.n_layers, None);
    let n_ctx = model.n_ctx();
    g.sums
        .into_iter()
        .zip(g.feats)
        .map(|(s, feat)| Stored { rows: 1, pos0: 0, npos: n_ctx, feat, data: s.iter().map(|v| (v / total.max(1) as f64) as f32).collect() })
        .collect()
}
