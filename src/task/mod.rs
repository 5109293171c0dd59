//! The arithmetic task: token formats, questions, per-column labels and the column model (carries,
//! borrows and the answer they imply), complexity classes and question generators.
//!
//! Reproduces the data side of Quirke & Barez, "Understanding Addition in
//! Transformers", and its follow-up on mixed addition/subtraction.

pub(crate) mod classes;
pub(crate) mod columns;
pub(crate) mod curated;
pub(crate) mod error;
pub(crate) mod format;
pub mod generate;
pub(crate) mod labels;
pub(crate) mod question;
pub(crate) mod stratified;

pub use classes::{classes_for, Class};
pub use columns::Columns;
pub use curated::{curated, CURATED_PER_CLASS};
pub use error::TaskError;
pub use format::{Format, Op};
pub use generate::{all_questions, random_questions, Enrichment, OpMix, QuestionGenerator};
pub use labels::{tricase, AddLabels, SubLabels, TriCase};
pub use question::{decode_answer, Question, MAX_DIGITS};
pub use stratified::{class_count, sample_class, stratified_set};
