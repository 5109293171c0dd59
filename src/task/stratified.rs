//! Exact uniform sampling of questions within one complexity class.
//!
//! Every column is one of three kinds, identical in structure for both
//! operations: *kill* (addition: sum <= 8; subtraction: a > b), *propagate*
//! (sum == 9; a == b) and *generate* (sum >= 10; a < b), with 45, 10 and
//! 45 digit pairs. Here (a, b) is (larger, smaller) operand for
//! subtraction. A dynamic program over the columns, with state (carry in,
//! current run of passing columns, whether the class's exact depth was
//! reached, any carry so far, operands differ so far), counts the ways to
//! complete a question from each column upward; sampling then walks from
//! the units up, picking each column's kind with probability proportional
//! to its completions, and a digit pair uniformly within the kind.
//!
//! Counts use the pair counts divided by 5 (9, 2, 9): every question has
//! exactly n columns, so this scales every path by 5^n and keeps
//! proportions exact, while the largest total, 20^20, fits in u128. So
//! sampling is exactly uniform for every n up to MAX_DIGITS.

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::task::classes::{class_list, classes_for, Class};
use crate::task::error::TaskError;
use crate::task::format::Op;
use crate::task::question::{check_n_digits, Question};

/// The three column kinds, in the fixed order sampling scans them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Kill,
    Propagate,
    Generate,
}

const KINDS: [Kind; 3] = [Kind::Kill, Kind::Propagate, Kind::Generate];

impl Kind {
    /// Digit pairs of this kind divided by 5.
    fn weight(self) -> u128 {
        match self {
            Kind::Propagate => 2,
            Kind::Kill | Kind::Generate => 9,
        }
    }

    /// Whether the pair (a, b) is of this kind for `op`.
    fn holds(self, op: Op, a: u8, b: u8) -> bool {
        let kind = match op {
            Op::Add if a + b == 9 => Kind::Propagate,
            Op::Add if a + b >= 10 => Kind::Generate,
            Op::Sub if a == b => Kind::Propagate,
            Op::Sub if a < b => Kind::Generate,
            _ => Kind::Kill,
        };
        kind == self
    }

    /// The digit pairs (a, b) of this kind, in a fixed order.
    fn pairs(self, op: Op) -> Vec<(u8, u8)> {
        (0..100u8).map(|i| (i / 10, i % 10)).filter(|&(a, b)| self.holds(op, a, b)).collect()
    }
}

/// What a finished column sequence must satisfy to be in the class.
#[derive(Debug, Clone, Copy)]
struct Target {
    any: bool,
    depth: usize,
    no_final_carry: bool,
    differs: bool,
}

impl Target {
    /// The target of a class; None for N0, which names no questions.
    fn of(class: Class) -> Option<Target> {
        let (level, no_final_carry, differs) = match class {
            Class::S(i) => (i, false, false),
            Class::M(i) => (i, true, false),
            Class::N(0) => return None,
            Class::N(i) => (i - 1, true, true),
        };
        let depth = usize::from(level.max(1) - 1);
        Some(Target { any: level > 0, depth, no_final_carry, differs })
    }
}

/// DP state entering a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    carry: bool,
    run: usize,
    reached: bool,
    any: bool,
    differs: bool,
}

impl State {
    fn start(t: &Target) -> State {
        State { carry: false, run: 0, reached: t.depth == 0, any: false, differs: false }
    }

    /// The state after one column of `kind`, None if it leaves the class.
    fn step(self, kind: Kind, t: &Target) -> Option<State> {
        match kind {
            Kind::Kill => Some(State { carry: false, run: 0, differs: true, ..self }),
            Kind::Generate if !t.any => None,
            Kind::Generate => Some(State { carry: true, run: 0, any: true, differs: true, ..self }),
            Kind::Propagate => {
                let run = if self.carry { self.run + 1 } else { 0 };
                let reached = self.reached || run == t.depth;
                (run <= t.depth).then_some(State { run, reached, ..self })
            }
        }
    }

    fn accepts(self, t: &Target) -> bool {
        self.any == t.any && self.reached && !(t.no_final_carry && self.carry) && (self.differs || !t.differs)
    }

    fn index(self, t: &Target) -> usize {
        let flags = usize::from(self.reached) | usize::from(self.any) << 1 | usize::from(self.differs) << 2;
        ((usize::from(self.carry) * (t.depth + 1)) + self.run) * 8 + flags
    }

    fn count(t: &Target) -> usize {
        2 * (t.depth + 1) * 8
    }
}

/// Completion counts: `ways[k][s]` = weighted ways to fill columns k..n
/// from state s into the class.
struct Dp {
    op: Op,
    target: Target,
    ways: Vec<Vec<u128>>,
}

impl Dp {
    fn new(op: Op, n_digits: usize, target: Target) -> Dp {
        let states = all_states(&target);
        let mut ways = vec![vec![0u128; State::count(&target)]; n_digits + 1];
        for s in &states {
            ways[n_digits][s.index(&target)] = u128::from(s.accepts(&target));
        }
        for k in (0..n_digits).rev() {
            for s in &states {
                let w: u128 =
                    KINDS.iter().filter_map(|&kind| Some(kind.weight() * ways[k + 1][s.step(kind, &target)?.index(&target)])).sum();
                ways[k][s.index(&target)] = w;
            }
        }
        Dp { op, target, ways }
    }

    fn for_class(n_digits: usize, class: Class) -> Result<Dp, TaskError> {
        check_n_digits(n_digits)?;
        let dp = Target::of(class).map(|t| Dp::new(class.op(), n_digits, t));
        match dp {
            Some(dp) if dp.total() > 0 => Ok(dp),
            _ => Err(TaskError::EmptyClass { class: class.to_string(), n_digits, classes: class_list(class.op(), n_digits) }),
        }
    }

    /// Weighted number of questions in the class (true count / 5^n).
    fn total(&self) -> u128 {
        self.ways[0][State::start(&self.target).index(&self.target)]
    }

    /// One (larger-or-x, smaller-or-y) operand pair, uniformly.
    fn sample(&self, rng: &mut ChaCha8Rng) -> (u128, u128) {
        let t = &self.target;
        let (mut state, mut a, mut b, mut place) = (State::start(t), 0u128, 0u128, 1u128);
        for k in 0..self.ways.len() - 1 {
            let (kind, next) = self.pick_kind(rng, k, state);
            let pairs = kind.pairs(self.op);
            let (da, db) = pairs[rng.gen_range(0..pairs.len() as u32) as usize];
            a += u128::from(da) * place;
            b += u128::from(db) * place;
            place *= 10;
            state = next;
        }
        (a, b)
    }

    /// Choose column k's kind with probability proportional to completions.
    fn pick_kind(&self, rng: &mut ChaCha8Rng, k: usize, state: State) -> (Kind, State) {
        let t = &self.target;
        let mut r = rng.gen_range(0..self.ways[k][state.index(t)]);
        let mut last = None;
        for kind in KINDS {
            let Some(next) = state.step(kind, t) else {
                continue;
            };
            let w = kind.weight() * self.ways[k + 1][next.index(t)];
            if w == 0 {
                continue;
            }
            last = Some((kind, next));
            if r < w {
                break;
            }
            r -= w;
        }
        // Invariant, not input: r < ways[k][state], the sum of these weights.
        last.expect("a state with completions has a kind with completions")
    }
}

/// Every state a target can be in (some unreachable; harmless).
fn all_states(t: &Target) -> Vec<State> {
    let mut states = Vec::with_capacity(State::count(t));
    for carry in [false, true] {
        for run in 0..=t.depth {
            for flags in 0..8u8 {
                let [reached, any, differs] = [flags & 1 != 0, flags & 2 != 0, flags & 4 != 0];
                states.push(State { carry, run, reached, any, differs });
            }
        }
    }
    states
}

/// Number of `n_digits` questions in `class`. Errors when the number does
/// not fit in u128 (only some classes at n_digits = 20) or n is invalid.
pub fn class_count(n_digits: usize, class: Class) -> Result<u128, TaskError> {
    check_n_digits(n_digits)?;
    let total = match Target::of(class) {
        Some(t) => Dp::new(class.op(), n_digits, t).total(),
        None => 0,
    };
    5u128
        .checked_pow(n_digits as u32)
        .and_then(|scale| scale.checked_mul(total))
        .ok_or(TaskError::CountOverflow { class: class.to_string(), n_digits })
}

/// Draw one question uniformly among all `n_digits` questions of `class`
/// (op taken from the class). Errors if the class is empty for n_digits.
pub fn sample_class(rng: &mut ChaCha8Rng, n_digits: usize, class: Class) -> Result<Question, TaskError> {
    let dp = Dp::for_class(n_digits, class)?;
    Ok(question_from(&dp, rng, n_digits, class))
}

fn question_from(dp: &Dp, rng: &mut ChaCha8Rng, n_digits: usize, class: Class) -> Question {
    let (a, b) = dp.sample(rng);
    let (x, y) = if matches!(class, Class::N(_)) { (b, a) } else { (a, b) };
    Question { x, y, op: class.op(), n_digits }
}

/// `per_class` uniform questions of every class of `op` at `n_digits`,
/// in class order, from one seeded stream.
pub fn stratified_set(n_digits: usize, op: Op, per_class: usize, seed: u64) -> Result<Vec<(Class, Vec<Question>)>, TaskError> {
    check_n_digits(n_digits)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for class in classes_for(op, n_digits) {
        let dp = Dp::for_class(n_digits, class)?;
        let qs = (0..per_class).map(|_| question_from(&dp, &mut rng, n_digits, class)).collect();
        out.push((class, qs));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::question::pow10;
    use std::collections::HashMap;

    fn brute_counts(op: Op, n: usize) -> HashMap<Class, u128> {
        let mut counts = HashMap::new();
        for x in 0..pow10(n) {
            for y in 0..pow10(n) {
                *counts.entry(Question::new(x, y, op, n).unwrap().class()).or_insert(0) += 1;
            }
        }
        counts
    }

    #[test]
    fn kinds_have_45_10_45_pairs() {
        for op in [Op::Add, Op::Sub] {
            let sizes: Vec<usize> = KINDS.iter().map(|k| k.pairs(op).len()).collect();
            assert_eq!(sizes, vec![45, 10, 45]);
        }
    }

    #[test]
    fn counts_match_brute_force() {
        for n in 1..=3 {
            for op in [Op::Add, Op::Sub] {
                let brute = brute_counts(op, n);
                for i in 0..=(n as u8 + 2) {
                    for class in [Class::S(i), Class::M(i), Class::N(i)] {
                        if class.op() != op {
                            continue;
                        }
                        let want = brute.get(&class).copied().unwrap_or(0);
                        assert_eq!(class_count(n, class), Ok(want), "{class} n={n}");
                    }
                }
            }
        }
    }

    #[test]
    fn classes_for_matches_dp_up_to_20() {
        for n in 1..=20 {
            for op in [Op::Add, Op::Sub] {
                let mut nonempty = Vec::new();
                for i in 0..=(n as u8 + 3) {
                    for class in [Class::S(i), Class::M(i), Class::N(i)] {
                        if class.op() == op && Dp::for_class(n, class).is_ok() {
                            nonempty.push(class);
                        }
                    }
                }
                nonempty.sort();
                assert_eq!(nonempty, classes_for(op, n), "{op:?} n={n}");
            }
        }
    }

    #[test]
    fn samples_have_requested_class() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for n in [1, 2, 3, 5, 10, 19, 20] {
            for op in [Op::Add, Op::Sub] {
                for class in classes_for(op, n) {
                    for _ in 0..20 {
                        let q = sample_class(&mut rng, n, class).unwrap();
                        assert_eq!(q.class(), class, "{q:?}");
                        assert!(Question::new(q.x, q.y, q.op, n).is_ok());
                    }
                }
            }
        }
    }

    /// Pearson chi-square of draws against the uniform distribution over
    /// every question of the class, with a loose bound on the statistic.
    fn assert_uniform(n: usize, class: Class, rng: &mut ChaCha8Rng) {
        let members: Vec<(u128, u128)> = (0..pow10(n))
            .flat_map(|x| (0..pow10(n)).map(move |y| (x, y)))
            .filter(|&(x, y)| Question::new(x, y, class.op(), n).unwrap().class() == class)
            .collect();
        let per = 200usize;
        let dp = Dp::for_class(n, class).unwrap();
        let mut seen: HashMap<(u128, u128), usize> = HashMap::new();
        for _ in 0..per * members.len() {
            let q = question_from(&dp, rng, n, class);
            *seen.entry((q.x, q.y)).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), members.len(), "{class}: every member drawn, no others");
        let chi: f64 = members.iter().map(|m| (seen[m] as f64 - per as f64).powi(2) / per as f64).sum();
        let df = (members.len() - 1) as f64;
        assert!(chi < df + 6.0 * (2.0 * df).sqrt() + 10.0, "{class}: chi2 {chi} df {df}");
    }

    #[test]
    fn sampling_is_uniform_for_two_digits() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for op in [Op::Add, Op::Sub] {
            for class in classes_for(op, 2) {
                assert_uniform(2, class, &mut rng);
            }
        }
    }

    #[test]
    fn empty_class_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let e = sample_class(&mut rng, 5, Class::S(7)).unwrap_err();
        assert_eq!(e.to_string(), "class S7 has no 5-digit questions: the classes are S0, S1, S2, S3, S4, S5");
        assert!(sample_class(&mut rng, 3, Class::M(3)).is_err());
        assert!(sample_class(&mut rng, 3, Class::N(0)).is_err());
        assert!(sample_class(&mut rng, 0, Class::S(0)).is_err());
        assert!(matches!(class_count(20, Class::S(1)), Err(TaskError::CountOverflow { .. })));
        assert_eq!(class_count(20, Class::S(0)), Ok(55u128.pow(20)));
    }

    /// Pinned values: a change here means seeds no longer reproduce sets.
    #[test]
    fn golden_samples() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        assert_eq!(sample_class(&mut rng, 5, Class::S(3)).unwrap().text(), "47866+18138=");
        assert_eq!(sample_class(&mut rng, 5, Class::N(2)).unwrap().text(), "37162-56286=");
    }

    #[test]
    fn stratified_set_is_deterministic() {
        let a = stratified_set(4, Op::Sub, 3, 5).unwrap();
        assert_eq!(a, stratified_set(4, Op::Sub, 3, 5).unwrap());
        assert_ne!(a, stratified_set(4, Op::Sub, 3, 6).unwrap());
        let classes: Vec<Class> = a.iter().map(|(c, _)| *c).collect();
        assert_eq!(classes, classes_for(Op::Sub, 4));
        assert!(a.iter().all(|(c, qs)| qs.len() == 3 && qs.iter().all(|q| q.class() == *c)));
    }
}
