//! Failure families: a model's wrong answers grouped, without being told what to look for, into
//! a few kinds, each a rule over per-column features a researcher reads at a glance ("A4 loses
//! its carry: the column below sums to 9, over a column summing to exactly 10").
//!
//! Each wrong answer is described at its first wrong token in the order the model emits them
//! (the sign, then A_n down to A_0): how that digit is wrong (a carry or borrow added or lost,
//! judged by the carry the digit implies, or otherwise) and the columns beneath it (its own
//! column's sum or difference, the column below, the run of sum-9 / equal-digit columns below
//! it, the column at the run's foot and the one under that, and the true carry in). For each way
//! of being wrong a shallow decision tree (`eval::rule_tree`) separates those sites from the
//! model's right digits; its positive leaves are the families. A family's precision is then
//! measured on fresh questions drawn to match its rule, so rare rules are measured too.

use super::rule_tree::{self, Data, Growth, Interval, Sharpen};
use crate::task::{Class, Columns, Format, Op, Question};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The features of an answer site, in order (the tree's feature indices).
const FEATURES: [Feature; 8] =
    [Feature::Digit, Feature::Own, Feature::Below, Feature::Run, Feature::Foot, Feature::UnderFoot, Feature::CarryIn, Feature::BelowLarger];

/// One per-column feature of an answer site (answer digit k).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feature {
    /// k: the answer digit (n + 1 for the sign token).
    Digit,
    /// Column k's sum (addition) or difference (subtraction).
    Own,
    /// Column k-1's value.
    Below,
    /// How many sum-9 (equal-digit) columns lie directly below column k.
    Run,
    /// The value of the first column below that run.
    Foot,
    /// The value of the column below the foot.
    UnderFoot,
    /// The true carry (borrow) into column k: 0 or 1.
    CarryIn,
    /// The larger of column k-1's two digits (9 in 9+0, 5 in 5+4): a pair's make-up, not only
    /// its sum, can decide what a model reads off it.
    BelowLarger,
}

/// A column that does not exist (below the units, or above the top).
const NONE: i16 = -99;

/// How a wrong token is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The digit is one more than it should be (addition) or one less (subtraction): it takes a
    /// carry or borrow that is not there.
    Added,
    /// The digit lacks the carry or borrow that comes in.
    Lost,
    /// Any other wrong digit.
    Other,
    /// The sign token is wrong.
    Sign,
}

impl ErrorKind {
    fn all() -> [ErrorKind; 4] {
        [ErrorKind::Added, ErrorKind::Lost, ErrorKind::Other, ErrorKind::Sign]
    }

    fn words(self, op: Op) -> &'static str {
        match (self, op) {
            (ErrorKind::Added, Op::Add) => "adds a carry that is not there",
            (ErrorKind::Added, Op::Sub) => "takes a borrow that is not there",
            (ErrorKind::Lost, Op::Add) => "loses the carry that comes in",
            (ErrorKind::Lost, Op::Sub) => "loses the borrow that comes in",
            (ErrorKind::Other, _) => "is wrong by more than a carry",
            (ErrorKind::Sign, _) => "has the wrong sign",
        }
    }

    fn short(self, op: Op) -> &'static str {
        match (self, op) {
            (ErrorKind::Added, Op::Add) => "carry added",
            (ErrorKind::Added, Op::Sub) => "borrow added",
            (ErrorKind::Lost, Op::Add) => "carry lost",
            (ErrorKind::Lost, Op::Sub) => "borrow lost",
            (ErrorKind::Other, _) => "other digit error",
            (ErrorKind::Sign, _) => "sign error",
        }
    }
}

/// One family of wrong answers (the JSON of `failure_families` in eval.json and analysis.json).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailureFamily {
    /// Short name, e.g. "carry lost at A3-A5 (foot 10)".
    pub name: String,
    /// The rule in plain words.
    pub description: String,
    /// The rule as conditions on the features, e.g. "carry lost & digit 3..=5 & below = 9".
    pub rule: String,
    /// The operation it describes.
    pub op: Op,
    /// Wrong answers it covers.
    pub count: usize,
    /// `count` over all the wrong answers of this operation.
    pub share_of_failures: f64,
    /// Of questions drawn to match the rule, the share the model gets wrong (None when none
    /// could be drawn).
    pub precision: Option<f64>,
    /// How many questions `precision` was measured on.
    pub precision_questions: usize,
    /// Covered wrong answers per complexity class.
    pub classes: BTreeMap<String, usize>,
    /// Up to five covered questions: [question, model answer, true answer].
    pub examples: Vec<[String; 3]>,
    /// The answer digits k (A_k; n + 1 for the sign) at which the family's wrong answers have
    /// their first wrong token (a rule that does not test the digit may name more, where a run
    /// has no room): what the algorithm text joins each digit's families by.
    #[serde(default)]
    pub digits: Vec<usize>,
}

/// The families of one operation's wrong answers, and what they leave out.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FailureFamilies {
    /// Families, largest first.
    pub families: Vec<FailureFamily>,
    /// Wrong answers examined.
    pub failures: usize,
    /// Wrong answers no family covers.
    pub uncovered: usize,
    /// What the uncovered ones are, by how they are wrong, e.g. "other digit error": 12.
    pub uncovered_kinds: BTreeMap<String, usize>,
    /// Each family's rule, in the order of `families`.
    #[serde(skip)]
    rules: Vec<Rule>,
}

/// Equal when everything eval.json and analysis.json record is equal (the rules kept in memory
/// are not written, so families read back from a file equal the ones found).
impl PartialEq for FailureFamilies {
    fn eq(&self, other: &Self) -> bool {
        (&self.families, self.failures, self.uncovered, &self.uncovered_kinds)
            == (&other.families, other.failures, other.uncovered, &other.uncovered_kinds)
    }
}

/// A question with the model's answer tokens (the answer part only, as the format lays it out).
#[derive(Clone, Debug)]
pub struct Answered {
    /// The question.
    pub question: Question,
    /// The model's answer tokens.
    pub tokens: Vec<u32>,
}

/// How families are searched and measured.
#[derive(Clone, Copy, Debug)]
pub struct FamilyOptions {
    /// Deepest rule (conditions on a path).
    pub max_depth: usize,
    /// Smallest family, as a share of the operation's failures (at least 3 answers).
    pub min_share: f64,
    /// Questions drawn per family to measure its precision.
    pub precision_questions: usize,
    /// Seed of those questions.
    pub seed: u64,
    /// How many answers of the evaluated population each right answer given stands for,
    /// relative to each wrong one (1 when the answers are all of a set; more when they are all
    /// of a set's wrong answers with a sample of its right ones): what makes a rule's precision
    /// in the data the share of matching answers that are wrong.
    pub right_weight: f64,
    /// A family is split further while one part's odds of a wrong answer in the data
    /// (precision / (1 - precision)) rise at least this many times (the sharpening of `eval::rule_tree`).
    pub sharpen_rise: f64,
    /// Most conditions sharpening adds to a family's rule.
    pub sharpen_depth: usize,
}

impl Default for FamilyOptions {
    fn default() -> Self {
        FamilyOptions {
            max_depth: 5,
            min_share: 0.02,
            precision_questions: 2_000,
            seed: 90210,
            right_weight: 1.0,
            sharpen_rise: 2.0,
            sharpen_depth: 2,
        }
    }
}

/// An answer site: question `q`, answer digit `k` (n + 1 is the sign).
fn features(q: &Question, k: usize) -> Vec<i16> {
    let c = Columns::of(q);
    let n = c.n();
    // The column's sum (base + 10 when it makes a carry) or difference (base - 10 when it
    // makes a borrow).
    let value = |j: usize| -> i16 {
        let ten = if c.make[j] { 10 } else { 0 };
        match c.op {
            Op::Add => c.base[j] as i16 + ten,
            Op::Sub => c.base[j] as i16 - ten,
        }
    };
    let at = |j: Option<usize>| j.filter(|&j| j < n).map_or(NONE, value);
    let top = k.min(n);
    let run = (0..top).rev().take_while(|&j| c.pass[j]).count();
    let foot = top.checked_sub(run + 1);
    let under = foot.and_then(|f| f.checked_sub(1));
    let carry = c.carries()[top] as i16;
    let larger = top.checked_sub(1).map_or(NONE, |j| q.digit_x(j).max(q.digit_y(j)) as i16);
    vec![k as i16, at(Some(k)), at(top.checked_sub(1)), run as i16, at(foot), at(under), carry, larger]
}

/// The first wrong token of an answer, in the order the model emits them: `(k, kind)`, or None
/// when the answer is right.
fn first_wrong(a: &Answered, format: Format) -> Option<(usize, ErrorKind)> {
    let q = &a.question;
    let n = q.n_digits;
    let truth = q.answer_tokens(format);
    if a.tokens == truth {
        return None;
    }
    if a.tokens.len() != truth.len() {
        return Some((n + 1, ErrorKind::Other));
    }
    if truth.len() > n + 1 && a.tokens[0] != truth[0] {
        return Some((n + 1, ErrorKind::Sign));
    }
    let c = Columns::of(q);
    let got = Columns::answer_digits(&a.tokens, n);
    let want = Columns::answer_digits(&truth, n);
    let k = (0..=n).rev().find(|&k| got[k] != want[k])?;
    let kind = match (c.implied_carries(&got)[k], c.carries()[k]) {
        (Some(true), false) => ErrorKind::Added,
        (Some(false), true) => ErrorKind::Lost,
        _ => ErrorKind::Other,
    };
    Some((k, kind))
}

/// The sites a tree learns from: every first wrong token (positive for its kind), and every
/// right token emitted before it (all of a right answer's tokens).
struct Sites {
    rows: Vec<Vec<i16>>,
    kind: Vec<Option<ErrorKind>>,
    answer: Vec<usize>,
}

fn sites(answers: &[Answered], format: Format) -> Sites {
    let mut s = Sites { rows: Vec::new(), kind: Vec::new(), answer: Vec::new() };
    for (i, a) in answers.iter().enumerate() {
        let n = a.question.n_digits;
        let wrong = first_wrong(a, format);
        let signed = format.n_answer(n) > n + 1;
        // Emission order: the sign (n + 1) if the format has one, then n down to 0.
        let order = signed.then_some(n + 1).into_iter().chain((0..=n).rev());
        for k in order {
            let kind = wrong.filter(|w| w.0 == k).map(|w| w.1);
            s.rows.push(features(&a.question, k));
            s.kind.push(kind);
            s.answer.push(i);
            if kind.is_some() {
                break;
            }
        }
    }
    s
}

/// Finds the families of wrong answers among `answers` (one operation's questions, right and
/// wrong, as evaluated), then measures each family's precision by asking `model` questions
/// drawn to match its rule (`model` returns each question's answer tokens).
pub fn find_families(
    answers: &[Answered],
    format: Format,
    opts: &FamilyOptions,
    model: &mut dyn FnMut(&[Question]) -> Vec<Vec<u32>>,
) -> FailureFamilies {
    let sites = sites(answers, format);
    let failures = sites.kind.iter().filter(|k| k.is_some()).count();
    let mut out = FailureFamilies { failures, ..Default::default() };
    let Some(first) = answers.first() else { return out };
    let (op, n) = (first.question.op, first.question.n_digits);
    let signed = format.n_answer(n) > n + 1;
    let mut covered = vec![false; sites.rows.len()];
    for kind in ErrorKind::all() {
        let positives = sites.kind.iter().filter(|&&k| k == Some(kind)).count();
        let min_rows = ((opts.min_share * failures as f64).ceil() as usize).max(3);
        if positives < min_rows {
            continue;
        }
        for leaf in grow_for(&sites, kind, positives, opts, min_rows) {
            let rows: Vec<usize> = leaf.rows.iter().copied().filter(|&r| sites.kind[r] == Some(kind)).collect();
            rows.iter().for_each(|&r| covered[r] = true);
            let conditions = tighten(&leaf.conditions, &observed(&sites, rows.iter().copied()));
            let rule = Rule { op, n, signed, kind, conditions };
            let mut family = rule.family(&rows, &sites, answers, format, failures);
            (family.precision, family.precision_questions) = rule.precision(format, opts, model);
            out.families.push(family);
            out.rules.push(rule);
        }
    }
    for (r, kind) in sites.kind.iter().enumerate() {
        if let (Some(kind), false) = (kind, covered[r]) {
            out.uncovered += 1;
            *out.uncovered_kinds.entry(kind.short(op).to_string()).or_default() += 1;
        }
    }
    out
}

/// Each feature's smallest and largest value over the given sites.
fn observed(sites: &Sites, rows: impl Iterator<Item = usize>) -> Vec<(i16, i16)> {
    let mut range = vec![(i16::MAX, i16::MIN); FEATURES.len()];
    for r in rows {
        for (f, &v) in sites.rows[r].iter().enumerate() {
            range[f] = (range[f].0.min(v), range[f].1.max(v));
        }
    }
    range
}

/// A family's conditions: its tree path's intervals, each narrowed to the range its wrong
/// answers actually span. This states what the path implies (a carry in with the column below
/// at most 10 is a column of exactly 10) and loses none of the family's answers, which all lie
/// on the path; features the path does not test stay free.
fn tighten(path: &[Interval], family: &[(i16, i16)]) -> Vec<Interval> {
    path.iter().map(|c| Interval { lo: c.lo.max(family[c.feature].0), hi: c.hi.min(family[c.feature].1), ..*c }).collect()
}

/// The positive leaves of a tree separating `kind`'s sites from the right tokens, each class
/// weighing half, each then sharpened by precision (right and wrong answers weighed as in the
/// evaluated population, `opts.right_weight`).
fn grow_for(sites: &Sites, kind: ErrorKind, positives: usize, opts: &FamilyOptions, min_rows: usize) -> Vec<rule_tree::Leaf> {
    let idx: Vec<usize> = (0..sites.rows.len()).filter(|&r| sites.kind[r].is_none() || sites.kind[r] == Some(kind)).collect();
    let rows: Vec<Vec<i16>> = idx.iter().map(|&r| sites.rows[r].clone()).collect();
    let positive: Vec<bool> = idx.iter().map(|&r| sites.kind[r] == Some(kind)).collect();
    let negatives = (idx.len() - positives).max(1);
    let weight: Vec<f64> = positive.iter().map(|&p| if p { 0.5 / positives as f64 } else { 0.5 / negatives as f64 }).collect();
    let growth = Growth { max_depth: opts.max_depth, min_positive_rows: min_rows };
    let leaves = rule_tree::grow(&Data { rows: &rows, positive: &positive, weight: &weight }, growth);
    let population: Vec<f64> = positive.iter().map(|&p| if p { 1.0 } else { opts.right_weight }).collect();
    let data = Data { rows: &rows, positive: &positive, weight: &population };
    let sharpen = Sharpen { rise: opts.sharpen_rise, max_depth: opts.sharpen_depth, min_positive_rows: min_rows };
    leaves
        .into_iter()
        .filter(|l| l.is_positive())
        .flat_map(|l| rule_tree::sharpen(&data, l, sharpen))
        .map(|mut l| {
            l.rows = l.rows.iter().map(|&i| idx[i]).collect();
            l
        })
        .collect()
}

/// A family's rule: a way of being wrong at the sites whose features lie in the intervals.
#[derive(Clone, Debug, PartialEq)]
struct Rule {
    op: Op,
    n: usize,
    /// Whether the answer has a sign token (answer site n + 1).
    signed: bool,
    kind: ErrorKind,
    conditions: Vec<Interval>,
}

impl Rule {
    /// The allowed range of feature `f` (the whole domain when the rule says nothing of it).
    fn range(&self, f: Feature) -> (i16, i16) {
        let i = FEATURES.iter().position(|&x| x == f).expect("a listed feature");
        self.conditions.iter().find(|c| c.feature == i).map_or((i16::MIN, i16::MAX), |c| (c.lo, c.hi))
    }

    fn matches(&self, row: &[i16]) -> bool {
        self.conditions.iter().all(|c| (c.lo..=c.hi).contains(&row[c.feature]))
    }

    /// The values a column can take: sums 0..=18 or differences -9..=9.
    fn domain(&self) -> (i16, i16) {
        match self.op {
            Op::Add => (0, 18),
            Op::Sub => (-9, 9),
        }
    }

    fn family(&self, rows: &[usize], sites: &Sites, answers: &[Answered], format: Format, failures: usize) -> FailureFamily {
        let mut classes: BTreeMap<String, usize> = BTreeMap::new();
        for &r in rows {
            *classes.entry(Class::of(&answers[sites.answer[r]].question).to_string()).or_default() += 1;
        }
        let examples = rows
            .iter()
            .take(5)
            .map(|&r| {
                let a = &answers[sites.answer[r]];
                [a.question.text(), format.tokens_text(&a.tokens), format.tokens_text(&a.question.answer_tokens(format))]
            })
            .collect();
        FailureFamily {
            name: self.name(),
            description: self.describe(),
            rule: self.text(),
            op: self.op,
            count: rows.len(),
            share_of_failures: rows.len() as f64 / failures.max(1) as f64,
            precision: None,
            precision_questions: 0,
            classes,
            examples,
            digits: rows.iter().map(|&r| sites.rows[r][0] as usize).collect::<std::collections::BTreeSet<_>>().into_iter().collect(),
        }
    }
}

/// Words for the rules.
impl Rule {
    fn value_words(&self, (lo, hi): (i16, i16)) -> Option<String> {
        let (min, max) = self.domain();
        let (lo, hi) = (lo.max(NONE), hi.min(max));
        let verb = if self.op == Op::Add { "sums to" } else { "has difference" };
        Some(match (lo, hi) {
            (NONE, NONE) => "does not exist".to_string(),
            (l, h) if l <= NONE && h >= max => return None,
            (l, h) if l <= min && h >= max => "exists".to_string(),
            (l, h) if l <= NONE => format!("{verb} at most {h} (or does not exist)"),
            (l, h) if l == h => format!("{verb} exactly {l}"),
            (l, h) if l <= min => format!("{verb} at most {h}"),
            (l, h) if h >= max => format!("{verb} at least {l}"),
            (l, h) => format!("{verb} {l} to {h}"),
        })
    }

    /// The condition on the larger digit of the column below in words, e.g. "the column below
    /// has a digit of at least 8 (9+0, 8+1, ...)"; None when the rule says nothing of it.
    fn larger_words(&self) -> Option<String> {
        let (lo, hi) = self.range(Feature::BelowLarger);
        let (lo, hi) = (lo.max(0), hi.min(9));
        if hi < 0 {
            return None;
        }
        let what = "the larger digit of the column below is";
        Some(match (lo, hi) {
            (0, 9) => return None,
            (l, h) if l == h => format!("{what} {l}"),
            (l, 9) => format!("{what} at least {l}"),
            (0, h) => format!("{what} at most {h}"),
            (l, h) => format!("{what} {l} to {h}"),
        })
    }

    /// The answer digits the rule applies to, e.g. "A2-A4": its digit range, narrowed by what its
    /// own-column condition implies (only the top digit, and the sign, have no column).
    fn digits_words(&self) -> String {
        let (lo, hi) = (*self.digit_range().start(), *self.digit_range().end());
        let name = |k: usize| if k > self.n { "the sign".to_string() } else { format!("A{k}") };
        if lo == hi {
            name(lo)
        } else {
            format!("{}-{}", name(lo), name(hi))
        }
    }

    /// The answer digits the rule allows (n + 1 for the sign), as [`Rule::digits_words`] names them.
    fn digit_range(&self) -> std::ops::RangeInclusive<usize> {
        let (lo, hi) = self.range(Feature::Digit);
        let top = self.n + self.signed as usize;
        let (mut lo, mut hi) = (lo.max(0) as usize, (hi.max(0) as usize).min(top));
        match self.range(Feature::Own) {
            (_, h) if h <= NONE => lo = lo.max(self.n),
            (l, _) if l > NONE => hi = hi.min(self.n - 1),
            _ => {}
        }
        lo..=hi
    }

    fn name(&self) -> String {
        let name = format!("{} at {}", self.kind.short(self.op), self.digits_words());
        match self.run_words() {
            Some(run) => format!("{name}, {run}"),
            None => name,
        }
    }

    /// The run condition in words, e.g. "2 to 4 sum-9 columns below it"; None when the rule
    /// says nothing of it.
    fn run_words(&self) -> Option<String> {
        let (lo, hi) = self.range(Feature::Run);
        let (lo, hi, n) = (lo.max(0), hi.min(self.n as i16), self.n as i16);
        Some(match (lo, hi) {
            (0, h) if h >= n => return None,
            (0, 0) => format!("no {} directly below it", self.pass_word(1)),
            (l, h) if l == h => format!("exactly {l} {} below it", self.pass_word(l)),
            (l, h) if h >= n => format!("at least {l} {} below it", self.pass_word(2)),
            (l, h) => format!("{l} to {h} {} below it", self.pass_word(2)),
        })
    }

    fn pass_word(&self, count: i16) -> String {
        let what = if self.op == Op::Add { "sum-9 column" } else { "equal-digit column" };
        if count == 1 {
            what.to_string()
        } else {
            format!("{what}s")
        }
    }

    /// The rule in plain words.
    fn describe(&self) -> String {
        let words = |range: (i16, i16), what: &str| self.value_words(range).map(|w| format!("{what} {w}"));
        // Whether the digit has a column of its own is in the digits' names already.
        let own = words(self.range(Feature::Own), "its own column").filter(|w| !w.ends_with("exists") && !w.ends_with("does not exist"));
        let (run, below, foot) = (self.range(Feature::Run), self.range(Feature::Below), self.range(Feature::Foot));
        let (below, foot) = if run.1 <= 0 {
            // No run: the foot is the column below.
            (None, words((below.0.max(foot.0), below.1.min(foot.1)), "the column below"))
        } else if run.0 >= 1 {
            // The run's first column is the one below.
            (None, words(foot, "the first column below that run"))
        } else {
            (words(below, "the column below"), words(foot, "the first column below the sum-9 run"))
        };
        let under = words(self.range(Feature::UnderFoot), if run.1 <= 0 { "the column under that" } else { "the column under the foot" });
        let larger = self.larger_words();
        let mut parts: Vec<String> = [own, below, larger, self.run_words(), foot, under].into_iter().flatten().collect();
        let carry = if self.op == Op::Add { "carry" } else { "borrow" };
        match self.range(Feature::CarryIn) {
            (lo, _) if lo >= 1 => parts.push(format!("a {carry} comes in")),
            (_, hi) if hi <= 0 => parts.push(format!("no {carry} comes in")),
            _ => {}
        }
        let tail = if parts.is_empty() { String::new() } else { format!(" when {}", parts.join(", ")) };
        format!("{} {}{tail}.", self.digits_words(), self.kind.words(self.op))
    }

    /// The conditions as text, e.g. "carry lost & digit = 3 & below = 9 & run >= 1".
    fn text(&self) -> String {
        let names = ["digit", "own", "below", "run", "foot", "under_foot", "carry_in", "below_larger"];
        let mut parts = vec![self.kind.short(self.op).to_string()];
        for c in &self.conditions {
            let (lo, hi) = (c.lo.max(NONE), c.hi);
            parts.push(match (lo, hi) {
                (l, h) if l == h => format!("{} = {l}", names[c.feature]),
                (l, h) if h >= i16::MAX / 2 => format!("{} >= {l}", names[c.feature]),
                (l, h) if l <= NONE => format!("{} <= {h}", names[c.feature]),
                (l, h) => format!("{} in {l}..={h}", names[c.feature]),
            });
        }
        parts.join(" & ")
    }
}

/// Drawing questions that match a rule, and the model's error rate on them.
impl Rule {
    /// The share of questions drawn to match the rule that `model` answers wrong, and how many
    /// were drawn (fewer than asked when the rule is hard to meet; None when none could be).
    fn precision(&self, format: Format, opts: &FamilyOptions, model: &mut dyn FnMut(&[Question]) -> Vec<Vec<u32>>) -> (Option<f64>, usize) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
        let mut qs = Vec::with_capacity(opts.precision_questions);
        for _ in 0..opts.precision_questions * 50 {
            if qs.len() == opts.precision_questions {
                break;
            }
            qs.extend(self.draw(&mut rng));
        }
        if qs.is_empty() {
            return (None, 0);
        }
        let answers = model(&qs);
        let wrong = qs.iter().zip(&answers).filter(|(q, a)| **a != q.answer_tokens(format)).count();
        (Some(wrong as f64 / qs.len() as f64), qs.len())
    }

    /// One question built to meet the rule's column conditions at a digit it allows, kept only
    /// if its features there really match.
    fn draw(&self, rng: &mut impl Rng) -> Option<Question> {
        let n = self.n;
        let pick = |rng: &mut dyn rand::RngCore, (lo, hi): (i16, i16), (min, max): (i16, i16)| -> Option<i16> {
            let (lo, hi) = (lo.max(min), hi.min(max));
            (lo <= hi).then(|| rng.gen_range(lo..=hi))
        };
        let domain = self.domain();
        let pass = if self.op == Op::Add { 9 } else { 0 };
        // The column below is the run's first column when it passes a carry on, else the foot.
        let below = self.range(Feature::Below);
        let (mut run_lo, mut run_hi) = self.range(Feature::Run);
        if below == (pass, pass) {
            run_lo = run_lo.max(1);
        } else if !(below.0..=below.1).contains(&pass) {
            run_hi = 0;
        }
        // A digit with room for the run below it.
        let (dlo, dhi) = self.range(Feature::Digit);
        let k = pick(rng, (dlo.max(run_lo), dhi), (0, (n + self.signed as usize) as i16))? as usize;
        let top = k.min(n);
        // Leave room for the foot column when the rule needs one.
        let foot_needed = self.range(Feature::Foot).0 > NONE;
        let run = pick(rng, (run_lo, run_hi), (0, top as i16 - foot_needed as i16))? as usize;
        let mut values: Vec<Option<i16>> = vec![None; n];
        if k < n {
            values[k] = Some(pick(rng, self.range(Feature::Own), domain)?);
        }
        (top - run..top).for_each(|j| values[j] = Some(pass));
        if let Some(f) = top.checked_sub(run + 1) {
            let foot = (0..8).find_map(|_| pick(rng, self.range(Feature::Foot), domain).filter(|&v| v != pass));
            values[f] = Some(foot?);
            if let Some(u) = f.checked_sub(1) {
                values[u] = Some(pick(rng, self.range(Feature::UnderFoot), domain)?);
            }
        }
        let larger = top.checked_sub(1).map(|j| (j, self.range(Feature::BelowLarger)));
        let q = self.question(&values, larger, rng)?;
        self.matches(&features(&q, k)).then_some(q)
    }

    /// Two digits, drawn uniformly among those whose sum (difference) is `value` (any when
    /// None) and whose larger digit lies in `larger`.
    fn pair(&self, value: Option<i16>, (lo, hi): (i16, i16), rng: &mut impl Rng) -> Option<(i16, i16)> {
        let fits = |&(x, y): &(i16, i16)| {
            let v = if self.op == Op::Add { x + y } else { x - y };
            value.is_none_or(|w| w == v) && (lo..=hi).contains(&x.max(y))
        };
        let pairs: Vec<(i16, i16)> = (0..100).map(|i| (i / 10, i % 10)).filter(fits).collect();
        (!pairs.is_empty()).then(|| pairs[rng.gen_range(0..pairs.len())])
    }

    /// A question whose columns have the given values (random where None), and whose column
    /// `larger.0` has its larger digit in `larger.1`; for subtraction the values are those of the
    /// larger operand minus the smaller, in either order.
    fn question(&self, values: &[Option<i16>], larger: Option<(usize, (i16, i16))>, rng: &mut impl Rng) -> Option<Question> {
        let (mut a, mut b) = (0u128, 0u128);
        for (j, v) in values.iter().enumerate().rev() {
            let range = larger.filter(|l| l.0 == j).map_or((0, 9), |l| l.1);
            let (x, y) = self.pair(*v, range, rng)?;
            a = a * 10 + x as u128;
            b = b * 10 + y as u128;
        }
        if self.op == Op::Sub && a < b {
            return None;
        }
        let (x, y) = if self.op == Op::Sub && rng.gen_bool(0.5) { (b, a) } else { (a, b) };
        Question::new(x, y, self.op, self.n).ok()
    }
}

/// The families of `model`'s wrong answers among `questions` (all of one operation), found
/// from its teacher-forced answers (whose first wrong token is greedy decoding's) and measured
/// on questions drawn to match each rule; the examples show the greedy answers.
pub fn model_families(model: &crate::task_model::TaskModel, questions: &[Question], opts: &FamilyOptions) -> FailureFamilies {
    let n = model.n_answer();
    let p = super::predict::teacher_forced(model, questions, 1024);
    let answers: Vec<Answered> =
        questions.iter().zip(p.argmax.chunks_exact(n)).map(|(q, t)| Answered { question: *q, tokens: t.to_vec() }).collect();
    answered_families(model, &answers, opts)
}

/// The families among answers `model` already gave (its teacher-forced answer tokens, right and
/// wrong, of one operation): what [`model_families`] does once the answers are in hand, e.g. the
/// wrong answers an evaluation kept with a sample of its right ones. Precision is measured by
/// asking `model` questions drawn to match each rule; the examples show the greedy answers.
pub fn answered_families(model: &crate::task_model::TaskModel, answers: &[Answered], opts: &FamilyOptions) -> FailureFamilies {
    let n = model.n_answer();
    let mut ask = |qs: &[Question]| -> Vec<Vec<u32>> {
        let p = super::predict::teacher_forced(model, qs, 1024);
        p.argmax.chunks_exact(n).map(<[u32]>::to_vec).collect()
    };
    let mut families = find_families(answers, model.format, opts, &mut ask);
    for f in &mut families.families {
        let qs: Vec<Question> = f.examples.iter().filter_map(|e| model.parse_question(&e[0]).ok()).collect();
        for (e, (tokens, _)) in f.examples.iter_mut().zip(super::predict::greedy(model, &qs)) {
            e[1] = model.format.tokens_text(&tokens);
        }
    }
    families
}

/// Families covering less than this share of the failures get a line saying what is left.
pub const COVERAGE_GOAL: f64 = 0.9;

impl FailureFamilies {
    /// Share of the failures some family covers (1 when there are none).
    pub fn coverage(&self) -> f64 {
        if self.failures == 0 {
            1.0
        } else {
            1.0 - self.uncovered as f64 / self.failures as f64
        }
    }

    /// The families in a few lines of text, each starting with `prefix` (e.g. "addition: "):
    /// how many failures they cover, then per family its description, count, share, precision
    /// and one example; and, when they cover less than [`COVERAGE_GOAL`], what is left.
    pub fn lines(&self, prefix: &str) -> Vec<String> {
        if self.failures == 0 {
            return Vec::new();
        }
        let mut v = vec![format!(
            "{prefix}{} failure famil{} cover {:.0}% of the {} wrong answers examined",
            self.families.len(),
            if self.families.len() == 1 { "y" } else { "ies" },
            100.0 * self.coverage(),
            self.failures
        )];
        for f in &self.families {
            let precision = f.precision.map_or("precision not measured (no question could be drawn to match)".to_string(), |p| {
                format!("{:.0}% of {} questions drawn to match are wrong", 100.0 * p, f.precision_questions)
            });
            let example = f.examples.first().map_or(String::new(), |e| format!("; e.g. {} answered {}, not {}", e[0], e[1], e[2]));
            v.push(format!(
                "{prefix}  {} ({} wrong answers, {:.0}%; {precision}){example}",
                f.description.trim_end_matches('.'),
                f.count,
                100.0 * f.share_of_failures
            ));
        }
        if self.coverage() < COVERAGE_GOAL {
            let kinds: Vec<String> = self.uncovered_kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            v.push(format!("{prefix}  not covered: {} wrong answers ({})", self.uncovered, kinds.join(", ")));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::random_questions;

    /// Exact answers, except for two planted failures of A_k (k >= 2): the carry is lost when
    /// column k-1 sums to 9 over a column summing to exactly 10, and added when column k-1
    /// sums to 9 over one summing to 8.
    fn planted(q: &Question) -> Vec<u32> {
        let c = Columns::of(q);
        let sum = |j: usize| c.base[j] + if c.make[j] { 10 } else { 0 };
        let mut digits = c.digits(&c.carries());
        for k in (2..=q.n_digits).rev() {
            if sum(k - 1) == 9 && (sum(k - 2) == 10 || sum(k - 2) == 8) {
                digits[k] = if sum(k - 2) == 10 { (digits[k] + 9) % 10 } else { (digits[k] + 1) % 10 };
                break;
            }
        }
        Columns::tokens(&digits, q, Format::Paper1)
    }

    /// The families of `count` random 5-digit additions answered by `answer`, which also answers
    /// the questions drawn to measure precision.
    fn mine(answer: fn(&Question) -> Vec<u32>, count: usize, seed: u64) -> (Vec<Question>, FailureFamilies) {
        let qs = random_questions(5, Op::Add, count, seed).unwrap();
        let answers: Vec<Answered> = qs.iter().map(|q| Answered { question: *q, tokens: answer(q) }).collect();
        let mut model = |qs: &[Question]| qs.iter().map(answer).collect::<Vec<_>>();
        let f = find_families(&answers, Format::Paper1, &FamilyOptions::default(), &mut model);
        (qs, f)
    }

    fn lost_planted(q: &Question, k: usize) -> bool {
        let sums: Vec<u8> = (0..q.n_digits).map(|j| q.digit_x(j) + q.digit_y(j)).collect();
        k >= 2 && sums[k - 1] == 9 && sums[k - 2] == 10
    }

    #[test]
    fn finds_planted_carry_rules_with_full_coverage_and_precision() {
        let (qs, f) = mine(planted, 200_000, 7);
        let lost: Vec<&Rule> = f.rules.iter().filter(|r| r.kind == ErrorKind::Lost).collect();
        assert!(f.failures > 5_000, "{}", f.failures);
        assert_eq!(f.uncovered, 0, "{f:#?}");
        let kinds: Vec<&str> = f.families.iter().map(|x| x.rule.split(" & ").next().unwrap()).collect();
        assert!(kinds.contains(&"carry lost") && kinds.contains(&"carry added"), "{kinds:?}");
        for fam in &f.families {
            assert!(fam.precision.unwrap() > 0.95, "{fam:#?}");
            assert!(fam.precision_questions >= 1_000, "{fam:#?}");
        }
        // The lost-carry rules hold at exactly the planted sites (as the first wrong digit).
        for q in qs.iter().take(20_000) {
            let first = first_wrong(&Answered { question: *q, tokens: planted(q) }, Format::Paper1);
            for k in 0..=5 {
                let by_rule = lost.iter().any(|r| r.matches(&features(q, k)));
                if first.is_none_or(|w| w.0 <= k) {
                    assert_eq!(by_rule, lost_planted(q, k), "{} at A{k}: {lost:?}", q.text());
                }
            }
        }
        let text = &f.families.iter().find(|x| x.rule.starts_with("carry lost")).unwrap().description;
        assert!(text.contains("exactly 1 sum-9 column below it") && text.contains("sums to exactly 10"), "{text}");
    }

    /// Exact answers, except that A_k (the highest such k >= 2) adds a carry when column k-1
    /// is 9+0 or 8+1 (either way round) over a column summing to 8, always, and when column
    /// k-1 is any other sum-9 pair over a column summing to at most 7, for one question in 40.
    fn planted_pairs(q: &Question) -> Vec<u32> {
        let c = Columns::of(q);
        let sum = |j: usize| c.base[j] + if c.make[j] { 10 } else { 0 };
        let mut digits = c.digits(&c.carries());
        let diffuse = (q.x * 7919 + q.y * 104_729).is_multiple_of(40);
        for k in (2..=q.n_digits).rev() {
            let larger = q.digit_x(k - 1).max(q.digit_y(k - 1));
            let sharp = sum(k - 1) == 9 && larger >= 8 && sum(k - 2) == 8;
            if sharp || (diffuse && sum(k - 1) == 9 && larger < 8 && sum(k - 2) <= 7) {
                digits[k] = (digits[k] + 1) % 10;
                break;
            }
        }
        Columns::tokens(&digits, q, Format::Paper1)
    }

    #[test]
    fn sharpening_finds_a_lopsided_pair_over_an_8_inside_a_diffuse_rule() {
        let (qs, f) = mine(planted_pairs, 300_000, 11);
        assert!(f.coverage() >= 0.9, "{f:#?}");
        let sharp: Vec<(&FailureFamily, &Rule)> = f.families.iter().zip(&f.rules).filter(|(x, _)| x.precision.unwrap() > 0.9).collect();
        assert!(!sharp.is_empty(), "{f:#?}");
        for (family, rule) in &sharp {
            assert_eq!(rule.range(Feature::Foot), (8, 8), "{family:#?}");
            assert!(rule.range(Feature::BelowLarger).0 >= 8 && rule.range(Feature::Run) == (1, 1), "{family:#?}");
            assert!(family.description.contains("the larger digit of the column below is at least 8"), "{}", family.description);
        }
        let wanted = |q: &Question, k: usize| {
            let sums: Vec<u8> = (0..5).map(|j| q.digit_x(j) + q.digit_y(j)).collect();
            (2..=5).contains(&k) && sums[k - 1] == 9 && q.digit_x(k - 1).max(q.digit_y(k - 1)) >= 8 && sums[k - 2] == 8
        };
        // The sharp rules hold at the planted sites and nowhere else the model reaches.
        for q in qs.iter().take(30_000) {
            let first = first_wrong(&Answered { question: *q, tokens: planted_pairs(q) }, Format::Paper1);
            for k in 0..=5 {
                if first.is_none_or(|w| w.0 <= k) {
                    let by_rule = sharp.iter().any(|(_, r)| r.matches(&features(q, k)));
                    assert_eq!(by_rule, wanted(q, k), "{} at A{k}: {sharp:#?}", q.text());
                }
            }
        }
        // The diffuse failures are a family of their own, with a low precision.
        assert!(f.families.iter().any(|x| x.precision.unwrap() < 0.2 && x.count >= 100), "{f:#?}");
    }

    #[test]
    fn the_first_wrong_token_and_how_it_is_wrong() {
        let q = Question::parse("44445+55555=", 5).unwrap();
        let a = |t: &str| Answered { question: q, tokens: t.bytes().map(|b| (b - b'0') as u32).collect() };
        assert_eq!(first_wrong(&a("090000"), Format::Paper1), Some((5, ErrorKind::Lost)));
        assert_eq!(first_wrong(&a("100000"), Format::Paper1), None);
        assert_eq!(first_wrong(&a("100500"), Format::Paper1), Some((2, ErrorKind::Other)));
        let q = Question::parse("04796+63201=", 5).unwrap();
        let a = Answered { question: q, tokens: "068997".bytes().map(|b| (b - b'0') as u32).collect() };
        assert_eq!(first_wrong(&a, Format::Paper1), Some((3, ErrorKind::Added)));
        assert_eq!(features(&q, 3), vec![3, 7, 9, 2, 7, NONE, 0, 7], "A3: 4+3, over 7+2 and 9+0, over 6+1");
        assert_eq!(features(&q, 2)[7], 9, "A2: the column below is 9+0");
    }

    #[test]
    fn drawn_questions_match_their_rule() {
        let rule = Rule {
            op: Op::Sub,
            n: 4,
            signed: true,
            kind: ErrorKind::Lost,
            conditions: vec![Interval { feature: 3, lo: 2, hi: 3 }, Interval { feature: 4, lo: -9, hi: -1 }],
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let drawn: Vec<Question> = (0..2000).filter_map(|_| rule.draw(&mut rng)).collect();
        assert!(drawn.len() > 200, "{}", drawn.len());
        assert!(drawn.iter().any(|q| q.x < q.y) && drawn.iter().any(|q| q.x > q.y), "both signs");
        for q in &drawn {
            assert!((0..=5).any(|k| rule.matches(&features(q, k))), "{q:?}");
        }
    }
}
