//! Files on disk: atomic writes and named f32 tensors in safetensors format.

pub mod atomic;
pub mod tensors;
