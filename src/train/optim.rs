//! AdamW with PyTorch's semantics (`torch.optim.AdamW`: decoupled weight decay on every
//! parameter, bias-corrected moments) and the papers' learning-rate schedules.

use serde::{Deserialize, Serialize};

/// AdamW hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Exponential decay of the first and second moments.
    pub betas: (f64, f64),
    /// Added to the denominator for stability.
    pub eps: f64,
    /// Decoupled weight decay, applied to all parameters as `torch.optim.AdamW(model.parameters())`.
    pub weight_decay: f64,
}

/// Optimiser state: moments in the parameters' flat layout, and the step count.
#[derive(Clone, Debug)]
pub struct AdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// First moment.
    pub m: Vec<f32>,
    /// Second moment.
    pub v: Vec<f32>,
    /// Steps taken so far.
    pub step: u64,
}

impl AdamW {
    /// Fresh state for `n` parameters.
    pub fn new(config: AdamWConfig, n: usize) -> AdamW {
        AdamW { config, m: vec![0.0; n], v: vec![0.0; n], step: 0 }
    }

    /// One update of `params` from `grad` at learning rate `lr` (the schedule's value).
    pub fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f64) {
        self.step += 1;
        let c = &self.config;
        let (b1, b2) = (c.betas.0 as f32, c.betas.1 as f32);
        let bc1 = 1.0 - c.betas.0.powi(self.step as i32);
        let bc2 = 1.0 - c.betas.1.powi(self.step as i32);
        let step_size = (lr / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let decay = 1.0 - (lr * c.weight_decay) as f32;
        let eps = c.eps as f32;
        use rayon::prelude::*;
        const CHUNK: usize = 1 << 15;
        (params.par_chunks_mut(CHUNK), grad.par_chunks(CHUNK), self.m.par_chunks_mut(CHUNK), self.v.par_chunks_mut(CHUNK))
            .into_par_iter()
            .for_each(|(p, g, m, v)| {
                for i in 0..p.len() {
                    p[i] *= decay;
                    m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                    v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                    p[i] -= step_size * m[i] / (v[i].sqrt() / bc2_sqrt + eps);
                }
            });
    }
}

/// Learning-rate factor as a function of the step (multiplies the peak rate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Paper 1: `min(step / warmup, 1)` (PyTorch `LambdaLR`, factor 0 at step 0).
    WarmupConstant {
        /// Warm-up steps.
        warmup: u64,
    },
    /// Follow-up paper: linear warm-up from `start_factor` over `warmup` steps, then cosine
    /// annealing to 0 at `total` steps.
    WarmupCosine {
        /// Warm-up steps.
        warmup: u64,
        /// Total steps.
        total: u64,
        /// Factor at step 0.
        start_factor: f64,
    },
}

impl Schedule {
    /// A short description, e.g. "linear warm-up over 10 steps, then constant".
    pub fn describe(&self) -> String {
        match *self {
            Schedule::WarmupConstant { warmup } => format!("linear warm-up over {warmup} steps, then constant"),
            Schedule::WarmupCosine { warmup, total, start_factor } => {
                format!("linear warm-up from {start_factor} over {warmup} steps, then cosine to 0 at step {total}")
            }
        }
    }

    /// The factor for the update made at `step` (0-based), as PyTorch's scheduler would give.
    pub fn factor(&self, step: u64) -> f64 {
        match *self {
            Schedule::WarmupConstant { warmup } => {
                if warmup == 0 {
                    1.0
                } else {
                    (step as f64 / warmup as f64).min(1.0)
                }
            }
            Schedule::WarmupCosine { warmup, total, start_factor } => {
                if step < warmup {
                    start_factor + (1.0 - start_factor) * step as f64 / warmup as f64
                } else {
                    let span = total.saturating_sub(warmup).max(1) as f64;
                    let t = ((step - warmup) as f64 / span).min(1.0);
                    0.5 * (1.0 + (std::f64::consts::PI * t).cos())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_the_papers() {
        let s = Schedule::WarmupConstant { warmup: 10 };
        assert_eq!((s.factor(0), s.factor(5), s.factor(10), s.factor(999)), (0.0, 0.5, 1.0, 1.0));
        let c = Schedule::WarmupCosine { warmup: 20, total: 100, start_factor: 0.01 };
        assert!((c.factor(0) - 0.01).abs() < 1e-12);
        assert!((c.factor(20) - 1.0).abs() < 1e-12);
        assert!((c.factor(60) - 0.5).abs() < 1e-12);
        assert!(c.factor(100).abs() < 1e-12);
    }

    #[test]
    fn first_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        // At step 1 Adam's update is lr * g / (|g| + eps): a signed step of size ~lr.
        let cfg = AdamWConfig { lr: 0.1, betas: (0.9, 0.98), eps: 1e-8, weight_decay: 0.0 };
        let mut opt = AdamW::new(cfg, 3);
        let mut p = vec![1.0f32, 1.0, 1.0];
        opt.step(&mut p, &[2.0, -0.5, 0.0], 0.1);
        assert!((p[0] - 0.9).abs() < 1e-6 && (p[1] - 1.1).abs() < 1e-6 && p[2] == 1.0, "{p:?}");
    }
}
