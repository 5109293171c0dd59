//! Provenance of derived files: the SHA-256 of the model file they were computed from (the same
//! hex digest `sha256sum model.safetensors` prints) and the options that shaped them. eval.json,
//! analysis.json, report.html, cache files and training.json carry it, so `run` recomputes what
//! belongs to another model or other options and `report` never shows such a file as current.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Where a derived file came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Lower-case hex SHA-256 of the model file's bytes.
    pub model_sha256: String,
    /// The options that shaped the file (per kind of file: eval, analyze or cache options).
    pub options: serde_json::Value,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hex SHA-256 of the file at `path`, read in blocks (models may be large).
pub fn sha256_file(path: &Path) -> Result<String, crate::io::IoError> {
    let read = |source| crate::io::IoError::Read { path: path.to_path_buf(), source };
    let mut f = std::fs::File::open(path).map_err(read)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(read)?;
        if n == 0 {
            return Ok(hex(&h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 12 hex digits of a hash, for messages.
pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

impl Provenance {
    /// The provenance of a file computed from the model whose file hashes to `model_sha256`,
    /// with `options` (anything serialisable; serialising plain option structs cannot fail).
    pub fn new(model_sha256: &str, options: &impl Serialize) -> Provenance {
        Provenance { model_sha256: model_sha256.to_string(), options: serde_json::to_value(options).unwrap_or_default() }
    }

    /// Why a file with this provenance does not belong to the model hashing to `model_sha256`
    /// computed with `options` (`None` for options means any), or `None` when it does.
    pub fn mismatch(&self, model_sha256: &str, options: Option<&serde_json::Value>) -> Option<String> {
        if self.model_sha256 != model_sha256 {
            return Some(format!(
                "it was computed from another model (SHA-256 {}..., the folder's model.safetensors is {}...)",
                short(&self.model_sha256),
                short(model_sha256)
            ));
        }
        match options {
            Some(o) if *o != self.options => Some(format!("it was computed with other options ({}, wanted {o})", self.options)),
            _ => None,
        }
    }
}

/// Why `found` (the provenance a file records, if any) does not belong to the model hashing to
/// `model_sha256` with `options`, or `None` when it does. A file without provenance was written
/// by an older arithlens (or by hand) and cannot be shown to belong.
pub fn mismatch(found: Option<&Provenance>, model_sha256: &str, options: Option<&serde_json::Value>) -> Option<String> {
    match found {
        None => Some("it records no model hash (written by an older arithlens?), so it cannot be shown to belong to this model".into()),
        Some(p) => p.mismatch(model_sha256, options),
    }
}

/// Why a derived file cannot be used as current.
#[derive(Clone, Debug, PartialEq)]
pub enum Stale {
    /// There is no such file.
    Missing,
    /// It cannot be read or does not parse as what it should hold (the reason).
    Unusable(String),
    /// It parses but belongs to another model or other options (the reason).
    Foreign(String),
}

impl Stale {
    /// The reason in words, after the file's name ("eval.json is missing").
    pub fn reason(&self) -> String {
        match self {
            Stale::Missing => "is missing".into(),
            Stale::Unusable(why) => format!("holds nothing usable ({why})"),
            Stale::Foreign(why) => format!("does not belong to this model: {why}"),
        }
    }
}

/// A derived file's contents that record their provenance.
pub trait Derived: crate::io::schema::Versioned {
    /// The provenance recorded, if any.
    fn provenance(&self) -> Option<&Provenance>;
}

/// Reads the file at `path` as a `T` (its schema version checked first): [`Stale::Missing`] if
/// there is none, [`Stale::Unusable`] if it cannot be read or parsed or is of another version.
pub fn read_parsed<T: crate::io::schema::Versioned>(path: &Path) -> Result<T, Stale> {
    use crate::io::schema::{read, ReadError};
    match read(path) {
        Err(ReadError::Missing(_)) => Err(Stale::Missing),
        Err(e) => Err(Stale::Unusable(e.reason())),
        Ok(v) => Ok(v),
    }
}

/// Reads the derived file at `path` as a `T` and checks its provenance against the model
/// hashing to `model_sha256` and `options` (`None`: any options).
pub fn read_current<T: Derived>(path: &Path, model_sha256: &str, options: Option<&serde_json::Value>) -> Result<T, Stale> {
    let value: T = read_parsed(path)?;
    match mismatch(value.provenance(), model_sha256, options) {
        Some(why) => Err(Stale::Foreign(why)),
        None => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_standard_digest_and_mismatches_say_why() {
        // SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_bytes(b"abc"), abc);
        let path = std::env::temp_dir().join(format!("arithlens-sha-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(sha256_file(&path).unwrap(), abc);
        std::fs::remove_file(&path).unwrap();
        let p = Provenance::new(abc, &serde_json::json!({"seed": 1}));
        assert_eq!(mismatch(Some(&p), abc, Some(&serde_json::json!({"seed": 1}))), None);
        assert!(mismatch(Some(&p), "00", None).unwrap().contains("another model"));
        assert!(mismatch(Some(&p), abc, Some(&serde_json::json!({"seed": 2}))).unwrap().contains("other options"));
        assert!(mismatch(None, abc, None).unwrap().contains("no model hash"));
    }
}
