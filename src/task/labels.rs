//! Per-column labels of the papers' algorithm (BA/MC/MS for addition,
//! MD/MB/MZ for subtraction), used as probing targets and to classify.

use serde::{Deserialize, Serialize};

use crate::task::question::Question;

/// How one addition column's digit sum relates to 10 (paper's ST8/ST9/ST10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TriCase {
    /// Sum <= 8: never carries, even with a carry in (ST8).
    Below9,
    /// Sum == 9: carries exactly when a carry comes in (ST9).
    Sum9,
    /// Sum >= 10: always carries (ST10).
    Carry,
}

/// Classify the digit sum `a + b` of one column.
pub fn tricase(a: u8, b: u8) -> TriCase {
    match u16::from(a) + u16::from(b) {
        0..=8 => TriCase::Below9,
        9 => TriCase::Sum9,
        _ => TriCase::Carry,
    }
}

/// Addition labels per column k (0 = units), each of length n_digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddLabels {
    /// Base add: (x_k + y_k) mod 10.
    pub ba: Vec<u8>,
    /// Make carry: x_k + y_k >= 10.
    pub mc: Vec<bool>,
    /// Make sum 9: x_k + y_k == 9.
    pub ms: Vec<bool>,
    /// True carry into column k (false for k = 0).
    pub carry_in: Vec<bool>,
    /// Use carry 1: MC of column k-1 (false for k = 0).
    pub uc: Vec<bool>,
    /// Use sum 9: MS of column k-1 with a carry into k-1 (false for k = 0).
    pub us: Vec<bool>,
    /// Longest run of consecutive sum-9 columns that a carry passes through.
    pub cascade_depth: usize,
}

/// Subtraction labels per column k of (a, b) = the larger and the smaller
/// operand, so the digit pattern is that of |x - y|.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubLabels {
    /// x < y: the answer is negative and (a, b) = (y, x).
    pub negative: bool,
    /// Base difference: (a_k - b_k) mod 10.
    pub md: Vec<u8>,
    /// Make borrow: a_k < b_k.
    pub mb: Vec<bool>,
    /// Make zero: a_k == b_k (passes an incoming borrow on).
    pub mz: Vec<bool>,
    /// True borrow into column k (false for k = 0).
    pub borrow_in: Vec<bool>,
    /// Longest run of consecutive equal-digit columns a borrow passes through.
    pub cascade_depth: usize,
}

/// The carry (borrow) out of a column: it makes one, or passes on the one that comes in. The
/// one recurrence every carry chain in arithlens follows.
pub fn carry_out(make: bool, pass: bool, carry_in: bool) -> bool {
    make || (pass && carry_in)
}

/// Carries into each column, and the longest run of propagating columns
/// a carry passes through, from per-column "generate" and "propagate".
pub(crate) fn carry_chain(generate: &[bool], propagate: &[bool]) -> (Vec<bool>, usize) {
    let mut carry_in = Vec::with_capacity(generate.len());
    let (mut carry, mut run, mut depth) = (false, 0, 0);
    for (&g, &p) in generate.iter().zip(propagate) {
        carry_in.push(carry);
        run = if carry && p { run + 1 } else { 0 };
        depth = depth.max(run);
        carry = carry_out(g, p, carry);
    }
    (carry_in, depth)
}

impl AddLabels {
    /// Labels of `x + y` (for any question, whatever its op).
    pub fn of(q: &Question) -> AddLabels {
        let sums: Vec<u8> = (0..q.n_digits).map(|k| q.digit_x(k) + q.digit_y(k)).collect();
        let mc: Vec<bool> = sums.iter().map(|&s| s >= 10).collect();
        let ms: Vec<bool> = sums.iter().map(|&s| s == 9).collect();
        let (carry_in, cascade_depth) = carry_chain(&mc, &ms);
        let uc = (0..q.n_digits).map(|k| k > 0 && mc[k - 1]).collect();
        let us = (0..q.n_digits).map(|k| k > 0 && ms[k - 1] && carry_in[k - 1]).collect();
        let ba = sums.iter().map(|&s| s % 10).collect();
        AddLabels { ba, mc, ms, carry_in, uc, us, cascade_depth }
    }

    /// Whether any column makes a carry.
    pub fn any_carry(&self) -> bool {
        self.mc.iter().any(|&c| c)
    }
}

impl SubLabels {
    /// Labels of `|x - y|` (for any question, whatever its op).
    pub fn of(q: &Question) -> SubLabels {
        let negative = q.x < q.y;
        let pair = |k: usize| {
            let (x, y) = (q.digit_x(k), q.digit_y(k));
            if negative {
                (y, x)
            } else {
                (x, y)
            }
        };
        let pairs: Vec<(u8, u8)> = (0..q.n_digits).map(pair).collect();
        let mb: Vec<bool> = pairs.iter().map(|&(a, b)| a < b).collect();
        let mz: Vec<bool> = pairs.iter().map(|&(a, b)| a == b).collect();
        let (borrow_in, cascade_depth) = carry_chain(&mb, &mz);
        let md = pairs.iter().map(|&(a, b)| (a + 10 - b) % 10).collect();
        SubLabels { negative, md, mb, mz, borrow_in, cascade_depth }
    }

    /// Whether any column makes a borrow.
    pub fn any_borrow(&self) -> bool {
        self.mb.iter().any(|&b| b)
    }
}

impl Question {
    /// Addition labels of this question's operands; see [`AddLabels`].
    pub fn add_labels(&self) -> AddLabels {
        AddLabels::of(self)
    }

    /// Subtraction labels of this question's operands; see [`SubLabels`].
    pub fn sub_labels(&self) -> SubLabels {
        SubLabels::of(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::format::Op;
    use crate::task::question::pow10;

    /// Longest run of passing columns, from independently computed carries.
    fn run_depth(carry_in: &[bool], prop: impl Fn(usize) -> bool) -> usize {
        let (mut run, mut best) = (0, 0);
        for (k, &c) in carry_in.iter().enumerate() {
            run = if c && prop(k) { run + 1 } else { 0 };
            best = best.max(run);
        }
        best
    }

    fn check_add(q: &Question) {
        let l = q.add_labels();
        let n = q.n_digits;
        let sum = q.x + q.y;
        let carries: Vec<bool> = (0..n).map(|k| q.x % pow10(k) + q.y % pow10(k) >= pow10(k)).collect();
        assert_eq!(l.carry_in, carries, "{q:?}");
        for k in 0..n {
            let answer_digit = ((sum / pow10(k)) % 10) as u8;
            assert_eq!((l.ba[k] + l.carry_in[k] as u8) % 10, answer_digit);
            assert_eq!(l.uc[k], k > 0 && q.digit_x(k - 1) + q.digit_y(k - 1) >= 10);
        }
        assert_eq!(sum >= pow10(n), l.mc[n - 1] || (l.ms[n - 1] && l.carry_in[n - 1]));
        let ms = |k: usize| q.digit_x(k) + q.digit_y(k) == 9;
        assert_eq!(l.cascade_depth, run_depth(&carries, ms));
    }

    fn check_sub(q: &Question) {
        let l = q.sub_labels();
        let (a, b) = if q.x >= q.y { (q.x, q.y) } else { (q.y, q.x) };
        let n = q.n_digits;
        let borrows: Vec<bool> = (0..n).map(|k| a % pow10(k) < b % pow10(k)).collect();
        assert_eq!(l.borrow_in, borrows, "{q:?}");
        assert_eq!(l.negative, q.answer() < 0);
        for k in 0..n {
            let digit = (((a - b) / pow10(k)) % 10) as u8;
            assert_eq!((l.md[k] + 10 - l.borrow_in[k] as u8) % 10, digit);
        }
        let eq = |k: usize| (a / pow10(k)) % 10 == (b / pow10(k)) % 10;
        assert_eq!(l.cascade_depth, run_depth(&borrows, eq));
    }

    #[test]
    fn labels_match_school_arithmetic_exhaustively() {
        for n in 1..=3 {
            for x in 0..pow10(n) {
                for y in 0..pow10(n) {
                    check_add(&Question::new(x, y, Op::Add, n).unwrap());
                    check_sub(&Question::new(x, y, Op::Sub, n).unwrap());
                }
            }
        }
    }

    #[test]
    fn paper_examples() {
        let l = Question::parse("00555+00445=", 5).unwrap().add_labels();
        assert_eq!(l.cascade_depth, 2);
        assert_eq!(l.us, vec![false, false, true, true, false]);
        assert_eq!(l.uc, vec![false, true, false, false, false]);
        assert_eq!(tricase(4, 4), TriCase::Below9);
        assert_eq!(tricase(4, 5), TriCase::Sum9);
        assert_eq!(tricase(9, 9), TriCase::Carry);
        let s = Question::parse("100-1", 3).unwrap().sub_labels();
        assert_eq!(s.cascade_depth, 1);
        assert_eq!(s.borrow_in, vec![false, true, true]);
    }
}
