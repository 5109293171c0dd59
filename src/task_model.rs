//! A trained model together with the task it answers (operand width, token format, operations),
//! loaded from a model file or a run folder.

use crate::model::file::{LoadOptions, ModelFile};
use crate::model::Params;
use crate::task::{Format, Op, Question, TaskError};
use std::path::{Path, PathBuf};

/// Why a model could not be loaded: the path (or file) at fault and what would be right.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// There is no model file at the path.
    #[error("no model at {}: give a model .safetensors file or a run folder holding model.safetensors (train one with `arithlens train`)", path.display())]
    NotFound {
        /// The model file looked for.
        path: PathBuf,
    },
    /// The file is not a model arithlens can read (the error names the file).
    #[error(transparent)]
    File(#[from] crate::model::ModelFileError),
    /// The file could not be read to hash it.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    /// The file's token format metadata names no format.
    #[error("{file}: {source}")]
    Format {
        /// The model file.
        file: String,
        /// What is wrong with the name.
        source: TaskError,
    },
    /// The file's metadata or shapes name no task the model can answer.
    #[error("{file}: {problem}")]
    Task {
        /// The model file.
        file: String,
        /// What does not fit, and what would.
        problem: String,
    },
}

impl From<ModelError> for String {
    fn from(e: ModelError) -> String {
        e.to_string()
    }
}

/// Why a model cannot answer a question.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuestionError {
    /// The text is not a question of the model's width, or its operation has no token in the
    /// model's format.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The operands have another width than the model's.
    #[error("the question has {given}-digit operands but the model answers {model}-digit questions")]
    Width {
        /// The question's operand width.
        given: usize,
        /// The model's.
        model: usize,
    },
    /// The model was not trained on the question's operation.
    #[error("the model was trained on {} only, not on {} ('{}') questions", Op::words(trained), op.word(), op.symbol())]
    Op {
        /// The operations the model knows.
        trained: Vec<Op>,
        /// The question's.
        op: Op,
    },
}

impl From<QuestionError> for String {
    fn from(e: QuestionError) -> String {
        e.to_string()
    }
}

/// Weights plus the task they were trained on.
#[derive(Clone, Debug)]
pub struct TaskModel {
    /// Config and weights.
    pub params: Params,
    /// Operand width.
    pub n_digits: usize,
    /// Token format.
    pub format: Format,
    /// Operations it was trained on.
    pub ops: Vec<Op>,
    /// Run or model name.
    pub name: String,
    /// Hex SHA-256 of the model file it was loaded from (`None` for a model built in memory):
    /// the provenance of everything computed from it.
    pub sha256: Option<String>,
}

/// The model file a path names: the path itself, or `model.safetensors` inside a run folder.
pub fn model_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(crate::run_folder::files::MODEL)
    } else {
        path.to_path_buf()
    }
}

impl TaskModel {
    /// Loads a model file or run folder. A file without task metadata (e.g. a TransformerLens
    /// state dict) gets its task from its vocabulary and context length.
    pub fn load(path: &Path) -> Result<TaskModel, ModelError> {
        Self::load_with(path, LoadOptions::default())
    }

    /// [`TaskModel::load`] with options (e.g. to load non-finite weights on purpose).
    pub fn load_with(path: &Path, opts: LoadOptions) -> Result<TaskModel, ModelError> {
        let file = model_path(path);
        if !file.exists() {
            return Err(ModelError::NotFound { path: file });
        }
        let mut model = Self::from_file(ModelFile::load_with(&file, opts)?, &file.display().to_string())?;
        model.sha256 = Some(crate::provenance::sha256_file(&file)?);
        Ok(model)
    }

    /// Interprets a loaded model file.
    pub fn from_file(f: ModelFile, what: &str) -> Result<TaskModel, ModelError> {
        let c = &f.params.config;
        let task = |problem: String| ModelError::Task { file: what.into(), problem };
        let format = match f.metadata.get("format") {
            Some(s) => Format::parse_name(s).map_err(|source| ModelError::Format { file: what.into(), source })?,
            None if c.d_vocab == 12 => Format::Paper1,
            None if c.d_vocab == 15 => Format::Paper2Sign,
            None => return Err(task(format!("no 'format' metadata and vocabulary size {} matches neither format (12 or 15)", c.d_vocab))),
        };
        let n_digits = match f.metadata.get("n_digits") {
            Some(s) => s
                .parse()
                .ok()
                .filter(|n| (1..=crate::task::MAX_DIGITS).contains(n))
                .ok_or_else(|| task(format!("metadata n_digits '{s}' is not a number from 1 to {}", crate::task::MAX_DIGITS)))?,
            None => (1..=crate::task::MAX_DIGITS)
                .find(|&n| format.n_ctx(n) == c.n_ctx)
                .ok_or_else(|| task(format!("no 'n_digits' metadata and n_ctx {} fits no operand width", c.n_ctx)))?,
        };
        if format.n_ctx(n_digits) > c.n_ctx || format.d_vocab() > c.d_vocab {
            return Err(task(format!(
                "a {n_digits}-digit {} question needs n_ctx {} and vocabulary {}, but the model has {} and {}",
                format.name(),
                format.n_ctx(n_digits),
                format.d_vocab(),
                c.n_ctx,
                c.d_vocab
            )));
        }
        let ops = match f.metadata.get("ops").map(String::as_str) {
            Some("sub") => vec![Op::Sub],
            Some("add,sub") => vec![Op::Add, Op::Sub],
            _ if format == Format::Paper1 => vec![Op::Add],
            Some(_) | None => vec![Op::Add],
        };
        let name = f.metadata.get("name").cloned().unwrap_or_else(|| "model".into());
        Ok(TaskModel { params: f.params, n_digits, format, ops, name, sha256: None })
    }

    /// Parses question text for this model: the right number of digits and an operation it knows.
    pub fn parse_question(&self, text: &str) -> Result<Question, QuestionError> {
        let q = Question::parse(text, self.n_digits)?;
        self.check(&q)?;
        Ok(q)
    }

    /// The provenance of a file computed from this model with `options`, if it was loaded from a
    /// file (a model built in memory has no file to hash).
    pub fn provenance(&self, options: &impl serde::Serialize) -> Option<crate::provenance::Provenance> {
        self.sha256.as_deref().map(|sha| crate::provenance::Provenance::new(sha, options))
    }

    /// Checks that this model can answer `q` (operand width and operation).
    pub fn check(&self, q: &Question) -> Result<(), QuestionError> {
        if q.n_digits != self.n_digits {
            return Err(QuestionError::Width { given: q.n_digits, model: self.n_digits });
        }
        self.format.check(q.op)?;
        if !self.ops.contains(&q.op) {
            return Err(QuestionError::Op { trained: self.ops.clone(), op: q.op });
        }
        Ok(())
    }

    /// Sequence length of a question with its answer.
    pub fn n_ctx(&self) -> usize {
        self.format.n_ctx(self.n_digits)
    }

    /// Position of the first answer token.
    pub fn answer_start(&self) -> usize {
        self.format.answer_start(self.n_digits)
    }

    /// Answer tokens per question.
    pub fn n_answer(&self) -> usize {
        self.format.n_answer(self.n_digits)
    }
}
