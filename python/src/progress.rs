//! All of the binding's progress, stop and GIL glue, in one place (so it can follow the
//! library's progress and stop API as that changes).
//!
//! A long call runs its Rust work on a helper thread (inside a pool of `threads` workers when
//! asked) while the calling thread, with the GIL released, wakes every [`POLL`]: it runs
//! Python's signal handlers (so Ctrl-C raises `KeyboardInterrupt` there) and hands the work's
//! latest progress to the Python callback. A `KeyboardInterrupt` (from Ctrl-C or raised by the
//! callback) requests the library's [`Stop`]: training saves its checkpoint and stops, an
//! evaluation saves its progress, an analysis stops before its next stage. The call then raises
//! `KeyboardInterrupt` with the library's message, once the work has stopped cleanly.

use crate::errors::{Failure, Result};
use arithlens::progress::{Event, Stop};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use std::sync::Mutex;
use std::time::Duration;

/// How often the waiting thread looks for Ctrl-C and forwards progress.
const POLL: Duration = Duration::from_millis(50);

/// The work's side: progress reports and the stop handle.
pub struct Progress {
    /// Requested when Python asked the work to stop.
    stop: Stop,
    /// The reports not yet handed to Python, the latest of each stage in order (so a stage's
    /// last report is shown even when the next stage begins before the waiting thread wakes).
    pending: Mutex<Vec<Report>>,
}

/// One progress report: stage, work done, work in the stage, and a short note (e.g. the loss).
type Report = (String, u64, u64, String);

impl Progress {
    /// Records the library's progress event (the waiting thread forwards the latest to Python).
    pub fn event(&self, event: Event) {
        let report = match event {
            Event::Note(_) => return,
            Event::Train { step, steps, loss, .. } => {
                ("train".to_string(), step, steps, format!("loss {}", loss.map_or("-".to_string(), |l| format!("{l:.3e}"))))
            }
            Event::Eval { set, done, total } => (set, done, total, String::new()),
            Event::Analysis { stage, done, total, .. } => (format!("analyze {stage}"), done as u64, total as u64, String::new()),
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.last_mut() {
            Some(last) if last.0 == report.0 => *last = report,
            _ => pending.push(report),
        }
    }

    /// The stop handle the library's long calls take.
    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    fn take(&self) -> Vec<Report> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
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
    let progress = Progress { stop: Stop::new(), pending: Mutex::new(Vec::new()) };
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

/// On the waiting thread: runs Python's signal handlers and hands the pending progress to the
/// callback; the first exception either raises (a `KeyboardInterrupt` or the callback's own)
/// is kept and asks the work to stop.
fn forward(progress: &Progress, callback: Option<&Py<PyAny>>, py_error: &mut Option<PyErr>) {
    Python::attach(|py| {
        let mut result = py.check_signals();
        for (stage, done, total, info) in progress.take() {
            if let (Ok(()), Some(cb)) = (&result, callback) {
                result = cb.call1(py, (stage, done, total, info)).map(drop);
            }
        }
        if let Err(e) = result {
            progress.stop.request();
            py_error.get_or_insert(e);
        }
    });
}

/// The call's result: the exception Python raised while it ran (a `KeyboardInterrupt` carrying
/// the library's message on how the work stopped), else the work's value or error.
fn finish<T>(py: Python<'_>, outcome: std::thread::Result<Result<T>>, py_error: Option<PyErr>) -> PyResult<T> {
    let outcome = outcome.map_err(|payload| panic_message(&*payload));
    match (py_error, outcome) {
        (Some(e), outcome) if e.is_instance_of::<PyKeyboardInterrupt>(py) => {
            let how = match outcome {
                Ok(Err(f)) => f.message,
                Ok(Ok(_)) | Err(_) => "interrupted after the work had finished".into(),
            };
            Err(PyKeyboardInterrupt::new_err(how))
        }
        (Some(e), _) => Err(e),
        (None, Ok(r)) => r.map_err(PyErr::from),
        (None, Err(msg)) => Err(Failure::new(crate::errors::Kind::Other, format!("internal error (a bug in arithlens): {msg}")).into()),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}
