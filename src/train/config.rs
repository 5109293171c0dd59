//! What a training run does: the model, the task, the optimiser and the schedule, with the
//! papers' recipes as named presets and `key=value` overrides for any field.

use super::error::ConfigError;
use super::optim::{AdamWConfig, Schedule};
use crate::model::{ActFn, ModelConfig, Norm};
use crate::task::{Format, Op};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The questions a run trains on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskConfig {
    /// Operand width.
    pub n_digits: usize,
    /// Token format.
    pub format: Format,
    /// Share of batches that are subtraction (0 = addition only, 1 = subtraction only).
    pub sub_share: f64,
    /// Share of addition batches enriched with sum-9 columns.
    pub add_enrich_batches: f64,
    /// Share of digit positions set to 9 minus the other operand's digit in an enriched batch.
    pub add_enrich_digits: f64,
    /// Share of subtraction batches enriched with zero and negative answers.
    pub sub_enrich_batches: f64,
    /// Share of digit positions changed in an enriched subtraction batch.
    pub sub_enrich_digits: f64,
}

impl TaskConfig {
    /// The operations this task trains on.
    pub fn ops(&self) -> Vec<Op> {
        let mut v = Vec::new();
        if self.sub_share < 1.0 {
            v.push(Op::Add);
        }
        if self.sub_share > 0.0 {
            v.push(Op::Sub);
        }
        v
    }
}

/// Everything that defines a training run; stored in training.json and in every checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Run name (the default run folder is `runs/<name>`).
    pub name: String,
    /// Architecture.
    pub model: ModelConfig,
    /// Questions.
    pub task: TaskConfig,
    /// Questions per step.
    pub batch_size: usize,
    /// Optimiser steps.
    pub steps: u64,
    /// AdamW hyper-parameters.
    pub optim: AdamWConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Seed of the training data (each step's batch is a function of this seed and the step).
    pub data_seed: u64,
    /// Steps between records in training.json.
    pub log_every: u64,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// Start from a trained smaller model (the follow-up's `ins` models).
    #[serde(default)]
    pub insert: Option<super::insert::InsertConfig>,
}

/// Names of the built-in presets, for help texts.
pub const PRESETS: &[&str] =
    &["paper1", "paper1_constant", "tiny", "tiny_l2", "tiny_sub", "tiny_mix", "OP_dN_lL_hH_tNK_sSEED (e.g. add_d6_l2_h3_t15K_s372001)"];

fn model(n_layers: usize, n_heads: usize, d_model: usize, d_mlp: usize, format: Format, n_digits: usize, seed: u64) -> ModelConfig {
    ModelConfig {
        n_layers,
        n_heads,
        d_model,
        d_head: d_model / n_heads,
        d_mlp,
        d_vocab: format.d_vocab(),
        d_vocab_out: format.d_vocab(),
        n_ctx: format.n_ctx(n_digits),
        act_fn: ActFn::Relu,
        normalization_type: Some(Norm::LN),
        attn_only: false,
        eps: 1e-5,
        seed,
        initializer_range: None,
    }
}

fn paper1_task(n_digits: usize) -> TaskConfig {
    TaskConfig {
        n_digits,
        format: Format::Paper1,
        sub_share: 0.0,
        add_enrich_batches: 0.2,
        add_enrich_digits: 0.2,
        sub_enrich_batches: 0.0,
        sub_enrich_digits: 0.0,
    }
}

/// Paper 1's model (Quirke & Barez): 5 digits, 1 layer, 3 heads, d_model 510, AdamW 8e-5,
/// 30,000 steps of 64 fresh questions, seed 372001, with the follow-up's schedule (linear warm-up
/// from 0.01 over 20% of the steps, then cosine), as its library reproduces this model
/// (`add_d5_l1_h3_t30K`): it ends at a tenth of the loss of the constant rate.
fn paper1() -> TrainConfig {
    TrainConfig {
        name: "paper1".into(),
        schedule: Schedule::WarmupCosine { warmup: 6_000, total: 30_000, start_factor: 0.01 },
        ..paper1_constant()
    }
}

/// Paper 1's recipe as its notebook has it: [`paper1`] with a 10-step warm-up, then a constant rate.
fn paper1_constant() -> TrainConfig {
    let seed = 372001;
    TrainConfig {
        name: "paper1_constant".into(),
        model: model(1, 3, 510, 2040, Format::Paper1, 5, seed),
        task: paper1_task(5),
        batch_size: 64,
        steps: 30_000,
        optim: AdamWConfig { lr: 8e-5, betas: (0.9, 0.98), eps: 1e-8, weight_decay: 0.1 },
        schedule: Schedule::WarmupConstant { warmup: 10 },
        data_seed: seed,
        log_every: 100,
        checkpoint_every: 1000,
        insert: None,
    }
}

/// A small model that learns 2-digit addition perfectly in seconds: for tests and first contact.
fn tiny() -> TrainConfig {
    let seed = 1;
    let p = paper1();
    TrainConfig {
        name: "tiny".into(),
        model: model(1, 3, 64, 256, Format::Paper1, 2, seed),
        task: paper1_task(2),
        steps: 2000,
        optim: AdamWConfig { lr: 3e-3, ..p.optim.clone() },
        schedule: Schedule::WarmupCosine { warmup: 50, total: 2000, start_factor: 0.01 },
        data_seed: seed,
        log_every: 50,
        checkpoint_every: 500,
        ..p
    }
}

/// The follow-up paper's recipe for a model named `op_dN_lL_hH_tNK_sSEED`.
fn follow_up(name: &str) -> Result<TrainConfig, ConfigError> {
    let bad = || ConfigError::UnknownPreset { name: name.to_string() };
    let preset = |problem: String| ConfigError::Preset { name: name.to_string(), problem };
    let parts: Vec<&str> = name.split('_').collect();
    let [op, d, l, h, t, s] = parts[..] else { return Err(bad()) };
    let num = |p: &str, prefix: char| -> Result<u64, ConfigError> {
        let body = p.strip_prefix(prefix).ok_or_else(bad)?;
        let (digits, mult) = match body.strip_suffix('K') {
            Some(b) => (b, 1000),
            None => (body, 1),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let too_large = || preset(format!("the number in '{p}' is too large: it does not fit in 64 bits (at most {})", u64::MAX));
        digits.parse::<u64>().map_err(|_| too_large())?.checked_mul(mult).ok_or_else(too_large)
    };
    let small = |p: &str, prefix: char, max: usize, what: &str| -> Result<usize, ConfigError> {
        let v = num(p, prefix)?;
        usize::try_from(v).ok().filter(|&v| v <= max).ok_or_else(|| preset(format!("{what} {v} is too large: at most {max} is allowed")))
    };
    let (n_digits, n_layers, n_heads) = (
        small(d, 'd', 20, "digits")?,
        small(l, 'l', crate::limits::MAX_LAYERS, "layers")?,
        small(h, 'h', crate::limits::MAX_HEADS, "heads")?,
    );
    let (steps, seed) = (num(t, 't')?, num(s, 's')?);
    if steps > crate::limits::MAX_STEPS {
        return Err(preset(format!("{steps} steps is too many: at most {} is allowed", crate::limits::MAX_STEPS)));
    }
    let sub_share = match op {
        "add" => 0.0,
        "sub" => 1.0,
        "mix" => 0.66,
        _ => return Err(bad()),
    };
    if !(1..=20).contains(&n_digits) || n_layers == 0 || n_heads == 0 || steps == 0 {
        return Err(preset("digits must be 1..=20 and layers, heads and steps at least 1".into()));
    }
    // The follow-up keeps d_model 510 and d_head 170 whatever the head count (4 heads attend
    // through 680 dimensions), so a 3-head model's heads fit into a 4-head one.
    Ok(TrainConfig {
        name: name.into(),
        model: ModelConfig { d_head: 170, ..model(n_layers, n_heads, 510, 2040, Format::Paper2Sign, n_digits, seed) },
        task: TaskConfig {
            n_digits,
            format: Format::Paper2Sign,
            sub_share,
            add_enrich_batches: 0.6,
            add_enrich_digits: 0.4,
            sub_enrich_batches: 0.6,
            sub_enrich_digits: 0.4,
        },
        batch_size: 64,
        steps,
        optim: AdamWConfig { lr: 8e-5, betas: (0.9, 0.98), eps: 1e-8, weight_decay: 0.1 },
        schedule: Schedule::WarmupCosine { warmup: steps / 5, total: steps, start_factor: 0.01 },
        data_seed: seed,
        log_every: 100,
        checkpoint_every: 1000,
        insert: None,
    })
}

/// `insN_mix_...`: the follow-up's insertion models, initialised from the trained 2-layer 3-head
/// addition model `add_dN_l2_h3_t15K_sSEED` in `runs/` (`--set insert.from=PATH` picks another).
/// ins1 inserts once; ins2 re-imposes the inserted heads every 100 steps; ins3 heads and MLPs.
fn insertion(name: &str, mode: u8, rest: &str) -> Result<TrainConfig, ConfigError> {
    let mut c = follow_up(rest)?;
    c.name = name.to_string();
    c.task.sub_share = 0.8;
    let from = PathBuf::from("runs").join(format!("add_d{}_l2_h3_t15K_s{}", c.task.n_digits, c.model.seed));
    c.insert = Some(super::insert::InsertConfig { from, every: if mode >= 2 { 100 } else { 0 }, mlps: mode >= 3 });
    Ok(c)
}

impl TrainConfig {
    /// A named preset: `paper1` (the default), `tiny`, or a follow-up model name.
    pub fn preset(name: &str) -> Result<TrainConfig, ConfigError> {
        let small = |n_layers: usize, sub_share: f64, fmt: Format| {
            let mut c = tiny();
            c.name = name.to_string();
            c.model = model(n_layers, 3, 64, 256, fmt, 2, c.model.seed);
            c.task.format = fmt;
            c.task.sub_share = sub_share;
            if sub_share > 0.0 {
                // Subtraction needs more steps; both operations together more still.
                (c.task.sub_enrich_batches, c.task.sub_enrich_digits) = (0.2, 0.2);
                c.steps = if sub_share < 1.0 { 4000 } else { 3000 };
                c.schedule = Schedule::WarmupCosine { warmup: 100, total: c.steps, start_factor: 0.01 };
            }
            c
        };
        match name {
            "paper1" => Ok(paper1()),
            "paper1_constant" => Ok(paper1_constant()),
            "tiny" => Ok(tiny()),
            "tiny_l2" => Ok(small(2, 0.0, Format::Paper1)),
            "tiny_sub" => Ok(small(2, 1.0, Format::Paper2Sign)),
            "tiny_mix" => Ok(small(2, 0.5, Format::Paper2Sign)),
            other => match other.split_once('_') {
                Some((ins, rest)) if ins.len() == 4 && ins.starts_with("ins") && (b'1'..=b'3').contains(&ins.as_bytes()[3]) => {
                    insertion(other, ins.as_bytes()[3] - b'0', rest)
                }
                _ => follow_up(other),
            },
        }
    }

    /// Applies `key=value` overrides; `key` is any field name of the run, model, task or
    /// optimiser config (`d_model=256`, `lr=1e-3`, `n_digits=3`, `steps=500`, ...), or a dotted
    /// path where a name is ambiguous (`optim.eps`, `model.eps`). Fields that
    /// follow from others (n_ctx, d_vocab, d_head, the schedule's total) are recomputed unless
    /// set explicitly.
    pub fn with_overrides(&self, overrides: &[String]) -> Result<TrainConfig, ConfigError> {
        let mut v = serde_json::to_value(self).expect("a config serialises");
        let mut set = Vec::new();
        for o in overrides {
            let (key, value) = o.split_once('=').ok_or_else(|| ConfigError::NotKeyValue { given: o.clone() })?;
            let (key, value) = (key.trim(), value.trim());
            if !set_field(&mut v, key, value) {
                return Err(ConfigError::UnknownField { key: key.to_string(), known: field_names(&v) });
            }
            // Checked after each override, so the error names the one whose value is wrong.
            serde_json::from_value::<TrainConfig>(v.clone()).map_err(|e| ConfigError::BadValue {
                key: key.to_string(),
                value: value.to_string(),
                reason: e.to_string(),
            })?;
            set.push(key.to_string());
        }
        let mut c: TrainConfig = serde_json::from_value(v).map_err(|e| field("config", format!("bad override value: {e}")))?;
        c.derive_dependent_fields(&set)?;
        c.validate()?;
        Ok(c)
    }

    fn derive_dependent_fields(&mut self, set: &[String]) -> Result<(), ConfigError> {
        let is_set = |k: &str| set.iter().any(|s| s == k);
        if !(1..=crate::task::MAX_DIGITS).contains(&self.task.n_digits) {
            return Ok(()); // validate() names the bad width; nothing can be derived from it
        }
        if !is_set("n_ctx") {
            self.model.n_ctx = self.task.format.n_ctx(self.task.n_digits);
        }
        if !is_set("d_vocab") {
            self.model.d_vocab = self.task.format.d_vocab();
        }
        if !is_set("d_vocab_out") {
            self.model.d_vocab_out = self.task.format.d_vocab();
        }
        if !is_set("d_head") && (is_set("d_model") || is_set("n_heads")) {
            let (d, h) = (self.model.d_model, self.model.n_heads);
            if h == 0 || h > d {
                return Err(ConfigError::HeadsDontFit { n_heads: h, d_model: d });
            }
            self.model.d_head = d / h;
        }
        if !is_set("d_mlp") && is_set("d_model") {
            self.model.d_mlp = 4 * self.model.d_model;
        }
        if is_set("seed") && !is_set("data_seed") {
            self.data_seed = self.model.seed;
        }
        if let Schedule::WarmupCosine { warmup, total, .. } = &mut self.schedule {
            if is_set("steps") && !is_set("total") {
                *warmup = ((*warmup as f64 * self.steps as f64 / (*total).max(1) as f64).round() as u64).min(self.steps);
                *total = self.steps;
            }
        }
        Ok(())
    }

    /// Checks that the run can be trained; the message names the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.model.validate()?;
        let t = &self.task;
        if !(1..=crate::task::MAX_DIGITS).contains(&t.n_digits) {
            return Err(field("n_digits", format!("n_digits {} is out of range: expected 1..={}", t.n_digits, crate::task::MAX_DIGITS)));
        }
        if t.sub_share > 0.0 && !t.format.supports(Op::Sub) {
            return Err(field("format", format!("format {} has no '-' token: use format=paper2_sign for subtraction", t.format.name())));
        }
        if self.model.n_ctx < t.format.n_ctx(t.n_digits) {
            let need = t.format.n_ctx(t.n_digits);
            return Err(field(
                "n_ctx",
                format!("n_ctx {} is too short for {}-digit questions, which need {need}", self.model.n_ctx, t.n_digits),
            ));
        }
        if self.model.d_vocab < t.format.d_vocab() || self.model.d_vocab_out < t.format.d_vocab() {
            return Err(field("d_vocab", format!("d_vocab must be at least {} for format {}", t.format.d_vocab(), t.format.name())));
        }
        for (k, v) in [
            ("sub_share", t.sub_share),
            ("add_enrich_batches", t.add_enrich_batches),
            ("add_enrich_digits", t.add_enrich_digits),
            ("sub_enrich_batches", t.sub_enrich_batches),
            ("sub_enrich_digits", t.sub_enrich_digits),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(field(k, format!("{k} = {v} is not a share: expected a number from 0 to 1")));
            }
        }
        if self.batch_size == 0 || self.steps == 0 || self.log_every == 0 || self.checkpoint_every == 0 {
            return Err(field("batch_size", "batch_size, steps, log_every and checkpoint_every must each be at least 1".into()));
        }
        check_name(&self.name)?;
        self.check_sizes()?;
        check_optim(&self.optim)?;
        check_schedule(&self.schedule)?;
        if let Some(r) = self.model.initializer_range {
            if !(r > 0.0 && r.is_finite()) {
                let problem = format!("initializer_range {r} must be a positive number such as 0.035 (or null for 0.8/sqrt(d_model))");
                return Err(field("initializer_range", problem));
            }
        }
        Ok(())
    }

    /// Counts within [`crate::limits`], and the memory of training (weights, gradients, AdamW's
    /// two moments, one batch's activations) within [`crate::limits::MAX_MEMORY_BYTES`].
    fn check_sizes(&self) -> Result<(), ConfigError> {
        use crate::limits::*;
        check_range("batch_size", self.batch_size as u64, MAX_BATCH as u64, "the papers use 64 questions per step")?;
        for (k, v) in [("steps", self.steps), ("log_every", self.log_every), ("checkpoint_every", self.checkpoint_every)] {
            check_range(k, v, MAX_STEPS, "the papers train 15,000 to 40,000 steps")?;
        }
        let m = &self.model;
        let (l, h, d, dh, ff, ctx) =
            (m.n_layers as u64, m.n_heads as u64, m.d_model as u64, m.d_head as u64, m.d_mlp as u64, m.n_ctx as u64);
        // Per position and layer: ~10 residual-wide vectors, q/k/v/z, scores and pattern, MLP in/out.
        let per_layer = sum(&[product(&[10, d]), product(&[4, h, dh]), product(&[2, h, ctx]), product(&[2, ff])]);
        let per_position = sum(&[per_layer.and_then(|p| p.checked_mul(l)), product(&[2, m.d_vocab_out as u64]), product(&[2, d])]);
        let activations = per_position.and_then(|p| product(&[p, ctx, self.batch_size as u64, 4]));
        let state = m.checked_n_params().and_then(|p| p.checked_mul(16));
        let what = format!("{}, batch_size={}", m.size_text(), self.batch_size);
        Ok(check_memory(&what, sum(&[state, activations]), "the weights, gradients, AdamW state and one batch's activations")?)
    }
}

/// A [`ConfigError::Field`]: `field`'s value is out of range, as `problem` says.
fn field(field: &'static str, problem: String) -> ConfigError {
    ConfigError::Field { field, problem }
}

/// Error unless `name` is usable as a folder name under `runs/`: letters, digits, `_`, `-` and
/// `.`, not starting with `.` (so no `..`, no path separators, no hidden folder), at most 100 long.
pub fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 100 || name.starts_with('.') || !name.chars().all(ok_char) {
        return Err(ConfigError::Name { name: name.to_string() });
    }
    Ok(())
}

/// Error unless AdamW's hyper-parameters are in their valid ranges.
fn check_optim(o: &AdamWConfig) -> Result<(), ConfigError> {
    if !(o.lr > 0.0 && o.lr.is_finite()) {
        return Err(field("lr", format!("lr {} must be a positive number such as 8e-5", o.lr)));
    }
    for (k, b) in [("betas[0]", o.betas.0), ("betas[1]", o.betas.1)] {
        if !(0.0..1.0).contains(&b) {
            return Err(field(k, format!("optim {k} = {b} is out of range: a moment decay must be in [0, 1), e.g. betas=[0.9,0.98]")));
        }
    }
    if !(o.eps > 0.0 && o.eps.is_finite()) {
        return Err(field("optim.eps", format!("optim.eps {} must be a small positive number such as 1e-8", o.eps)));
    }
    if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
        return Err(field("weight_decay", format!("weight_decay {} must be 0 or a positive number such as 0.1", o.weight_decay)));
    }
    Ok(())
}

/// Error unless the schedule's factors are in (0, 1] and its step counts within the limits.
fn check_schedule(s: &Schedule) -> Result<(), ConfigError> {
    let max = crate::limits::MAX_STEPS;
    match *s {
        Schedule::WarmupConstant { warmup } if warmup > max => {
            Err(field("warmup", format!("warmup {warmup} is too long: at most {max} steps")))
        }
        Schedule::WarmupConstant { .. } => Ok(()),
        Schedule::WarmupCosine { warmup, total, start_factor } => {
            if !(start_factor > 0.0 && start_factor <= 1.0) {
                return Err(field(
                    "start_factor",
                    format!("start_factor {start_factor} is out of range: the warm-up's first factor must be in (0, 1], e.g. 0.01"),
                ));
            }
            if total == 0 || total > max || warmup > total {
                return Err(field(
                    "total",
                    format!("schedule warmup {warmup} and total {total}: total must be 1 to {max} steps and warmup at most total"),
                ));
            }
            Ok(())
        }
    }
}

/// The JSON value `raw` gives a field that holds `current`: text for a text field (so
/// `insert.from=123` stays the path "123"), else the JSON it parses as, else text.
fn parse_for(current: &serde_json::Value, raw: &str) -> serde_json::Value {
    if current.is_string() {
        return serde_json::Value::String(raw.to_string());
    }
    serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_string()))
}

/// Sets the first field named `key` anywhere in the JSON tree; false if there is none.
/// A dotted key (`optim.eps`) names one field exactly.
fn set_field(v: &mut serde_json::Value, key: &str, value: &str) -> bool {
    if let Some((head, rest)) = key.split_once('.') {
        return v.get_mut(head).is_some_and(|child| set_field_exact(child, rest, value));
    }
    let Some(map) = v.as_object_mut() else { return false };
    if let Some(slot) = map.get_mut(key) {
        *slot = parse_for(slot, value);
        return true;
    }
    map.values_mut().any(|child| set_field(child, key, value))
}

fn set_field_exact(v: &mut serde_json::Value, key: &str, value: &str) -> bool {
    match key.split_once('.') {
        Some((head, rest)) => v.get_mut(head).is_some_and(|c| set_field_exact(c, rest, value)),
        None => v.get_mut(key).map(|slot| *slot = parse_for(slot, value)).is_some(),
    }
}

fn field_names(v: &serde_json::Value) -> Vec<String> {
    let Some(map) = v.as_object() else { return vec![] };
    map.iter().flat_map(|(k, c)| std::iter::once(k.clone()).chain(field_names(c))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_follow_the_papers() {
        let p = TrainConfig::preset("paper1").unwrap();
        assert_eq!((p.model.d_model, p.model.d_head, p.model.d_mlp, p.model.n_ctx, p.model.d_vocab), (510, 170, 2040, 18, 12));
        assert_eq!(p.schedule, Schedule::WarmupCosine { warmup: 6000, total: 30_000, start_factor: 0.01 });
        let c = TrainConfig::preset("paper1_constant").unwrap();
        assert_eq!((c.schedule, c.name.as_str()), (Schedule::WarmupConstant { warmup: 10 }, "paper1_constant"));
        assert_eq!((c.model, c.task, c.optim, c.steps), (p.model.clone(), p.task.clone(), p.optim.clone(), p.steps));
        let short = p.with_overrides(&["steps=1000".into()]).unwrap();
        assert_eq!(short.schedule, Schedule::WarmupCosine { warmup: 200, total: 1000, start_factor: 0.01 });
        let f = TrainConfig::preset("mix_d6_l3_h4_t40K_s372001").unwrap();
        assert_eq!((f.model.n_layers, f.model.n_heads, f.model.n_ctx, f.steps, f.model.seed), (3, 4, 22, 40_000, 372001));
        assert_eq!((f.model.d_model, f.model.d_head, f.model.d_mlp), (510, 170, 2040), "the follow-up's widths for any head count");
        assert!((f.task.sub_share - 0.66).abs() < 1e-12);
        assert!(TrainConfig::preset("add_dx_l2").unwrap_err().to_string().contains("unknown preset"));
    }

    #[test]
    fn overrides_reach_any_field_and_keep_the_config_consistent() {
        let p = TrainConfig::preset("paper1").unwrap();
        let o = p.with_overrides(&["d_model=96".into(), "n_digits=3".into(), "lr=0.001".into(), "act_fn=gelu".into()]).unwrap();
        assert_eq!((o.model.d_model, o.model.d_head, o.model.d_mlp, o.model.n_ctx), (96, 32, 384, 12));
        assert_eq!((o.optim.lr, o.model.act_fn), (0.001, ActFn::Gelu));
        let e = p.with_overrides(&["optim.eps=1e-6".into()]).unwrap();
        assert_eq!((e.optim.eps, e.model.eps), (1e-6, 1e-5));
        assert!(p.with_overrides(&["d_modle=3".into()]).unwrap_err().to_string().contains("unknown config field 'd_modle'"));
        let err = p.with_overrides(&["lr=0.001".into(), "d_model=-3".into()]).unwrap_err().to_string();
        assert!(err.contains("--set d_model=-3") && err.contains("expected usize"), "{err}");
        assert!(p.with_overrides(&["sub_share=0.5".into()]).unwrap_err().to_string().contains("paper2_sign"));
        assert!(p.with_overrides(&["n_digits=30".into()]).unwrap_err().to_string().contains("n_digits 30"));
    }

    #[test]
    fn text_fields_keep_text_that_looks_like_a_number() {
        let ins = TrainConfig::preset("ins1_mix_d2_l2_h3_t1K_s1").unwrap();
        let c = ins.with_overrides(&["insert.from=123".into(), "name=007".into()]).unwrap();
        assert_eq!((c.insert.unwrap().from, c.name.as_str()), (PathBuf::from("123"), "007"));
        let e = ins.with_overrides(&["n_digits=18446744073709551615".into()]).unwrap_err().to_string();
        assert!(e.contains("n_digits 18446744073709551615 is out of range"), "{e}");
    }

    #[test]
    fn preset_numbers_are_checked_for_overflow_and_limits() {
        let e = TrainConfig::preset("add_d2_l1_h1_t18446744073709552K_s1").unwrap_err().to_string();
        assert!(e.contains("'t18446744073709552K' is too large"), "{e}");
        assert!(TrainConfig::preset("add_d2_l1_h1_t18446744073709551K_s1").unwrap_err().to_string().contains("too many"));
        assert!(TrainConfig::preset("add_d99999999999999999999_l1_h1_t1K_s1").unwrap_err().to_string().contains("too large"));
        assert!(TrainConfig::preset("add_d2_l1_h+1_t1K_s1").unwrap_err().to_string().contains("unknown preset"));
        assert_eq!(TrainConfig::preset("add_d2_l1_h1_t2K_s18446744073709551615").unwrap().data_seed, u64::MAX);
    }
}
