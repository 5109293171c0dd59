//! The transformer: config, parameters, forward and backward passes, and hooks, compatible with
//! TransformerLens's `HookedTransformer` in names, shapes and numerics.
//!
//! [`reference`](mod@reference) is the specification: every row, plain buffers, weights by name. `transformer`
//! ([`forward`], [`backward`]) is the same maths as training, evaluation and analysis run it, with its
//! optimisations each in one place: `rows` (which rows each block computes) and `pairs` (layer 0 once per distinct
//! (token, position) pair); `eval::one_layer` is a further fast path for one-layer models. Each
//! is tested equal to the reference (`tests/reference_model.rs`).

pub(crate) mod config;
pub(crate) mod error;
pub mod file;
pub mod hooks;
pub mod linalg;
pub(crate) mod ops;
pub(crate) mod pairs;
pub mod params;
pub mod reference;
pub(crate) mod rows;
pub(crate) mod transformer;

pub use config::{ActFn, ModelConfig, Norm};
pub use error::{ModelConfigError, ModelFileError, ShapeMismatch, UnknownHook};
pub use hooks::{Cache, HookPoint, HookTensor, Hooks, NoHooks};
pub use params::Params;
pub use rows::Span;
pub use transformer::{backward, forward, forward_blocks, forward_flops, loss, Targets, Workspace};
