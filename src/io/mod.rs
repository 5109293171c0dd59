//! Files on disk: atomic writes and named f32 tensors in safetensors and NumPy `.npz` format.

pub mod atomic;
pub mod npy;
pub mod tensors;
