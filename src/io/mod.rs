//! Files on disk: atomic writes, output paths checked before work starts, schema versions of the
//! JSON artifacts, and named tensors (f32, and int64 for token ids) in safetensors and
//! NumPy `.npz` format.

pub mod atomic;
pub(crate) mod error;
pub mod npy;
pub mod outputs;
pub mod schema;
pub mod tensors;

pub use error::{IoError, TensorFileError};
