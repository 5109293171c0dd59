//! Clean/corrupted question pairs for path patching: the corrupted question differs from the
//! clean one only where the corruption says (e.g. the two digits of column 0 drawn afresh), so
//! what a patched path carries is "what flows from column 0". The corrupted sequence keeps the
//! clean question's answer tokens (teacher forcing), so its answer positions differ from the
//! clean ones only through what the model computed from the corrupted digits.

use crate::task::{Format, Question};
use crate::task_model::TaskModel;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How a corrupted question is drawn from a clean one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Corruption {
    /// Both operands' digits of column `col` (0 = units) replaced by a uniformly drawn pair
    /// that differs from the clean pair in at least one digit; every other digit kept.
    Column {
        /// The column.
        col: usize,
    },
}

impl Corruption {
    /// "column 0".
    pub fn name(&self) -> String {
        match self {
            Corruption::Column { col } => format!("column {col}"),
        }
    }

    /// The operand column it corrupts.
    pub fn column(&self) -> usize {
        match self {
            Corruption::Column { col } => *col,
        }
    }

    /// The corrupted version of `q`. Errors when the column is outside the question.
    pub fn apply(&self, q: &Question, rng: &mut impl Rng) -> Result<Question, String> {
        match *self {
            Corruption::Column { col } => {
                if col >= q.n_digits {
                    return Err(format!("corruption of column {col}: the questions have columns 0..{}", q.n_digits));
                }
                let (dx, dy) = (q.digit_x(col), q.digit_y(col));
                let (nx, ny) = loop {
                    let pair = (rng.gen_range(0..10u8), rng.gen_range(0..10u8));
                    if pair != (dx, dy) {
                        break pair;
                    }
                };
                let unit = 10u128.pow(col as u32);
                let x = q.x - dx as u128 * unit + nx as u128 * unit;
                let y = q.y - dy as u128 * unit + ny as u128 * unit;
                Question::new(x, y, q.op, q.n_digits).map_err(|e| e.to_string())
            }
        }
    }
}

/// Clean questions and their corrupted partners, row for row.
#[derive(Clone, Debug, PartialEq)]
pub struct Pairs {
    /// How the partners were drawn.
    pub corruption: Corruption,
    /// The clean questions.
    pub clean: Vec<Question>,
    /// Their corrupted partners.
    pub corrupt: Vec<Question>,
}

/// A corrupted partner for each question, drawn with `seed`.
pub fn corrupt_pairs(questions: &[Question], corruption: Corruption, seed: u64) -> Result<Pairs, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let corrupt = questions.iter().map(|q| corruption.apply(q, &mut rng)).collect::<Result<Vec<_>, _>>()?;
    Ok(Pairs { corruption, clean: questions.to_vec(), corrupt })
}

impl Pairs {
    /// The token rows `[n, t]` of the clean questions with their answers, and of the corrupted
    /// questions with the clean answers (`t` = the model's question length). Errors when the
    /// lists differ in length or a question has another width than the model's.
    pub fn tokens(&self, model: &TaskModel) -> Result<(Vec<u32>, Vec<u32>), String> {
        if self.clean.len() != self.corrupt.len() {
            return Err(format!("{} clean questions but {} corrupted ones: each needs one partner", self.clean.len(), self.corrupt.len()));
        }
        if let Some(q) = self.clean.iter().chain(&self.corrupt).find(|q| q.n_digits != model.n_digits) {
            return Err(format!("question {} has {} digits, the model answers {}-digit questions", q.text(), q.n_digits, model.n_digits));
        }
        let (format, start) = (model.format, model.answer_start());
        let mut clean = Vec::with_capacity(self.clean.len() * model.n_ctx());
        let mut corrupt = Vec::with_capacity(clean.capacity());
        for (c, k) in self.clean.iter().zip(&self.corrupt) {
            let ct = tokens(c, format)?;
            let kt = tokens(k, format)?;
            corrupt.extend_from_slice(&kt[..start]);
            corrupt.extend_from_slice(&ct[start..]);
            clean.extend(ct);
        }
        Ok((clean, corrupt))
    }
}

fn tokens(q: &Question, format: Format) -> Result<Vec<u32>, String> {
    q.tokens(format).map_err(|e| format!("question {}: {e}", q.text()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{random_questions, Op};

    #[test]
    fn a_column_corruption_changes_that_column_only_and_always() {
        let qs = random_questions(5, Op::Add, 500, 3).unwrap();
        let p = corrupt_pairs(&qs, Corruption::Column { col: 2 }, 9).unwrap();
        for (c, k) in p.clean.iter().zip(&p.corrupt) {
            assert_ne!((c.digit_x(2), c.digit_y(2)), (k.digit_x(2), k.digit_y(2)), "{c:?} {k:?}");
            for col in [0, 1, 3, 4] {
                assert_eq!((c.digit_x(col), c.digit_y(col)), (k.digit_x(col), k.digit_y(col)), "{c:?} {k:?}");
            }
        }
        let err = corrupt_pairs(&qs, Corruption::Column { col: 5 }, 9).unwrap_err();
        assert!(err.contains("columns 0..5"), "{err}");
    }

    #[test]
    fn tokens_refuse_unpaired_or_misfit_questions() {
        let cfg = crate::train::TrainConfig::preset("tiny").unwrap();
        let m = TaskModel::from_file(crate::train::Trainer::new(cfg).unwrap().model_file(), "test").unwrap();
        let qs = random_questions(2, Op::Add, 4, 3).unwrap();
        let mut p = corrupt_pairs(&qs, Corruption::Column { col: 0 }, 1).unwrap();
        let (clean, corrupt) = p.tokens(&m).unwrap();
        assert_eq!(clean.len(), 4 * m.n_ctx());
        assert_eq!(clean[m.answer_start()..m.n_ctx()], corrupt[m.answer_start()..m.n_ctx()], "the clean answer is kept");
        assert_ne!(clean[..m.answer_start()], corrupt[..m.answer_start()]);
        p.corrupt.pop();
        assert!(p.tokens(&m).unwrap_err().contains("4 clean questions but 3 corrupted"));
        let wide = random_questions(3, Op::Add, 4, 3).unwrap();
        let p = corrupt_pairs(&wide, Corruption::Column { col: 0 }, 1).unwrap();
        assert!(p.tokens(&m).unwrap_err().contains("the model answers 2-digit questions"));
    }
}
