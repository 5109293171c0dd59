//! The `arithlens` command line: a thin layer over the library. Everything that belongs to a
//! terminal lives here and not in the library: flags (`clap`), progress bars (`indicatif`),
//! Ctrl-C and SIGTERM, and `bench`'s tables.

mod bench;
mod cli;
mod display;
mod interrupt;
mod zoo;

use clap::Parser;

fn main() {
    restore_sigpipe();
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Output piped into `head` ends the program quietly, as for other command-line tools, instead
/// of a panic on the closed pipe (Rust ignores SIGPIPE by default).
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
