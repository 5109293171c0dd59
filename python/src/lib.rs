//! `arithlens._native`: the Rust side of the `arithlens` Python package (python/arithlens/).
//! Each call goes straight to the arithlens library; long ones release the GIL, report
//! progress and stop cleanly on KeyboardInterrupt (module `progress`); errors raise the Python
//! exceptions of module `errors`.

mod bench;
mod errors;
mod model;
mod pipeline;
mod progress;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::NativeModel>()?;
    m.add_function(wrap_pyfunction!(pipeline::train, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::run, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline::report, m)?)?;
    m.add_function(wrap_pyfunction!(presets, m)?)?;
    m.add_function(wrap_pyfunction!(bench::bench_cache, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The preset names `train` and `run` take.
#[pyfunction]
fn presets() -> Vec<&'static str> {
    arithlens::train::config::PRESETS.to_vec()
}
