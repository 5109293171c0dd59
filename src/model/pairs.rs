//! The layer-0 pair table, a fast path of the model: layer 0 sees only (token, position) pairs,
//! so its embedding, LayerNorm, queries, keys and values depend on nothing else. A batch of 64
//! five-digit questions has 1,088 rows but at most ~170 distinct pairs, so a pass without hooks
//! computes these once per distinct pair ([`PairTable::forward`]) and copies them to the rows
//! ([`PairTable::expand`]); its backward sums the gradients of equal pairs before the backward
//! products ([`PairTable::backward`], [`PairTable::embed_backward`]). Exact: the maps are
//! per-row. The one-layer evaluation tables (`eval::one_layer`) start from the same table.

use super::linalg::{add_bias, add_col_sums, matmul, matmul_into, MatRef};
use super::ops;
use super::params::{head, head_mut, Block, Embed, Params};
use super::rows::Rows;

const NONE: u32 = u32::MAX;

/// The distinct pairs of one batch and layer 0's activations and gradients per pair.
#[derive(Default)]
pub struct PairTable {
    slot: Vec<u32>,
    /// Index of each row's pair in `pairs`, [batch * t].
    pub row_pair: Vec<u32>,
    /// The distinct (token, position) pairs, in order of first appearance.
    pub pairs: Vec<(u32, u32)>,
    /// Whether layer 0 has a LayerNorm (so `d_x`, not `d_ln`, holds the embeddings' gradient).
    has_ln: bool,
    /// Embedding sums per pair [P, d_model] (block 0's `hook_resid_pre`).
    x: Vec<f32>,
    /// LN1's `hook_normalized`, `hook_scale` and output per pair.
    xhat: Vec<f32>,
    scale: Vec<f32>,
    ln_out: Vec<f32>,
    /// Queries, keys and values per pair [P, head * d_head] each.
    qkv: [Vec<f32>; 3],
    /// Their gradients summed over the rows of each pair.
    dqkv: [Vec<f32>; 3],
    /// Gradient of LN1's output, and of its input (the embeddings), per pair.
    d_ln: Vec<f32>,
    d_x: Vec<f32>,
}

impl PairTable {
    /// Finds the distinct pairs among the first `t` tokens of each row of `tokens`.
    pub fn build(&mut self, tokens: &[u32], n_ctx: usize, batch: usize, t: usize, d_vocab: usize) {
        self.slot.clear();
        self.slot.resize(d_vocab * t, NONE);
        self.pairs.clear();
        self.row_pair.clear();
        for b in 0..batch {
            for pos in 0..t {
                let tok = tokens[b * n_ctx + pos];
                let s = &mut self.slot[tok as usize * t + pos];
                if *s == NONE {
                    *s = self.pairs.len() as u32;
                    self.pairs.push((tok, pos as u32));
                }
                self.row_pair.push(*s);
            }
        }
    }

    /// Embedding, LayerNorm and Q/K/V of layer 0 for every distinct pair.
    pub fn forward(&mut self, p: &Params) {
        let c = &p.config;
        let (d, dh, hd, u) = (c.d_model, c.d_head, c.n_heads * c.d_head, self.pairs.len());
        let (e, w) = (p.embed(), p.block(0));
        for buf in [&mut self.x, &mut self.xhat, &mut self.ln_out, &mut self.d_ln, &mut self.d_x] {
            buf.resize(u * d, 0.0);
        }
        self.scale.resize(u, 0.0);
        for (row, &(tok, pos)) in self.x.chunks_exact_mut(d).zip(&self.pairs) {
            let (e, ps) = (&e.w_e[tok as usize * d..][..d], &e.w_pos[pos as usize * d..][..d]);
            row.iter_mut().zip(e.iter().zip(ps)).for_each(|(x, (a, b))| *x = a + b);
        }
        self.has_ln = w.ln1.is_some();
        let ln_in: &[f32] = match &w.ln1 {
            Some(ln) => {
                ops::layernorm_forward(&self.x, ln.w, ln.b, c.eps as f32, &mut self.xhat, &mut self.scale, &mut self.ln_out);
                &self.ln_out
            }
            None => &self.x,
        };
        let a = &w.attn;
        for (out, (w, bias)) in self.qkv.iter_mut().zip([(a.w_q, a.b_q), (a.w_k, a.b_k), (a.w_v, a.b_v)]) {
            out.resize(u * hd, 0.0);
            for h in 0..c.n_heads {
                matmul_into(&mut out[h * dh..], hd, MatRef::new(ln_in, u, d), MatRef::new(head(w, h, c.n_heads), d, dh), false);
            }
            add_bias(out, bias);
        }
    }

    /// The last `forward`'s per-pair embedding sums [P, D] and queries, keys, values [P, H * d_head].
    pub fn activations(&self) -> (&[f32], &[Vec<f32>; 3]) {
        (&self.x, &self.qkv)
    }

    /// Writes every row's embedding sum into `x` [batch * t, d], and the Q/K/V rows into
    /// `q` (query rows only), `k` and `v`.
    pub fn expand(&self, rows: Rows, x: &mut [f32], [q, k, v]: [&mut [f32]; 3]) {
        let [pq, pk, pv] = &self.qkv;
        let u = self.pairs.len().max(1);
        let (d, hd) = (self.x.len() / u, pk.len() / u);
        let mut qi = 0;
        for (r, &u) in self.row_pair.iter().enumerate() {
            let u = u as usize;
            x[r * d..(r + 1) * d].copy_from_slice(&self.x[u * d..(u + 1) * d]);
            k[r * hd..(r + 1) * hd].copy_from_slice(&pk[u * hd..(u + 1) * hd]);
            v[r * hd..(r + 1) * hd].copy_from_slice(&pv[u * hd..(u + 1) * hd]);
            if r % rows.t >= rows.q0 {
                q[qi * hd..(qi + 1) * hd].copy_from_slice(&pq[u * hd..(u + 1) * hd]);
                qi += 1;
            }
        }
    }

    /// Backward from the per-row gradients of Q (query rows), K and V: adds the weight and bias
    /// gradients of layer 0's Q/K/V and LN1 into `grad` (block 0's), and keeps the gradient of
    /// the embeddings per pair for [`PairTable::embed_backward`].
    pub fn backward(&mut self, p: &Params, rows: Rows, [dq, dk, dv]: [&[f32]; 3], grad: &mut Block<&mut [f32]>) {
        let c = &p.config;
        let (d, dh, hd, u) = (c.d_model, c.d_head, c.n_heads * c.d_head, self.pairs.len());
        for buf in &mut self.dqkv {
            buf.clear();
            buf.resize(u * hd, 0.0);
        }
        let mut qi = 0;
        for (r, &pu) in self.row_pair.iter().enumerate() {
            let pu = pu as usize;
            let add = |dst: &mut Vec<f32>, src: &[f32]| dst[pu * hd..(pu + 1) * hd].iter_mut().zip(src).for_each(|(a, b)| *a += b);
            add(&mut self.dqkv[1], &dk[r * hd..(r + 1) * hd]);
            add(&mut self.dqkv[2], &dv[r * hd..(r + 1) * hd]);
            if r % rows.t >= rows.q0 {
                add(&mut self.dqkv[0], &dq[qi * hd..(qi + 1) * hd]);
                qi += 1;
            }
        }
        let ln_in: &[f32] = if self.has_ln { &self.ln_out } else { &self.x };
        let (w, a) = (p.block(0).attn, &mut grad.attn);
        let each = [(w.w_q, &mut *a.w_q, &mut *a.b_q), (w.w_k, &mut *a.w_k, &mut *a.b_k), (w.w_v, &mut *a.w_v, &mut *a.b_v)];
        for (i, (w, dw, db)) in each.into_iter().enumerate() {
            let du = &self.dqkv[i];
            add_col_sums(db, du);
            for h in 0..c.n_heads {
                let duh = MatRef::strided(&du[h * dh..], u, dh, hd, 1);
                matmul(head_mut(dw, h, c.n_heads), MatRef::new(ln_in, u, d).t(), duh, true);
                matmul(&mut self.d_ln, duh, MatRef::new(head(w, h, c.n_heads), d, dh).t(), i > 0 || h > 0);
            }
        }
        if let (Some(ln), Some(dln)) = (p.block(0).ln1, &mut grad.ln1) {
            ops::layernorm_backward(&self.d_ln, &self.xhat, &self.scale, ln.w, dln, &mut self.d_x, false);
        }
    }

    /// Adds the last [`PairTable::backward`]'s embedding gradients, per pair, into `grad`.
    pub fn embed_backward(&self, grad: &mut Embed<&mut [f32]>) {
        let d_x: &[f32] = if self.has_ln { &self.d_x } else { &self.d_ln };
        let d = d_x.len() / self.pairs.len().max(1);
        for (row, &(tok, pos)) in d_x.chunks_exact(d).zip(&self.pairs) {
            grad.w_e[tok as usize * d..][..d].iter_mut().zip(row).for_each(|(g, v)| *g += v);
            grad.w_pos[pos as usize * d..][..d].iter_mut().zip(row).for_each(|(g, v)| *g += v);
        }
    }
}
