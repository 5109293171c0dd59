//! The model zoo: manifest errors, the job graph, the sbatch scripts (dry run), and the local
//! engine on tiny manifests run through the binary: every stage runs once, a second run skips
//! everything, a failed job does not stop independent ones, a killed run resumes its training.

use arithlens::zoo::graph::{dependencies, jobs};
use arithlens::zoo::slurm::{accounted_ends, dry_run, in_flight, parse_sacct, parse_squeue, Submitted};
use arithlens::zoo::status::{stage_word, SlurmView};
use arithlens::zoo::{Job, Stage, Zoo};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch folder under the system's temporary folder, removed when dropped (a failing test
/// included), so the tests leave no folders behind.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("arithlens-zoo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

fn parse(text: &str) -> Result<Zoo, String> {
    Zoo::parse(text, Path::new("zoo/test.toml"), Some(Path::new("/tmp/zoo-root")))
}

const HEAD: &str = "[zoo]\nname = \"t\"\n";

#[test]
fn manifest_errors_name_the_manifest_the_model_and_the_field() {
    let cases: &[(&str, &[&str])] = &[
        ("[[model]]\npreset = \"tiny\"\nsteps = 3\n", &["zoo/test.toml", "unknown field", "steps"]),
        ("[[model]]\npreset = \"tinyy\"\n", &["zoo/test.toml", "model #1 (tinyy)", "preset", "unknown preset"]),
        ("[[model]]\npreset = \"tiny\"\nset = [\"d_modle=3\"]\n", &["model #1 (tiny)", "set", "d_modle"]),
        ("[[model]]\npreset = \"tiny\"\n[[model]]\npreset = \"tiny\"\n", &["models #1 and #2", "'tiny'", "`name`"]),
        ("[[model]]\npreset = \"tiny\"\npaper = { nines = { sub = 6 } }\n", &["model #1 (tiny)", "paper.nines", "'sub'", "add"]),
        ("[[model]]\npreset = \"tiny\"\npaper = { nines = { add = 7 } }\n", &["paper.nines.add = 7", "at most 6"]),
        ("[[model]]\npreset = \"tiny\"\nstages = [\"train\", \"test\"]\n", &["zoo/test.toml", "test"]),
        ("[slurm]\nextra = [\"--mem=4G\"]\n[[model]]\npreset = \"tiny\"\n", &["[slurm] extra", "--mem=4G", "#SBATCH"]),
        ("[slurm]\ntime = \"1 day\"\n[[model]]\npreset = \"tiny\"\n", &["[slurm] time", "1 day"]),
        ("", &["zoo/test.toml", "no models"]),
    ];
    for (body, wanted) in cases {
        let err = parse(&format!("{HEAD}{body}")).expect_err(body);
        for w in *wanted {
            assert!(err.contains(w), "error for {body:?} lacks {w:?}: {err}");
        }
    }
    let err = Zoo::parse("[zoo]\nname = \"a b\"\n[[model]]\npreset = \"tiny\"\n", Path::new("m.toml"), None).unwrap_err();
    assert!(err.contains("m.toml: [zoo] name"), "{err}");
    let err = Zoo::load(Path::new("/nonexistent/zoo.toml"), None).unwrap_err();
    assert!(err.contains("/nonexistent/zoo.toml"), "{err}");
}

const INSERTED: &str = "[zoo]\nname = \"ins\"\n[slurm]\npartition = \"cpu\"\naccount = \"lab\"\ntime = \"01:00:00\"\n\
    stage_time = { train = \"08:00:00\" }\ncpus_per_task = 4\nextra = [\"#SBATCH --mem=8G\"]\n\
    [[model]]\npreset = \"ins1_mix_d2_l3_h4_t1K_s7\"\n\
    [[model]]\npreset = \"add_d2_l2_h3_t15K_s7\"\nstages = [\"train\", \"analyze\"]\n\
    [[model]]\npreset = \"tiny\"\nstages = [\"train\", \"eval\", \"report\"]\n";

#[test]
fn the_job_graph_waits_for_training_and_for_an_inserted_models_source() {
    let zoo = parse(INSERTED).unwrap();
    assert_eq!(jobs(&zoo).len(), 4 + 2 + 3);
    let job = |model, stage| Job { model, stage };
    // The inserted model is initialised from the zoo's own source model, under the root.
    assert_eq!(zoo.models[0].insert_source, Some(1));
    let from = &zoo.models[0].config.insert.as_ref().unwrap().from;
    assert_eq!(from, Path::new("/tmp/zoo-root/add_d2_l2_h3_t15K_s7"));
    assert_eq!(dependencies(&zoo, job(0, Stage::Train)), vec![job(1, Stage::Train)]);
    assert_eq!(dependencies(&zoo, job(0, Stage::Analyze)), vec![job(0, Stage::Train), job(1, Stage::Analyze)]);
    assert_eq!(dependencies(&zoo, job(0, Stage::Report)), vec![job(0, Stage::Train), job(0, Stage::Eval), job(0, Stage::Analyze)]);
    assert_eq!(dependencies(&zoo, job(1, Stage::Train)), vec![]);
    // A model without analyze: its report waits for train and eval only.
    assert_eq!(dependencies(&zoo, job(2, Stage::Report)), vec![job(2, Stage::Train), job(2, Stage::Eval)]);
    // Stage commands: the manifest's overrides and options, the run folder under the root.
    let train = arithlens::zoo::graph::command(&zoo, job(0, Stage::Train), 3);
    let text = train.join(" ");
    assert!(
        text.starts_with("--threads 3 train --preset ins1_mix_d2_l3_h4_t1K_s7 --set insert.from=/tmp/zoo-root/add_d2_l2_h3_t15K_s7"),
        "{text}"
    );
    assert!(text.ends_with("--out /tmp/zoo-root/ins1_mix_d2_l3_h4_t1K_s7 --quiet"), "{text}");
    let eval = arithlens::zoo::graph::command(&zoo, job(2, Stage::Eval), 1).join(" ");
    assert_eq!(eval, "--threads 1 eval /tmp/zoo-root/tiny --questions 1000000 --seed 673023 --per-class 10000 --exhaustive");
}

#[test]
fn sbatch_scripts_chain_each_models_stages_and_carry_the_manifests_options() {
    let zoo = parse(INSERTED).unwrap();
    let scripts = dry_run(&zoo, Path::new("/opt/arithlens"), &BTreeMap::new());
    let names: Vec<(Stage, usize, Vec<usize>)> = scripts.iter().map(|(a, _)| (a.stage, a.level, a.models.clone())).collect();
    // Level 0: the models trained from scratch, every stage; level 1: the inserted model.
    assert_eq!(
        names,
        vec![
            (Stage::Train, 0, vec![1, 2]),
            (Stage::Eval, 0, vec![1, 2]),
            (Stage::Analyze, 0, vec![1, 2]),
            (Stage::Report, 0, vec![1, 2]),
            (Stage::Train, 1, vec![0]),
            (Stage::Eval, 1, vec![0]),
            (Stage::Analyze, 1, vec![0]),
            (Stage::Report, 1, vec![0]),
        ]
    );
    let train0 = &scripts[0].1;
    for line in [
        "#SBATCH --job-name=zoo-ins-train",
        "#SBATCH --array=1,2",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --partition=cpu",
        "#SBATCH --account=lab",
        "#SBATCH --time=08:00:00",
        "#SBATCH --mem=8G",
        "#SBATCH --kill-on-invalid-dep=yes",
        "models=([1]=add_d2_l2_h3_t15K_s7 [2]=tiny)",
    ] {
        assert!(train0.lines().any(|l| l == line), "no line {line:?} in\n{train0}");
    }
    assert!(!train0.contains("--dependency"), "the first array waits for nothing:\n{train0}");
    let exec = train0.lines().last().unwrap();
    assert!(
        exec.starts_with("exec /opt/arithlens --threads \"${SLURM_CPUS_PER_TASK:-1}\" zoo job ")
            && exec.contains("--root /tmp/zoo-root --stage train --model \"${models[$SLURM_ARRAY_TASK_ID]}\""),
        "{exec}"
    );
    assert!(scripts[1].1.contains("#SBATCH --time=01:00:00\n"), "eval takes [slurm] time");
    assert!(scripts[1].1.contains("#SBATCH --dependency=aftercorr:<zoo-ins-train>\n"), "{}", scripts[1].1);
    let report = &scripts[3].1;
    assert!(report.contains("--dependency=aftercorr:<zoo-ins-train>,aftercorr:<zoo-ins-eval>,aftercorr:<zoo-ins-analyze>"), "{report}");
    // The inserted model's training waits for its source's task (index 1) of the first train array.
    assert!(scripts[4].1.contains("#SBATCH --dependency=afterok:<zoo-ins-train>_1\n"), "{}", scripts[4].1);
    assert!(scripts[6].1.contains("--dependency=aftercorr:<zoo-ins-train-inserted>,afterok:<zoo-ins-analyze>_1"), "{}", scripts[6].1);
}

#[test]
fn models_queued_or_running_on_slurm_are_not_submitted_again() {
    let zoo = parse(INSERTED).unwrap();
    let record = vec![Submitted { job_id: 40, stage: Stage::Train, tasks: [(1, "add_d2_l2_h3_t15K_s7".to_string())].into() }];
    let queue = parse_squeue("40|1|RUNNING|None\n41|0|PENDING|DependencyNeverSatisfied\n99|N/A|PENDING|None\n");
    assert_eq!(queue.len(), 2, "a job that is not an array task is not one of ours");
    let flight = in_flight(&record, &queue);
    assert_eq!(flight.len(), 1);
    let scripts = dry_run(&zoo, Path::new("/opt/arithlens"), &flight);
    let models: Vec<Vec<usize>> = scripts.iter().map(|(a, _)| a.models.clone()).collect();
    assert!(models.iter().all(|m| !m.contains(&1)), "the running model is left alone: {models:?}");
    // The inserted model waits for the source's running task, not a new one.
    let train_inserted = scripts.iter().find(|(a, _)| a.stage == Stage::Train && a.models == vec![0]).unwrap();
    assert!(train_inserted.1.contains("#SBATCH --dependency=afterok:40_1\n"), "{}", train_inserted.1);
}

#[test]
fn status_says_how_slurm_ended_a_task_from_its_accounting() {
    let dir = scratch("sacct");
    let zoo = Zoo::parse(INSERTED, Path::new("zoo/test.toml"), Some(&*dir)).unwrap();
    let (a, b) = (zoo.models[0].name.clone(), zoo.models[1].name.clone());
    let record = vec![
        Submitted { job_id: 40, stage: Stage::Train, tasks: [(0, a.clone()), (1, b.clone())].into() },
        Submitted { job_id: 41, stage: Stage::Eval, tasks: [(0, a.clone()), (1, b.clone())].into() },
        Submitted { job_id: 50, stage: Stage::Train, tasks: [(1, b.clone())].into() }, // a resubmission
    ];
    let sacct =
        "40_0|FAILED|2:0\n40_1|CANCELLED by 0|0:15\n41_0|CANCELLED by 0|0:0\n41_[1]|PENDING|0:0\n50_1|TIMEOUT|0:1\n77|COMPLETED|0:0\n";
    let accounted = parse_sacct(sacct);
    assert_eq!(accounted.len(), 4, "whole arrays and plain jobs are not tasks: {accounted:?}");
    let ends = accounted_ends(&record, &accounted);
    assert_eq!(ends[&(b.clone(), Stage::Train)].job_id, 50, "the latest submission counts");
    assert!(!ends.contains_key(&(b.clone(), Stage::Eval)), "a task accounting does not know yet");
    let view = SlurmView { record: &record, queue: &[], accounted: &accounted };
    let word = |model: usize, stage: Stage| stage_word(&zoo, Job { model, stage }, Some(view));
    assert_eq!(word(0, Stage::Train), "failed (exit 2)");
    assert_eq!(word(0, Stage::Eval), "cancelled", "removed by Slurm after its training failed");
    assert_eq!(word(1, Stage::Train), "timeout");
    assert_eq!(word(1, Stage::Eval), "-", "a stage the model does not run");
    assert_eq!(word(2, Stage::Train), "todo", "never submitted");
    let queue = parse_squeue("50|1|RUNNING|None\n");
    let view = SlurmView { record: &record, queue: &queue, accounted: &accounted };
    assert_eq!(stage_word(&zoo, Job { model: 1, stage: Stage::Train }, Some(view)), "running", "the queue comes first");
    // Without Slurm's word, the job's log says how its last attempt ended.
    let log = arithlens::zoo::job::log_path(&zoo, Job { model: 1, stage: Stage::Train });
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "== zoo: arithlens train\n== zoo: exit status 1 after 4.0 s; cancelled\n").unwrap();
    assert_eq!(stage_word(&zoo, Job { model: 1, stage: Stage::Train }, None), "cancelled");
    std::fs::write(&log, "== zoo: arithlens train\n== zoo: exit status 3 after 4.0 s\n").unwrap();
    assert_eq!(stage_word(&zoo, Job { model: 1, stage: Stage::Train }, None), "failed (exit 3)");
}

fn arithlens(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_arithlens")).current_dir(dir).args(args).output().unwrap()
}

/// Starts `arithlens ARGS` in `dir` and returns once `file` exists (the job is under way).
fn start_until(dir: &Path, args: &[&str], file: &Path, stderr: std::process::Stdio) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_arithlens")).current_dir(dir).args(args).stderr(stderr).spawn().unwrap();
    while !file.exists() {
        assert!(child.try_wait().unwrap().is_none(), "arithlens {args:?} ended before {} appeared", file.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const TINY: &str = "[zoo]\nname = \"tiny\"\n[eval]\nper_class = 50\n[analyze]\nquestions = 60\npairs = 4\nsiblings = 0\n\
    [[model]]\npreset = \"tiny\"\nset = [\"steps=600\"]\npaper = { nines = { add = 4 }, note = \"a test figure\" }\n\
    [[model]]\nname = \"tiny_l2_short\"\npreset = \"tiny_l2\"\nset = [\"steps=100\"]\nstages = [\"train\", \"eval\", \"report\"]\n";

#[test]
fn the_local_engine_runs_every_stage_once_then_skips_them_and_tables_the_results() {
    let dir = scratch("local");
    std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
    let o = arithlens(&dir, &["zoo", "run", "tiny.toml", "--jobs", "2", "--threads", "2"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("7 jobs of 2 models") && out.contains("7/7 done (0 current)"), "{out}");
    let root = dir.join("runs/zoo-tiny");
    for f in ["tiny/model.safetensors", "tiny/eval.json", "tiny/analysis.json", "tiny/report.html", "tiny/logs/train.log"] {
        assert!(root.join(f).exists(), "{f} missing:\n{out}");
    }
    assert!(!root.join("tiny_l2_short/analysis.json").exists(), "a stage the model does not list is not run");
    let log = std::fs::read_to_string(root.join("tiny/logs/train.log")).unwrap();
    assert!(log.contains("train --preset tiny --set steps=600 --out") && log.contains("== zoo: exit status 0"), "{log}");
    let mtime = |f: &str| std::fs::metadata(root.join(f)).unwrap().modified().unwrap();
    let before: Vec<_> = ["tiny/model.safetensors", "tiny/eval.json", "tiny/analysis.json", "tiny/report.html"].map(mtime).into();
    // Idempotent: nothing runs again.
    let o = arithlens(&dir, &["zoo", "run", "tiny.toml"]);
    let out = text(&o);
    assert!(o.status.success() && out.contains("7/7 done (7 current)"), "{out}");
    let after: Vec<_> = ["tiny/model.safetensors", "tiny/eval.json", "tiny/analysis.json", "tiny/report.html"].map(mtime).into();
    assert_eq!(before, after, "a second run rewrote files:\n{out}");
    // Status and table.
    let o = arithlens(&dir, &["zoo", "status", "tiny.toml"]);
    let status = text(&o);
    assert!(status.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["tiny_l2_short", "done", "done", "-", "done"]), "{status}");
    assert!(status.contains("7/7 jobs done"), "{status}");
    let o = arithlens(&dir, &["zoo", "table", "tiny.toml"]);
    assert!(o.status.success(), "{}", text(&o));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("zoo.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("tiny/eval.json")).unwrap()).unwrap();
    let op = &rows[0]["per_op"][0];
    assert_eq!(op["failures"], eval["ops"][0]["failures"]);
    assert_eq!(op["questions"], 10_000, "two digits: every question");
    assert_eq!(op["paper_nines"], 4);
    assert_eq!(op["meets"], serde_json::json!(op["nines"].as_u64().unwrap() >= 4));
    assert_eq!(rows[0]["report"], "tiny/report.html");
    assert_eq!(rows[1]["layers"], 2);
    assert!(rows[0]["computation_starts"].as_str().unwrap().starts_with('P'), "{}", rows[0]);
    let md = std::fs::read_to_string(root.join("zoo.md")).unwrap();
    assert!(md.contains("[report](tiny/report.html)") && md.contains("paper 4") && md.contains("a test figure"), "{md}");
    let html = std::fs::read_to_string(root.join("zoo.html")).unwrap();
    assert!(html.contains("<a href=\"tiny/report.html\">") && html.contains("<svg"), "zoo.html lacks its link or figure");
}

#[test]
fn a_failed_job_is_reported_with_its_log_and_does_not_stop_independent_ones() {
    let dir = scratch("failure");
    // The inserted model's source is not in the zoo, nor in runs/: its training fails.
    let manifest = "[zoo]\nname = \"f\"\nstages = [\"train\", \"eval\"]\n[eval]\nper_class = 20\n\
        [[model]]\npreset = \"ins1_mix_d2_l3_h4_t1K_s7\"\nset = [\"d_model=32\"]\n\
        [[model]]\npreset = \"tiny\"\nset = [\"steps=50\"]\n";
    std::fs::write(dir.join("f.toml"), manifest).unwrap();
    let o = arithlens(&dir, &["zoo", "run", "f.toml", "--threads", "1"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("2 of 4 jobs failed"), "{out}");
    assert!(out.contains("train ins1_mix_d2_l3_h4_t1K_s7: FAILED: exit status 1"), "{out}");
    assert!(out.contains("logs/train.log:\n") && out.contains("add_d2_l2_h3_t15K_s7"), "the log's tail names the missing source:\n{out}");
    assert!(out.contains("eval ins1_mix_d2_l3_h4_t1K_s7: not run: train of ins1_mix_d2_l3_h4_t1K_s7 failed"), "{out}");
    let root = dir.join("runs/zoo-f");
    assert!(root.join("tiny/eval.json").exists(), "the independent model ran:\n{out}");
    let status = text(&arithlens(&dir, &["zoo", "status", "f.toml"]));
    assert!(status.contains("failed (exit 1)"), "{status}");
}

#[test]
fn a_killed_zoo_run_resumes_its_training_from_the_checkpoint() {
    let dir = scratch("kill");
    let manifest =
        "[zoo]\nname = \"k\"\nstages = [\"train\"]\n[[model]]\npreset = \"tiny\"\nset = [\"steps=4000\", \"checkpoint_every=100\"]\n";
    std::fs::write(dir.join("k.toml"), manifest).unwrap();
    let run = dir.join("runs/zoo-k/tiny");
    let args = ["zoo", "run", "k.toml", "--threads", "1"];
    let mut child = start_until(&dir, &args, &run.join("checkpoint.safetensors"), std::process::Stdio::null());
    child.kill().unwrap(); // SIGKILL: the zoo process cannot clean up
    child.wait().unwrap();
    // Its training is told to stop (SIGTERM on its parent's death) and leaves no model behind.
    let log = run.join("logs/train.log");
    for _ in 0..500 {
        if std::fs::read_to_string(&log).unwrap_or_default().contains("stopped") || run.join("model.safetensors").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!run.join("model.safetensors").exists(), "training finished before the kill; make it longer");
    let o = arithlens(&dir, &["zoo", "run", "k.toml", "--threads", "1"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.lines().filter(|l| l.starts_with("== zoo: ") && l.contains(" train ")).count() == 2, "{log}");
    assert!(log.lines().rev().find(|l| l.contains(" train ")).unwrap().contains("--resume"), "the second attempt resumes:\n{log}");
    assert!(run.join("model.safetensors").exists());
    let state = arithlens::zoo::fresh::job_state(
        &Zoo::load(&dir.join("k.toml"), Some(&dir.join("runs/zoo-k"))).unwrap(),
        Job { model: 0, stage: Stage::Train },
    );
    assert!(state.is_done(), "{state:?}");
}

#[test]
fn a_zoo_job_told_to_stop_passes_it_on_and_is_logged_as_cancelled() {
    let dir = scratch("cancel");
    let manifest =
        "[zoo]\nname = \"c\"\nstages = [\"train\"]\n[[model]]\npreset = \"tiny\"\nset = [\"steps=100000\", \"checkpoint_every=100\"]\n";
    std::fs::write(dir.join("c.toml"), manifest).unwrap();
    let run = dir.join("runs/zoo-c/tiny");
    // What a Slurm array task runs; scancel sends it SIGTERM.
    let args = ["--threads", "1", "zoo", "job", "c.toml", "--stage", "train", "--model", "tiny"];
    let child = start_until(&dir, &args, &run.join("checkpoint.safetensors"), std::process::Stdio::piped());
    // Only the zoo job is signalled: it must pass the request on to the training it runs.
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cancelled"), "{err}");
    assert!(!run.join("model.safetensors").exists(), "training finished before the signal; make it longer");
    let log = std::fs::read_to_string(run.join("logs/train.log")).unwrap();
    assert!(log.trim_end().ends_with("; cancelled"), "{log}");
    let status = text(&arithlens(&dir, &["zoo", "status", "c.toml"]));
    assert!(status.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["tiny", "cancelled", "-", "-", "-"]), "{status}");
}

#[test]
fn a_second_zoo_run_on_one_root_is_refused_and_a_stale_lock_is_taken_over() {
    let dir = scratch("lock");
    let long = "[zoo]\nname = \"l\"\nstages = [\"train\"]\n[[model]]\npreset = \"tiny\"\nset = [\"steps=100000\"]\n";
    let quick = "[zoo]\nname = \"q\"\nstages = [\"train\"]\n[[model]]\npreset = \"tiny_sub\"\nset = [\"steps=20\"]\n";
    std::fs::write(dir.join("long.toml"), long).unwrap();
    std::fs::write(dir.join("quick.toml"), quick).unwrap();
    let lock = dir.join("root/.zoo/lock");
    let args = ["--threads", "1", "zoo", "run", "long.toml", "--root", "root"];
    let mut first = start_until(&dir, &args, &dir.join("root/tiny/logs/train.log"), std::process::Stdio::null());
    let holder = arithlens::zoo::lock::read_holder(&lock).unwrap();
    assert_eq!(holder.pid, first.id());
    for engine in ["local", "slurm"] {
        let o = arithlens(&dir, &["zoo", "run", "quick.toml", "--root", "root", "--engine", engine]);
        let out = text(&o);
        assert!(!o.status.success(), "{out}");
        let (pid, host) = (format!("pid {}", first.id()), format!("host {}", arithlens::zoo::lock::host_name()));
        assert!(out.contains(&lock.display().to_string()) && out.contains(&pid) && out.contains(&host), "{out}");
    }
    assert!(!dir.join("root/tiny_sub").exists(), "the refused run touched nothing");
    first.kill().unwrap(); // SIGKILL: its lock stays behind
    first.wait().unwrap();
    assert!(lock.exists());
    // Its training is told to stop (SIGTERM on its parent's death); let it finish writing.
    for _ in 0..500 {
        if std::fs::read_to_string(dir.join("root/tiny/logs/train.log")).unwrap_or_default().contains("stopped") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = arithlens(&dir, &["--threads", "1", "zoo", "run", "quick.toml", "--root", "root"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("taking over the stale lock") && out.contains(&format!("pid {}", holder.pid)), "{out}");
    assert!(dir.join("root/tiny_sub/model.safetensors").exists(), "{out}");
    assert!(!lock.exists(), "the lock is removed when the run ends");
}

#[test]
fn estimate_measures_each_architecture_once_and_totals_the_zoo() {
    let dir = scratch("estimate");
    std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
    let o = arithlens(&dir, &["--threads", "2", "zoo", "estimate", "tiny.toml", "--jobs", "2", "--steps", "3", "--eval-questions", "200"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("measuring 2 architecture(s) at 1 thread(s) each (3 training steps, 200 evaluated questions"), "{out}");
    assert!(out.lines().any(|l| l.trim_start().starts_with("tiny ") && l.contains("train ") && l.contains("analyze ")), "{out}");
    assert!(out.lines().any(|l| l.trim_start().starts_with("tiny_l2_short ") && !l.contains("analyze")), "{out}");
    assert!(
        out.contains("on this machine, 2 job(s) at once on 2 core(s): ") && out.contains("on a cluster running 2 job(s) at once"),
        "{out}"
    );
    assert!(!dir.join("runs").exists(), "an estimate trains nothing into run folders");
}

#[test]
fn the_shipped_manifests_parse_and_hold_what_they_promise() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mini = Zoo::load(&repo.join("zoo/mini.toml"), Some(Path::new("/tmp/mini-root"))).unwrap();
    assert_eq!(mini.models.len(), 5);
    for m in &mini.models {
        assert!((2..=3).contains(&m.config.task.n_digits) && (1..=3).contains(&m.config.model.n_layers), "{}", m.name);
    }
    let kinds: Vec<(usize, bool)> = mini.models.iter().map(|m| (m.config.task.ops().len(), m.config.insert.is_some())).collect();
    assert!(kinds.contains(&(2, true)) && kinds.contains(&(2, false)) && kinds.contains(&(1, false)), "{kinds:?}");
    assert!(mini.models.iter().any(|m| m.config.task.sub_share == 1.0), "a subtraction model");
    let ins = mini.models.iter().position(|m| m.config.insert.is_some()).unwrap();
    let source = mini.models[ins].insert_source.expect("the inserted model's source is in the zoo");
    assert_eq!(mini.models[ins].config.insert.as_ref().unwrap().from, Path::new("/tmp/mini-root").join(&mini.models[source].name));
    assert_eq!(mini.models[ins].config.model.d_head, 21, "overrides survive the source's link");
    let followup = Zoo::load(&repo.join("zoo/followup.toml"), None).unwrap();
    assert!(followup.models.len() >= 20);
    assert!(followup.models.iter().all(|m| m.paper.as_ref().is_some_and(|p| !p.nines.is_empty() || p.loss.is_some())));
    let main = followup.models.iter().find(|m| m.name == "ins1_mix_d6_l3_h4_t40K_s372001").unwrap();
    assert_eq!(followup.models[main.insert_source.unwrap()].name, "add_d6_l2_h3_t15K_s372001");
}
