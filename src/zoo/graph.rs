//! The zoo's job graph: one job per (model, stage), each with the jobs it waits for, and the
//! arithlens command line each job runs (the same for the local and the Slurm engine).

use super::manifest::Zoo;
use crate::run_folder::RunFolder;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A stage of a model's pipeline, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// `arithlens train`.
    Train,
    /// `arithlens eval`.
    Eval,
    /// `arithlens analyze`.
    Analyze,
    /// `arithlens report`.
    Report,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 4] = [Stage::Train, Stage::Eval, Stage::Analyze, Stage::Report];

    /// The stage's name (also its command's).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Train => "train",
            Stage::Eval => "eval",
            Stage::Analyze => "analyze",
            Stage::Report => "report",
        }
    }

    /// The stage named `name`.
    pub fn parse(name: &str) -> Result<Stage, String> {
        Stage::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| format!("unknown stage '{name}': expected train, eval, analyze or report"))
    }
}

/// One job: a stage of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Job {
    /// Index of the model in the zoo.
    pub model: usize,
    /// The stage.
    pub stage: Stage,
}

/// Every job of the zoo, in manifest order then stage order.
pub fn jobs(zoo: &Zoo) -> Vec<Job> {
    zoo.models.iter().enumerate().flat_map(|(i, m)| m.stages.iter().map(move |&stage| Job { model: i, stage })).collect()
}

/// The jobs `job` waits for: a model's later stages wait for its training (report also for its
/// eval and analysis); an inserted model's training waits for its source's training, and its
/// analysis for its source's analysis (which it reads).
pub fn dependencies(zoo: &Zoo, job: Job) -> Vec<Job> {
    let m = &zoo.models[job.model];
    let own = |s: Stage| m.stages.contains(&s).then_some(Job { model: job.model, stage: s });
    let source = |s: Stage| m.insert_source.filter(|&j| zoo.models[j].stages.contains(&s)).map(|j| Job { model: j, stage: s });
    let deps = match job.stage {
        Stage::Train => vec![source(Stage::Train)],
        Stage::Eval => vec![own(Stage::Train)],
        Stage::Analyze => vec![own(Stage::Train), source(Stage::Analyze)],
        Stage::Report => vec![own(Stage::Train), own(Stage::Eval), own(Stage::Analyze)],
    };
    deps.into_iter().flatten().collect()
}

/// The eval options of the zoo for model `i` (eval's defaults where the manifest sets none;
/// every question for n <= 3 unless it says otherwise, as `run`).
pub fn eval_options(zoo: &Zoo, i: usize) -> crate::eval::EvalOptions {
    let d = crate::eval::EvalOptions::default();
    let e = &zoo.eval;
    let n = zoo.models[i].config.task.n_digits;
    crate::eval::EvalOptions {
        questions: e.questions.unwrap_or(d.questions),
        seed: e.seed.unwrap_or(d.seed),
        exhaustive: e.exhaustive.unwrap_or(n <= crate::eval::accuracy::EXHAUSTIVE_MAX_DIGITS),
        per_class: e.per_class.unwrap_or(d.per_class),
        ..d
    }
}

/// The analyze options of the zoo (analyze's defaults where the manifest sets none).
pub fn analyze_options(zoo: &Zoo) -> crate::analysis::AnalyzeOptions {
    let d = crate::analysis::AnalyzeOptions::default();
    let a = &zoo.analyze;
    crate::analysis::AnalyzeOptions {
        questions: a.questions.unwrap_or(d.questions),
        seed: a.seed.unwrap_or(d.seed),
        pairs: a.pairs.unwrap_or(d.pairs),
        siblings: a.siblings.unwrap_or(d.siblings),
        ..d
    }
}

/// The arithlens arguments that run `job` with `threads` worker threads, given what its run
/// folder holds now: training resumes from a checkpoint, and starts afresh (`--force`) over the
/// training.json of a run killed before its first checkpoint (a lone, unfinished record).
pub fn command(zoo: &Zoo, job: Job, threads: usize) -> Vec<String> {
    let dir = zoo.run_dir(job.model);
    let run = RunFolder::new(&dir);
    let d = dir.display().to_string();
    let mut args = vec!["--threads".to_string(), threads.max(1).to_string(), job.stage.name().to_string()];
    let m = &zoo.models[job.model];
    match job.stage {
        Stage::Train => {
            args.extend(["--preset".into(), m.preset.clone()]);
            for o in &m.overrides {
                args.extend(["--set".into(), o.clone()]);
            }
            args.extend(["--out".into(), d, "--quiet".into()]);
            if !run.model().exists() && run.checkpoint().exists() {
                args.push("--resume".into());
            } else if !run.model().exists() && unfinished_record(&run.training()) {
                args.push("--force".into());
            }
        }
        Stage::Eval => {
            let o = eval_options(zoo, job.model);
            args.extend([d, "--questions".into(), o.questions.to_string(), "--seed".into(), o.seed.to_string()]);
            args.extend(["--per-class".into(), o.per_class.to_string()]);
            if o.exhaustive {
                args.push("--exhaustive".into());
            }
        }
        Stage::Analyze => {
            let o = analyze_options(zoo);
            args.push(d);
            for (flag, v) in [("--questions", o.questions), ("--pairs", o.pairs), ("--siblings", o.siblings)] {
                args.extend([flag.to_string(), v.to_string()]);
            }
            args.extend(["--seed".into(), o.seed.to_string()]);
        }
        Stage::Report => args.push(d),
    }
    args
}

/// Whether `path` is the training.json of a run that never finished (no model hash recorded).
fn unfinished_record(path: &Path) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("model_sha256").is_none_or(|s| s.is_null()))
}
