//! Atomic file writes: write a temporary file beside the target, then rename it over the target,
//! so a crash or a kill mid-write never leaves a half-written file under the real name; and the
//! removal of the temporary files that a killed process (kill -9, power loss) left behind.
//! Files are created with the usual mode (0666 less the umask: 0644 under umask 022).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |tmp| std::fs::File::create(tmp)?.write_all(bytes))
}

/// Atomic write through a writer function: `write` fills the temporary file it is given, which
/// is then synced and renamed over `path`; on any error the temporary file is removed.
pub fn write_with(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}{TMP_SUFFIX}", std::process::id()));
    let result = (|| {
        write(&tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The end of a temporary file's name: `.NAME.PID.tmp`.
const TMP_SUFFIX: &str = ".tmp";

/// Removes the temporary files that earlier processes left in `dir` when they were killed
/// mid-write, and returns their paths: `.NAME.PID.tmp` files (this module's pattern) whose
/// process is gone, or whose PID now belongs to a process started after the file was last
/// written; and the `.tmpXXXXXX` files that arithlens wrote through the safetensors crate before
/// it wrote its own, when they hold the start of a safetensors file (or nothing yet) and are
/// older than this process. Other names, and the temporary files of live writers, are left alone.
/// Commands call it for each folder they write into, when they start.
pub fn remove_stale_temporaries(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let (path, name) = (entry.path(), entry.file_name().to_string_lossy().into_owned());
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let stale = match writer_pid(&name) {
            Some(pid) => pid != std::process::id() && !process_alive_since(pid, modified),
            None => is_legacy_temporary(&name, &path) && process_start(std::process::id()).is_some_and(|start| modified < start),
        };
        if stale && std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// The PID in a temporary file's name `.NAME.PID.tmp`.
fn writer_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_suffix(TMP_SUFFIX)?;
    let (target, pid) = rest.rsplit_once('.')?;
    (!target.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then(|| pid.parse().ok())?
}

/// Whether `.tmpXXXXXX` (the `tempfile` crate's name) holds what the safetensors crate wrote
/// there: nothing yet, zeros (it sets the length first), or an 8-byte length and a JSON header.
fn is_legacy_temporary(name: &str, path: &Path) -> bool {
    let Some(rand) = name.strip_prefix(".tmp") else { return false };
    if rand.len() != 6 || !rand.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let mut head = [0u8; 10];
    let n = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).unwrap_or(0);
    head[..n].iter().all(|&b| b == 0) || (n == 10 && &head[8..] == b"{\"")
}

/// Whether process `pid` is alive and started no later than `written` (a process started after
/// the file was last written is another one that got the same PID).
fn process_alive_since(pid: u32, written: SystemTime) -> bool {
    let Ok(id) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let alive = unsafe { libc::kill(id, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // A second's slack: the boot time that start times count from is whole seconds.
    alive && process_start(pid).is_none_or(|start| start <= written + std::time::Duration::from_secs(1))
}

/// When process `pid` started (Linux: from /proc; elsewhere unknown).
fn process_start(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime, in clock ticks since boot); the name before it is in parentheses.
    let ticks: u64 = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat").ok()?.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    // SAFETY: sysconf only reads a system constant.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok().filter(|&h| h > 0)?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(boot) + std::time::Duration::from_millis(ticks * 1000 / hz))
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("arithlens-atomic-{}", std::process::id()));
        let path = dir.join("x.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn temporaries_of_dead_processes_are_removed_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("arithlens-atomic-tidy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A PID above the kernel's maximum (4194304) belongs to no process.
        let dead = dir.join(".model.safetensors.9999999.tmp");
        let mine = dir.join(format!(".training.json.{}.tmp", std::process::id()));
        let legacy = dir.join(".tmpAb12Cd");
        let keep = [".notes.tmp", ".x.12a.tmp", "model.safetensors", ".tmpAb12Cd.bak", ".tmpXyZ123"];
        for p in [&dead, &mine, &legacy] {
            std::fs::write(p, b"").unwrap();
        }
        std::fs::write(dir.join(".tmpXyZ123"), b"a user's own notes").unwrap();
        for k in &keep[..4] {
            std::fs::write(dir.join(k), b"").unwrap();
        }
        std::fs::create_dir(dir.join(".dir.1.tmp")).unwrap();
        let removed = remove_stale_temporaries(&dir);
        assert!(!dead.exists(), "a dead writer's temporary is removed");
        assert!(mine.exists(), "a live writer's temporary stays");
        assert!(legacy.exists(), "a legacy temporary younger than this process stays (another process may be writing it)");
        assert_eq!(removed, [dead]);
        for k in keep {
            assert!(dir.join(k).exists(), "{k} is not ours");
        }
        assert!(dir.join(".dir.1.tmp").is_dir());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn temporary_names_give_their_writer() {
        assert_eq!(writer_pid(".training.json.4242.tmp"), Some(4242));
        assert_eq!(writer_pid(".a.b.c.17.tmp"), Some(17));
        for bad in [".17.tmp", "training.json.17.tmp", ".x.17a.tmp", ".x..tmp", ".x.17.tmpx"] {
            assert_eq!(writer_pid(bad), None, "{bad}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_started_in_the_past() {
        let start = process_start(std::process::id()).unwrap();
        assert!(start <= SystemTime::now() && start > SystemTime::now() - std::time::Duration::from_secs(24 * 3600));
        assert!(process_alive_since(std::process::id(), SystemTime::now()));
        assert!(!process_alive_since(std::process::id(), start - std::time::Duration::from_secs(10)), "a file older than the process");
    }
}
