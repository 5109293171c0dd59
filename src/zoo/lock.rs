//! One `zoo run` per root at a time: `ROOT/.zoo/lock`, made with an atomic create (it fails when
//! the file exists) and holding the holder's pid, host and start time. A second run on the root
//! is refused with the holder named; a lock whose holder is gone (same host, no such process) is
//! taken over with a note. The lock is removed when its [`RootLock`] is dropped.

use super::manifest::Zoo;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock held on a zoo's root; removed on drop.
#[derive(Debug)]
pub struct RootLock {
    path: PathBuf,
}

/// Who holds a lock, as its file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The holder's process id.
    pub pid: u32,
    /// The holder's host name.
    pub host: String,
    /// When it took the lock (seconds since 1970).
    pub since: u64,
}

/// The lock file of `zoo`'s root.
pub fn lock_path(zoo: &Zoo) -> PathBuf {
    zoo.root.join(".zoo").join("lock")
}

impl RootLock {
    /// Takes the lock of `zoo`'s root for `what` (e.g. `zoo run`); `say` gets the note when a
    /// stale lock is taken over. An error names the lock file and its holder.
    pub fn take(zoo: &Zoo, what: &str, say: &mut dyn FnMut(&str)) -> Result<RootLock, String> {
        let path = lock_path(zoo);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        for _ in 0..2 {
            match create(&path) {
                Ok(()) => return Ok(RootLock { path }),
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(format!("cannot create the lock {}: {e}", path.display()))
                }
                Err(_) => {}
            }
            let holder = read_holder(&path)?;
            if holder.host != host_name() || process_alive(holder.pid) {
                return Err(format!(
                    "another {what} is running on {}: {} is held by pid {} on host {} since {} (unix time); \
                     wait for it to end, or remove the lock if that process is gone",
                    zoo.root.display(),
                    path.display(),
                    holder.pid,
                    holder.host,
                    holder.since
                ));
            }
            say(&format!("note: taking over the stale lock {} (pid {} on this host is gone)", path.display(), holder.pid));
            std::fs::remove_file(&path).map_err(|e| format!("cannot remove the stale lock {}: {e}", path.display()))?;
        }
        Err(format!("cannot take the lock {}: another process took it at the same moment", path.display()))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RootLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates the lock file only if there is none, with this process as its holder.
fn create(path: &Path) -> std::io::Result<()> {
    let mut f = std::fs::File::create_new(path)?;
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let text = format!("pid {}\nhost {}\nsince {since}\n", std::process::id(), host_name());
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// The holder the lock at `path` names; an error naming the file when it says none.
pub fn read_holder(path: &Path) -> Result<Holder, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the lock {}: {e}", path.display()))?;
    parse_holder(&text).ok_or_else(|| {
        format!(
            "the lock {} does not name its holder (lines 'pid N', 'host H', 'since T'); another zoo run may be \
             writing it, or it is damaged: remove it if no zoo run is running",
            path.display()
        )
    })
}

/// Parses a lock file's `pid N` / `host H` / `since T` lines.
pub fn parse_holder(text: &str) -> Option<Holder> {
    let field = |key: &str| text.lines().find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()));
    Some(Holder { pid: field("pid ")?.parse().ok()?, host: field("host ")?, since: field("since ")?.parse().ok()? })
}

/// This machine's host name (empty when it cannot be read).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Whether a process with id `pid` exists on this host.
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
