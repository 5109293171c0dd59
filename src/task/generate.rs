//! Training and evaluation question generators.
//!
//! All randomness comes from `ChaCha8Rng::seed_from_u64` and only from
//! `gen_range` on fixed-width integer ranges (never usize or floats), so a
//! seed gives the same questions on every machine. A probability p is a
//! draw below `round(p * 2^32)` out of `0..2^32`.

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::task::error::TaskError;
use crate::task::format::{Format, Op};
use crate::task::question::{check_n_digits, pow10, Question, MAX_DIGITS};

/// Share of the training data made harder on purpose, so that rare
/// cascades (long runs of sum-9 or equal-digit columns) are seen often.
///
/// On a share `batch_share` of batches (decided once per batch), each digit
/// position of each question is, with probability `digit_share`:
/// * addition: set so `y_k = 9 - x_k` (a sum-9 column that passes carries);
/// * subtraction: set so `y_k = x_k` (an equal-digit column that passes
///   borrows); also 1% of such questions get `y = x` (answer zero).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Enrichment {
    /// Share of batches that are enriched, in [0, 1].
    pub batch_share: f64,
    /// Per-digit probability of enrichment within an enriched batch, in [0, 1].
    pub digit_share: f64,
}

/// Share of zero-answer questions (y = x) in enriched subtraction batches.
const SUB_EQUAL_SHARE: f64 = 0.01;

impl Enrichment {
    /// No enrichment: plain uniform questions.
    pub fn none() -> Enrichment {
        Enrichment { batch_share: 0.0, digit_share: 0.0 }
    }

    /// Paper 1's setting: 20% of batches, 20% of digits.
    pub fn paper1() -> Enrichment {
        Enrichment { batch_share: 0.2, digit_share: 0.2 }
    }

    /// The follow-up paper's addition setting: 60% of batches, 40% of digits.
    pub fn followup() -> Enrichment {
        Enrichment { batch_share: 0.6, digit_share: 0.4 }
    }

    fn validate(&self) -> Result<(), TaskError> {
        check_share("batch_share", self.batch_share)?;
        check_share("digit_share", self.digit_share)
    }
}

/// Which operation each batch asks for: the follow-up's mixed training
/// picks ONE op per batch, subtraction with probability `sub_share`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpMix {
    /// Probability a batch is subtraction, in [0, 1]; 0 = addition only.
    pub sub_share: f64,
}

impl OpMix {
    /// Addition only (paper 1).
    pub fn add_only() -> OpMix {
        OpMix { sub_share: 0.0 }
    }
}

fn check_share(name: &'static str, value: f64) -> Result<(), TaskError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        let expected = "a probability in 0.0..=1.0";
        Err(TaskError::InvalidParameter { name, value: value.to_string(), expected })
    }
}

/// True with probability `p` (clamped to [0, 1]), via an integer draw.
fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    let threshold = (p.clamp(0.0, 1.0) * 4_294_967_296.0).round() as u64;
    rng.gen_range(0..1u64 << 32) < threshold
}

/// A uniform decimal digit.
fn digit(rng: &mut ChaCha8Rng) -> u8 {
    rng.gen_range(0..10u8)
}

/// Digits (units first) to a number.
fn number(digits: &[u8]) -> u128 {
    digits.iter().rev().fold(0, |v, &d| v * 10 + u128::from(d))
}

/// The seeded stream of training batches.
#[derive(Debug, Clone)]
pub struct QuestionGenerator {
    n_digits: usize,
    rng: ChaCha8Rng,
    mix: OpMix,
    add_enrichment: Enrichment,
    sub_enrichment: Enrichment,
}

impl QuestionGenerator {
    /// A generator of `n_digits` questions; errors on an invalid n_digits
    /// or a share outside [0, 1].
    pub fn new(
        n_digits: usize,
        seed: u64,
        mix: OpMix,
        add_enrichment: Enrichment,
        sub_enrichment: Enrichment,
    ) -> Result<QuestionGenerator, TaskError> {
        check_n_digits(n_digits)?;
        check_share("sub_share", mix.sub_share)?;
        add_enrichment.validate()?;
        sub_enrichment.validate()?;
        let rng = ChaCha8Rng::seed_from_u64(seed);
        Ok(QuestionGenerator { n_digits, rng, mix, add_enrichment, sub_enrichment })
    }

    /// Operand width of the questions generated.
    pub fn n_digits(&self) -> usize {
        self.n_digits
    }

    /// The next batch: one op for the whole batch, uniform digits, then
    /// enrichment if this batch is drawn to be enriched.
    pub fn next_batch(&mut self, batch: usize) -> Vec<Question> {
        let op = if chance(&mut self.rng, self.mix.sub_share) { Op::Sub } else { Op::Add };
        let enrichment = match op {
            Op::Add => self.add_enrichment,
            Op::Sub => self.sub_enrichment,
        };
        let enriched = chance(&mut self.rng, enrichment.batch_share);
        let digit_share = enriched.then_some(enrichment.digit_share);
        (0..batch).map(|_| self.question(op, digit_share)).collect()
    }

    /// The next batch, also written as tokens into `out` (resized to
    /// `batch * n_ctx`). Errors if the mix may ask for an op the format
    /// lacks (subtraction in Paper1), before drawing anything.
    pub fn fill_tokens(&mut self, format: Format, batch: usize, out: &mut Vec<u32>) -> Result<Vec<Question>, TaskError> {
        if self.mix.sub_share > 0.0 {
            format.check(Op::Sub)?;
        }
        let questions = self.next_batch(batch);
        let n_ctx = format.n_ctx(self.n_digits);
        out.clear();
        out.resize(batch * n_ctx, 0);
        for (q, slot) in questions.iter().zip(out.chunks_exact_mut(n_ctx)) {
            q.write_tokens(format, slot);
        }
        Ok(questions)
    }

    /// One question; `digit_share` is Some on enriched batches.
    fn question(&mut self, op: Op, digit_share: Option<f64>) -> Question {
        let n = self.n_digits;
        let mut x = [0u8; MAX_DIGITS];
        let mut y = [0u8; MAX_DIGITS];
        x[..n].iter_mut().for_each(|d| *d = digit(&mut self.rng));
        y[..n].iter_mut().for_each(|d| *d = digit(&mut self.rng));
        if let Some(p) = digit_share {
            self.enrich(op, p, &x[..n], &mut y[..n]);
        }
        Question { x: number(&x[..n]), y: number(&y[..n]), op, n_digits: n }
    }

    /// Rewrite digits of y to make cascade-friendly columns.
    fn enrich(&mut self, op: Op, p: f64, x: &[u8], y: &mut [u8]) {
        if op == Op::Sub && chance(&mut self.rng, SUB_EQUAL_SHARE) {
            y.copy_from_slice(x);
            return;
        }
        for (yk, &xk) in y.iter_mut().zip(x) {
            if chance(&mut self.rng, p) {
                *yk = if op == Op::Add { 9 - xk } else { xk };
            }
        }
    }
}

/// `count` plain uniform questions (no enrichment), for evaluation.
pub fn random_questions(n_digits: usize, op: Op, count: usize, seed: u64) -> Result<Vec<Question>, TaskError> {
    check_n_digits(n_digits)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let limit = pow10(n_digits);
    let mut draw = || {
        let x = rng.gen_range(0..limit);
        let y = rng.gen_range(0..limit);
        Question { x, y, op, n_digits }
    };
    Ok((0..count).map(|_| draw()).collect())
}

/// Every `n_digits` question of `op`, x-major (10^(2n) of them: keeping n
/// small is the caller's business).
pub fn all_questions(n_digits: usize, op: Op) -> Result<impl Iterator<Item = Question>, TaskError> {
    check_n_digits(n_digits)?;
    let limit = pow10(n_digits);
    Ok((0..limit).flat_map(move |x| (0..limit).map(move |y| Question { x, y, op, n_digits })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(seed: u64, mix: f64, add: Enrichment, sub: Enrichment) -> QuestionGenerator {
        QuestionGenerator::new(5, seed, OpMix { sub_share: mix }, add, sub).unwrap()
    }

    #[test]
    fn same_seed_same_batches() {
        let e = Enrichment::followup();
        let (mut a, mut b, mut c) = (generator(1, 0.5, e, e), generator(1, 0.5, e, e), generator(2, 0.5, e, e));
        for _ in 0..5 {
            let batch = a.next_batch(32);
            assert_eq!(batch, b.next_batch(32));
            assert_ne!(batch, c.next_batch(32));
        }
    }

    /// Pinned values: a change here means seeds no longer reproduce runs.
    #[test]
    fn golden_streams() {
        let texts = |qs: Vec<Question>| qs.iter().map(|q| q.text()).collect::<Vec<_>>();
        let r = random_questions(5, Op::Add, 3, 42).unwrap();
        assert_eq!(texts(r), ["95027+62736=", "80387+23858=", "90180+17913="]);
        let e = Enrichment::followup();
        let mut g = QuestionGenerator::new(5, 42, OpMix { sub_share: 0.5 }, e, e).unwrap();
        assert_eq!(texts(g.next_batch(3)), ["76347+33162=", "87681+93552=", "85795+59137="]);
    }

    #[test]
    fn known_first_questions_are_stable() {
        let qs = random_questions(5, Op::Add, 3, 42).unwrap();
        let again = random_questions(5, Op::Add, 3, 42).unwrap();
        assert_eq!(qs, again);
        assert_ne!(qs, random_questions(5, Op::Add, 3, 43).unwrap());
        assert!(qs.iter().all(|q| q.x < 100_000 && q.y < 100_000));
        assert!(random_questions(21, Op::Add, 3, 42).is_err());
    }

    /// Share of columns in `batches` batches where `pick` holds.
    fn column_share(g: &mut QuestionGenerator, batches: usize, pick: fn(u8, u8) -> bool) -> f64 {
        let (mut hits, mut total) = (0usize, 0usize);
        for _ in 0..batches {
            for q in g.next_batch(64) {
                for k in 0..q.n_digits {
                    hits += usize::from(pick(q.digit_x(k), q.digit_y(k)));
                    total += 1;
                }
            }
        }
        hits as f64 / total as f64
    }

    #[test]
    fn addition_enrichment_matches_theory() {
        for (e, seed) in [(Enrichment::followup(), 3), (Enrichment::paper1(), 4), (Enrichment::none(), 5)] {
            let mut g = generator(seed, 0.0, e, Enrichment::none());
            let share = column_share(&mut g, 3000, |a, b| a + b == 9);
            let theory = 0.1 + e.batch_share * e.digit_share * 0.9;
            assert!((share - theory).abs() < 0.01, "{e:?}: {share} vs {theory}");
        }
    }

    #[test]
    fn subtraction_enrichment_matches_theory() {
        let e = Enrichment::followup();
        let mut g = generator(6, 1.0, Enrichment::none(), e);
        let share = column_share(&mut g, 3000, |a, b| a == b);
        let per_digit = SUB_EQUAL_SHARE + (1.0 - SUB_EQUAL_SHARE) * e.digit_share;
        let theory = 0.1 + e.batch_share * per_digit * 0.9;
        assert!((share - theory).abs() < 0.01, "{share} vs {theory}");
    }

    #[test]
    fn one_op_per_batch_with_mix_share() {
        let mut g = generator(8, 0.3, Enrichment::none(), Enrichment::none());
        let mut subs = 0;
        for _ in 0..4000 {
            let batch = g.next_batch(8);
            assert!(batch.iter().all(|q| q.op == batch[0].op));
            subs += usize::from(batch[0].op == Op::Sub);
        }
        assert!((subs as f64 / 4000.0 - 0.3).abs() < 0.03, "{subs}");
    }

    #[test]
    fn fill_tokens_writes_each_question() {
        let mut g = generator(9, 0.5, Enrichment::paper1(), Enrichment::paper1());
        let mut out = vec![7; 3];
        let qs = g.fill_tokens(Format::Paper2Sign, 16, &mut out).unwrap();
        let n_ctx = Format::Paper2Sign.n_ctx(5);
        assert_eq!(out.len(), 16 * n_ctx);
        for (q, chunk) in qs.iter().zip(out.chunks(n_ctx)) {
            assert_eq!(q.tokens(Format::Paper2Sign).unwrap(), chunk);
        }
        let e = g.fill_tokens(Format::Paper1, 16, &mut out).unwrap_err();
        assert!(e.to_string().contains("paper2_sign"), "{e}");
    }

    #[test]
    fn constructor_rejects_bad_parameters() {
        let bad = Enrichment { batch_share: 1.5, digit_share: 0.2 };
        let e = QuestionGenerator::new(5, 0, OpMix::add_only(), bad, Enrichment::none()).unwrap_err();
        assert_eq!(e.to_string(), "batch_share = 1.5 is invalid: expected a probability in 0.0..=1.0");
        let nan = OpMix { sub_share: f64::NAN };
        assert!(QuestionGenerator::new(5, 0, nan, Enrichment::none(), Enrichment::none()).is_err());
        assert!(QuestionGenerator::new(0, 0, OpMix::add_only(), Enrichment::none(), Enrichment::none()).is_err());
    }

    #[test]
    fn twenty_digit_batches() {
        let mut g = QuestionGenerator::new(20, 1, OpMix { sub_share: 0.5 }, Enrichment::followup(), Enrichment::followup()).unwrap();
        let mut out = Vec::new();
        for q in g.fill_tokens(Format::Paper2Sign, 64, &mut out).unwrap() {
            assert!(q.x < pow10(20) && q.y < pow10(20));
        }
    }

    #[test]
    fn all_questions_enumerates_everything() {
        let all: Vec<Question> = all_questions(2, Op::Sub).unwrap().collect();
        assert_eq!(all.len(), 10_000);
        assert_eq!(all[0], Question::new(0, 0, Op::Sub, 2).unwrap());
        assert_eq!(all[9_999], Question::new(99, 99, Op::Sub, 2).unwrap());
        assert!(all_questions(0, Op::Add).is_err());
    }
}
