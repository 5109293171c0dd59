//! Whether a job's output is current: the one place the zoo decides what to skip. It asks the run
//! folder ([`RunFolder::training_state`], [`RunFolder::current`] of eval.json
//! and analysis.json, [`RunFolder::current_report`]), the same checks
//! `arithlens run` skips by, with the zoo's options; on top, a finished training must be one
//! whose training.json records the config the manifest asks for and the hash of the model
//! beside it.

use super::graph::{analyze_options, eval_options, Job, Stage};
use super::manifest::Zoo;
use crate::run_folder::{RunFolder, Training};
use std::path::Path;

/// What a job's run folder holds for it.
#[derive(Clone, Debug, PartialEq)]
pub enum Fresh {
    /// Its output is current: nothing to do.
    Done,
    /// Not done; the reason (missing, another model's, other options).
    Todo(String),
    /// Started and interrupted: it continues from where it stopped (a checkpoint, eval progress).
    Partial(String),
    /// The folder holds something the zoo must not replace (a model trained with another config).
    Conflict(String),
}

impl Fresh {
    /// Whether the job's output is current.
    pub fn is_done(&self) -> bool {
        *self == Fresh::Done
    }

    /// The state in words: `current`, `to do: REASON`, `partly done: ...`, `conflict: ...`.
    pub fn describe(&self) -> String {
        match self {
            Fresh::Done => "current".into(),
            Fresh::Todo(why) => format!("to do: {why}"),
            Fresh::Partial(why) => format!("partly done: {why}"),
            Fresh::Conflict(why) => format!("conflict: {why}"),
        }
    }
}

/// The state of `job`'s output in its run folder.
pub fn job_state(zoo: &Zoo, job: Job) -> Fresh {
    let run = RunFolder::new(zoo.run_dir(job.model));
    let sha = match trained_model(zoo, job.model, &run) {
        Ok(sha) => sha,
        Err(state) if job.stage == Stage::Train => return state,
        Err(_) => return Fresh::Todo("waits for train".into()),
    };
    let (path, found) = match job.stage {
        Stage::Train => return Fresh::Done,
        Stage::Eval => {
            let found = run.current::<crate::eval::EvalReport>(&sha, &eval_options(zoo, job.model).provenance_options()).map(|_| ());
            if found.is_err() && run.eval_partial().exists() {
                return Fresh::Partial("eval.partial.json holds an interrupted evaluation".into());
            }
            (run.eval(), found)
        }
        Stage::Analyze => (run.analysis(), run.current::<crate::analysis::Analysis>(&sha, &analyze_value(zoo)).map(|_| ())),
        Stage::Report => (run.report(), run.current_report(&sha, &report_expected(zoo, job.model, &run))),
    };
    match found {
        Ok(()) => Fresh::Done,
        Err(why) => Fresh::Todo(format!("{} {}", file_name(&path), why.reason())),
    }
}

/// The hash of the model in `run` when it is the finished training the zoo asks for, else the
/// training job's state.
fn trained_model(zoo: &Zoo, i: usize, run: &RunFolder) -> Result<String, Fresh> {
    match run.training_state() {
        Training::NotStarted => return Err(Fresh::Todo("model.safetensors is missing".into())),
        Training::Interrupted => return Err(Fresh::Partial("checkpoint.safetensors: training resumes from it".into())),
        Training::Finished => {}
    }
    let sha = run.model_sha256().map_err(|e| Fresh::Todo(e.to_string()))?;
    let log: crate::train::log::TrainingLog = crate::provenance::read_parsed(&run.training()).map_err(|why| {
        Fresh::Conflict(format!(
            "{} holds a model but its training.json {}; move it away or use another --root",
            run.dir().display(),
            why.reason()
        ))
    })?;
    let want = serde_json::to_value(&zoo.models[i].config).unwrap_or_default();
    let have = serde_json::to_value(&log.config).unwrap_or_default();
    if want != have {
        return Err(Fresh::Conflict(format!(
            "{} holds a model trained with another config than the manifest's (preset {}, overrides [{}]); move it away or use another --root",
            run.dir().display(),
            zoo.models[i].preset,
            zoo.models[i].overrides.join(", ")
        )));
    }
    if log.model_sha256.as_deref().is_some_and(|s| s != sha) {
        return Err(Fresh::Conflict(format!(
            "{}: training.json records another model than model.safetensors; move the folder away or use another --root",
            run.dir().display()
        )));
    }
    Ok(sha)
}

/// The zoo's analysis options as recorded in analysis.json's provenance.
fn analyze_value(zoo: &Zoo) -> serde_json::Value {
    serde_json::to_value(analyze_options(zoo)).unwrap_or_default()
}

/// The provenance report.html must record for model `i`: the files it shows, with the zoo's
/// eval and analysis options.
fn report_expected(zoo: &Zoo, i: usize, run: &RunFolder) -> serde_json::Value {
    let stages = &zoo.models[i].stages;
    serde_json::json!({
        "training.json": run.training().exists(),
        "eval.json": stages.contains(&Stage::Eval).then(|| eval_options(zoo, i).provenance_options()),
        "analysis.json": stages.contains(&Stage::Analyze).then(|| analyze_value(zoo)),
    })
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
