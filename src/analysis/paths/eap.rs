//! Edge attribution patching (Syed, Rager and Conmy, "Attribution Patching Outperforms Automated
//! Circuit Discovery", 2023): the path-patching effect of every edge to first order,
//!
//! `drop(edge) ≈ -(Δ sender output) · ∂ metric / ∂ (receiver input)`,
//!
//! where the metric is the mean over the questions of one answer digit's right-token logit less
//! the mean logit (linear in the logits: the log probability's gradient vanishes wherever the
//! model is sure, which a trained model is on most questions), the gradient is taken on the
//! clean questions, and "receiver input" is the residual stream as that
//! one input of that one receiver reads it (before its LayerNorm). One clean forward, one
//! corrupted forward and one backward per answer digit (with the reference model's gradient
//! hooks at `hook_q`, `hook_z` and `mlp.hook_pre`) give every edge at once. A key or value
//! edge's gradient is the share of the head's key or value gradient that comes from the
//! receiver's query position alone, rebuilt from the clean pattern, queries, values and
//! `d hook_z`.
//!
//! The estimate is exact for paths that stay linear (a value read by a fixed pattern, no
//! LayerNorm in between) and blind where a softmax saturates or a ReLU switches, so it ranks
//! edges for real path patching rather than replacing it; [`agreement`] says how far the two
//! agree. With `steps` > 1 the gradient is averaged over `steps` points between the clean and
//! the corrupted input (the token embeddings blended, `α = 0, 1/steps, ..`: EAP with
//! integrated gradients, Hanna et al. 2024), which follows such bends at `steps` times the cost.

use super::corrupt::Pairs;
use super::patch::{cached, node_output, run_cached, weight};
use super::{Edge, Input};
use crate::analysis::naming::{predicting_position, Node};
use crate::model::{reference, Cache, HookPoint, HookTensor, Hooks};
use crate::task_model::TaskModel;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Questions per forward and backward pass.
const CHUNK: usize = 128;

/// One edge's estimated effect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeAttribution {
    /// `P3L0H0 -> P7L1H0.v`.
    pub name: String,
    /// The edge.
    pub edge: Edge,
    /// Per answer token, the estimated mean drop of the right token's logit less the mean
    /// logit (as [`super::DigitEffect::logit_drop`] measures it).
    pub drop: Vec<f64>,
}

/// The attribution of every edge in `edges` on `pairs`, the gradient averaged over `steps`
/// points from the clean input towards the corrupted one (1: plain EAP, at the clean input).
/// Errors name an edge that does not exist, an empty pair set or `steps` 0.
pub fn edge_attribution(model: &TaskModel, pairs: &Pairs, edges: &[Edge], steps: usize) -> Result<Vec<EdgeAttribution>, String> {
    edges.iter().try_for_each(|e| e.check(model))?;
    if pairs.clean.is_empty() {
        return Err("edge attribution needs at least one question pair, got none".into());
    }
    if steps == 0 {
        return Err("edge attribution needs at least 1 gradient step (1 is plain EAP), got 0".into());
    }
    let (clean_tokens, corrupt_tokens) = pairs.tokens(model)?;
    let t = model.n_ctx();
    let total = pairs.clean.len() as f64;
    let n_answer = model.n_answer();
    let mut drop = vec![vec![0.0f64; n_answer]; edges.len()];
    for (ct, kt) in clean_tokens.chunks(CHUNK * t).zip(corrupt_tokens.chunks(CHUNK * t)) {
        let n = ct.len() / t;
        let (clean, _) = run_cached(model, ct, n, &output_points(model));
        let (corrupt, _) = run_cached(model, kt, n, &output_points(model));
        let mut deltas: HashMap<Node, Vec<f32>> = HashMap::new();
        for e in edges {
            deltas.entry(e.sender).or_insert_with(|| {
                let (k, c) = (node_output(model, &corrupt, &e.sender, n), node_output(model, &clean, &e.sender, n));
                k.iter().zip(&c).map(|(a, b)| a - b).collect()
            });
        }
        for step in 0..steps {
            let blend = Blend { w_e: super::patch::weight(&model.params, "embed.W_E"), corrupt: kt, alpha: step as f32 / steps as f32 };
            let names = input_points(model);
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut hooks = (blend, Cache::only(&refs));
            let acts = reference::forward(&model.params, ct, n, t, &mut hooks);
            for i in 0..n_answer {
                let grads = digit_gradients(model, &acts, ct, n, i, total * steps as f64);
                let g = Grad { model, clean: &hooks.1, grads: &grads, n };
                let mut inputs: HashMap<(Node, Input, usize), Vec<f64>> = HashMap::new();
                for (e, out) in edges.iter().zip(drop.iter_mut()) {
                    let gi = inputs.entry((e.receiver, e.input, e.sender.pos)).or_insert_with(|| g.input(e));
                    let d = &deltas[&e.sender];
                    out[i] -= gi.iter().zip(d).map(|(a, &b)| a * b as f64).sum::<f64>();
                }
            }
        }
    }
    Ok(edges.iter().zip(drop).map(|(e, drop)| EdgeAttribution { name: e.name(), edge: *e, drop }).collect())
}

/// The activations the gradients at the receivers' inputs are read with.
fn input_points(model: &TaskModel) -> Vec<String> {
    let c = &model.params.config;
    let mut v = Vec::new();
    for l in 0..c.n_layers {
        v.extend([HookPoint::ResidPre(l), HookPoint::Q(l), HookPoint::V(l), HookPoint::Pattern(l)]);
        if c.has_mlp() {
            v.push(HookPoint::ResidMid(l));
        }
    }
    v.iter().map(HookPoint::name).collect()
}

/// The node outputs the senders' differences are taken from.
fn output_points(model: &TaskModel) -> Vec<String> {
    let c = &model.params.config;
    let per = |l| if c.has_mlp() { vec![HookPoint::Z(l), HookPoint::MlpOut(l)] } else { vec![HookPoint::Z(l)] };
    (0..c.n_layers).flat_map(per).map(|h| h.name()).collect()
}

/// Moves `hook_embed` a share `alpha` of the way to the corrupted tokens' embeddings.
struct Blend<'a> {
    w_e: &'a [f32],
    corrupt: &'a [u32],
    alpha: f32,
}

impl Hooks for Blend<'_> {
    fn call(&mut self, point: HookPoint, t: HookTensor) {
        if point != HookPoint::Embed || self.alpha == 0.0 {
            return;
        }
        let d = t.shape[2];
        for (row, &tok) in t.data.chunks_exact_mut(d).zip(self.corrupt) {
            let target = &self.w_e[tok as usize * d..(tok as usize + 1) * d];
            row.iter_mut().zip(target).for_each(|(x, y)| *x += self.alpha * (y - *x));
        }
    }
}

/// The gradients of answer token `i`'s mean right-token logit less mean logit (over `total`
/// questions) at `hook_q`, `hook_z` and `mlp.hook_pre` of every block.
fn digit_gradients(model: &TaskModel, acts: &reference::Activations, tokens: &[u32], n: usize, i: usize, total: f64) -> Cache {
    let (t, v) = (model.n_ctx(), model.params.config.d_vocab_out);
    let p = predicting_position(model, i);
    let mut dlogits = vec![0.0f32; acts.logits.len()];
    for b in 0..n {
        let o = (b * t + p) * v;
        for (j, d) in dlogits[o..o + v].iter_mut().enumerate() {
            let right = (tokens[b * t + p + 1] as usize == j) as u8 as f64;
            *d = ((right - 1.0 / v as f64) / total) as f32;
        }
    }
    let c = &model.params.config;
    let names: Vec<String> =
        (0..c.n_layers).flat_map(|l| [HookPoint::Q(l), HookPoint::Z(l), HookPoint::MlpPre(l)]).map(|h| h.name()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut grads = Cache::only(&refs);
    reference::backward_hooked(&model.params, acts, &dlogits, &mut grads);
    grads
}

/// The clean activations and one digit's gradients of one chunk.
struct Grad<'a> {
    model: &'a TaskModel,
    clean: &'a Cache,
    grads: &'a Cache,
    n: usize,
}

impl Grad<'_> {
    /// The gradient `[n, d_model]` with respect to the residual stream that `e`'s input reads,
    /// at the position it reads it.
    fn input(&self, e: &Edge) -> Vec<f64> {
        let p = &self.model.params;
        let c = &p.config;
        let (d, t, dh, l) = (c.d_model, self.model.n_ctx(), c.d_head, e.receiver.layer);
        let r = e.receiver;
        let (resid, pos, ln) = match e.input {
            Input::Mlp => (HookPoint::ResidMid(l), r.pos, "ln2"),
            _ => (HookPoint::ResidPre(l), e.sender.pos, "ln1"),
        };
        let resid = cached(self.clean, resid);
        let mut out = Vec::with_capacity(self.n * d);
        for b in 0..self.n {
            let dy = match (e.input, r.head) {
                (Input::Mlp, _) => {
                    let m = c.d_mlp;
                    let dpre = &cached(self.grads, HookPoint::MlpPre(l))[(b * t + r.pos) * m..(b * t + r.pos + 1) * m];
                    back_through(weight(p, &format!("blocks.{l}.mlp.W_in")), dpre, d)
                }
                (input, Some(h)) => {
                    let (which, dhead) = self.head_grad(input, l, h, b, r.pos, e.sender.pos);
                    back_through(&weight(p, &format!("blocks.{l}.attn.W_{which}"))[h * d * dh..(h + 1) * d * dh], &dhead, d)
                }
                (_, None) => unreachable!("Edge::check gives a head receiver a head input"),
            };
            let x = &resid[(b * t + pos) * d..(b * t + pos + 1) * d];
            out.extend(layer_norm_backward(p.get(&format!("blocks.{l}.{ln}.w")), x, &dy, c.eps));
        }
        out
    }

    /// One question's gradient at head `h`'s query (at `q_pos`), or at its key or value at
    /// `src` as far as it comes from query position `q_pos`; with the weight it came through.
    fn head_grad(&self, input: Input, l: usize, h: usize, b: usize, q_pos: usize, src: usize) -> (&'static str, Vec<f32>) {
        let c = &self.model.params.config;
        let (t, nh, dh) = (self.model.n_ctx(), c.n_heads, c.d_head);
        let at = |buf: &[f32], pos: usize| buf[((b * t + pos) * nh + h) * dh..((b * t + pos) * nh + h + 1) * dh].to_vec();
        if input == Input::Query {
            return ("Q", at(cached(self.grads, HookPoint::Q(l)), q_pos));
        }
        let pattern = cached(self.clean, HookPoint::Pattern(l));
        let row = &pattern[((b * nh + h) * t + q_pos) * t..((b * nh + h) * t + q_pos + 1) * t];
        let dz = at(cached(self.grads, HookPoint::Z(l)), q_pos);
        if input == Input::Value {
            return ("V", dz.iter().map(|g| g * row[src]).collect());
        }
        // d score[q_pos, j] = pattern[j] (d pattern[j] - sum_j' pattern[j'] d pattern[j']),
        // d pattern[j] = dz . v[j]; the key at src gets d score[src] q / sqrt(d_head).
        let v = cached(self.clean, HookPoint::V(l));
        let dpat: Vec<f32> = (0..=q_pos).map(|j| dz.iter().zip(at(v, j)).map(|(a, b)| a * b).sum()).collect();
        let mean: f32 = (0..=q_pos).map(|j| row[j] * dpat[j]).sum();
        let dscore = row[src] * (dpat[src] - mean) / (dh as f32).sqrt();
        ("K", at(cached(self.clean, HookPoint::Q(l)), q_pos).iter().map(|q| q * dscore).collect())
    }
}

/// `W g` for a weight `W` `[d, k]` and a gradient `g` `[k]`: the gradient at the weight's input.
fn back_through(w: &[f32], g: &[f32], d: usize) -> Vec<f64> {
    let k = g.len();
    (0..d).map(|j| w[j * k..(j + 1) * k].iter().zip(g).map(|(&a, &b)| a as f64 * b as f64).sum()).collect()
}

/// The gradient at a LayerNorm's input `x` from the gradient `dy` at its output (weight `w`);
/// `dy` itself without a LayerNorm.
fn layer_norm_backward(w: Option<&[f32]>, x: &[f32], dy: &[f64], eps: f64) -> Vec<f64> {
    let Some(w) = w else { return dy.to_vec() };
    let d = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / d;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d;
    let s = (var + eps).sqrt();
    let xhat: Vec<f64> = x.iter().map(|&v| (v as f64 - mean) / s).collect();
    let g: Vec<f64> = dy.iter().zip(w).map(|(a, &b)| a * b as f64).collect();
    let gm = g.iter().sum::<f64>() / d;
    let gx = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / d;
    g.iter().zip(&xhat).map(|(gi, xi)| (gi - gm - xi * gx) / s).collect()
}

/// How far estimated and measured effects of the same edges agree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Edges compared.
    pub edges: usize,
    /// Spearman rank correlation of the two (average ranks for ties).
    pub spearman: f64,
    /// k of the top-k comparison.
    pub top_k: usize,
    /// Edges in both top-k lists by magnitude.
    pub shared_top_k: usize,
}

/// The agreement of `estimated` with `measured` (same edges, same order).
pub fn agreement(estimated: &[f64], measured: &[f64], k: usize) -> Agreement {
    let (ra, rb) = (ranks(estimated), ranks(measured));
    let top = |x: &[f64]| {
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_by(|&i, &j| x[j].abs().total_cmp(&x[i].abs()));
        idx.truncate(k);
        idx
    };
    let (ta, tb) = (top(estimated), top(measured));
    Agreement {
        edges: estimated.len(),
        spearman: pearson(&ra, &rb),
        top_k: k.min(estimated.len()),
        shared_top_k: ta.iter().filter(|i| tb.contains(i)).count(),
    }
}

/// Ranks from 1, ties sharing their average rank.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        idx[i..=j].iter().for_each(|&k| r[k] = (i + j) as f64 / 2.0 + 1.0);
        i = j + 1;
    }
    r
}

/// Pearson correlation; 0 when either side is constant.
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().max(1) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let (va, vb) = (a.iter().map(|x| (x - ma).powi(2)).sum::<f64>(), b.iter().map(|y| (y - mb).powi(2)).sum::<f64>());
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_ranks_with_ties_and_counts_the_shared_top_k() {
        let a = agreement(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0], 2);
        assert!((a.spearman - 1.0).abs() < 1e-12 && a.shared_top_k == 2, "{a:?}");
        let a = agreement(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0], 1);
        assert!((a.spearman + 1.0).abs() < 1e-12 && a.shared_top_k == 0, "{a:?}");
        assert_eq!(ranks(&[5.0, 1.0, 5.0]), vec![2.5, 1.0, 2.5]);
        assert_eq!(agreement(&[1.0, 1.0], &[1.0, 2.0], 1).spearman, 0.0);
    }
}
