//! Fuzz and property tests (issue 21): thousands of arbitrary and near-valid inputs into every
//! parser and loader a user's input or a file on disk reaches (question text, `--set` overrides
//! and preset names, model files, every JSON artifact). None may panic: each gives an error or a
//! valid result. `catch_unwind` is only the assertion that no panic happens.
//!
//! Reproducible: every test draws from ChaCha seeded with [`SEED`] (shrinking included), so a
//! failure recurs on every machine. To explore other inputs, set `ARITHLENS_FUZZ_SEED=N` (any
//! u64, mixed into the seed) and, for more cases, `ARITHLENS_FUZZ_SCALE=K` (K times the cases);
//! a failure prints the seed to rerun it with.

use arithlens::model::file::{LoadOptions, ModelFile};
use arithlens::progress::{ignore, Stop};
use arithlens::task::{Format, Op, Question};
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The fixed seed of every fuzz test (32 bytes of ChaCha key).
const SEED: [u8; 32] = *b"arithlens issue 21 fuzz seed v1!";

/// A runner of `cases` cases (times `ARITHLENS_FUZZ_SCALE`) from [`SEED`] (mixed with
/// `ARITHLENS_FUZZ_SEED`), with no failure files written.
fn runner(cases: u32) -> TestRunner {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let mut seed = SEED;
    if let Some(extra) = env("ARITHLENS_FUZZ_SEED") {
        seed[..8].copy_from_slice(&extra.to_le_bytes());
        eprintln!("fuzz seed: ARITHLENS_FUZZ_SEED={extra}");
    }
    let scale = env("ARITHLENS_FUZZ_SCALE").unwrap_or(1).max(1) as u32;
    let config = Config { cases: cases.saturating_mul(scale), failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed))
}

/// Runs `f`, failing the case (not the process) if it panics.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| TestCaseError::fail(format!("panicked on {what}")))
}

/// One edit of a byte string: (kind, position, value).
type Edit = (u8, u64, u64);

/// Applies byte edits: overwrite, bit flip, insert, delete, truncate.
fn edit_bytes(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for &(kind, pos, val) in edits {
        let at = if b.is_empty() { 0 } else { (pos % b.len() as u64) as usize };
        match kind % 5 {
            0 if !b.is_empty() => b[at] = val as u8,
            1 if !b.is_empty() => b[at] ^= 1 << (val % 8),
            2 => b.insert(at, val as u8),
            3 if !b.is_empty() => {
                b.remove(at);
            }
            _ => b.truncate(at),
        }
    }
    b
}

/// Values a mutated JSON field may take: other types, extremes, empty and nested containers.
fn odd_value(k: u64) -> Value {
    let huge = serde_json::Number::from_f64(1e308).unwrap();
    match k % 14 {
        0 => Value::Null,
        1 => Value::Bool(true),
        2 => Value::String("x".into()),
        3 => Value::Number(huge),
        4 => Value::from(-1),
        5 => Value::from(u64::MAX),
        6 => Value::from(i64::MIN),
        7 => Value::from(0),
        8 => Value::Array(vec![]),
        9 => Value::Object(Default::default()),
        10 => serde_json::json!([[[[1, 2], {"a": null}]]]),
        11 => Value::from(-1e-300),
        12 => Value::from(18446744073709551615.0),
        _ => Value::String("\u{0}\u{202e}".repeat(3)),
    }
}

/// Every node of `v` as a JSON pointer.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| pointers(c, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
        _ => {}
    }
}

/// Applies structural edits: replace a node by an odd value, remove it, or copy another node in.
fn edit_json(mut v: Value, edits: &[Edit]) -> Value {
    for &(kind, pos, val) in edits {
        let mut all = Vec::new();
        pointers(&v, String::new(), &mut all);
        let target = all[(pos % all.len() as u64) as usize].clone();
        match kind % 3 {
            0 => {
                if let Some(slot) = v.pointer_mut(&target) {
                    *slot = odd_value(val);
                }
            }
            1 => {
                let (parent, key) = target.rsplit_once('/').unwrap_or(("", ""));
                match v.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(i) = key.parse::<usize>() {
                            if i < a.len() {
                                a.remove(i);
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {
                let source = v.pointer(&all[(val % all.len() as u64) as usize]).cloned();
                if let (Some(s), Some(slot)) = (source, v.pointer_mut(&target)) {
                    *slot = s;
                }
            }
        }
    }
    v
}

/// A mutation of a JSON document: structural edits (if it parses) then byte edits.
fn mutate_json(text: &[u8], json_edits: &[Edit], byte_edits: &[Edit]) -> Vec<u8> {
    let structured = match serde_json::from_slice::<Value>(text) {
        Ok(v) if !json_edits.is_empty() => serde_json::to_vec(&edit_json(v, json_edits)).unwrap(),
        _ => text.to_vec(),
    };
    edit_bytes(structured, byte_edits)
}

fn edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(any::<Edit>(), 0..=max)
}

// (a) Question text --------------------------------------------------------------------------

fn check_question(text: &str) -> Result<(), TestCaseError> {
    for n in [1, 2, 5, 20] {
        match no_panic(text, || Question::parse(text, n))? {
            Ok(q) => {
                prop_assert_eq!(Question::parse(&q.text(), n), Ok(q), "round trip of {:?}", text);
                for f in [Format::Paper1, Format::Paper2Sign] {
                    if let Ok(toks) = q.tokens(f) {
                        prop_assert_eq!(toks.len(), f.n_ctx(n));
                        let ans = &toks[f.answer_start(n)..];
                        if f == Format::Paper2Sign || q.answer() >= 0 {
                            prop_assert_eq!(arithlens::task::decode_answer(f, ans), Ok(q.answer()));
                        }
                    }
                }
            }
            Err(e) => prop_assert!(e.to_string().len() > 10, "unclear error for {:?}: {}", text, e),
        }
    }
    if let Ok(q) = no_panic(text, || Question::parse_any(text))? {
        prop_assert_eq!(Question::parse_any(&q.text()), Ok(q));
    }
    Ok(())
}

/// A valid question's text with up to 3 byte edits (a near-valid question).
fn near_valid_question() -> impl Strategy<Value = String> {
    (1usize..=20, any::<u128>(), any::<u128>(), any::<bool>(), edits(3)).prop_map(|(n, x, y, sub, e)| {
        let m = 10u128.pow(n as u32);
        let q = Question { x: x % m, y: y % m, op: if sub { Op::Sub } else { Op::Add }, n_digits: n };
        String::from_utf8_lossy(&edit_bytes(q.text().into_bytes(), &e)).into_owned()
    })
}

#[test]
fn question_text_never_panics_and_valid_questions_round_trip() {
    runner(4000).run(&"\\PC{0,30}", |s| check_question(&s)).unwrap();
    runner(4000).run(&near_valid_question(), |s| check_question(&s)).unwrap();
    runner(2000)
        .run(&prop::collection::vec(0u32..20, 0..30), |toks| {
            for f in [Format::Paper1, Format::Paper2Sign] {
                no_panic("answer tokens", || arithlens::task::decode_answer(f, &toks))?.ok();
            }
            Ok(())
        })
        .unwrap();
}

// (b) --set overrides and preset names -------------------------------------------------------

/// A field name of the run config, or a made-up one.
fn key() -> impl Strategy<Value = String> {
    let fields = TrainConfig::preset("ins1_mix_d2_l2_h3_t1K_s1").map(|c| {
        let mut all = Vec::new();
        pointers(&serde_json::to_value(c).unwrap(), String::new(), &mut all);
        all.iter().filter(|p| !p.is_empty()).map(|p| p[1..].replace('/', ".")).collect::<Vec<_>>()
    });
    let fields = fields.unwrap();
    let short: Vec<String> = fields.iter().map(|f| f.rsplit('.').next().unwrap().to_string()).collect();
    prop_oneof![prop::sample::select(fields), prop::sample::select(short), "[a-z_.]{0,12}"]
}

/// A value: numbers of every size and sign, non-numbers, JSON, and near-valid ones.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        (0u64..5000).prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        prop::sample::select(vec![
            "nan",
            "inf",
            "-inf",
            "1e400",
            "-0",
            "[0.9,0.98]",
            "[1,1]",
            "null",
            "\"\"",
            "relu",
            "gelu",
            "paper2",
            "{}",
            "../x",
            "true"
        ])
        .prop_map(String::from),
        "\\PC{0,12}",
    ]
}

/// A preset name: a real one, a follow-up name with odd numbers, or mutated.
fn preset_name() -> impl Strategy<Value = String> {
    let num = prop_oneof![(0u64..30).prop_map(|v| v.to_string()), any::<u64>().prop_map(|v| v.to_string()), "[0-9K]{0,25}"];
    let follow = (
        prop::sample::select(vec!["add", "sub", "mix", "ins1_mix", "ins3_add", "mul"]),
        num.clone(),
        num.clone(),
        num.clone(),
        num.clone(),
        num,
    )
        .prop_map(|(op, d, l, h, t, s)| format!("{op}_d{d}_l{l}_h{h}_t{t}K_s{s}"));
    let real =
        prop::sample::select(vec!["paper1", "paper1_constant", "tiny", "tiny_l2", "tiny_sub", "tiny_mix", "add_d6_l2_h3_t15K_s372001"]);
    let mutated = (real.clone(), edits(3)).prop_map(|(n, e)| String::from_utf8_lossy(&edit_bytes(n.as_bytes().to_vec(), &e)).into_owned());
    prop_oneof![real.prop_map(String::from), follow, mutated, "\\PC{0,30}"]
}

#[test]
fn overrides_and_preset_names_never_panic_and_accepted_configs_are_valid() {
    let tiny = TrainConfig::preset("tiny").unwrap();
    let overrides = prop::collection::vec((key(), value()).prop_map(|(k, v)| format!("{k}={v}")), 1..4);
    runner(3000)
        .run(&overrides, |o| {
            if let Ok(c) = no_panic(&format!("{o:?}"), || tiny.with_overrides(&o))? {
                prop_assert!(c.validate().is_ok(), "{:?} accepted an invalid config", o);
                prop_assert!(c.model.checked_n_params().is_some());
            }
            Ok(())
        })
        .unwrap();
    runner(3000)
        .run(&preset_name(), |name| {
            if let Ok(c) = no_panic(&name, || TrainConfig::preset(&name).and_then(|c| c.with_overrides(&[])))? {
                prop_assert!(c.validate().is_ok() && c.steps >= 1, "{}", name);
            }
            Ok(())
        })
        .unwrap();
}

// (c) Model files ----------------------------------------------------------------------------

/// The bytes of a small model file written by the library.
fn model_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let cfg = TrainConfig::preset("tiny").unwrap().with_overrides(&["d_model=12".into(), "n_heads=2".into()]).unwrap();
        let dir = tmp("model");
        let path = dir.join("m.safetensors");
        Trainer::new(cfg).unwrap().model_file().save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        bytes
    })
}

/// Splits a safetensors file into its JSON header and the data after it.
fn split_header(bytes: &[u8]) -> (Value, &[u8]) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[8..8 + n]).unwrap(), &bytes[8 + n..])
}

/// A model file with its header edited (structure, metadata strings, JSON in metadata) and the
/// length field optionally replaced, then byte edits.
fn mutate_model(header_edits: &[Edit], meta_edits: &[Edit], length: Option<u64>, byte_edits: &[Edit]) -> Vec<u8> {
    let (mut header, data) = split_header(model_bytes());
    if let Some(Value::Object(meta)) = header.get_mut("__metadata__") {
        for &(k, pos, val) in meta_edits {
            let keys: Vec<String> = meta.keys().cloned().collect();
            let slot = meta.get_mut(&keys[(pos % keys.len() as u64) as usize]).unwrap();
            let text = slot.as_str().unwrap_or_default().as_bytes().to_vec();
            *slot = Value::String(String::from_utf8_lossy(&mutate_json(&text, &[(k, val, pos)], &[])).into_owned());
        }
    }
    let header = serde_json::to_vec(&edit_json(header, header_edits)).unwrap();
    let mut out = length.unwrap_or(header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend_from_slice(data);
    edit_bytes(out, byte_edits)
}

/// Damaged files that still loaded (a flipped bit in the weights leaves a valid model).
static LOADED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn check_model(bytes: &[u8]) -> Result<(), TestCaseError> {
    for allow in [false, true] {
        let loaded = no_panic("a model file", || {
            let f = ModelFile::from_bytes_with(bytes, "m.safetensors", LoadOptions { allow_non_finite: allow })?;
            TaskModel::from_file(f, "m.safetensors").map_err(String::from)
        })?;
        if let Ok(m) = loaded {
            LOADED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            prop_assert!(m.params.config.validate().is_ok());
            prop_assert_eq!(m.params.data.len(), m.params.config.n_params());
            prop_assert!(allow || m.params.data.iter().all(|v| v.is_finite()), "non-finite weights loaded without the option");
            let q = Question::new(1, 0, m.ops[0], m.n_digits).unwrap();
            no_panic("a forward pass of a loaded model", || arithlens::eval::predict::greedy(&m, &[q]))?;
        }
    }
    Ok(())
}

#[test]
fn damaged_model_files_never_panic_and_load_only_as_valid_models() {
    check_model(model_bytes()).unwrap();
    let len = model_bytes().len() as u64;
    runner(1500).run(&(0..len, edits(8)), |(cut, e)| check_model(&edit_bytes(model_bytes()[..cut as usize].to_vec(), &e))).unwrap();
    let header = (edits(3), edits(3), prop::option::weighted(0.1, any::<u64>()), edits(2));
    runner(2000).run(&header, |(h, m, l, b)| check_model(&mutate_model(&h, &m, l, &b))).unwrap();
    let loaded = LOADED.load(std::sync::atomic::Ordering::Relaxed);
    assert!(loaded > 100, "only {loaded} damaged files loaded: the mutations should leave many valid ones");
}

// (d) JSON artifacts -------------------------------------------------------------------------

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arithlens-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A run folder made by the library: model, checkpoint, training.json, eval.json,
/// eval.partial.json (of an evaluation stopped after its first slice) and analysis.json.
/// Each test makes its own (removed at its end), so no folder outlives the tests.
fn run_dir(name: &str) -> PathBuf {
    {
        let dir = tmp(&format!("run-{name}"));
        let cfg = TrainConfig::preset("tiny").unwrap();
        let cfg =
            cfg.with_overrides(&["steps=40".into(), "log_every=10".into(), "checkpoint_every=20".into(), "d_model=24".into()]).unwrap();
        let mut t = Trainer::new(cfg).unwrap();
        t.train(&dir, &Stop::new(), &mut ignore).unwrap();
        let model = TaskModel::load(&dir).unwrap();
        let opts = eval_options(&dir);
        let report = arithlens::eval::evaluate(&model, &opts, &Stop::new(), &mut ignore).unwrap();
        arithlens::io::atomic::write_json(&dir.join("eval.json"), &report).unwrap();
        // Stopped (as by Ctrl-C) once the first slice is under way: its progress is kept.
        let stop = Stop::new();
        let mut flag = |e: arithlens::progress::Event| {
            if matches!(e, arithlens::progress::Event::Eval { done, .. } if done > 0) {
                stop.request();
            }
        };
        assert!(arithlens::eval::evaluate(&model, &eval_options(&dir), &stop, &mut flag).is_err());
        assert!(dir.join("eval.partial.json").exists(), "a stopped evaluation keeps its progress");
        std::fs::rename(dir.join("eval.partial.json"), dir.join("partial.orig")).unwrap();
        let log = serde_json::from_slice(&std::fs::read(dir.join("training.json")).unwrap()).unwrap();
        let a =
            arithlens::analysis::AnalyzeOptions { questions: 40, pairs: 2, sample: 20, per_class: 5, siblings: 1, ..Default::default() };
        let analysis = arithlens::analysis::analyze(&model, Some(&log), &a);
        arithlens::io::atomic::write_json(&dir.join("analysis.json"), &analysis).unwrap();
        dir
    }
}

fn eval_options(dir: &Path) -> arithlens::eval::EvalOptions {
    let progress_file = Some(dir.join("eval.partial.json"));
    // One slice and a little more, so a stopped evaluation keeps progress and a resumed one is quick.
    let questions = arithlens::eval::accuracy::SLICE + 2000;
    arithlens::eval::EvalOptions { questions, per_class: 5, top_k: 3, progress_file, ..Default::default() }
}

/// Feeds mutations of `name` (read from `original`) in a copy of the run folder to `load`.
fn fuzz_artifact(run: &Path, name: &str, original: &str, cases: u32, load: impl Fn(&Path) -> Result<(), String>) {
    let dir = tmp(&format!("artifact-{name}"));
    for f in ["model.safetensors", "checkpoint.safetensors", "training.json", "eval.json", "analysis.json", "partial.orig"] {
        std::fs::copy(run.join(f), dir.join(f)).unwrap();
    }
    let text = std::fs::read(run.join(original)).unwrap();
    let (backup, target) = (dir.join(original), dir.join(name));
    let strategy = (edits(4), edits(2), any::<bool>());
    runner(cases)
        .run(&strategy, |(j, b, truncate_only)| {
            let bytes = if truncate_only { text[..(b.len() * 97 % (text.len() + 1))].to_vec() } else { mutate_json(&text, &j, &b) };
            std::fs::write(&target, &bytes).unwrap();
            no_panic(&format!("a mutated {name}"), || load(&dir))?.ok();
            if backup != target {
                let _ = std::fs::remove_file(&target);
            } else {
                std::fs::write(&backup, &text).unwrap();
            }
            Ok(())
        })
        .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// What `report` reads: every file of the run folder, then the page built from them.
fn report_path(dir: &Path) -> Result<(), String> {
    let data = arithlens::report::RunData::load(dir)?;
    arithlens::report::build_page(&data);
    Ok(())
}

#[test]
fn mutated_training_eval_and_analysis_json_never_panic_the_report() {
    let run = run_dir("report");
    for name in ["training.json", "eval.json", "analysis.json"] {
        fuzz_artifact(&run, name, name, 700, report_path);
    }
    std::fs::remove_dir_all(run).unwrap();
}

#[test]
fn mutated_eval_progress_and_checkpoint_metadata_never_panic() {
    let run = run_dir("progress");
    fuzz_artifact(&run, "eval.partial.json", "partial.orig", 700, |dir| {
        let model = TaskModel::load(dir)?;
        // Progress that is refused is ignored (a fresh evaluation, tested elsewhere); accepted
        // progress, however edited, is continued from.
        if arithlens::eval::accuracy::resumed_questions(&model, &eval_options(dir)) == 0 {
            return Ok(());
        }
        arithlens::eval::evaluate(&model, &eval_options(dir), &Stop::new(), &mut ignore).map(|_| ()).map_err(String::from)
    });
    // The checkpoint's metadata (config, step, log state), edited as JSON strings and as bytes.
    let dir = tmp("checkpoint");
    for f in ["model.safetensors", "training.json"] {
        std::fs::copy(run.join(f), dir.join(f)).unwrap();
    }
    let original = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let (header, data) = split_header(&original);
    runner(1500)
        .run(&(edits(3), edits(1)), |(m, h)| {
            let mut header = header.clone();
            if let Some(Value::Object(meta)) = header.get_mut("__metadata__") {
                for &(k, pos, val) in &m {
                    let keys: Vec<String> = meta.keys().cloned().collect();
                    let slot = meta.get_mut(&keys[(pos % keys.len() as u64) as usize]).unwrap();
                    let text = slot.as_str().unwrap_or_default().as_bytes().to_vec();
                    *slot = Value::String(String::from_utf8_lossy(&mutate_json(&text, &[(k, val, pos)], &[(k, val, pos)])).into_owned());
                }
            }
            let header = serde_json::to_vec(&edit_json(header, &h)).unwrap();
            let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
            bytes.extend(header);
            bytes.extend_from_slice(data);
            std::fs::write(dir.join("checkpoint.safetensors"), bytes).unwrap();
            // A checkpoint that loads must also train on.
            no_panic("a checkpoint with edited metadata", || Trainer::resume(&dir, None).and_then(|mut t| t.step().map(|_| ())))?.ok();
            Ok(())
        })
        .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(run).unwrap();
}
