//! The one error type of the task module.

use std::fmt;

/// Everything that can go wrong when building, parsing, encoding or
/// sampling questions. Each message says what is wrong and what would be
/// right, so it can be shown to a user as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// The question text was empty (or only whitespace).
    Empty,
    /// `n_digits` outside `1..=MAX_DIGITS`.
    NDigitsOutOfRange(usize),
    /// A numeric operand does not fit in `n_digits` decimal digits.
    OperandTooLarge {
        /// The operand.
        value: u128,
        /// The width it should fit in.
        n_digits: usize,
    },
    /// A written operand has more digits than the model answers.
    OperandTooLong {
        /// The operand as written.
        operand: String,
        /// Its number of digits.
        digits: usize,
        /// The model's operand width.
        n_digits: usize,
    },
    /// A written operand has more digits than any model supports.
    TooManyDigits {
        /// The operand as written.
        operand: String,
        /// Its number of digits.
        digits: usize,
    },
    /// An operand contains something other than decimal digits.
    NotANumber {
        /// The operand as written.
        operand: String,
    },
    /// An operand is written with a minus sign ("-12+34="): operands are non-negative.
    NegativeOperand {
        /// The question text or operand.
        text: String,
    },
    /// One side of the operator is empty.
    MissingOperand {
        /// The question text.
        text: String,
        /// "left" or "right".
        side: &'static str,
    },
    /// No operator was found in the question.
    MissingOperator {
        /// The question text.
        text: String,
    },
    /// An operator other than '+' or '-' was found.
    UnknownOperator {
        /// The operator found.
        op: char,
        /// The question text.
        text: String,
    },
    /// Text follows the '=' that ends a question.
    TrailingText {
        /// The question text.
        text: String,
        /// What follows the '='.
        rest: String,
    },
    /// A format name that is not "paper1" or "paper2_sign".
    UnknownFormat(String),
    /// The format has no token for this operation.
    UnsupportedOp {
        /// The format's name.
        format: &'static str,
        /// The operation's symbol.
        op: char,
    },
    /// A token buffer or answer has the wrong length.
    WrongLength {
        /// What was measured, e.g. "answer".
        what: &'static str,
        /// The allowed lengths, in words.
        expected: String,
        /// The length given.
        got: usize,
    },
    /// A token that is not allowed at this place of the answer.
    BadToken {
        /// Index within the answer tokens.
        position: usize,
        /// The token found.
        token: u32,
        /// What is allowed there, in words.
        expected: &'static str,
    },
    /// A class name that does not parse.
    UnknownClass(String),
    /// The class has no question with this many digits.
    EmptyClass {
        /// The class asked for.
        class: String,
        /// The operand width asked for.
        n_digits: usize,
        /// The classes that do exist, comma separated.
        classes: String,
    },
    /// A count does not fit in u128.
    CountOverflow {
        /// The class counted.
        class: String,
        /// The operand width.
        n_digits: usize,
    },
    /// A generator parameter outside its valid range.
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// The value given, printed.
        value: String,
        /// The allowed range, in words.
        expected: &'static str,
    },
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TaskError::*;
        match self {
            Empty => write!(f, "empty question: expected something like '12345+67890='"),
            NDigitsOutOfRange(n) => write!(f, "n_digits {n} is out of range 1..=20"),
            OperandTooLarge { value, n_digits } => {
                write!(f, "operand {value} does not fit in {n_digits} digits: use an operand below 10^{n_digits} or more digits")
            }
            OperandTooLong { operand, digits, n_digits } => {
                write!(f, "operand '{operand}' has {digits} digits but the model answers {n_digits}-digit questions")
            }
            TooManyDigits { operand, digits } => write!(f, "operand '{operand}' has {digits} digits but at most 20 are supported"),
            NotANumber { operand } => write!(f, "'{operand}' is not a number: operands are decimal digits 0-9"),
            NegativeOperand { text } => write!(
                f,
                "negative operand in '{text}': operands are non-negative integers (e.g. '12+34=', or '12-34=' for a negative answer)"
            ),
            MissingOperand { text, side } => write!(f, "missing {side} operand in '{text}': expected something like '12345+67890='"),
            MissingOperator { text } => write!(f, "missing operator in '{text}': expected '+' or '-' between two numbers"),
            UnknownOperator { op, text } => write!(f, "unknown operator '{op}' in '{text}': expected '+' or '-'"),
            TrailingText { text, rest } => write!(f, "unexpected '{rest}' after '=' in '{text}': a question ends at '='"),
            UnknownFormat(name) => write!(f, "unknown format '{name}': expected 'paper1' or 'paper2_sign'"),
            UnsupportedOp { format, op } => write!(f, "format {format} has no token for '{op}': use paper2_sign for subtraction"),
            WrongLength { what, expected, got } => {
                write!(f, "{what} has {got} tokens but should have {expected}")
            }
            BadToken { position, token, expected } => {
                write!(f, "token {token} at answer position {position} is not allowed: expected {expected}")
            }
            UnknownClass(name) => write!(f, "unknown class '{name}': expected S<k>, M<k> or N<k> such as 'S0', 'M2', 'N1'"),
            EmptyClass { class, n_digits, classes } => {
                write!(f, "class {class} has no {n_digits}-digit questions: the classes are {classes}")
            }
            CountOverflow { class, n_digits } => {
                write!(f, "the number of {n_digits}-digit questions in class {class} does not fit in u128")
            }
            InvalidParameter { name, value, expected } => {
                write!(f, "{name} = {value} is invalid: expected {expected}")
            }
        }
    }
}

impl std::error::Error for TaskError {}
