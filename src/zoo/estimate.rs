//! What a zoo costs before it runs (`arithlens zoo estimate`): each job's time from rates
//! measured on this machine for each distinct architecture (training steps/s and evaluation
//! questions/s on fresh weights, the analysis timed whole), and the wall-clock time of the whole
//! zoo with P jobs at once, its dependencies kept (a model's stages one after another, an
//! inserted model's training after its source's). The measuring itself is the caller's (it
//! needs the thread pool); this module does the arithmetic.

use super::graph::{dependencies, eval_options, jobs, Job, Stage};
use super::manifest::Zoo;
use std::collections::BTreeMap;

/// The rates measured for one architecture.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArchRates {
    /// Training steps per second.
    pub train_steps_per_s: f64,
    /// Evaluated questions per second.
    pub eval_questions_per_s: f64,
    /// Seconds of one analysis with the zoo's options.
    pub analyze_s: f64,
    /// Seconds of one report.
    pub report_s: f64,
}

/// A whole analysis's time in units of its node-ablation sweep timed as evaluation (nodes ×
/// ablation questions ÷ evaluation questions/s): calibrated on the mini zoo's models run on
/// this machine (see docs/zoo.md), whose analyses took 1.5 (two layers) to 5.3 (three layers)
/// such units.
pub const ANALYSIS_PER_SWEEP: f64 = 5.0;

impl ArchRates {
    /// An analysis's seconds estimated from its node-ablation sweep: `nodes` ablated on
    /// `questions` questions each, at `eval_questions_per_s` (see [`ANALYSIS_PER_SWEEP`]).
    pub fn analysis_seconds(nodes: usize, questions: usize, eval_questions_per_s: f64) -> f64 {
        ANALYSIS_PER_SWEEP * nodes as f64 * questions as f64 / eval_questions_per_s
    }
}

/// What decides a model's speed: its shape, task and batch (not its steps, seeds or insertion).
pub fn arch_key(zoo: &Zoo, i: usize) -> String {
    let c = &zoo.models[i].config;
    let shape = serde_json::to_string(&crate::model::ModelConfig { seed: 0, ..c.model.clone() }).unwrap_or_default();
    format!("{}|{}|{}|{}", c.task.n_digits, c.task.ops().len(), c.batch_size, shape)
}

/// The first model of each distinct architecture, in manifest order.
pub fn architectures(zoo: &Zoo) -> Vec<usize> {
    let mut seen = std::collections::BTreeSet::new();
    (0..zoo.models.len()).filter(|&i| seen.insert(arch_key(zoo, i))).collect()
}

/// Questions the evaluation of model `i` asks: every question of each operation (exhaustive) or
/// the manifest's count per operation, plus the stratified ones.
pub fn eval_questions(zoo: &Zoo, i: usize) -> f64 {
    let o = eval_options(zoo, i);
    let n = zoo.models[i].config.task.n_digits;
    let per_op = if o.exhaustive { 100f64.powi(n as i32) } else { o.questions as f64 };
    let ops = zoo.models[i].config.task.ops();
    let classes: usize = ops.iter().map(|&op| crate::task::classes::classes_for(op, n).len()).sum();
    per_op * ops.len() as f64 + o.per_class as f64 * classes as f64
}

/// Seconds `job` takes at `rates`.
pub fn job_seconds(zoo: &Zoo, job: Job, rates: &ArchRates) -> f64 {
    let i = job.model;
    match job.stage {
        Stage::Train => zoo.models[i].config.steps as f64 / rates.train_steps_per_s,
        Stage::Eval => eval_questions(zoo, i) / rates.eval_questions_per_s,
        Stage::Analyze => rates.analyze_s,
        Stage::Report => rates.report_s,
    }
}

/// Each job of the zoo with its seconds, given the rates of each architecture (by [`arch_key`]).
pub fn job_times(zoo: &Zoo, rates: &BTreeMap<String, ArchRates>) -> Result<Vec<(Job, f64)>, String> {
    jobs(zoo)
        .into_iter()
        .map(|j| {
            let r = rates.get(&arch_key(zoo, j.model)).ok_or_else(|| format!("no rates measured for {}", zoo.models[j.model].name))?;
            Ok((j, job_seconds(zoo, j, r)))
        })
        .collect()
}

/// Wall-clock seconds of `times` with `parallel` jobs at once, each started as soon as its
/// dependencies are done and a slot is free, longest first among those ready.
pub fn wall_clock(zoo: &Zoo, times: &[(Job, f64)], parallel: usize) -> f64 {
    let secs: BTreeMap<Job, f64> = times.iter().copied().collect();
    let mut done: BTreeMap<Job, f64> = BTreeMap::new(); // job -> finish time
    let mut running: Vec<(f64, Job)> = Vec::new();
    let mut now = 0.0f64;
    while done.len() < secs.len() {
        let mut ready: Vec<Job> = secs
            .keys()
            .filter(|j| !done.contains_key(j) && !running.iter().any(|(_, r)| r == *j))
            .filter(|j| dependencies(zoo, **j).iter().all(|d| done.contains_key(d) || !secs.contains_key(d)))
            .copied()
            .collect();
        ready.sort_by(|a, b| secs[b].total_cmp(&secs[a]));
        for j in ready.into_iter().take(parallel.max(1).saturating_sub(running.len())) {
            running.push((now + secs[&j], j));
        }
        let Some(k) = (0..running.len()).min_by(|&a, &b| running[a].0.total_cmp(&running[b].0)) else { break };
        let (end, j) = running.swap_remove(k);
        now = end;
        done.insert(j, end);
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_zoo_takes_its_longest_chain_or_its_work_shared_out() {
        let text = "[zoo]\nname = \"e\"\nstages = [\"train\", \"eval\"]\n[eval]\nquestions = 1000\nper_class = 0\n\
            [[model]]\npreset = \"add_d5_l2_h3_t15K_s7\"\n[[model]]\npreset = \"ins1_mix_d5_l3_h4_t1K_s7\"\n\
            [[model]]\npreset = \"add_d5_l2_h3_t15K_s8\"\n";
        let zoo = Zoo::parse(text, Path::new("zoo/e.toml"), Some(Path::new("/tmp/e"))).unwrap();
        assert_eq!(architectures(&zoo), vec![0, 1], "the seed does not change the speed");
        let r = ArchRates { train_steps_per_s: 100.0, eval_questions_per_s: 100.0, analyze_s: 0.0, report_s: 0.0 };
        let rates: BTreeMap<String, ArchRates> = [(arch_key(&zoo, 0), r), (arch_key(&zoo, 1), r)].into();
        let times = job_times(&zoo, &rates).unwrap();
        let secs = |m: usize, s: Stage| times.iter().find(|(j, _)| *j == Job { model: m, stage: s }).unwrap().1;
        assert_eq!(secs(0, Stage::Train), 150.0);
        assert_eq!(secs(1, Stage::Train), 10.0);
        assert_eq!(secs(1, Stage::Eval), 20.0, "two operations of 1,000 questions");
        let total: f64 = times.iter().map(|(_, s)| s).sum();
        assert_eq!(wall_clock(&zoo, &times, 1), total, "one at a time: the sum");
        // Many at once: the inserted model waits for its source's training (150 s), then trains
        // (10 s) and evaluates (20 s).
        assert_eq!(wall_clock(&zoo, &times, 8), 180.0);
        let two = wall_clock(&zoo, &times, 2);
        assert!(two >= total / 2.0 && two < total, "{two}");
    }
}
