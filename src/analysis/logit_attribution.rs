//! Direct logit attribution, as TransformerLens users compute it (`cache.decompose_resid`,
//! `stack_head_results`, `apply_ln_to_stack`): how much each head and MLP writes, straight
//! through the residual stream, into the logit of the right answer token at the position that
//! predicts it. Every component of the final residual stream there is centred and divided by the
//! final LayerNorm's scale (the LayerNorm linearised at this input), then projected on the right
//! token's unembedding direction less the mean direction over all tokens (so a component that
//! raises every logit alike scores zero).
//!
//! The components add up exactly: their sum plus the constant terms (`ln_final.b` and `b_U`)
//! is the right token's logit less the mean logit, which [`direct_logit_attribution`] checks.

use super::intervene::full_cache;
use super::naming::{answer_names, head_name, predicting_position};
use crate::model::Cache;
use crate::task::Question;
use crate::task_model::TaskModel;
use serde::{Deserialize, Serialize};

/// One answer token's attribution, averaged over the questions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigitAttribution {
    /// The answer token, e.g. "A3".
    pub digit: String,
    /// The position that predicts it.
    pub position: usize,
    /// Mean contribution of each component to the right token's centred logit, largest
    /// magnitude first: `L0H1` (head 1 of layer 0 at this position), `L0M` (its MLP), `L0 b_O`,
    /// `embed`, `pos_embed`.
    pub components: Vec<(String, f64)>,
    /// Mean of the right token's logit less the mean logit.
    pub centred_logit: f64,
    /// Largest difference, over the questions, between that logit and the components' sum plus
    /// the constant terms (float rounding only).
    pub max_residual: f64,
}

/// The direct logit attribution of every answer token over `questions`.
pub fn direct_logit_attribution(model: &TaskModel, questions: &[Question]) -> Vec<DigitAttribution> {
    let c = &model.params.config;
    let mut names = vec!["hook_embed".to_string(), "hook_pos_embed".to_string(), "ln_final.hook_scale".to_string()];
    names.push(format!("blocks.{}.hook_resid_post", c.n_layers - 1));
    for l in 0..c.n_layers {
        names.push(format!("blocks.{l}.attn.hook_z"));
        names.push(format!("blocks.{l}.hook_mlp_out"));
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let digits = answer_names(model);
    let mut sums: Vec<Option<DigitAttribution>> = vec![None; model.n_answer()];
    for chunk in questions.chunks(256) {
        let cache = full_cache(model, chunk, &refs);
        for (b, q) in chunk.iter().enumerate() {
            let tokens = q.tokens(model.format).expect("a question the model answers");
            for (i, slot) in sums.iter_mut().enumerate() {
                let p = predicting_position(model, i);
                let one = attribute(model, &cache, b, p, tokens[p + 1] as usize);
                accumulate(slot, one, &digits[i], p);
            }
        }
    }
    let n = questions.len().max(1) as f64;
    sums.into_iter()
        .flatten()
        .map(|mut d| {
            d.components.iter_mut().for_each(|c| c.1 /= n);
            d.centred_logit /= n;
            d.components.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
            d
        })
        .collect()
}

fn accumulate(slot: &mut Option<DigitAttribution>, one: (Vec<(String, f64)>, f64, f64), digit: &str, position: usize) {
    let (components, centred_logit, residual) = one;
    match slot {
        None => *slot = Some(DigitAttribution { digit: digit.to_string(), position, components, centred_logit, max_residual: residual }),
        Some(d) => {
            d.components.iter_mut().zip(components).for_each(|(a, b)| a.1 += b.1);
            d.centred_logit += centred_logit;
            d.max_residual = d.max_residual.max(residual);
        }
    }
}

/// One question's components at position `p` for token `tok`: (components, centred logit,
/// |centred logit - sum - constants|).
fn attribute(model: &TaskModel, cache: &Cache, b: usize, p: usize, tok: usize) -> (Vec<(String, f64)>, f64, f64) {
    let pr = &model.params;
    let c = &pr.config;
    let (d, v, t) = (c.d_model, c.d_vocab_out, model.n_ctx());
    let w_u = pr.get("unembed.W_U").expect("every model has W_U");
    let b_u = pr.get("unembed.b_U").expect("every model has b_U");
    // The right token's direction less the mean direction, and the same through ln_final's weight.
    let ln = pr.get("ln_final.w").zip(pr.get("ln_final.b"));
    let raw: Vec<f64> = w_u.chunks_exact(v).map(|row| row[tok] as f64 - row.iter().map(|&x| x as f64).sum::<f64>() / v as f64).collect();
    let dir: Vec<f64> = raw.iter().enumerate().map(|(i, r)| r * ln.map_or(1.0, |(w, _)| w[i] as f64)).collect();
    let scale = cache.get("ln_final.hook_scale").map_or(1.0, |s| s.data[b * t + p] as f64);
    let project = |x: &[f32]| -> f64 {
        let mean = if ln.is_some() { x.iter().map(|&v| v as f64).sum::<f64>() / d as f64 } else { 0.0 };
        x.iter().zip(&dir).map(|(&xi, di)| (xi as f64 - mean) * di).sum::<f64>() / scale
    };
    let row = |name: &str| cache.get(name).map(|x| &x.data[(b * t + p) * d..(b * t + p + 1) * d]);
    let mut parts: Vec<(String, f64)> = Vec::new();
    for name in ["hook_embed", "hook_pos_embed"] {
        parts.push((name.trim_start_matches("hook_").to_string(), project(row(name).expect("cached"))));
    }
    for l in 0..c.n_layers {
        let z = &cache.get(&format!("blocks.{l}.attn.hook_z")).expect("cached").data;
        let w_o = pr.get(&format!("blocks.{l}.attn.W_O")).expect("every block has W_O");
        for h in 0..c.n_heads {
            let zh = &z[((b * t + p) * c.n_heads + h) * c.d_head..][..c.d_head];
            let out: Vec<f32> = (0..d).map(|j| zh.iter().enumerate().map(|(k, &zk)| zk * w_o[(h * c.d_head + k) * d + j]).sum()).collect();
            parts.push((head_name(l, h), project(&out)));
        }
        parts.push((format!("L{l} b_O"), project(pr.get(&format!("blocks.{l}.attn.b_O")).expect("every block has b_O"))));
        if let Some(m) = row(&format!("blocks.{l}.hook_mlp_out")) {
            parts.push((format!("L{l}M"), project(m)));
        }
    }
    let ln_bias = ln.map_or(0.0, |(_, lb)| lb.iter().zip(&raw).map(|(&bi, r)| bi as f64 * r).sum::<f64>());
    let constants = ln_bias + b_u[tok] as f64 - b_u.iter().map(|&x| x as f64).sum::<f64>() / v as f64;
    let logits = centred_logit(model, cache, b, p, tok);
    let residual = (logits - parts.iter().map(|x| x.1).sum::<f64>() - constants).abs();
    (parts, logits, residual)
}

/// The right token's logit less the mean logit, from the cached final residual stream.
fn centred_logit(model: &TaskModel, cache: &Cache, b: usize, p: usize, tok: usize) -> f64 {
    let pr = &model.params;
    let c = &pr.config;
    let (d, v, t) = (c.d_model, c.d_vocab_out, model.n_ctx());
    let last = format!("blocks.{}.hook_resid_post", c.n_layers - 1);
    let x = &cache.get(&last).expect("cached").data[(b * t + p) * d..(b * t + p + 1) * d];
    let normed: Vec<f64> = match pr.get("ln_final.w").zip(pr.get("ln_final.b")) {
        Some((w, lb)) => {
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            let s = (var + c.eps).sqrt();
            x.iter().zip(w.iter().zip(lb)).map(|(&xi, (&wi, &bi))| (xi as f64 - mean) / s * wi as f64 + bi as f64).collect()
        }
        None => x.iter().map(|&v| v as f64).collect(),
    };
    let (w_u, b_u) = (pr.get("unembed.W_U").expect("W_U"), pr.get("unembed.b_U").expect("b_U"));
    let logit = |j: usize| normed.iter().enumerate().map(|(i, &n)| n * w_u[i * v + j] as f64).sum::<f64>() + b_u[j] as f64;
    logit(tok) - (0..v).map(logit).sum::<f64>() / v as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{random_questions, Op};
    use crate::train::{TrainConfig, Trainer};

    fn trained(preset: &str, steps: u64) -> TaskModel {
        let cfg = TrainConfig::preset(preset).unwrap().with_overrides(&[format!("steps={steps}")]).unwrap();
        let mut t = Trainer::new(cfg).unwrap();
        for _ in 0..steps {
            t.step().unwrap();
        }
        TaskModel::from_file(t.model_file(), "test").unwrap()
    }

    #[test]
    fn components_add_up_to_the_centred_logit() {
        for (preset, op) in [("tiny_l2", Op::Add), ("tiny_sub", Op::Sub)] {
            let m = trained(preset, 200);
            let qs = random_questions(m.n_digits, op, 300, 4).unwrap();
            let dla = direct_logit_attribution(&m, &qs);
            assert_eq!(dla.len(), m.n_answer());
            for d in &dla {
                assert!(d.max_residual < 1e-3 * d.centred_logit.abs().max(1.0), "{preset} {}: {d:?}", d.digit);
                let per_head = m.params.config.n_layers * m.params.config.n_heads;
                assert!(d.components.iter().filter(|c| c.0.contains('H')).count() == per_head, "{d:?}");
            }
        }
    }

    #[test]
    fn a_head_that_writes_nothing_scores_zero() {
        // Zero head 1's output weights: its attribution must vanish.
        let mut m = trained("tiny", 600);
        let c = m.params.config.clone();
        let w_o = m.params.get_mut("blocks.0.attn.W_O").unwrap();
        w_o[c.d_head * c.d_model..2 * c.d_head * c.d_model].fill(0.0);
        let qs = random_questions(2, Op::Add, 200, 5).unwrap();
        for d in direct_logit_attribution(&m, &qs) {
            let h1 = d.components.iter().find(|c| c.0 == "L0H1").unwrap().1;
            assert!(h1.abs() < 1e-9, "{}: {h1}", d.digit);
        }
    }
}
