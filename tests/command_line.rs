//! The binary itself: Ctrl-C during training leaves a checkpoint that `--resume` continues, and
//! resuming a finished run changes nothing (nor re-evaluates what is up to date); `cache` writes
//! safetensors or NumPy .npz by the output name, for listed and seeded random questions.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[cfg(unix)]
#[test]
fn ctrl_c_during_training_saves_a_checkpoint_and_resume_continues_it() {
    let dir = std::env::temp_dir().join(format!("arithlens-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = env!("CARGO_BIN_EXE_arithlens");
    let out = dir.to_str().unwrap();
    let mut child = Command::new(exe)
        .args(["train", "--preset", "tiny", "--steps", "1000000", "--threads", "1", "--quiet", "--out", out])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once it has announced the run (the handler is installed right after), let it take some
    // steps, then interrupt it as a terminal's Ctrl-C would.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(first.starts_with("training tiny"), "{first}");
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let start = Instant::now();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    let status = child.wait().unwrap();
    assert!(start.elapsed() < Duration::from_secs(20), "training did not stop promptly");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("stopped after step") && err.contains("--resume"), "{err}");
    let step: u64 = err.split("stopped after step ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(step > 0);
    // Resume for a few more steps and finish.
    let target = (step + 10).to_string();
    let status =
        Command::new(exe).args(["train", "--preset", "tiny", "--steps", &target, "--quiet", "--resume", "--out", out]).status().unwrap();
    assert!(status.success());
    let model = dir.join("model.safetensors");
    let written = std::fs::metadata(&model).unwrap().modified().unwrap();
    // Resuming a finished run trains nothing and leaves the model as it was.
    let again = Command::new(exe).args(["train", "--preset", "tiny", "--steps", &target, "--resume", "--out", out]).output().unwrap();
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success() && said.contains("already trained") && !said.contains("steps/s"), "{said}");
    assert_eq!(std::fs::metadata(&model).unwrap().modified().unwrap(), written);
    // `run --resume` on it evaluates and analyses once; a second one finds both up to date.
    let run = |dir: &str| {
        let o = Command::new(exe).args(["run", "--preset", "tiny", "--steps", &target, "--resume", "--out", dir]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let first = run(out);
    assert!(first.contains("[2/4] evaluate\n") && !first.contains("up to date"), "{first}");
    let second = run(out);
    assert!(second.contains("eval.json is up to date") && second.contains("analysis.json is up to date"), "{second}");
    assert_eq!(std::fs::metadata(&model).unwrap().modified().unwrap(), written);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cache_writes_listed_and_seeded_random_questions_as_safetensors_or_npz() {
    let dir = std::env::temp_dir().join(format!("arithlens-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = env!("CARGO_BIN_EXE_arithlens");
    let run = |args: &[&str]| Command::new(exe).args(args).output().unwrap();
    let d = dir.to_str().unwrap();
    assert!(run(&["train", "--preset", "tiny", "--steps", "20", "--quiet", "--out", d]).status.success());
    let (st, npz) = (dir.join("c.safetensors"), dir.join("c.npz"));
    let hook = "blocks.0.attn.hook_pattern";
    for out in [&st, &npz] {
        let o = run(&["cache", d, "12+34=", "99+1=", "--hook", hook, "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let saved = arithlens::io::tensors::load(&st).unwrap();
    assert_eq!(saved.tensors[hook].shape, [2, 3, 9, 9]);
    assert!(saved.integer.contains("tokens") && !saved.integer.contains(hook), "tokens are stored as int64");
    let z = zip::ZipArchive::new(std::fs::File::open(&npz).unwrap()).unwrap();
    let mut names: Vec<String> = z.file_names().map(|n| n.unwrap().into_owned()).collect();
    names.sort();
    // The provenance (model hash and options) is a string array too.
    assert_eq!(names, [format!("{hook}.npy"), "provenance.npy".into(), "questions.npy".into(), "tokens.npy".into()]);
    // Random questions after the listed ones, reproducible by seed.
    let r = dir.join("r.safetensors");
    for _ in 0..2 {
        let o = run(&["cache", d, "12+34=", "--random", "5", "--seed", "3", "--hook", hook, "--out", r.to_str().unwrap(), "--force"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let cached = arithlens::io::tensors::load(&r).unwrap();
    assert_eq!(cached.tensors[hook].shape, [6, 3, 9, 9]);
    assert!(cached.metadata["questions"].starts_with("12+34= "));
    let random_only = |seed: &str| {
        assert!(run(&["cache", d, "--random", "5", "--seed", seed, "--hook", hook, "--out", r.to_str().unwrap(), "--force"])
            .status
            .success());
        arithlens::io::tensors::load(&r).unwrap().metadata["questions"].clone()
    };
    assert_eq!(format!("12+34= {}", random_only("3")), cached.metadata["questions"]);
    assert_ne!(random_only("4"), random_only("3"));
    let o = run(&["cache", d, "--random", "0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--random N"));
    let o = run(&["cache", d, "12+34=", "--out", dir.join("c.npy").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("name it .npz"), "{err}");
    assert!(!dir.join("c.npy").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
