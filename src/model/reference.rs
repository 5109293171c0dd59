//! The reference transformer, readable top to bottom: TransformerLens's `HookedTransformer` over
//! every position of a batch, with each sub-block's forward next to its backward (as in llm.c),
//! one named buffer per activation, and every weight read by its TransformerLens name.
//!
//! This is the model's specification. The passes that training, evaluation and analysis run
//! (`model::transformer`, [`super::forward`]: logits for the answer rows only, a partial recompute from a cached
//! prefix, layer 0 once per distinct (token, position) pair; `eval::one_layer`'s tables) are
//! optimisations of it, each tested equal to it (`tests/reference_model.rs`), and it is tested
//! against TransformerLens itself (`tests/transformer_lens_fixtures.rs`).

use super::hooks::{HookPoint, HookTensor, Hooks, NoHooks};
use super::linalg::{add_bias, add_col_sums, matmul, MatRef};
use super::ops::{self, AttnDims, AttnGrads, AttnSaved};
use super::params::{Ln, Params};
use std::collections::BTreeMap;

/// A weight by its TransformerLens name.
fn w<'p>(p: &'p Params, name: &str) -> &'p [f32] {
    p.get(name).unwrap_or_else(|| panic!("the layout has no tensor '{name}'"))
}

/// Gradients by TransformerLens parameter name, as `{n: p.grad for n, p in model.named_parameters()}`.
pub type Grads = BTreeMap<String, Vec<f32>>;

fn add_grad(g: &mut Grads, name: String, values: Vec<f32>) {
    match g.get_mut(&name) {
        Some(v) => v.iter_mut().zip(values).for_each(|(a, b)| *a += b),
        None => {
            g.insert(name, values);
        }
    }
}

/// The activations of one forward pass, kept for the backward pass.
pub struct Activations {
    /// Sequences in the batch.
    pub batch: usize,
    /// Positions per sequence.
    pub t: usize,
    tokens: Vec<u32>,
    layers: Vec<BlockActs>,
    ln_final: Option<LnActs>,
    /// The last block's `hook_resid_post` (the unembedding's input before `ln_final`).
    resid_final: Vec<f32>,
    /// Logits [batch, t, d_vocab_out].
    pub logits: Vec<f32>,
}

/// A LayerNorm's saved values: `hook_normalized`, `hook_scale` and its output.
struct LnActs {
    xhat: Vec<f32>,
    scale: Vec<f32>,
    out: Vec<f32>,
}

/// One block's saved values.
struct BlockActs {
    resid_pre: Vec<f32>,
    ln1: Option<LnActs>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    pattern: Vec<f32>,
    z: Vec<f32>,
    resid_mid: Vec<f32>,
    ln2: Option<LnActs>,
    pre: Vec<f32>,
    post: Vec<f32>,
}

fn hook<H: Hooks>(hooks: &mut H, point: HookPoint, data: &mut [f32], shape: &[usize]) {
    hooks.call(point, HookTensor { data, shape: shape.to_vec(), pos_offset: 0 });
}

/// The forward pass over `tokens` ([batch, t] row-major); `hooks` sees and may edit every
/// activation under its TransformerLens name, as `run_with_hooks` does.
pub fn forward<H: Hooks>(p: &Params, tokens: &[u32], batch: usize, t: usize, hooks: &mut H) -> Activations {
    let c = &p.config;
    assert!(t <= c.n_ctx && tokens.len() == batch * t, "{} tokens are not {batch} sequences of {t} <= n_ctx", tokens.len());
    let mut x = embed_forward(p, tokens, batch, t, hooks);
    let mut layers = Vec::with_capacity(c.n_layers);
    for l in 0..c.n_layers {
        let (acts, out) = block_forward(p, l, x, batch, t, hooks);
        layers.push(acts);
        x = out;
    }
    let (ln_final, logits) = unembed_forward(p, &x, batch, t, hooks);
    Activations { batch, t, tokens: tokens.to_vec(), layers, ln_final, resid_final: x, logits }
}

/// The backward pass from `d logits` ([batch, t, d_vocab_out]): every parameter's gradient.
pub fn backward(p: &Params, acts: &Activations, dlogits: &[f32]) -> Grads {
    backward_hooked(p, acts, dlogits, &mut NoHooks)
}

/// [`backward`] with gradient hooks, as TransformerLens's backward hooks: `hooks` sees the
/// gradient of the loss with respect to an activation under that activation's hook name and
/// shape, in reverse forward order, and an edit to it changes what flows further back. Per block
/// (last first) the points are `hook_resid_post`, `mlp.hook_pre`, `hook_resid_mid` (with an
/// MLP), `attn.hook_z`, `attn.hook_q`, `attn.hook_k`, `attn.hook_v`, `hook_resid_pre`; other hook
/// points get no gradient call. Edge attribution patching (`analysis::paths`) reads these.
pub fn backward_hooked<H: Hooks>(p: &Params, acts: &Activations, dlogits: &[f32], hooks: &mut H) -> Grads {
    let mut g = Grads::new();
    let mut dx = unembed_backward(p, acts, dlogits, &mut g);
    for l in (0..p.config.n_layers).rev() {
        dx = block_backward(p, l, &acts.layers[l], acts, dx, &mut g, hooks);
    }
    embed_backward(p, acts, &dx, &mut g);
    g
}

/// The mean cross-entropy of each sequence's next tokens at positions `first..first + n` (the
/// papers' loss) and its gradient with respect to the logits.
pub fn loss(acts: &Activations, v: usize, first: usize, n: usize) -> (f64, Vec<f32>) {
    let mut dlogits = vec![0.0; acts.logits.len()];
    let mut nll = vec![0.0; acts.batch * n];
    let scale = 1.0 / (acts.batch * n) as f32;
    for b in 0..acts.batch {
        let targets = &acts.tokens[b * acts.t + first + 1..b * acts.t + first + n + 1];
        let rows = (b * acts.t + first) * v..(b * acts.t + first + n) * v;
        ops::cross_entropy(&acts.logits[rows.clone()], v, targets, &mut nll[b * n..(b + 1) * n], Some((&mut dlogits[rows], scale)));
    }
    (nll.iter().sum::<f64>() / nll.len() as f64, dlogits)
}

// ---- Embedding: x = W_E[token] + W_pos[position] ----

fn embed_forward<H: Hooks>(p: &Params, tokens: &[u32], batch: usize, t: usize, hooks: &mut H) -> Vec<f32> {
    let d = p.config.d_model;
    let (w_e, w_pos) = (w(p, "embed.W_E"), w(p, "pos_embed.W_pos"));
    let mut e: Vec<f32> = tokens.iter().flat_map(|&tok| &w_e[tok as usize * d..(tok as usize + 1) * d]).copied().collect();
    let mut pe: Vec<f32> = (0..batch * t).flat_map(|r| &w_pos[(r % t) * d..(r % t + 1) * d]).copied().collect();
    hook(hooks, HookPoint::Embed, &mut e, &[batch, t, d]);
    hook(hooks, HookPoint::PosEmbed, &mut pe, &[batch, t, d]);
    e.iter().zip(&pe).map(|(a, b)| a + b).collect()
}

fn embed_backward(p: &Params, acts: &Activations, dx: &[f32], g: &mut Grads) {
    let c = &p.config;
    let d = c.d_model;
    let mut dw_e = vec![0.0; c.d_vocab * d];
    let mut dw_pos = vec![0.0; c.n_ctx * d];
    for (r, row) in dx.chunks_exact(d).enumerate() {
        let (tok, pos) = (acts.tokens[r] as usize, r % acts.t);
        dw_e[tok * d..(tok + 1) * d].iter_mut().zip(row).for_each(|(a, b)| *a += b);
        dw_pos[pos * d..(pos + 1) * d].iter_mut().zip(row).for_each(|(a, b)| *a += b);
    }
    add_grad(g, "embed.W_E".into(), dw_e);
    add_grad(g, "pos_embed.W_pos".into(), dw_pos);
}

// ---- LayerNorm: out = (x - mean) / sqrt(var + eps) * w + b ----

fn ln_forward<H: Hooks>(p: &Params, prefix: &str, x: &[f32], points: [HookPoint; 2], shape: &[usize], hooks: &mut H) -> LnActs {
    let (lw, lb) = (w(p, &format!("{prefix}.w")), w(p, &format!("{prefix}.b")));
    let rows = x.len() / lw.len();
    let mut a = LnActs { xhat: vec![0.0; x.len()], scale: vec![0.0; rows], out: vec![0.0; x.len()] };
    ops::layernorm_forward(x, lw, lb, p.config.eps as f32, &mut a.xhat, &mut a.scale, &mut a.out);
    hook(hooks, points[0], &mut a.scale, &[shape[0], shape[1], 1]);
    hook(hooks, points[1], &mut a.xhat, shape);
    // A hook may have edited hook_normalized: the output follows it.
    for (o, xh) in a.out.chunks_exact_mut(lw.len()).zip(a.xhat.chunks_exact(lw.len())) {
        o.iter_mut().zip(xh).zip(lw.iter().zip(lb)).for_each(|((o, x), (w, b))| *o = x * w + b);
    }
    a
}

fn ln_backward(p: &Params, prefix: &str, a: &LnActs, dout: &[f32], g: &mut Grads) -> Vec<f32> {
    let lw = w(p, &format!("{prefix}.w"));
    let (mut dw, mut db, mut dx) = (vec![0.0; lw.len()], vec![0.0; lw.len()], vec![0.0; dout.len()]);
    ops::layernorm_backward(dout, &a.xhat, &a.scale, lw, &mut Ln { w: &mut dw, b: &mut db }, &mut dx, false);
    add_grad(g, format!("{prefix}.w"), dw);
    add_grad(g, format!("{prefix}.b"), db);
    dx
}

/// A LayerNorm if the model has them (else the identity): its saved values and output.
fn maybe_ln<H: Hooks>(p: &Params, prefix: &str, x: &[f32], points: [HookPoint; 2], shape: &[usize], hooks: &mut H) -> Option<LnActs> {
    p.config.has_ln().then(|| ln_forward(p, prefix, x, points, shape, hooks))
}

// ---- Block: resid_mid = x + attn(ln1(x)); resid_post = resid_mid + mlp(ln2(resid_mid)) ----

fn block_forward<H: Hooks>(p: &Params, l: usize, mut x: Vec<f32>, batch: usize, t: usize, hooks: &mut H) -> (BlockActs, Vec<f32>) {
    let c = &p.config;
    let shape = [batch, t, c.d_model];
    hook(hooks, HookPoint::ResidPre(l), &mut x, &shape);
    let ln1 = maybe_ln(p, &format!("blocks.{l}.ln1"), &x, [HookPoint::Ln1Scale(l), HookPoint::Ln1Normalized(l)], &shape, hooks);
    let attn_in = ln1.as_ref().map_or(&x, |a| &a.out);
    let (mut acts, mut attn_out) = attention_forward(p, l, attn_in, batch, t, hooks);
    acts.ln1 = ln1;
    hook(hooks, HookPoint::AttnOut(l), &mut attn_out, &shape);
    let mut mid: Vec<f32> = x.iter().zip(&attn_out).map(|(a, b)| a + b).collect();
    acts.resid_pre = x;
    if c.has_mlp() {
        hook(hooks, HookPoint::ResidMid(l), &mut mid, &shape);
        acts.ln2 = maybe_ln(p, &format!("blocks.{l}.ln2"), &mid, [HookPoint::Ln2Scale(l), HookPoint::Ln2Normalized(l)], &shape, hooks);
        let mlp_in = acts.ln2.as_ref().map_or(&mid, |a| &a.out);
        let (pre, post, mut mlp_out) = mlp_forward(p, l, mlp_in, batch, t, hooks);
        (acts.pre, acts.post) = (pre, post);
        hook(hooks, HookPoint::MlpOut(l), &mut mlp_out, &shape);
        acts.resid_mid = mid;
        mid = acts.resid_mid.iter().zip(&mlp_out).map(|(a, b)| a + b).collect();
    }
    hook(hooks, HookPoint::ResidPost(l), &mut mid, &shape);
    (acts, mid)
}

/// From d `hook_resid_post` to d `hook_resid_pre`, adding the block's parameter gradients and
/// showing the activation gradients to `hooks` ([`backward_hooked`]).
#[allow(clippy::too_many_arguments)]
fn block_backward<H: Hooks>(
    p: &Params,
    l: usize,
    a: &BlockActs,
    acts: &Activations,
    mut d_post: Vec<f32>,
    g: &mut Grads,
    hooks: &mut H,
) -> Vec<f32> {
    let shape = [acts.batch, acts.t, p.config.d_model];
    hook(hooks, HookPoint::ResidPost(l), &mut d_post, &shape);
    let mut d_mid = d_post.clone();
    if p.config.has_mlp() {
        let mlp_in = a.ln2.as_ref().map_or(&a.resid_mid, |x| &x.out);
        let d_mlp_in = mlp_backward(p, l, a, mlp_in, &d_post, acts.batch, g, hooks);
        let d_ln2 = match &a.ln2 {
            Some(ln2) => ln_backward(p, &format!("blocks.{l}.ln2"), ln2, &d_mlp_in, g),
            None => d_mlp_in,
        };
        d_mid.iter_mut().zip(d_ln2).for_each(|(a, b)| *a += b);
        hook(hooks, HookPoint::ResidMid(l), &mut d_mid, &shape);
    }
    let attn_in = a.ln1.as_ref().map_or(&a.resid_pre, |x| &x.out);
    let d_attn_in = attention_backward(p, l, a, attn_in, acts, &d_mid, g, hooks);
    let d_ln1 = match &a.ln1 {
        Some(ln1) => ln_backward(p, &format!("blocks.{l}.ln1"), ln1, &d_attn_in, g),
        None => d_attn_in,
    };
    let mut d_pre: Vec<f32> = d_mid.iter().zip(d_ln1).map(|(a, b)| a + b).collect();
    hook(hooks, HookPoint::ResidPre(l), &mut d_pre, &shape);
    d_pre
}

// ---- Attention: per head h, z_h = softmax(mask(q_h k_h^T / sqrt(d_head))) v_h; out = z W_O + b_O ----

/// `x W[h]` for every head into one [rows, head * d_head] buffer (TransformerLens's
/// `hook_q` layout [batch, pos, head, d_head]), plus the bias [head, d_head].
fn per_head(p: &Params, l: usize, which: &str, x: &[f32], rows: usize) -> Vec<f32> {
    let c = &p.config;
    let (d, nh, dh) = (c.d_model, c.n_heads, c.d_head);
    let (wt, b) = (w(p, &format!("blocks.{l}.attn.W_{which}")), w(p, &format!("blocks.{l}.attn.b_{which}")));
    let mut out = vec![0.0; rows * nh * dh];
    for h in 0..nh {
        let mut head = vec![0.0; rows * dh];
        matmul(&mut head, MatRef::new(x, rows, d), MatRef::new(&wt[h * d * dh..(h + 1) * d * dh], d, dh), false);
        for (r, hr) in head.chunks_exact(dh).enumerate() {
            out[r * nh * dh + h * dh..r * nh * dh + (h + 1) * dh].copy_from_slice(hr);
        }
    }
    add_bias(&mut out, b);
    out
}

fn attention_forward<H: Hooks>(p: &Params, l: usize, x: &[f32], batch: usize, t: usize, hooks: &mut H) -> (BlockActs, Vec<f32>) {
    let c = &p.config;
    let (d, nh, dh) = (c.d_model, c.n_heads, c.d_head);
    let heads = [batch, t, nh, dh];
    let (mut q, mut k, mut v) = (per_head(p, l, "Q", x, batch * t), per_head(p, l, "K", x, batch * t), per_head(p, l, "V", x, batch * t));
    hook(hooks, HookPoint::Q(l), &mut q, &heads);
    hook(hooks, HookPoint::K(l), &mut k, &heads);
    hook(hooks, HookPoint::V(l), &mut v, &heads);
    let dims = AttnDims { heads: nh, d_head: dh, t, q0: 0 };
    let mut pattern = vec![0.0; batch * nh * t * t];
    ops::attn_scores(dims, &q, &k, &mut pattern);
    hook(hooks, HookPoint::AttnScores(l), &mut pattern, &[batch, nh, t, t]);
    ops::softmax_rows(&mut pattern, t);
    hook(hooks, HookPoint::Pattern(l), &mut pattern, &[batch, nh, t, t]);
    let mut z = vec![0.0; batch * t * nh * dh];
    ops::attn_mix(dims, &pattern, &v, &mut z);
    hook(hooks, HookPoint::Z(l), &mut z, &heads);
    let mut out = vec![0.0; batch * t * d];
    // W_O [head, d_head, d_model] is one [head * d_head, d_model] matrix.
    matmul(&mut out, MatRef::new(&z, batch * t, nh * dh), MatRef::new(w(p, &format!("blocks.{l}.attn.W_O")), nh * dh, d), false);
    add_bias(&mut out, w(p, &format!("blocks.{l}.attn.b_O")));
    let acts = BlockActs {
        resid_pre: Vec::new(),
        ln1: None,
        q,
        k,
        v,
        pattern,
        z,
        resid_mid: Vec::new(),
        ln2: None,
        pre: Vec::new(),
        post: Vec::new(),
    };
    (acts, out)
}

/// From d `hook_attn_out` to d of the attention's input (`ln1`'s output).
#[allow(clippy::too_many_arguments)]
fn attention_backward<H: Hooks>(
    p: &Params,
    l: usize,
    a: &BlockActs,
    x: &[f32],
    acts: &Activations,
    d_out: &[f32],
    g: &mut Grads,
    hooks: &mut H,
) -> Vec<f32> {
    let c = &p.config;
    let (d, nh, dh, rows) = (c.d_model, c.n_heads, c.d_head, acts.batch * acts.t);
    let w_o = w(p, &format!("blocks.{l}.attn.W_O"));
    let mut dw_o = vec![0.0; nh * dh * d];
    matmul(&mut dw_o, MatRef::new(&a.z, rows, nh * dh).t(), MatRef::new(d_out, rows, d), false);
    add_grad(g, format!("blocks.{l}.attn.W_O"), dw_o);
    add_grad(g, format!("blocks.{l}.attn.b_O"), col_sums(d_out, d));
    let mut dz = vec![0.0; rows * nh * dh];
    matmul(&mut dz, MatRef::new(d_out, rows, d), MatRef::new(w_o, nh * dh, d).t(), false);
    let heads = [acts.batch, acts.t, nh, dh];
    hook(hooks, HookPoint::Z(l), &mut dz, &heads);
    let dims = AttnDims { heads: nh, d_head: dh, t: acts.t, q0: 0 };
    let (mut dq, mut dk, mut dv) = (vec![0.0; dz.len()], vec![0.0; dz.len()], vec![0.0; dz.len()]);
    let mut dscores = vec![0.0; a.pattern.len()];
    let saved = AttnSaved { q: &a.q, k: &a.k, v: &a.v, pattern: &a.pattern };
    ops::attention_backward(dims, saved, &dz, AttnGrads { dscores: &mut dscores, dq: &mut dq, dk: &mut dk, dv: &mut dv });
    hook(hooks, HookPoint::Q(l), &mut dq, &heads);
    hook(hooks, HookPoint::K(l), &mut dk, &heads);
    hook(hooks, HookPoint::V(l), &mut dv, &heads);
    let mut dx = vec![0.0; rows * d];
    for (which, dy) in [("Q", &dq), ("K", &dk), ("V", &dv)] {
        per_head_backward(p, l, which, x, dy, &mut dx, g);
    }
    dx
}

/// Backward of [`per_head`]: the weight and bias gradients, and `dy W[h]^T` added into `dx`.
fn per_head_backward(p: &Params, l: usize, which: &str, x: &[f32], dy: &[f32], dx: &mut [f32], g: &mut Grads) {
    let c = &p.config;
    let (d, nh, dh) = (c.d_model, c.n_heads, c.d_head);
    let rows = x.len() / d;
    let wt = w(p, &format!("blocks.{l}.attn.W_{which}"));
    let mut dw = vec![0.0; nh * d * dh];
    for h in 0..nh {
        let dy_h = MatRef::strided(&dy[h * dh..], rows, dh, nh * dh, 1);
        matmul(&mut dw[h * d * dh..(h + 1) * d * dh], MatRef::new(x, rows, d).t(), dy_h, false);
        matmul(dx, dy_h, MatRef::new(&wt[h * d * dh..(h + 1) * d * dh], d, dh).t(), true);
    }
    add_grad(g, format!("blocks.{l}.attn.W_{which}"), dw);
    add_grad(g, format!("blocks.{l}.attn.b_{which}"), col_sums(dy, nh * dh));
}

// ---- MLP: out = act(x W_in + b_in) W_out + b_out ----

/// The MLP's `hook_pre`, `hook_post` and output.
fn mlp_forward<H: Hooks>(p: &Params, l: usize, x: &[f32], batch: usize, t: usize, hooks: &mut H) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let c = &p.config;
    let (d, m, rows) = (c.d_model, c.d_mlp, batch * t);
    let mut pre = vec![0.0; rows * m];
    matmul(&mut pre, MatRef::new(x, rows, d), MatRef::new(w(p, &format!("blocks.{l}.mlp.W_in")), d, m), false);
    add_bias(&mut pre, w(p, &format!("blocks.{l}.mlp.b_in")));
    hook(hooks, HookPoint::MlpPre(l), &mut pre, &[batch, t, m]);
    let mut post = vec![0.0; rows * m];
    ops::activation_forward(c.act_fn, &pre, &mut post);
    hook(hooks, HookPoint::MlpPost(l), &mut post, &[batch, t, m]);
    let mut out = vec![0.0; rows * d];
    matmul(&mut out, MatRef::new(&post, rows, m), MatRef::new(w(p, &format!("blocks.{l}.mlp.W_out")), m, d), false);
    add_bias(&mut out, w(p, &format!("blocks.{l}.mlp.b_out")));
    (pre, post, out)
}

/// From d `hook_mlp_out` to d of the MLP's input (`ln2`'s output);
/// `batch` sequences: `hook_pre`'s gradient is shown as [batch, t, d_mlp].
#[allow(clippy::too_many_arguments)]
fn mlp_backward<H: Hooks>(
    p: &Params,
    l: usize,
    a: &BlockActs,
    x: &[f32],
    d_out: &[f32],
    batch: usize,
    g: &mut Grads,
    hooks: &mut H,
) -> Vec<f32> {
    let c = &p.config;
    let (d, m) = (c.d_model, c.d_mlp);
    let rows = d_out.len() / d;
    let mut dw_out = vec![0.0; m * d];
    matmul(&mut dw_out, MatRef::new(&a.post, rows, m).t(), MatRef::new(d_out, rows, d), false);
    add_grad(g, format!("blocks.{l}.mlp.W_out"), dw_out);
    add_grad(g, format!("blocks.{l}.mlp.b_out"), col_sums(d_out, d));
    let mut d_pre = vec![0.0; rows * m];
    matmul(&mut d_pre, MatRef::new(d_out, rows, d), MatRef::new(w(p, &format!("blocks.{l}.mlp.W_out")), m, d).t(), false);
    ops::activation_backward(c.act_fn, &a.pre, &mut d_pre);
    hook(hooks, HookPoint::MlpPre(l), &mut d_pre, &[batch, rows / batch, m]);
    let mut dw_in = vec![0.0; d * m];
    matmul(&mut dw_in, MatRef::new(x, rows, d).t(), MatRef::new(&d_pre, rows, m), false);
    add_grad(g, format!("blocks.{l}.mlp.W_in"), dw_in);
    add_grad(g, format!("blocks.{l}.mlp.b_in"), col_sums(&d_pre, m));
    let mut dx = vec![0.0; rows * d];
    matmul(&mut dx, MatRef::new(&d_pre, rows, m), MatRef::new(w(p, &format!("blocks.{l}.mlp.W_in")), d, m).t(), false);
    dx
}

// ---- Unembedding: logits = ln_final(x) W_U + b_U ----

fn unembed_forward<H: Hooks>(p: &Params, x: &[f32], batch: usize, t: usize, hooks: &mut H) -> (Option<LnActs>, Vec<f32>) {
    let c = &p.config;
    let ln = maybe_ln(p, "ln_final", x, [HookPoint::LnFinalScale, HookPoint::LnFinalNormalized], &[batch, t, c.d_model], hooks);
    let u_in = ln.as_ref().map_or(x, |a| &a.out);
    let mut logits = vec![0.0; batch * t * c.d_vocab_out];
    matmul(&mut logits, MatRef::new(u_in, batch * t, c.d_model), MatRef::new(w(p, "unembed.W_U"), c.d_model, c.d_vocab_out), false);
    add_bias(&mut logits, w(p, "unembed.b_U"));
    (ln, logits)
}

/// From d logits to d of the last block's `hook_resid_post`.
fn unembed_backward(p: &Params, acts: &Activations, dlogits: &[f32], g: &mut Grads) -> Vec<f32> {
    let c = &p.config;
    let (d, v, rows) = (c.d_model, c.d_vocab_out, acts.batch * acts.t);
    let u_in = acts.ln_final.as_ref().map_or(&acts.resid_final, |a| &a.out);
    let mut dw_u = vec![0.0; d * v];
    matmul(&mut dw_u, MatRef::new(u_in, rows, d).t(), MatRef::new(dlogits, rows, v), false);
    add_grad(g, "unembed.W_U".into(), dw_u);
    add_grad(g, "unembed.b_U".into(), col_sums(dlogits, v));
    let mut dx = vec![0.0; rows * d];
    matmul(&mut dx, MatRef::new(dlogits, rows, v), MatRef::new(w(p, "unembed.W_U"), d, v).t(), false);
    match &acts.ln_final {
        Some(ln) => ln_backward(p, "ln_final", ln, &dx, g),
        None => dx,
    }
}

/// Sums of the columns of a [rows, width] buffer (a bias's gradient).
fn col_sums(x: &[f32], width: usize) -> Vec<f32> {
    let mut s = vec![0.0; width];
    add_col_sums(&mut s, x);
    s
}
