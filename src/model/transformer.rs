//! The whole model, top to bottom: embedding, pre-LN blocks (attention then MLP), final LN and
//! unembedding, with the backward pass in reverse order below the forward. Buffers live in a
//! [`Workspace`] allocated once per batch shape.
//!
//! A pass covers positions `0..t`. The last block computes queries, attention output, MLP and
//! logits only for positions `q0..t`: training sets `q0` to the first answer-predicting position
//! and `t` to one past the last, so it skips every row the loss does not read. Analysis uses the
//! full span (`q0 = 0`, `t = n_ctx`), which is exactly TransformerLens's forward. An intervention
//! pass may also start the earlier blocks at a later row ([`Workspace::set_first_row`]), since
//! causal attention leaves the rows before its first intervened position clean.

use super::hooks::{HookPoint, HookTensor, Hooks};
use super::linalg::{add_bias, add_col_sums, matmul, matmul_into, MatRef};
use super::ops::{self, AttnDims};
use super::pairs::PairTable;
use super::params::{LnIdx, MlpIdx, Params};

/// Which positions a pass computes: all layers see positions `0..t`; the last layer's output
/// (and so the logits) covers positions `q0..t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Number of positions fed in.
    pub t: usize,
    /// First position whose logits are computed.
    pub q0: usize,
}

impl Span {
    /// Every position, as TransformerLens computes it.
    pub fn full(n_ctx: usize) -> Span {
        Span { t: n_ctx, q0: 0 }
    }

    /// Only what a loss over predictions at positions `first..first + n` needs.
    pub fn predictions(first: usize, n: usize) -> Span {
        Span { t: first + n, q0: first }
    }

    /// Positions with logits.
    pub fn tq(&self) -> usize {
        self.t - self.q0
    }
}

/// Activations of one block.
#[derive(Default)]
struct BlockBufs {
    ln1_xhat: Vec<f32>,
    ln1_scale: Vec<f32>,
    ln1_out: Vec<f32>,
    ln1_q: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    pattern: Vec<f32>,
    z: Vec<f32>,
    attn_out: Vec<f32>,
    resid_mid: Vec<f32>,
    ln2_xhat: Vec<f32>,
    ln2_scale: Vec<f32>,
    ln2_out: Vec<f32>,
    pre: Vec<f32>,
    post: Vec<f32>,
    mlp_out: Vec<f32>,
    /// A block that starts at a later row than its output: the rows it computes, before they
    /// are copied into the output (see [`Workspace::set_first_row`]).
    out_rows: Vec<f32>,
}

/// Gradient scratch shared by all blocks (sized for the largest).
#[derive(Default)]
struct GradBufs {
    d_out: Vec<f32>,
    d_mid: Vec<f32>,
    d_in: Vec<f32>,
    d_ln: Vec<f32>,
    d_lnq: Vec<f32>,
    d_hidden: Vec<f32>,
    dz: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
    dscores: Vec<f32>,
    dlogits: Vec<f32>,
}

/// Every buffer a forward and backward pass needs for one batch size and span, allocated once.
pub struct Workspace {
    /// Batch size.
    pub batch: usize,
    /// Positions computed.
    pub span: Span,
    /// `resid[l]` is block l's `hook_resid_pre`; `resid[n_layers]` the last `hook_resid_post`.
    resid: Vec<Vec<f32>>,
    blocks: Vec<BlockBufs>,
    lnf_xhat: Vec<f32>,
    lnf_scale: Vec<f32>,
    lnf_out: Vec<f32>,
    /// Logits [batch, span.tq(), d_vocab_out].
    pub logits: Vec<f32>,
    grads: GradBufs,
    /// Layer 0 per distinct (token, position) pair, used by passes without hooks.
    pairs: PairTable,
    /// Whether the last forward pass went through `pairs`.
    used_pairs: bool,
    /// First row every block but the last computes (see [`Workspace::set_first_row`]).
    first_row: usize,
}

impl Workspace {
    /// Buffers for `batch` sequences over `span` of a model with this config.
    pub fn new(c: &super::config::ModelConfig, batch: usize, span: Span) -> Workspace {
        assert!(span.q0 < span.t && span.t <= c.n_ctx, "span {span:?} does not fit n_ctx {}", c.n_ctx);
        let (d, hd, m, nl) = (c.d_model, c.n_heads * c.d_head, c.d_mlp, c.n_layers);
        let (n_in, n_out) = (batch * span.t, batch * span.tq());
        let z = |n: usize| vec![0.0f32; n];
        let ln = c.has_ln();
        let blocks = (0..nl)
            .map(|l| {
                let no = if l + 1 == nl { n_out } else { n_in };
                let mlp = c.has_mlp();
                BlockBufs {
                    ln1_xhat: z(if ln { n_in * d } else { 0 }),
                    ln1_scale: z(if ln { n_in } else { 0 }),
                    ln1_out: z(if ln { n_in * d } else { 0 }),
                    ln1_q: z(if no < n_in { no * d } else { 0 }),
                    q: z(no * hd),
                    k: z(n_in * hd),
                    v: z(n_in * hd),
                    pattern: z(batch * c.n_heads * (no / batch) * span.t),
                    z: z(no * hd),
                    attn_out: z(no * d),
                    resid_mid: z(if mlp { no * d } else { 0 }),
                    ln2_xhat: z(if ln && mlp { no * d } else { 0 }),
                    ln2_scale: z(if ln && mlp { no } else { 0 }),
                    ln2_out: z(if ln && mlp { no * d } else { 0 }),
                    pre: z(if mlp { no * m } else { 0 }),
                    post: z(if mlp { no * m } else { 0 }),
                    mlp_out: z(if mlp { no * d } else { 0 }),
                    out_rows: Vec::new(),
                }
            })
            .collect();
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
            blocks,
            lnf_xhat: z(if ln { n_out * d } else { 0 }),
            lnf_scale: z(if ln { n_out } else { 0 }),
            lnf_out: z(n_out * d),
            logits: z(n_out * c.d_vocab_out),
            grads,
            pairs: PairTable::default(),
            used_pairs: false,
            first_row: 0,
        }
    }

    /// Makes every block but the last compute queries, attention output and MLP only for rows
    /// `first..span.t` (keys and values still for every row), leaving the rows before `first` of
    /// their outputs as they are. Attention is causal, so a pass whose interventions all sit at
    /// position `first` or later changes nothing before it: an intervention pass loads the clean
    /// outputs (every later block's `hook_resid_pre`, [`Workspace::resid_pre_mut`]) and sets
    /// `first` to its first intervened position, skipping the rows it cannot change. 0 (the
    /// default) computes every row; the backward pass needs 0.
    pub fn set_first_row(&mut self, first: usize) {
        assert!(first < self.span.t, "first row {first} outside the span {:?}", self.span);
        if first == self.first_row {
            return;
        }
        let (b, t) = (self.batch, self.span.t);
        let (old, new) = (b * (t - self.first_row), b * (t - first));
        let d = self.resid[0].len() / (b * t);
        self.first_row = first;
        let nl = self.blocks.len();
        for bb in &mut self.blocks[..nl - 1] {
            // Every buffer over query rows keeps its width per row.
            for v in [
                &mut bb.q,
                &mut bb.pattern,
                &mut bb.z,
                &mut bb.attn_out,
                &mut bb.resid_mid,
                &mut bb.ln2_xhat,
                &mut bb.ln2_scale,
                &mut bb.ln2_out,
                &mut bb.pre,
                &mut bb.post,
                &mut bb.mlp_out,
            ] {
                let per_row = v.len() / old;
                v.resize(new * per_row, 0.0);
            }
            let gathered = if first > 0 { new * d } else { 0 };
            bb.ln1_q.resize(gathered, 0.0);
            bb.out_rows.resize(gathered, 0.0);
        }
    }

    /// Distinct (token, position) pairs of the last pass without hooks (None after a hooked pass).
    pub fn layer0_pairs(&self) -> Option<usize> {
        self.used_pairs.then_some(self.pairs.pairs.len())
    }

    /// Block `l`'s `hook_resid_pre`, [batch, span.t, d_model] (every block but the last reads
    /// every position): write it before a [`forward_blocks`] pass that starts at block `l`.
    pub fn resid_pre_mut(&mut self, l: usize) -> &mut [f32] {
        assert!(l + 1 < self.resid.len(), "block {l} does not exist");
        &mut self.resid[l]
    }

    /// First query position of block `l`.
    fn q0(&self, l: usize, n_layers: usize) -> usize {
        if l + 1 == n_layers {
            self.span.q0
        } else {
            self.first_row
        }
    }
}

fn hook<H: Hooks>(hooks: &mut H, point: HookPoint, data: &mut [f32], shape: Vec<usize>, pos_offset: usize) {
    if H::ACTIVE {
        hooks.call(point, HookTensor { data, shape, pos_offset });
    }
}

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
    ws.used_pairs = !H::ACTIVE && blocks.start == 0 && ws.first_row == 0;
    if blocks.start == 0 {
        if ws.used_pairs {
            ws.pairs.build(tokens, n_ctx, ws.batch, ws.span.t, c.d_vocab);
            ws.pairs.forward(p, &p.layout.blocks[0]);
        } else {
            embed(p, tokens, n_ctx, ws, hooks);
        }
    }
    let last = blocks.end == c.n_layers;
    for l in blocks {
        block_forward(p, l, ws, hooks);
    }
    if last {
        unembed(p, ws, hooks);
    }
}

/// Final LayerNorm and unembedding of the last block's output into `ws.logits`.
fn unembed<H: Hooks>(p: &Params, ws: &mut Workspace, hooks: &mut H) {
    let c = &p.config;
    let (b, span, d) = (ws.batch, ws.span, c.d_model);
    let x = std::mem::take(&mut ws.resid[c.n_layers]);
    let tq = span.tq();
    let out = match &p.layout.ln_final {
        Some(lnf) => {
            let (xh, sc, o) = (&mut ws.lnf_xhat, &mut ws.lnf_scale, &mut ws.lnf_out);
            layernorm(p, lnf, &x, xh, sc, o, hooks, [HookPoint::LnFinalScale, HookPoint::LnFinalNormalized], [b, tq], span.q0);
            &ws.lnf_out
        }
        None => &x,
    };
    matmul(&mut ws.logits, MatRef::new(out, b * tq, d), MatRef::new(&p.data[p.layout.w_u.clone()], d, c.d_vocab_out), false);
    add_bias(&mut ws.logits, &p.data[p.layout.b_u.clone()]);
    ws.resid[c.n_layers] = x;
}

fn embed<H: Hooks>(p: &Params, tokens: &[u32], n_ctx: usize, ws: &mut Workspace, hooks: &mut H) {
    let (d, t) = (p.config.d_model, ws.span.t);
    let (w_e, w_pos) = (&p.data[p.layout.w_e.clone()], &p.data[p.layout.w_pos.clone()]);
    let x = &mut ws.resid[0];
    if H::ACTIVE {
        let shape = vec![ws.batch, t, d];
        let mut e = vec![0.0; x.len()];
        let mut pe = vec![0.0; x.len()];
        for (r, (er, pr)) in e.chunks_exact_mut(d).zip(pe.chunks_exact_mut(d)).enumerate() {
            let tok = tokens[(r / t) * n_ctx + r % t] as usize;
            er.copy_from_slice(&w_e[tok * d..(tok + 1) * d]);
            pr.copy_from_slice(&w_pos[(r % t) * d..(r % t + 1) * d]);
        }
        hook(hooks, HookPoint::Embed, &mut e, shape.clone(), 0);
        hook(hooks, HookPoint::PosEmbed, &mut pe, shape, 0);
        x.iter_mut().zip(e.iter().zip(&pe)).for_each(|(x, (a, b))| *x = a + b);
    } else {
        for (r, row) in x.chunks_exact_mut(d).enumerate() {
            let tok = tokens[(r / t) * n_ctx + r % t] as usize;
            let (er, pr) = (&w_e[tok * d..(tok + 1) * d], &w_pos[(r % t) * d..(r % t + 1) * d]);
            row.iter_mut().zip(er.iter().zip(pr)).for_each(|(x, (a, b))| *x = a + b);
        }
    }
}

/// LayerNorm with its two hooks; the output is recomputed if a hook edited `hook_normalized`.
#[allow(clippy::too_many_arguments)]
fn layernorm<H: Hooks>(
    p: &Params,
    ln: &LnIdx,
    x: &[f32],
    xhat: &mut [f32],
    scale: &mut [f32],
    out: &mut [f32],
    hooks: &mut H,
    points: [HookPoint; 2],
    bt: [usize; 2],
    pos0: usize,
) {
    let (w, bias) = (&p.data[ln.w.clone()], &p.data[ln.b.clone()]);
    ops::layernorm_forward(x, w, bias, p.config.eps as f32, xhat, scale, out);
    if H::ACTIVE {
        hook(hooks, points[0], scale, vec![bt[0], bt[1], 1], pos0);
        hook(hooks, points[1], xhat, vec![bt[0], bt[1], w.len()], pos0);
        for (o, xh) in out.chunks_exact_mut(w.len()).zip(xhat.chunks_exact(w.len())) {
            for i in 0..w.len() {
                o[i] = xh[i] * w[i] + bias[i];
            }
        }
    }
}

/// Copies rows `q0..t` of every sequence of `x` ([batch, t, d]) into `out` ([batch, t - q0, d]).
fn gather_rows(x: &[f32], d: usize, span: Span, out: &mut [f32]) {
    for (o, xs) in out.chunks_exact_mut(span.tq() * d).zip(x.chunks_exact(span.t * d)) {
        o.copy_from_slice(&xs[span.q0 * d..]);
    }
}

/// Copies rows of `y` ([batch, t - q0, d]) into rows `q0..t` of `x` ([batch, t, d]).
fn copy_rows(x: &mut [f32], d: usize, span: Span, y: &[f32]) {
    for (xs, ys) in x.chunks_exact_mut(span.t * d).zip(y.chunks_exact(span.tq() * d)) {
        xs[span.q0 * d..].copy_from_slice(ys);
    }
}

/// Adds rows of `y` ([batch, t - q0, d]) into rows `q0..t` of `x` ([batch, t, d]).
fn scatter_add_rows(x: &mut [f32], d: usize, span: Span, y: &[f32]) {
    for (xs, ys) in x.chunks_exact_mut(span.t * d).zip(y.chunks_exact(span.tq() * d)) {
        xs[span.q0 * d..].iter_mut().zip(ys).for_each(|(a, b)| *a += b);
    }
}

fn block_forward<H: Hooks>(p: &Params, l: usize, ws: &mut Workspace, hooks: &mut H) {
    let c = &p.config;
    let idx = &p.layout.blocks[l];
    let (b, t, d, nh, dh) = (ws.batch, ws.span.t, c.d_model, c.n_heads, c.d_head);
    let hd = nh * dh;
    let q0 = ws.q0(l, c.n_layers);
    let sub = Span { t, q0 };
    let (tq, n_in, n_out) = (t - q0, b * t, b * (t - q0));
    // A block before the last that starts at a later row computes rows q0..t apart and copies
    // them into its output, whose earlier rows already hold the clean values.
    let partial = q0 > 0 && l + 1 < c.n_layers;
    let (before, after) = ws.resid.split_at_mut(l + 1);
    let (x, full_out) = (&mut before[l], &mut after[0]);
    let bb = &mut ws.blocks[l];
    let mut rows = std::mem::take(&mut bb.out_rows);
    let x_out: &mut [f32] = if partial { &mut rows } else { full_out };
    let a = &idx.attn;
    if l == 0 && ws.used_pairs {
        ws.pairs.expand(t, q0, x, &mut bb.q, &mut bb.k, &mut bb.v);
    } else {
        hook(hooks, HookPoint::ResidPre(l), x, vec![b, t, d], 0);
        let ln_in: &[f32] = match &idx.ln1 {
            Some(ln) => {
                let points = [HookPoint::Ln1Scale(l), HookPoint::Ln1Normalized(l)];
                layernorm(p, ln, x, &mut bb.ln1_xhat, &mut bb.ln1_scale, &mut bb.ln1_out, hooks, points, [b, t], 0);
                &bb.ln1_out
            }
            None => x,
        };
        let ln_q: &[f32] = if q0 > 0 {
            gather_rows(ln_in, d, sub, &mut bb.ln1_q);
            &bb.ln1_q
        } else {
            ln_in
        };
        // Queries for the query rows, keys and values for all rows: [rows, head, d_head].
        for h in 0..nh {
            let w = |r: &std::ops::Range<usize>| MatRef::new(&p.data[r.start + h * d * dh..r.start + (h + 1) * d * dh], d, dh);
            matmul_into(&mut bb.q[h * dh..], hd, MatRef::new(ln_q, n_out, d), w(&a.w_q), false);
            matmul_into(&mut bb.k[h * dh..], hd, MatRef::new(ln_in, n_in, d), w(&a.w_k), false);
            matmul_into(&mut bb.v[h * dh..], hd, MatRef::new(ln_in, n_in, d), w(&a.w_v), false);
        }
        add_bias(&mut bb.q, &p.data[a.b_q.clone()]);
        add_bias(&mut bb.k, &p.data[a.b_k.clone()]);
        add_bias(&mut bb.v, &p.data[a.b_v.clone()]);
    }
    hook(hooks, HookPoint::Q(l), &mut bb.q, vec![b, tq, nh, dh], q0);
    hook(hooks, HookPoint::K(l), &mut bb.k, vec![b, t, nh, dh], 0);
    hook(hooks, HookPoint::V(l), &mut bb.v, vec![b, t, nh, dh], 0);
    let dims = AttnDims { batch: b, heads: nh, d_head: dh, t, q0 };
    ops::attn_scores(dims, &bb.q, &bb.k, &mut bb.pattern);
    hook(hooks, HookPoint::AttnScores(l), &mut bb.pattern, vec![b, nh, tq, t], q0);
    ops::softmax_rows(&mut bb.pattern, t);
    hook(hooks, HookPoint::Pattern(l), &mut bb.pattern, vec![b, nh, tq, t], q0);
    ops::attn_mix(dims, &bb.pattern, &bb.v, &mut bb.z);
    hook(hooks, HookPoint::Z(l), &mut bb.z, vec![b, tq, nh, dh], q0);
    // W_O [head, d_head, d_model] is one [head * d_head, d_model] matrix.
    matmul(&mut bb.attn_out, MatRef::new(&bb.z, n_out, hd), MatRef::new(&p.data[a.w_o.clone()], hd, d), false);
    add_bias(&mut bb.attn_out, &p.data[a.b_o.clone()]);
    hook(hooks, HookPoint::AttnOut(l), &mut bb.attn_out, vec![b, tq, d], q0);
    let mid = if idx.mlp.is_some() { &mut bb.resid_mid } else { &mut *x_out };
    if q0 > 0 {
        gather_rows(x, d, sub, mid);
    } else {
        mid.copy_from_slice(x);
    }
    mid.iter_mut().zip(&bb.attn_out).for_each(|(m, a)| *m += a);
    if let Some(mlp) = &idx.mlp {
        mlp_forward(p, l, mlp, idx.ln2.as_ref(), bb, Span { t: tq, q0 }, b, hooks, x_out);
    }
    hook(hooks, HookPoint::ResidPost(l), x_out, vec![b, tq, d], q0);
    if partial {
        copy_rows(full_out, d, sub, &rows);
    }
    bb.out_rows = rows;
}

/// The MLP sub-block forward, on `rows.tq()` rows per sequence (the positions `q0..` of the
/// hooks' shapes): `x_out = resid_mid + W_out act(W_in LN2(resid_mid) + b_in) + b_out`.
#[allow(clippy::too_many_arguments)]
fn mlp_forward<H: Hooks>(
    p: &Params,
    l: usize,
    mlp: &MlpIdx,
    ln2: Option<&LnIdx>,
    bb: &mut BlockBufs,
    rows: Span,
    b: usize,
    hooks: &mut H,
    x_out: &mut [f32],
) {
    let c = &p.config;
    let (d, m, tq, q0) = (c.d_model, c.d_mlp, rows.t, rows.q0);
    let n_out = b * tq;
    hook(hooks, HookPoint::ResidMid(l), &mut bb.resid_mid, vec![b, tq, d], q0);
    let ln2_in: &[f32] = match ln2 {
        Some(ln) => {
            let points = [HookPoint::Ln2Scale(l), HookPoint::Ln2Normalized(l)];
            layernorm(p, ln, &bb.resid_mid, &mut bb.ln2_xhat, &mut bb.ln2_scale, &mut bb.ln2_out, hooks, points, [b, tq], q0);
            &bb.ln2_out
        }
        None => &bb.resid_mid,
    };
    matmul(&mut bb.pre, MatRef::new(ln2_in, n_out, d), MatRef::new(&p.data[mlp.w_in.clone()], d, m), false);
    add_bias(&mut bb.pre, &p.data[mlp.b_in.clone()]);
    hook(hooks, HookPoint::MlpPre(l), &mut bb.pre, vec![b, tq, m], q0);
    ops::activation_forward(c.act_fn, &bb.pre, &mut bb.post);
    hook(hooks, HookPoint::MlpPost(l), &mut bb.post, vec![b, tq, m], q0);
    matmul(&mut bb.mlp_out, MatRef::new(&bb.post, n_out, m), MatRef::new(&p.data[mlp.w_out.clone()], m, d), false);
    add_bias(&mut bb.mlp_out, &p.data[mlp.b_out.clone()]);
    hook(hooks, HookPoint::MlpOut(l), &mut bb.mlp_out, vec![b, tq, d], q0);
    x_out.iter_mut().zip(bb.resid_mid.iter().zip(&bb.mlp_out)).for_each(|(o, (r, m))| *o = r + m);
}

/// The MLP sub-block backward over `n_out` rows: reads d hook_resid_post from `g.d_out`, adds the
/// MLP's path into `g.d_mid` (which already holds the residual connection's copy) and its
/// parameters' gradients into `grad`.
fn mlp_backward(p: &Params, mlp: &MlpIdx, ln2: Option<&LnIdx>, bb: &BlockBufs, n_out: usize, g: &mut GradBufs, grad: &mut [f32]) {
    let c = &p.config;
    let (d, m) = (c.d_model, c.d_mlp);
    let d_mid = &mut g.d_mid[..n_out * d];
    let d_post = MatRef::new(&g.d_out[..n_out * d], n_out, d);
    matmul(&mut grad[mlp.w_out.clone()], MatRef::new(&bb.post, n_out, m).t(), d_post, true);
    add_col_sums(&mut grad[mlp.b_out.clone()], &g.d_out[..n_out * d]);
    let dh_buf = &mut g.d_hidden[..n_out * m];
    matmul(dh_buf, d_post, MatRef::new(&p.data[mlp.w_out.clone()], m, d).t(), false);
    ops::activation_backward(c.act_fn, &bb.pre, dh_buf);
    let ln2_in: &[f32] = if ln2.is_some() { &bb.ln2_out } else { &bb.resid_mid };
    matmul(&mut grad[mlp.w_in.clone()], MatRef::new(ln2_in, n_out, d).t(), MatRef::new(dh_buf, n_out, m), true);
    add_col_sums(&mut grad[mlp.b_in.clone()], dh_buf);
    let w_in = MatRef::new(&p.data[mlp.w_in.clone()], d, m);
    match ln2 {
        Some(ln) => {
            matmul(&mut g.d_ln[..n_out * d], MatRef::new(dh_buf, n_out, m), w_in.t(), false);
            let (dw, db) = two_mut(grad, &ln.w, &ln.b);
            ops::layernorm_backward(&g.d_ln[..n_out * d], &bb.ln2_xhat, &bb.ln2_scale, &p.data[ln.w.clone()], dw, db, d_mid, true);
        }
        None => matmul(d_mid, MatRef::new(dh_buf, n_out, m), w_in.t(), true),
    }
}

/// Backward pass from `d logits` already in the workspace (see [`loss`] with `with_grad`): adds every
/// parameter's gradient into `grad` (same layout as `p.data`).
pub fn backward(p: &Params, tokens: &[u32], n_ctx: usize, ws: &mut Workspace, grad: &mut [f32]) {
    assert_eq!(ws.first_row, 0, "the backward pass needs every row (Workspace::set_first_row(0))");
    let c = &p.config;
    let (b, d, tq) = (ws.batch, c.d_model, ws.span.tq());
    let n_out = b * tq;
    let lay = &p.layout;
    let mut g = std::mem::take(&mut ws.grads);
    // Unembedding.
    let dl = MatRef::new(&g.dlogits, n_out, c.d_vocab_out);
    let lnf_in: &[f32] = if lay.ln_final.is_some() { &ws.lnf_out } else { &ws.resid[c.n_layers] };
    matmul(&mut grad[lay.w_u.clone()], MatRef::new(lnf_in, n_out, d).t(), dl, true);
    add_col_sums(&mut grad[lay.b_u.clone()], &g.dlogits);
    let w_u = MatRef::new(&p.data[lay.w_u.clone()], d, c.d_vocab_out);
    match &lay.ln_final {
        Some(lnf) => {
            matmul(&mut g.d_ln[..n_out * d], dl, w_u.t(), false);
            let (dw, db) = two_mut(grad, &lnf.w, &lnf.b);
            ops::layernorm_backward(
                &g.d_ln[..n_out * d],
                &ws.lnf_xhat,
                &ws.lnf_scale,
                &p.data[lnf.w.clone()],
                dw,
                db,
                &mut g.d_out[..n_out * d],
                false,
            );
        }
        None => matmul(&mut g.d_out[..n_out * d], dl, w_u.t(), false),
    }
    let mut pairs = std::mem::take(&mut ws.pairs);
    for l in (0..c.n_layers).rev() {
        block_backward(p, l, ws, ws.used_pairs.then_some(&mut pairs), &mut g, grad);
        std::mem::swap(&mut g.d_out, &mut g.d_in);
    }
    ws.pairs = pairs;
    // Embeddings: g.d_out now holds d hook_resid_pre of block 0.
    let t = ws.span.t;
    for (r, row) in g.d_out[..b * t * d].chunks_exact(d).enumerate() {
        let tok = tokens[(r / t) * n_ctx + r % t] as usize;
        let pos = r % t;
        grad[lay.w_e.start + tok * d..lay.w_e.start + (tok + 1) * d].iter_mut().zip(row).for_each(|(g, v)| *g += v);
        grad[lay.w_pos.start + pos * d..lay.w_pos.start + (pos + 1) * d].iter_mut().zip(row).for_each(|(g, v)| *g += v);
    }
    ws.grads = g;
}

/// Head `h`'s columns of a [rows, head * d_head] buffer.
fn head_cols(buf: &[f32], h: usize, rows: usize, dh: usize, hd: usize) -> MatRef<'_> {
    MatRef::strided(&buf[h * dh..], rows, dh, hd, 1)
}

/// Two disjoint mutable sub-slices of the gradient (a LayerNorm's weight and bias).
fn two_mut<'a>(x: &'a mut [f32], a: &std::ops::Range<usize>, b: &std::ops::Range<usize>) -> (&'a mut [f32], &'a mut [f32]) {
    assert!(a.end <= b.start);
    let (lo, hi) = x.split_at_mut(b.start);
    (&mut lo[a.clone()], &mut hi[..b.len()])
}

/// Block `l` backward: reads d hook_resid_post from `g.d_out`, writes d hook_resid_pre to `g.d_in`.
/// With `pairs` (layer 0 of a pass without hooks), the LN1 path's gradient goes straight to the
/// embeddings per distinct pair and `g.d_in` carries only the residual connection.
fn block_backward(p: &Params, l: usize, ws: &Workspace, pairs: Option<&mut PairTable>, g: &mut GradBufs, grad: &mut [f32]) {
    let c = &p.config;
    let idx = &p.layout.blocks[l];
    let bb = &ws.blocks[l];
    let (b, t, d, nh, dh) = (ws.batch, ws.span.t, c.d_model, c.n_heads, c.d_head);
    let hd = nh * dh;
    let q0 = ws.q0(l, c.n_layers);
    let sub = Span { t, q0 };
    let (n_in, n_out) = (b * t, b * (t - q0));
    let d_mid = &mut g.d_mid[..n_out * d];
    d_mid.copy_from_slice(&g.d_out[..n_out * d]);
    if let Some(mlp) = &idx.mlp {
        mlp_backward(p, mlp, idx.ln2.as_ref(), bb, n_out, g, grad);
    }
    // Attention output projection.
    let a = &idx.attn;
    let d_mid = &g.d_mid[..n_out * d];
    matmul(&mut grad[a.w_o.clone()], MatRef::new(&bb.z, n_out, hd).t(), MatRef::new(d_mid, n_out, d), true);
    add_col_sums(&mut grad[a.b_o.clone()], d_mid);
    matmul(&mut g.dz[..n_out * hd], MatRef::new(d_mid, n_out, d), MatRef::new(&p.data[a.w_o.clone()], hd, d).t(), false);
    let dims = AttnDims { batch: b, heads: nh, d_head: dh, t, q0 };
    ops::attention_backward(
        dims,
        &bb.q,
        &bb.k,
        &bb.v,
        &bb.pattern,
        &g.dz[..n_out * hd],
        &mut g.dscores[..b * nh * (t - q0) * t],
        &mut g.dq[..n_out * hd],
        &mut g.dk[..n_in * hd],
        &mut g.dv[..n_in * hd],
    );
    let d_in = &mut g.d_in[..n_in * d];
    if let Some(pairs) = pairs.filter(|_| l == 0) {
        pairs.backward(p, idx, t, q0, &g.dq[..n_out * hd], &g.dk[..n_in * hd], &g.dv[..n_in * hd], grad);
        d_in.fill(0.0);
    } else {
        add_col_sums(&mut grad[a.b_q.clone()], &g.dq[..n_out * hd]);
        add_col_sums(&mut grad[a.b_k.clone()], &g.dk[..n_in * hd]);
        add_col_sums(&mut grad[a.b_v.clone()], &g.dv[..n_in * hd]);
        let ln_in: &[f32] = if idx.ln1.is_some() { &bb.ln1_out } else { &ws.resid[l] };
        let ln_q: &[f32] = if q0 > 0 { &bb.ln1_q } else { ln_in };
        let d_ln = &mut g.d_ln[..n_in * d];
        let d_lnq = if q0 > 0 { &mut g.d_lnq[..n_out * d] } else { &mut [][..] };
        for h in 0..nh {
            let wr = |r: &std::ops::Range<usize>| r.start + h * d * dh..r.start + (h + 1) * d * dh;
            let (wq, wk, wv) = (wr(&a.w_q), wr(&a.w_k), wr(&a.w_v));
            matmul(&mut grad[wq.clone()], MatRef::new(ln_q, n_out, d).t(), head_cols(&g.dq, h, n_out, dh, hd), true);
            matmul(&mut grad[wk.clone()], MatRef::new(ln_in, n_in, d).t(), head_cols(&g.dk, h, n_in, dh, hd), true);
            matmul(&mut grad[wv.clone()], MatRef::new(ln_in, n_in, d).t(), head_cols(&g.dv, h, n_in, dh, hd), true);
            let w = |r: std::ops::Range<usize>| MatRef::new(&p.data[r], d, dh).t();
            matmul(d_ln, head_cols(&g.dk, h, n_in, dh, hd), w(wk), h > 0);
            matmul(d_ln, head_cols(&g.dv, h, n_in, dh, hd), w(wv), true);
            if q0 > 0 {
                matmul(d_lnq, head_cols(&g.dq, h, n_out, dh, hd), w(wq), h > 0);
            } else {
                matmul(d_ln, head_cols(&g.dq, h, n_out, dh, hd), w(wq), true);
            }
        }
        if q0 > 0 {
            scatter_add_rows(d_ln, d, sub, d_lnq);
        }
        match &idx.ln1 {
            Some(ln) => {
                let (dw, db) = two_mut(grad, &ln.w, &ln.b);
                ops::layernorm_backward(d_ln, &bb.ln1_xhat, &bb.ln1_scale, &p.data[ln.w.clone()], dw, db, d_in, false);
            }
            None => d_in.copy_from_slice(d_ln),
        }
    }
    // The residual connection around the block.
    if q0 > 0 {
        scatter_add_rows(d_in, d, sub, d_mid);
    } else {
        d_in.iter_mut().zip(d_mid).for_each(|(a, b)| *a += b);
    }
}

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
