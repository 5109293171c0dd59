//! Whether a job's output is current: the one place the zoo decides what to skip. A stage is
//! done when its file belongs, by provenance, to the run folder's model and the zoo's options
//! (the check `arithlens run` makes); a finished training is one whose training.json records
//! the config the manifest asks for and the hash of the model beside it.

use super::graph::{analyze_options, eval_options, Job, Stage};
use super::manifest::Zoo;
use crate::provenance::{read_current, Stale};
use crate::run_folder::RunFolder;
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
    if job.stage == Stage::Train {
        let _ = sha;
        return Fresh::Done;
    }
    let (path, found) = match job.stage {
        Stage::Eval => {
            let o = eval_options(zoo, job.model).provenance_options();
            let got = read_current::<crate::eval::EvalReport>(&run.eval(), &sha, Some(&o)).map(|_| ());
            if got.is_err() && run.eval_partial().exists() {
                return Fresh::Partial("eval.partial.json holds an interrupted evaluation".into());
            }
            (run.eval(), got)
        }
        Stage::Analyze => {
            let o = serde_json::to_value(analyze_options(zoo)).unwrap_or_default();
            (run.analysis(), read_current::<crate::analysis::Analysis>(&run.analysis(), &sha, Some(&o)).map(|_| ()))
        }
        _ => (run.report(), report_current(zoo, job.model, &run, &sha)),
    };
    match found {
        Ok(()) => Fresh::Done,
        Err(why) => Fresh::Todo(format!("{} {}", file_name(&path), why.reason())),
    }
}

/// The hash of the model in `run` when it is the finished training the zoo asks for, else the
/// training job's state.
fn trained_model(zoo: &Zoo, i: usize, run: &RunFolder) -> Result<String, Fresh> {
    if !run.model().exists() {
        return Err(if run.checkpoint().exists() {
            Fresh::Partial("checkpoint.safetensors: training resumes from it".into())
        } else {
            Fresh::Todo("model.safetensors is missing".into())
        });
    }
    let sha = crate::provenance::sha256_file(&run.model()).map_err(|e| Fresh::Todo(e.to_string()))?;
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

/// Whether report.html was made from this model with the zoo's eval and analysis (the
/// provenance `arithlens report` records in its `<meta name="arithlens-provenance">`).
fn report_current(zoo: &Zoo, i: usize, run: &RunFolder, sha: &str) -> Result<(), Stale> {
    let html = match std::fs::read_to_string(run.report()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Stale::Missing),
        Err(e) => return Err(Stale::Unusable(format!("cannot read it: {e}"))),
        Ok(h) => h,
    };
    let found = meta_provenance(&html).ok_or_else(|| Stale::Unusable("no arithlens-provenance entry".into()))?;
    let stages = &zoo.models[i].stages;
    let expected = serde_json::json!({
        "training.json": run.training().exists(),
        "eval.json": stages.contains(&Stage::Eval).then(|| eval_options(zoo, i).provenance_options()),
        "analysis.json": stages.contains(&Stage::Analyze).then(|| serde_json::to_value(analyze_options(zoo)).unwrap_or_default()),
    });
    match crate::provenance::mismatch(Some(&found), sha, Some(&expected)) {
        Some(why) => Err(Stale::Foreign(why)),
        None => Ok(()),
    }
}

/// The provenance in a page's `<meta name="arithlens-provenance" content="...">`.
fn meta_provenance(html: &str) -> Option<crate::provenance::Provenance> {
    let key = "<meta name=\"arithlens-provenance\" content=\"";
    let start = html.find(key)? + key.len();
    let end = start + html[start..].find('"')?;
    let text =
        html[start..end].replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&#39;", "'").replace("&amp;", "&");
    serde_json::from_str(&text).ok()
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
