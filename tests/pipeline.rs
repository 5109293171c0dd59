//! The library's pipeline as a Python binding or a model zoo calls it: progress arrives as
//! events, a stop handle stops each long stage cleanly with a typed error, a run continues where
//! it stopped, and files that are current are not recomputed.

use arithlens::pipeline::{self, Error, Run, TrainOptions};
use arithlens::progress::{Event, Stop};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("arithlens-pipeline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options(dir: &std::path::Path) -> TrainOptions {
    let overrides = ["steps=40", "d_model=24", "log_every=10", "checkpoint_every=20"].map(String::from).to_vec();
    TrainOptions { overrides, out: Some(dir.to_path_buf()), ..TrainOptions::new("tiny") }
}

/// What a call reported: its notes, the first training step seen, and whether evaluation and
/// analysis events came.
#[derive(Default)]
struct Seen {
    notes: Vec<String>,
    first_step: Option<u64>,
    eval: bool,
    analysis: bool,
}

impl Seen {
    fn record(&mut self, e: Event) {
        match e {
            Event::Note(n) => self.notes.push(n),
            Event::Train { step, .. } => {
                self.first_step.get_or_insert(step);
            }
            Event::Eval { .. } => self.eval = true,
            Event::Analysis { .. } => self.analysis = true,
        }
    }

    fn has(&self, prefix: &str) -> bool {
        self.notes.iter().any(|n| n.starts_with(prefix))
    }
}

#[test]
fn a_stopped_run_continues_reports_every_stage_and_then_skips_what_is_current() {
    let dir = tmp("run");
    let opts = options(&dir);
    // A stop requested during step 25 ends training after it, with a typed error and a checkpoint.
    let stop = Stop::new();
    let setter = stop.clone();
    let err = pipeline::run(&opts, &stop, &mut |e| {
        if matches!(e, Event::Train { step: 25, .. }) {
            setter.request();
        }
    })
    .unwrap_err();
    assert!(matches!(&err, Error::Stopped(s) if s.0.contains("stopped after step 25 of 40")), "{err:?}");
    assert!(dir.join("checkpoint.safetensors").exists() && !dir.join("model.safetensors").exists());

    // The next run resumes at step 26 and goes through every stage.
    let mut seen = Seen::default();
    let report = pipeline::run(&opts, &Stop::new(), &mut |e| seen.record(e)).unwrap();
    assert_eq!(report, dir.join("report.html"));
    assert!(report.exists());
    assert_eq!(seen.first_step, Some(26), "training continues after the stopped step");
    assert!(seen.eval && seen.analysis, "evaluation and analysis report their progress");
    for stage in ["[1/4] train (resuming from the last checkpoint)", "[2/4] evaluate", "[3/4] analyze", "[4/4] report"] {
        assert!(seen.notes.iter().any(|n| n == stage), "no note {stage:?} in {:?}", seen.notes);
    }

    // A third run finds the model, eval.json and analysis.json current.
    let mut again = Seen::default();
    pipeline::run(&opts, &Stop::new(), &mut |e| again.record(e)).unwrap();
    assert!(again.has("[1/4] train: ") && again.notes[0].contains("skipping training"), "{:?}", again.notes);
    assert!(again.has("[2/4] evaluate: ") && again.notes.iter().any(|n| n.contains("eval.json is up to date")), "{:?}", again.notes);
    assert!(again.notes.iter().any(|n| n.contains("analysis.json is up to date")), "{:?}", again.notes);
    assert!(again.first_step.is_none() && !again.eval && !again.analysis, "nothing was recomputed");

    // Stage by stage: a stop requested before the analysis leaves no analysis.json.
    std::fs::remove_file(dir.join("analysis.json")).unwrap();
    let mut run = Run::new(&opts).unwrap();
    assert_eq!(run.folder().dir(), dir.as_path());
    assert!(run.train(&Stop::new(), &mut arithlens::progress::ignore).unwrap().is_none(), "trained already");
    assert!(run.evaluate(&Stop::new(), &mut arithlens::progress::ignore).unwrap().is_none(), "eval.json is current");
    let stop = Stop::new();
    stop.request();
    let err = run.analyze(&stop, &mut arithlens::progress::ignore).unwrap_err();
    assert!(matches!(&err, Error::Stopped(s) if s.0.contains("stopped before analysis stage accuracy")), "{err:?}");
    assert!(!dir.join("analysis.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_are_typed_and_keep_their_messages() {
    let dir = tmp("errors");
    let err =
        pipeline::evaluate(&dir.join("none"), &Default::default(), Default::default(), &Stop::new(), &mut arithlens::progress::ignore)
            .unwrap_err();
    assert!(matches!(&err, Error::Model(arithlens::task_model::ModelError::NotFound { .. })), "{err:?}");
    assert!(err.to_string().starts_with("no model at "), "{err}");
    let bad = TrainOptions { overrides: vec!["d_model=18446744073709551615".into()], ..options(&dir) };
    let err = pipeline::train(&bad, &Stop::new(), &mut arithlens::progress::ignore).unwrap_err();
    assert!(matches!(&err, Error::Config(_)) && err.to_string().contains("d_model"), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
