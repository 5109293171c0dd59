//! What the binary leaves on disk and says: files readable by others (mode 0644 under umask 022),
//! no temporary files left behind by a killed process after the next command in the folder,
//! true messages when a run diverges, and no Rust debug text in what users read.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXE: &str = env!("CARGO_BIN_EXE_arithlens");

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arithlens-out-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs the binary with `umask` as the file-creation mask.
fn run_with_umask(args: &[&str], umask: libc::mode_t) -> Output {
    let mut c = Command::new(EXE);
    c.args(args);
    // SAFETY: umask is async-signal-safe, and only the child's mask changes.
    unsafe {
        c.pre_exec(move || {
            libc::umask(umask);
            Ok(())
        });
    }
    c.output().unwrap()
}

fn run(args: &[&str]) -> Output {
    run_with_umask(args, 0o022)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn files_are_created_readable_by_others_as_the_umask_allows() {
    for (umask, want) in [(0o022, 0o644), (0o027, 0o640)] {
        let dir = tmp(&format!("mode-{umask:o}"));
        let d = dir.to_str().unwrap();
        let o = run_with_umask(&["train", "--preset", "tiny", "--steps", "20", "--quiet", "--out", d], umask);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let cache = dir.join("c.safetensors");
        let o = run_with_umask(&["cache", d, "12+34=", "--out", cache.to_str().unwrap()], umask);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for name in ["model.safetensors", "checkpoint.safetensors", "training.json", "timing.json", "c.safetensors"] {
            assert_eq!(mode(&dir.join(name)), want, "{name} under umask {umask:o}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn the_next_command_in_a_folder_removes_what_killed_writers_left_and_nothing_else() {
    let dir = tmp("leftovers");
    let d = dir.to_str().unwrap();
    assert!(run(&["train", "--preset", "tiny", "--steps", "20", "--quiet", "--out", d]).status.success());
    // As kill -9 leaves them: this module's `.NAME.PID.tmp` of a process long gone (a PID above the
    // kernel's maximum), and an older version's `.tmpXXXXXX` (safetensors crate) from before.
    let leftovers = |dir: &Path| {
        let dead = [dir.join(".training.json.9999999.tmp"), dir.join(".model.safetensors.9999998.tmp")];
        for p in &dead {
            std::fs::write(p, b"{\"half\": ").unwrap();
        }
        let legacy = dir.join(".tmpAb12Cd");
        std::fs::write(&legacy, [0u8; 64]).unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&legacy).unwrap().set_modified(hour_ago).unwrap();
        // A user's files with similar names stay.
        for k in ["notes.tmp", ".notes.tmp", ".tmpAb12Cd.txt", ".x.123abc.tmp"] {
            std::fs::write(dir.join(k), b"mine").unwrap();
        }
        let mut all = dead.to_vec();
        all.push(legacy);
        all
    };
    let check = |dir: &Path, gone: &[PathBuf], o: &Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for p in gone {
            assert!(!p.exists(), "{} is left", p.display());
            assert!(String::from_utf8_lossy(&o.stderr).contains(&p.display().to_string()), "the removal is reported");
        }
        for k in ["notes.tmp", ".notes.tmp", ".tmpAb12Cd.txt", ".x.123abc.tmp"] {
            assert_eq!(std::fs::read(dir.join(k)).unwrap(), b"mine", "{k} is a user's file");
        }
    };
    let gone = leftovers(&dir);
    check(&dir, &gone, &run(&["train", "--preset", "tiny", "--steps", "20", "--resume", "--quiet", "--out", d]));
    let gone = leftovers(&dir);
    check(&dir, &gone, &run(&["eval", d, "--questions", "100", "--per-class", "2"]));
    let figures = dir.join("figures");
    std::fs::create_dir_all(&figures).unwrap();
    let mut gone = leftovers(&dir);
    gone.extend(leftovers(&figures));
    let o = run(&["report", d]);
    check(&dir, &gone, &o);
    check(&figures, &gone, &o);
    let other = dir.join("caches");
    std::fs::create_dir_all(&other).unwrap();
    let gone = leftovers(&other);
    check(&other, &gone, &run(&["cache", d, "12+34=", "--out", other.join("c.safetensors").to_str().unwrap()]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_diverging_run_says_what_is_on_disk_and_counts_steps_from_1() {
    let dir = tmp("diverge");
    let d = dir.to_str().unwrap();
    let o = run(&["train", "--preset", "tiny", "--set", "lr=1e3", "--threads", "1", "--quiet", "--out", d]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(!err.contains("checkpoint is kept"), "no checkpoint exists: {err}");
    assert!(err.contains("nothing of this run was saved (its first checkpoint was due at step 500)"), "{err}");
    // Steps count from 1 here as in "stopped after step N" (tests/training.rs checks the number).
    let step: u64 = err.split("at step ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(step >= 1 && err.contains(&format!("at step {step} of 2000")), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn users_read_words_not_rust_debug_text() {
    let dir = tmp("words");
    let d = dir.to_str().unwrap();
    assert!(run(&["train", "--preset", "tiny_sub", "--steps", "5", "--quiet", "--out", d]).status.success());
    let o = run(&["ask", d, "12+34="]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("trained on subtraction only, not on addition ('+') questions"), "{err}");
    let o = run(&["eval", d, "--questions", "200", "--per-class", "2"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("subtraction, random questions:"), "{out}");
    for text in [&err, &out] {
        for debug in ["[Sub]", "[Add]", "Sub,", "Add,", "Some(", "None"] {
            assert!(!text.contains(debug), "debug text {debug:?} in: {text}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
