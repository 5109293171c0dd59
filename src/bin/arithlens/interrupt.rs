//! Stopping long work cleanly: while a [`Guard`] lives, the first Ctrl-C (SIGINT) or SIGTERM
//! sets a flag that the training loop (after the step in progress: it saves a checkpoint, and
//! `train --resume` continues exactly there) and the evaluation (after the slice in progress: it
//! saves its progress, and the same command continues) poll; a second one ends the process at
//! once, as usual.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the signal handler; polled by [`arithlens::train::Trainer`] and [`arithlens::eval::evaluate`].
static REQUESTED: AtomicBool = AtomicBool::new(false);

/// The handler's lifetime: installing it clears any earlier request; dropping it gives both
/// signals their default action back (so Ctrl-C stops an evaluation that follows at once).
pub struct Guard(());

impl Guard {
    /// Installs the handler for SIGINT and SIGTERM.
    pub fn install() -> Guard {
        REQUESTED.store(false, Ordering::SeqCst);
        set_handlers(on_signal as *const () as libc::sighandler_t);
        Guard(())
    }

    /// The flag the handler sets (for [`arithlens::train::Trainer::stop_when`] or `EvalOptions::stop`).
    pub fn flag(&self) -> &'static AtomicBool {
        &REQUESTED
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
    REQUESTED.store(true, Ordering::SeqCst);
    // SAFETY: signal() is async-signal-safe; the next such signal gets the default action.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}
