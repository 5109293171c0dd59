//! The transformer: config, parameters, forward and backward passes, and hooks, compatible with
//! TransformerLens's `HookedTransformer` in names, shapes and numerics.

pub mod config;
pub mod file;
pub mod hooks;
pub mod linalg;
pub mod ops;
pub mod pairs;
pub mod params;
pub mod reference;
pub mod rows;
pub mod transformer;

pub use config::{ActFn, ModelConfig, Norm};
pub use hooks::{Cache, HookPoint, HookTensor, Hooks, NoHooks};
pub use params::Params;
pub use rows::Span;
pub use transformer::{backward, forward, forward_blocks, forward_flops, loss, Targets, Workspace};
