//! The fast model: the reference model's ([`super::reference`]) maths over buffers allocated
//! once per batch shape ([`Workspace`]), as training, evaluation and analysis run it. It reads
//! top to bottom like llm.c: [`forward`] is embed, blocks, unembed; each block is LN1, attention,
//! residual, LN2, MLP, residual over named per-layer buffers; every sub-block's forward sits
//! beside its backward, and [`backward`] runs them in reverse.
//!
//! Its optimisations each live in one place and are tested equal to the reference
//! (`tests/reference_model.rs`):
//! - **which rows are computed** ([`super::rows`]): the last block only at the answer rows, and
//!   in an intervention pass the earlier blocks only from the first intervened position on
//!   ([`Workspace::set_first_row`]). Every function below takes its block's [`Rows`].
//! - **layer 0 per distinct (token, position) pair** ([`super::pairs`]): a pass without hooks
//!   replaces layer 0's embedding, LN1 and Q/K/V by the pair table (`Layer0`).
//! - **hooks** cost nothing in a pass without them (`NoHooks`, `Hooks::ACTIVE`).

use super::config::ModelConfig;
use super::hooks::{HookPoint, HookTensor, Hooks};
use super::linalg::{add_bias, add_col_sums, matmul, matmul_into, MatRef};
use super::ops::{self, AttnGrads, AttnSaved};
use super::pairs::PairTable;
use super::params::{head, head_mut, Attn, Block, Ln, Mlp, Params};
use super::rows::Rows;
pub use super::rows::Span;

// ---- Buffers ----

/// A LayerNorm's saved values: `hook_normalized`, `hook_scale` and its output.
#[derive(Default)]
struct LnBufs {
    xhat: Vec<f32>,
    scale: Vec<f32>,
    out: Vec<f32>,
}

impl LnBufs {
    fn new(rows: usize, d: usize) -> LnBufs {
        LnBufs { xhat: vec![0.0; rows * d], scale: vec![0.0; rows], out: vec![0.0; rows * d] }
    }
}

/// Attention's activations: queries, pattern, z and output over the query rows, keys and
/// values over every row.
#[derive(Default)]
struct AttnBufs {
    /// The attention's input at the query rows, when they are not all rows (see [`Rows`]).
    x_q: Vec<f32>,
    /// `hook_q` [batch, tq, head, d_head].
    q: Vec<f32>,
    /// `hook_k` [batch, t, head, d_head].
    k: Vec<f32>,
    /// `hook_v` [batch, t, head, d_head].
    v: Vec<f32>,
    /// `hook_attn_scores`, then in place `hook_pattern` [batch, head, tq, t].
    pattern: Vec<f32>,
    /// `hook_z` [batch, tq, head, d_head].
    z: Vec<f32>,
    /// `hook_attn_out` [batch, tq, d_model].
    out: Vec<f32>,
}

/// The MLP sub-block's activations over the query rows: LN2, `hook_pre`, `hook_post`,
/// `hook_mlp_out`.
#[derive(Default)]
struct MlpBufs {
    ln2: LnBufs,
    pre: Vec<f32>,
    post: Vec<f32>,
    out: Vec<f32>,
}

/// One block's activations, under their TransformerLens names. Its input (`hook_resid_pre`)
/// and output (`hook_resid_post`) are the workspace's residual stream.
#[derive(Default)]
struct LayerBufs {
    ln1: LnBufs,
    attn: AttnBufs,
    /// `hook_resid_mid` [batch, tq, d_model].
    resid_mid: Vec<f32>,
    mlp: MlpBufs,
    /// A spliced block's output rows before they are copied into the residual stream.
    spliced: Vec<f32>,
}

impl LayerBufs {
    fn new(c: &ModelConfig, rows: Rows) -> LayerBufs {
        let (d, hd, m) = (c.d_model, c.n_heads * c.d_head, c.d_mlp);
        let (n_in, n_out) = (rows.n_in(), rows.n_out());
        let (ln, mlp) = (c.has_ln(), c.has_mlp());
        let z = |n: usize| vec![0.0f32; n];
        let attn = AttnBufs {
            x_q: z(if rows.partial() { n_out * d } else { 0 }),
            q: z(n_out * hd),
            k: z(n_in * hd),
            v: z(n_in * hd),
            pattern: z(rows.batch * c.n_heads * rows.tq() * rows.t),
            z: z(n_out * hd),
            out: z(n_out * d),
        };
        let mlp_bufs = MlpBufs {
            ln2: LnBufs::new(if ln && mlp { n_out } else { 0 }, d),
            pre: z(if mlp { n_out * m } else { 0 }),
            post: z(if mlp { n_out * m } else { 0 }),
            out: z(if mlp { n_out * d } else { 0 }),
        };
        LayerBufs {
            ln1: LnBufs::new(if ln { n_in } else { 0 }, d),
            attn,
            resid_mid: z(if mlp { n_out * d } else { 0 }),
            mlp: mlp_bufs,
            spliced: Vec::new(),
        }
    }

    /// Resizes every buffer over query rows from `old` to `new` rows (a new first row, see
    /// [`Workspace::set_first_row`]); `gathered` sizes the gathered input and spliced output.
    fn resize_query_rows(&mut self, old: usize, new: usize, gathered: usize) {
        let a = &mut self.attn;
        let m = &mut self.mlp;
        for v in [
            &mut a.q,
            &mut a.pattern,
            &mut a.z,
            &mut a.out,
            &mut self.resid_mid,
            &mut m.ln2.xhat,
            &mut m.ln2.scale,
            &mut m.ln2.out,
            &mut m.pre,
            &mut m.post,
            &mut m.out,
        ] {
            let per_row = v.len() / old;
            v.resize(new * per_row, 0.0);
        }
        a.x_q.resize(gathered, 0.0);
        self.spliced.resize(gathered, 0.0);
    }
}

/// Gradient scratch shared by all blocks (sized for the largest).
#[derive(Default)]
struct GradBufs {
    /// d `hook_resid_post` of the block being run backward.
    d_out: Vec<f32>,
    /// d `hook_resid_mid`.
    d_mid: Vec<f32>,
    /// d `hook_resid_pre`.
    d_in: Vec<f32>,
    /// d of a LayerNorm's output (over every row), and d of LN1's output at the query rows.
    d_ln: Vec<f32>,
    d_lnq: Vec<f32>,
    /// d `hook_post`, then in place d `hook_pre`.
    d_hidden: Vec<f32>,
    dz: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
    dscores: Vec<f32>,
    dlogits: Vec<f32>,
}

/// How the last pass computed layer 0's embedding, LN1 and Q/K/V.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer0 {
    /// Row by row, as every other layer (a hooked pass, or one that starts at a later row).
    PerRow,
    /// Once per distinct (token, position) pair ([`PairTable`]), in a pass without hooks.
    PerPair,
}

/// Every buffer a forward and backward pass needs for one batch size and span, allocated once.
pub struct Workspace {
    /// Batch size.
    pub batch: usize,
    /// Positions computed.
    pub span: Span,
    /// `resid[l]` is block l's `hook_resid_pre`; `resid[n_layers]` the last `hook_resid_post`
    /// (over the last block's query rows).
    resid: Vec<Vec<f32>>,
    layers: Vec<LayerBufs>,
    ln_final: LnBufs,
    /// Logits [batch, span.tq(), d_vocab_out].
    pub logits: Vec<f32>,
    grads: GradBufs,
    /// Layer 0 per distinct (token, position) pair, used by passes without hooks.
    pairs: PairTable,
    layer0: Layer0,
    /// First row every block but the last computes (see [`Workspace::set_first_row`]).
    first_row: usize,
}

impl Workspace {
    /// Buffers for `batch` sequences over `span` of a model with this config.
    pub fn new(c: &ModelConfig, batch: usize, span: Span) -> Workspace {
        assert!(span.q0 < span.t && span.t <= c.n_ctx, "span {span:?} does not fit n_ctx {}", c.n_ctx);
        let (d, hd, m, nl) = (c.d_model, c.n_heads * c.d_head, c.d_mlp, c.n_layers);
        let last = Rows::of_block(nl - 1, nl, batch, span, 0);
        let (n_in, n_out) = (last.n_in(), last.n_out());
        let z = |n: usize| vec![0.0f32; n];
        let layers = (0..nl).map(|l| LayerBufs::new(c, Rows::of_block(l, nl, batch, span, 0))).collect();
        let resid = (0..=nl).map(|l| z(if l == nl { n_out * d } else { n_in * d })).collect();
        let grads = GradBufs {
            d_out: z(n_in * d),
            d_mid: z(n_in * d),
            d_in: z(n_in * d),
            d_ln: z(n_in * d),
            d_lnq: z(n_out * d),
            d_hidden: z(n_in * m),
            dz: z(n_in * hd),
            dq: z(n_in * hd),
            dk: z(n_in * hd),
            dv: z(n_in * hd),
            dscores: z(batch * c.n_heads * span.t * span.t),
            dlogits: z(n_out * c.d_vocab_out),
        };
        Workspace {
            batch,
            span,
            resid,
            layers,
            ln_final: LnBufs::new(if c.has_ln() { n_out } else { 0 }, d),
            logits: z(n_out * c.d_vocab_out),
            grads,
            pairs: PairTable::default(),
            layer0: Layer0::PerRow,
            first_row: 0,
        }
    }

    /// Makes every block but the last compute queries, attention output and MLP only for rows
    /// `first..span.t` (keys and values still for every row), leaving the rows before `first` of
    /// their outputs as they are: the partial recompute of `model::rows`. An intervention pass
    /// loads the clean outputs (every later block's `hook_resid_pre`, [`Workspace::resid_pre_mut`])
    /// and sets `first` to its first intervened position. 0 (the default) computes every row;
    /// the backward pass needs 0.
    pub fn set_first_row(&mut self, first: usize) {
        assert!(first < self.span.t, "first row {first} outside the span {:?}", self.span);
        if first == self.first_row {
            return;
        }
        let (b, t) = (self.batch, self.span.t);
        let (old, new) = (b * (t - self.first_row), b * (t - first));
        let d = self.resid[0].len() / (b * t);
        self.first_row = first;
        let nl = self.layers.len();
        let gathered = if first > 0 { new * d } else { 0 };
        for layer in &mut self.layers[..nl - 1] {
            layer.resize_query_rows(old, new, gathered);
        }
    }

    /// Distinct (token, position) pairs of the last pass without hooks (None after a hooked pass).
    pub fn layer0_pairs(&self) -> Option<usize> {
        (self.layer0 == Layer0::PerPair).then_some(self.pairs.pairs.len())
    }

    /// Block `l`'s `hook_resid_pre`, [batch, span.t, d_model] (every block but the last reads
    /// every position): write it before a [`forward_blocks`] pass that starts at block `l`.
    pub fn resid_pre_mut(&mut self, l: usize) -> &mut [f32] {
        assert!(l + 1 < self.resid.len(), "block {l} does not exist");
        &mut self.resid[l]
    }

    /// The rows block `l` computes.
    fn rows(&self, l: usize) -> Rows {
        Rows::of_block(l, self.layers.len(), self.batch, self.span, self.first_row)
    }
}

/// What every sub-block of one block needs: the model's dimensions, the block's index and
/// weights by name, and the rows it computes.
struct Layer<'p> {
    c: &'p ModelConfig,
    l: usize,
    w: Block<&'p [f32]>,
    rows: Rows,
}

impl Layer<'_> {
    /// A hook's shape over the query rows: [batch, tq, ...rest].
    fn q_shape(&self, rest: &[usize]) -> Vec<usize> {
        [&[self.rows.batch, self.rows.tq()][..], rest].concat()
    }

    /// A hook's shape over every row: [batch, t, ...rest].
    fn all_shape(&self, rest: &[usize]) -> Vec<usize> {
        [&[self.rows.batch, self.rows.t][..], rest].concat()
    }
}

fn hook<H: Hooks>(hooks: &mut H, point: HookPoint, data: &mut [f32], shape: impl FnOnce() -> Vec<usize>, pos_offset: usize) {
    if H::ACTIVE {
        hooks.call(point, HookTensor { data, shape: shape(), pos_offset });
    }
}

// ---- The whole model ----

/// Runs the model on `tokens` ([batch, n_ctx] row-major; only the first `span.t` of each row are
/// read), leaving logits in `ws.logits` and every activation in `ws` for the backward pass.
/// `hooks` sees (and may change) each activation under its TransformerLens name.
pub fn forward<H: Hooks>(p: &Params, tokens: &[u32], n_ctx: usize, ws: &mut Workspace, hooks: &mut H) {
    forward_blocks(p, tokens, n_ctx, 0..p.config.n_layers, ws, hooks);
}

/// Runs only `blocks` (a non-empty range of block indices), and the final LN and unembedding if
/// the range ends at the last block. A range starting at 0 embeds `tokens`; a later start reads
/// that block's `hook_resid_pre` from [`Workspace::resid_pre_mut`], so an intervention pass need
/// not recompute the blocks before its first hook, and a cache need not run past its hook.
/// Such a partial pass leaves the workspace unfit for [`backward`].
pub fn forward_blocks<H: Hooks>(
    p: &Params,
    tokens: &[u32],
    n_ctx: usize,
    blocks: std::ops::Range<usize>,
    ws: &mut Workspace,
    hooks: &mut H,
) {
    let c = &p.config;
    assert!(blocks.start < blocks.end && blocks.end <= c.n_layers, "block range {blocks:?} outside 0..{}", c.n_layers);
    let per_pair = !H::ACTIVE && blocks.start == 0 && ws.first_row == 0;
    ws.layer0 = if per_pair { Layer0::PerPair } else { Layer0::PerRow };
    if blocks.start == 0 {
        match ws.layer0 {
            Layer0::PerPair => {
                ws.pairs.build(tokens, n_ctx, ws.batch, ws.span.t, c.d_vocab);
                ws.pairs.forward(p);
            }
            Layer0::PerRow => embed_forward(p, tokens, n_ctx, ws, hooks),
        }
    }
    let last = blocks.end == c.n_layers;
    for l in blocks {
        block_forward(p, l, ws, hooks);
    }
    if last {
        unembed_forward(p, ws, hooks);
    }
}

/// Backward pass from `d logits` already in the workspace (see [`loss`] with `with_grad`): adds every
/// parameter's gradient into `grad` (same layout as `p.data`).
pub fn backward(p: &Params, tokens: &[u32], n_ctx: usize, ws: &mut Workspace, grad: &mut [f32]) {
    assert_eq!(ws.first_row, 0, "the backward pass needs every row (Workspace::set_first_row(0))");
    let mut g = std::mem::take(&mut ws.grads);
    unembed_backward(p, ws, &mut g, grad);
    let mut pairs = std::mem::take(&mut ws.pairs);
    for l in (0..p.config.n_layers).rev() {
        let per_pair = l == 0 && ws.layer0 == Layer0::PerPair;
        block_backward(p, l, ws, per_pair.then_some(&mut pairs), &mut g, grad);
        std::mem::swap(&mut g.d_out, &mut g.d_in);
    }
    if ws.layer0 == Layer0::PerPair {
        pairs.embed_backward(&mut p.layout.embed_of_mut(grad));
    }
    ws.pairs = pairs;
    // g.d_out now holds d hook_resid_pre of block 0.
    embed_backward(p, tokens, n_ctx, ws, &g.d_out, grad);
    ws.grads = g;
}

// ---- Embedding: x = W_E[token] + W_pos[position] ----

fn embed_forward<H: Hooks>(p: &Params, tokens: &[u32], n_ctx: usize, ws: &mut Workspace, hooks: &mut H) {
    let (d, t, w) = (p.config.d_model, ws.span.t, p.embed());
    let token = |r: usize| tokens[(r / t) * n_ctx + r % t] as usize;
    let x = &mut ws.resid[0];
    if H::ACTIVE {
        let shape = vec![ws.batch, t, d];
        let mut e = vec![0.0; x.len()];
        let mut pe = vec![0.0; x.len()];
        for (r, (er, pr)) in e.chunks_exact_mut(d).zip(pe.chunks_exact_mut(d)).enumerate() {
            er.copy_from_slice(&w.w_e[token(r) * d..(token(r) + 1) * d]);
            pr.copy_from_slice(&w.w_pos[(r % t) * d..(r % t + 1) * d]);
        }
        hooks.call(HookPoint::Embed, HookTensor { data: &mut e, shape: shape.clone(), pos_offset: 0 });
        hooks.call(HookPoint::PosEmbed, HookTensor { data: &mut pe, shape, pos_offset: 0 });
        x.iter_mut().zip(e.iter().zip(&pe)).for_each(|(x, (a, b))| *x = a + b);
    } else {
        for (r, row) in x.chunks_exact_mut(d).enumerate() {
            let (er, pr) = (&w.w_e[token(r) * d..(token(r) + 1) * d], &w.w_pos[(r % t) * d..(r % t + 1) * d]);
            row.iter_mut().zip(er.iter().zip(pr)).for_each(|(x, (a, b))| *x = a + b);
        }
    }
}

/// Adds the embeddings' gradients from d `hook_resid_pre` of block 0 (`d_x`).
fn embed_backward(p: &Params, tokens: &[u32], n_ctx: usize, ws: &Workspace, d_x: &[f32], grad: &mut [f32]) {
    let (b, t, d) = (ws.batch, ws.span.t, p.config.d_model);
    let g = p.layout.embed_of_mut(grad);
    for (r, row) in d_x[..b * t * d].chunks_exact(d).enumerate() {
        let (tok, pos) = (tokens[(r / t) * n_ctx + r % t] as usize, r % t);
        g.w_e[tok * d..(tok + 1) * d].iter_mut().zip(row).for_each(|(g, v)| *g += v);
        g.w_pos[pos * d..(pos + 1) * d].iter_mut().zip(row).for_each(|(g, v)| *g += v);
    }
}

// ---- LayerNorm: out = (x - mean) / sqrt(var + eps) * w + b ----

/// Where a LayerNorm's hooks fire: its two hook points, [batch, positions] and first position.
struct LnHooks {
    scale: HookPoint,
    normalized: HookPoint,
    shape: [usize; 2],
    pos0: usize,
}

impl LnHooks {
    /// Block `l`'s LN1, over every row.
    fn ln1(l: usize, rows: Rows) -> LnHooks {
        LnHooks { scale: HookPoint::Ln1Scale(l), normalized: HookPoint::Ln1Normalized(l), shape: [rows.batch, rows.t], pos0: 0 }
    }

    /// Block `l`'s LN2, over its query rows.
    fn ln2(l: usize, rows: Rows) -> LnHooks {
        LnHooks { scale: HookPoint::Ln2Scale(l), normalized: HookPoint::Ln2Normalized(l), shape: [rows.batch, rows.tq()], pos0: rows.q0 }
    }

    /// `ln_final`, over the last block's query rows (`rows`).
    fn ln_final(rows: Rows) -> LnHooks {
        LnHooks { scale: HookPoint::LnFinalScale, normalized: HookPoint::LnFinalNormalized, shape: [rows.batch, rows.tq()], pos0: rows.q0 }
    }
}

/// The input of the sub-block after a LayerNorm: its output, or `x` itself in a model without
/// LayerNorms. The output is recomputed if a hook edited `hook_normalized`.
fn ln_forward<'a, H: Hooks>(w: Option<&Ln<&[f32]>>, eps: f32, x: &'a [f32], buf: &'a mut LnBufs, at: LnHooks, hooks: &mut H) -> &'a [f32] {
    let Some(w) = w else { return x };
    ops::layernorm_forward(x, w.w, w.b, eps, &mut buf.xhat, &mut buf.scale, &mut buf.out);
    if H::ACTIVE {
        let [b, t] = at.shape;
        hook(hooks, at.scale, &mut buf.scale, || vec![b, t, 1], at.pos0);
        hook(hooks, at.normalized, &mut buf.xhat, || vec![b, t, w.w.len()], at.pos0);
        for (o, xh) in buf.out.chunks_exact_mut(w.w.len()).zip(buf.xhat.chunks_exact(w.w.len())) {
            for i in 0..w.w.len() {
                o[i] = xh[i] * w.w[i] + w.b[i];
            }
        }
    }
    &buf.out
}

/// LayerNorm backward: from d of its output (`d_ln`), adds its weight and bias gradients into
/// `grad` and writes (or adds, when `accumulate`) d of its input into `dx`.
fn ln_backward(w: &Ln<&[f32]>, buf: &LnBufs, d_ln: &[f32], grad: &mut Ln<&mut [f32]>, dx: &mut [f32], accumulate: bool) {
    ops::layernorm_backward(d_ln, &buf.xhat, &buf.scale, w.w, grad, dx, accumulate);
}

// ---- Block: resid_mid = x + attn(ln1(x)); resid_post = resid_mid + mlp(ln2(resid_mid)) ----

fn block_forward<H: Hooks>(p: &Params, l: usize, ws: &mut Workspace, hooks: &mut H) {
    let c = &p.config;
    let at = Layer { c, l, w: p.block(l), rows: ws.rows(l) };
    let (rows, d) = (at.rows, c.d_model);
    let (before, after) = ws.resid.split_at_mut(l + 1);
    let (x, resid_post) = (&mut before[l], &mut after[0]);
    let LayerBufs { ln1, attn, resid_mid, mlp, spliced } = &mut ws.layers[l];
    if l == 0 && ws.layer0 == Layer0::PerPair {
        ws.pairs.expand(rows, x, [&mut attn.q, &mut attn.k, &mut attn.v]);
    } else {
        hook(hooks, HookPoint::ResidPre(l), x, || at.all_shape(&[d]), 0);
        let attn_in = ln_forward(at.w.ln1.as_ref(), c.eps as f32, x, ln1, LnHooks::ln1(l, rows), hooks);
        qkv_forward(&at, attn_in, attn);
    }
    attention_forward(&at, attn, hooks);
    // The block's output rows: the residual stream itself, or a spliced block's own buffer.
    let out: &mut [f32] = if rows.spliced { &mut spliced[..] } else { &mut resid_post[..] };
    match &at.w.mlp {
        Some(w) => {
            residual_forward(rows, d, x, &attn.out, resid_mid);
            hook(hooks, HookPoint::ResidMid(l), resid_mid, || at.q_shape(&[d]), rows.q0);
            mlp_forward(&at, w, resid_mid, mlp, hooks);
            out.iter_mut().zip(resid_mid.iter().zip(&mlp.out)).for_each(|(o, (r, m))| *o = r + m);
        }
        None => residual_forward(rows, d, x, &attn.out, out),
    }
    hook(hooks, HookPoint::ResidPost(l), out, || at.q_shape(&[d]), rows.q0);
    if rows.spliced {
        rows.splice(resid_post, d, spliced);
    }
}

/// Block `l` backward: reads d `hook_resid_post` from `g.d_out`, writes d `hook_resid_pre` to
/// `g.d_in`. With `pairs` (layer 0 of a pass without hooks) the LN1 path's gradient goes to the
/// pair table ([`PairTable::backward`]) and `g.d_in` carries only the residual connection.
fn block_backward(p: &Params, l: usize, ws: &Workspace, pairs: Option<&mut PairTable>, g: &mut GradBufs, grad: &mut [f32]) {
    let c = &p.config;
    let at = Layer { c, l, w: p.block(l), rows: ws.rows(l) };
    let (rows, d, hd) = (at.rows, c.d_model, c.n_heads * c.d_head);
    let (n_in, n_out) = (rows.n_in(), rows.n_out());
    let buf = &ws.layers[l];
    let mut gw = p.layout.blocks[l].of_mut(grad);
    // The residual connection around the MLP: d resid_mid starts as d resid_post.
    g.d_mid[..n_out * d].copy_from_slice(&g.d_out[..n_out * d]);
    mlp_backward(&at, buf, &mut gw, g);
    attention_backward(&at, &buf.attn, &mut gw.attn, g);
    match pairs {
        Some(pairs) => {
            pairs.backward(p, rows, [&g.dq[..n_out * hd], &g.dk[..n_in * hd], &g.dv[..n_in * hd]], &mut gw);
            g.d_in[..n_in * d].fill(0.0);
        }
        None => {
            let x: &[f32] = if at.w.ln1.is_some() { &buf.ln1.out } else { &ws.resid[l] };
            qkv_backward(&at, x, &buf.attn, &mut gw.attn, g);
            let (d_ln, d_in) = (&g.d_ln[..n_in * d], &mut g.d_in[..n_in * d]);
            match (&at.w.ln1, &mut gw.ln1) {
                (Some(w), Some(gln)) => ln_backward(w, &buf.ln1, d_ln, gln, d_in, false),
                _ => d_in.copy_from_slice(d_ln),
            }
        }
    }
    // The residual connection around the attention.
    let (d_in, d_mid) = (&mut g.d_in[..n_in * d], &g.d_mid[..n_out * d]);
    if rows.partial() {
        rows.scatter_add(d_in, d, d_mid);
    } else {
        d_in.iter_mut().zip(d_mid).for_each(|(a, b)| *a += b);
    }
}

/// `out = x + y` at the query rows (`x` over every row, `y` and `out` over the query rows).
fn residual_forward(rows: Rows, d: usize, x: &[f32], y: &[f32], out: &mut [f32]) {
    if rows.partial() {
        rows.gather(x, d, out);
    } else {
        out.copy_from_slice(x);
    }
    out.iter_mut().zip(y).for_each(|(o, y)| *o += y);
}

// ---- Attention: per head h, z_h = softmax(mask(q_h k_h^T / sqrt(d_head))) v_h; out = z W_O + b_O ----

/// Queries at the query rows, keys and values at every row: `x W[h] + b[h]` per head, into
/// [rows, head, d_head] (TransformerLens's `hook_q` layout).
fn qkv_forward(at: &Layer, x: &[f32], a: &mut AttnBufs) {
    let (c, rows, w) = (at.c, at.rows, &at.w.attn);
    let (d, nh, dh) = (c.d_model, c.n_heads, c.d_head);
    let hd = nh * dh;
    let x_q: &[f32] = if rows.partial() {
        rows.gather(x, d, &mut a.x_q);
        &a.x_q
    } else {
        x
    };
    for h in 0..nh {
        matmul_into(&mut a.q[h * dh..], hd, MatRef::new(x_q, rows.n_out(), d), head_w(w.w_q, h, nh, d), false);
        matmul_into(&mut a.k[h * dh..], hd, MatRef::new(x, rows.n_in(), d), head_w(w.w_k, h, nh, d), false);
        matmul_into(&mut a.v[h * dh..], hd, MatRef::new(x, rows.n_in(), d), head_w(w.w_v, h, nh, d), false);
    }
    add_bias(&mut a.q, w.b_q);
    add_bias(&mut a.k, w.b_k);
    add_bias(&mut a.v, w.b_v);
}

/// From d q, k, v (in `g`) to d of the attention's input over every row (`g.d_ln`), adding
/// Q/K/V's gradients into `gw`; `x` is the attention's input.
fn qkv_backward(at: &Layer, x: &[f32], a: &AttnBufs, gw: &mut Attn<&mut [f32]>, g: &mut GradBufs) {
    let (c, rows, w) = (at.c, at.rows, &at.w.attn);
    let (d, nh, dh) = (c.d_model, c.n_heads, c.d_head);
    let (hd, n_in, n_out) = (nh * dh, rows.n_in(), rows.n_out());
    add_col_sums(gw.b_q, &g.dq[..n_out * hd]);
    add_col_sums(gw.b_k, &g.dk[..n_in * hd]);
    add_col_sums(gw.b_v, &g.dv[..n_in * hd]);
    let x_q: &[f32] = if rows.partial() { &a.x_q } else { x };
    let d_ln = &mut g.d_ln[..n_in * d];
    let d_lnq = if rows.partial() { &mut g.d_lnq[..n_out * d] } else { &mut [][..] };
    for h in 0..nh {
        let (dq, dk, dv) = (head_cols(&g.dq, h, n_out, dh, hd), head_cols(&g.dk, h, n_in, dh, hd), head_cols(&g.dv, h, n_in, dh, hd));
        matmul(head_mut(gw.w_q, h, nh), MatRef::new(x_q, n_out, d).t(), dq, true);
        matmul(head_mut(gw.w_k, h, nh), MatRef::new(x, n_in, d).t(), dk, true);
        matmul(head_mut(gw.w_v, h, nh), MatRef::new(x, n_in, d).t(), dv, true);
        matmul(d_ln, dk, head_w(w.w_k, h, nh, d).t(), h > 0);
        matmul(d_ln, dv, head_w(w.w_v, h, nh, d).t(), true);
        if rows.partial() {
            matmul(d_lnq, dq, head_w(w.w_q, h, nh, d).t(), h > 0);
        } else {
            matmul(d_ln, dq, head_w(w.w_q, h, nh, d).t(), true);
        }
    }
    if rows.partial() {
        rows.scatter_add(d_ln, d, d_lnq);
    }
}

/// Head `h` of `W_Q`, `W_K` or `W_V` ([head, d_model, d_head]) as a [d_model, d_head] matrix.
fn head_w(w: &[f32], h: usize, heads: usize, d: usize) -> MatRef<'_> {
    let wh = head(w, h, heads);
    MatRef::new(wh, d, wh.len() / d)
}

/// Head `h`'s columns of a [rows, head * d_head] buffer.
fn head_cols(buf: &[f32], h: usize, rows: usize, dh: usize, hd: usize) -> MatRef<'_> {
    MatRef::strided(&buf[h * dh..], rows, dh, hd, 1)
}

/// Scores, pattern, z and output from the queries, keys and values in `a`.
fn attention_forward<H: Hooks>(at: &Layer, a: &mut AttnBufs, hooks: &mut H) {
    let (c, l, rows, w) = (at.c, at.l, at.rows, &at.w.attn);
    let (d, nh, dh, q0) = (c.d_model, c.n_heads, c.d_head, rows.q0);
    let scores_shape = || vec![rows.batch, nh, rows.tq(), rows.t];
    hook(hooks, HookPoint::Q(l), &mut a.q, || at.q_shape(&[nh, dh]), q0);
    hook(hooks, HookPoint::K(l), &mut a.k, || at.all_shape(&[nh, dh]), 0);
    hook(hooks, HookPoint::V(l), &mut a.v, || at.all_shape(&[nh, dh]), 0);
    let dims = rows.attn(nh, dh);
    ops::attn_scores(dims, &a.q, &a.k, &mut a.pattern);
    hook(hooks, HookPoint::AttnScores(l), &mut a.pattern, scores_shape, q0);
    ops::softmax_rows(&mut a.pattern, rows.t);
    hook(hooks, HookPoint::Pattern(l), &mut a.pattern, scores_shape, q0);
    ops::attn_mix(dims, &a.pattern, &a.v, &mut a.z);
    hook(hooks, HookPoint::Z(l), &mut a.z, || at.q_shape(&[nh, dh]), q0);
    // W_O [head, d_head, d_model] is one [head * d_head, d_model] matrix.
    matmul(&mut a.out, MatRef::new(&a.z, rows.n_out(), nh * dh), MatRef::new(w.w_o, nh * dh, d), false);
    add_bias(&mut a.out, w.b_o);
    hook(hooks, HookPoint::AttnOut(l), &mut a.out, || at.q_shape(&[d]), q0);
}

/// From d `hook_attn_out` (`g.d_mid`) to d q, k, v (`g.dq`, `g.dk`, `g.dv`), adding W_O's
/// gradients into `gw`.
fn attention_backward(at: &Layer, a: &AttnBufs, gw: &mut Attn<&mut [f32]>, g: &mut GradBufs) {
    let (c, rows, w) = (at.c, at.rows, &at.w.attn);
    let (d, nh, dh) = (c.d_model, c.n_heads, c.d_head);
    let (hd, n_in, n_out) = (nh * dh, rows.n_in(), rows.n_out());
    let d_out = &g.d_mid[..n_out * d];
    matmul(gw.w_o, MatRef::new(&a.z, n_out, hd).t(), MatRef::new(d_out, n_out, d), true);
    add_col_sums(gw.b_o, d_out);
    matmul(&mut g.dz[..n_out * hd], MatRef::new(d_out, n_out, d), MatRef::new(w.w_o, hd, d).t(), false);
    let saved = AttnSaved { q: &a.q, k: &a.k, v: &a.v, pattern: &a.pattern };
    let grads = AttnGrads {
        dscores: &mut g.dscores[..rows.batch * nh * rows.tq() * rows.t],
        dq: &mut g.dq[..n_out * hd],
        dk: &mut g.dk[..n_in * hd],
        dv: &mut g.dv[..n_in * hd],
    };
    ops::attention_backward(rows.attn(nh, dh), saved, &g.dz[..n_out * hd], grads);
}

// ---- MLP: out = act(ln2(x) W_in + b_in) W_out + b_out ----

/// LN2 and the MLP over the query rows of `x` (`hook_resid_mid`), into `m`.
fn mlp_forward<H: Hooks>(at: &Layer, w: &Mlp<&[f32]>, x: &[f32], m: &mut MlpBufs, hooks: &mut H) {
    let (c, l, rows) = (at.c, at.l, at.rows);
    let (d, dm, n) = (c.d_model, c.d_mlp, rows.n_out());
    let MlpBufs { ln2, pre, post, out } = m;
    let mlp_in = ln_forward(at.w.ln2.as_ref(), c.eps as f32, x, ln2, LnHooks::ln2(l, rows), hooks);
    matmul(pre, MatRef::new(mlp_in, n, d), MatRef::new(w.w_in, d, dm), false);
    add_bias(pre, w.b_in);
    hook(hooks, HookPoint::MlpPre(l), pre, || at.q_shape(&[dm]), rows.q0);
    ops::activation_forward(c.act_fn, pre, post);
    hook(hooks, HookPoint::MlpPost(l), post, || at.q_shape(&[dm]), rows.q0);
    matmul(out, MatRef::new(post, n, dm), MatRef::new(w.w_out, dm, d), false);
    add_bias(out, w.b_out);
    hook(hooks, HookPoint::MlpOut(l), out, || at.q_shape(&[d]), rows.q0);
}

/// The MLP sub-block backward: reads d `hook_resid_post` from `g.d_out`, adds the MLP's path
/// into `g.d_mid` (which already holds the residual connection's copy) and the MLP's and LN2's
/// gradients into `gw`. Nothing in an attention-only model.
fn mlp_backward(at: &Layer, buf: &LayerBufs, gw: &mut Block<&mut [f32]>, g: &mut GradBufs) {
    let (Some(w), Some(gm)) = (&at.w.mlp, &mut gw.mlp) else { return };
    let (d, m, n) = (at.c.d_model, at.c.d_mlp, at.rows.n_out());
    let b = &buf.mlp;
    let d_mid = &mut g.d_mid[..n * d];
    let d_post = MatRef::new(&g.d_out[..n * d], n, d);
    matmul(gm.w_out, MatRef::new(&b.post, n, m).t(), d_post, true);
    add_col_sums(gm.b_out, &g.d_out[..n * d]);
    let d_hidden = &mut g.d_hidden[..n * m];
    matmul(d_hidden, d_post, MatRef::new(w.w_out, m, d).t(), false);
    ops::activation_backward(at.c.act_fn, &b.pre, d_hidden);
    let mlp_in: &[f32] = if at.w.ln2.is_some() { &b.ln2.out } else { &buf.resid_mid };
    matmul(gm.w_in, MatRef::new(mlp_in, n, d).t(), MatRef::new(d_hidden, n, m), true);
    add_col_sums(gm.b_in, d_hidden);
    let w_in = MatRef::new(w.w_in, d, m);
    match (&at.w.ln2, &mut gw.ln2) {
        (Some(ln), Some(gln)) => {
            matmul(&mut g.d_ln[..n * d], MatRef::new(d_hidden, n, m), w_in.t(), false);
            ln_backward(ln, &b.ln2, &g.d_ln[..n * d], gln, d_mid, true);
        }
        _ => matmul(d_mid, MatRef::new(d_hidden, n, m), w_in.t(), true),
    }
}

// ---- Unembedding: logits = ln_final(x) W_U + b_U, at the last block's query rows ----

fn unembed_forward<H: Hooks>(p: &Params, ws: &mut Workspace, hooks: &mut H) {
    let (c, w) = (&p.config, p.unembed());
    let rows = ws.rows(c.n_layers - 1);
    let u_in = ln_forward(w.ln_final.as_ref(), c.eps as f32, &ws.resid[c.n_layers], &mut ws.ln_final, LnHooks::ln_final(rows), hooks);
    matmul(&mut ws.logits, MatRef::new(u_in, rows.n_out(), c.d_model), MatRef::new(w.w_u, c.d_model, c.d_vocab_out), false);
    add_bias(&mut ws.logits, w.b_u);
}

/// From d logits (`g.dlogits`) to d of the last block's `hook_resid_post` (`g.d_out`), adding
/// the unembedding's and `ln_final`'s gradients into `grad`.
fn unembed_backward(p: &Params, ws: &Workspace, g: &mut GradBufs, grad: &mut [f32]) {
    let c = &p.config;
    let (w, d, v, n) = (p.unembed(), c.d_model, c.d_vocab_out, ws.batch * ws.span.tq());
    let mut gw = p.layout.unembed_of_mut(grad);
    let dl = MatRef::new(&g.dlogits, n, v);
    let u_in: &[f32] = if w.ln_final.is_some() { &ws.ln_final.out } else { &ws.resid[c.n_layers] };
    matmul(gw.w_u, MatRef::new(u_in, n, d).t(), dl, true);
    add_col_sums(gw.b_u, &g.dlogits);
    let d_x = &mut g.d_out[..n * d];
    match (&w.ln_final, &mut gw.ln_final) {
        (Some(ln), Some(gln)) => {
            matmul(&mut g.d_ln[..n * d], dl, MatRef::new(w.w_u, d, v).t(), false);
            ln_backward(ln, &ws.ln_final, &g.d_ln[..n * d], gln, d_x, false);
        }
        _ => matmul(d_x, dl, MatRef::new(w.w_u, d, v).t(), false),
    }
}

// ---- Loss and cost ----

/// Floating-point operations of the matrix products and attention in one forward pass over
/// `batch` sequences and `span` (2 per multiply-add). A training step does three times this:
/// the backward pass computes a weight gradient and an input gradient for every product.
/// `layer0_pairs`: when layer 0's queries, keys and values were computed once per distinct
/// (token, position) pair, how many pairs there were.
pub fn forward_flops(c: &super::config::ModelConfig, batch: usize, span: Span, layer0_pairs: Option<usize>) -> f64 {
    let (d, hd, m, v) = (c.d_model as f64, (c.n_heads * c.d_head) as f64, c.d_mlp as f64, c.d_vocab_out as f64);
    let b = batch as f64;
    let mut total = 0.0;
    for l in 0..c.n_layers {
        let q0 = if l + 1 == c.n_layers { span.q0 } else { 0 };
        let (n_in, n_out) = (b * span.t as f64, b * (span.t - q0) as f64);
        let keys_seen: f64 = (q0..span.t).map(|p| (p + 1) as f64).sum::<f64>() * b;
        let qkv = match layer0_pairs.filter(|_| l == 0) {
            Some(u) => 3.0 * u as f64 * d * hd,
            None => (2.0 * n_in + n_out) * d * hd,
        };
        total += 2.0 * (qkv + n_out * hd * d);
        total += 2.0 * 2.0 * keys_seen * hd;
        if c.has_mlp() {
            total += 2.0 * 2.0 * n_out * d * m;
        }
    }
    total + 2.0 * b * span.tq() as f64 * d * v
}

/// Cross-entropy of next-token predictions at positions `first..first + n` (the answer), as
/// the papers define the loss: mean over batch and answer tokens, log-softmax in f64.
pub struct Targets {
    /// First predicting position (the one before the first answer token).
    pub first: usize,
    /// Number of predicted answer tokens.
    pub n: usize,
}

/// Loss of the last forward pass: fills `nll` [batch, targets.n] with each answer token's
/// negative log-likelihood and, when `with_grad`, the workspace's d logits for [`backward`].
/// Returns the mean.
pub fn loss(ws: &mut Workspace, tokens: &[u32], n_ctx: usize, v: usize, targets: &Targets, nll: &mut [f64], with_grad: bool) -> f64 {
    let (b, span) = (ws.batch, ws.span);
    assert!(targets.first >= span.q0 && targets.first + targets.n <= span.t, "span {span:?} lacks the answer positions");
    let tq = span.tq();
    let scale = 1.0 / (b * targets.n) as f32;
    if with_grad {
        ws.grads.dlogits.fill(0.0);
    }
    let mut tgt = vec![0u32; targets.n];
    for bi in 0..b {
        for (i, t) in tgt.iter_mut().enumerate() {
            *t = tokens[bi * n_ctx + targets.first + i + 1];
        }
        let rows = (bi * tq + targets.first - span.q0) * v..(bi * tq + targets.first - span.q0 + targets.n) * v;
        let d = with_grad.then(|| (&mut ws.grads.dlogits[rows.clone()], scale));
        ops::cross_entropy(&ws.logits[rows], v, &tgt, &mut nll[bi * targets.n..(bi + 1) * targets.n], d);
    }
    nll.iter().sum::<f64>() / nll.len() as f64
}
