//! Token formats (vocabularies and sequence layouts) and operations.

use serde::{Deserialize, Serialize};

use crate::task::error::TaskError;

/// An arithmetic operation a question can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Addition, `x + y`.
    Add,
    /// Subtraction, `x - y` (the answer may be negative).
    Sub,
}

impl Op {
    /// Its name in files and presets: "add" or "sub" (as it serialises).
    pub fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Sub => "sub",
        }
    }

    /// The word for the operation: "addition" or "subtraction".
    pub fn word(self) -> &'static str {
        match self {
            Op::Add => "addition",
            Op::Sub => "subtraction",
        }
    }

    /// Operations in words for messages: "addition", "addition and subtraction".
    pub fn words(ops: &[Op]) -> String {
        ops.iter().map(|o| o.word()).collect::<Vec<_>>().join(" and ")
    }

    /// The character written between the operands.
    pub fn symbol(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '-',
        }
    }
}

/// A token layout. Both put the operands MSB first, zero padded to
/// `n_digits`, and the answer MSB first with `n_digits + 1` digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// Paper 1: vocab 12 (digits, '+'=10, '='=11), addition only,
    /// `x+y=A` with `n_ctx = 3n + 3`.
    #[serde(rename = "paper1")]
    Paper1,
    /// Follow-up paper: vocab 15 (digits, '+','-','=','*','/' = 10..=14),
    /// `x op y = sign |A|` with `n_ctx = 3n + 4`.
    #[serde(rename = "paper2_sign")]
    Paper2Sign,
}

const PAPER1_NAMES: [&str; 12] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "="];
const PAPER2_NAMES: [&str; 15] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "-", "=", "*", "/"];

impl Format {
    /// Names of the answer tokens in order: `sign` (the follow-up's format), then `A<n>` .. `A0`.
    pub fn answer_names(self, n_digits: usize) -> Vec<String> {
        let mut v: Vec<String> = (0..=n_digits).rev().map(|k| format!("A{k}")).collect();
        if self.n_answer(n_digits) > n_digits + 1 {
            v.insert(0, "sign".into());
        }
        v
    }

    /// Vocabulary size, for the model's embedding and unembedding.
    pub fn d_vocab(self) -> usize {
        self.names().len()
    }

    /// Sequence length of a whole question plus answer.
    pub fn n_ctx(self, n_digits: usize) -> usize {
        self.answer_start(n_digits) + self.n_answer(n_digits)
    }

    /// Number of answer tokens, including the sign token of Paper2.
    pub fn n_answer(self, n_digits: usize) -> usize {
        match self {
            Format::Paper1 => n_digits + 1,
            Format::Paper2Sign => n_digits + 2,
        }
    }

    /// Position of the first answer token (the one after '=').
    /// It is predicted at position `answer_start - 1`.
    pub fn answer_start(self, n_digits: usize) -> usize {
        2 * n_digits + 2
    }

    /// Display name of a token ("0".."9", "+", "-", "=", "*", "/"),
    /// "?" for a token outside the vocabulary.
    pub fn token_name(self, tok: u32) -> &'static str {
        self.names().get(tok as usize).copied().unwrap_or("?")
    }

    /// Tokens written out with [`Format::token_name`], e.g. "+0315600".
    pub fn tokens_text(self, toks: &[u32]) -> String {
        toks.iter().map(|&t| self.token_name(t)).collect()
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Format::Paper1 => &PAPER1_NAMES,
            Format::Paper2Sign => &PAPER2_NAMES,
        }
    }

    /// The serde / command-line name: "paper1" or "paper2_sign".
    pub fn name(self) -> &'static str {
        match self {
            Format::Paper1 => "paper1",
            Format::Paper2Sign => "paper2_sign",
        }
    }

    /// Inverse of [`Format::name`].
    pub fn parse_name(name: &str) -> Result<Format, TaskError> {
        match name.trim() {
            "paper1" => Ok(Format::Paper1),
            "paper2_sign" => Ok(Format::Paper2Sign),
            other => Err(TaskError::UnknownFormat(other.to_string())),
        }
    }

    /// Whether the format can express questions of this operation.
    pub fn supports(self, op: Op) -> bool {
        matches!((self, op), (_, Op::Add) | (Format::Paper2Sign, Op::Sub))
    }

    /// Error unless the format supports `op`; for callers that must check.
    pub fn check(self, op: Op) -> Result<(), TaskError> {
        if self.supports(op) {
            Ok(())
        } else {
            Err(TaskError::UnsupportedOp { format: self.name(), op: op.symbol() })
        }
    }

    /// The '+' token (also Paper2's non-negative sign).
    pub fn plus_token(self) -> u32 {
        10
    }

    /// The '-' token (also Paper2's negative sign), if the format has one.
    pub fn minus_token(self) -> Option<u32> {
        match self {
            Format::Paper1 => None,
            Format::Paper2Sign => Some(11),
        }
    }

    /// The '=' token that ends the question.
    pub fn equals_token(self) -> u32 {
        match self {
            Format::Paper1 => 11,
            Format::Paper2Sign => 12,
        }
    }

    /// The token for an operation, if the format has one.
    pub fn op_token(self, op: Op) -> Option<u32> {
        match op {
            Op::Add => Some(self.plus_token()),
            Op::Sub => self.minus_token(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_sizes() {
        assert_eq!(Format::Paper1.d_vocab(), 12);
        assert_eq!(Format::Paper2Sign.d_vocab(), 15);
        assert_eq!(Format::Paper1.n_ctx(5), 18);
        assert_eq!(Format::Paper2Sign.n_ctx(5), 19);
        assert_eq!(Format::Paper1.answer_start(5), 12);
        assert_eq!(Format::Paper2Sign.n_answer(5), 7);
    }

    #[test]
    fn token_names_and_specials() {
        let f = Format::Paper2Sign;
        assert_eq!(f.token_name(11), "-");
        assert_eq!(f.token_name(12), "=");
        assert_eq!(f.token_name(14), "/");
        assert_eq!(f.token_name(15), "?");
        assert_eq!(Format::Paper1.token_name(11), "=");
        assert_eq!(Format::Paper1.minus_token(), None);
        assert_eq!(f.equals_token(), 12);
    }

    #[test]
    fn names_roundtrip_and_serde() {
        for f in [Format::Paper1, Format::Paper2Sign] {
            assert_eq!(Format::parse_name(f.name()), Ok(f));
            let js = serde_json::to_string(&f).unwrap();
            assert_eq!(js, format!("\"{}\"", f.name()));
        }
        let e = Format::parse_name("paper3").unwrap_err();
        assert!(e.to_string().contains("expected 'paper1' or 'paper2_sign'"));
        assert_eq!(serde_json::to_string(&Op::Sub).unwrap(), "\"sub\"");
        for op in [Op::Add, Op::Sub] {
            assert_eq!(serde_json::to_string(&op).unwrap(), format!("\"{}\"", op.name()));
        }
    }

    #[test]
    fn supports_ops() {
        assert!(Format::Paper1.supports(Op::Add));
        assert!(!Format::Paper1.supports(Op::Sub));
        assert!(Format::Paper2Sign.supports(Op::Sub));
        assert!(Format::Paper1.check(Op::Sub).is_err());
    }
}
