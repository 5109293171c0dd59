//! Stopping long work cleanly: while a [`Guard`] lives, the first Ctrl-C (SIGINT) or SIGTERM
//! requests the library's [`Stop`], which the training loop (after the step in progress: it
//! saves a checkpoint, and `train --resume` continues exactly there), the evaluation (after the
//! slice in progress: it saves its progress, and the same command continues) and the analysis
//! (before its next stage) honour; a second one ends the process at once, as usual.

use arithlens::progress::Stop;
use std::sync::OnceLock;

/// The handle the signal handler sets (made once, before any handler is installed).
static REQUESTED: OnceLock<Stop> = OnceLock::new();

/// The handler's lifetime: installing it clears any earlier request; dropping it gives both
/// signals their default action back (so Ctrl-C stops an evaluation that follows at once).
pub struct Guard(());

impl Guard {
    /// Installs the handler for SIGINT and SIGTERM.
    pub fn install() -> Guard {
        REQUESTED.get_or_init(Stop::new).clear();
        set_handlers(on_signal as *const () as libc::sighandler_t);
        Guard(())
    }

    /// The stop handle the handler sets, for the library's long operations.
    pub fn stop(&self) -> &'static Stop {
        REQUESTED.get_or_init(Stop::new)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        set_handlers(libc::SIG_DFL);
    }
}

fn set_handlers(action: libc::sighandler_t) {
    // SAFETY: the handler only stores to an atomic and resets its signal's disposition, both
    // async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, action);
        libc::signal(libc::SIGTERM, action);
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // Set before the handler was installed, so this only reads it and stores to its atomic.
    if let Some(stop) = REQUESTED.get() {
        stop.request();
    }
    // SAFETY: signal() is async-signal-safe; the next such signal gets the default action.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}
