//! The model's layers as forward/backward pairs on flat row-major buffers, each forward next to
//! its backward (as in llm.c). Matrix products live in `linalg`; these are the elementwise and
//! attention kernels around them. Rows are independent, so each kernel splits rows across threads.

use super::params::Ln;
use rayon::prelude::*;

/// Rows per parallel task: enough work per task to amortise scheduling.
fn rows_per_task(width: usize) -> usize {
    (16384 / width.max(1)).max(1)
}

/// LayerNorm forward for rows of width `d`: `xhat = (x - mean) / sqrt(var + eps)` (TransformerLens
/// `hook_normalized`), `out = xhat * w + b`; stores `scale = sqrt(var + eps)` (`hook_scale`).
pub fn layernorm_forward(x: &[f32], w: &[f32], b: &[f32], eps: f32, xhat: &mut [f32], scale: &mut [f32], out: &mut [f32]) {
    let d = w.len();
    let n = rows_per_task(d);
    (x.par_chunks(d * n), xhat.par_chunks_mut(d * n), scale.par_chunks_mut(n), out.par_chunks_mut(d * n)).into_par_iter().for_each(
        |(x, xh, sc, o)| {
            for (((x, xh), s), o) in x.chunks_exact(d).zip(xh.chunks_exact_mut(d)).zip(sc).zip(o.chunks_exact_mut(d)) {
                let mean = x.iter().sum::<f32>() / d as f32;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
                *s = (var + eps).sqrt();
                let r = 1.0 / *s;
                for i in 0..d {
                    xh[i] = (x[i] - mean) * r;
                    o[i] = xh[i] * w[i] + b[i];
                }
            }
        },
    );
}

/// LayerNorm backward: from `dout` accumulates the weight and bias gradients into `grad` and
/// writes (or adds, when `accumulate`) the input gradient into `dx`.
pub fn layernorm_backward(
    dout: &[f32],
    xhat: &[f32],
    scale: &[f32],
    w: &[f32],
    grad: &mut Ln<&mut [f32]>,
    dx: &mut [f32],
    accumulate: bool,
) {
    let (dw, db) = (&mut *grad.w, &mut *grad.b);
    let d = w.len();
    for (dy, xh) in dout.chunks_exact(d).zip(xhat.chunks_exact(d)) {
        for i in 0..d {
            dw[i] += dy[i] * xh[i];
            db[i] += dy[i];
        }
    }
    let n = rows_per_task(d);
    (dout.par_chunks(d * n), xhat.par_chunks(d * n), scale.par_chunks(n), dx.par_chunks_mut(d * n)).into_par_iter().for_each(
        |(dout, xhat, scale, dx)| {
            for (((dy, xh), s), dx) in dout.chunks_exact(d).zip(xhat.chunks_exact(d)).zip(scale).zip(dx.chunks_exact_mut(d)) {
                let (mut m1, mut m2) = (0.0f32, 0.0f32);
                for i in 0..d {
                    let g = dy[i] * w[i];
                    m1 += g;
                    m2 += g * xh[i];
                }
                let (m1, m2, r) = (m1 / d as f32, m2 / d as f32, 1.0 / s);
                for i in 0..d {
                    let g = (dy[i] * w[i] - m1 - xh[i] * m2) * r;
                    dx[i] = if accumulate { dx[i] + g } else { g };
                }
            }
        },
    );
}

/// Shapes of one attention computation over a batch: keys at positions `0..t`, queries at
/// positions `q0..t` (all of them except in a last layer that computes only what the loss needs).
#[derive(Clone, Copy, Debug)]
pub struct AttnDims {
    /// Heads.
    pub heads: usize,
    /// Width of a head.
    pub d_head: usize,
    /// Key positions.
    pub t: usize,
    /// First query position.
    pub q0: usize,
}

impl AttnDims {
    /// Query positions.
    pub fn tq(&self) -> usize {
        self.t - self.q0
    }
    fn hd(&self) -> usize {
        self.heads * self.d_head
    }
    fn pattern_len(&self) -> usize {
        self.heads * self.tq() * self.t
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// Attention scores `q·k / sqrt(d_head)` into `scores` [batch, head, tq, t], -inf above the
/// causal diagonal. `q` is [batch, tq, head, d_head], `k` is [batch, t, head, d_head].
pub fn attn_scores(dims: AttnDims, q: &[f32], k: &[f32], scores: &mut [f32]) {
    let (hd, dh, tq, t) = (dims.hd(), dims.d_head, dims.tq(), dims.t);
    let scale = 1.0 / (dh as f32).sqrt();
    scores.par_chunks_mut(dims.pattern_len()).enumerate().for_each(|(b, s)| {
        let (q, k) = (&q[b * tq * hd..(b + 1) * tq * hd], &k[b * t * hd..(b + 1) * t * hd]);
        for h in 0..dims.heads {
            for i in 0..tq {
                let qi = &q[i * hd + h * dh..i * hd + (h + 1) * dh];
                let row = &mut s[(h * tq + i) * t..(h * tq + i + 1) * t];
                for (j, r) in row.iter_mut().enumerate() {
                    *r = if j <= dims.q0 + i { dot(qi, &k[j * hd + h * dh..j * hd + (h + 1) * dh]) * scale } else { f32::NEG_INFINITY };
                }
            }
        }
    });
}

/// Softmax over the last axis of rows of width `t`, in place (masked -inf entries become 0).
pub fn softmax_rows(x: &mut [f32], t: usize) {
    x.par_chunks_mut(t * rows_per_task(t)).for_each(|c| c.chunks_exact_mut(t).for_each(softmax));
}

/// Softmax of one row, in place.
pub fn softmax(row: &mut [f32]) {
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

/// Mixes values by the attention pattern: `z[b, i, h] = Σ_j pattern[b, h, i, j] v[b, j, h]`.
pub fn attn_mix(dims: AttnDims, pattern: &[f32], v: &[f32], z: &mut [f32]) {
    let (hd, dh, tq, t) = (dims.hd(), dims.d_head, dims.tq(), dims.t);
    z.par_chunks_mut(tq * hd).enumerate().for_each(|(b, z)| {
        let (p, v) = (&pattern[b * dims.pattern_len()..], &v[b * t * hd..(b + 1) * t * hd]);
        z.fill(0.0);
        for h in 0..dims.heads {
            for i in 0..tq {
                let zi = &mut z[i * hd + h * dh..i * hd + (h + 1) * dh];
                for j in 0..=(dims.q0 + i) {
                    axpy(zi, p[(h * tq + i) * t + j], &v[j * hd + h * dh..j * hd + (h + 1) * dh]);
                }
            }
        }
    });
}

/// What attention's backward reads from its forward pass: `q` [batch, tq, head, d_head], `k`
/// and `v` [batch, t, head, d_head], and the pattern.
#[derive(Clone, Copy)]
pub struct AttnSaved<'a> {
    /// `hook_q`.
    pub q: &'a [f32],
    /// `hook_k`.
    pub k: &'a [f32],
    /// `hook_v`.
    pub v: &'a [f32],
    /// `hook_pattern`.
    pub pattern: &'a [f32],
}

/// What attention's backward writes: `dq` [batch, tq, head, d_head], `dk` and `dv` [batch, t,
/// head, d_head], and `dscores`, scratch of the pattern's shape.
pub struct AttnGrads<'a> {
    /// Scratch of the pattern's shape.
    pub dscores: &'a mut [f32],
    /// d `hook_q`.
    pub dq: &'a mut [f32],
    /// d `hook_k`.
    pub dk: &'a mut [f32],
    /// d `hook_v`.
    pub dv: &'a mut [f32],
}

/// Backward of scores, softmax and mixing together, from d `hook_z` (`dz`).
pub fn attention_backward(dims: AttnDims, saved: AttnSaved, dz: &[f32], grads: AttnGrads) {
    let AttnSaved { q, k, v, pattern } = saved;
    let AttnGrads { dscores, dq, dk, dv } = grads;
    let (hd, dh, tq, t) = (dims.hd(), dims.d_head, dims.tq(), dims.t);
    let scale = 1.0 / (dh as f32).sqrt();
    let per_b =
        (dscores.par_chunks_mut(dims.pattern_len()), dq.par_chunks_mut(tq * hd), dk.par_chunks_mut(t * hd), dv.par_chunks_mut(t * hd));
    per_b.into_par_iter().enumerate().for_each(|(b, (ds, dq, dk, dv))| {
        let q = &q[b * tq * hd..(b + 1) * tq * hd];
        let (k, v) = (&k[b * t * hd..(b + 1) * t * hd], &v[b * t * hd..(b + 1) * t * hd]);
        let (p, dz) = (&pattern[b * dims.pattern_len()..(b + 1) * dims.pattern_len()], &dz[b * tq * hd..(b + 1) * tq * hd]);
        dq.fill(0.0);
        dk.fill(0.0);
        dv.fill(0.0);
        for h in 0..dims.heads {
            let r = |j: usize| j * hd + h * dh..j * hd + (h + 1) * dh;
            for i in 0..tq {
                let (row, n) = ((h * tq + i) * t, dims.q0 + i + 1);
                let dzi = &dz[r(i)];
                let mut weighted = 0.0;
                for j in 0..n {
                    let dp = dot(dzi, &v[r(j)]);
                    ds[row + j] = dp;
                    weighted += p[row + j] * dp;
                    axpy(&mut dv[r(j)], p[row + j], dzi);
                }
                for j in 0..n {
                    let g = p[row + j] * (ds[row + j] - weighted) * scale;
                    axpy(&mut dq[r(i)], g, &k[r(j)]);
                    axpy(&mut dk[r(j)], g, &q[r(i)]);
                }
            }
        }
    });
}

/// The MLP activation applied elementwise: `post = act(pre)`.
pub fn activation_forward(act: super::config::ActFn, pre: &[f32], post: &mut [f32]) {
    post.par_chunks_mut(16384).zip(pre.par_chunks(16384)).for_each(|(o, x)| {
        o.iter_mut().zip(x).for_each(|(o, &x)| *o = act_value(act, x));
    });
}

/// `dpre = dpost * act'(pre)`, in place on `dpost`.
pub fn activation_backward(act: super::config::ActFn, pre: &[f32], dpost: &mut [f32]) {
    dpost.par_chunks_mut(16384).zip(pre.par_chunks(16384)).for_each(|(d, x)| {
        d.iter_mut().zip(x).for_each(|(d, &x)| *d *= act_grad(act, x));
    });
}

fn act_value(act: super::config::ActFn, x: f32) -> f32 {
    match act {
        super::config::ActFn::Relu => x.max(0.0),
        super::config::ActFn::Gelu => (0.5 * x as f64 * (1.0 + libm::erf(x as f64 / std::f64::consts::SQRT_2))) as f32,
    }
}

fn act_grad(act: super::config::ActFn, x: f32) -> f32 {
    match act {
        super::config::ActFn::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        super::config::ActFn::Gelu => {
            let x = x as f64;
            let cdf = 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            (cdf + x * pdf) as f32
        }
    }
}

/// Cross-entropy of `targets` under `logits` rows of width `v` (log-softmax in f64, as the
/// papers' loss). Writes each row's negative log-likelihood to `nll` and, when `dlogits` is
/// given, `(softmax - onehot) * grad_scale` into it.
pub fn cross_entropy(logits: &[f32], v: usize, targets: &[u32], nll: &mut [f64], dlogits: Option<(&mut [f32], f32)>) {
    for (r, (row, &tgt)) in logits.chunks_exact(v).zip(targets).enumerate() {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln() + max;
        nll[r] = lse - row[tgt as usize] as f64;
    }
    if let Some((d, scale)) = dlogits {
        for ((drow, row), &tgt) in d.chunks_exact_mut(v).zip(logits.chunks_exact(v)).zip(targets) {
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
            for (j, (dv, &x)) in drow.iter_mut().zip(row).enumerate() {
                let p = (x - max).exp() / sum;
                *dv = (p - if j == tgt as usize { 1.0 } else { 0.0 }) * scale;
            }
        }
    }
}
