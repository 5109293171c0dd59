//! Schema versions of the JSON artifacts a run keeps (training.json, eval.json, analysis.json):
//! each records a `schema` number, written on save and checked on load before anything else is
//! read, so a file from a newer arithlens is refused with a message that says so instead of a
//! puzzling missing-field error. A file written before the field existed (no `schema`) reads as
//! version 1.
//!
//! A version changes only when an existing field changes its meaning or goes. A new key that
//! defaults when absent (`#[serde(default)]`) keeps the version, since older files still read
//! and mean what they meant: so eval.json's `ops[].failure_families` and analysis.json's
//! `failure_families`, `logit_attribution` and `algorithm[].fails_when` joined version 1.

use crate::io::IoError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// A JSON artifact with a schema version: the one definition of what its file holds.
pub trait Versioned: Serialize + DeserializeOwned {
    /// Its file name in a run folder (one of the names in `run_folder::files`), for messages.
    const FILE: &'static str;
    /// The schema version this arithlens writes, and the only one it reads.
    const SCHEMA: u32;

    /// Reads the file at `path`, checking its version before anything else: a file of another
    /// version, or one that does not parse, is refused naming the path (and both versions).
    fn load(path: &Path) -> Result<Self, ReadError> {
        read(path)
    }

    /// Writes it to `path` as pretty JSON, atomically (its `schema` is part of its
    /// serialisation).
    fn save(&self, path: &Path) -> Result<(), IoError> {
        crate::io::atomic::write_json(path, self).map_err(|source| IoError::Write { path: path.to_path_buf(), source })
    }
}

/// The version of a file that records none: it was written before versions were recorded.
pub const UNVERSIONED: u32 = 1;

fn unversioned() -> u32 {
    UNVERSIONED
}

/// The part of a file read first: its version.
#[derive(Deserialize)]
struct Head {
    #[serde(default = "unversioned")]
    schema: u32,
}

/// Why an artifact could not be read; each names the path at fault.
#[derive(Debug)]
pub enum ReadError {
    /// There is no file at the path.
    Missing(PathBuf),
    /// The file exists but cannot be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file records a schema version this arithlens does not read.
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What kind of file ([`Versioned::FILE`]).
        file: &'static str,
        /// The version it records.
        found: u32,
        /// The version this arithlens reads.
        supported: u32,
    },
    /// The file does not parse as what arithlens writes there.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What kind of file ([`Versioned::FILE`]).
        file: &'static str,
        /// The parser's complaint (with line and column).
        error: serde_json::Error,
    },
}

impl ReadError {
    /// The reason without the path, for messages that already name the file.
    pub fn reason(&self) -> String {
        match self {
            ReadError::Missing(_) => "there is no such file".into(),
            ReadError::Unreadable { error, .. } => format!("cannot read it: {error}"),
            ReadError::Unsupported { file, found, supported, .. } => format!(
                "it has schema version {found}, but this arithlens reads {file} of schema version {supported} only \
                 (a file from a newer arithlens: read it with that version, or recompute it with this one)"
            ),
            ReadError::Invalid { error, .. } => format!("not what arithlens writes there: {error}"),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = match self {
            ReadError::Missing(path)
            | ReadError::Unreadable { path, .. }
            | ReadError::Unsupported { path, .. }
            | ReadError::Invalid { path, .. } => path,
        };
        write!(f, "{}: {}", path.display(), self.reason())
    }
}

impl std::error::Error for ReadError {}

impl From<ReadError> for String {
    fn from(e: ReadError) -> String {
        e.to_string()
    }
}

/// The schema version `bytes` record (1 when they record none).
pub fn version_of(bytes: &[u8]) -> Result<u32, serde_json::Error> {
    serde_json::from_slice::<Head>(bytes).map(|h| h.schema)
}

/// Parses `bytes`, read from `path`, as a `T`: its version is checked first.
pub fn parse<T: Versioned>(path: &Path, bytes: &[u8]) -> Result<T, ReadError> {
    let invalid = |error| ReadError::Invalid { path: path.to_path_buf(), file: T::FILE, error };
    let found = version_of(bytes).map_err(invalid)?;
    if found != T::SCHEMA {
        return Err(ReadError::Unsupported { path: path.to_path_buf(), file: T::FILE, found, supported: T::SCHEMA });
    }
    serde_json::from_slice(bytes).map_err(invalid)
}

/// Reads the file at `path` as a `T`, checking its version.
pub fn read<T: Versioned>(path: &Path) -> Result<T, ReadError> {
    let bytes = match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Missing(path.to_path_buf())),
        Err(error) => return Err(ReadError::Unreadable { path: path.to_path_buf(), error }),
        Ok(b) => b,
    };
    parse(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Thing {
        #[serde(default = "unversioned")]
        schema: u32,
        x: u32,
    }

    impl Versioned for Thing {
        const FILE: &'static str = "thing.json";
        const SCHEMA: u32 = 1;
    }

    #[test]
    fn a_file_without_a_version_reads_as_version_1_and_a_newer_one_is_refused_by_name() {
        let p = Path::new("runs/x/thing.json");
        assert_eq!(parse::<Thing>(p, br#"{"x": 3}"#).unwrap(), Thing { schema: 1, x: 3 });
        assert_eq!(parse::<Thing>(p, br#"{"schema": 1, "x": 3}"#).unwrap(), Thing { schema: 1, x: 3 });
        for found in [0, 2, 7] {
            let text = format!(r#"{{"schema": {found}, "x": "a field of a newer kind"}}"#);
            let err = parse::<Thing>(p, text.as_bytes()).unwrap_err();
            assert!(matches!(err, ReadError::Unsupported { found: f, supported: 1, .. } if f == found), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.starts_with("runs/x/thing.json: it has schema version") && msg.contains("thing.json of schema version 1 only"),
                "{msg}"
            );
            assert!(msg.contains(&format!("version {found}")), "{msg}");
        }
        for bad in [&b"garbage"[..], br#"{"schema": "one", "x": 3}"#, br#"{"schema": 1}"#, b"[1, 2]"] {
            let err = parse::<Thing>(p, bad).unwrap_err();
            assert!(matches!(err, ReadError::Invalid { .. }), "{err:?}");
            assert!(err.to_string().starts_with("runs/x/thing.json: not what arithlens writes there"), "{err}");
        }
    }

    #[test]
    fn save_then_load_gives_the_value_back_and_a_missing_file_says_so() {
        let dir = std::env::temp_dir().join(format!("arithlens-schema-{}", std::process::id()));
        let path = dir.join("thing.json");
        assert!(matches!(read::<Thing>(&path), Err(ReadError::Missing(_))));
        assert!(Thing::load(&path).unwrap_err().to_string().contains("thing.json: there is no such file"));
        Thing { schema: 1, x: 9 }.save(&path).unwrap();
        assert_eq!(Thing::load(&path).unwrap(), Thing { schema: 1, x: 9 });
        std::fs::remove_dir_all(dir).unwrap();
    }
}
