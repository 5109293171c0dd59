//! Model files: safetensors with TransformerLens tensor names, the config as JSON in the
//! metadata (`config`), plus free-form metadata such as the task (`n_digits`, `format`). Files
//! saved from a TransformerLens state dict without a config load too: the config is read off
//! the tensor shapes.

use super::config::{ActFn, ModelConfig, Norm};
use super::error::ModelFileError;
use super::params::Params;
use crate::io::tensors::{self, TensorFile};
use crate::io::IoError;
use std::collections::BTreeMap;
use std::path::Path;

/// A model's weights and the metadata stored beside them.
#[derive(Clone, Debug)]
pub struct ModelFile {
    /// Config and weights.
    pub params: Params,
    /// All metadata of the file except `config` (e.g. `n_digits`, `format`).
    pub metadata: BTreeMap<String, String>,
}

/// How a model file is loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Load weights that are NaN or infinite instead of refusing the file (a diverged run,
    /// inspected on purpose); the caller should warn, see [`non_finite`].
    pub allow_non_finite: bool,
}

/// Tensors of `params` holding NaN or infinite values, with how many each holds.
pub fn non_finite(params: &Params) -> Vec<(String, usize)> {
    let entries = params.layout.entries.iter();
    let counts = entries.map(|e| (e.name.clone(), params.data[e.range.clone()].iter().filter(|v| !v.is_finite()).count()));
    counts.filter(|&(_, n)| n > 0).collect()
}

impl ModelFile {
    /// Reads and checks a model file; errors say what is wrong with which tensor or field.
    /// Non-finite weights are refused (see [`ModelFile::load_with`]).
    pub fn load(path: &Path) -> Result<ModelFile, ModelFileError> {
        Self::load_with(path, LoadOptions::default())
    }

    /// [`ModelFile::load`] with options.
    pub fn load_with(path: &Path, opts: LoadOptions) -> Result<ModelFile, ModelFileError> {
        let bytes =
            std::fs::read(path).map_err(|source| crate::io::TensorFileError::from(IoError::Read { path: path.to_path_buf(), source }))?;
        Self::from_bytes_with(&bytes, &path.display().to_string(), opts)
    }

    /// A model from the bytes of a model file; `what` names it in errors.
    pub fn from_bytes_with(bytes: &[u8], what: &str, opts: LoadOptions) -> Result<ModelFile, ModelFileError> {
        let m = Self::from_tensor_file(tensors::from_bytes(bytes, what)?, what)?;
        let bad = non_finite(&m.params);
        if let (Some((name, n)), false) = (bad.first(), opts.allow_non_finite) {
            let total: usize = bad.iter().map(|b| b.1).sum();
            return Err(ModelFileError::NonFinite { what: what.to_string(), tensor: name.clone(), count: *n, total, tensors: bad.len() });
        }
        Ok(m)
    }

    /// Builds a model from named tensors and metadata.
    pub fn from_tensor_file(file: TensorFile, what: &str) -> Result<ModelFile, ModelFileError> {
        let config = match file.metadata.get("config") {
            Some(json) => serde_json::from_str::<ModelConfig>(json)
                .map_err(|e| ModelFileError::ConfigJson { what: what.to_string(), reason: e.to_string() })?,
            None => infer_config(&file).map_err(|problem| ModelFileError::NoConfig { what: what.to_string(), problem })?,
        };
        let params = Params::from_tensor_file(&config, &file, what)?;
        let mut metadata = file.metadata;
        metadata.remove("config");
        Ok(ModelFile { params, metadata })
    }

    /// Writes the model atomically.
    pub fn save(&self, path: &Path) -> Result<(), ModelFileError> {
        save_weights(&self.params, &self.metadata, &[], path)
    }
}

/// Writes `params` (plus `extra` borrowed tensors, e.g. optimiser state) and `metadata` atomically,
/// streaming from the buffers without copying them.
pub fn save_weights(
    params: &Params,
    metadata: &BTreeMap<String, String>,
    extra: &[tensors::TensorRef<'_>],
    path: &Path,
) -> Result<(), ModelFileError> {
    let mut refs = params.refs("", &params.data);
    refs.extend(extra.iter().cloned());
    let mut meta = metadata.clone();
    meta.extend([params.config_metadata()]);
    Ok(tensors::save_refs(path, &refs, &meta)?)
}

/// Reads a config off the shapes of a TransformerLens state dict (act_fn is assumed relu).
fn infer_config(f: &TensorFile) -> Result<ModelConfig, String> {
    let shape = |n: &str| f.tensors.get(n).map(|t| t.shape.clone()).ok_or_else(|| format!("tensor '{n}' is missing"));
    let (we, wpos, wq, wu) = (shape("embed.W_E")?, shape("pos_embed.W_pos")?, shape("blocks.0.attn.W_Q")?, shape("unembed.W_U")?);
    if we.len() != 2 || wpos.len() != 2 || wq.len() != 3 || wu.len() != 2 {
        return Err("the embedding, positional embedding, W_Q or W_U tensors do not have TransformerLens's shapes".into());
    }
    let n_layers = (0..).take_while(|l| f.tensors.contains_key(&format!("blocks.{l}.attn.W_Q"))).count();
    let d_mlp = shape("blocks.0.mlp.W_in").ok().and_then(|s| s.get(1).copied()).unwrap_or(0);
    Ok(ModelConfig {
        n_layers,
        n_heads: wq[0],
        d_model: we[1],
        d_head: wq[2],
        d_mlp,
        d_vocab: we[0],
        d_vocab_out: wu[1],
        n_ctx: wpos[0],
        act_fn: ActFn::Relu,
        normalization_type: f.tensors.contains_key("ln_final.w").then_some(Norm::LN),
        attn_only: d_mlp == 0,
        eps: 1e-5,
        seed: 0,
        initializer_range: None,
    })
}
