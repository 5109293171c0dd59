//! Candidate symbolic algorithms checked against the model on every complexity class: exact
//! arithmetic; the one-layer lookahead formula A_k = (BA_k + MC_{k-1} + (MS_{k-1} and
//! MC_{k-2})) mod 10 (for subtraction the same with MD/MB/MZ and the borrow subtracted), which
//! is wrong exactly on cascades through two or more sum-9 columns; and the formula the analysis
//! derived (each digit's carry computed from as many columns below it as its nodes read); and
//! the carry table fitted to the model's own answers on other questions ([`CarryTable`]).
//! Agreement is with the model's own teacher-forced answers, right or wrong.
//!
//! Every such formula reads only the sub-task values, which are functions of the column values
//! (sums D_k + D'_k, or differences). [`ceiling`] measures how far any function of them can go:
//! it asks the model questions with the same column values as each checked question and finds
//! how often the model gives one answer across them. Where the model's answers change with the
//! digits themselves, no sub-task formula can follow it.

use crate::eval::predict::Predictions;
use crate::task::columns::{same_columns, Columns};
use crate::task::labels::carry_out;
use crate::task::{Class, Format, Op, Question};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A function from a question to its answer tokens.
pub type AnswerFn<'a> = Box<dyn Fn(&Question) -> Vec<u32> + 'a>;

/// A symbolic algorithm: question to answer tokens.
pub struct Formula<'a> {
    /// Short name (`exact`, `lookahead2`, `derived`, `fitted`).
    pub name: String,
    /// What it computes, in words.
    pub description: String,
    /// The answer tokens it gives.
    pub answer: AnswerFn<'a>,
}

/// Exact arithmetic.
pub fn exact(format: Format) -> Formula<'static> {
    Formula { name: "exact".into(), description: "exact arithmetic".into(), answer: Box::new(move |q| q.answer_tokens(format)) }
}

/// Carry into every column computed from `depth` columns below it (2 = the paper's one-layer
/// formula).
pub fn lookahead(format: Format, depth: usize) -> Formula<'static> {
    Formula {
        name: format!("lookahead{depth}"),
        description: format!("A_k = (BA_k + carry from the {depth} columns below, lower carries ignored) mod 10"),
        answer: Box::new(move |q| lookahead_tokens(q, format, &vec![depth; q.n_digits + 1])),
    }
}

/// Answer tokens with column k's carry computed from `depths[k]` columns below it.
pub fn lookahead_tokens(q: &Question, format: Format, depths: &[usize]) -> Vec<u32> {
    let c = Columns::of(q);
    Columns::tokens(&c.digits(&c.carries_with_depths(depths)), q, format)
}

/// Answers a carry-table key needs before the model's majority replaces the exact carry.
const MIN_VOTES: u32 = 3;

/// What a carry-table entry is keyed by: operation, column, the states ([`Columns::states`]) of
/// the columns below it (nearest first) and the exact carry into the lowest of them.
type CarryKey = (Op, usize, Vec<u8>, bool);

/// The carry (borrow) into each column as the model gives it, fitted to its own answers: per
/// operation and column, keyed by the states of the `depth` columns below (TriCase, with a make
/// from a sum of exactly 10 apart) and the exact carry into the lowest of them, the model's most
/// common implied carry. Exact arithmetic and every lookahead formula are tables of this kind
/// (the exact carry is a function of the key), so this is the formula over sub-tasks closest to
/// the model.
#[derive(Clone, Debug, Default)]
pub struct CarryTable {
    depth: usize,
    /// Votes [no carry, carry] per key.
    votes: HashMap<CarryKey, [u32; 2]>,
}

impl CarryTable {
    fn key(c: &Columns, states: &[u8], exact: &[bool], k: usize, depth: usize) -> CarryKey {
        let d = depth.min(k);
        (c.op, k, states[k - d..k].iter().rev().copied().collect(), exact[k - d])
    }

    /// Fits the table to the model's answers `preds` to `questions`.
    pub fn fit(questions: &[Question], preds: &Predictions, depth: usize) -> CarryTable {
        let mut t = CarryTable { depth, votes: HashMap::new() };
        let n = preds.n_answer;
        for (i, q) in questions.iter().enumerate() {
            let c = Columns::of(q);
            let (states, exact) = (c.states(), c.carries());
            let digits = Columns::answer_digits(&preds.argmax[i * n..(i + 1) * n], q.n_digits);
            for (k, implied) in c.implied_carries(&digits).into_iter().enumerate() {
                if let Some(carry) = implied {
                    t.votes.entry(Self::key(&c, &states, &exact, k, depth)).or_default()[carry as usize] += 1;
                }
            }
        }
        t
    }

    /// The carry into each column 0..=n of `c`: the model's most common one for its key, the
    /// exact one for keys it has no majority for.
    pub fn carries(&self, c: &Columns) -> Vec<bool> {
        let (states, exact) = (c.states(), c.carries());
        (0..=c.n())
            .map(|k| match self.votes.get(&Self::key(c, &states, &exact, k, self.depth)) {
                Some(&[no, yes]) if no != yes && no + yes >= MIN_VOTES => yes > no,
                _ => exact[k],
            })
            .collect()
    }

    /// The keys where the model's carry is not the exact one, most votes first, e.g.
    /// "+A3 after 9 9 10: no carry (model 14 of 15)" (column sums, or differences for subtraction).
    pub fn departures(&self) -> Vec<String> {
        let mut v: Vec<(u32, String)> = Vec::new();
        for ((op, k, states, carry_in), &[no, yes]) in &self.votes {
            let exact = states.iter().rev().fold(*carry_in, |carry, &s| carry_out(s >= 2, s == 1, carry));
            if no == yes || no + yes < MIN_VOTES || (yes > no) == exact {
                continue;
            }
            let label = |s: u8| match (op, s) {
                (Op::Add, 0) => "<=8",
                (Op::Add, 1) => "9",
                (Op::Add, 2) => ">=11",
                (Op::Add, _) => "10",
                (Op::Sub, 0) => ">=1",
                (Op::Sub, 1) => "0",
                (Op::Sub, 2) => "<=-2",
                (Op::Sub, _) => "-1",
            };
            let cols: Vec<&str> = states.iter().map(|&s| label(s)).collect();
            let what = if *op == Op::Add { "carry" } else { "borrow" };
            let below = if states.len() < *k { format!(" ({what} in {})", *carry_in as u8) } else { String::new() };
            let verdict = if yes > no { what.to_string() } else { format!("no {what}") };
            let sign = if *op == Op::Add { '+' } else { '-' };
            v.push((no.max(yes), format!("{sign}A{k} after {}{below}: {verdict} (model {} of {})", cols.join(" "), no.max(yes), no + yes)));
        }
        v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        v.into_iter().map(|x| x.1).collect()
    }
}

/// The formula of a fitted [`CarryTable`]: A_k = (BA_k + the model's own carry for the column
/// states below column k) mod 10.
pub fn fitted(format: Format, table: CarryTable) -> Formula<'static> {
    let departures = table.departures();
    let shown: Vec<String> = departures.iter().take(4).cloned().collect();
    let description = format!(
        "A_k = (BA_k + the carry the model gives for the states (TriCase, sum 10 apart) of the {} columns below and the carry into them) mod 10: {}",
        table.depth,
        if departures.is_empty() {
            "the exact carry everywhere".to_string()
        } else {
            format!("exact but for {} pattern(s): {}", departures.len(), shown.join("; "))
        }
    );
    Formula {
        name: "fitted".into(),
        description,
        answer: Box::new(move |q| {
            let c = Columns::of(q);
            Columns::tokens(&c.digits(&table.carries(&c)), q, format)
        }),
    }
}

/// Agreement of one formula with the model on one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassAgreement {
    /// Class (`S0`, `S3`, `M1`).
    pub class: Class,
    /// Questions.
    pub questions: usize,
    /// The model's accuracy on them.
    pub model_accuracy: f64,
    /// Fraction where the formula gives exactly the model's answer.
    pub agreement: f64,
    /// The model's wrong answers.
    pub model_wrong: usize,
    /// Of those, how many the formula reproduces exactly.
    pub wrong_reproduced: usize,
    /// Questions the model answers correctly and the formula does not: where the model goes
    /// beyond the formula.
    #[serde(default)]
    pub model_beats_formula: usize,
}

/// One formula over all classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FormulaCheck {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Per class.
    pub per_class: Vec<ClassAgreement>,
    /// Agreement over all questions of all classes (each class weighted equally).
    pub mean_agreement: f64,
    /// A few questions where the formula and the model differ: wrong model answers the formula
    /// does not reproduce first, then questions the model gets right beyond the formula.
    #[serde(default)]
    pub examples: Vec<Disagreement>,
}

/// One question where a formula's answer is not the model's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Disagreement {
    /// Class.
    pub class: Class,
    /// The question, e.g. `44445+55555=`.
    pub question: String,
    /// The true answer tokens.
    pub truth: String,
    /// The model's answer tokens.
    pub model: String,
    /// The formula's answer tokens.
    pub formula: String,
}

/// Examples kept per kind of disagreement.
const EXAMPLES: usize = 3;

/// Checks `formula` against the model's predictions `preds[i]` on each class set `sets[i]`.
pub fn check(formula: &Formula, format: Format, sets: &[(Class, Vec<Question>)], preds: &[Predictions]) -> FormulaCheck {
    let text = |toks: &[u32]| format.tokens_text(toks);
    let (mut wrong_examples, mut beyond_examples) = (Vec::new(), Vec::new());
    let per_class: Vec<ClassAgreement> = sets
        .iter()
        .zip(preds)
        .map(|((class, qs), p)| {
            let n = p.n_answer;
            let (mut agree, mut right, mut wrong_rep, mut beats) = (0, 0, 0, 0);
            for (i, q) in qs.iter().enumerate() {
                let model = &p.argmax[i * n..(i + 1) * n];
                let f = (formula.answer)(q);
                let truth = q.answer_tokens(format);
                let correct = model == truth.as_slice();
                right += correct as usize;
                beats += (correct && f != truth) as usize;
                let keep = if correct { &mut beyond_examples } else { &mut wrong_examples };
                if f != model && keep.len() < EXAMPLES {
                    let (question, truth, model, formula) = (q.text(), text(&truth), text(model), text(&f));
                    keep.push(Disagreement { class: *class, question, truth, model, formula });
                }
                if f == model {
                    agree += 1;
                    wrong_rep += !correct as usize;
                }
            }
            let nq = qs.len().max(1) as f64;
            ClassAgreement {
                class: *class,
                questions: qs.len(),
                model_accuracy: right as f64 / nq,
                agreement: agree as f64 / nq,
                model_wrong: qs.len() - right,
                wrong_reproduced: wrong_rep,
                model_beats_formula: beats,
            }
        })
        .collect();
    let mean_agreement = per_class.iter().map(|c| c.agreement).sum::<f64>() / per_class.len().max(1) as f64;
    wrong_examples.extend(beyond_examples);
    let examples = wrong_examples;
    FormulaCheck { name: formula.name.clone(), description: formula.description.clone(), per_class, mean_agreement, examples }
}

/// How far any formula over the sub-task values can agree with the model on one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassCeiling {
    /// Class.
    pub class: Class,
    /// Questions checked.
    pub questions: usize,
    /// Estimated best agreement of any function of the column values: the share of questions
    /// whose answer is the model's most common answer over them and their siblings with the same
    /// column values (what a formula over sub-task values would have to give).
    pub ceiling: f64,
    /// The model's wrong answers.
    pub model_wrong: usize,
    /// Of those, how many are the model's most common answer for their column values: the
    /// wrong answers a best formula over sub-task values reproduces.
    pub wrong_usual: usize,
}

/// [`ClassCeiling`] per class, with the number of siblings asked per question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    /// Questions with the same column values asked per checked question.
    pub siblings: usize,
    /// Per class.
    pub per_class: Vec<ClassCeiling>,
}

impl Ceiling {
    /// Wrong answers over all classes: (total, usual for their column values).
    pub fn wrong(&self) -> (usize, usize) {
        self.per_class.iter().fold((0, 0), |(w, u), c| (w + c.model_wrong, u + c.wrong_usual))
    }
}

/// The [`Ceiling`] of the model whose answers to `sets` are `preds`, asking `answers` (the model)
/// about `siblings` random questions with the same column values per question.
pub fn ceiling(
    format: Format,
    sets: &[(Class, Vec<Question>)],
    preds: &[Predictions],
    siblings: usize,
    seed: u64,
    mut answers: impl FnMut(&[Question]) -> Predictions,
) -> Ceiling {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let per_class = sets
        .iter()
        .zip(preds)
        .map(|((class, qs), p)| {
            let mut sibs = Vec::with_capacity(qs.len() * siblings);
            for q in qs {
                sibs.extend(std::iter::repeat_with(|| same_columns(q, &mut rng)).take(siblings));
            }
            let sp = answers(&sibs);
            let n = p.n_answer;
            let (mut best, mut wrong, mut usual) = (0, 0, 0);
            for (i, q) in qs.iter().enumerate() {
                let own = &p.argmax[i * n..(i + 1) * n];
                let mut votes: HashMap<&[u32], usize> = HashMap::from([(own, 1)]);
                for j in i * siblings..(i + 1) * siblings {
                    *votes.entry(&sp.argmax[j * n..(j + 1) * n]).or_default() += 1;
                }
                let is_usual = votes[own] == votes.values().copied().max().unwrap_or(1);
                best += is_usual as usize;
                if own != q.answer_tokens(format).as_slice() {
                    wrong += 1;
                    usual += is_usual as usize;
                }
            }
            ClassCeiling {
                class: *class,
                questions: qs.len(),
                ceiling: best as f64 / qs.len().max(1) as f64,
                model_wrong: wrong,
                wrong_usual: usual,
            }
        })
        .collect();
    Ceiling { siblings, per_class }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::stratified_set;

    /// Predictions made by a function of the question.
    fn answer_with(format: Format, f: impl Fn(&Question) -> Vec<u32>) -> impl Fn(&[Question]) -> Predictions {
        move |qs| {
            let argmax: Vec<u32> = qs.iter().flat_map(&f).collect();
            Predictions { n_answer: format.n_answer(qs.first().map_or(1, |q| q.n_digits)), nll: vec![0.0; argmax.len()], argmax }
        }
    }

    fn sets_and_preds(f: &impl Fn(&[Question]) -> Predictions) -> (Vec<(Class, Vec<Question>)>, Vec<Predictions>) {
        let sets = stratified_set(4, Op::Add, 60, 5).unwrap();
        let preds = sets.iter().map(|(_, qs)| f(qs)).collect();
        (sets, preds)
    }

    #[test]
    fn a_formula_over_sub_tasks_reaches_the_ceiling_and_every_wrong_answer_is_usual() {
        let format = Format::Paper1;
        let model = answer_with(format, |q| lookahead_tokens(q, format, &[2; 5]));
        let (sets, preds) = sets_and_preds(&model);
        let c = ceiling(format, &sets, &preds, 8, 1, &model);
        assert!(c.per_class.iter().all(|k| k.ceiling == 1.0), "{c:?}");
        let (wrong, usual) = c.wrong();
        assert!(wrong > 50, "the two-column lookahead gets cascades wrong: {wrong}");
        assert_eq!(usual, wrong);
    }

    #[test]
    fn answers_that_depend_on_the_digits_lower_the_ceiling() {
        let format = Format::Paper1;
        // Wrong (the lookahead's answer) exactly when the units digit of x is odd: half of the
        // siblings of a cascade question disagree, whatever formula over the sums is used.
        let model =
            answer_with(format, |q| if q.digit_x(0) % 2 == 1 { lookahead_tokens(q, format, &[2; 5]) } else { q.answer_tokens(format) });
        let (sets, preds) = sets_and_preds(&model);
        let c = ceiling(format, &sets, &preds, 16, 1, &model);
        let s0 = &c.per_class[0];
        assert_eq!((s0.ceiling, s0.model_wrong), (1.0, 0), "no carries, no disagreement: {s0:?}");
        let deep = c.per_class.last().unwrap();
        assert!(deep.model_wrong > 10 && deep.ceiling < 0.9, "{deep:?}");
        let (wrong, usual) = c.wrong();
        assert!(usual < wrong, "some wrong answers are the minority of their column sums: {usual}/{wrong}");
    }

    #[test]
    fn a_fitted_carry_table_recovers_the_lookahead_formula_and_names_where_it_departs() {
        for (op, format) in [(Op::Add, Format::Paper1), (Op::Sub, Format::Paper2Sign)] {
            let lookahead = answer_with(format, move |q| lookahead_tokens(q, format, &[2; 6]));
            let exact = answer_with(format, move |q| q.answer_tokens(format));
            let fit_set: Vec<Question> = stratified_set(5, op, 400, 1).unwrap().into_iter().flat_map(|(_, v)| v).collect();
            let checks = stratified_set(5, op, 100, 2).unwrap();
            for (model, departs) in [(&lookahead as &dyn Fn(&[Question]) -> Predictions, true), (&exact, false)] {
                let formula = fitted(format, CarryTable::fit(&fit_set, &model(&fit_set), 3));
                let preds: Vec<Predictions> = checks.iter().map(|(_, qs)| model(qs)).collect();
                let c = check(&formula, format, &checks, &preds);
                assert!(c.per_class.iter().all(|k| k.agreement == 1.0), "{op:?}: {c:?}");
                assert_eq!(formula.description.contains("exact but for"), departs, "{}", formula.description);
            }
            let table = CarryTable::fit(&fit_set, &lookahead(&fit_set), 3);
            let d = table.departures();
            let want = if op == Op::Add { "A3 after 9 9 >=11: no carry" } else { "A3 after 0 0 <=-2: no borrow" };
            assert!(d.iter().any(|x| x.contains(want)), "{d:?}");
        }
    }
}
