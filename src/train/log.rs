//! The training record (training.json): loss curves overall, per answer digit, and per
//! sub-task, the curves the paper uses to show each digit being learned semi-independently.

use crate::io::schema::Versioned;
use crate::task::{Format, Question};
use serde::{Deserialize, Serialize};

/// What an answer digit needs from the columns below it, in one question: nothing (base add /
/// base difference), a carry (borrow) made by the column just below, or a carry (borrow) that
/// cascades through sum-9 (equal-digit) columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DigitNeed {
    /// BA only: no carry into this column.
    Base,
    /// UC: the carry comes straight from the column below (MC_{k-1}).
    Carry,
    /// US: the carry passes through one or more sum-9 columns.
    Cascade,
}

/// Sub-task losses are kept for these three needs, in this order.
pub const NEEDS: [DigitNeed; 3] = [DigitNeed::Base, DigitNeed::Carry, DigitNeed::Cascade];

/// What each answer token of `q` needs, in token order (the sign token, if any, counts as Base).
pub fn digit_needs(q: &Question, format: Format) -> Vec<DigitNeed> {
    let n = q.n_digits;
    let c = crate::task::Columns::of(q);
    let carry_into = c.carries();
    let mut v: Vec<DigitNeed> = (0..=n)
        .rev()
        .map(|k| match (carry_into[k], k > 0 && c.make[k - 1]) {
            (false, _) => DigitNeed::Base,
            (true, true) => DigitNeed::Carry,
            (true, false) => DigitNeed::Cascade,
        })
        .collect();
    if format.n_answer(n) > n + 1 {
        v.insert(0, DigitNeed::Base);
    }
    v
}

/// One point of the training curves: means over the steps since the previous record. Its
/// seconds are in timing.json ([`super::timing`]), so that the record is the same byte for byte
/// whether the run was stopped and resumed or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Steps done.
    pub step: u64,
    /// Learning rate at this step.
    pub lr: f64,
    /// Mean loss.
    pub loss: f64,
    /// Mean loss per answer token.
    pub digit_loss: Vec<f64>,
    /// `need_loss[i][d]`: mean loss of answer token d over questions where it has need
    /// `NEEDS[i]` (null when no such question was seen).
    pub need_loss: Vec<Vec<Option<f64>>>,
    /// Mean loss of questions needing no carry anywhere, a carry but no cascade, and a cascade.
    pub question_loss: Vec<Option<f64>>,
}

/// training.json. Its schema version ([`TrainingLog::SCHEMA`]) is written first by its
/// serialisation rather than held as a field, so every writer of the log (each checkpoint and the
/// finished run) records it; reading checks it ([`TrainingLog::load`]; a file that records none
/// was written before versions were recorded and reads as version 1).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TrainingLog {
    /// The run's full configuration.
    pub config: super::config::TrainConfig,
    /// Answer token names, the index of `digit_loss`.
    pub answer_names: Vec<String>,
    /// Records, every `log_every` steps.
    pub records: Vec<Record>,
    /// Threads used (results depend on the seed and the thread count).
    pub threads: usize,
    /// Hex SHA-256 of the model.safetensors this run wrote when it finished (`None` while it
    /// runs, and in files of older versions): the report shows these curves only beside that
    /// model.
    #[serde(default)]
    pub model_sha256: Option<String>,
}

impl TrainingLog {
    /// The schema version of training.json this arithlens writes and reads.
    pub const SCHEMA: u32 = 1;
}

impl Versioned for TrainingLog {
    const FILE: &'static str = crate::run_folder::files::TRAINING;
    const SCHEMA: u32 = TrainingLog::SCHEMA;
}

impl Serialize for TrainingLog {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        // Every field by name: a field added to the struct but not written here does not compile.
        let TrainingLog { config, answer_names, records, threads, model_sha256 } = self;
        let mut out = s.serialize_struct("TrainingLog", 6)?;
        out.serialize_field("schema", &TrainingLog::SCHEMA)?;
        out.serialize_field("config", config)?;
        out.serialize_field("answer_names", answer_names)?;
        out.serialize_field("records", records)?;
        out.serialize_field("threads", threads)?;
        out.serialize_field("model_sha256", model_sha256)?;
        out.end()
    }
}

/// Sums between two records. A checkpoint holds them, so that the first record after a resume
/// averages over the same steps as an uninterrupted run's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    steps: u64,
    loss: f64,
    digit: Vec<f64>,
    need: Vec<Vec<(f64, u64)>>,
    question: Vec<(f64, u64)>,
    rows: u64,
}

fn mean(s: (f64, u64)) -> Option<f64> {
    (s.1 > 0).then(|| s.0 / s.1 as f64)
}

impl Accumulator {
    /// Empty sums for `n_answer` answer tokens.
    pub fn new(n_answer: usize) -> Accumulator {
        Accumulator {
            steps: 0,
            loss: 0.0,
            digit: vec![0.0; n_answer],
            need: vec![vec![(0.0, 0); n_answer]; 3],
            question: vec![(0.0, 0); 3],
            rows: 0,
        }
    }

    /// Whether these sums are for `n_answer` answer tokens (sums read from a damaged checkpoint
    /// may not be).
    pub fn fits(&self, n_answer: usize) -> bool {
        self.digit.len() == n_answer
            && self.need.len() == NEEDS.len()
            && self.need.iter().all(|v| v.len() == n_answer)
            && self.question.len() == NEEDS.len()
    }

    /// Adds one step: its batch, and `nll` [batch, n_answer].
    pub fn add(&mut self, questions: &[Question], format: Format, nll: &[f64], loss: f64) {
        let n = self.digit.len();
        self.steps += 1;
        self.loss += loss;
        for (q, row) in questions.iter().zip(nll.chunks_exact(n)) {
            let needs = digit_needs(q, format);
            for (d, (&l, need)) in row.iter().zip(&needs).enumerate() {
                self.digit[d] += l;
                let s = &mut self.need[*need as usize][d];
                *s = (s.0 + l, s.1 + 1);
            }
            let worst = needs.iter().map(|&k| k as usize).max().unwrap_or(0);
            let s = &mut self.question[worst];
            *s = (s.0 + row.iter().sum::<f64>() / n as f64, s.1 + 1);
            self.rows += 1;
        }
    }

    /// The record for the steps added so far, then starts afresh.
    pub fn take(&mut self, step: u64, lr: f64) -> Record {
        let r = Record {
            step,
            lr,
            loss: self.loss / self.steps.max(1) as f64,
            digit_loss: self.digit.iter().map(|s| s / self.rows.max(1) as f64).collect(),
            need_loss: self.need.iter().map(|v| v.iter().map(|&s| mean(s)).collect()).collect(),
            question_loss: self.question.iter().map(|&s| mean(s)).collect(),
        };
        *self = Accumulator::new(self.digit.len());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> TrainingLog {
        let config = crate::train::TrainConfig::preset("tiny").unwrap();
        let record = Record {
            step: 10,
            lr: 1e-3,
            loss: 0.5,
            digit_loss: vec![0.5; 3],
            need_loss: vec![vec![None; 3]; 3],
            question_loss: vec![None; 3],
        };
        TrainingLog { config, answer_names: vec!["A2".into()], records: vec![record], threads: 2, model_sha256: Some("ab".repeat(32)) }
    }

    #[test]
    fn training_json_records_its_schema_first_and_reads_back_every_field() {
        let log = log();
        let text = serde_json::to_string(&log).unwrap();
        assert!(text.starts_with(r#"{"schema":1,"config":"#), "{}", &text[..40]);
        assert_eq!(serde_json::from_str::<TrainingLog>(&text).unwrap(), log);
        let dir = std::env::temp_dir().join(format!("arithlens-log-{}", std::process::id()));
        let path = dir.join("training.json");
        log.save(&path).unwrap();
        assert_eq!(TrainingLog::load(&path).unwrap(), log);
        // Written before versions were recorded: no schema field, version 1.
        std::fs::write(&path, text.replacen(r#""schema":1,"#, "", 1)).unwrap();
        assert_eq!(TrainingLog::load(&path).unwrap(), log);
        std::fs::write(&path, text.replacen(r#""schema":1,"#, r#""schema":3,"#, 1)).unwrap();
        let err = TrainingLog::load(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("training.json: it has schema version 3, but this arithlens reads training.json of schema version 1 only"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
