//! Running one job: skip it when its output is current, else run its arithlens command as a
//! subprocess with standard output and error appended to the job's log in the run folder
//! (`RUN_DIR/logs/STAGE.log`), ended by a line with the exit status (and `; cancelled` when the
//! job was told to stop: Slurm's `scancel` or time limit sends SIGTERM, which `zoo job` passes
//! on to the stage it runs and records). Both engines run jobs through [`run_job`]: the local
//! engine in its worker threads, Slurm through `arithlens zoo job`.

use super::fresh::{job_state, Fresh};
use super::graph::{command, dependencies, Job};
use super::manifest::Zoo;
use crate::progress::Stop;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How a job ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Its output was already current.
    Skipped,
    /// It ran and succeeded, taking this many seconds.
    Ran(f64),
    /// It failed or could not start: why, with the end of its log.
    Failed(String),
}

/// The log file of `job`.
pub fn log_path(zoo: &Zoo, job: Job) -> PathBuf {
    zoo.run_dir(job.model).join("logs").join(format!("{}.log", job.stage.name()))
}

/// The line that ends each attempt in a job's log; the exit status follows it.
pub const EXIT_MARK: &str = "== zoo: exit status ";

/// What ends a cancelled attempt's exit line.
pub const CANCELLED_MARK: &str = "; cancelled";

/// How a job's last attempt ended, by its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself with this status (-1: killed by a signal).
    Exit(i32),
    /// It was told to stop (SIGTERM or SIGINT to `zoo job`) and exited with this status.
    Cancelled(i32),
}

/// Runs `job` with the arithlens executable `exe` and `threads` worker threads, unless its output
/// is current. A prerequisite that is not done, or a folder the zoo must not touch, fails it
/// without running anything. When `stop` is requested while the job runs, the job is sent
/// SIGTERM (it saves what it can and stops) and its attempt is logged as cancelled.
pub fn run_job(zoo: &Zoo, job: Job, exe: &Path, threads: usize, stop: &Stop) -> Outcome {
    if !zoo.models[job.model].stages.contains(&job.stage) {
        return Outcome::Skipped; // a Slurm array task for a stage this model does not run
    }
    match job_state(zoo, job) {
        Fresh::Done => return Outcome::Skipped,
        Fresh::Conflict(why) => return Outcome::Failed(why),
        Fresh::Todo(_) | Fresh::Partial(_) => {}
    }
    for dep in dependencies(zoo, job) {
        if !job_state(zoo, dep).is_done() {
            return Outcome::Failed(format!(
                "needs {} of {} first, which is not done (see {})",
                dep.stage.name(),
                zoo.models[dep.model].name,
                log_path(zoo, dep).display()
            ));
        }
    }
    let log = log_path(zoo, job);
    let args = command(zoo, job, threads);
    match run_logged(exe, &args, &log, stop) {
        Ok((0, secs)) if !stop.requested() => Outcome::Ran(secs),
        Ok((code, _)) if stop.requested() => Outcome::Failed(format!("cancelled (exit status {code}); see {}", log.display())),
        Ok((code, _)) => Outcome::Failed(format!("exit status {code}; the end of {}:\n{}", log.display(), log_tail(&log, 15))),
        Err(e) => Outcome::Failed(e),
    }
}

/// Runs `exe args` with its output appended to `log`, passing a request of `stop` on to it as
/// SIGTERM; returns its exit status (-1 when killed by a signal) and the seconds it took.
fn run_logged(exe: &Path, args: &[String], log: &Path, stop: &Stop) -> Result<(i32, f64), String> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let line = std::iter::once(exe.display().to_string()).chain(args.iter().map(|a| shell_word(a))).collect::<Vec<_>>().join(" ");
    let _ = writeln!(file, "== zoo: {line}");
    let err = file.try_clone().map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let t0 = Instant::now();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args).stdout(file.try_clone().map_err(|e| e.to_string())?).stderr(err).stdin(std::process::Stdio::null());
    stop_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let status = wait_passing_stop(&mut child, stop).map_err(|e| format!("cannot wait for {}: {e}", exe.display()))?;
    let secs = t0.elapsed().as_secs_f64();
    let code = status.code().unwrap_or(-1);
    let cancelled = if stop.requested() { CANCELLED_MARK } else { "" };
    let _ = writeln!(file, "{EXIT_MARK}{code} after {secs:.1} s{cancelled}");
    Ok((code, secs))
}

/// How long a job told to stop may take to stop by itself before it is sent SIGTERM: Slurm
/// signals every process of a job, and a second SIGTERM would end the stage at once instead of
/// letting it save its checkpoint or progress.
const PASS_STOP_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for `child`, sending it SIGTERM once when it has not stopped [`PASS_STOP_AFTER`]
/// `stop` was requested (when only this process was signalled).
fn wait_passing_stop(child: &mut std::process::Child, stop: &Stop) -> std::io::Result<std::process::ExitStatus> {
    let (mut since, mut passed): (Option<Instant>, bool) = (None, false);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if stop.requested() && !passed && since.get_or_insert_with(Instant::now).elapsed() >= PASS_STOP_AFTER {
            passed = true;
            #[cfg(unix)]
            // SAFETY: kill() on our own child's pid, which has not been reaped (try_wait said so).
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Asks the kernel to send the job SIGTERM when the thread that started it dies (a killed
/// `zoo run`), so training saves a checkpoint and stops instead of running on unseen, and a
/// later `zoo run` never finds two trainings in one folder.
fn stop_with_parent(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the child's own settings.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// `s` quoted for a shell when it needs it (for logs and scripts).
pub fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The last `n` lines of the file at `path` (what a failed job printed last).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// How the log's last attempt ended, if it ended.
pub fn last_end(path: &Path) -> Option<Ended> {
    let text = std::fs::read_to_string(path).ok()?;
    let last_start = text.rfind("== zoo: ")?;
    let tail = text[last_start..].lines().next()?.strip_prefix(EXIT_MARK)?;
    let code = tail.split_whitespace().next()?.parse().ok()?;
    Some(if tail.ends_with(CANCELLED_MARK) { Ended::Cancelled(code) } else { Ended::Exit(code) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logs_last_attempt_says_how_it_ended() {
        let path = std::env::temp_dir().join(format!("arithlens-joblog-{}.log", std::process::id()));
        let end = |text: &str| {
            std::fs::write(&path, text).unwrap();
            last_end(&path)
        };
        assert_eq!(end("== zoo: arithlens train\nstep 1\n"), None, "still running, or its runner was killed");
        assert_eq!(end("== zoo: arithlens train\n== zoo: exit status 0 after 2.5 s\n"), Some(Ended::Exit(0)));
        let failed_then_cancelled = "== zoo: arithlens train\n== zoo: exit status 2 after 1.0 s\n\
            == zoo: arithlens train --resume\nstopped\n== zoo: exit status 1 after 3.0 s; cancelled\n";
        assert_eq!(end(failed_then_cancelled), Some(Ended::Cancelled(1)));
        assert_eq!(end("== zoo: arithlens eval\n== zoo: exit status -1 after 0.2 s\n"), Some(Ended::Exit(-1)));
        assert_eq!(end("== zoo: exit status 0 after 1 s\n== zoo: arithlens eval\n"), None, "a new attempt has begun");
        std::fs::remove_file(&path).unwrap();
    }
}
