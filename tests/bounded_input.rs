//! Issue 21, defects 5, 6 and 10, through the binary: every size, count and value out of range
//! is a clear error before any work (no panic, no allocation abort, no hang, nothing written),
//! non-finite weights are refused unless asked for, and the smaller input defects.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arithlens-bounded-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs the binary in `cwd`, asserting that it ends within 20 s.
fn arithlens(cwd: &Path, args: &[&str]) -> Output {
    std::fs::create_dir_all(cwd).unwrap();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_arithlens")).args(args).current_dir(cwd).output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(20), "{args:?} took {:?}", start.elapsed());
    out
}

/// Asserts a clean failure (exit 1, no panic) whose message holds every one of `want`.
fn fails_with(cwd: &Path, args: &[&str], want: &[&str]) {
    let out = arithlens(cwd, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked") && err.starts_with("error: "), "{args:?}: {err}");
    for w in want {
        assert!(err.contains(w), "{args:?}: expected '{w}' in: {err}");
    }
}

/// A 20-step tiny model in `dir`.
fn trained(dir: &Path) {
    let out = arithlens(dir, &["train", "--preset", "tiny", "--steps", "20", "--quiet", "--out", "run"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sizes_and_values_out_of_range_are_errors_that_say_what_is_allowed() {
    let dir = tmp("sizes");
    let cases: &[(&[&str], &[&str])] = &[
        (&["--set", "d_model=18446744073709551615"], &["d_model = 18446744073709551615 is too large", "at most 65536"]),
        (&["--set", "n_layers=100000000"], &["n_layers = 100000000 is too large", "at most 1024"]),
        (&["--set", "batch_size=100000000000"], &["batch_size = 100000000000 is too large"]),
        (&["--set", "d_model=8190", "--set", "batch_size=100000"], &["d_model=8190", "would need ~", "GiB", "more than the 64.0 GiB"]),
        (&["--set", "n_heads=100"], &["n_heads=100 does not fit d_model=64", "d_head = d_model / n_heads would be 0", "from 1 to 64"]),
        (&["--set", "optim.eps=-1"], &["optim.eps -1", "positive"]),
        (&["--set", "weight_decay=-5"], &["weight_decay -5", "0 or a positive"]),
        (&["--set", "start_factor=-1"], &["start_factor -1", "(0, 1]"]),
        (&["--set", "start_factor=2"], &["start_factor 2", "(0, 1]"]),
        (&["--set", "lr=0"], &["lr 0"]),
        (&["--set", "betas=[1,0.98]"], &["betas[0] = 1", "[0, 1)"]),
        (&["--set", "name=../../x"], &["run name '../../x' is not allowed"]),
        (&["--set", "name=a/b"], &["run name 'a/b' is not allowed"]),
        (&["--set", "name=.hidden"], &["is not allowed"]),
        (&["--set", "name="], &["run name '' is not allowed"]),
    ];
    for (set, want) in cases {
        let mut args = vec!["train", "--preset", "tiny", "--steps", "1", "--quiet"];
        args.extend_from_slice(set);
        fails_with(&dir, &args, want);
    }
    let presets: &[(&str, &[&str])] = &[
        ("add_d2_l1_h10000_t1K_s1", &["heads 10000 is too large", "at most 1024"]),
        ("add_d2_l1_h1_t18446744073709552K_s1", &["too large"]),
        ("add_d2_l1_h1_t99999999999999K_s1", &["too many", "at most"]),
        ("add_d2_l100000000_h1_t1K_s1", &["layers 100000000 is too large"]),
    ];
    for (preset, want) in presets {
        fails_with(&dir, &["train", "--preset", preset, "--quiet"], want);
    }
    fails_with(
        &dir,
        &["--threads", "100000", "train", "--preset", "tiny", "--steps", "1"],
        &["--threads = 100000 is too large", "at most 1024"],
    );
    // Nothing was trained or written anywhere (in particular not ../../x).
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "nothing may be written");
    assert!(!dir.join("../../x").exists() && !dir.parent().unwrap().join("x").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn question_counts_are_bounded_and_bench_checks_its_options_first() {
    let dir = tmp("counts");
    trained(&dir);
    fails_with(&dir, &["cache", "run", "--random", "100000000"], &["a cache of 100000000 question(s) would need ~", "GiB"]);
    fails_with(&dir, &["analyze", "run", "--questions", "100000000"], &["--questions 100000000 is too many", "at most 100000"]);
    fails_with(&dir, &["analyze", "run", "--pairs", "100000000"], &["--pairs 100000000 is too many"]);
    fails_with(&dir, &["eval", "run", "--per-class", "100000000000"], &["--per-class 100000000000 is too many"]);
    fails_with(&dir, &["bench", "--preset", "tiny", "--eval-questions", "100000000000"], &["--eval-questions must be at most"]);
    // bench: each bad option is reported at once, before the minutes of peak measurement.
    fails_with(&dir, &["bench", "--preset", "tiny", "--batch", "0"], &["--batch 0"]);
    fails_with(&dir, &["bench", "--preset", "tiny", "--threads", "100000"], &["--threads = 100000 is too large"]);
    fails_with(&dir, &["bench", "--preset", "tiny", "--model", "no/such/model"], &["no model at no/such/model"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_model_with_non_finite_weights_is_refused_unless_allowed_with_a_warning() {
    let dir = tmp("nan");
    trained(&dir);
    let mut m = arithlens::model::file::ModelFile::load(&dir.join("run/model.safetensors")).unwrap();
    m.params.data[..3].fill(f32::NAN);
    m.params.data[3] = f32::INFINITY;
    m.save(&dir.join("nan.safetensors")).unwrap();
    for cmd in [&["ask", "nan.safetensors", "12+34="][..], &["eval", "nan.safetensors", "--questions", "100", "--per-class", "1"]] {
        fails_with(&dir, cmd, &["nan.safetensors", "tensor 'embed.W_E' holds 4 NaN or infinite value(s)", "--allow-non-finite"]);
        let mut allowed = cmd.to_vec();
        allowed.push("--allow-non-finite");
        let out = arithlens(&dir, &allowed);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("warning: nan.safetensors holds NaN or infinite weights in embed.W_E (4)"), "{err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_negative_operand_is_named_as_such() {
    let dir = tmp("negative");
    trained(&dir);
    for q in ["-12+34=", "12+-34="] {
        // As typed, and after `--`: a leading '-' is the question's, not a flag.
        fails_with(&dir, &["ask", "run", q], &["negative operand", "operands are non-negative integers"]);
        fails_with(&dir, &["ask", "run", "--", q], &["negative operand", "operands are non-negative integers"]);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn npz_in_any_case_holds_the_questions_as_a_string_array() {
    let dir = tmp("npz");
    trained(&dir);
    let out = arithlens(&dir, &["cache", "run", "12+34=", "5+6=", "--hook", "hook_embed", "--out", "C.NPZ"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut z = zip::ZipArchive::new(std::fs::File::open(dir.join("C.NPZ")).unwrap()).expect("an .npz (zip), not safetensors");
    let mut b = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name("questions.npy").unwrap(), &mut b).unwrap();
    let n = u16::from_le_bytes([b[8], b[9]]) as usize;
    let dict = std::str::from_utf8(&b[10..10 + n]).unwrap().trim_end();
    assert_eq!(dict, "{'descr': '<U6', 'fortran_order': False, 'shape': (2,), }", "one entry per question");
    let chars: Vec<char> =
        b[10 + n..].chunks_exact(4).map(|c| char::from_u32(u32::from_le_bytes(c.try_into().unwrap())).unwrap()).collect();
    assert_eq!(chars.iter().collect::<String>(), "12+34=05+06=");
    std::fs::remove_dir_all(dir).unwrap();
}
