//! Benchmarks (`arithlens bench`): training steps/s and achieved GFLOP/s per thread count and
//! batch size, next to two ceilings measured in the same process: the cores' own peak (a loop of
//! independent fused multiply-adds, nothing but arithmetic) and the rate of a plain large matrix
//! product through the same `gemm` kernels training uses.

use arithlens::model::linalg::{matmul_threads, MatRef};
use arithlens::model::{forward_flops, Span};
use arithlens::train::{TrainConfig, Trainer};
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
    /// Also measure training of these presets (e.g. add_d6_l2_h3_t15K_s372001).
    #[arg(long, value_delimiter = ',')]
    pub also: Vec<String>,
    /// Questions for the evaluation benchmark (0 skips it); the time is also extrapolated to 10^6.
    #[arg(long, default_value_t = 100_000)]
    pub eval_questions: usize,
    /// Also time the node-ablation sweep (every head and MLP at every position) on this many questions.
    #[arg(long, default_value_t = 1000)]
    pub ablation_questions: usize,
    /// Model to evaluate (a run folder or file); default: the preset's trained model in
    /// runs/NAME if there is one, else its freshly initialised weights.
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
}

/// The model the evaluation benchmark times: `--model`, else a trained model where there is one
/// (fresh weights put most answers near a tie, which the one-layer fast path re-decides through
/// the reference pass, so they time something else), else fresh weights.
/// Returns it with where it came from (a path, or "fresh weights").
fn bench_model(
    a: &BenchArgs,
    base: &TrainConfig,
    load: arithlens::model::file::LoadOptions,
) -> Result<(arithlens::task_model::TaskModel, String), String> {
    let trained = arithlens::train::trainer::default_run_dir(base).join(arithlens::run_folder::files::MODEL);
    match a.model.clone().or_else(|| trained.exists().then_some(trained)) {
        Some(path) => Ok((crate::cli::load_model(&path, load)?, path.display().to_string())),
        None => {
            let t = Trainer::new(base.clone())?;
            Ok((arithlens::task_model::TaskModel::from_file(t.model_file(), "fresh model")?, "fresh weights".into()))
        }
    }
}

/// Peak resident memory of this process so far, in MB (Linux `VmHWM`).
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Teacher-forced evaluation speed (questions/s) of `model` on `n` random questions.
pub fn eval_speed(model: &arithlens::task_model::TaskModel, n: usize) -> Result<(f64, u64), String> {
    use arithlens::eval::predict::{Predictions, Predictor};
    let qs = arithlens::task::generate::random_questions(model.n_digits, model.ops[0], n, 1).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut p = Predictor::new(model, 1024);
    let mut out = Predictions::default();
    p.run_all(&qs, &mut out);
    Ok((n as f64 / start.elapsed().as_secs_f64(), p.rechecked))
}

fn pool(threads: usize) -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| e.to_string())
}

/// Independent FMA chains per thread: more than the FMA latency times the FMA ports of any
/// current x86 core, so the loop is bound by throughput alone.
const FMA_CHAINS: usize = 12;

/// `iters` rounds of `acc = acc * x + y` on [`FMA_CHAINS`] 8-lane AVX2 registers; returns the sum
/// of every lane so the work cannot be optimised away.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_avx2(iters: u64, x: f32, y: f32) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); FMA_CHAINS];
    let (xv, yv) = (_mm256_set1_ps(x), _mm256_set1_ps(y));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, xv, yv);
        }
    }
    let mut lanes = [0.0f32; 8];
    let mut sum = 0.0;
    for a in acc {
        _mm256_storeu_ps(lanes.as_mut_ptr(), a);
        sum += lanes.iter().sum::<f32>();
    }
    sum
}

/// The same on 16-lane AVX-512 registers, the width `gemm`'s kernels use where the CPU has it.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_avx512(iters: u64, x: f32, y: f32) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); FMA_CHAINS];
    let (xv, yv) = (_mm512_set1_ps(x), _mm512_set1_ps(y));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, xv, yv);
        }
    }
    acc.into_iter().map(|a| _mm512_reduce_add_ps(a)).sum()
}

/// A vector FMA unit the CPU has.
#[cfg(target_arch = "x86_64")]
struct FmaUnit {
    name: &'static str,
    /// f32 lanes per register.
    lanes: u64,
    /// Its chains ([`fma_chains_avx2`]), safe to call on this CPU.
    chains: fn(u64, f32, f32) -> f32,
}

/// The widest FMA unit this CPU has.
#[cfg(target_arch = "x86_64")]
fn widest_fma() -> Option<FmaUnit> {
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was detected just above.
        return Some(FmaUnit { name: "AVX-512", lanes: 16, chains: |n, x, y| unsafe { fma_chains_avx512(n, x, y) } });
    }
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA were detected just above.
        return Some(FmaUnit { name: "AVX2", lanes: 8, chains: |n, x, y| unsafe { fma_chains_avx2(n, x, y) } });
    }
    None
}

/// The cores' f32 peak on `threads` threads running at once (best of 3): each thread runs 12
/// independent fused multiply-add chains on the widest vectors the CPU has (AVX-512 where
/// present, which `gemm` then uses too, else AVX2), 2 FLOP per lane per instruction. `None`
/// without AVX2 and FMA (the table then shows only `gemm`'s rate).
pub fn fma_peak_gflops(threads: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if let Some(FmaUnit { lanes, chains, .. }) = widest_fma() {
        let iters = 40_000_000u64;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| std::hint::black_box(chains(iters, 0.999_999, 1e-7)));
                }
            });
            best = best.min(t.elapsed().as_secs_f64());
        }
        let flop = threads as u64 * iters * (FMA_CHAINS as u64) * lanes * 2;
        return Some(flop as f64 / best / 1e9);
    }
    let _ = threads; // (only x86-64 measures it)
    None
}

/// GFLOP/s of a plain 2048³ f32 matrix product on `threads` threads (best of 5): the ceiling
/// of the `gemm` kernels themselves on this machine.
pub fn matmul_peak_gflops(threads: usize) -> f64 {
    let n = 2048;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; n * n];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        matmul_threads(&mut c, MatRef::new(&a, n, n), MatRef::new(&a, n, n), threads);
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
    let (n, f) = (cfg.task.n_digits, cfg.task.format);
    let span = Span::predictions(f.answer_start(n) - 1, f.n_answer(n));
    let start = Instant::now();
    let mut flops = 0.0;
    for _ in 0..steps {
        t.step()?;
        flops += 3.0 * forward_flops(&cfg.model, cfg.batch_size, span, t.layer0_pairs());
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((steps as f64 / secs, flops / secs / 1e9))
}

/// Time of mean-ablating every node of `model` (each head and MLP at each position) on `n`
/// analysis questions, clean pass included: (nodes, seconds).
pub fn ablation_speed(model: &arithlens::task_model::TaskModel, n: usize) -> (usize, f64) {
    use arithlens::analysis::{analysis_questions, nodes};
    let qs = analysis_questions(model, n, 1);
    let start = Instant::now();
    let clean = arithlens::eval::predict::teacher_forced_transformer(model, &qs, 500);
    let positions: Vec<usize> = (0..model.n_ctx() - 1).collect();
    let all = nodes::candidate_nodes(model, &positions);
    nodes::ablate_nodes(model, &qs, &clean, &all, 0.01, 500, &mut |_, _| {});
    (all.len(), start.elapsed().as_secs_f64())
}

/// Checks every option (batch sizes, thread counts, presets, the model) before anything is
/// measured, so a typo is reported at once rather than after minutes of peak measurement.
fn check_args(a: &BenchArgs, base: &TrainConfig) -> Result<(), String> {
    if a.batch.is_empty() {
        return Err("--batch needs at least one batch size, e.g. --batch 64".into());
    }
    for &b in &a.batch {
        base.with_overrides(&[format!("batch_size={b}")]).map_err(|e| format!("--batch {b}: {e}"))?;
    }
    for &t in &a.threads {
        arithlens::limits::check_threads("--threads", t)?;
    }
    for name in &a.also {
        TrainConfig::preset(name)?.with_overrides(&[])?;
    }
    use arithlens::limits::{check_range, MAX_ANALYZE_QUESTIONS, MAX_HELD_QUESTIONS, MAX_STEPS};
    check_range("--steps", a.steps, MAX_STEPS, "the default is 40")?;
    if a.eval_questions > MAX_HELD_QUESTIONS || a.ablation_questions > MAX_ANALYZE_QUESTIONS {
        return Err(format!(
            "--eval-questions must be at most {MAX_HELD_QUESTIONS} and --ablation-questions at most {MAX_ANALYZE_QUESTIONS} (all are held in memory)"
        ));
    }
    Ok(())
}

/// Runs the benchmark, with the evaluated model loaded per `load`, and prints its tables.
pub fn run_with(a: &BenchArgs, load: arithlens::model::file::LoadOptions) -> Result<(), String> {
    let base = TrainConfig::preset(&a.preset)?.with_overrides(&[])?;
    check_args(a, &base)?;
    let model = if a.eval_questions > 0 { Some(bench_model(a, &base, load)?) } else { None };
    let threads = if a.threads.is_empty() { vec![rayon::current_num_threads()] } else { a.threads.clone() };
    #[cfg(target_arch = "x86_64")]
    if let Some(unit) = widest_fma() {
        println!("FMA peak: {} fused multiply-adds on every thread, the width gemm's kernels use too", unit.name);
    }
    training_table(&base, &threads, a)?;
    for name in &a.also {
        let cfg = TrainConfig::preset(name)?;
        training_table(&cfg, &threads[threads.len() - 1..], &BenchArgs { batch: vec![cfg.batch_size], ..a.clone() })?;
    }
    if let Some((model, source)) = model {
        let th = threads[threads.len() - 1];
        if a.ablation_questions > 0 {
            println!("timing the node-ablation sweep on {} questions (--ablation-questions 0 skips it) ...", a.ablation_questions);
            let (nodes, secs) = pool(th)?.install(|| ablation_speed(&model, a.ablation_questions));
            println!("node ablation sweep: {nodes} nodes (every head and MLP at every position that can reach an answer) on {} questions in {secs:.1} s", a.ablation_questions);
        }
        println!("timing evaluation on {} questions (--eval-questions 0 skips it) ...", a.eval_questions);
        let (qps, rechecked) = pool(th)?.install(|| eval_speed(&model, a.eval_questions))?;
        println!(
            "evaluation of {} ({}): {qps:.0} questions/s on {} threads, {} near ties re-checked; 1,000,000 questions in {:.0} s",
            model.name,
            source,
            th,
            rechecked,
            1e6 / qps
        );
    }
    Ok(())
}

fn training_table(base: &TrainConfig, threads: &[usize], a: &BenchArgs) -> Result<(), String> {
    println!("training benchmark: {} ({} parameters), {} timed steps", base.name, base.model.n_params(), a.steps);
    println!(
        "{:>8} {:>7} {:>10} {:>10} {:>10} {:>9} {:>12} {:>9}",
        "threads", "batch", "steps/s", "GFLOP/s", "FMA peak", "of peak", "gemm 2048^3", "of gemm"
    );
    let mut first = true;
    for &th in threads {
        let p = pool(th)?;
        let gemm = p.install(|| matmul_peak_gflops(th));
        let fma = fma_peak_gflops(th);
        for &b in &a.batch {
            let cfg = base.with_overrides(&[format!("batch_size={b}")])?;
            let (sps, gf) = p.install(|| training_speed(&cfg, a.steps))?;
            // Memory only grows, so it is read after the first (smallest) configuration.
            let rss = if first { peak_rss_mb().map_or(String::new(), |mb| format!("  max RSS {mb:.0} MB")) } else { String::new() };
            first = false;
            let (fma_s, of_fma) = match fma {
                Some(f) => (format!("{f:.1}"), format!("{:.0}%", 100.0 * gf / f)),
                None => ("-".into(), "-".into()),
            };
            println!("{th:>8} {b:>7} {sps:>10.2} {gf:>10.1} {fma_s:>10} {of_fma:>9} {gemm:>12.1} {:>8.0}%{rss}", 100.0 * gf / gemm);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn fma_chains_compute_the_recurrence_they_time() {
        // acc = acc * 0.5 + 1 from 0: 1, 1.5, 1.75, 1.875 (exact in f32), on every lane of 12 chains.
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA were detected above.
            assert_eq!(unsafe { fma_chains_avx2(4, 0.5, 1.0) }, 1.875 * (8 * FMA_CHAINS) as f32);
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected above.
            assert_eq!(unsafe { fma_chains_avx512(4, 0.5, 1.0) }, 1.875 * (16 * FMA_CHAINS) as f32);
        }
        if let Some(u) = widest_fma() {
            assert_eq!((u.chains)(4, 0.5, 1.0), 1.875 * (u.lanes as usize * FMA_CHAINS) as f32);
            assert!(fma_peak_gflops(1).is_some_and(|g| g.is_finite() && g > 0.0));
        }
    }
}
