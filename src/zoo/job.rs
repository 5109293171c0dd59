//! Running one job: skip it when its output is current, else run its arithlens command as a
//! subprocess with standard output and error appended to the job's log in the run folder
//! (`RUN_DIR/logs/STAGE.log`), ended by a line with the exit status. Both engines run jobs
//! through [`run_job`]: the local engine in its worker threads, Slurm through
//! `arithlens zoo job`.

use super::fresh::{job_state, Fresh};
use super::graph::{command, dependencies, Job};
use super::manifest::Zoo;
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

/// Runs `job` with the arithlens executable `exe` and `threads` worker threads, unless its output
/// is current. A prerequisite that is not done, or a folder the zoo must not touch, fails it
/// without running anything.
pub fn run_job(zoo: &Zoo, job: Job, exe: &Path, threads: usize) -> Outcome {
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
    match run_logged(exe, &args, &log) {
        Ok((0, secs)) => Outcome::Ran(secs),
        Ok((code, _)) => Outcome::Failed(format!("exit status {code}; the end of {}:\n{}", log.display(), log_tail(&log, 15))),
        Err(e) => Outcome::Failed(e),
    }
}

/// Runs `exe args` with its output appended to `log`; returns its exit status (-1 when killed by
/// a signal) and the seconds it took.
fn run_logged(exe: &Path, args: &[String], log: &Path) -> Result<(i32, f64), String> {
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
    let status = cmd.status().map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let secs = t0.elapsed().as_secs_f64();
    let code = status.code().unwrap_or(-1);
    let _ = writeln!(file, "{EXIT_MARK}{code} after {secs:.1} s");
    Ok((code, secs))
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

/// The exit status the log's last attempt ended with, if it ended.
pub fn last_exit(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    let last_start = text.rfind("== zoo: ")?;
    let tail = &text[last_start..];
    let code = tail.strip_prefix(EXIT_MARK)?;
    code.split_whitespace().next()?.parse().ok()
}
