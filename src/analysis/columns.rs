//! Per-column sub-task values in one vocabulary for both operations, and the answer they imply.
//! Addition: base BA_k = (D_k + D'_k) mod 10, make-carry MC_k (sum >= 10), make-sum-9 MS_k
//! (sum = 9). Subtraction (of the larger minus the smaller operand, so the digits are those of
//! |x - y|): base difference MD_k, make-borrow MB_k, make-zero MZ_k (equal digits); they play
//! the same roles (generate / propagate a carry or borrow) and share the code.

use crate::task::{Op, Question};

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
                    carry = self.make[j] || (self.pass[j] && carry);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{all_questions, Format};

    #[test]
    fn exact_carries_give_the_true_answer() {
        for op in [Op::Add, Op::Sub] {
            for q in all_questions(2, op).unwrap() {
                let c = Columns::of(&q);
                let f = if op == Op::Add { Format::Paper1 } else { Format::Paper2 };
                assert_eq!(Columns::tokens(&c.digits(&c.carries()), &q, f), q.answer_tokens(f), "{q:?}");
            }
        }
    }
}
