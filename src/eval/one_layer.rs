//! The one-layer evaluation tables: a fast path of the model's forward pass
//! (`model::transformer`) for one-layer models with an MLP (the paper's), tested equal to the
//! reference model on random questions (`tests/reference_model.rs`) and deciding every answer as
//! the transformer pass does (`tests/evaluation.rs`).
//!
//! It computes the reference's forward in another order. In a one-layer model everything
//! before the attention pattern depends only on (token, position) pairs, so it starts from the
//! model's layer-0 pair table (`model::pairs`) over every pair, and tabulates per pair:
//! - the attention scores `q·k / sqrt(d_head)` with every other pair (`pair_scores`);
//! - each head's output `v W_O[h]`, and the embedding plus `b_O`: `hook_resid_mid` of a row is
//!   then its pair's embedding plus a pattern-weighted sum of table rows;
//! - both pushed through LN2's weight and `W_in` (`fold_ln2_into_w_in`): LayerNorm is linear
//!   up to its per-row mean and scale, so a row's `hook_pre` is the same weighted sum of these
//!   rows, corrected by the row's mean and scale (~10x fewer multiply-adds than `x · W_in`).
//!
//! Only `post · W_out`, `ln_final` and the unembedding remain as in the model. Rounding differs
//! from the transformer pass, so rows whose top two logits lie within [`TIE_MARGIN`] are
//! recomputed by it (`eval::predict`), and argmax decisions are exactly those of the model.

use crate::model::linalg::{add_col_sums, matmul, matmul_into, MatRef};
use crate::model::ops;
use crate::model::params::{head, Ln, Mlp};
use crate::model::{ActFn, Params};
use crate::task::{Format, Question};
use rayon::prelude::*;

/// Questions per parallel task: enough rows (x answer tokens) for an efficient `post · W_out`.
const CHUNK: usize = 48;

/// Logit gap below which a row's argmax is re-decided by the transformer pass (`model::forward`).
pub const TIE_MARGIN: f32 = 2e-3;

/// Per-pair tables of a one-layer model.
pub struct OneLayerTables {
    t: usize,
    q0: usize,
    d: usize,
    m: usize,
    heads: usize,
    has_ln: bool,
    act: ActFn,
    eps: f32,
    /// Distinct (token, position) pairs P.
    pairs: usize,
    /// Embedding plus b_O per pair [P, D].
    e: Vec<f32>,
    /// Scaled attention scores `q·k / sqrt(d_head)` per query pair, head and key pair [P, H, P]:
    /// in a one-layer model they too depend only on the two pairs.
    scores: Vec<f32>,
    /// `v_h W_O[h]` per pair and head [P, H, D].
    ov: Vec<f32>,
    /// `ov` through diag(ln2.w) W_in [P, H, M].
    pt: Vec<f32>,
    /// `e` through diag(ln2.w) W_in [P, M].
    pe: Vec<f32>,
    /// Column sums of diag(ln2.w) W_in [M].
    s: Vec<f32>,
    /// ln2.b W_in + b_in [M].
    c: Vec<f32>,
}

/// `x += Σ_h coef[h] * rows[h]` where `rows` holds `coef.len()` rows of `x.len()` values: one
/// pass over `x` for all heads (three heads, the paper's, get an unrolled loop).
fn weighted_add(x: &mut [f32], coef: &[f32], rows: &[f32]) {
    let n = x.len();
    if let [a0, a1, a2] = *coef {
        let (r0, r1, r2) = (&rows[..n], &rows[n..2 * n], &rows[2 * n..3 * n]);
        for (((x, y0), y1), y2) in x.iter_mut().zip(r0).zip(r1).zip(r2) {
            *x = a0.mul_add(*y0, a1.mul_add(*y1, a2.mul_add(*y2, *x)));
        }
    } else {
        for (a, row) in coef.iter().zip(rows.chunks_exact(n)) {
            x.iter_mut().zip(row).for_each(|(x, y)| *x = a.mul_add(*y, *x));
        }
    }
}

/// Results for a batch: per question and answer token, the argmax and the NLL of the truth,
/// plus whether the row was a near tie.
pub struct FastOut {
    /// Argmax tokens [questions, n_answer].
    pub argmax: Vec<u32>,
    /// NLL of the true tokens [questions, n_answer].
    pub nll: Vec<f64>,
    /// Questions with a near-tie row.
    pub near_ties: Vec<usize>,
}

/// Scaled attention scores `q·k / sqrt(d_head)` of every query pair with every key pair, per
/// head ([P, H, P]), from the pairs' queries and keys ([P, H * d_head] each).
fn pair_scores(q: &[f32], k: &[f32], pairs: usize, heads: usize, dh: usize) -> Vec<f32> {
    let hd = heads * dh;
    let mut scores = vec![0.0; pairs * heads * pairs];
    for h in 0..heads {
        let qh = MatRef::strided(&q[h * dh..], pairs, dh, hd, 1);
        let kt = MatRef::strided(&k[h * dh..], dh, pairs, 1, hd);
        matmul_into(&mut scores[h * pairs..], heads * pairs, qh, kt, false);
    }
    let scale = 1.0 / (dh as f32).sqrt();
    scores.iter_mut().for_each(|x| *x *= scale);
    scores
}

/// LN2's affine part folded into the MLP input: (diag(ln2.w) W_in [D, M], its column sums [M],
/// ln2.b W_in + b_in [M]); so `LN2(x) W_in + b_in = ((x - mean) / scale) · first + third`.
fn fold_ln2_into_w_in(p: &Params, ln2: Option<&Ln<&[f32]>>, mlp: &Mlp<&[f32]>) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (d, m) = (p.config.d_model, p.config.d_mlp);
    let (w2, b2): (Vec<f32>, Vec<f32>) = match ln2 {
        Some(ln) => (ln.w.to_vec(), ln.b.to_vec()),
        None => (vec![1.0; d], vec![0.0; d]),
    };
    let mut wt = mlp.w_in.to_vec();
    wt.chunks_exact_mut(m).zip(&w2).for_each(|(row, w)| row.iter_mut().for_each(|x| *x *= w));
    let mut sums = vec![0.0; m];
    add_col_sums(&mut sums, &wt);
    let mut bias = mlp.b_in.to_vec();
    matmul(&mut bias, MatRef::new(&b2, 1, d), MatRef::new(mlp.w_in, d, m), true);
    (wt, sums, bias)
}

impl OneLayerTables {
    /// Tables for `p` predicting positions `q0..t`, or `None` if the model is not a one-layer
    /// model with an MLP.
    pub fn new(p: &Params, t: usize, q0: usize) -> Option<OneLayerTables> {
        let c = &p.config;
        if c.n_layers != 1 || !c.has_mlp() {
            return None;
        }
        let (d, m, heads, dh) = (c.d_model, c.d_mlp, c.n_heads, c.d_head);
        let hd = heads * dh;
        let pairs = c.d_vocab * t;
        let tokens: Vec<u32> = (0..pairs).map(|i| (i / t) as u32).collect();
        let mut table = crate::model::pairs::PairTable::default();
        // One "sequence" per token: rows (tok, 0..t) cover every pair, in pair order.
        table.build(&tokens, t, c.d_vocab, t, c.d_vocab);
        table.forward(p);
        let (e0, qkv) = table.activations();
        let b = p.block(0);
        let mlp = b.mlp.as_ref()?;
        let mut e = e0.to_vec();
        e.chunks_exact_mut(d).for_each(|r| r.iter_mut().zip(b.attn.b_o).for_each(|(x, y)| *x += y));
        let scores = pair_scores(&qkv[0], &qkv[1], pairs, heads, dh);
        let mut ov = vec![0.0; pairs * heads * d];
        for h in 0..heads {
            let vh = MatRef::strided(&qkv[2][h * dh..], pairs, dh, hd, 1);
            let wo = MatRef::new(head(b.attn.w_o, h, heads), dh, d);
            matmul_into(&mut ov[h * d..], heads * d, vh, wo, false);
        }
        let (wt, s, cvec) = fold_ln2_into_w_in(p, b.ln2.as_ref(), mlp);
        let mut pt = vec![0.0; pairs * heads * m];
        matmul(&mut pt, MatRef::new(&ov, pairs * heads, d), MatRef::new(&wt, d, m), false);
        let mut pe = vec![0.0; pairs * m];
        matmul(&mut pe, MatRef::new(&e, pairs, d), MatRef::new(&wt, d, m), false);
        Some(OneLayerTables {
            t,
            q0,
            d,
            m,
            heads,
            has_ln: b.ln2.is_some(),
            act: c.act_fn,
            eps: c.eps as f32,
            pairs,
            e,
            scores,
            ov,
            pt,
            pe,
            s,
            c: cvec,
        })
    }

    /// MLP input rows and mid-residual rows of one question ([rows, M] and [rows, D]).
    fn question_rows(&self, toks: &[u32], pre: &mut [f32], xmid: &mut [f32], attn: &mut [f32]) {
        let (t, q0, d, m, heads, np) = (self.t, self.q0, self.d, self.m, self.heads, self.pairs);
        let pair = |pos: usize| toks[pos] as usize * t + pos;
        let rows = t - q0;
        // Attention weights a[row, head, key].
        for r in 0..rows {
            let p = q0 + r;
            for h in 0..heads {
                let sc = &self.scores[(pair(p) * heads + h) * np..][..np];
                let a = &mut attn[(r * heads + h) * t..][..t];
                for (j, aj) in a.iter_mut().enumerate().take(p + 1) {
                    *aj = sc[pair(j)];
                }
                ops::softmax(&mut a[..p + 1]);
            }
            pre[r * m..(r + 1) * m].copy_from_slice(&self.pe[pair(p) * m..][..m]);
            xmid[r * d..(r + 1) * d].copy_from_slice(&self.e[pair(p) * d..][..d]);
        }
        // Key-major so each table row is read once per question; all heads of a key in one pass.
        let mut coef = vec![0.0f32; heads];
        for j in 0..t {
            let (pt, ov) = (&self.pt[pair(j) * heads * m..][..heads * m], &self.ov[pair(j) * heads * d..][..heads * d]);
            for r in j.saturating_sub(q0)..rows {
                coef.iter_mut().enumerate().for_each(|(h, c)| *c = attn[(r * heads + h) * t + j]);
                weighted_add(&mut pre[r * m..(r + 1) * m], &coef, pt);
                weighted_add(&mut xmid[r * d..(r + 1) * d], &coef, ov);
            }
        }
        for r in 0..rows {
            let x = &xmid[r * d..(r + 1) * d];
            let (mu, sigma) = if self.has_ln {
                let mu = x.iter().sum::<f32>() / d as f32;
                (mu, (x.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / d as f32 + self.eps).sqrt())
            } else {
                (0.0, 1.0)
            };
            let ps = &mut pre[r * m..(r + 1) * m];
            let inv = 1.0 / sigma;
            for ((x, s), c) in ps.iter_mut().zip(&self.s).zip(&self.c) {
                *x = (*x - mu * s) * inv + c;
            }
        }
    }

    /// Predicts a batch of questions (their tokens in `format`), in parallel over chunks.
    pub fn predict(&self, p: &Params, format: Format, questions: &[Question]) -> FastOut {
        let n_ctx = p.config.n_ctx;
        let chunks: Vec<(Vec<u32>, Vec<f64>, Vec<usize>)> = questions
            .par_chunks(CHUNK)
            .enumerate()
            .map_init(Scratch::default, |scratch, (ci, qs)| {
                let (a, n, t) = self.predict_chunk(p, format, n_ctx, qs, scratch);
                (a, n, t.into_iter().map(|i| ci * CHUNK + i).collect())
            })
            .collect();
        let mut out = FastOut { argmax: Vec::new(), nll: Vec::new(), near_ties: Vec::new() };
        for (a, n, t) in chunks {
            out.argmax.extend(a);
            out.nll.extend(n);
            out.near_ties.extend(t);
        }
        out
    }

    fn predict_chunk(
        &self,
        p: &Params,
        format: Format,
        n_ctx: usize,
        qs: &[Question],
        s: &mut Scratch,
    ) -> (Vec<u32>, Vec<f64>, Vec<usize>) {
        let (d, m, rows) = (self.d, self.m, self.t - self.q0);
        let nr = qs.len() * rows;
        s.size(nr, m, d, rows * self.heads * self.t, n_ctx);
        let Scratch { pre, xmid, post, out, attn, toks, xh, sc, normed } = s;
        let (pre, xmid, post, out) = (&mut pre[..nr * m], &mut xmid[..nr * d], &mut post[..nr * m], &mut out[..nr * d]);
        let mut targets = Vec::with_capacity(nr);
        for (i, q) in qs.iter().enumerate() {
            q.write_tokens(format, &mut toks[..format.n_ctx(q.n_digits)]);
            self.question_rows(toks, &mut pre[i * rows * m..(i + 1) * rows * m], &mut xmid[i * rows * d..(i + 1) * rows * d], attn);
            targets.extend_from_slice(&toks[self.q0 + 1..self.t + 1]);
        }
        ops::activation_forward(self.act, pre, post);
        let (b, u) = (p.block(0), p.unembed());
        let mlp = b.mlp.as_ref().expect("tables exist only for models with an MLP");
        matmul(out, MatRef::new(post, nr, m), MatRef::new(mlp.w_out, m, d), false);
        for (o, x) in out.chunks_exact_mut(d).zip(xmid.chunks_exact(d)) {
            o.iter_mut().zip(x.iter().zip(mlp.b_out)).for_each(|(o, (x, b))| *o += x + b);
        }
        let v = p.config.d_vocab_out;
        let mut logits = vec![0.0; nr * v];
        let fin: &[f32] = match &u.ln_final {
            Some(ln) => {
                let (xh, sc, normed) = (&mut xh[..nr * d], &mut sc[..nr], &mut normed[..nr * d]);
                ops::layernorm_forward(out, ln.w, ln.b, self.eps, xh, sc, normed);
                normed
            }
            None => out,
        };
        matmul(&mut logits, MatRef::new(fin, nr, d), MatRef::new(u.w_u, d, v), false);
        crate::model::linalg::add_bias(&mut logits, u.b_u);
        let mut nll = vec![0.0; nr];
        ops::cross_entropy(&logits, v, &targets, &mut nll, None);
        let mut argmax = Vec::with_capacity(nr);
        let mut ties = Vec::new();
        for (r, row) in logits.chunks_exact(v).enumerate() {
            let best = super::predict::argmax(row);
            let second = row.iter().enumerate().filter(|(i, _)| *i != best).map(|(_, &x)| x).fold(f32::NEG_INFINITY, f32::max);
            if row[best] - second < TIE_MARGIN && ties.last() != Some(&(r / rows)) {
                ties.push(r / rows);
            }
            argmax.push(best as u32);
        }
        (argmax, nll, ties)
    }
}

/// Buffers of one worker thread, reused from chunk to chunk (sized for the largest chunk).
#[derive(Default)]
struct Scratch {
    pre: Vec<f32>,
    xmid: Vec<f32>,
    post: Vec<f32>,
    out: Vec<f32>,
    attn: Vec<f32>,
    toks: Vec<u32>,
    xh: Vec<f32>,
    sc: Vec<f32>,
    normed: Vec<f32>,
}

impl Scratch {
    /// Grows the buffers to hold `rows` answer rows (they are overwritten before being read).
    fn size(&mut self, rows: usize, m: usize, d: usize, attn: usize, n_ctx: usize) {
        let sizes = [rows * m, rows * m, rows * d, rows * d, rows * d, rows * d, rows, attn];
        let bufs =
            [&mut self.pre, &mut self.post, &mut self.xmid, &mut self.out, &mut self.xh, &mut self.normed, &mut self.sc, &mut self.attn];
        for (b, n) in bufs.into_iter().zip(sizes) {
            b.resize(b.len().max(n), 0.0);
        }
        self.toks.resize(self.toks.len().max(n_ctx), 0);
    }
}
