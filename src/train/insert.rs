//! Model insertion (the follow-up paper's "ins" models): start a larger model from a trained
//! smaller one, copying its embeddings, unembedding, LayerNorms, MLPs and the attention weights
//! of its heads into the first layers and first heads, and optionally copying them in again
//! every K steps while the larger model trains on a new task.

use crate::model::params::{AttnIdx, Params};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What to insert, from where, and how often to re-impose it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InsertConfig {
    /// The trained model to insert (a model file or run folder).
    pub from: PathBuf,
    /// Re-impose the inserted heads every this many steps (0 = only at initialisation).
    pub every: u64,
    /// Also re-impose the inserted MLPs.
    pub mlps: bool,
}

/// Why a model cannot be inserted into another: the first mismatch, by name.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InsertError {
    /// A dimension differs between the two models.
    #[error("cannot insert: {name} is {inserted} in the inserted model but {new} in the new one (they must be equal)")]
    Dimension {
        /// The config field.
        name: &'static str,
        /// Its value in the inserted model.
        inserted: usize,
        /// Its value in the new model.
        new: usize,
    },
    /// The inserted model has more layers or heads than the new one.
    #[error(
        "cannot insert a {}-layer {}-head model into a {}-layer {}-head one: the new model needs at least as many layers and heads",
        inserted.0, inserted.1, new.0, new.1
    )]
    TooLarge {
        /// Layers and heads of the inserted model.
        inserted: (usize, usize),
        /// Layers and heads of the new model.
        new: (usize, usize),
    },
    /// The models differ in kind of normalisation, attention-only or activation.
    #[error("cannot insert: the models differ in normalization_type, attn_only or act_fn")]
    Kind,
}

/// Checks that `from` fits inside `to`, naming the first mismatch.
pub fn check_compatible(from: &Params, to: &Params) -> Result<(), InsertError> {
    let (f, t) = (&from.config, &to.config);
    let same = [
        ("d_model", f.d_model, t.d_model),
        ("d_head", f.d_head, t.d_head),
        ("d_mlp", f.d_mlp, t.d_mlp),
        ("d_vocab", f.d_vocab, t.d_vocab),
        ("d_vocab_out", f.d_vocab_out, t.d_vocab_out),
        ("n_ctx", f.n_ctx, t.n_ctx),
    ];
    for (name, inserted, new) in same {
        if inserted != new {
            return Err(InsertError::Dimension { name, inserted, new });
        }
    }
    if f.n_layers > t.n_layers || f.n_heads > t.n_heads {
        return Err(InsertError::TooLarge { inserted: (f.n_layers, f.n_heads), new: (t.n_layers, t.n_heads) });
    }
    if f.has_ln() != t.has_ln() || f.attn_only != t.attn_only || f.act_fn != t.act_fn {
        return Err(InsertError::Kind);
    }
    Ok(())
}

fn copy(from: &Params, to: &mut Params, a: &std::ops::Range<usize>, b: &std::ops::Range<usize>) {
    to.data[b.clone()].copy_from_slice(&from.data[a.clone()]);
}

/// Copies head `h`'s slices of W_Q, W_K, W_V, b_Q, b_K, b_V and W_O.
fn copy_heads(from: &Params, to: &mut Params, fa: &AttnIdx, ta: &AttnIdx, heads: usize) {
    let (d, dh) = (from.config.d_model, from.config.d_head);
    for (fr, tr, per_head) in
        [(&fa.w_q, &ta.w_q, d * dh), (&fa.w_k, &ta.w_k, d * dh), (&fa.w_v, &ta.w_v, d * dh), (&fa.w_o, &ta.w_o, dh * d)]
    {
        copy(from, to, &(fr.start..fr.start + heads * per_head), &(tr.start..tr.start + heads * per_head));
    }
    for (fr, tr) in [(&fa.b_q, &ta.b_q), (&fa.b_k, &ta.b_k), (&fa.b_v, &ta.b_v)] {
        copy(from, to, &(fr.start..fr.start + heads * dh), &(tr.start..tr.start + heads * dh));
    }
}

/// Re-imposes the inserted heads (and, with `mlps`, the MLPs) of every inserted layer.
pub fn reimpose(from: &Params, to: &mut Params, mlps: bool) {
    let heads = from.config.n_heads;
    for (fb, tb) in from.layout.blocks.iter().zip(to.layout.blocks.clone()) {
        copy_heads(from, to, &fb.attn, &tb.attn, heads);
        if let (true, Some(fm), Some(tm)) = (mlps, &fb.mlp, &tb.mlp) {
            for (a, b) in [(&fm.w_in, &tm.w_in), (&fm.b_in, &tm.b_in), (&fm.w_out, &tm.w_out), (&fm.b_out, &tm.b_out)] {
                copy(from, to, a, b);
            }
        }
    }
}

/// Initialises `to` from `from`: embeddings, unembedding, final LN, and per inserted layer its
/// LayerNorms, MLP, attention output bias and the first `from.n_heads` heads.
pub fn insert(from: &Params, to: &mut Params) -> Result<(), InsertError> {
    check_compatible(from, to)?;
    let (fl, tl) = (from.layout.clone(), to.layout.clone());
    for (a, b) in [(&fl.w_e, &tl.w_e), (&fl.w_pos, &tl.w_pos), (&fl.w_u, &tl.w_u), (&fl.b_u, &tl.b_u)] {
        copy(from, to, a, b);
    }
    if let (Some(a), Some(b)) = (&fl.ln_final, &tl.ln_final) {
        copy(from, to, &a.w, &b.w);
        copy(from, to, &a.b, &b.b);
    }
    for (fb, tb) in fl.blocks.iter().zip(&tl.blocks) {
        for (a, b) in [(&fb.ln1, &tb.ln1), (&fb.ln2, &tb.ln2)] {
            if let (Some(a), Some(b)) = (a, b) {
                copy(from, to, &a.w, &b.w);
                copy(from, to, &a.b, &b.b);
            }
        }
        copy(from, to, &fb.attn.b_o, &tb.attn.b_o);
    }
    reimpose(from, to, true);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::TrainConfig;

    fn params(name: &str, overrides: &[&str]) -> Params {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        Params::init(&TrainConfig::preset(name).unwrap().with_overrides(&o).unwrap().model)
    }

    #[test]
    fn the_follow_up_addition_model_fits_into_its_mixed_model() {
        let from = Params::init(&TrainConfig::preset("add_d6_l2_h3_t15K_s372001").unwrap().model);
        let to = Params::init(&TrainConfig::preset("ins1_mix_d6_l3_h4_t40K_s372001").unwrap().model);
        check_compatible(&from, &to).unwrap();
    }

    #[test]
    fn insertion_copies_heads_mlps_and_embeddings_into_the_first_layers() {
        let from = params("tiny_mix", &["n_layers=2", "n_heads=3", "sub_share=0", "seed=3"]);
        let mut to = params("tiny_mix", &["n_layers=3", "n_heads=4", "d_head=21"]);
        let before = to.clone();
        insert(&from, &mut to).unwrap();
        assert_eq!(to.get("embed.W_E"), from.get("embed.W_E"));
        assert_eq!(to.get("blocks.1.mlp.W_out"), from.get("blocks.1.mlp.W_out"));
        assert_eq!(to.get("blocks.2.mlp.W_out"), before.get("blocks.2.mlp.W_out"), "layer 2 is new");
        let (f, t) = (from.get("blocks.1.attn.W_Q").unwrap(), to.get("blocks.1.attn.W_Q").unwrap());
        let head = 64 * 21;
        assert_eq!(&t[..3 * head], &f[..3 * head], "the first three heads are inserted");
        assert_eq!(&t[3 * head..], &before.get("blocks.1.attn.W_Q").unwrap()[3 * head..], "the fourth head is new");
    }

    #[test]
    fn incompatible_pairs_are_refused_with_the_mismatch_named() {
        let from = params("tiny_mix", &["n_layers=2"]);
        let mut wide = params("tiny_mix", &["n_layers=3", "d_model=96"]);
        assert!(insert(&from, &mut wide).unwrap_err().to_string().contains("d_model is 64 in the inserted model but 96"));
        let mut shallow = params("tiny_mix", &["n_layers=1"]);
        assert!(insert(&from, &mut shallow).unwrap_err().to_string().contains("at least as many layers and heads"));
    }
}
