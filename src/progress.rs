//! Progress and stopping, once for every long operation (training, evaluation, analysis and the
//! pipeline over them): each reports what it does as [`Event`]s to one callback of type
//! [`&mut dyn FnMut(Event)`](Event), and each honours a [`Stop`] handle that its caller may set from
//! anywhere (the command line's Ctrl-C handler, a notebook's KeyboardInterrupt, a model zoo's
//! scheduler): training saves a checkpoint after the step in progress and stops, evaluation saves
//! its progress after the slice in progress and stops, analysis stops before its next stage. Each
//! stopped operation returns an error that says how to continue.
//!
//! The library prints nothing itself: the lines a user should read arrive as [`Event::Note`], and
//! the caller decides how to show them (the binary: bars on a terminal, lines in a log).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a long operation is doing.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A line for the user, in words: what is done next, what was skipped and why, a warning.
    /// The command line prints it on standard error.
    Note(String),
    /// Training finished step `step` of `steps`.
    Train {
        /// Steps done so far (including those of earlier sessions of a resumed run).
        step: u64,
        /// Steps the run trains for.
        steps: u64,
        /// The loss of the last record written (none before the first `log_every` steps).
        loss: Option<f64>,
        /// Training steps per second in this session so far.
        steps_per_s: f64,
    },
    /// Evaluation finished `done` of the `total` questions of the set named `set` ("random
    /// addition", "stratified by class", ...).
    Eval {
        /// The question set.
        set: String,
        /// Questions done (including those of an interrupted evaluation it continues).
        done: u64,
        /// Questions in the set.
        total: u64,
    },
    /// Analysis stage `number` of `of`, named `stage` (as in analysis.json), has finished `done`
    /// of its `total` passes; both are 0 as the stage begins (and for stages too short to count).
    Analysis {
        /// The stage's name ("positions", "nodes", ...).
        stage: &'static str,
        /// Its 1-based place among the stages.
        number: usize,
        /// How many stages there are.
        of: usize,
        /// Passes finished.
        done: usize,
        /// Passes in the stage.
        total: usize,
    },
}

/// The error of an operation that stopped because its [`Stop`] was set: what it kept and how to
/// continue, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stopped(pub String);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stopped {}

/// A progress callback that ignores every event (for callers with no display).
pub fn ignore(_: Event) {}

/// A request to stop, shared by the caller that sets it and the operations that poll it:
/// cloning gives another handle to the same flag, so one `Stop` can be handed to work on other
/// threads. A fresh handle is not set.
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// A handle that is not set.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks every operation holding this handle (or a clone) to stop at its next clean point.
    /// Only an atomic store: safe to call from a signal handler.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Withdraws the request (so the handle can serve the next operation).
    pub fn clear(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// Whether a stop has been requested.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_request() {
        let stop = Stop::new();
        let other = stop.clone();
        assert!(!other.requested());
        stop.request();
        assert!(other.requested(), "a clone sees the request");
        other.clear();
        assert!(!stop.requested(), "and its withdrawal");
        assert!(!Stop::new().requested(), "a new handle is independent");
    }
}
