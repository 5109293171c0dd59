//! All of the binding's progress, stop and GIL glue, in one place (so it can follow the
//! library's progress and stop API as that changes).
//!
//! A long call runs its Rust work on a helper thread (inside a pool of `threads` workers when
//! asked) while the calling thread, with the GIL released, wakes every [`POLL`]: it runs
//! Python's signal handlers (so Ctrl-C raises `KeyboardInterrupt` there) and hands the work's
//! latest progress to the Python callback. A `KeyboardInterrupt` (from Ctrl-C or raised by the
//! callback) sets the work's stop flag: training saves its checkpoint and stops, an evaluation
//! saves its progress, and work with no stop flag of its own stops at its next progress report
//! (an unwind that no panic hook sees). The call then raises `KeyboardInterrupt` with the
//! library's message, once the work has stopped cleanly.

use crate::errors::{Failure, Result};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How often the waiting thread looks for Ctrl-C and forwards progress.
const POLL: Duration = Duration::from_millis(50);

/// The work's side: progress reports and the stop flag.
pub struct Progress {
    /// Set when Python asked the work to stop. Leaked per call: the library's stop flags are
    /// `&'static` today (one byte per long call).
    stop: &'static AtomicBool,
    /// The latest report not yet handed to Python: stage, done, total, info.
    latest: Mutex<Option<Report>>,
}

/// One progress report: stage, work done, work in the stage, and a short note (e.g. the loss).
type Report = (String, u64, u64, String);

/// The payload of the unwind that stops work without a stop flag of its own.
struct Interrupted;

impl Progress {
    /// Records progress (the waiting thread forwards the latest to Python).
    pub fn report(&self, stage: &str, done: u64, total: u64) {
        self.report_info(stage, done, total, "");
    }

    /// [`Progress::report`] with a note shown beside the bar.
    pub fn report_info(&self, stage: &str, done: u64, total: u64, info: &str) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some((stage.to_string(), done, total, info.to_string()));
    }

    /// The flag the library's `stop_when` / `EvalOptions::stop` take.
    pub fn stop_flag(&self) -> &'static AtomicBool {
        self.stop
    }

    /// [`Progress::report`], then, for work that has no stop flag of its own, stops it here
    /// when a stop was asked for.
    pub fn report_or_unwind(&self, stage: &str, done: u64, total: u64) {
        self.report(stage, done, total);
        if self.stop.load(Ordering::SeqCst) {
            std::panic::resume_unwind(Box::new(Interrupted));
        }
    }

    fn take(&self) -> Option<Report> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Runs `work` with the GIL released (see the module doc), on a pool of `threads` workers if
/// given (else the global pool), calling `callback(stage, done, total, info)` with its progress.
pub fn run<T: Send>(
    py: Python<'_>,
    threads: Option<usize>,
    callback: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&Progress) -> Result<T> + Send,
) -> PyResult<T> {
    let pool = match threads {
        Some(n) => {
            arithlens::limits::check_threads("threads", n).map_err(Failure::value)?;
            Some(rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(|e| Failure::value(e.to_string()))?)
        }
        None => None,
    };
    let progress = Progress { stop: Box::leak(Box::new(AtomicBool::new(false))), latest: Mutex::new(None) };
    let callback = callback.map(|c| c.clone().unbind());
    let mut py_error: Option<PyErr> = None;
    let outcome = py.detach(|| {
        std::thread::scope(|s| {
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let progress = &progress;
            let handle = std::thread::Builder::new()
                .name("arithlens-work".into())
                .stack_size(8 << 20)
                .spawn_scoped(s, move || {
                    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &pool {
                        Some(p) => p.install(|| work(progress)),
                        None => work(progress),
                    }));
                    let _ = done_tx.send(());
                    out
                })
                .expect("a thread can be started");
            loop {
                let finished = !matches!(done_rx.recv_timeout(POLL), Err(std::sync::mpsc::RecvTimeoutError::Timeout));
                forward(progress, callback.as_ref(), &mut py_error);
                if finished {
                    break;
                }
            }
            handle.join().unwrap_or_else(Err)
        })
    });
    finish(py, outcome, py_error)
}

/// On the waiting thread: runs Python's signal handlers and hands the latest progress to the
/// callback; the first exception either raises (a `KeyboardInterrupt` or the callback's own)
/// is kept and asks the work to stop.
fn forward(progress: &Progress, callback: Option<&Py<PyAny>>, py_error: &mut Option<PyErr>) {
    Python::attach(|py| {
        let mut result = py.check_signals();
        if let (Ok(()), Some(cb), Some((stage, done, total, info))) = (&result, callback, progress.take()) {
            result = cb.call1(py, (stage, done, total, info)).map(drop);
        }
        if let Err(e) = result {
            progress.stop.store(true, Ordering::SeqCst);
            py_error.get_or_insert(e);
        }
    });
}

/// The call's result: the exception Python raised while it ran (a `KeyboardInterrupt` carrying
/// the library's message on how the work stopped), else the work's value or error.
fn finish<T>(py: Python<'_>, outcome: std::thread::Result<Result<T>>, py_error: Option<PyErr>) -> PyResult<T> {
    let outcome = match outcome {
        Ok(r) => Ok(r),
        Err(payload) if payload.is::<Interrupted>() => Err(None),
        Err(payload) => Err(Some(panic_message(&*payload))),
    };
    match (py_error, outcome) {
        (Some(e), outcome) if e.is_instance_of::<PyKeyboardInterrupt>(py) => {
            let how = match outcome {
                Ok(Err(f)) => f.message.replace("continue with --resume", "continue with resume=True"),
                Err(None) => "interrupted: stopped at its next progress report; nothing was written".into(),
                Ok(Ok(_)) | Err(Some(_)) => "interrupted after the work had finished".into(),
            };
            Err(PyKeyboardInterrupt::new_err(how))
        }
        (Some(e), _) => Err(e),
        (None, Ok(r)) => r.map_err(PyErr::from),
        (None, Err(None)) => Err(PyKeyboardInterrupt::new_err("interrupted")),
        (None, Err(Some(msg))) => {
            Err(Failure::new(crate::errors::Kind::Other, format!("internal error (a bug in arithlens): {msg}")).into())
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}
