//! Nothing lost, nothing stale (issue 21), through the binary as a user runs it: `train` and
//! `cache` never replace a model (or another file) without `--force`, and `--force` keeps the old
//! model until the new one is complete; a bad `--out` fails before any work; every derived file
//! records the SHA-256 of its model; `run` recomputes what is corrupt or belongs to another
//! model; `report` never shows such a file as current.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_arithlens");

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arithlens-safety-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn arithlens(args: &[&str]) -> Output {
    Command::new(EXE).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(args: &[&str]) -> Output {
    let o = arithlens(args);
    assert!(o.status.success(), "arithlens {args:?} failed: {}", stderr(&o));
    o
}

/// Trains the tiny preset for `steps` steps with `seed` into `dir`.
fn train(dir: &Path, steps: u64, seed: u64, extra: &[&str]) -> Output {
    let (steps, seed) = (steps.to_string(), seed.to_string());
    let mut args = vec!["train", "--preset", "tiny", "--steps", &steps, "--seed", &seed, "--threads", "1", "--quiet"];
    args.extend(["--out", dir.to_str().unwrap()]);
    args.extend(extra);
    arithlens(&args)
}

/// SHA-256 of a file as `sha256sum` prints it, computed here independently of arithlens.
fn sha256sum(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn train_never_replaces_a_model_without_force() {
    let (src, dir) = (tmp("train-src"), tmp("train-dst"));
    assert!(train(&src, 20, 1, &[]).status.success());
    // A finished model copied into an empty folder (no checkpoint, no training.json).
    let model = dir.join("model.safetensors");
    std::fs::copy(src.join("model.safetensors"), &model).unwrap();
    let before = std::fs::read(&model).unwrap();
    let o = train(&dir, 20, 2, &[]);
    let err = stderr(&o);
    assert!(!o.status.success(), "replaced a model without --force: {err}");
    assert!(err.contains(&model.display().to_string()) && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&model).unwrap(), before, "the model is unchanged");
    // `run` leaves it alone too (it evaluates the model that is there).
    let o = arithlens(&["run", "--preset", "tiny", "--out", dir.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success() && stderr(&o).contains("skipping training"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&model).unwrap(), before);
    // A training.json alone is a run's record too.
    let log_only = tmp("train-log");
    std::fs::copy(src.join("training.json"), log_only.join("training.json")).unwrap();
    assert!(!train(&log_only, 20, 2, &[]).status.success());
    // With --force the new model replaces it, and training.json names the new model.
    assert!(train(&dir, 20, 2, &["--force"]).status.success());
    assert_ne!(std::fs::read(&model).unwrap(), before);
    assert_eq!(json(&dir.join("training.json"))["model_sha256"], sha256sum(&model));
    // The help says --force applies to train (and run).
    let help = String::from_utf8_lossy(&ok(&["train", "--help"]).stdout).into_owned();
    assert!(help.contains("--force") && !help.contains("`run` only") && help.contains("`train` and `run`"), "{help}");
    for d in [src, dir, log_only] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[cfg(unix)]
#[test]
fn an_interrupted_forced_retraining_keeps_the_old_model_whole_and_usable() {
    let dir = tmp("interrupted");
    assert!(train(&dir, 20, 1, &[]).status.success());
    let model = dir.join("model.safetensors");
    let before = std::fs::read(&model).unwrap();
    let mut child = Command::new(EXE)
        .args(["train", "--preset", "tiny", "--steps", "1000000", "--seed", "2", "--threads", "1", "--quiet", "--force"])
        .args(["--set", "checkpoint_every=10", "--out", dir.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut err, &mut first).unwrap();
    assert!(first.starts_with("training tiny"), "{first}");
    // Killed mid-run (after some checkpoints have replaced training.json and the checkpoint).
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(std::fs::read(&model).unwrap(), before, "the old model is intact");
    let o = ok(&["ask", dir.to_str().unwrap(), "12+34="]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("true:"), "the old model still answers");
    // The half-done run's training.json is not shown beside the old model.
    ok(&["report", dir.to_str().unwrap()]);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("training.json does not belong to this model"), "{html}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cache_never_replaces_a_model_or_an_existing_file_unasked() {
    let dir = tmp("cache");
    let d = dir.to_str().unwrap();
    assert!(train(&dir, 20, 1, &[]).status.success());
    let model = dir.join("model.safetensors");
    let before = std::fs::read(&model).unwrap();
    for force in [false, true] {
        for target in ["model.safetensors", "checkpoint.safetensors", "training.json"] {
            let path = dir.join(target);
            let kept = std::fs::read(&path).unwrap();
            let mut args = vec!["cache", d, "12+34=", "--out", path.to_str().unwrap()];
            args.extend(force.then_some("--force"));
            let o = arithlens(&args);
            assert!(!o.status.success(), "cache replaced {target} (force {force})");
            assert!(stderr(&o).contains(&path.display().to_string()), "{}", stderr(&o));
            assert_eq!(std::fs::read(&path).unwrap(), kept, "{target} is unchanged");
        }
    }
    assert_eq!(std::fs::read(&model).unwrap(), before);
    // An existing file outside a run: refused without --force, replaced with it.
    let outside = tmp("cache-out");
    let mine = outside.join("mine.safetensors");
    std::fs::write(&mine, "my notes").unwrap();
    let o = arithlens(&["cache", d, "12+34=", "--out", mine.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&mine).unwrap(), b"my notes");
    ok(&["cache", d, "12+34=", "--out", mine.to_str().unwrap(), "--force"]);
    // A cache it wrote inside the run folder may be replaced with --force.
    let own = dir.join("c.npz");
    ok(&["cache", d, "12+34=", "--out", own.to_str().unwrap()]);
    ok(&["cache", d, "99+1=", "--out", own.to_str().unwrap(), "--force"]);
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(outside).unwrap();
}

#[test]
fn a_file_as_out_fails_at_once_naming_it() {
    let dir = tmp("bad-out");
    let file = dir.join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let f = file.to_str().unwrap();
    for cmd in ["train", "run"] {
        let start = Instant::now();
        let o = arithlens(&[cmd, "--preset", "tiny", "--steps", "100000", "--quiet", "--out", f]);
        let took = start.elapsed();
        let err = stderr(&o);
        assert!(!o.status.success(), "{cmd}: {err}");
        assert!(err.contains(f) && err.contains("not a folder"), "{cmd}: {err}");
        assert!(!err.contains("step"), "{cmd} trained before failing: {err}");
        assert!(took < Duration::from_secs(2), "{cmd} took {took:?} to fail");
    }
    // A folder below a file cannot be made; said before any work.
    let o = arithlens(&["train", "--preset", "tiny", "--steps", "100000", "--quiet", "--out", &format!("{f}/run")]);
    assert!(!o.status.success() && stderr(&o).contains("cannot create"), "{}", stderr(&o));
    // Outputs inside a run folder: a folder where eval.json or report.html goes.
    let run = dir.join("run");
    assert!(train(&run, 20, 1, &[]).status.success());
    std::fs::create_dir_all(run.join("eval.json")).unwrap();
    let o = arithlens(&["eval", run.to_str().unwrap(), "--questions", "100", "--per-class", "10"]);
    assert!(!o.status.success() && stderr(&o).contains(&run.join("eval.json").display().to_string()), "{}", stderr(&o));
    assert!(!stderr(&o).contains("random addition"), "evaluated before failing: {}", stderr(&o));
    std::fs::create_dir_all(run.join("report.html")).unwrap();
    let o = arithlens(&["report", run.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("report.html is a folder"), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn derived_files_record_the_hash_of_their_model_and_their_options() {
    let dir = tmp("provenance");
    let d = dir.to_str().unwrap();
    assert!(train(&dir, 50, 1, &[]).status.success());
    let sha = sha256sum(&dir.join("model.safetensors"));
    assert_eq!(json(&dir.join("training.json"))["model_sha256"], sha);
    ok(&["eval", d, "--questions", "1000", "--per-class", "50", "--seed", "9"]);
    let p = &json(&dir.join("eval.json"))["provenance"];
    assert_eq!(p["model_sha256"], sha);
    assert_eq!((p["options"]["questions"].as_u64(), p["options"]["seed"].as_u64()), (Some(1000), Some(9)), "{p}");
    ok(&["analyze", d, "--questions", "100", "--pairs", "5", "--siblings", "0"]);
    let p = &json(&dir.join("analysis.json"))["provenance"];
    assert_eq!(p["model_sha256"], sha);
    assert_eq!((p["options"]["questions"].as_u64(), p["options"]["pairs"].as_u64()), (Some(100), Some(5)), "{p}");
    ok(&["report", d]);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("name=\"arithlens-provenance\"") && html.contains(&sha), "the page names its model");
    let cache = dir.join("c.safetensors");
    ok(&["cache", d, "12+34=", "--hook", "blocks.0.attn.hook_pattern", "--out", cache.to_str().unwrap()]);
    let meta = arithlens::io::tensors::load(&cache).unwrap().metadata;
    let p: serde_json::Value = serde_json::from_str(&meta["provenance"]).unwrap();
    assert_eq!(p["model_sha256"], sha);
    assert_eq!(p["options"]["hooks"], serde_json::json!(["blocks.0.attn.hook_pattern"]));
    assert_eq!(meta["questions"], "12+34=");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn after_force_retraining_the_report_does_not_show_the_old_evaluation() {
    let dir = tmp("stale");
    let d = dir.to_str().unwrap();
    assert!(train(&dir, 200, 1, &[]).status.success());
    ok(&["eval", d, "--exhaustive", "--per-class", "20"]);
    let old = json(&dir.join("eval.json"));
    let line = format!("{} of all 10000 questions correct", 10000 - old["ops"][0]["failures"].as_u64().unwrap());
    ok(&["report", d]);
    assert!(std::fs::read_to_string(dir.join("report.html")).unwrap().contains(&line), "the first report shows its evaluation");
    assert!(train(&dir, 20, 2, &["--force"]).status.success());
    ok(&["report", d]);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(!html.contains(&line) && !html.contains("questions correct"), "the old evaluation is shown as current");
    assert!(html.contains("eval.json does not belong to this model") && html.contains("arithlens eval RUN_DIR"), "{html}");
    // The new training.json belongs to the new model and is shown.
    assert!(html.contains("final loss") && !html.contains("training.json does not belong"), "{html}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn run_recomputes_a_corrupt_or_foreign_evaluation_and_analysis() {
    let dir = tmp("run");
    let d = dir.to_str().unwrap();
    let run = || {
        let o = ok(&["run", "--preset", "tiny", "--steps", "50", "--threads", "1", "--quiet", "--out", d]);
        stderr(&o)
    };
    run();
    for (eval, analysis) in [("garbage", "{}"), ("{\"model\": 1}", "[1, 2]")] {
        std::fs::write(dir.join("eval.json"), eval).unwrap();
        std::fs::write(dir.join("analysis.json"), analysis).unwrap();
        let said = run();
        assert!(said.contains("eval.json holds nothing usable") && said.contains("analysis.json holds nothing usable"), "{said}");
        assert!(said.contains("recomputing"), "{said}");
    }
    let sha = sha256sum(&dir.join("model.safetensors"));
    for f in ["eval.json", "analysis.json"] {
        assert_eq!(json(&dir.join(f))["provenance"]["model_sha256"], sha, "{f}");
    }
    // Files of another model (or of an older arithlens, with no hash) are recomputed too.
    let mut foreign = json(&dir.join("eval.json"));
    foreign["provenance"]["model_sha256"] = "0".repeat(64).into();
    std::fs::write(dir.join("eval.json"), serde_json::to_vec(&foreign).unwrap()).unwrap();
    let mut old = json(&dir.join("analysis.json"));
    old.as_object_mut().unwrap().remove("provenance");
    std::fs::write(dir.join("analysis.json"), serde_json::to_vec(&old).unwrap()).unwrap();
    let said = run();
    assert!(said.contains("eval.json does not belong to this model: it was computed from another model"), "{said}");
    assert!(said.contains("analysis.json does not belong to this model: it records no model hash"), "{said}");
    let said = run();
    assert!(said.contains("eval.json is up to date") && said.contains("analysis.json is up to date"), "{said}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn report_says_an_empty_analysis_holds_no_usable_analysis() {
    let dir = tmp("empty-analysis");
    let d = dir.to_str().unwrap();
    assert!(train(&dir, 20, 1, &[]).status.success());
    std::fs::write(dir.join("analysis.json"), "{}").unwrap();
    ok(&["report", d]);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(!html.contains("found no useful node"), "an empty file read as an analysis that found nothing");
    assert!(html.contains("analysis.json holds no usable analysis") && html.contains("arithlens analyze RUN_DIR"), "{html}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn checkpoints_record_their_config_and_the_model_they_started_from() {
    let (src, dir) = (tmp("insert-src"), tmp("insert-dst"));
    let small = ["--set", "d_model=24", "--set", "d_head=8", "--set", "d_mlp=96", "--steps", "5", "--quiet"];
    let mut args = vec!["train", "--preset", "add_d2_l2_h3_t1K_s1", "--out", src.to_str().unwrap()];
    args.extend(small);
    ok(&args);
    let from = format!("insert.from={}", src.display());
    let mut args = vec!["train", "--preset", "ins1_mix_d2_l2_h3_t1K_s1", "--set", &from, "--out", dir.to_str().unwrap()];
    args.extend(small);
    ok(&args);
    let sha = sha256sum(&src.join("model.safetensors"));
    for f in ["checkpoint.safetensors", "model.safetensors"] {
        let meta = arithlens::io::tensors::load(&dir.join(f)).unwrap().metadata;
        assert_eq!(meta["insert_from_sha256"], sha, "{f}");
        let cfg: serde_json::Value = serde_json::from_str(&meta["train_config"]).unwrap();
        assert_eq!(cfg["model"]["d_model"], 24, "{f}");
    }
    std::fs::remove_dir_all(src).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
