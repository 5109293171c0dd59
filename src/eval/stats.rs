//! Accuracy bookkeeping: per-class tallies, the "nines" convention, and the highest-loss questions.

use crate::task::{Class, Question};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The number of nines in an accuracy measured on `total` questions with `failures` wrong:
/// `floor(log10(total / max(failures, 1)))`. On a million questions 0 or 1 failures give six
/// nines (99.9999%), 2-10 five, 11-100 four, as the follow-up paper counts them. With no failure
/// the figure is a lower bound ("at least six nines").
pub fn nines(failures: u64, total: u64) -> u32 {
    if total == 0 {
        return 0;
    }
    let ratio = total as f64 / failures.max(1) as f64;
    // A small epsilon keeps exact powers of ten (1e6 / 1) from rounding down.
    (ratio.log10() + 1e-9).floor().max(0.0) as u32
}

/// Tally of one question set or one class within it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Questions seen.
    pub n: u64,
    /// Questions answered entirely correctly.
    pub correct: u64,
    /// Sum of per-question mean answer-token losses.
    pub loss_sum: f64,
    /// Correct answers per answer token.
    pub digit_correct: Vec<u64>,
}

impl Tally {
    /// Adds one question's result.
    pub fn add(&mut self, correct: bool, loss: f64, digit_ok: &[bool]) {
        if self.digit_correct.len() < digit_ok.len() {
            self.digit_correct.resize(digit_ok.len(), 0);
        }
        self.n += 1;
        self.correct += correct as u64;
        self.loss_sum += loss;
        self.digit_correct.iter_mut().zip(digit_ok).for_each(|(c, &ok)| *c += ok as u64);
    }

    /// Adds another tally.
    pub fn merge(&mut self, o: &Tally) {
        if self.digit_correct.len() < o.digit_correct.len() {
            self.digit_correct.resize(o.digit_correct.len(), 0);
        }
        self.n += o.n;
        self.correct += o.correct;
        self.loss_sum += o.loss_sum;
        self.digit_correct.iter_mut().zip(&o.digit_correct).for_each(|(a, b)| *a += b);
    }

    /// Wrong answers.
    pub fn failures(&self) -> u64 {
        self.n - self.correct
    }

    /// The summary row of this tally.
    pub fn row(&self, label: &str) -> ClassRow {
        let n = self.n.max(1) as f64;
        ClassRow {
            class: label.to_string(),
            n: self.n,
            failures: self.failures(),
            accuracy: self.correct as f64 / n,
            mean_loss: self.loss_sum / n,
            digit_accuracy: self.digit_correct.iter().map(|&c| c as f64 / n).collect(),
        }
    }
}

/// One line of a per-class table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassRow {
    /// Class name (S0, S1, ..., or "all").
    pub class: String,
    /// Sample size.
    pub n: u64,
    /// Wrong answers.
    pub failures: u64,
    /// Share answered correctly.
    pub accuracy: f64,
    /// Mean loss (mean over answer tokens, then questions).
    pub mean_loss: f64,
    /// Share correct per answer token, most significant first.
    pub digit_accuracy: Vec<f64>,
}

/// Tallies by class.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassTallies(pub BTreeMap<Class, Tally>);

impl ClassTallies {
    /// Adds a question's result under its class.
    pub fn add(&mut self, class: Class, correct: bool, loss: f64, digit_ok: &[bool]) {
        self.0.entry(class).or_default().add(correct, loss, digit_ok);
    }

    /// All classes together.
    pub fn total(&self) -> Tally {
        let mut t = Tally::default();
        self.0.values().for_each(|v| t.merge(v));
        t
    }

    /// One row per class, then "all".
    pub fn rows(&self) -> Vec<ClassRow> {
        let mut v: Vec<ClassRow> = self.0.iter().map(|(c, t)| t.row(&c.to_string())).collect();
        v.push(self.total().row("all"));
        v
    }
}

/// A question the model finds hard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HardQuestion {
    /// The question, e.g. "44445+55555=".
    pub question: String,
    /// Its complexity class.
    pub class: String,
    /// Mean answer-token loss.
    pub loss: f64,
    /// The true answer tokens as text.
    pub truth: String,
    /// The model's (teacher-forced argmax) answer tokens as text.
    pub predicted: String,
    /// Answer token names that went wrong (e.g. ["A4", "A3"]).
    pub wrong_digits: Vec<String>,
}

/// The `k` highest-loss questions seen so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopLoss {
    k: usize,
    items: Vec<(f64, Question, Vec<u32>)>,
}

impl TopLoss {
    /// Keeps the `k` worst.
    pub fn new(k: usize) -> TopLoss {
        TopLoss { k, items: Vec::new() }
    }

    /// Offers a question with its loss and predicted answer tokens.
    pub fn offer(&mut self, loss: f64, q: &Question, predicted: &[u32]) {
        if self.k == 0 || (self.items.len() == self.k && loss <= self.items[self.k - 1].0) || self.items.iter().any(|(_, x, _)| x == q) {
            return;
        }
        let at = self.items.partition_point(|(l, _, _)| *l >= loss);
        self.items.insert(at, (loss, *q, predicted.to_vec()));
        self.items.truncate(self.k);
    }

    /// The kept questions, worst first, described with `answer_names` and the token format.
    pub fn describe(&self, format: crate::task::Format, answer_names: &[String]) -> Vec<HardQuestion> {
        let text = |toks: &[u32]| format.tokens_text(toks);
        self.items
            .iter()
            .map(|(loss, q, pred)| {
                let truth = q.answer_tokens(format);
                let wrong = truth.iter().zip(pred).zip(answer_names).filter(|((a, b), _)| a != b).map(|(_, n)| n.clone()).collect();
                HardQuestion {
                    question: q.text(),
                    class: q.class().to_string(),
                    loss: *loss,
                    truth: text(&truth),
                    predicted: text(pred),
                    wrong_digits: wrong,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_follow_the_follow_up_papers_convention() {
        let m = 1_000_000;
        assert_eq!(
            [nines(0, m), nines(1, m), nines(2, m), nines(10, m), nines(11, m), nines(100, m), nines(101, m)],
            [6, 6, 5, 5, 4, 4, 3]
        );
        assert_eq!(nines(0, 10_000), 4);
        assert_eq!(nines(5000, 10_000), 0);
    }

    #[test]
    fn top_loss_keeps_the_worst_distinct_questions_in_order() {
        let q = |x| Question::new(x, 1, crate::task::Op::Add, 2).unwrap();
        let mut t = TopLoss::new(2);
        for (x, l) in [(1, 0.5), (2, 3.0), (3, 1.0), (2, 3.0), (4, 0.1)] {
            t.offer(l, &q(x), &[0, 0, 0]);
        }
        let names: Vec<String> = ["A2", "A1", "A0"].iter().map(|s| s.to_string()).collect();
        let d = t.describe(crate::task::Format::Paper1, &names);
        assert_eq!(d.iter().map(|h| h.question.as_str()).collect::<Vec<_>>(), ["02+01=", "03+01="]);
        assert_eq!(d[0].wrong_digits, ["A0"]);
    }
}
