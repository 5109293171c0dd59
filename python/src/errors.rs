//! Library errors as Python exceptions: every message is the library's own, raised as a subclass
//! of `arithlens.ArithlensError` that is also the built-in Python expects (`ValueError` for a
//! bad question or value, `FileNotFoundError` for a missing file, `OSError` for one that cannot
//! be read or written). The classes live in `arithlens/_errors.py`.

use pyo3::prelude::*;

/// Which Python exception a failure raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `arithlens.InvalidValueError` (a `ValueError`): a bad question, option or value.
    Value,
    /// `arithlens.ModelNotFoundError` (a `FileNotFoundError`): no model or run folder there.
    NotFound,
    /// `arithlens.FileError` (an `OSError`): a file that cannot be read or written.
    Os,
    /// `arithlens.ArithlensError`: anything else (e.g. a diverged training run).
    Other,
}

impl Kind {
    /// The exception class's name in `arithlens._errors`.
    fn class(self) -> &'static str {
        match self {
            Kind::Value => "InvalidValueError",
            Kind::NotFound => "ModelNotFoundError",
            Kind::Os => "FileError",
            Kind::Other => "ArithlensError",
        }
    }
}

/// A library error with the Python exception it raises.
#[derive(Debug)]
pub struct Failure {
    /// The exception class.
    pub kind: Kind,
    /// The library's message.
    pub message: String,
}

impl Failure {
    /// A failure of a known kind.
    pub fn new(kind: Kind, message: impl Into<String>) -> Failure {
        Failure { kind, message: message.into() }
    }

    /// A bad value or question (`ValueError`).
    pub fn value(message: impl Into<String>) -> Failure {
        Failure::new(Kind::Value, message)
    }

    /// A library message whose kind its type does not say (the layers whose errors are still
    /// strings): file trouble by its wording, otherwise a bad value. The command line's flag
    /// names in it become the keyword arguments' ([`keywords`]).
    pub fn classify(message: String) -> Failure {
        let message = keywords(&message);
        let m = message.to_ascii_lowercase();
        let kind = if m.starts_with("no model at") {
            Kind::NotFound
        } else if [
            "cannot read",
            "cannot write",
            "cannot create",
            "permission denied",
            "no such file",
            "writing ",
            "reading ",
            "already exists",
        ]
        .iter()
        .any(|w| m.contains(w))
        {
            Kind::Os
        } else if m.contains("the loss became") {
            Kind::Other
        } else {
            Kind::Value
        };
        Failure { kind, message }
    }
}

/// The library's messages name the command line's flags; from Python they are keyword
/// arguments (`--force` is `force=True`, `--resume` is `resume=True`, ...).
pub fn keywords(message: &str) -> String {
    const FLAGS: [(&str, &str); 6] = [
        ("--force", "force=True"),
        ("--resume", "resume=True"),
        ("(--out)", "(out)"),
        ("--out", "out="),
        ("--per-class", "per_class"),
        ("--top", "top_k"),
    ];
    FLAGS.iter().fold(message.to_string(), |m, (flag, keyword)| m.replace(flag, keyword))
}

impl From<arithlens::pipeline::Error> for Failure {
    fn from(e: arithlens::pipeline::Error) -> Failure {
        use arithlens::pipeline::Error as E;
        match e {
            E::Model(m) => m.into(),
            E::Limit(l) => Failure::value(keywords(&l.to_string())),
            E::Io(io) => Failure::new(Kind::Os, keywords(&io.to_string())),
            E::Stopped(s) => Failure::new(Kind::Other, keywords(&s.to_string())),
            E::Read(r) => r.into(),
            E::Config(c) => Failure::value(keywords(&c.to_string())),
            E::Options(o) => Failure::value(keywords(&o.to_string())),
            E::CircuitClass { .. } => Failure::value(keywords(&e.to_string())),
            E::Train(t) => train_failure(t),
            E::Eval(e) => Failure::value(keywords(&e.to_string())),
            other => Failure::classify(other.to_string()),
        }
    }
}

/// A run artifact that cannot be read is file trouble (`OSError`); one that reads but is not
/// what arithlens writes, or is of another schema version, is a bad value.
fn read_kind(e: &arithlens::io::schema::ReadError) -> Kind {
    use arithlens::io::schema::ReadError as R;
    match e {
        R::Missing(_) | R::Unreadable { .. } => Kind::Os,
        R::Unsupported { .. } | R::Invalid { .. } => Kind::Value,
    }
}

/// A failed training run: a diverged loss is neither a bad value nor a file (`ArithlensError`);
/// a config, batch or checkpoint that does not fit is a bad value; the rest by their wording.
fn train_failure(e: arithlens::train::TrainError) -> Failure {
    use arithlens::train::TrainError as T;
    match e {
        T::Diverged { .. } | T::Stopped(_) => Failure::new(Kind::Other, keywords(&e.to_string())),
        T::Config(_) | T::BatchSize { .. } | T::ConfigChanged { .. } | T::Incompatible(_) | T::Checkpoint { .. } => {
            Failure::value(keywords(&e.to_string()))
        }
        T::Io(_) => Failure::new(Kind::Os, keywords(&e.to_string())),
        T::Log(r) => r.into(),
        T::Resume(_) | T::Insert { .. } | T::Weights(_) => Failure::classify(e.to_string()),
    }
}

impl From<arithlens::task_model::ModelError> for Failure {
    fn from(e: arithlens::task_model::ModelError) -> Failure {
        use arithlens::task_model::ModelError as M;
        let kind = match &e {
            M::NotFound { .. } => Kind::NotFound,
            M::Io(_) => Kind::Os,
            _ => Kind::Other,
        };
        Failure::new(kind, e.to_string())
    }
}

impl From<arithlens::eval::EvalError> for Failure {
    fn from(e: arithlens::eval::EvalError) -> Failure {
        arithlens::pipeline::Error::from(e).into()
    }
}

impl From<arithlens::io::schema::ReadError> for Failure {
    fn from(e: arithlens::io::schema::ReadError) -> Failure {
        Failure::new(read_kind(&e), keywords(&e.to_string()))
    }
}

impl From<arithlens::analysis::intervene::CacheError> for Failure {
    fn from(e: arithlens::analysis::intervene::CacheError) -> Failure {
        Failure::value(e.to_string())
    }
}

impl From<arithlens::progress::Stopped> for Failure {
    fn from(e: arithlens::progress::Stopped) -> Failure {
        arithlens::pipeline::Error::from(e).into()
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::classify(message)
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        Python::attach(|py| match py.import("arithlens._errors").and_then(|m| m.getattr(f.kind.class())) {
            Ok(class) => match class.call1((f.message.clone(),)) {
                Ok(exc) => PyErr::from_value(exc),
                Err(e) => e,
            },
            Err(e) => e,
        })
    }
}

/// A result whose error raises a Python exception.
pub type Result<T> = std::result::Result<T, Failure>;
