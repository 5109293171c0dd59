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
