//! One arithmetic question: its operands, answer, text and tokens.

use serde::{Deserialize, Serialize};

use crate::task::error::TaskError;
use crate::task::format::{Format, Op};

/// Largest supported operand width; 10^20 - 1 still fits u128 with room
/// for sums, and the answer fits i128.
pub const MAX_DIGITS: usize = 20;

/// 10^k for k in 0..=38 (every power of ten that fits in u128).
pub(crate) const fn pow10(k: usize) -> u128 {
    let mut v: u128 = 1;
    let mut i = 0;
    while i < k {
        v *= 10;
        i += 1;
    }
    v
}

/// Error unless `n_digits` is in `1..=MAX_DIGITS`.
pub(crate) fn check_n_digits(n_digits: usize) -> Result<(), TaskError> {
    if (1..=MAX_DIGITS).contains(&n_digits) {
        Ok(())
    } else {
        Err(TaskError::NDigitsOutOfRange(n_digits))
    }
}

/// A question `x op y` whose operands are written with `n_digits` digits. Read from JSON (e.g.
/// an evaluation's saved progress) it is checked as [`Question::new`] checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawQuestion")]
pub struct Question {
    /// First operand, below 10^n_digits.
    pub x: u128,
    /// Second operand, below 10^n_digits.
    pub y: u128,
    /// The operation asked for.
    pub op: Op,
    /// Operand width in digits, 1..=MAX_DIGITS.
    pub n_digits: usize,
}

/// A question as stored, before its checks.
#[derive(Deserialize)]
struct RawQuestion {
    x: u128,
    y: u128,
    op: Op,
    n_digits: usize,
}

impl TryFrom<RawQuestion> for Question {
    type Error = TaskError;
    fn try_from(r: RawQuestion) -> Result<Question, TaskError> {
        Question::new(r.x, r.y, r.op, r.n_digits)
    }
}

impl Question {
    /// A checked question: errors when `n_digits` is out of range or an
    /// operand does not fit in `n_digits` digits.
    pub fn new(x: u128, y: u128, op: Op, n_digits: usize) -> Result<Question, TaskError> {
        check_n_digits(n_digits)?;
        for value in [x, y] {
            if value >= pow10(n_digits) {
                return Err(TaskError::OperandTooLarge { value, n_digits });
            }
        }
        Ok(Question { x, y, op, n_digits })
    }

    /// The true answer (negative for subtraction with x < y).
    pub fn answer(&self) -> i128 {
        match self.op {
            Op::Add => (self.x + self.y) as i128,
            Op::Sub => self.x as i128 - self.y as i128,
        }
    }

    /// Digit `k` of x (k = 0 is the units digit); 0 above the operand.
    pub fn digit_x(&self, k: usize) -> u8 {
        digit(self.x, k)
    }

    /// Digit `k` of y (k = 0 is the units digit); 0 above the operand.
    pub fn digit_y(&self, k: usize) -> u8 {
        digit(self.y, k)
    }

    /// The question as typed, zero padded: "00450+00550=".
    pub fn text(&self) -> String {
        let n = self.n_digits;
        format!("{:0n$}{}{:0n$}=", self.x, self.op.symbol(), self.y)
    }

    /// The whole token sequence written out: "33357+82243=115600" or
    /// "123450-345670=-0222220".
    pub fn full_text(&self, format: Format) -> Result<String, TaskError> {
        Ok(format.tokens_text(&self.tokens(format)?))
    }

    /// The whole sequence, `format.n_ctx(n_digits)` tokens long.
    pub fn tokens(&self, format: Format) -> Result<Vec<u32>, TaskError> {
        format.check(self.op)?;
        let mut out = vec![0; format.n_ctx(self.n_digits)];
        self.write_tokens(format, &mut out);
        Ok(out)
    }

    /// Fast path of [`Question::tokens`] into a caller's buffer of exactly
    /// `n_ctx` tokens. The caller guarantees the format supports the op
    /// (checked only in debug builds); a too-short buffer is left untouched.
    pub fn write_tokens(&self, format: Format, out: &mut [u32]) {
        let n = self.n_digits;
        debug_assert_eq!(out.len(), format.n_ctx(n));
        debug_assert!(format.supports(self.op));
        let Some(out) = out.get_mut(..format.n_ctx(n)) else {
            return;
        };
        let (question, answer) = out.split_at_mut(format.answer_start(n));
        write_digits(self.x, &mut question[..n]);
        question[n] = format.op_token(self.op).unwrap_or(format.plus_token());
        write_digits(self.y, &mut question[n + 1..2 * n + 1]);
        question[2 * n + 1] = format.equals_token();
        self.write_answer(format, answer);
    }

    /// Just the answer tokens (sign token first for Paper2). For Paper1,
    /// which has no sign, these are the digits of |answer|.
    pub fn answer_tokens(&self, format: Format) -> Vec<u32> {
        let mut out = vec![0; format.n_answer(self.n_digits)];
        self.write_answer(format, &mut out);
        out
    }

    fn write_answer(&self, format: Format, out: &mut [u32]) {
        let answer = self.answer();
        let digits = match format {
            Format::Paper1 => out,
            Format::Paper2Sign => {
                let negative = format.minus_token().filter(|_| answer < 0);
                out[0] = negative.unwrap_or(format.plus_token());
                &mut out[1..]
            }
        };
        write_digits(answer.unsigned_abs(), digits);
    }

    /// Parse "12345+67890=" (the '=' and surrounding spaces optional) for a
    /// model of `n_digits` digits; shorter operands are zero padded.
    pub fn parse(text: &str, n_digits: usize) -> Result<Question, TaskError> {
        check_n_digits(n_digits)?;
        let (left, op, right) = split_question(text)?;
        let x = parse_operand(left, n_digits)?;
        let y = parse_operand(right, n_digits)?;
        Question::new(x, y, op, n_digits)
    }

    /// Parse a question, taking `n_digits` from the longer operand.
    pub fn parse_any(text: &str) -> Result<Question, TaskError> {
        let (left, _, right) = split_question(text)?;
        check_number(left)?;
        check_number(right)?;
        let longer = if right.len() > left.len() { right } else { left };
        if longer.len() > MAX_DIGITS {
            let operand = longer.to_string();
            return Err(TaskError::TooManyDigits { digits: operand.len(), operand });
        }
        Question::parse(text, longer.len())
    }
}

/// Digit `k` (0 = units) of `v`.
fn digit(v: u128, k: usize) -> u8 {
    if k > 38 {
        return 0;
    }
    ((v / pow10(k)) % 10) as u8
}

/// Write `v` MSB first into `out`, zero padded (higher digits dropped).
fn write_digits(mut v: u128, out: &mut [u32]) {
    for slot in out.iter_mut().rev() {
        *slot = (v % 10) as u32;
        v /= 10;
    }
}

/// Split a question into (left operand, op, right operand), all trimmed.
fn split_question(text: &str) -> Result<(&str, Op, &str), TaskError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(TaskError::Empty);
    }
    let body = strip_equals(trimmed)?;
    let Some((i, c)) = body.char_indices().find(|&(_, c)| is_operator_like(c)) else {
        return Err(TaskError::MissingOperator { text: trimmed.to_string() });
    };
    let op = match c {
        '+' => Op::Add,
        '-' => Op::Sub,
        other => return Err(TaskError::UnknownOperator { op: other, text: trimmed.to_string() }),
    };
    let (left, right) = (body[..i].trim(), body[i + c.len_utf8()..].trim());
    if left.is_empty() && c == '-' && !right.is_empty() {
        return Err(TaskError::NegativeOperand { text: trimmed.to_string() });
    }
    for (side, operand) in [("left", left), ("right", right)] {
        if operand.is_empty() {
            return Err(TaskError::MissingOperand { text: trimmed.to_string(), side });
        }
    }
    Ok((left, op, right))
}

/// The part before '=', erroring if anything but spaces follows it.
fn strip_equals(trimmed: &str) -> Result<&str, TaskError> {
    match trimmed.split_once('=') {
        None => Ok(trimmed),
        Some((body, rest)) if rest.trim().is_empty() => Ok(body),
        Some((_, rest)) => Err(TaskError::TrailingText { text: trimmed.to_string(), rest: rest.trim().to_string() }),
    }
}

/// Characters taken as an operator; '.', ',' and '_' count as (bad) parts
/// of a number instead, so "1.5+2" reports a bad number.
fn is_operator_like(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_punctuation() && !".,_".contains(c)
    } else {
        !c.is_alphanumeric() && !c.is_whitespace()
    }
}

/// Error unless `s` is made only of ASCII decimal digits.
fn check_number(s: &str) -> Result<(), TaskError> {
    if s.len() > 1 && s.starts_with('-') && s[1..].trim_start().bytes().all(|b| b.is_ascii_digit()) {
        return Err(TaskError::NegativeOperand { text: s.to_string() });
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(TaskError::NotANumber { operand: s.to_string() })
    }
}

/// Parse a written operand of at most `n_digits` digits.
fn parse_operand(s: &str, n_digits: usize) -> Result<u128, TaskError> {
    check_number(s)?;
    if s.len() > n_digits {
        let operand = s.to_string();
        return Err(TaskError::OperandTooLong { digits: operand.len(), operand, n_digits });
    }
    Ok(s.bytes().fold(0u128, |v, b| v * 10 + u128::from(b - b'0')))
}

/// Turn predicted answer tokens (as laid out by `format`, sign first for
/// Paper2) back into a number; n_digits is implied by the length.
pub fn decode_answer(format: Format, tokens: &[u32]) -> Result<i128, TaskError> {
    let (negative, digits) = split_sign(format, tokens)?;
    let mut value: i128 = 0;
    for (i, &t) in digits.iter().enumerate() {
        if t > 9 {
            let position = i + tokens.len() - digits.len();
            return Err(TaskError::BadToken { position, token: t, expected: "a digit 0-9" });
        }
        value = value * 10 + i128::from(t);
    }
    Ok(if negative { -value } else { value })
}

/// Check the answer length and split off Paper2's sign token.
fn split_sign(format: Format, tokens: &[u32]) -> Result<(bool, &[u32]), TaskError> {
    let (min, max) = (format.n_answer(1), format.n_answer(MAX_DIGITS));
    if !(min..=max).contains(&tokens.len()) {
        let expected = format!("{min}..={max} ({} per n_digits)", answer_rule(format));
        return Err(TaskError::WrongLength { what: "answer", expected, got: tokens.len() });
    }
    match format.minus_token() {
        None => Ok((false, tokens)),
        Some(minus) => match tokens[0] {
            t if t == format.plus_token() => Ok((false, &tokens[1..])),
            t if t == minus => Ok((true, &tokens[1..])),
            t => Err(TaskError::BadToken { position: 0, token: t, expected: "a sign '+' or '-'" }),
        },
    }
}

fn answer_rule(format: Format) -> &'static str {
    match format {
        Format::Paper1 => "n_digits + 1",
        Format::Paper2Sign => "n_digits + 2",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_question_is_checked_when_read() {
        let json = serde_json::to_string(&Question::new(12, 34, Op::Add, 2).unwrap()).unwrap();
        assert_eq!(serde_json::from_str::<Question>(&json).unwrap().text(), "12+34=");
        let huge = json.replace("\"n_digits\":2", "\"n_digits\":1000000000000");
        assert!(serde_json::from_str::<Question>(&huge).is_err(), "a width beyond MAX_DIGITS must not load");
        assert!(serde_json::from_str::<Question>(&json.replace("34", "340")).is_err(), "an operand wider than n_digits");
    }

    fn q(x: u128, y: u128, op: Op, n: usize) -> Question {
        Question::new(x, y, op, n).unwrap()
    }

    #[test]
    fn paper_layouts() {
        let add = q(33357, 82243, Op::Add, 5);
        assert_eq!(add.full_text(Format::Paper1).unwrap(), "33357+82243=115600");
        let add6 = q(133357, 182243, Op::Add, 6);
        assert_eq!(add6.full_text(Format::Paper2Sign).unwrap(), "133357+182243=+0315600");
        let sub = q(123450, 345670, Op::Sub, 6);
        assert_eq!(sub.full_text(Format::Paper2Sign).unwrap(), "123450-345670=-0222220");
        assert_eq!(q(450, 550, Op::Add, 5).text(), "00450+00550=");
    }

    #[test]
    fn token_values_and_lengths() {
        let add = q(1, 2, Op::Add, 2);
        assert_eq!(add.tokens(Format::Paper1).unwrap(), vec![0, 1, 10, 0, 2, 11, 0, 0, 3]);
        let sub = q(1, 2, Op::Sub, 2);
        assert_eq!(sub.tokens(Format::Paper2Sign).unwrap(), vec![0, 1, 11, 0, 2, 12, 11, 0, 0, 1]);
        assert_eq!(sub.answer_tokens(Format::Paper2Sign), vec![11, 0, 0, 1]);
        assert!(sub.tokens(Format::Paper1).is_err());
        let mut buf = vec![99; Format::Paper2Sign.n_ctx(2)];
        sub.write_tokens(Format::Paper2Sign, &mut buf);
        assert_eq!(buf, sub.tokens(Format::Paper2Sign).unwrap());
    }

    #[test]
    fn decode_roundtrip() {
        for (x, y, op) in [(5, 7, Op::Sub), (99, 99, Op::Add), (0, 0, Op::Sub), (70, 3, Op::Sub)] {
            let qq = q(x, y, op, 2);
            let toks = qq.answer_tokens(Format::Paper2Sign);
            assert_eq!(decode_answer(Format::Paper2Sign, &toks), Ok(qq.answer()));
        }
        let add = q(12345, 99999, Op::Add, 5);
        assert_eq!(decode_answer(Format::Paper1, &add.answer_tokens(Format::Paper1)), Ok(112344));
    }

    #[test]
    fn decode_errors() {
        let e = decode_answer(Format::Paper2Sign, &[12, 0, 1]).unwrap_err();
        assert!(e.to_string().contains("expected a sign"), "{e}");
        let e = decode_answer(Format::Paper1, &[0, 11, 1]).unwrap_err();
        assert_eq!(e, TaskError::BadToken { position: 1, token: 11, expected: "a digit 0-9" });
        let e = decode_answer(Format::Paper2Sign, &[10, 1, 13]).unwrap_err();
        assert!(matches!(e, TaskError::BadToken { position: 2, .. }));
        assert!(decode_answer(Format::Paper1, &[1]).is_err());
        assert!(decode_answer(Format::Paper1, &[1; 22]).is_err());
    }

    #[test]
    fn twenty_digits() {
        let max = pow10(20) - 1;
        let add = q(max, max, Op::Add, 20);
        assert_eq!(add.answer(), 2 * max as i128);
        let text = add.full_text(Format::Paper1).unwrap();
        assert_eq!(text, format!("{max}+{max}=1{}8", "9".repeat(19)));
        assert_eq!(decode_answer(Format::Paper1, &add.answer_tokens(Format::Paper1)), Ok(add.answer()));
        let sub = q(0, max, Op::Sub, 20);
        assert_eq!(decode_answer(Format::Paper2Sign, &sub.answer_tokens(Format::Paper2Sign)), Ok(-(max as i128)));
        assert_eq!(add.digit_x(19), 9);
        assert_eq!(add.digit_x(20), 0);
        assert!(Question::new(pow10(20), 0, Op::Add, 20).is_err());
        assert_eq!(Question::parse_any(&add.text()), Ok(add));
    }

    #[test]
    fn new_rejects_bad_input() {
        let e = Question::new(100, 0, Op::Add, 2).unwrap_err();
        assert!(e.to_string().contains("does not fit in 2 digits"), "{e}");
        assert_eq!(Question::new(1, 1, Op::Add, 0), Err(TaskError::NDigitsOutOfRange(0)));
        let e = Question::new(1, 1, Op::Add, 25).unwrap_err();
        assert_eq!(e.to_string(), "n_digits 25 is out of range 1..=20");
    }

    #[test]
    fn parse_accepts_variants() {
        let want = q(12345, 67890, Op::Add, 5);
        for text in ["12345+67890=", "12345+67890", "  12345 + 67890 =  ", "12345+67890 ="] {
            assert_eq!(Question::parse(text, 5), Ok(want), "{text}");
        }
        assert_eq!(Question::parse("45+550=", 5), Ok(q(45, 550, Op::Add, 5)));
        assert_eq!(Question::parse("3-7", 1), Ok(q(3, 7, Op::Sub, 1)));
        assert_eq!(Question::parse_any("045+9"), Ok(q(45, 9, Op::Add, 3)));
    }

    fn parse_err(text: &str, n: usize) -> String {
        Question::parse(text, n).unwrap_err().to_string()
    }

    #[test]
    fn parse_error_messages() {
        assert_eq!(parse_err("123456+1=", 5), "operand '123456' has 6 digits but the model answers 5-digit questions");
        assert_eq!(parse_err("12*34=", 2), "unknown operator '*' in '12*34=': expected '+' or '-'");
        assert_eq!(parse_err("12a45+67890=", 5), "'12a45' is not a number: operands are decimal digits 0-9");
        assert_eq!(parse_err("1+2", 25), "n_digits 25 is out of range 1..=20");
        assert!(parse_err("12345=", 5).starts_with("missing operator"));
        assert!(parse_err("12345 67890", 5).starts_with("missing operator"));
        assert!(parse_err("+5=", 5).starts_with("missing left operand"));
        assert!(parse_err("5+=", 5).starts_with("missing right operand"));
        assert!(parse_err("   ", 5).starts_with("empty question"));
        assert!(parse_err("1+2=3", 5).contains("unexpected '3' after '='"));
        assert!(parse_err("1.5+2", 5).contains("'1.5' is not a number"));
        assert!(parse_err("1+2+3", 5).contains("'2+3' is not a number"));
        assert!(parse_err("5 − 3", 5).contains("unknown operator '−'"));
        let e = Question::parse_any(&format!("{}+1", "1".repeat(21))).unwrap_err();
        assert!(e.to_string().contains("has 21 digits but at most 20"), "{e}");
    }
}
