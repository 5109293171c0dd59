//! Per-column sub-task values in one vocabulary for both operations, and the answer they imply.
//! Addition: base BA_k = (D_k + D'_k) mod 10, make-carry MC_k (sum >= 10), make-sum-9 MS_k
//! (sum = 9). Subtraction (of the larger minus the smaller operand, so the digits are those of
//! |x - y|): base difference MD_k, make-borrow MB_k, make-zero MZ_k (equal digits); they play
//! the same roles (generate / propagate a carry or borrow) and share the code.

use crate::task::labels::carry_out;
use crate::task::{Op, Question};
use rand::Rng;

/// Base, generate and propagate per column (k = 0 is the units column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns {
    /// The operation (addition adds the carry, subtraction subtracts the borrow).
    pub op: Op,
    /// BA_k (addition) or MD_k (subtraction).
    pub base: Vec<u8>,
    /// MC_k or MB_k.
    pub make: Vec<bool>,
    /// MS_k or MZ_k.
    pub pass: Vec<bool>,
}

impl Columns {
    /// The columns of `q` by its operation.
    pub fn of(q: &Question) -> Columns {
        match q.op {
            Op::Add => {
                let l = q.add_labels();
                Columns { op: q.op, base: l.ba, make: l.mc, pass: l.ms }
            }
            Op::Sub => {
                let l = q.sub_labels();
                Columns { op: q.op, base: l.md, make: l.mb, pass: l.mz }
            }
        }
    }

    /// Number of columns.
    pub fn n(&self) -> usize {
        self.base.len()
    }

    /// Exact carry (borrow) into each column 0..=n.
    pub fn carries(&self) -> Vec<bool> {
        self.carries_lookahead(usize::MAX)
    }

    /// Carry into each column 0..=n computed from at most `depth` columns below it, columns
    /// further down taken as carrying nothing: depth 1 is MC_{k-1}, depth 2 is
    /// MC_{k-1} or (MS_{k-1} and MC_{k-2}) (the paper's one-layer lookahead), and depth >= n
    /// is exact.
    pub fn carries_lookahead(&self, depth: usize) -> Vec<bool> {
        (0..=self.n())
            .map(|k| {
                let mut carry = false;
                let lo = k.saturating_sub(depth);
                for j in lo..k {
                    carry = carry_out(self.make[j], self.pass[j], carry);
                }
                carry
            })
            .collect()
    }

    /// Carry into each column 0..=n, column k looking `depths[k]` columns down.
    pub fn carries_with_depths(&self, depths: &[usize]) -> Vec<bool> {
        (0..=self.n()).map(|k| self.carries_lookahead(depths[k])[k]).collect()
    }

    /// Answer digits A_0..A_n given the carry (borrow) into each column 0..=n.
    pub fn digits(&self, carries: &[bool]) -> Vec<u8> {
        let mut d: Vec<u8> = (0..self.n())
            .map(|k| match self.op {
                Op::Add => (self.base[k] + carries[k] as u8) % 10,
                Op::Sub => (self.base[k] + 10 - carries[k] as u8) % 10,
            })
            .collect();
        d.push(match self.op {
            Op::Add => carries[self.n()] as u8,
            Op::Sub => 0,
        });
        d
    }

    /// Each column's state: its TriCase (0 neither: sum <= 8; 1 passes a carry on, MS/MZ: sum
    /// = 9; makes one, MC/MB) with the make case split into 2, clear (sum >= 11, difference <=
    /// -2), and 3, just (sum exactly 10, difference exactly -1), where a model's carry signal is
    /// weakest. The exact carry into column k is a function of the states below it.
    pub fn states(&self) -> Vec<u8> {
        let just = match self.op {
            Op::Add => 0,
            Op::Sub => 9,
        };
        (0..self.n()).map(|k| if self.make[k] { 2 + (self.base[k] == just) as u8 } else { self.pass[k] as u8 }).collect()
    }

    /// The carry (borrow) into each column 0..=n that answer digits A_0..A_n imply: digit k is
    /// the base digit or one more (one less for a borrow); `None` where it is neither, and for
    /// a difference's top digit, which carries nothing.
    pub fn implied_carries(&self, digits: &[u8]) -> Vec<Option<bool>> {
        (0..=self.n())
            .map(|k| {
                let d = *digits.get(k)?;
                let step = match (self.op, self.base.get(k)) {
                    (Op::Add, Some(&b)) => (d + 10 - b) % 10,
                    (Op::Sub, Some(&b)) => (b + 10 - d) % 10,
                    (Op::Add, None) => d,
                    (Op::Sub, None) => return None,
                };
                (step <= 1).then_some(step == 1)
            })
            .collect()
    }

    /// Answer digits A_0..A_n (units first) from answer tokens (top digit first, after any sign
    /// token); a token that is not a digit becomes 10.
    pub fn answer_digits(tokens: &[u32], n_digits: usize) -> Vec<u8> {
        tokens[tokens.len() - (n_digits + 1)..].iter().rev().map(|&t| t.min(10) as u8).collect()
    }

    /// Answer tokens (in `model`'s layout) for digits A_0..A_n and the sign of `q`.
    pub fn tokens(digits: &[u8], q: &Question, format: crate::task::Format) -> Vec<u32> {
        let mut t: Vec<u32> = digits.iter().rev().map(|&d| d as u32).collect();
        if format.n_answer(q.n_digits) > q.n_digits + 1 {
            let neg = q.op == Op::Sub && q.x < q.y;
            t.insert(0, if neg { format.minus_token().unwrap_or(format.plus_token()) } else { format.plus_token() });
        }
        t
    }
}

/// The column values every sub-task above is a function of: the column sums D_k + D'_k for
/// addition, the differences D_k - D'_k for subtraction (units column first).
pub fn column_values(q: &Question) -> Vec<i8> {
    (0..q.n_digits)
        .map(|k| {
            let (a, b) = (q.digit_x(k) as i8, q.digit_y(k) as i8);
            match q.op {
                Op::Add => a + b,
                Op::Sub => a - b,
            }
        })
        .collect()
}

/// A uniformly random question with the same operation and [`column_values`] as `q`: every
/// BA/MC/MS (MD/MB/MZ, sign) value is the same, only the digits that produce them differ.
pub fn same_columns(q: &Question, rng: &mut impl Rng) -> Question {
    let (mut x, mut y) = (0u128, 0u128);
    for (k, v) in column_values(q).into_iter().enumerate().rev() {
        // The first digit a ranges over 0..=9 with the second, a - v or v - a, in 0..=9 too.
        let (a, b) = match q.op {
            Op::Add => {
                let a = rng.gen_range((v - 9).max(0)..=v.min(9));
                (a, v - a)
            }
            Op::Sub => {
                let a = rng.gen_range(v.max(0)..=(9 + v).min(9));
                (a, a - v)
            }
        };
        debug_assert!((0..=9).contains(&a) && (0..=9).contains(&b), "column {k} value {v}");
        x = x * 10 + a as u128;
        y = y * 10 + b as u128;
    }
    Question::new(x, y, q.op, q.n_digits).expect("digits of the same width")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{all_questions, random_questions, Format};
    use rand::SeedableRng;

    #[test]
    fn same_columns_keeps_every_column_value_and_varies_the_digits() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for op in [Op::Add, Op::Sub] {
            for q in random_questions(5, op, 200, 2).unwrap() {
                let mut seen = std::collections::HashSet::new();
                for _ in 0..400 {
                    let s = same_columns(&q, &mut rng);
                    assert_eq!(column_values(&s), column_values(&q), "{q:?} -> {s:?}");
                    assert_eq!(Columns::of(&s), Columns::of(&q));
                    assert_eq!(s.answer(), q.answer(), "same column values, same answer");
                    seen.insert((s.x, s.y));
                }
                // Each column has min(v, 18 - v) + 1 (addition) or 10 - |v| (subtraction) digit pairs.
                let choices: usize = column_values(&q)
                    .iter()
                    .map(|&v| if op == Op::Add { v.min(18 - v) as usize + 1 } else { 10 - v.unsigned_abs() as usize })
                    .product();
                assert!(
                    if choices <= 30 { seen.len() == choices } else { seen.len() >= 30 },
                    "{q:?}: {} distinct of {choices}",
                    seen.len()
                );
            }
        }
    }

    #[test]
    fn the_true_answer_implies_the_exact_carries() {
        for (op, f) in [(Op::Add, Format::Paper1), (Op::Sub, Format::Paper2Sign)] {
            for q in all_questions(2, op).unwrap() {
                let c = Columns::of(&q);
                let implied = c.implied_carries(&Columns::answer_digits(&q.answer_tokens(f), 2));
                let exact = c.carries();
                for k in 0..=2 {
                    let top_of_difference = op == Op::Sub && k == 2;
                    assert_eq!(implied[k], (!top_of_difference).then_some(exact[k]), "{q:?} column {k}");
                }
                let s = c.states();
                assert_eq!(exact[1], s[0] >= 2, "{q:?}");
                assert_eq!(exact[2], s[1] >= 2 || (s[1] == 1 && s[0] >= 2), "{q:?}");
                // (A negative difference's columns are those of y - x.)
                let v = column_values(&q)[0] * if op == Op::Sub && q.x < q.y { -1 } else { 1 };
                assert_eq!(s[0] == 3, v == 10 || (op == Op::Sub && v == -1), "{q:?}");
            }
        }
    }

    #[test]
    fn exact_carries_give_the_true_answer() {
        for op in [Op::Add, Op::Sub] {
            for q in all_questions(2, op).unwrap() {
                let c = Columns::of(&q);
                let f = if op == Op::Add { Format::Paper1 } else { Format::Paper2Sign };
                assert_eq!(Columns::tokens(&c.digits(&c.carries()), &q, f), q.answer_tokens(f), "{q:?}");
            }
        }
    }
}
