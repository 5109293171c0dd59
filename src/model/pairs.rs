//! Layer 0 sees only (token, position) pairs: its LayerNorm, queries, keys and values depend on
//! nothing else. A batch of 64 five-digit questions has 1,088 rows but at most ~170 distinct
//! pairs, so the training pass computes layer 0's inputs once per distinct pair and sums the
//! gradients of equal pairs before the backward products (exact: the maps are per-row).

use super::linalg::{add_bias, add_col_sums, matmul, matmul_into, MatRef};
use super::ops;
use super::params::{BlockIdx, Params};

const NONE: u32 = u32::MAX;

/// The distinct pairs of one batch and layer 0's activations and gradients per pair.
#[derive(Default)]
pub struct PairTable {
    slot: Vec<u32>,
    /// Index of each row's pair in `pairs`, [batch * t].
    pub row_pair: Vec<u32>,
    /// The distinct (token, position) pairs, in order of first appearance.
    pub pairs: Vec<(u32, u32)>,
    x: Vec<f32>,
    xhat: Vec<f32>,
    scale: Vec<f32>,
    ln_out: Vec<f32>,
    qkv: [Vec<f32>; 3],
    dqkv: [Vec<f32>; 3],
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

    /// Embedding, LayerNorm and Q/K/V of every distinct pair (`block` is layer 0).
    pub fn forward(&mut self, p: &Params, block: &BlockIdx) {
        let c = &p.config;
        let (d, dh, hd, u) = (c.d_model, c.d_head, c.n_heads * c.d_head, self.pairs.len());
        let (w_e, w_pos) = (&p.data[p.layout.w_e.clone()], &p.data[p.layout.w_pos.clone()]);
        for buf in [&mut self.x, &mut self.xhat, &mut self.ln_out, &mut self.d_ln, &mut self.d_x] {
            buf.resize(u * d, 0.0);
        }
        self.scale.resize(u, 0.0);
        for (row, &(tok, pos)) in self.x.chunks_exact_mut(d).zip(&self.pairs) {
            let (e, ps) = (&w_e[tok as usize * d..][..d], &w_pos[pos as usize * d..][..d]);
            row.iter_mut().zip(e.iter().zip(ps)).for_each(|(x, (a, b))| *x = a + b);
        }
        let ln_in: &[f32] = match &block.ln1 {
            Some(ln) => {
                let (w, b) = (&p.data[ln.w.clone()], &p.data[ln.b.clone()]);
                ops::layernorm_forward(&self.x, w, b, c.eps as f32, &mut self.xhat, &mut self.scale, &mut self.ln_out);
                &self.ln_out
            }
            None => &self.x,
        };
        let a = &block.attn;
        for (out, (w, bias)) in self.qkv.iter_mut().zip([(&a.w_q, &a.b_q), (&a.w_k, &a.b_k), (&a.w_v, &a.b_v)]) {
            out.resize(u * hd, 0.0);
            for h in 0..c.n_heads {
                let wh = MatRef::new(&p.data[w.start + h * d * dh..][..d * dh], d, dh);
                matmul_into(&mut out[h * dh..], hd, MatRef::new(ln_in, u, d), wh, false);
            }
            add_bias(out, &p.data[bias.clone()]);
        }
    }

    /// The last `forward`'s per-pair embedding sums [P, D] and queries, keys, values [P, H * d_head].
    pub fn activations(&self) -> (&[f32], &[Vec<f32>; 3]) {
        (&self.x, &self.qkv)
    }

    /// Writes every row's embedding sum into `x` [batch * t, d], and the Q/K/V rows into
    /// `q` (rows at positions `q0..t` only), `k` and `v`.
    pub fn expand(&self, t: usize, q0: usize, x: &mut [f32], q: &mut [f32], k: &mut [f32], v: &mut [f32]) {
        let [pq, pk, pv] = &self.qkv;
        let u = self.pairs.len().max(1);
        let (d, hd) = (self.x.len() / u, pk.len() / u);
        let mut qi = 0;
        for (r, &u) in self.row_pair.iter().enumerate() {
            let u = u as usize;
            x[r * d..(r + 1) * d].copy_from_slice(&self.x[u * d..(u + 1) * d]);
            k[r * hd..(r + 1) * hd].copy_from_slice(&pk[u * hd..(u + 1) * hd]);
            v[r * hd..(r + 1) * hd].copy_from_slice(&pv[u * hd..(u + 1) * hd]);
            if r % t >= q0 {
                q[qi * hd..(qi + 1) * hd].copy_from_slice(&pq[u * hd..(u + 1) * hd]);
                qi += 1;
            }
        }
    }

    /// Backward from the per-row gradients of Q (query rows), K and V: weight and bias
    /// gradients of layer 0's Q/K/V and LN1, and the embedding gradients of that path.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(&mut self, p: &Params, block: &BlockIdx, t: usize, q0: usize, dq: &[f32], dk: &[f32], dv: &[f32], grad: &mut [f32]) {
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
            if r % t >= q0 {
                add(&mut self.dqkv[0], &dq[qi * hd..(qi + 1) * hd]);
                qi += 1;
            }
        }
        let ln_in: &[f32] = if block.ln1.is_some() { &self.ln_out } else { &self.x };
        let a = &block.attn;
        for (i, (w, bias)) in [(&a.w_q, &a.b_q), (&a.w_k, &a.b_k), (&a.w_v, &a.b_v)].into_iter().enumerate() {
            let du = &self.dqkv[i];
            add_col_sums(&mut grad[bias.clone()], du);
            for h in 0..c.n_heads {
                let duh = MatRef::strided(&du[h * dh..], u, dh, hd, 1);
                let wr = w.start + h * d * dh..w.start + (h + 1) * d * dh;
                matmul(&mut grad[wr.clone()], MatRef::new(ln_in, u, d).t(), duh, true);
                matmul(&mut self.d_ln, duh, MatRef::new(&p.data[wr], d, dh).t(), i > 0 || h > 0);
            }
        }
        let d_x: &[f32] = match &block.ln1 {
            Some(ln) => {
                let (lo, hi) = grad.split_at_mut(ln.b.start);
                let (dw, db) = (&mut lo[ln.w.clone()], &mut hi[..ln.b.len()]);
                ops::layernorm_backward(&self.d_ln, &self.xhat, &self.scale, &p.data[ln.w.clone()], dw, db, &mut self.d_x, false);
                &self.d_x
            }
            None => &self.d_ln,
        };
        let (we, wp) = (p.layout.w_e.start, p.layout.w_pos.start);
        for (row, &(tok, pos)) in d_x.chunks_exact(d).zip(&self.pairs) {
            grad[we + tok as usize * d..][..d].iter_mut().zip(row).for_each(|(g, v)| *g += v);
            grad[wp + pos as usize * d..][..d].iter_mut().zip(row).for_each(|(g, v)| *g += v);
        }
    }
}
