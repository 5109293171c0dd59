//! Progress of a whole zoo: jobs done, running and queued, the time so far, and the time left
//! estimated from the rates measured on the jobs finished in this run (seconds per unit of
//! work, per stage: a training step of one parameter, an evaluated question of one parameter,
//! an analysis or report of one parameter).

use super::graph::{eval_options, Job, Stage};
use super::manifest::Zoo;
use std::collections::BTreeMap;

/// The work in `job`, in its stage's units.
pub fn work(zoo: &Zoo, job: Job) -> f64 {
    let c = &zoo.models[job.model].config;
    let params = c.model.n_params() as f64;
    match job.stage {
        Stage::Train => c.steps as f64 * params,
        Stage::Eval => {
            let o = eval_options(zoo, job.model);
            let per_op = if o.exhaustive { 100f64.powi(c.task.n_digits as i32) } else { o.questions as f64 };
            per_op * c.task.ops().len() as f64 * params
        }
        Stage::Analyze | Stage::Report => params,
    }
}

/// Measured rates and the estimate of the time left.
#[derive(Clone, Debug, Default)]
pub struct Rates {
    /// Per stage: (seconds, work) of the jobs that ran.
    measured: BTreeMap<Stage, (f64, f64)>,
}

impl Rates {
    /// Records a job of `stage` that did `work` in `secs`.
    pub fn record(&mut self, stage: Stage, work: f64, secs: f64) {
        let e = self.measured.entry(stage).or_insert((0.0, 0.0));
        e.0 += secs;
        e.1 += work;
    }

    /// Seconds per unit of work of `stage`, once a job of it has run.
    pub fn rate(&self, stage: Stage) -> Option<f64> {
        self.measured.get(&stage).filter(|(_, w)| *w > 0.0).map(|(s, w)| s / w)
    }

    /// Seconds left for `left` (stage, work, seconds already spent on it) run `parallel` at a
    /// time; `None` while a stage in it has no measured rate.
    pub fn seconds_left(&self, left: &[(Stage, f64, f64)], parallel: usize) -> Option<f64> {
        let mut total = 0.0;
        for &(stage, work, spent) in left {
            total += (self.rate(stage)? * work - spent).max(0.0);
        }
        Some(total / parallel.max(1) as f64)
    }

    /// How many of the running jobs in `left` have run longer than their measured rate
    /// predicts: the time left cannot count them, so the progress line says how many there are
    /// (a loaded machine or a slower stage than its first job).
    pub fn overdue(&self, left: &[(Stage, f64, f64)]) -> usize {
        left.iter().filter(|&&(stage, work, spent)| spent > 0.0 && self.rate(stage).is_some_and(|r| spent > r * work)).count()
    }
}

/// `1h05m`, `4m10s`, `25s`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// Counts of jobs by state, for the progress line.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// Finished (run or skipped as current).
    pub done: usize,
    /// Of those, skipped as current.
    pub skipped: usize,
    /// Running now.
    pub running: usize,
    /// Waiting to start.
    pub queued: usize,
    /// Failed, or not run because a job they need failed.
    pub failed: usize,
}

/// The progress line: `zoo mini: 5/16 done (3 current), 2 running, 9 queued, 0 failed; 1m20s so far, about 12m00s left`.
/// `overdue` running jobs past their estimate make it "at least ... left, N jobs past their estimate".
pub fn line(name: &str, c: Counts, elapsed: f64, left: Option<f64>, overdue: usize) -> String {
    let total = c.done + c.running + c.queued + c.failed;
    let eta = match left {
        Some(s) if overdue > 0 => format!(", at least {} left, {overdue} running past its estimate", duration(s)),
        Some(s) if c.running + c.queued > 0 => format!(", about {} left", duration(s)),
        None if c.running + c.queued > 0 => ", time left known after the first job of each stage".into(),
        _ => String::new(),
    };
    format!(
        "zoo {name}: {}/{total} done ({} current), {} running, {} queued, {} failed; {} so far{eta}",
        c.done,
        c.skipped,
        c.running,
        c.queued,
        c.failed,
        duration(elapsed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_follows_the_measured_rates_and_waits_for_them() {
        let mut r = Rates::default();
        assert_eq!(r.seconds_left(&[(Stage::Train, 100.0, 0.0)], 1), None, "no rate measured yet");
        r.record(Stage::Train, 200.0, 10.0); // 0.05 s per unit
        r.record(Stage::Eval, 10.0, 1.0);
        let left = r.seconds_left(&[(Stage::Train, 100.0, 2.0), (Stage::Eval, 20.0, 0.0)], 2).unwrap();
        assert!((left - (3.0 + 2.0) / 2.0).abs() < 1e-9, "{left}");
        assert_eq!(r.seconds_left(&[(Stage::Analyze, 1.0, 0.0)], 1), None);
        assert_eq!(duration(3725.0), "1h02m");
        assert_eq!(duration(250.0), "4m10s");
        let c = Counts { done: 5, skipped: 3, running: 2, queued: 9, failed: 0 };
        assert_eq!(
            line("mini", c, 80.0, Some(720.0), 0),
            "zoo mini: 5/16 done (3 current), 2 running, 9 queued, 0 failed; 1m20s so far, about 12m00s left"
        );
        // A running job past its rate's prediction is not counted as done soon: the line says so.
        let running = [(Stage::Train, 100.0, 9.0), (Stage::Eval, 20.0, 0.0)];
        assert_eq!(r.overdue(&running), 1, "100 units at 0.05 s each is 5 s, and 9 s have passed");
        assert_eq!(r.overdue(&[(Stage::Train, 100.0, 4.0)]), 0);
        assert!(line("mini", c, 80.0, Some(2.0), 1).ends_with("at least 2s left, 1 running past its estimate"));
    }
}
