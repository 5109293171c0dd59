//! Path patching of one edge at a time, on the reference model's hooks. For an edge (sender,
//! receiver, input) and a clean question: take the sender's output on the corrupted and on the
//! clean question (`z_h W_O[h]` of a head at its position, `hook_mlp_out` of an MLP), add the
//! difference to the clean residual stream that the receiver's input reads (`hook_resid_pre`
//! for a head, `hook_resid_mid` for an MLP, at the position the input reads), apply the
//! receiver's LayerNorm and weights to it, and put the result in place of that one head's
//! `hook_q` / `hook_k` / `hook_v` slice or that MLP's `hook_pre` row. A key or value patched at
//! the sender's position would also reach the head's queries at other positions, so the head's
//! `hook_z` at every position but the receiver's is reset to its clean value: only the receiver
//! sees the path. Everything downstream of the receiver then runs normally.

use super::corrupt::Pairs;
use super::{Edge, Input};
use crate::analysis::naming::{answer_names, predicting_position, Node};
use crate::eval::predict::argmax;
use crate::model::linalg::{add_bias, matmul, MatRef};
use crate::model::{reference, Cache, HookPoint, HookTensor, Hooks, Params};
use crate::task::Class;
use crate::task_model::TaskModel;
use serde::{Deserialize, Serialize};

/// Questions per reference forward pass.
const CHUNK: usize = 128;

/// Per question and answer token, how the model does on the clean question's answer token at
/// the position that predicts it (teacher-forced): row-major `[question, answer token]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    /// Answer tokens per question.
    pub n_answer: usize,
    /// Log probability of the right token.
    pub logprob: Vec<f64>,
    /// Its logit less the mean logit (linear in the logits: what edge attribution estimates).
    pub logit: Vec<f64>,
    /// Its probability.
    pub prob: Vec<f64>,
    /// Its logit less the largest other logit (positive exactly when it is the argmax).
    pub margin: Vec<f64>,
    /// Whether it is the argmax.
    pub correct: Vec<bool>,
}

impl Scores {
    /// Appends the scores of `n` questions from their logits `[n, t, d_vocab_out]` and clean
    /// tokens `[n, t]`.
    fn push(&mut self, model: &TaskModel, logits: &[f32], tokens: &[u32], n: usize) {
        let (t, v) = (model.n_ctx(), model.params.config.d_vocab_out);
        self.n_answer = model.n_answer();
        for b in 0..n {
            for i in 0..self.n_answer {
                let p = predicting_position(model, i);
                let row = &logits[(b * t + p) * v..(b * t + p + 1) * v];
                let right = tokens[b * t + p + 1] as usize;
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
                let lse = max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
                let other = row.iter().enumerate().filter(|&(j, _)| j != right).fold(f64::NEG_INFINITY, |m, (_, &x)| m.max(x as f64));
                let lp = row[right] as f64 - lse;
                self.logprob.push(lp);
                self.logit.push(row[right] as f64 - row.iter().map(|&x| x as f64).sum::<f64>() / v as f64);
                self.prob.push(lp.exp());
                self.margin.push(row[right] as f64 - other);
                self.correct.push(argmax(row) == right);
            }
        }
    }
}

/// What one path-patched pass gives: the scores, and the receiver's output (a head's
/// `z_h W_O[h]`, an MLP's `hook_mlp_out`) at its position, `[question, d_model]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Patched {
    /// Scores under the patch.
    pub scores: Scores,
    /// The receiver's output under the patch.
    pub receiver: Vec<f32>,
}

/// One complexity class's share of an effect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassEffect {
    /// "S1".
    pub class: String,
    /// Questions of the class.
    pub questions: usize,
    /// Mean drop of the right token's log probability on them.
    pub logprob_drop: f64,
    /// Drop of the answer token's accuracy on them.
    pub accuracy_drop: f64,
}

/// An edge's effect on one answer token: clean minus patched, averaged over the questions
/// (positive: the patch hurts the right answer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigitEffect {
    /// The answer token, "A3".
    pub digit: String,
    /// Mean drop of the right token's log probability (nats).
    pub logprob_drop: f64,
    /// Its standard error over the questions.
    pub logprob_se: f64,
    /// Mean drop of the right token's logit less the mean logit.
    pub logit_drop: f64,
    /// Mean drop of the right token's probability.
    pub prob_drop: f64,
    /// Mean drop of the right token's logit less the best other logit.
    pub margin_drop: f64,
    /// Drop of the share of questions whose right token is the argmax.
    pub accuracy_drop: f64,
    /// The log-probability drop of the whole corruption (the corrupted question run as it is):
    /// what every path together carries.
    pub total_logprob_drop: f64,
    /// Per complexity class of the clean question, in class order.
    pub classes: Vec<ClassEffect>,
}

/// One edge's path-patching result on one set of pairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeEffect {
    /// `P3L0H0 -> P7L1H0.v`.
    pub name: String,
    /// The edge.
    pub edge: Edge,
    /// Questions patched.
    pub questions: usize,
    /// Mean length of the change of the receiver's output.
    pub receiver_change: f64,
    /// That change over the mean change the whole corruption makes to the receiver's output
    /// (0 when the corruption leaves it unchanged).
    pub receiver_share: f64,
    /// Per answer token.
    pub digits: Vec<DigitEffect>,
}

/// One chunk's clean and corrupted activations.
struct Chunk {
    n: usize,
    tokens: Vec<u32>,
    clean: Cache,
    corrupt: Cache,
}

/// Path patching on one set of pairs: runs the clean and corrupted questions once, then each
/// edge with [`PathPatcher::effect`] (or [`PathPatcher::run`] for the raw per-question scores).
pub struct PathPatcher<'m> {
    model: &'m TaskModel,
    classes: Vec<Class>,
    chunks: Vec<Chunk>,
    clean: Scores,
    corrupt: Scores,
}

/// The hook names path patching reads: every block's inputs and outputs.
fn cached_points(model: &TaskModel, inputs: bool) -> Vec<String> {
    let c = &model.params.config;
    let mut v = Vec::new();
    for l in 0..c.n_layers {
        v.push(HookPoint::Z(l));
        if c.has_mlp() {
            v.push(HookPoint::MlpOut(l));
            if inputs {
                v.push(HookPoint::ResidMid(l));
            }
        }
        if inputs {
            v.push(HookPoint::ResidPre(l));
        }
    }
    v.iter().map(HookPoint::name).collect()
}

/// A reference forward over `tokens` (`n` questions) caching `names`: the cache and logits.
pub(super) fn run_cached(model: &TaskModel, tokens: &[u32], n: usize, names: &[String]) -> (Cache, reference::Activations) {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut cache = Cache::only(&refs);
    let acts = reference::forward(&model.params, tokens, n, model.n_ctx(), &mut cache);
    (cache, acts)
}

/// The cached tensor of `point` (cached by construction).
pub(super) fn cached(cache: &Cache, point: HookPoint) -> &[f32] {
    &cache.get(&point.name()).unwrap_or_else(|| panic!("{} is cached", point.name())).data
}

impl<'m> PathPatcher<'m> {
    /// Runs the clean and corrupted questions of `pairs` once. Errors on an empty pair set or a
    /// question the model cannot read.
    pub fn new(model: &'m TaskModel, pairs: &Pairs) -> Result<PathPatcher<'m>, String> {
        if pairs.clean.is_empty() {
            return Err("path patching needs at least one question pair, got none".into());
        }
        let (clean_tokens, corrupt_tokens) = pairs.tokens(model)?;
        let t = model.n_ctx();
        let (inputs, outputs) = (cached_points(model, true), cached_points(model, false));
        let mut me = PathPatcher {
            model,
            classes: pairs.clean.iter().map(Class::of).collect(),
            chunks: Vec::new(),
            clean: Scores::default(),
            corrupt: Scores::default(),
        };
        for (ct, kt) in clean_tokens.chunks(CHUNK * t).zip(corrupt_tokens.chunks(CHUNK * t)) {
            let n = ct.len() / t;
            let (clean, acts) = run_cached(model, ct, n, &inputs);
            me.clean.push(model, &acts.logits, ct, n);
            let (corrupt, acts) = run_cached(model, kt, n, &outputs);
            me.corrupt.push(model, &acts.logits, ct, n);
            me.chunks.push(Chunk { n, tokens: ct.to_vec(), clean, corrupt });
        }
        Ok(me)
    }

    /// The clean questions' scores.
    pub fn clean_scores(&self) -> &Scores {
        &self.clean
    }

    /// The corrupted questions' scores (on the clean answer tokens).
    pub fn corrupt_scores(&self) -> &Scores {
        &self.corrupt
    }

    /// The path-patched pass of `edge` over every pair.
    pub fn run(&self, edge: &Edge) -> Result<Patched, String> {
        edge.check(self.model)?;
        let mut out = Patched { scores: Scores::default(), receiver: Vec::new() };
        for ch in &self.chunks {
            let mut hook = self.hook(ch, edge);
            let acts = reference::forward(&self.model.params, &ch.tokens, ch.n, self.model.n_ctx(), &mut hook);
            out.scores.push(self.model, &acts.logits, &ch.tokens, ch.n);
            out.receiver.extend(receiver_output(&self.model.params, &edge.receiver, &hook.captured, ch.n));
        }
        Ok(out)
    }

    /// The effect of `edge`: [`PathPatcher::run`] summarised against the clean and the
    /// corrupted pass.
    pub fn effect(&self, edge: &Edge) -> Result<EdgeEffect, String> {
        let patched = self.run(edge)?;
        let (mut clean_out, mut corrupt_out) = (Vec::new(), Vec::new());
        for ch in &self.chunks {
            clean_out.extend(node_output(self.model, &ch.clean, &edge.receiver, ch.n));
            corrupt_out.extend(node_output(self.model, &ch.corrupt, &edge.receiver, ch.n));
        }
        let d = self.model.params.config.d_model;
        let change = mean_distance(&patched.receiver, &clean_out, d);
        let total = mean_distance(&corrupt_out, &clean_out, d);
        let names = answer_names(self.model);
        let digits =
            (0..names.len()).map(|i| digit_effect(&names[i], i, &self.clean, &patched.scores, &self.corrupt, &self.classes)).collect();
        Ok(EdgeEffect {
            name: edge.name(),
            edge: *edge,
            questions: self.classes.len(),
            receiver_change: change,
            receiver_share: if total > 0.0 { change / total } else { 0.0 },
            digits,
        })
    }

    /// The hook that patches `edge` into chunk `ch`.
    fn hook<'a>(&self, ch: &'a Chunk, edge: &Edge) -> PathHook<'a> {
        let (r, l) = (edge.receiver, edge.receiver.layer);
        let (point, pos) = match edge.input {
            Input::Query => (HookPoint::Q(l), r.pos),
            Input::Key => (HookPoint::K(l), edge.sender.pos),
            Input::Value => (HookPoint::V(l), edge.sender.pos),
            Input::Mlp => (HookPoint::MlpPre(l), r.pos),
        };
        let restore = matches!(edge.input, Input::Key | Input::Value).then(|| cached(&ch.clean, HookPoint::Z(l)));
        PathHook { point, pos, receiver: r, values: self.patched_input(ch, edge), restore, captured: Vec::new() }
    }

    /// The receiver input's new value per question: its weights applied to the LayerNorm of the
    /// clean residual stream plus the sender's output difference; `[n, d_head]` or `[n, d_mlp]`.
    fn patched_input(&self, ch: &Chunk, edge: &Edge) -> Vec<f32> {
        let (m, p) = (self.model, &self.model.params);
        let (d, t, l) = (p.config.d_model, m.n_ctx(), edge.receiver.layer);
        let (resid, pos, ln) = match edge.input {
            Input::Mlp => (HookPoint::ResidMid(l), edge.receiver.pos, "ln2"),
            _ => (HookPoint::ResidPre(l), edge.sender.pos, "ln1"),
        };
        let delta = sender_delta(m, ch, &edge.sender);
        let resid = cached(&ch.clean, resid);
        let mut x: Vec<f32> = (0..ch.n).flat_map(|b| resid[(b * t + pos) * d..(b * t + pos + 1) * d].iter().copied()).collect();
        x.iter_mut().zip(&delta).for_each(|(a, b)| *a += b);
        let y = layer_norm(p, &format!("blocks.{l}.{ln}"), &x);
        match (edge.input, edge.receiver.head) {
            (Input::Mlp, _) => linear(&y, weight(p, &format!("blocks.{l}.mlp.W_in")), weight(p, &format!("blocks.{l}.mlp.b_in")), d),
            (input, Some(h)) => {
                let which = match input {
                    Input::Query => "Q",
                    Input::Key => "K",
                    _ => "V",
                };
                let dh = p.config.d_head;
                let w = &weight(p, &format!("blocks.{l}.attn.W_{which}"))[h * d * dh..(h + 1) * d * dh];
                let b = &weight(p, &format!("blocks.{l}.attn.b_{which}"))[h * dh..(h + 1) * dh];
                linear(&y, w, b, d)
            }
            (_, None) => unreachable!("Edge::check gives a head receiver a head input"),
        }
    }
}

/// Sets the receiver's input, resets a key or value path's other query positions, and keeps the
/// receiver's output (`hook_z` of its head, or `hook_mlp_out`, at its position).
struct PathHook<'a> {
    point: HookPoint,
    pos: usize,
    receiver: Node,
    values: Vec<f32>,
    restore: Option<&'a [f32]>,
    captured: Vec<f32>,
}

impl Hooks for PathHook<'_> {
    fn call(&mut self, point: HookPoint, t: HookTensor) {
        let (n, np) = (t.shape[0], t.shape[1]);
        let feat: usize = t.shape[2..].iter().product();
        let r = self.receiver;
        if point == self.point {
            let width = self.values.len() / n;
            let off = r.head.map_or(0, |h| h * width);
            for b in 0..n {
                let o = (b * np + self.pos) * feat + off;
                t.data[o..o + width].copy_from_slice(&self.values[b * width..(b + 1) * width]);
            }
        }
        match r.head {
            Some(h) if point == HookPoint::Z(r.layer) => {
                let dh = t.shape[3];
                for b in 0..n {
                    for pos in 0..np {
                        let o = (b * np + pos) * feat + h * dh;
                        if pos == r.pos {
                            self.captured.extend_from_slice(&t.data[o..o + dh]);
                        } else if let Some(clean) = self.restore {
                            t.data[o..o + dh].copy_from_slice(&clean[o..o + dh]);
                        }
                    }
                }
            }
            None if point == HookPoint::MlpOut(r.layer) => {
                for b in 0..n {
                    self.captured.extend_from_slice(&t.data[(b * np + r.pos) * feat..(b * np + r.pos + 1) * feat]);
                }
            }
            _ => {}
        }
    }
}

/// A weight by its TransformerLens name (every model of this layout has it).
pub(super) fn weight<'p>(p: &'p Params, name: &str) -> &'p [f32] {
    p.get(name).unwrap_or_else(|| panic!("the model has no tensor '{name}'"))
}

/// `x W + b` for rows `x` of width `d`.
fn linear(x: &[f32], w: &[f32], b: &[f32], d: usize) -> Vec<f32> {
    let (rows, cols) = (x.len() / d, b.len());
    let mut out = vec![0.0; rows * cols];
    matmul(&mut out, MatRef::new(x, rows, d), MatRef::new(w, d, cols), false);
    add_bias(&mut out, b);
    out
}

/// The LayerNorm `prefix` (e.g. `blocks.1.ln1`) of rows `x`, as the model computes it; the
/// identity in a model without LayerNorms.
pub(super) fn layer_norm(p: &Params, prefix: &str, x: &[f32]) -> Vec<f32> {
    let (Some(w), Some(b)) = (p.get(&format!("{prefix}.w")), p.get(&format!("{prefix}.b"))) else { return x.to_vec() };
    let d = w.len();
    let mut out = vec![0.0; x.len()];
    let (mut xhat, mut scale) = (vec![0.0; x.len()], vec![0.0; x.len() / d]);
    crate::model::ops::layernorm_forward(x, w, b, p.config.eps as f32, &mut xhat, &mut scale, &mut out);
    out
}

/// A node's output `[n, d_model]` at its position from a cache: `z_h W_O[h]` of a head (no
/// bias), `hook_mlp_out` of an MLP.
pub(super) fn node_output(model: &TaskModel, cache: &Cache, node: &Node, n: usize) -> Vec<f32> {
    let (c, t) = (&model.params.config, model.n_ctx());
    match node.head {
        Some(h) => {
            let (nh, dh) = (c.n_heads, c.d_head);
            let z = cached(cache, HookPoint::Z(node.layer));
            let zs: Vec<f32> = (0..n).flat_map(|b| z[((b * t + node.pos) * nh + h) * dh..][..dh].iter().copied()).collect();
            receiver_output(&model.params, node, &zs, n)
        }
        None => {
            let o = cached(cache, HookPoint::MlpOut(node.layer));
            (0..n).flat_map(|b| o[(b * t + node.pos) * c.d_model..(b * t + node.pos + 1) * c.d_model].iter().copied()).collect()
        }
    }
}

/// A head's `z_h` rows `[n, d_head]` times `W_O[h]`; an MLP's rows as they are.
fn receiver_output(p: &Params, node: &Node, rows: &[f32], n: usize) -> Vec<f32> {
    let Some(h) = node.head else { return rows.to_vec() };
    let (d, dh) = (p.config.d_model, p.config.d_head);
    let w_o = &weight(p, &format!("blocks.{}.attn.W_O", node.layer))[h * dh * d..(h + 1) * dh * d];
    let mut out = vec![0.0; n * d];
    matmul(&mut out, MatRef::new(rows, n, dh), MatRef::new(w_o, dh, d), false);
    out
}

/// The sender's output on the corrupted less on the clean questions, `[n, d_model]`.
fn sender_delta(model: &TaskModel, ch: &Chunk, sender: &Node) -> Vec<f32> {
    let (k, c) = (node_output(model, &ch.corrupt, sender, ch.n), node_output(model, &ch.clean, sender, ch.n));
    k.iter().zip(&c).map(|(a, b)| a - b).collect()
}

/// Mean Euclidean distance between matching rows of width `d`.
fn mean_distance(a: &[f32], b: &[f32], d: usize) -> f64 {
    let rows = (a.len() / d).max(1) as f64;
    let sum: f64 = a
        .chunks_exact(d)
        .zip(b.chunks_exact(d))
        .map(|(x, y)| x.iter().zip(y).map(|(p, q)| ((p - q) as f64).powi(2)).sum::<f64>().sqrt())
        .sum();
    sum / rows
}

/// Answer token `i`'s effect: clean less patched, overall and per class.
fn digit_effect(digit: &str, i: usize, clean: &Scores, patched: &Scores, corrupt: &Scores, classes: &[Class]) -> DigitEffect {
    let k = clean.n_answer;
    let at = |s: &Scores, q: usize| s.logprob[q * k + i];
    let drops: Vec<f64> = (0..classes.len()).map(|q| at(clean, q) - at(patched, q)).collect();
    let n = drops.len().max(1) as f64;
    let mean = drops.iter().sum::<f64>() / n;
    let var = drops.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let avg = |f: &dyn Fn(usize) -> f64| (0..classes.len()).map(f).sum::<f64>() / n;
    let acc = |s: &Scores, q: usize| s.correct[q * k + i] as u8 as f64;
    let mut kinds: Vec<Class> = classes.to_vec();
    kinds.sort();
    kinds.dedup();
    let per_class = kinds
        .into_iter()
        .map(|c| {
            let qs: Vec<usize> = (0..classes.len()).filter(|&q| classes[q] == c).collect();
            let m = qs.len() as f64;
            ClassEffect {
                class: c.to_string(),
                questions: qs.len(),
                logprob_drop: qs.iter().map(|&q| drops[q]).sum::<f64>() / m,
                accuracy_drop: qs.iter().map(|&q| acc(clean, q) - acc(patched, q)).sum::<f64>() / m,
            }
        })
        .collect();
    DigitEffect {
        digit: digit.to_string(),
        logprob_drop: mean,
        logprob_se: (var / n).sqrt(),
        logit_drop: avg(&|q| clean.logit[q * k + i] - patched.logit[q * k + i]),
        prob_drop: avg(&|q| clean.prob[q * k + i] - patched.prob[q * k + i]),
        margin_drop: avg(&|q| clean.margin[q * k + i] - patched.margin[q * k + i]),
        accuracy_drop: avg(&|q| acc(clean, q) - acc(patched, q)),
        total_logprob_drop: avg(&|q| at(clean, q) - at(corrupt, q)),
        classes: per_class,
    }
}
