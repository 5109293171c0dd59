//! The Rust side of `benchmarks/run_with_cache.py`: the time the library takes for what
//! `Model.run_with_cache` asks of it, measured in Rust, so the Python call's overhead shows.

use crate::errors::Failure;
use crate::model::NativeModel;
use arithlens::analysis::intervene;
use pyo3::prelude::*;
use std::time::Instant;

/// Seconds the library takes to parse and tokenize `questions` and cache the hooks `names` (all
/// when None) in batches of `batch`, exactly as `run_with_cache` does, without Python.
#[pyfunction]
#[pyo3(signature = (model, questions, names, batch=1024))]
pub fn bench_cache(py: Python<'_>, model: &NativeModel, questions: Vec<String>, names: Option<Vec<String>>, batch: usize) -> PyResult<f64> {
    let m = &model.model;
    py.detach(|| {
        let t0 = Instant::now();
        let qs = questions.iter().map(|q| m.parse_question(q)).collect::<Result<Vec<_>, _>>().map_err(Failure::value)?;
        let t = m.n_ctx();
        let mut tokens = vec![0u32; qs.len() * t];
        for (q, row) in qs.iter().zip(tokens.chunks_exact_mut(t)) {
            q.write_tokens(m.format, row);
        }
        let names: Option<Vec<&str>> = names.as_ref().map(|ns| ns.iter().map(String::as_str).collect());
        let out = intervene::cache_tokens(m, &tokens, t, names.as_deref(), batch).map_err(Failure::value)?;
        let secs = t0.elapsed().as_secs_f64();
        drop(out);
        Ok::<f64, Failure>(secs)
    })
    .map_err(PyErr::from)
}
