//! Section 1, the model and the run: config, size, training time and speed, seeds, accuracy.

use super::page::{Block, Section, Table};
use crate::eval::EvalReport;
use crate::train::log::TrainingLog;
use crate::train::timing::Timing;

fn row(k: &str, v: String) -> Vec<super::page::Cell> {
    vec![k.into(), v.into()]
}

fn config_rows(log: &TrainingLog, timing: Option<&Timing>) -> Vec<Vec<super::page::Cell>> {
    let c = &log.config;
    let m = &c.model;
    let o = &c.optim;
    let time = match timing {
        Some(t) => format!("{:.1} s on {} thread(s), {:.1} steps/s", t.elapsed_s, t.threads, t.steps_per_s),
        None => format!("not recorded (no {}), {} thread(s)", crate::train::timing::FILE, log.threads),
    };
    let steps = log.records.last().map_or(0, |r| r.step);
    vec![
        row("name", c.name.clone()),
        row("task", format!("{}-digit {}, token format {}", c.task.n_digits, crate::task::Op::words(&c.task.ops()), c.task.format.name())),
        row(
            "model",
            format!(
                "{} layer(s), {} heads, d_model {}, d_head {}, d_mlp {}, act_fn {}, normalisation {}, n_ctx {}, d_vocab {}",
                m.n_layers,
                m.n_heads,
                m.d_model,
                m.d_head,
                m.d_mlp,
                if m.act_fn == crate::model::ActFn::Relu { "relu" } else { "gelu" },
                if m.has_ln() { "LN" } else { "none" },
                m.n_ctx,
                m.d_vocab
            ),
        ),
        row("parameters", m.n_params().to_string()),
        row(
            "optimiser",
            format!(
                "AdamW lr {:e}, betas ({}, {}), weight decay {}; {}",
                o.lr,
                o.betas.0,
                o.betas.1,
                o.weight_decay,
                c.schedule.describe()
            ),
        ),
        row("training", format!("{steps} of {} steps, batch {} ({} questions)", c.steps, c.batch_size, steps * c.batch_size as u64)),
        row("training time", time),
        row("seeds", format!("weights {}, data {}", m.seed, c.data_seed)),
        row("final loss", log.records.last().map_or("-".into(), |r| format!("{:.3e}", r.loss))),
    ]
}

fn eval_rows(eval: &EvalReport) -> Vec<Vec<super::page::Cell>> {
    eval.ops.iter().map(|r| row(&format!("accuracy ({})", r.op.word()), r.accuracy_line())).collect()
}

/// The model-and-run section from training.json, timing.json and eval.json (any may be missing);
/// `withheld` are the notes on files present but not shown (they do not belong to the model),
/// shown first.
pub fn section(log: Option<&TrainingLog>, timing: Option<&Timing>, eval: Option<&EvalReport>, withheld: &[String]) -> Section {
    let mut s = Section::new("run", "The model and the run");
    s.blocks.extend(withheld.iter().map(|n| Block::Note(n.clone())));
    let mut rows = log.map(|l| config_rows(l, timing)).unwrap_or_default();
    rows.extend(eval.map(eval_rows).unwrap_or_default());
    if rows.is_empty() && !withheld.is_empty() {
        return s;
    }
    if rows.is_empty() {
        s.push(Block::Note("Neither training.json nor eval.json is in this run folder: run `arithlens run`.".into()));
        return s;
    }
    let caption = "Configuration from training.json; time and speed (timing.json) of the training loop (checkpoints excluded); accuracy from eval.json \
                   (nines: floor(log10(questions / max(failures, 1))), as the follow-up paper counts them).";
    s.push(Block::Table(Table { head: vec!["".into(), "".into()], rows, caption: caption.into() }));
    if log.is_some() && eval.is_none() && withheld.is_empty() {
        s.push(Block::Note("No eval.json yet: run `arithlens eval RUN_DIR` for accuracy and nines.".into()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn training_time(timing: Option<&Timing>) -> String {
        let config = crate::train::TrainConfig::preset("tiny").unwrap();
        let log = TrainingLog { config, answer_names: vec![], records: vec![], threads: 1, model_sha256: None };
        let s = section(Some(&log), timing, None, &[]);
        let Some(Block::Table(t)) = s.blocks.first() else { panic!("no table") };
        t.rows.iter().find(|r| r[0].text == "training time").map(|r| r[1].text.clone()).unwrap()
    }

    #[test]
    fn training_time_and_speed_come_from_timing_json() {
        let t = Timing { step: 2000, elapsed_s: 61.25, steps_per_s: 32.7, threads: 2, records: vec![] };
        assert_eq!(training_time(Some(&t)), "61.2 s on 2 thread(s), 32.7 steps/s");
        assert_eq!(training_time(None), "not recorded (no timing.json), 1 thread(s)");
    }
}
