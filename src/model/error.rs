//! Why a model config or a model file is refused: the field, tensor or file at fault and what
//! would be right. The messages are the ones the command line prints after "error: ".

use crate::io::TensorFileError;
use crate::limits::LimitError;

/// Why a model config cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelConfigError {
    /// A size is 0.
    #[error("config field {field} is 0: it must be at least 1")]
    Zero {
        /// The field.
        field: &'static str,
    },
    /// A size beyond the limits, or weights beyond the memory limit.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// An MLP of width 0.
    #[error("config field d_mlp is 0 but attn_only is false: set d_mlp >= 1 or attn_only")]
    NoMlpWidth,
    /// A LayerNorm epsilon that is not a small positive number.
    #[error("config field eps is {eps}: it must be a small positive number such as 1e-5")]
    Eps {
        /// The value given.
        eps: String,
    },
    /// An activation function name other than relu or gelu.
    #[error("unknown act_fn '{name}': expected 'relu' or 'gelu'")]
    ActFn {
        /// The name given.
        name: String,
    },
}

/// A hook name that is not one of the model's TransformerLens hook points.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown hook point '{name}': expected a TransformerLens name such as 'blocks.0.attn.hook_z' (layers 0..{n_layers})")]
pub struct UnknownHook {
    /// The name given.
    pub name: String,
    /// The model's layers.
    pub n_layers: usize,
}

impl From<UnknownHook> for String {
    fn from(e: UnknownHook) -> String {
        e.to_string()
    }
}

/// Why a model file (`what`: its path, or what the bytes came from) cannot be read as a model,
/// or written.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// The file is not a readable tensor file, or could not be written.
    #[error(transparent)]
    Tensors(#[from] TensorFileError),
    /// The `config` metadata does not parse as a model config.
    #[error("{what}: the 'config' metadata is not a valid model config: {reason}")]
    ConfigJson {
        /// The file.
        what: String,
        /// The parser's complaint.
        reason: String,
    },
    /// There is no `config` metadata, and the shapes are not TransformerLens's.
    #[error("{what}: no 'config' metadata, and {problem}")]
    NoConfig {
        /// The file.
        what: String,
        /// What the shapes lack.
        problem: String,
    },
    /// The config is not valid.
    #[error("{what}: {source}")]
    Config {
        /// The file.
        what: String,
        /// What is wrong with it (boxed, so every error stays small).
        source: Box<ModelConfigError>,
    },
    /// A tensor the config needs is missing.
    #[error("{what}: tensor '{tensor}' is missing (the config needs it with shape {shape:?})")]
    MissingTensor {
        /// The file.
        what: String,
        /// The tensor.
        tensor: String,
        /// The shape the config needs.
        shape: Vec<usize>,
    },
    /// A tensor has another shape than the config needs.
    #[error(transparent)]
    Shape(Box<ShapeMismatch>),
    /// Tensors that no model of this config has.
    #[error("{what}: tensors {} do not belong to a model with this config", tensors.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", "))]
    Unknown {
        /// The file.
        what: String,
        /// The tensors.
        tensors: Vec<String>,
    },
    /// Weights that are NaN or infinite (and loading them was not asked for).
    #[error(
        "{what}: tensor '{tensor}' holds {count} NaN or infinite value(s) ({total} in {tensors} tensor(s) in all): \
         the model diverged or the file is damaged; pass --allow-non-finite to load it anyway"
    )]
    NonFinite {
        /// The file.
        what: String,
        /// The first tensor holding such values.
        tensor: String,
        /// How many it holds.
        count: usize,
        /// How many all tensors hold.
        total: usize,
        /// How many tensors hold some.
        tensors: usize,
    },
}

/// A tensor of a model file whose shape is not the one the config needs (boxed in
/// [`ModelFileError`], so every error stays small).
#[derive(Debug, thiserror::Error)]
#[error("{what}: tensor '{tensor}' has shape {shape:?} but the config needs {expected:?}")]
pub struct ShapeMismatch {
    /// The file.
    pub what: String,
    /// The tensor.
    pub tensor: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The shape the config needs.
    pub expected: Vec<usize>,
}

impl From<ModelFileError> for String {
    fn from(e: ModelFileError) -> String {
        e.to_string()
    }
}
