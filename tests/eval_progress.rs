//! eval.partial.json, an interrupted evaluation's progress, is keyed by the model file's SHA-256
//! (the provenance eval.json records) and the options: progress keyed otherwise (another model,
//! or the older weight-hash key) is never merged; the evaluation says so and starts afresh.

use arithlens::eval::{evaluate, EvalOptions};
use arithlens::progress::{Event, Stop};
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};
use std::path::{Path, PathBuf};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options(dir: &Path) -> EvalOptions {
    let questions = arithlens::eval::accuracy::SLICE + 2000;
    EvalOptions { questions, per_class: 5, top_k: 3, progress_file: Some(dir.join("eval.partial.json")), ..Default::default() }
}

#[test]
fn progress_is_keyed_by_the_model_files_sha256_and_a_foreign_key_is_not_merged() {
    let dir = Scratch(std::env::temp_dir().join(format!("arithlens-evalprogress-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let cfg = TrainConfig::preset("tiny").unwrap().with_overrides(&["steps=30".into(), "d_model=24".into()]).unwrap();
    Trainer::new(cfg).unwrap().train(&dir.0, &Stop::new(), &mut |_| {}).unwrap();
    let model = TaskModel::load(&dir.0).unwrap();
    let sha = arithlens::provenance::sha256_file(&dir.0.join("model.safetensors")).unwrap();
    let whole = evaluate(&model, &EvalOptions { progress_file: None, ..options(&dir.0) }, &Stop::new(), &mut |_| {}).unwrap();
    // Stopped once the first slice is under way: its progress is kept, keyed by the SHA-256.
    let stop = Stop::new();
    let mut flag = |e: Event| {
        if matches!(e, Event::Eval { done, .. } if done > 0) {
            stop.request();
        }
    };
    assert!(evaluate(&model, &options(&dir.0), &stop, &mut flag).is_err());
    let partial = dir.0.join("eval.partial.json");
    let mut saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&partial).unwrap()).unwrap();
    let key = saved["key"].as_str().unwrap().to_string();
    assert!(key.contains(&format!("sha256 {sha}")), "{key}");
    // The same progress under the older key (a hash of the weights): not this model's.
    saved["key"] = serde_json::json!(key.replace(&format!("sha256 {sha}"), "0123456789abcdef"));
    std::fs::write(&partial, serde_json::to_vec(&saved).unwrap()).unwrap();
    assert_eq!(arithlens::eval::accuracy::resumed_questions(&model, &options(&dir.0)), 0, "not counted as resumable");
    let mut notes = Vec::new();
    let again = evaluate(&model, &options(&dir.0), &Stop::new(), &mut |e| {
        if let Event::Note(n) = e {
            notes.push(n)
        }
    })
    .unwrap();
    assert!(notes.iter().any(|n| n.contains("eval.partial.json holds progress of another model")), "{notes:?}");
    let strip = |r: &arithlens::eval::EvalReport| {
        let mut v = serde_json::to_value(r).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("seconds");
        o.remove("questions_per_s");
        v
    };
    assert_eq!(strip(&again), strip(&whole), "the evaluation started afresh: nothing merged");
    assert!(!partial.exists(), "the progress file is removed at the end");
}
