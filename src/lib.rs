//! arithlens: train small transformers on integer arithmetic on a CPU and explain, mechanistically,
//! the algorithm they learn (after Quirke & Barez, "Understanding Addition in Transformers").
//!
//! Layout: [`model`] (config, weights, forward/backward, hooks) and [`io`] (files).

pub mod io;
pub mod model;
pub mod train;
