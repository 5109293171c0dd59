//! Model configuration, with the field names of TransformerLens's `HookedTransformerConfig` so a
//! config written by either tool reads in the other.

use super::error::ModelConfigError;
use serde::{Deserialize, Serialize};

/// The MLP's activation function (`act_fn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActFn {
    /// max(0, x).
    Relu,
    /// The exact (erf) GELU, as PyTorch's `F.gelu` and TransformerLens's `"gelu"`.
    Gelu,
}

impl ActFn {
    /// Parses the TransformerLens name (`relu`, `gelu`).
    pub fn parse(s: &str) -> Result<ActFn, ModelConfigError> {
        match s {
            "relu" => Ok(ActFn::Relu),
            "gelu" => Ok(ActFn::Gelu),
            other => Err(ModelConfigError::ActFn { name: other.to_string() }),
        }
    }
}

/// Normalisation before each sub-layer and before the unembedding (`normalization_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Norm {
    /// LayerNorm with learned weight and bias (TransformerLens `"LN"`).
    #[serde(rename = "LN")]
    LN,
}

/// The architecture of one model: TransformerLens `HookedTransformerConfig` field names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Attention heads per block.
    pub n_heads: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Width of each head's query, key and value.
    pub d_head: usize,
    /// Hidden width of each MLP (0 in attention-only models).
    #[serde(default)]
    pub d_mlp: usize,
    /// Input vocabulary size.
    pub d_vocab: usize,
    /// Output vocabulary size (the unembedding's width).
    pub d_vocab_out: usize,
    /// Context length: the number of positions with a learned embedding.
    pub n_ctx: usize,
    /// MLP activation.
    pub act_fn: ActFn,
    /// `"LN"` or `null` (no normalisation at all).
    #[serde(default)]
    pub normalization_type: Option<Norm>,
    /// Blocks without MLPs.
    #[serde(default)]
    pub attn_only: bool,
    /// LayerNorm epsilon (TransformerLens default 1e-5).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Seed of the weight initialisation.
    #[serde(default)]
    pub seed: u64,
    /// Standard deviation of every `W_*` at initialisation; TransformerLens's default is
    /// 0.8 / sqrt(d_model).
    #[serde(default)]
    pub initializer_range: Option<f64>,
}

fn default_eps() -> f64 {
    1e-5
}

impl ModelConfig {
    /// Whether blocks and the final layer carry LayerNorms.
    pub fn has_ln(&self) -> bool {
        self.normalization_type.is_some()
    }

    /// Whether blocks carry MLPs.
    pub fn has_mlp(&self) -> bool {
        !self.attn_only
    }

    /// Standard deviation of the initial weights.
    pub fn init_std(&self) -> f64 {
        self.initializer_range.unwrap_or(0.8 / (self.d_model as f64).sqrt())
    }

    /// Checks that the sizes fit together; the message says which field is wrong and why.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        let positive = [
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("d_model", self.d_model),
            ("d_head", self.d_head),
            ("d_vocab", self.d_vocab),
            ("d_vocab_out", self.d_vocab_out),
            ("n_ctx", self.n_ctx),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(ModelConfigError::Zero { field });
            }
        }
        self.check_limits()?;
        if self.has_mlp() && self.d_mlp == 0 {
            return Err(ModelConfigError::NoMlpWidth);
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(ModelConfigError::Eps { eps: self.eps.to_string() });
        }
        Ok(())
    }

    /// Checks every size against [`crate::limits`] and the memory of the weights, with checked
    /// arithmetic, so no size makes a later allocation overflow or abort.
    fn check_limits(&self) -> Result<(), ModelConfigError> {
        use crate::limits::*;
        let bounds = [
            ("n_layers", self.n_layers, MAX_LAYERS, "the papers use 1 to 3 layers"),
            ("n_heads", self.n_heads, MAX_HEADS, "the papers use 3 or 4 heads"),
            ("d_model", self.d_model, MAX_WIDTH, "the papers use 510"),
            ("d_head", self.d_head, MAX_WIDTH, "the papers use 170"),
            ("d_mlp", self.d_mlp.max(1), MAX_WIDTH, "the papers use 2040"),
            ("n_ctx", self.n_ctx, MAX_CTX, "a 20-digit question with its answer is 64 tokens"),
            ("d_vocab", self.d_vocab, MAX_VOCAB, "the formats use 12 and 15 tokens"),
            ("d_vocab_out", self.d_vocab_out, MAX_VOCAB, "the formats use 12 and 15 tokens"),
        ];
        for (name, v, max, why) in bounds {
            check_range(&format!("config field {name}"), v as u64, max as u64, why)?;
        }
        let bytes = self.checked_n_params().and_then(|n| n.checked_mul(4));
        Ok(check_memory(&self.size_text(), bytes, "the weights alone")?)
    }

    /// "n_layers=.., n_heads=.., d_model=.., d_head=.., d_mlp=..": the sizes memory grows with.
    pub fn size_text(&self) -> String {
        format!(
            "n_layers={}, n_heads={}, d_model={}, d_head={}, d_mlp={}",
            self.n_layers, self.n_heads, self.d_model, self.d_head, self.d_mlp
        )
    }

    /// An upper bound on the parameter count (LayerNorms counted), None if it overflows u64.
    pub fn checked_n_params(&self) -> Option<u64> {
        use crate::limits::{product, sum};
        let (l, h, d, dh, m) = (self.n_layers as u64, self.n_heads as u64, self.d_model as u64, self.d_head as u64, self.d_mlp as u64);
        let per_layer = sum(&[product(&[4, h, d, dh]), product(&[3, h, dh]), product(&[2, d, m]), sum(&[Some(m), product(&[6, d])])]);
        sum(&[
            product(&[self.d_vocab as u64 + self.n_ctx as u64 + self.d_vocab_out as u64 + 3, d]),
            per_layer.and_then(|p| p.checked_mul(l)),
        ])
    }

    /// Number of trainable parameters.
    pub fn n_params(&self) -> usize {
        crate::model::params::ParamLayout::new(self).total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_transformer_lens_config_json() {
        let json = r#"{"n_layers": 1, "n_heads": 2, "d_model": 24, "d_head": 12, "attn_only": true,
            "act_fn": "relu", "normalization_type": "LN", "d_vocab": 12, "d_vocab_out": 12,
            "n_ctx": 9, "seed": 99, "eps": 1e-05, "positional_embedding_type": "standard",
            "initializer_range": 0.16329931618554522}"#;
        let c: ModelConfig = serde_json::from_str(json).unwrap();
        assert!(c.attn_only && c.has_ln() && c.d_mlp == 0);
        assert!(c.validate().is_ok());
        let none: ModelConfig = serde_json::from_str(&json.replace("\"LN\"", "null").replace("true", "false")).unwrap();
        assert!(!none.has_ln());
        assert_eq!(none.validate().unwrap_err(), ModelConfigError::NoMlpWidth);
    }
}
