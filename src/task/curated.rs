//! A small, readable evaluation set: per class, a few questions built by
//! rule (cascade patterns, including the papers' examples scaled to n
//! digits), topped up with seeded uniform samples of the class.

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::task::classes::{classes_for, Class};
use crate::task::error::TaskError;
use crate::task::format::Op;
use crate::task::question::{check_n_digits, pow10, Question};
use crate::task::stratified::sample_class;

/// Questions per class in the curated set (fewer if a class is smaller).
pub const CURATED_PER_CLASS: usize = 5;

/// Fixed seed of the top-up samples, so the set never changes.
const CURATED_SEED: u64 = 0x5EED_CAFE;

/// Draws tried per class when topping up, bounding the work for tiny classes.
const MAX_DRAWS: usize = 200;

/// Curated questions of every class of `op` at `n_digits`, rule-built ones
/// first. For addition at n = 5 this includes the papers' examples
/// 00450+00550 (S2), 00555+00445 (S3), 05555+04445 (S4), 44445+55555 (S5).
pub fn curated(n_digits: usize, op: Op) -> Result<Vec<(Class, Vec<Question>)>, TaskError> {
    check_n_digits(n_digits)?;
    let mut rng = ChaCha8Rng::seed_from_u64(CURATED_SEED);
    classes_for(op, n_digits).into_iter().map(|class| Ok((class, class_examples(&mut rng, n_digits, class)?))).collect()
}

fn class_examples(rng: &mut ChaCha8Rng, n: usize, class: Class) -> Result<Vec<Question>, TaskError> {
    let mut out: Vec<Question> = Vec::new();
    for (x, y) in rule_pairs(class) {
        if let Ok(q) = Question::new(x, y, class.op(), n) {
            if q.class() == class && !out.contains(&q) {
                out.push(q);
            }
        }
    }
    for _ in 0..MAX_DRAWS {
        if out.len() >= CURATED_PER_CLASS {
            break;
        }
        let q = sample_class(rng, n, class)?;
        if !out.contains(&q) {
            out.push(q);
        }
    }
    out.truncate(CURATED_PER_CLASS);
    Ok(out)
}

/// `digit` written `count` times: rep(5, 3) = 555.
fn rep(digit: u128, count: usize) -> u128 {
    (0..count).fold(0, |v, _| v * 10 + digit)
}

/// Candidate (x, y) pairs for a class; those that do not fit n digits or
/// land in another class are dropped by the caller. Index i of S(i)/M(i)
/// is at most 21, so the patterns stay within u128 before filtering.
fn rule_pairs(class: Class) -> Vec<(u128, u128)> {
    match class {
        Class::S(i) => add_pairs(usize::from(i)),
        Class::M(i) => sub_pairs(usize::from(i)),
        Class::N(i) => {
            let level = usize::from(i.saturating_sub(1));
            sub_pairs(level).into_iter().map(|(a, b)| (b, a)).collect()
        }
    }
}

/// Addition patterns: S(d+1) is a carry in the lowest column of the
/// pattern and d sum-9 columns above it, as 5..5 + 4..45, 4..45 + 5..5,
/// and the latter shifted up one column (00450+00550).
fn add_pairs(level: usize) -> Vec<(u128, u128)> {
    match level {
        0 => vec![(rep(1, 20), rep(2, 20)), (rep(4, 20), rep(5, 20)), (0, 0)],
        1 => vec![(5, 5), (rep(9, 20), rep(9, 20)), (5, 6)],
        _ => {
            let d = level - 1;
            let (fives, four_five) = (rep(5, d + 1), rep(4, d) * 10 + 5);
            vec![(fives, four_five), (four_five, fives), (four_five * 10, fives * 10)]
        }
    }
}

/// Subtraction (x >= y) patterns: M(d+1) is a borrow made in the units
/// and passed through d equal columns to a column that absorbs it, as
/// 10..0 - 1 and 15..50 - 05..51.
fn sub_pairs(level: usize) -> Vec<(u128, u128)> {
    match level {
        0 => vec![(rep(9, 20), rep(1, 20)), (rep(5, 20), rep(5, 20)), (rep(7, 20), 0)],
        1 => vec![(10, 1), (30, 25), (rep(9, 19) * 10, 1)],
        _ => {
            let d = level - 1;
            let top = pow10(d + 1);
            vec![(top, 1), (top + rep(5, d) * 10, rep(5, d) * 10 + 1)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(set: &[(Class, Vec<Question>)], class: &str) -> Vec<String> {
        let (_, qs) = set.iter().find(|(c, _)| c.to_string() == class).unwrap();
        qs.iter().map(|q| q.text()).collect()
    }

    #[test]
    fn papers_examples_for_five_digits() {
        let set = curated(5, Op::Add).unwrap();
        assert!(texts(&set, "S2").contains(&"00450+00550=".to_string()));
        assert!(texts(&set, "S3").contains(&"00555+00445=".to_string()));
        assert!(texts(&set, "S4").contains(&"05555+04445=".to_string()));
        assert!(texts(&set, "S5").contains(&"44445+55555=".to_string()));
    }

    #[test]
    fn every_class_filled_and_correct() {
        for n in [1, 2, 3, 5, 10, 20] {
            for op in [Op::Add, Op::Sub] {
                let set = curated(n, op).unwrap();
                let classes: Vec<Class> = set.iter().map(|(c, _)| *c).collect();
                assert_eq!(classes, classes_for(op, n));
                for (class, qs) in &set {
                    assert_eq!(qs.len(), CURATED_PER_CLASS, "{class} n={n}");
                    assert!(qs.iter().all(|q| q.class() == *class && q.n_digits == n));
                }
            }
        }
        assert_eq!(curated(5, Op::Sub).unwrap(), curated(5, Op::Sub).unwrap());
        assert!(curated(0, Op::Add).is_err());
    }

    #[test]
    fn rule_examples_come_first() {
        let set = curated(4, Op::Sub).unwrap();
        assert_eq!(texts(&set, "M3")[0], "1000-0001=");
        assert_eq!(texts(&set, "N4")[0], "0001-1000=");
        assert_eq!(texts(&set, "M2")[1], "0150-0051=");
    }
}
