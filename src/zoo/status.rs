//! `zoo status`: each model's stage states, from its run folder (current by provenance, partly
//! done, failed or cancelled by its log's last exit line) and, for a zoo submitted to Slurm,
//! from `squeue` (queued or running) and `sacct` where the cluster keeps accounting (cancelled,
//! failed, out of time).

use super::fresh::{job_state, Fresh};
use super::graph::{Job, Stage};
use super::job::{last_end, log_path, Ended};
use super::manifest::Zoo;
use super::slurm::{accounted_ends, in_flight, AccountedTask, QueuedTask, Submitted};

/// What Slurm says of a submitted zoo: the record of submissions, the queue (`squeue`) and the
/// accounting (`sacct`; empty where the cluster keeps none).
#[derive(Clone, Copy, Debug)]
pub struct SlurmView<'a> {
    /// The submissions recorded under the root.
    pub record: &'a [Submitted],
    /// The array tasks in the queue.
    pub queue: &'a [QueuedTask],
    /// The array tasks accounting knows.
    pub accounted: &'a [AccountedTask],
}

/// One stage's state in words: `done`, `todo`, `partial`, `failed (exit 1)`, `cancelled`,
/// `timeout`, `conflict`, `pending`, `running`, or `-` for a stage the model does not run.
pub fn stage_word(zoo: &Zoo, job: Job, slurm: Option<SlurmView>) -> String {
    if !zoo.models[job.model].stages.contains(&job.stage) {
        return "-".into();
    }
    let state = job_state(zoo, job);
    if state.is_done() {
        return "done".into();
    }
    if let Some(v) = slurm {
        let key = (zoo.models[job.model].name.clone(), job.stage);
        if let Some(q) = in_flight(v.record, v.queue).get(&key) {
            return q.state.to_lowercase();
        }
        let ended = accounted_ends(v.record, v.accounted).get(&key).and_then(AccountedTask::failure_word);
        if let (Some(word), false) = (ended, matches!(state, Fresh::Conflict(_))) {
            return word;
        }
    }
    match (state, last_end(&log_path(zoo, job))) {
        (Fresh::Conflict(_), _) => "conflict".into(),
        (_, Some(Ended::Cancelled(_))) => "cancelled".into(),
        (_, Some(Ended::Exit(code))) if code != 0 => format!("failed (exit {code})"),
        (Fresh::Partial(_), _) => "partial".into(),
        _ => "todo".into(),
    }
}

/// The status table: a row per model, a column per stage, then the reasons for conflicts.
pub fn status_text(zoo: &Zoo, slurm: Option<SlurmView>) -> String {
    let width = zoo.models.iter().map(|m| m.name.len()).max().unwrap_or(5).max(5);
    let mut out = format!("{:width$}", "model");
    for s in Stage::ALL {
        out.push_str(&format!("  {:15}", s.name()));
    }
    out = out.trim_end().to_string() + "\n";
    let mut notes = Vec::new();
    let (mut done, mut total) = (0, 0);
    for (i, m) in zoo.models.iter().enumerate() {
        let mut row = format!("{:width$}", m.name);
        for stage in Stage::ALL {
            let job = Job { model: i, stage };
            let w = stage_word(zoo, job, slurm);
            total += usize::from(w != "-");
            done += usize::from(w == "done");
            if w == "conflict" {
                if let Fresh::Conflict(why) = job_state(zoo, job) {
                    notes.push(format!("{} {}: {why}", stage.name(), m.name));
                }
            }
            row.push_str(&format!("  {w:15}"));
        }
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out.push_str(&format!("{done}/{total} jobs done; run folders under {}\n", zoo.root.display()));
    for n in notes {
        out.push_str(&format!("conflict: {n}\n"));
    }
    out
}
