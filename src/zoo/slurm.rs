//! The Slurm engine: one `sbatch` job array per stage (array index = the model's place in the
//! manifest), each task running `arithlens zoo job` for its model, the same job the local engine
//! runs. A model's stages follow one another per task (`--dependency=aftercorr`, afterok task by
//! task, so a failed model holds back only its own later stages); an inserted model's training
//! waits for its source's (`afterok:JOB_TASK`). `--kill-on-invalid-dep=yes` removes the later
//! stages of a failed or cancelled task, so a resubmission finds them gone.
//!
//! Resubmitting skips every model with a task still queued or running (from `squeue`, matched
//! through the record of submissions in `ROOT/.zoo/slurm.json`; accounting via `sacct` is not
//! needed) and every stage whose output is current in its run folder. `zoo status` also asks
//! `sacct`, where the cluster keeps accounting, how each ended task ended (cancelled, failed
//! with its exit status, out of time or memory).

use super::fresh::job_state;
use super::graph::{Job, Stage};
use super::job::shell_word;
use super::manifest::Zoo;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One submitted job array, as recorded in `ROOT/.zoo/slurm.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Submitted {
    /// Slurm's job id of the array.
    pub job_id: u64,
    /// The stage its tasks run.
    pub stage: Stage,
    /// Array task index to model name.
    pub tasks: BTreeMap<u32, String>,
}

/// One array task in the queue.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedTask {
    /// The array's job id.
    pub job_id: u64,
    /// The task index.
    pub task: u32,
    /// Slurm's state (PENDING, RUNNING, ...).
    pub state: String,
    /// Slurm's reason for a pending task.
    pub reason: String,
}

/// One array task as Slurm's accounting (`sacct`) records it.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountedTask {
    /// The array's job id.
    pub job_id: u64,
    /// The task index.
    pub task: u32,
    /// Slurm's state (COMPLETED, CANCELLED by 0, FAILED, TIMEOUT, ...).
    pub state: String,
    /// The exit status (the part of sacct's `N:S` before the colon).
    pub exit_code: i32,
}

impl AccountedTask {
    /// The task's end in `zoo status`'s words, when it ended other than well: `cancelled`,
    /// `failed (exit N)`, `timeout`, `failed (out of memory)`, `failed (node failure)`,
    /// `preempted`; `None` for a task that completed or has not ended.
    pub fn failure_word(&self) -> Option<String> {
        let state = self.state.split_whitespace().next().unwrap_or("");
        Some(match state {
            "CANCELLED" => "cancelled".into(),
            "FAILED" => format!("failed (exit {})", self.exit_code),
            "TIMEOUT" | "DEADLINE" => "timeout".into(),
            "OUT_OF_MEMORY" => "failed (out of memory)".into(),
            "NODE_FAIL" | "BOOT_FAIL" => "failed (node failure)".into(),
            "PREEMPTED" => "preempted".into(),
            _ => return None,
        })
    }
}

/// A job array to submit.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayJob {
    /// The stage.
    pub stage: Stage,
    /// 0 for models trained from scratch; 1 for inserted models whose source is in this
    /// submission or still in the queue.
    pub level: usize,
    /// Model indices, the array's task ids.
    pub models: Vec<usize>,
}

/// Where the engine keeps its scripts, record and Slurm's own output.
pub fn state_dir(zoo: &Zoo) -> PathBuf {
    zoo.root.join(".zoo").join("slurm")
}

fn record_path(zoo: &Zoo) -> PathBuf {
    zoo.root.join(".zoo").join("slurm.json")
}

/// The submissions recorded for this root (none when there is no record).
pub fn read_record(zoo: &Zoo) -> Result<Vec<Submitted>, String> {
    let path = record_path(zoo);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!("{} does not parse as the zoo's record of Slurm submissions ({e}); move it away to submit afresh", path.display())
        }),
    }
}

/// The (model, stage) of every queued or running task of this zoo.
pub fn in_flight(record: &[Submitted], queue: &[QueuedTask]) -> BTreeMap<(String, Stage), QueuedTask> {
    let mut out = BTreeMap::new();
    for q in queue.iter().filter(|q| !dead(q)) {
        for s in record.iter().filter(|s| s.job_id == q.job_id) {
            if let Some(model) = s.tasks.get(&q.task) {
                out.insert((model.clone(), s.stage), q.clone());
            }
        }
    }
    out
}

/// How the latest submitted task of each (model, stage) ended, per accounting (`accounted`, from
/// [`sacct`]); tasks accounting does not know are left out.
pub fn accounted_ends(record: &[Submitted], accounted: &[AccountedTask]) -> BTreeMap<(String, Stage), AccountedTask> {
    let mut out = BTreeMap::new();
    for s in record {
        for (task, model) in &s.tasks {
            // Later submissions come later in the record: the last one found wins.
            match accounted.iter().find(|a| a.job_id == s.job_id && a.task == *task) {
                Some(a) => out.insert((model.clone(), s.stage), a.clone()),
                None => out.remove(&(model.clone(), s.stage)),
            };
        }
    }
    out
}

/// The accounting of the recorded arrays' tasks (`sacct -X`); an error when `sacct` fails, as
/// it does on a cluster that keeps no accounting.
pub fn sacct(record: &[Submitted]) -> Result<Vec<AccountedTask>, String> {
    if record.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = record.iter().map(|s| s.job_id.to_string()).collect();
    let out = std::process::Command::new("sacct")
        .args(["-n", "-P", "-X", "-o", "JobID,State,ExitCode", "-j", &ids.join(",")])
        .output()
        .map_err(|e| format!("cannot run sacct: {e}"))?;
    if !out.status.success() {
        return Err(format!("sacct failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(parse_sacct(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `sacct -n -P -X -o JobID,State,ExitCode` (lines such as `123_4|CANCELLED by 0|0:15`);
/// lines of whole arrays (`123_[5-7]`) and plain jobs are skipped.
pub fn parse_sacct(text: &str) -> Vec<AccountedTask> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('|').collect();
            let (job, task) = f.first()?.split_once('_')?;
            let exit_code = f.get(2)?.split(':').next()?.parse().ok()?;
            Some(AccountedTask { job_id: job.parse().ok()?, task: task.parse().ok()?, state: f.get(1)?.to_string(), exit_code })
        })
        .collect()
}

/// A pending task whose dependency failed: it will never run.
fn dead(q: &QueuedTask) -> bool {
    q.state == "PENDING" && q.reason.contains("DependencyNeverSatisfied")
}

/// The arrays to submit: every model with a stage not done and nothing in flight.
pub fn plan(zoo: &Zoo, flight: &BTreeMap<(String, Stage), QueuedTask>) -> Vec<ArrayJob> {
    let busy = |i: usize| flight.keys().any(|(m, _)| *m == zoo.models[i].name);
    let todo: Vec<usize> = (0..zoo.models.len())
        .filter(|&i| !busy(i) && zoo.models[i].stages.iter().any(|&stage| !job_state(zoo, Job { model: i, stage }).is_done()))
        .collect();
    let level = |i: usize| usize::from(zoo.models[i].insert_source.is_some_and(|j| todo.contains(&j) || busy(j)));
    let mut arrays = Vec::new();
    for l in 0..2 {
        let models: Vec<usize> = todo.iter().copied().filter(|&i| level(i) == l).collect();
        if models.is_empty() {
            continue;
        }
        let stages: Vec<Stage> = Stage::ALL.into_iter().filter(|s| models.iter().any(|&i| zoo.models[i].stages.contains(s))).collect();
        arrays.extend(stages.into_iter().map(|stage| ArrayJob { stage, level: l, models: models.clone() }));
    }
    arrays
}

/// The `--dependency` of `array` given the ids of the arrays submitted before it (same order as
/// `plan`), the record and the queue; `None` when it waits for nothing.
pub fn dependency(
    zoo: &Zoo,
    arrays: &[ArrayJob],
    ids: &[String],
    k: usize,
    flight: &BTreeMap<(String, Stage), QueuedTask>,
) -> Option<String> {
    let a = &arrays[k];
    let id_of = |stage: Stage, level: usize| arrays[..k].iter().position(|b| b.stage == stage && b.level == level).map(|p| ids[p].clone());
    let mut parts: Vec<String> = Vec::new();
    let own: &[Stage] = match a.stage {
        Stage::Train => &[],
        Stage::Eval | Stage::Analyze => &[Stage::Train],
        Stage::Report => &[Stage::Train, Stage::Eval, Stage::Analyze],
    };
    parts.extend(own.iter().filter_map(|&s| id_of(s, a.level)).map(|id| format!("aftercorr:{id}")));
    if a.level == 1 && matches!(a.stage, Stage::Train | Stage::Analyze) {
        for &i in &a.models {
            let Some(j) = zoo.models[i].insert_source else { continue };
            let with_source = arrays[..k].iter().position(|b| b.stage == a.stage && b.level == 0 && b.models.contains(&j));
            if let Some(p) = with_source {
                parts.push(format!("afterok:{}_{j}", ids[p]));
            } else if let Some(q) = flight.get(&(zoo.models[j].name.clone(), a.stage)) {
                parts.push(format!("afterok:{}_{}", q.job_id, q.task));
            }
        }
    }
    parts.dedup();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The sbatch script of `array`, run with the executable `exe`, waiting per `dependency`.
pub fn script(zoo: &Zoo, array: &ArrayJob, exe: &Path, dependency: Option<&str>) -> String {
    let s = &zoo.slurm;
    let indices: Vec<String> = array.models.iter().map(|i| i.to_string()).collect();
    let out = state_dir(zoo).join("%x-%A_%a.out");
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!("#SBATCH --job-name={}", job_name(zoo, array.stage)),
        format!("#SBATCH --array={}", indices.join(",")),
        format!("#SBATCH --cpus-per-task={}", s.cpus_per_task.unwrap_or(1)),
        format!("#SBATCH --output={}", out.display()),
        "#SBATCH --kill-on-invalid-dep=yes".to_string(),
    ];
    lines.extend(s.partition.iter().map(|p| format!("#SBATCH --partition={p}")));
    lines.extend(s.account.iter().map(|a| format!("#SBATCH --account={a}")));
    lines.extend(s.stage_time.get(&array.stage).or(s.time.as_ref()).map(|t| format!("#SBATCH --time={t}")));
    lines.extend(dependency.map(|d| format!("#SBATCH --dependency={d}")));
    lines.extend(s.extra.iter().cloned());
    lines.push(format!("# {} of zoo {} ({}), one task per model", array.stage.name(), zoo.name, zoo.path.display()));
    lines.push("set -eu".into());
    let names: Vec<String> = array.models.iter().map(|&i| format!("[{i}]={}", shell_word(&zoo.models[i].name))).collect();
    lines.push(format!("models=({})", names.join(" ")));
    lines.push(format!(
        "exec {} --threads \"${{SLURM_CPUS_PER_TASK:-1}}\" zoo job {} --root {} --stage {} --model \"${{models[$SLURM_ARRAY_TASK_ID]}}\"",
        shell_word(&exe.display().to_string()),
        shell_word(&zoo.path.display().to_string()),
        shell_word(&zoo.root.display().to_string()),
        array.stage.name()
    ));
    lines.join("\n") + "\n"
}

/// The job name of a stage's arrays: `zoo-NAME-STAGE`.
pub fn job_name(zoo: &Zoo, stage: Stage) -> String {
    format!("zoo-{}-{}", zoo.name, stage.name())
}

/// The scripts a submission would send, with placeholders for the ids not yet known (dry run).
pub fn dry_run(zoo: &Zoo, exe: &Path, flight: &BTreeMap<(String, Stage), QueuedTask>) -> Vec<(ArrayJob, String)> {
    let arrays = plan(zoo, flight);
    let ids: Vec<String> =
        arrays.iter().map(|a| format!("<{}{}>", job_name(zoo, a.stage), if a.level > 0 { "-inserted" } else { "" })).collect();
    (0..arrays.len())
        .map(|k| (arrays[k].clone(), script(zoo, &arrays[k], exe, dependency(zoo, &arrays, &ids, k, flight).as_deref())))
        .collect()
}

/// Submits what is not done and not in flight; returns what was submitted (also appended to the
/// record). Dead tasks of this zoo (pending on a failed dependency) are cancelled first.
pub fn submit(zoo: &Zoo, exe: &Path, say: &mut dyn FnMut(&str)) -> Result<Vec<Submitted>, String> {
    let mut record = read_record(zoo)?;
    let queue = squeue()?;
    cancel_dead(&record, &queue)?;
    let flight = in_flight(&record, &queue);
    for ((model, stage), q) in &flight {
        say(&format!("  {} {model}: {} as {}_{}; not submitted again", stage.name(), q.state.to_lowercase(), q.job_id, q.task));
    }
    let arrays = plan(zoo, &flight);
    let dir = state_dir(zoo);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut ids: Vec<String> = Vec::new();
    let mut submitted = Vec::new();
    for k in 0..arrays.len() {
        let a = &arrays[k];
        let text = script(zoo, a, exe, dependency(zoo, &arrays, &ids, k, &flight).as_deref());
        let path = dir.join(format!("{}-{}.sh", job_name(zoo, a.stage), ids.len()));
        crate::io::atomic::write_atomic(&path, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let id = sbatch(&path)?;
        say(&format!("  submitted {} array {id} ({} model(s)): {}", a.stage.name(), a.models.len(), path.display()));
        let tasks = a.models.iter().map(|&i| (i as u32, zoo.models[i].name.clone())).collect();
        let s = Submitted { job_id: id, stage: a.stage, tasks };
        record.push(s.clone());
        // Recorded after each array, so a submission cut short is still known to the next one.
        crate::io::atomic::write_json(&record_path(zoo), &record)
            .map_err(|e| format!("cannot write {}: {e}", record_path(zoo).display()))?;
        submitted.push(s);
        ids.push(id.to_string());
    }
    Ok(submitted)
}

fn sbatch(script: &Path) -> Result<u64, String> {
    let out = std::process::Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|e| format!("cannot run sbatch (is Slurm installed and on PATH?): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("sbatch {} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr).trim()));
    }
    text.trim().split(';').next().and_then(|id| id.parse().ok()).ok_or_else(|| format!("sbatch printed no job id: '{}'", text.trim()))
}

/// The array tasks in the queue (`squeue -r`): every user's, matched against the record later.
pub fn squeue() -> Result<Vec<QueuedTask>, String> {
    let out = std::process::Command::new("squeue")
        .args(["-h", "-r", "-o", "%F|%K|%T|%r"])
        .output()
        .map_err(|e| format!("cannot run squeue (is Slurm installed and on PATH?): {e}"))?;
    if !out.status.success() {
        return Err(format!("squeue failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(parse_squeue(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `squeue -h -r -o '%F|%K|%T|%r'` (lines of array job id, task id, state, reason).
pub fn parse_squeue(text: &str) -> Vec<QueuedTask> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('|').collect();
            let (job_id, task) = (f.first()?.parse().ok()?, f.get(1)?.parse().ok()?);
            Some(QueuedTask { job_id, task, state: f.get(2)?.to_string(), reason: f.get(3).unwrap_or(&"").to_string() })
        })
        .collect()
}

fn cancel_dead(record: &[Submitted], queue: &[QueuedTask]) -> Result<(), String> {
    let ours = |q: &QueuedTask| record.iter().any(|s| s.job_id == q.job_id);
    let dead: Vec<String> = queue.iter().filter(|q| dead(q) && ours(q)).map(|q| format!("{}_{}", q.job_id, q.task)).collect();
    if dead.is_empty() {
        return Ok(());
    }
    let st = std::process::Command::new("scancel").args(&dead).status().map_err(|e| format!("cannot run scancel: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("scancel {} failed", dead.join(" ")))
    }
}
