//! kill -9 at random (seeded) moments of `train` and `eval`: after every kill each file in the run
//! folder has an expected name and loads (a half-written file only ever lies under a temporary
//! name); every restart removes the temporaries the killed process left; and the resumed result
//! is the same bytes as an uninterrupted run's (eval.json: apart from its timing fields).

#![cfg(unix)]

use arithlens::run_folder::files;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_arithlens");
/// Checkpoints every 3 steps (between the records every 10): kills land often during writes and
/// in the middle of a record's sums.
const TRAIN: [&str; 13] = [
    "train",
    "--preset",
    "tiny",
    "--steps",
    "600",
    "--set",
    "checkpoint_every=7",
    "--set",
    "log_every=10",
    "--threads",
    "1",
    "--quiet",
    "--out",
];
const KILLS: usize = 6;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arithlens-kill-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs `args` and kills it with SIGKILL after `delay` unless it ended first; returns whether it
/// ended by itself (successfully: a failure fails the test) and the child's PID.
fn run_or_kill(args: &[&str], delay: Duration) -> (bool, u32) {
    let mut child = Command::new(EXE).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert!(status.success(), "{args:?} failed: {err}");
            return (true, pid);
        }
        if start.elapsed() >= delay {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return (false, pid);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The PID in a temporary file's name `.NAME.PID.tmp`, when NAME is one of `allowed`.
fn temporary_of(name: &str, allowed: &[&str]) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (target, pid) = rest.rsplit_once('.')?;
    allowed.contains(&target).then(|| pid.parse().ok())?
}

/// Checks every file of `dir`: real names load, temporaries belong to `killed` processes (and to
/// the last one alone when `tidied`: the earlier ones' were removed when the last one started).
/// Returns the number of temporaries.
fn check_folder(dir: &Path, killed: &[u32], tidied: bool) -> usize {
    let allowed = [files::MODEL, files::CHECKPOINT, files::TRAINING, "timing.json", "eval.json", "eval.partial.json"];
    let mut temporaries = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let path = dir.join(&name);
        if let Some(pid) = temporary_of(&name, &allowed) {
            assert!(killed.contains(&pid), "{name}: a temporary of a process that was not killed");
            assert!(!tidied || Some(&pid) == killed.last(), "{name}: a temporary of an earlier process was not removed");
            temporaries += 1;
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        match name.as_str() {
            files::MODEL => drop(arithlens::task_model::TaskModel::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))),
            files::CHECKPOINT => drop(arithlens::io::tensors::from_bytes(&bytes, &name).unwrap_or_else(|e| panic!("{name}: {e}"))),
            files::TRAINING => {
                serde_json::from_slice::<arithlens::train::log::TrainingLog>(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            "timing.json" => {
                serde_json::from_slice::<arithlens::train::timing::Timing>(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            "eval.json" => {
                serde_json::from_slice::<arithlens::eval::EvalReport>(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            "eval.partial.json" => {
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            other => panic!("unexpected file {other} in {}", dir.display()),
        }
    }
    temporaries
}

fn assert_no_temporaries(dir: &Path) {
    let names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "temporaries left: {names:?}");
}

/// Kills `args` (a command that continues where a killed one stopped) at `KILLS` random moments
/// (2-35% of `whole`, the time an uninterrupted run took, after each start), checking the folder
/// each time, then lets it finish. Returns the number of kills that landed.
fn kill_repeatedly(rng: &mut impl Rng, dir: &Path, args: impl Fn(&Path) -> Vec<String>, whole: Duration) -> usize {
    let mut killed = Vec::new();
    loop {
        let kills = killed.len();
        let a = args(dir);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let delay = if kills < KILLS { whole.mul_f64(rng.gen_range(0.02..0.35)) } else { Duration::from_secs(600) };
        let (done, pid) = run_or_kill(&a, delay);
        if done {
            return kills;
        }
        killed.push(pid);
        if dir.exists() {
            // 200 ms are far more than a process needs to start and tidy the folder.
            let temporaries = check_folder(dir, &killed, delay >= Duration::from_millis(200));
            println!("{} killed after {delay:?}: {temporaries} temporary file(s) left", a[0]);
        }
    }
}

/// Runs `args` to its end and returns how long it took.
fn timed(args: &[String]) -> Duration {
    let start = Instant::now();
    assert!(run_or_kill(&args.iter().map(String::as_str).collect::<Vec<_>>(), Duration::from_secs(600)).0);
    start.elapsed()
}

#[test]
fn kill_9_during_train_and_eval_loses_nothing_and_resumes_to_the_same_bytes() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let (whole, killed) = (tmp("whole"), tmp("killed"));
    let with_out = |d: &Path| TRAIN.iter().map(|s| s.to_string()).chain([d.to_str().unwrap().to_string()]).collect::<Vec<_>>();
    let took = timed(&with_out(&whole));
    let train = |d: &Path| {
        let mut a = with_out(d);
        // Continue from the checkpoint; with none yet, start again (over what an early kill left).
        a.push(if d.join(files::CHECKPOINT).exists() { "--resume" } else { "--force" }.into());
        a
    };
    let kills = kill_repeatedly(&mut rng, &killed, train, took);
    assert!(kills >= 1, "no kill landed during training");
    assert_no_temporaries(&killed);
    for name in [files::MODEL, files::CHECKPOINT, files::TRAINING] {
        assert!(
            std::fs::read(whole.join(name)).unwrap() == std::fs::read(killed.join(name)).unwrap(),
            "{name} differs after {kills} kills"
        );
    }

    // Evaluation: 400,000 questions are 7 slices, each saved to eval.partial.json.
    let eval =
        |d: &Path| ["eval", d.to_str().unwrap(), "--questions", "400000", "--per-class", "50", "--threads", "1"].map(String::from).to_vec();
    let took = timed(&eval(&whole));
    let kills = kill_repeatedly(&mut rng, &killed, eval, took);
    assert!(kills >= 1, "no kill landed during the evaluation");
    assert_no_temporaries(&killed);
    assert!(!killed.join("eval.partial.json").exists(), "the progress file is removed at the end");
    let read = |d: &Path| {
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("eval.json")).unwrap()).unwrap();
        let o = v.as_object_mut().unwrap();
        assert!(o.remove("seconds").is_some() && o.remove("questions_per_s").is_some(), "the timing fields moved: update this test");
        v
    };
    assert_eq!(read(&whole), read(&killed), "eval.json differs after {kills} kills");
    for d in [whole, killed] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
