//! Benchmarks (`arithlens bench`): training steps/s and achieved GFLOP/s next to the peak of a
//! plain large matrix product measured in the same process, per thread count and batch size.

use crate::model::linalg::{matmul, MatRef};
use crate::model::{forward_flops, Span};
use crate::train::{TrainConfig, Trainer};
use clap::Args;
use std::time::Instant;

/// Options of `arithlens bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Model to train: a preset name.
    #[arg(long, default_value = "paper1")]
    pub preset: String,
    /// Timed training steps per measurement.
    #[arg(long, default_value_t = 40)]
    pub steps: u64,
    /// Batch sizes to measure, comma-separated.
    #[arg(long, default_value = "64", value_delimiter = ',')]
    pub batch: Vec<usize>,
    /// Thread counts to measure, comma-separated (default: all cores).
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
}

fn pool(threads: usize) -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| e.to_string())
}

/// Peak GFLOP/s of a 1024³ f32 matrix product on the current thread pool (best of 5).
pub fn matmul_peak_gflops() -> f64 {
    let n = 1024;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; n * n];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        matmul(&mut c, MatRef::new(&a, n, n), MatRef::new(&a, n, n), false);
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

/// Training speed of `cfg`: (steps/s, GFLOP/s actually computed).
pub fn training_speed(cfg: &TrainConfig, steps: u64) -> Result<(f64, f64), String> {
    let mut t = Trainer::new(cfg.clone())?;
    for _ in 0..3 {
        t.step()?;
    }
    let start = Instant::now();
    for _ in 0..steps {
        t.step()?;
    }
    let secs = start.elapsed().as_secs_f64();
    let (n, f) = (cfg.task.n_digits, cfg.task.format);
    let span = Span::predictions(f.answer_start(n) - 1, f.n_answer(n));
    let flops = 3.0 * forward_flops(&cfg.model, cfg.batch_size, span) * steps as f64;
    Ok((steps as f64 / secs, flops / secs / 1e9))
}

/// Runs the benchmark and prints a table.
pub fn run(a: &BenchArgs) -> Result<(), String> {
    let base = TrainConfig::preset(&a.preset)?;
    let threads = if a.threads.is_empty() { vec![rayon::current_num_threads()] } else { a.threads.clone() };
    println!("training benchmark: {} ({} parameters), {} timed steps", base.name, base.model.n_params(), a.steps);
    println!("{:>8} {:>7} {:>10} {:>10} {:>12} {:>9}", "threads", "batch", "steps/s", "GFLOP/s", "peak GFLOP/s", "of peak");
    for &th in &threads {
        let p = pool(th)?;
        let peak = p.install(matmul_peak_gflops);
        for &b in &a.batch {
            let cfg = base.with_overrides(&[format!("batch_size={b}")])?;
            let (sps, gf) = p.install(|| training_speed(&cfg, a.steps))?;
            println!("{th:>8} {b:>7} {sps:>10.2} {gf:>10.1} {peak:>12.1} {:>8.0}%", 100.0 * gf / peak);
        }
    }
    Ok(())
}
