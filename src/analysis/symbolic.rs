//! Candidate symbolic algorithms checked against the model on every complexity class: exact
//! arithmetic; the one-layer lookahead formula A_k = (BA_k + MC_{k-1} + (MS_{k-1} and
//! MC_{k-2})) mod 10 (for subtraction the same with MD/MB/MZ and the borrow subtracted), which
//! is wrong exactly on cascades through two or more sum-9 columns; and the formula the analysis
//! derived (each digit's carry computed from as many columns below it as its nodes read).
//! Agreement is with the model's own teacher-forced answers, right or wrong.

use super::columns::Columns;
use crate::eval::predict::Predictions;
use crate::task::{Class, Format, Question};
use serde::{Deserialize, Serialize};

/// A function from a question to its answer tokens.
pub type AnswerFn<'a> = Box<dyn Fn(&Question) -> Vec<u32> + 'a>;

/// A symbolic algorithm: question to answer tokens.
pub struct Formula<'a> {
    /// Short name (`exact`, `lookahead2`, `derived`).
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
