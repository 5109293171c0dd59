//! Training end to end on the tiny preset: it learns 2-digit addition exactly, runs are
//! reproducible from their seed, resume is bit-identical (after a crash or a requested stop) down to
//! the bytes of every file, and a diverging run stops cleanly and says what is on disk.

use arithlens::eval::predict::teacher_forced;
use arithlens::io::schema::ReadError;
use arithlens::progress::{ignore, Event, Stop};
use arithlens::run_folder::files;
use arithlens::task::generate::all_questions;
use arithlens::task::Op;
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, TrainError, Trainer};
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arithlens-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tiny(overrides: &[&str]) -> TrainConfig {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    TrainConfig::preset("tiny").unwrap().with_overrides(&o).unwrap()
}

#[test]
fn tiny_preset_answers_all_10000_two_digit_questions() {
    let dir = tmp("tiny");
    let mut t = Trainer::new(tiny(&[])).unwrap();
    t.train(&dir, &Stop::new(), &mut ignore).unwrap();
    let m = TaskModel::load(&dir).unwrap();
    let qs: Vec<_> = all_questions(2, Op::Add).unwrap().collect();
    assert_eq!(qs.len(), 10_000);
    let p = teacher_forced(&m, &qs, 2000);
    let wrong: Vec<String> =
        qs.iter().enumerate().filter(|(i, q)| !p.correct(*i, &q.answer_tokens(m.format))).map(|(_, q)| q.text()).collect();
    assert!(wrong.is_empty(), "{} wrong, e.g. {:?}", wrong.len(), &wrong[..wrong.len().min(5)]);
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(files::TRAINING)).unwrap()).unwrap();
    let records = log["records"].as_array().unwrap();
    assert_eq!(records.len(), 2000 / 50);
    assert!(records[0]["loss"].as_f64().unwrap() > 100.0 * records.last().unwrap()["loss"].as_f64().unwrap());
    assert_eq!(records[0]["digit_loss"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn same_seed_same_weights_and_another_seed_differs() {
    let run = |seed: &str| {
        let mut t = Trainer::new(tiny(&["steps=30", seed])).unwrap();
        (0..30).for_each(|_| {
            t.step().unwrap();
        });
        t.params.data
    };
    let a = run("seed=7");
    assert_eq!(a, run("seed=7"));
    assert_ne!(a, run("seed=8"));
}

#[test]
fn resumed_run_ends_bit_identical_to_an_uninterrupted_one() {
    let cfg = tiny(&["steps=120", "checkpoint_every=40", "log_every=20"]);
    let (a, b) = (tmp("whole"), tmp("resumed"));
    Trainer::new(cfg.clone()).unwrap().train(&a, &Stop::new(), &mut ignore).unwrap();
    let mut first = Trainer::new(cfg.clone()).unwrap();
    first.train_until(&b, 55, &Stop::new(), &mut ignore).unwrap();
    drop(first); // "killed" at step 55: the checkpoint on disk is from step 40
    let mut resumed = Trainer::resume(&b, None).unwrap();
    assert_eq!(resumed.step_count(), 40);
    resumed.train(&b, &Stop::new(), &mut ignore).unwrap();
    let wa = TaskModel::load(&a).unwrap().params.data;
    let wb = TaskModel::load(&b).unwrap().params.data;
    assert!(wa == wb, "weights differ after resume");
    assert_same_files(&a, &b);
    let other = tiny(&["steps=120", "lr=0.5"]);
    let err = Trainer::resume(&b, Some(other)).err().unwrap();
    assert!(matches!(err, TrainError::ConfigChanged { .. }), "{err:?}");
    assert!(err.to_string().contains("config differs"), "{err}");
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn resume_refuses_a_training_json_of_a_newer_schema_and_writes_nothing() {
    let cfg = tiny(&["steps=20", "checkpoint_every=10", "log_every=10"]);
    let dir = tmp("newer-schema");
    Trainer::new(cfg).unwrap().train_until(&dir, 10, &Stop::new(), &mut ignore).unwrap();
    let log = dir.join(files::TRAINING);
    let text = std::fs::read_to_string(&log).unwrap();
    let newer = text.replacen("\"schema\": 1,", "\"schema\": 99,", 1);
    assert_ne!(newer, text, "training.json records its schema");
    std::fs::write(&log, &newer).unwrap();
    let before: Vec<(String, Vec<u8>)> = files_of(&dir);
    let err = Trainer::resume(&dir, None).err().unwrap();
    assert!(matches!(err, TrainError::Log(ReadError::Unsupported { found: 99, supported: 1, .. })), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}: it has schema version 99", log.display())), "{msg}");
    assert!(msg.contains("training.json of schema version 1 only"), "{msg}");
    assert_eq!(files_of(&dir), before, "nothing in the run folder is written or removed");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Every file in `dir` (sorted by name) with its bytes.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    all.sort();
    all
}

#[test]
fn a_stop_request_checkpoints_the_step_and_resume_continues_bit_identically() {
    let cfg = tiny(&["steps=120", "checkpoint_every=40", "log_every=20"]);
    let (a, b) = (tmp("unstopped"), tmp("stopped"));
    Trainer::new(cfg.clone()).unwrap().train(&a, &Stop::new(), &mut ignore).unwrap();
    let mut t = Trainer::new(cfg).unwrap();
    let stop = Stop::new();
    // As if Ctrl-C arrived during step 53 (the request comes through a clone of the handle).
    let setter = stop.clone();
    let mut steps = Vec::new();
    let mut progress = |e: Event| {
        if let Event::Train { step, steps: total, .. } = e {
            assert_eq!(total, 120);
            steps.push(step);
            if step == 53 {
                setter.request();
            }
        }
    };
    let err = t.train(&b, &stop, &mut progress).unwrap_err();
    assert!(matches!(err, TrainError::Stopped(_)), "a stop is told apart from a failure: {err:?}");
    let err = err.to_string();
    assert_eq!(steps, (1..=53).collect::<Vec<u64>>(), "one event per step, up to the stop");
    assert!(err.contains("stopped after step 53 of 120") && err.contains("--resume"), "{err}");
    assert!(!b.join(files::MODEL).exists(), "a stopped run has no final model");
    let mut resumed = Trainer::resume(&b, None).unwrap();
    assert_eq!(resumed.step_count(), 53, "the checkpoint holds the step in progress, not the last periodic one");
    resumed.train(&b, &Stop::new(), &mut ignore).unwrap();
    assert!(TaskModel::load(&a).unwrap().params.data == TaskModel::load(&b).unwrap().params.data, "weights differ after the stop");
    // Step 53 is between two records (40, 60): the record at 60 must average steps 41-60.
    assert_same_files(&a, &b);
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The model, the checkpoint and training.json of two run folders are the same bytes.
fn assert_same_files(a: &std::path::Path, b: &std::path::Path) {
    for name in [files::MODEL, files::CHECKPOINT, files::TRAINING] {
        let (x, y) = (std::fs::read(a.join(name)).unwrap(), std::fs::read(b.join(name)).unwrap());
        assert!(x == y, "{name} differs between {} and {}", a.display(), b.display());
    }
}

#[test]
fn two_runs_of_the_same_seed_write_the_same_bytes() {
    let cfg = tiny(&["steps=40", "checkpoint_every=20", "log_every=10"]);
    let (a, b) = (tmp("bytes-a"), tmp("bytes-b"));
    Trainer::new(cfg.clone()).unwrap().train(&a, &Stop::new(), &mut ignore).unwrap();
    Trainer::new(cfg).unwrap().train(&b, &Stop::new(), &mut ignore).unwrap();
    assert_same_files(&a, &b);
    // The wall-clock figures are in timing.json alone.
    let log = std::fs::read_to_string(a.join(files::TRAINING)).unwrap();
    assert!(!log.contains("elapsed_s") && !log.contains("steps_per_s"), "{log}");
    let timing = arithlens::train::timing::Timing::load(&a).unwrap();
    assert_eq!((timing.step, timing.records.len()), (40, 4));
    assert!(timing.elapsed_s > 0.0 && timing.steps_per_s > 0.0);
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn a_non_finite_loss_stops_training_with_a_clear_error() {
    let dir = tmp("nan");
    let mut t = Trainer::new(tiny(&["steps=50", "checkpoint_every=10"])).unwrap();
    t.train_until(&dir, 20, &Stop::new(), &mut ignore).unwrap();
    let before = std::fs::read(dir.join(files::CHECKPOINT)).unwrap();
    t.params.data[0] = f32::NAN;
    let err = t.train(&dir, &Stop::new(), &mut ignore).unwrap_err().to_string();
    // 20 steps were done: the 21st failed (steps count from 1, as in "stopped after step 20").
    assert!(err.contains("loss became NaN at step 21 of 50"), "{err}");
    assert!(err.contains("the checkpoint of step 20 is kept in"), "{err}");
    assert_eq!(std::fs::read(dir.join(files::CHECKPOINT)).unwrap(), before, "the last good checkpoint is kept");
    assert!(!dir.join(files::MODEL).exists());
    // Before its first checkpoint a run has saved nothing, and the message says so, and whose
    // the checkpoint on disk is.
    let mut t = Trainer::new(tiny(&["steps=50", "checkpoint_every=10"])).unwrap();
    t.params.data[0] = f32::NAN;
    let err = t.train(&dir, &Stop::new(), &mut ignore).unwrap_err().to_string();
    assert!(err.contains("loss became NaN at step 1 of 50"), "{err}");
    assert!(err.contains("nothing of this run was saved") && !err.contains("checkpoint is kept"), "{err}");
    assert!(err.contains("checkpoint.safetensors is an earlier run's"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    let err = t.train(&dir, &Stop::new(), &mut ignore).unwrap_err().to_string();
    assert!(err.contains("nothing of this run was saved") && !err.contains("earlier run"), "{err}");
    assert!(!dir.join(files::CHECKPOINT).exists());
}

#[test]
fn an_inserted_model_starts_from_the_trained_one_and_can_re_impose_it() {
    use arithlens::train::insert::InsertConfig;
    let dir = tmp("insert-from");
    let add = TrainConfig::preset("tiny_mix").unwrap().with_overrides(&["sub_share=0".into(), "steps=60".into()]).unwrap();
    Trainer::new(add).unwrap().train(&dir, &Stop::new(), &mut ignore).unwrap();
    let from = TaskModel::load(&dir).unwrap().params;
    let mut cfg = TrainConfig::preset("tiny_mix")
        .unwrap()
        .with_overrides(&["n_layers=3".into(), "n_heads=4".into(), "d_head=21".into(), "steps=30".into()])
        .unwrap();
    cfg.insert = Some(InsertConfig { from: dir.clone(), every: 10, mlps: false });
    let mut t = Trainer::new(cfg.clone()).unwrap();
    assert_eq!(t.params.get("blocks.1.mlp.W_in"), from.get("blocks.1.mlp.W_in"));
    for _ in 0..10 {
        t.step().unwrap();
    }
    let head = 64 * 21 * 3;
    assert_eq!(
        &t.params.get("blocks.0.attn.W_K").unwrap()[..head],
        &from.get("blocks.0.attn.W_K").unwrap()[..head],
        "heads re-imposed at step 10"
    );
    assert_ne!(t.params.get("blocks.1.mlp.W_in"), from.get("blocks.1.mlp.W_in"), "MLPs train freely");
    cfg.task.n_digits = 3;
    let err = Trainer::new(cfg.with_overrides(&[]).unwrap()).err().unwrap();
    assert!(matches!(&err, TrainError::Insert { from, .. } if *from == dir), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("2-digit") && err.contains("3-digit"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
