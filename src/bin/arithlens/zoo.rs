//! `arithlens zoo run|status|table|job`: the command line of the model zoo ([`arithlens::zoo`]).

use arithlens::zoo::lock::RootLock;
use arithlens::zoo::{local, slurm, status, table, Job, Stage, Zoo};
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

/// `zoo`'s subcommands.
#[derive(Subcommand, Debug)]
pub enum ZooCommand {
    /// Run every stage of every model that is not current: on this machine (default) or Slurm.
    Run {
        /// The manifest (e.g. zoo/mini.toml).
        manifest: PathBuf,
        /// Where jobs run.
        #[arg(long, value_enum, default_value_t = Engine::Local)]
        engine: Engine,
        /// Jobs at once (local engine); the cores (or --threads) are divided among them.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// The folder of the run folders (default runs/zoo-NAME).
        #[command(flatten)]
        root: RootArg,
        /// Print the jobs (local) or the sbatch scripts (slurm) without running anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Each model's stage states, from its run folder and, on Slurm, from squeue and sacct.
    Status {
        /// The manifest.
        manifest: PathBuf,
        /// The folder of the run folders.
        #[command(flatten)]
        root: RootArg,
    },
    /// Write ROOT/zoo.md, zoo.json and zoo.html: a row per model beside the papers' figures.
    Table {
        /// The manifest.
        manifest: PathBuf,
        /// The folder of the run folders.
        #[command(flatten)]
        root: RootArg,
    },
    /// Estimate each job's time and the whole zoo's, on this machine and on a cluster, from
    /// rates measured here: a short training of each distinct architecture and an evaluation
    /// of fresh weights, at the thread count each job would get (--threads / --jobs).
    Estimate {
        /// The manifest.
        manifest: PathBuf,
        /// Jobs at once on this machine; the cores (or --threads) are divided among them.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Jobs at once on the cluster (default: one per model).
        #[arg(long)]
        cluster_jobs: Option<usize>,
        /// Timed training steps per architecture.
        #[arg(long, default_value_t = 20)]
        steps: u64,
        /// Timed evaluation questions per architecture.
        #[arg(long, default_value_t = 2000)]
        eval_questions: usize,
    },
    /// Run one job (what each Slurm array task runs): skipped when current.
    #[command(hide = true)]
    Job {
        /// The manifest.
        manifest: PathBuf,
        /// The folder of the run folders.
        #[command(flatten)]
        root: RootArg,
        /// The model's run folder name.
        #[arg(long)]
        model: String,
        /// The stage.
        #[arg(long)]
        stage: String,
    },
}

/// `--root DIR`.
#[derive(Args, Debug)]
pub struct RootArg {
    /// The folder holding one run folder per model (default runs/zoo-NAME).
    #[arg(long)]
    pub root: Option<PathBuf>,
}

/// The engines of `zoo run`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// This machine.
    Local,
    /// sbatch job arrays.
    Slurm,
}

/// Runs a `zoo` command; `threads` is the global `--threads` (default: every core).
pub fn run(cmd: ZooCommand, threads: Option<usize>) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the arithlens executable to run the jobs: {e}"))?;
    let say = &mut |l: &str| eprintln!("{l}");
    match cmd {
        ZooCommand::Run { manifest, engine, jobs, root, dry_run } => {
            let zoo = Zoo::load(&manifest, root.root.as_deref())?;
            arithlens::limits::check_threads("--jobs", jobs.max(1))?;
            match (engine, dry_run) {
                (Engine::Local, true) => {
                    print_jobs(&zoo, threads_per_job(threads, jobs));
                    Ok(())
                }
                (Engine::Local, false) => {
                    let _lock = RootLock::take(&zoo, "zoo run", say)?;
                    run_local(&zoo, &exe, jobs, threads)
                }
                (Engine::Slurm, true) => {
                    print_scripts(&zoo, &exe);
                    Ok(())
                }
                (Engine::Slurm, false) => {
                    let _lock = RootLock::take(&zoo, "zoo run", say)?;
                    slurm::submit(&zoo, &exe, say)
                        .map(|s| eprintln!("{} array(s) submitted; `arithlens zoo status {}` follows them", s.len(), manifest.display()))
                }
            }
        }
        ZooCommand::Status { manifest, root } => {
            let zoo = Zoo::load(&manifest, root.root.as_deref())?;
            let record = slurm::read_record(&zoo)?;
            let queue = if record.is_empty() { Vec::new() } else { slurm::squeue().unwrap_or_default() };
            // A cluster without accounting: the jobs' logs say how they ended.
            let accounted = slurm::sacct(&record).unwrap_or_default();
            let view = status::SlurmView { record: &record, queue: &queue, accounted: &accounted };
            print!("{}", status::status_text(&zoo, (!record.is_empty()).then_some(view)));
            Ok(())
        }
        ZooCommand::Table { manifest, root } => {
            let zoo = Zoo::load(&manifest, root.root.as_deref())?;
            for p in table::write_table(&zoo)? {
                println!("{}", p.display());
            }
            Ok(())
        }
        ZooCommand::Estimate { manifest, jobs, cluster_jobs, steps, eval_questions } => {
            let zoo = Zoo::load(&manifest, None)?;
            arithlens::limits::check_threads("--jobs", jobs.max(1))?;
            arithlens::limits::check_range("--steps", steps, 10_000, "the default is 20")?;
            arithlens::limits::check_range("--eval-questions", eval_questions as u64, 1_000_000, "the default is 2000")?;
            let probe = Probe { steps: steps.max(1), eval_questions: eval_questions.max(1), threads: threads_per_job(threads, jobs) };
            estimate(&zoo, &probe, jobs.max(1), cluster_jobs.unwrap_or(zoo.models.len()).max(1))
        }
        ZooCommand::Job { manifest, root, model, stage } => {
            let zoo = Zoo::load(&manifest, root.root.as_deref())?;
            let job = Job { model: zoo.model_index(&model)?, stage: Stage::parse(&stage)? };
            // Slurm's scancel and time limit send SIGTERM: pass it on to the stage and log the
            // attempt as cancelled instead of dying without a word.
            let guard = crate::interrupt::Guard::install();
            match arithlens::zoo::job::run_job(&zoo, job, &exe, threads.unwrap_or(1), guard.stop()) {
                arithlens::zoo::job::Outcome::Failed(why) => Err(format!("{stage} {model}: {why}")),
                _ => Ok(()),
            }
        }
    }
}

fn threads_per_job(threads: Option<usize>, jobs: usize) -> usize {
    let cores = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    (cores / jobs.max(1)).max(1)
}

fn run_local(zoo: &Zoo, exe: &Path, jobs: usize, threads: Option<usize>) -> Result<(), String> {
    let cores = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = local::LocalOptions { exe: exe.to_path_buf(), jobs, cores, progress_every: 30 };
    let summary = local::run_local(zoo, &opts, &mut |l| eprintln!("{l}"));
    let failed = summary.failed();
    if failed.is_empty() {
        eprintln!("zoo {}: every job done; `arithlens zoo table {}` gathers the table", zoo.name, zoo.path.display());
        return Ok(());
    }
    eprintln!("\nfailed:");
    for (job, outcome) in &failed {
        if let arithlens::zoo::job::Outcome::Failed(why) = outcome {
            eprintln!("  {} {}: {why}", job.stage.name(), zoo.models[job.model].name);
        }
    }
    Err(format!(
        "{} of {} jobs failed or could not run (above); fix them and run the same command again: jobs already done are skipped",
        failed.len(),
        summary.outcomes.len()
    ))
}

/// The local engine's jobs in order, with their state and command line.
fn print_jobs(zoo: &Zoo, threads: usize) {
    for job in arithlens::zoo::graph::jobs(zoo) {
        let state = arithlens::zoo::fresh::job_state(zoo, job).describe();
        let args: Vec<String> =
            arithlens::zoo::graph::command(zoo, job, threads).iter().map(|a| arithlens::zoo::job::shell_word(a)).collect();
        println!("{} {}: {state}\n  arithlens {}", job.stage.name(), zoo.models[job.model].name, args.join(" "));
    }
}

/// The sbatch scripts a submission would send.
fn print_scripts(zoo: &Zoo, exe: &Path) {
    let record = slurm::read_record(zoo).unwrap_or_default();
    let queue = if record.is_empty() { Vec::new() } else { slurm::squeue().unwrap_or_default() };
    let flight = slurm::in_flight(&record, &queue);
    let scripts = slurm::dry_run(zoo, exe, &flight);
    if scripts.is_empty() {
        println!("# nothing to submit: every stage of every model is current or in the queue");
    }
    for (array, text) in scripts {
        println!("# ---- {} (sbatch --parsable SCRIPT) ----\n{text}", slurm::job_name(zoo, array.stage));
    }
}

/// How `zoo estimate` measures.
struct Probe {
    steps: u64,
    eval_questions: usize,
    threads: usize,
}

/// Measures each architecture of `zoo`, prints each job's estimate and the totals on this
/// machine (`jobs` at once) and on a cluster (`cluster_jobs` at once).
fn estimate(zoo: &Zoo, probe: &Probe, jobs: usize, cluster_jobs: usize) -> Result<(), String> {
    use arithlens::zoo::estimate::{arch_key, architectures, job_times, wall_clock};
    use arithlens::zoo::progress::duration;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(probe.threads).build().map_err(|e| e.to_string())?;
    let load = std::fs::read_to_string("/proc/loadavg").ok().and_then(|l| l.split_whitespace().next().map(str::to_string));
    println!(
        "zoo {}: measuring {} architecture(s) at {} thread(s) each ({} training steps, {} evaluated questions; load average {})",
        zoo.name,
        architectures(zoo).len(),
        probe.threads,
        probe.steps,
        probe.eval_questions,
        load.as_deref().unwrap_or("unknown")
    );
    let mut rates = std::collections::BTreeMap::new();
    for i in architectures(zoo) {
        let r = pool.install(|| measure(zoo, i, probe))?;
        println!(
            "  {}: {:.2} steps/s, {:.0} questions/s, analysis about {}",
            zoo.models[i].name,
            r.train_steps_per_s,
            r.eval_questions_per_s,
            duration(r.analyze_s)
        );
        rates.insert(arch_key(zoo, i), r);
    }
    let times = job_times(zoo, &rates)?;
    for (i, m) in zoo.models.iter().enumerate() {
        let row: Vec<String> =
            times.iter().filter(|(j, _)| j.model == i).map(|(j, s)| format!("{} {}", j.stage.name(), duration(*s))).collect();
        println!("  {:32} {}", m.name, row.join(", "));
    }
    let cores = probe.threads * jobs;
    let total: f64 = times.iter().map(|(_, s)| s).sum();
    println!("all jobs one after another at {} thread(s): {} ({:.1} days)", probe.threads, duration(total), total / 86400.0);
    let local = wall_clock(zoo, &times, jobs);
    println!("on this machine, {jobs} job(s) at once on {cores} core(s): {} ({:.1} days)", duration(local), local / 86400.0);
    let cluster = wall_clock(zoo, &times, cluster_jobs);
    println!(
        "on a cluster running {cluster_jobs} job(s) at once, each as fast as one job here: {} ({:.1} hours)",
        duration(cluster),
        cluster / 3600.0
    );
    Ok(())
}

/// The rates of model `i`'s architecture on fresh weights, in the current thread pool.
fn measure(zoo: &Zoo, i: usize, probe: &Probe) -> Result<arithlens::zoo::estimate::ArchRates, String> {
    let mut cfg = zoo.models[i].config.clone();
    cfg.insert = None; // the source's weights do not change the speed
    let (steps_per_s, _) = crate::bench::training_speed(&cfg, probe.steps)?;
    let t = arithlens::train::Trainer::new(cfg)?;
    let model = arithlens::task_model::TaskModel::from_file(t.model_file(), "fresh model")?;
    let (qps, _) = crate::bench::eval_speed(&model, probe.eval_questions)?;
    let positions: Vec<usize> = (0..model.n_ctx() - 1).collect();
    let nodes = arithlens::analysis::nodes::candidate_nodes(&model, &positions).len();
    let questions = arithlens::zoo::graph::analyze_options(zoo).questions;
    let analyze_s = arithlens::zoo::estimate::ArchRates::analysis_seconds(nodes, questions, qps);
    Ok(arithlens::zoo::estimate::ArchRates { train_steps_per_s: steps_per_s, eval_questions_per_s: qps, analyze_s, report_s: 0.0 })
}
