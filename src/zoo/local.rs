//! The local engine: runs the zoo's jobs on this machine, up to N at once, each with its share
//! of the cores (`--threads`), in dependency order. A failed job stops only the jobs that need
//! it; the rest run on, and the failures are listed at the end with their logs' last lines.

use super::graph::{dependencies, jobs, Job};
use super::job::{run_job, Outcome};
use super::manifest::Zoo;
use super::progress::{line, work, Counts, Rates};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How to run the zoo locally.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// The arithlens executable the jobs run.
    pub exe: PathBuf,
    /// Jobs at once.
    pub jobs: usize,
    /// Cores to divide among them.
    pub cores: usize,
    /// Seconds between progress lines while nothing finishes.
    pub progress_every: u64,
}

/// What became of each job.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Every job's outcome, in graph order.
    pub outcomes: Vec<(Job, Outcome)>,
}

impl Summary {
    /// The jobs that failed or could not run.
    pub fn failed(&self) -> Vec<&(Job, Outcome)> {
        self.outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Failed(_))).collect()
    }
}

#[derive(Clone, Debug)]
enum Slot {
    Queued,
    Running(Instant),
    Finished(Outcome),
}

/// Runs every job of `zoo`; progress lines and each job's end go to `say`.
pub fn run_local(zoo: &Zoo, opts: &LocalOptions, say: &mut dyn FnMut(&str)) -> Summary {
    let all = jobs(zoo);
    let mut slots: BTreeMap<Job, Slot> = all.iter().map(|&j| (j, Slot::Queued)).collect();
    let parallel = opts.jobs.max(1);
    let threads = (opts.cores / parallel).max(1);
    say(&format!(
        "zoo {}: {} jobs of {} models under {}, {parallel} at a time with {threads} thread(s) each",
        zoo.name,
        all.len(),
        zoo.models.len(),
        zoo.root.display()
    ));
    let (tx, rx) = mpsc::channel::<(Job, Outcome)>();
    let (t0, mut rates, mut last_line, mut changed) = (Instant::now(), Rates::default(), Instant::now(), false);
    std::thread::scope(|scope| loop {
        block_failed_dependents(zoo, &mut slots, say);
        let running = slots.values().filter(|s| matches!(s, Slot::Running(_))).count();
        for job in ready(zoo, &slots).into_iter().take(parallel.saturating_sub(running)) {
            slots.insert(job, Slot::Running(Instant::now()));
            let (tx, exe) = (tx.clone(), opts.exe.clone());
            scope.spawn(move || {
                let outcome = run_job(zoo, job, &exe, threads, &crate::progress::Stop::new());
                let _ = tx.send((job, outcome));
            });
        }
        if changed || last_line.elapsed().as_secs() >= opts.progress_every {
            say(&progress_line(zoo, &slots, &rates, t0, parallel));
            (last_line, changed) = (Instant::now(), false);
        }
        if slots.values().all(|s| matches!(s, Slot::Finished(_))) {
            break;
        }
        if let Ok((job, outcome)) = rx.recv_timeout(Duration::from_secs(opts.progress_every.max(1))) {
            if let Outcome::Ran(secs) = outcome {
                rates.record(job.stage, work(zoo, job), secs);
            }
            say(&finished_line(zoo, job, &outcome));
            slots.insert(job, Slot::Finished(outcome));
            changed = true;
        }
    });
    let outcomes = all
        .iter()
        .map(|j| (*j, if let Some(Slot::Finished(o)) = slots.remove(j) { o } else { Outcome::Failed("not run".into()) }))
        .collect();
    Summary { outcomes }
}

/// Queued jobs whose dependencies all finished well, in graph order.
fn ready(zoo: &Zoo, slots: &BTreeMap<Job, Slot>) -> Vec<Job> {
    let ok = |d: &Job| matches!(slots.get(d), Some(Slot::Finished(Outcome::Ran(_) | Outcome::Skipped)) | None);
    slots.iter().filter(|(j, s)| matches!(s, Slot::Queued) && dependencies(zoo, **j).iter().all(ok)).map(|(j, _)| *j).collect()
}

/// Marks as failed every queued job that needs a failed one (transitively).
fn block_failed_dependents(zoo: &Zoo, slots: &mut BTreeMap<Job, Slot>, say: &mut dyn FnMut(&str)) {
    loop {
        let blocked = slots.iter().find_map(|(j, s)| {
            let failed_dep = dependencies(zoo, *j).into_iter().find(|d| matches!(slots.get(d), Some(Slot::Finished(Outcome::Failed(_)))));
            matches!(s, Slot::Queued).then_some(()).and(failed_dep.map(|d| (*j, d)))
        });
        let Some((job, dep)) = blocked else { return };
        let why = format!("not run: {} of {} failed", dep.stage.name(), zoo.models[dep.model].name);
        say(&format!("  {} {}: {why}", job.stage.name(), zoo.models[job.model].name));
        slots.insert(job, Slot::Finished(Outcome::Failed(why)));
    }
}

fn finished_line(zoo: &Zoo, job: Job, outcome: &Outcome) -> String {
    let (stage, name) = (job.stage.name(), &zoo.models[job.model].name);
    match outcome {
        Outcome::Skipped => format!("  {stage} {name}: current; skipped"),
        Outcome::Ran(s) => format!("  {stage} {name}: done in {}", super::progress::duration(*s)),
        Outcome::Failed(why) => format!("  {stage} {name}: FAILED: {why}"),
    }
}

fn progress_line(zoo: &Zoo, slots: &BTreeMap<Job, Slot>, rates: &Rates, t0: Instant, parallel: usize) -> String {
    let mut c = Counts::default();
    let mut left = Vec::new();
    for (j, s) in slots {
        match s {
            Slot::Queued => {
                c.queued += 1;
                left.push((j.stage, work(zoo, *j), 0.0));
            }
            Slot::Running(since) => {
                c.running += 1;
                left.push((j.stage, work(zoo, *j), since.elapsed().as_secs_f64()));
            }
            Slot::Finished(Outcome::Failed(_)) => c.failed += 1,
            Slot::Finished(o) => {
                c.done += 1;
                c.skipped += usize::from(*o == Outcome::Skipped);
            }
        }
    }
    line(&zoo.name, c, t0.elapsed().as_secs_f64(), rates.seconds_left(&left, parallel), rates.overdue(&left))
}
