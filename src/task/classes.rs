//! Complexity classes of questions: how long a carry or borrow cascade
//! the model must compute (S for addition, M/N for subtraction).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::task::error::TaskError;
use crate::task::format::Op;
use crate::task::question::{Question, MAX_DIGITS};

/// A question's complexity class.
///
/// * `S(0)` no carry; `S(1)` carries, none cascading; `S(d+1)` a carry
///   passes through `d` consecutive sum-9 columns.
/// * `M(k)` subtraction with x >= y, defined like S with borrows and
///   equal-digit columns.
/// * `N(k+1)` subtraction with x < y whose (y, x) structure is `M(k)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Addition class.
    S(u8),
    /// Non-negative subtraction class.
    M(u8),
    /// Negative subtraction class (index >= 1).
    N(u8),
}

/// The S/M index implied by "any carry" and the cascade depth.
fn level(any: bool, depth: usize) -> u8 {
    match (any, depth) {
        (false, _) => 0,
        (true, d) => d as u8 + 1,
    }
}

impl Class {
    /// The operation the class belongs to.
    pub fn op(self) -> Op {
        match self {
            Class::S(_) => Op::Add,
            Class::M(_) | Class::N(_) => Op::Sub,
        }
    }

    /// The number after the letter.
    pub fn index(self) -> u8 {
        match self {
            Class::S(i) | Class::M(i) | Class::N(i) => i,
        }
    }

    /// Parse "S0", "M2", "N1" (case-insensitive letter, spaces trimmed).
    pub fn parse(text: &str) -> Result<Class, TaskError> {
        let t = text.trim();
        let bad = || TaskError::UnknownClass(t.to_string());
        let mut chars = t.chars();
        let letter = chars.next().ok_or_else(bad)?.to_ascii_uppercase();
        let digits = chars.as_str();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let index: u8 = digits.parse().map_err(|_| bad())?;
        match letter {
            'S' => Ok(Class::S(index)),
            'M' => Ok(Class::M(index)),
            'N' if index >= 1 => Ok(Class::N(index)),
            _ => Err(bad()),
        }
    }

    /// The class of a question (by its op).
    pub fn of(q: &Question) -> Class {
        match q.op {
            Op::Add => {
                let l = q.add_labels();
                Class::S(level(l.any_carry(), l.cascade_depth))
            }
            Op::Sub => {
                let l = q.sub_labels();
                let k = level(l.any_borrow(), l.cascade_depth);
                if l.negative {
                    Class::N(k + 1)
                } else {
                    Class::M(k)
                }
            }
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letter = match self {
            Class::S(_) => 'S',
            Class::M(_) => 'M',
            Class::N(_) => 'N',
        };
        write!(f, "{letter}{}", self.index())
    }
}

impl FromStr for Class {
    type Err = TaskError;
    fn from_str(s: &str) -> Result<Class, TaskError> {
        Class::parse(s)
    }
}

impl Serialize for Class {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Class {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Class, D::Error> {
        let text = String::deserialize(d)?;
        Class::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Question {
    /// This question's complexity class; see [`Class`].
    pub fn class(&self) -> Class {
        Class::of(self)
    }
}

/// Every class with at least one `n_digits` question of `op`, in order;
/// empty when `n_digits` is out of range.
///
/// Addition: S0..=S(n) (a cascade needs a carry-making column below it, so
/// depth <= n-1). Subtraction: M0..=M(n-1) (with x >= y the top column
/// must absorb the borrow, so depth <= n-2 and n = 1 has no borrow) and
/// N1..=N(n). Checked against brute force and the sampler's counts.
pub fn classes_for(op: Op, n_digits: usize) -> Vec<Class> {
    if !(1..=MAX_DIGITS).contains(&n_digits) {
        return Vec::new();
    }
    let n = n_digits as u8;
    match op {
        Op::Add => (0..=n).map(Class::S).collect(),
        Op::Sub => (0..n).map(Class::M).chain((1..=n).map(Class::N)).collect(),
    }
}

/// Class names joined for messages: "S0, S1, S2".
pub(crate) fn class_list(op: Op, n_digits: usize) -> String {
    let names: Vec<String> = classes_for(op, n_digits).iter().map(|c| c.to_string()).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::question::pow10;
    use std::collections::BTreeSet;

    #[test]
    fn classes_for_matches_brute_force() {
        for n in 1..=3 {
            for op in [Op::Add, Op::Sub] {
                let mut seen = BTreeSet::new();
                for x in 0..pow10(n) {
                    for y in 0..pow10(n) {
                        seen.insert(Question::new(x, y, op, n).unwrap().class());
                    }
                }
                let seen: Vec<Class> = seen.into_iter().collect();
                assert_eq!(seen, classes_for(op, n), "{op:?} n={n}");
            }
        }
        assert!(classes_for(Op::Add, 0).is_empty());
    }

    #[test]
    fn paper_examples() {
        for (text, class) in [
            ("00450+00550", "S2"),
            ("00555+00445", "S3"),
            ("05555+04445", "S4"),
            ("44445+55555", "S5"),
            ("12345+11111", "S0"),
            ("10000-00001", "M4"),
            ("00001-10000", "N5"),
            ("00005-00007", "N1"),
        ] {
            let q = Question::parse(text, 5).unwrap();
            assert_eq!(q.class().to_string(), class, "{text}");
        }
    }

    #[test]
    fn parse_display_serde() {
        for c in [Class::S(0), Class::M(2), Class::N(1), Class::S(20)] {
            assert_eq!(Class::parse(&c.to_string()), Ok(c));
            let js = serde_json::to_string(&c).unwrap();
            assert_eq!(js, format!("\"{c}\""));
            assert_eq!(serde_json::from_str::<Class>(&js).unwrap(), c);
        }
        assert_eq!(Class::parse(" s3 "), Ok(Class::S(3)));
        for bad in ["", "S", "X2", "N0", "S-1", "S999", "S1a"] {
            let e = Class::parse(bad).unwrap_err();
            assert!(e.to_string().contains("expected S<k>, M<k> or N<k>"), "{bad}");
        }
        assert!(serde_json::from_str::<Class>("\"Q1\"").is_err());
    }
}
