//! What went wrong with a file or folder: the path, the operation, and the system's reason (or
//! what would be right). The messages are the ones the command line prints after "error: ".

use std::path::PathBuf;

/// A file or folder that could not be read, written or used as an output.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// Reading `path` failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// Writing `path` failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// An output folder (`what`, e.g. "the run folder (--out)") is a file.
    #[error("{what} {} is a file, not a folder: give a folder (new or existing) instead", path.display())]
    NotAFolder {
        /// What the folder is for.
        what: String,
        /// The path given.
        path: PathBuf,
    },
    /// An output folder cannot be created.
    #[error("{what} {}: cannot create this folder ({source})", path.display())]
    CannotCreate {
        /// What the folder is for.
        what: String,
        /// The folder.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// An output folder cannot be written into.
    #[error("{what} {}: cannot write into this folder ({source})", path.display())]
    NotWritable {
        /// What the folder is for.
        what: String,
        /// The folder.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// An output file's path is a folder.
    #[error("{what} {} is a folder: give a file name", path.display())]
    IsAFolder {
        /// What the file is for.
        what: String,
        /// The path given.
        path: PathBuf,
    },
    /// An output file exists and `--force` was not given.
    #[error("{what} {} already exists: pass --force to replace it, or choose another name", path.display())]
    Exists {
        /// What the file is for.
        what: String,
        /// The file.
        path: PathBuf,
    },
    /// A fresh run was asked in a folder holding a run's model, checkpoint or training.json
    /// (`path`), without `--force`.
    #[error(
        "{} already exists: pass --force to train a new model in its place (the old model stays until the new one is complete), \
         --resume to continue its checkpoint, or --out for another folder",
        path.display()
    )]
    RunExists {
        /// The file found.
        path: PathBuf,
    },
    /// An existing file that is never replaced, even with `--force` (the reason names it).
    #[error("{0}")]
    NotReplaceable(String),
}

impl From<IoError> for String {
    fn from(e: IoError) -> String {
        e.to_string()
    }
}

/// Why a tensor file (safetensors or `.npz`) could not be read or written: the file (`what`
/// names it: its path, or what the bytes came from) and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    /// The file could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The bytes are not a safetensors file.
    #[error("{what} is not a valid safetensors file ({reason}); was it truncated or written by another tool?")]
    NotSafetensors {
        /// The file.
        what: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The safetensors header cannot be read.
    #[error("{what}: {reason}")]
    Header {
        /// The file.
        what: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A tensor has a dtype arithlens does not read.
    #[error("{what}: tensor '{tensor}' has dtype {dtype}; arithlens reads F32, F64, BF16 and integer tensors")]
    Dtype {
        /// The file.
        what: String,
        /// The tensor.
        tensor: String,
        /// Its dtype.
        dtype: String,
    },
    /// A tensor's shape does not match its data (when writing).
    #[error("tensor {tensor}: {reason}")]
    Tensor {
        /// The tensor.
        tensor: String,
        /// What does not match.
        reason: String,
    },
    /// An `.npz`'s metadata entry has the name of a tensor or of another entry.
    #[error(
        "cannot write {}: metadata entry '{key}' has the name of a tensor or of another entry, and an .npz holds one array per name",
        path.display()
    )]
    NameClash {
        /// The `.npz`.
        path: PathBuf,
        /// The entry.
        key: String,
    },
}

impl From<TensorFileError> for String {
    fn from(e: TensorFileError) -> String {
        e.to_string()
    }
}
