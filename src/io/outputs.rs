//! Output paths checked before any work starts: a folder that is a folder and can be written
//! into, a file that would not replace something the user made. Training for hours and then
//! failing on the first write (or silently replacing a model) is what these checks prevent.

use super::IoError;
use std::path::Path;

/// Makes sure `dir` is a folder this process can write into: creates it (and its parents) if
/// missing, and creates and removes a probe file in it. The error names the path and the fault.
pub fn check_dir(dir: &Path, what: &str) -> Result<(), IoError> {
    let (what, path) = (what.to_string(), dir.to_path_buf());
    if dir.exists() && !dir.is_dir() {
        return Err(IoError::NotAFolder { what, path });
    }
    if let Err(source) = std::fs::create_dir_all(dir) {
        return Err(IoError::CannotCreate { what, path, source });
    }
    let probe = dir.join(format!(".arithlens-probe.{}", std::process::id()));
    if let Err(source) = std::fs::File::create(&probe) {
        return Err(IoError::NotWritable { what, path, source });
    }
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Makes sure `path` can be written as a file: not a folder, and its folder writable (see
/// [`check_dir`]). Says nothing about a file already there (see [`check_new_file`]).
pub fn check_file(path: &Path, what: &str) -> Result<(), IoError> {
    if path.is_dir() {
        return Err(IoError::IsAFolder { what: what.into(), path: path.into() });
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    check_dir(parent, &format!("the folder of {what}"))
}

/// [`check_file`], and refuses a file already at `path` unless `force`; even with `force` it
/// refuses one that `replaceable` does not accept (e.g. a model, or a file in a run folder),
/// with its reason.
pub fn check_new_file(path: &Path, what: &str, force: bool, replaceable: impl Fn(&Path) -> Result<(), String>) -> Result<(), IoError> {
    check_file(path, what)?;
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if !force {
        return Err(IoError::Exists { what: what.into(), path: path.into() });
    }
    replaceable(path).map_err(IoError::NotReplaceable)
}

/// The JSON header of a safetensors file (its tensor names and `__metadata__`), read without
/// reading the tensors; `None` if the file is not safetensors.
pub fn safetensors_header(path: &Path) -> Option<serde_json::Map<String, serde_json::Value>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    let len = u64::from_le_bytes(len);
    // safetensors' own limit on the header size.
    if len > 100_000_000 {
        return None;
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).ok()?;
    serde_json::from_slice(&header).ok()
}

/// Whether the safetensors file at `path` holds a model or a checkpoint (an embedding, or a
/// model config in its metadata).
pub fn is_model_file(path: &Path) -> bool {
    safetensors_header(path).is_some_and(|h| {
        let meta = h.get("__metadata__").and_then(|m| m.as_object());
        h.contains_key("embed.W_E") || meta.is_some_and(|m| m.contains_key("config") || m.contains_key("train_config"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_where_a_folder_is_needed_and_an_existing_file_are_refused() {
        let dir = std::env::temp_dir().join(format!("arithlens-outputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        check_dir(&dir.join("a/b"), "--out").unwrap();
        assert!(dir.join("a/b").is_dir());
        assert_eq!(std::fs::read_dir(dir.join("a/b")).unwrap().count(), 0, "the probe is removed");
        let file = dir.join("f");
        std::fs::write(&file, "x").unwrap();
        let err = check_dir(&file, "--out").unwrap_err();
        assert!(matches!(&err, IoError::NotAFolder { path, .. } if *path == file), "{err:?}");
        let err = err.to_string();
        assert!(err.contains(&file.display().to_string()) && err.contains("not a folder"), "{err}");
        let err = check_dir(&file.join("sub"), "--out").unwrap_err().to_string();
        assert!(err.contains("cannot create"), "{err}");
        let err = check_new_file(&file, "--out", false, |_| Ok(())).unwrap_err().to_string();
        assert!(err.contains("already exists") && err.contains("--force"), "{err}");
        check_new_file(&file, "--out", true, |_| Ok(())).unwrap();
        let err = check_new_file(&file, "--out", true, |_| Err("no".into())).unwrap_err();
        assert!(matches!(&err, IoError::NotReplaceable(why) if why == "no"), "{err:?}");
        assert!(check_file(&dir, "--out").unwrap_err().to_string().contains("is a folder"));
        assert!(!is_model_file(&file));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
