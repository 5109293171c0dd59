//! The fast passes equal the reference model (`model::reference`, itself checked against
//! TransformerLens in `tests/transformer_lens_fixtures.rs`): the hooked pass over every position
//! and over the answer rows only, the training pass over the answer rows with layer 0 per
//! distinct (token, position) pair, its backward pass, the intervention pass that recomputes
//! only the rows after a cached prefix, and the one-layer evaluation tables.

use arithlens::eval::one_layer::OneLayerTables;
use arithlens::eval::predict::argmax;
use arithlens::model::hooks::{HookPoint, HookTensor, Hooks};
use arithlens::model::{backward, forward, forward_blocks, loss, reference, Cache, NoHooks, Params, Span, Targets, Workspace};
use arithlens::task::random_questions;
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};

/// A few hundred steps of a preset: weights with real structure (sharp attention, dead ReLUs).
fn trained(preset: &str, steps: u64) -> (Params, TrainConfig) {
    let cfg = TrainConfig::preset(preset).unwrap().with_overrides(&[format!("steps={steps}")]).unwrap();
    let mut t = Trainer::new(cfg.clone()).unwrap();
    for _ in 0..steps {
        t.step().unwrap();
    }
    (t.params, cfg)
}

/// Token rows [batch, n_ctx] of random questions with their answers.
fn tokens(cfg: &TrainConfig, batch: usize) -> Vec<u32> {
    let t = &cfg.task;
    let mut out = Vec::new();
    for (i, op) in t.ops().into_iter().enumerate() {
        for q in random_questions(t.n_digits, op, batch / t.ops().len(), 11 + i as u64).unwrap() {
            out.extend(q.tokens(t.format).unwrap());
        }
    }
    out
}

fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().filter(|v| v.is_finite()).fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_finite() { (g - w).abs() <= rtol * scale } else { g == w };
        assert!(ok, "{what}[{i}]: fast {g}, reference {w} (scale {scale})");
    }
}

const PRESETS: [&str; 4] = ["tiny", "tiny_l2", "tiny_sub", "tiny_mix"];

/// A trained preset's reference pass over 24 random questions, with every hook cached: what the
/// hooked fast passes are held to.
struct Hooked {
    p: Params,
    cfg: TrainConfig,
    toks: Vec<u32>,
    want: Cache,
    acts: reference::Activations,
    n_ctx: usize,
    batch: usize,
}

fn hooked_reference(preset: &str) -> Hooked {
    let (p, cfg) = trained(preset, 150);
    let (n_ctx, batch) = (p.config.n_ctx, 24);
    let toks = tokens(&cfg, batch);
    let mut want = Cache::default();
    let acts = reference::forward(&p, &toks, batch, n_ctx, &mut want);
    Hooked { p, cfg, toks, want, acts, n_ctx, batch }
}

#[test]
fn the_hooked_pass_over_every_position_equals_the_reference() {
    for preset in PRESETS {
        let Hooked { p, toks, want, acts, n_ctx, batch, .. } = hooked_reference(preset);
        let mut got = Cache::default();
        let mut ws = Workspace::new(&p.config, batch, Span::full(n_ctx));
        forward(&p, &toks, n_ctx, &mut ws, &mut got);
        assert_eq!(got.tensors.keys().collect::<Vec<_>>(), want.tensors.keys().collect::<Vec<_>>(), "{preset}: hook names");
        for (k, t) in &want.tensors {
            assert_eq!(got.tensors[k].shape, t.shape, "{preset}: {k}");
            assert_close(&format!("{preset}: {k}"), &got.tensors[k].data, &t.data, 1e-5);
        }
        assert_close(&format!("{preset}: logits"), &ws.logits, &acts.logits, 1e-5);
    }
}

#[test]
fn the_training_pass_and_its_gradients_equal_the_reference() {
    for preset in PRESETS {
        let (p, cfg) = trained(preset, 150);
        let (n_ctx, batch) = (p.config.n_ctx, 32);
        let toks = tokens(&cfg, batch);
        let fmt = cfg.task.format;
        let targets = Targets { first: fmt.answer_start(cfg.task.n_digits) - 1, n: fmt.n_answer(cfg.task.n_digits) };
        let acts = reference::forward(&p, &toks, batch, n_ctx, &mut NoHooks);
        let (want_loss, dlogits) = reference::loss(&acts, p.config.d_vocab_out, targets.first, targets.n);
        let want = reference::backward(&p, &acts, &dlogits);
        // Answer rows only, layer 0 from the pair table (no hooks): what a training step runs.
        let span = Span::predictions(targets.first, targets.n);
        let mut ws = Workspace::new(&p.config, batch, span);
        forward(&p, &toks, n_ctx, &mut ws, &mut NoHooks);
        assert!(ws.layer0_pairs().is_some(), "{preset}: the pass should use the pair table");
        let v = p.config.d_vocab_out;
        let rows: Vec<f32> = acts.logits.chunks_exact(n_ctx * v).flat_map(|s| s[span.q0 * v..span.t * v].to_vec()).collect();
        assert_close(&format!("{preset}: answer-row logits"), &ws.logits, &rows, 1e-5);
        let mut nll = vec![0.0; batch * targets.n];
        let l = loss(&mut ws, &toks, n_ctx, v, &targets, &mut nll, true);
        assert!((l - want_loss).abs() < 1e-6 * want_loss.max(1.0), "{preset}: loss {l} vs {want_loss}");
        let mut grad = vec![0.0; p.data.len()];
        backward(&p, &toks, n_ctx, &mut ws, &mut grad);
        for e in &p.layout.entries {
            assert_close(&format!("{preset}: grad {}", e.name), &grad[e.range.clone()], &want[&e.name], 1e-4);
        }
    }
}

/// Adds a fixed pattern to `blocks.L.attn.hook_z` from position `from` on.
struct Nudge {
    layer: usize,
    from: usize,
}

impl Hooks for Nudge {
    fn call(&mut self, point: HookPoint, t: HookTensor) {
        if point != HookPoint::Z(self.layer) {
            return;
        }
        let (pos, per_pos) = (t.shape[1], t.shape[2] * t.shape[3]);
        for (r, row) in t.data.chunks_exact_mut(per_pos).enumerate() {
            if r % pos + t.pos_offset >= self.from {
                row.iter_mut().enumerate().for_each(|(i, x)| *x += 0.05 * ((i % 7) as f32 - 3.0));
            }
        }
    }
}

#[test]
fn an_intervention_pass_from_a_cached_prefix_equals_the_reference() {
    let (p, cfg) = trained("tiny_l2", 150);
    let (n_ctx, batch, from) = (p.config.n_ctx, 16, 5);
    let toks = tokens(&cfg, batch);
    let want = reference::forward(&p, &toks, batch, n_ctx, &mut Nudge { layer: 0, from });
    // The clean pass leaves every block's output in the workspace; the intervention pass then
    // computes block 0's queries, attention and MLP only for the rows from `from` on, keeping
    // the clean rows before it.
    let mut ws = Workspace::new(&p.config, batch, Span::full(n_ctx));
    forward(&p, &toks, n_ctx, &mut ws, &mut NoHooks);
    ws.set_first_row(from);
    forward_blocks(&p, &toks, n_ctx, 0..2, &mut ws, &mut Nudge { layer: 0, from });
    let clean = reference::forward(&p, &toks, batch, n_ctx, &mut NoHooks);
    assert!(want.logits.iter().zip(&clean.logits).any(|(a, b)| (a - b).abs() > 1e-3), "the nudge changes the answer");
    assert_close("partial recompute: logits", &ws.logits, &want.logits, 1e-5);
}

/// Positions `from..to` along axis `axis` of a row-major tensor of shape `shape`, and its new shape.
fn positions(data: &[f32], shape: &[usize], axis: usize, from: usize, to: usize) -> (Vec<f32>, Vec<usize>) {
    let (len, inner): (usize, usize) = (shape[axis], shape[axis + 1..].iter().product());
    let mut new_shape = shape.to_vec();
    new_shape[axis] = to - from;
    (data.chunks_exact(len * inner).flat_map(|block| block[from * inner..to * inner].to_vec()).collect(), new_shape)
}

#[test]
fn the_hooked_pass_over_the_answer_rows_equals_the_reference() {
    for preset in PRESETS {
        let Hooked { p, cfg, toks, want, acts, n_ctx, batch } = hooked_reference(preset);
        // Hooks and answer rows: layer 0 row by row, the last block's queries gathered.
        let fmt = cfg.task.format;
        let span = Span::predictions(fmt.answer_start(cfg.task.n_digits) - 1, fmt.n_answer(cfg.task.n_digits));
        let mut got = Cache::default();
        let mut ws = Workspace::new(&p.config, batch, span);
        forward(&p, &toks, n_ctx, &mut ws, &mut got);
        assert!(ws.layer0_pairs().is_none(), "{preset}: a hooked pass computes layer 0 row by row");
        assert_eq!(got.tensors.keys().collect::<Vec<_>>(), want.tensors.keys().collect::<Vec<_>>(), "{preset}: hook names");
        let mut answer_only = 0;
        for (k, t) in &want.tensors {
            let axis = HookPoint::parse(k, p.config.n_layers).unwrap().pos_axis();
            let g = &got.tensors[k];
            // Positions 0..span.t fed in; a (query) position axis of the last block from q0.
            let from = if g.shape[axis] == span.t { 0 } else { span.q0 };
            answer_only += usize::from(from > 0);
            let (mut data, mut shape) = positions(&t.data, &t.shape, axis, from, span.t);
            if axis == 2 {
                // The key axis of hook_attn_scores and hook_pattern.
                (data, shape) = positions(&data, &shape, 3, 0, span.t);
            }
            assert_eq!(g.shape, shape, "{preset}: {k}");
            assert_close(&format!("{preset}: {k}"), &g.data, &data, 1e-5);
        }
        assert!(answer_only > 0, "{preset}: the last block should compute only the answer rows");
        let v = p.config.d_vocab_out;
        let (logits, _) = positions(&acts.logits, &[batch, n_ctx, v], 1, span.q0, span.t);
        assert_close(&format!("{preset}: logits"), &ws.logits, &logits, 1e-5);
    }
}

/// The one-layer evaluation tables (`eval::one_layer`) on random questions: every answer token's
/// loss is the reference's, and its argmax too, except in questions the tables flag as near ties
/// (which evaluation re-decides with the transformer pass).
#[test]
fn the_one_layer_tables_equal_the_reference_on_random_questions() {
    let cfg = TrainConfig::preset("tiny").unwrap().with_overrides(&["steps=300".into()]).unwrap();
    let mut t = Trainer::new(cfg).unwrap();
    for _ in 0..300 {
        t.step().unwrap();
    }
    let fixtures = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transformer_lens");
    let models = [
        TaskModel::from_file(t.model_file(), "tiny").unwrap(),
        TaskModel::load(&fixtures.join("sub_d2_l1_noln_gelu.model.safetensors")).unwrap(),
    ];
    for m in &models {
        let (p, v, n, first) = (&m.params, m.params.config.d_vocab_out, m.n_answer(), m.answer_start() - 1);
        let span = Span::predictions(first, n);
        let tables = OneLayerTables::new(p, span.t, span.q0).expect("a one-layer model with an MLP has tables");
        let qs = random_questions(m.n_digits, m.ops[0], 600, 23).unwrap();
        let got = tables.predict(p, m.format, &qs);
        let t = m.n_ctx();
        let toks: Vec<u32> = qs.iter().flat_map(|q| q.tokens(m.format).unwrap()).collect();
        let acts = reference::forward(p, &toks, qs.len(), t, &mut NoHooks);
        let mut decided = 0;
        for (i, q_toks) in toks.chunks_exact(t).enumerate() {
            let tied = got.near_ties.contains(&i);
            for j in 0..n {
                let row = &acts.logits[(i * t + first + j) * v..][..v];
                let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                let lse = row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln() + max;
                let nll = lse - row[q_toks[first + j + 1] as usize] as f64;
                let k = i * n + j;
                assert!((got.nll[k] - nll).abs() <= 1e-3 * nll.max(1.0), "{}: question {i} token {j}: nll {} vs {nll}", m.name, got.nll[k]);
                assert!(tied || got.argmax[k] == argmax(row) as u32, "{}: question {i} token {j}: argmax differs but no near tie", m.name);
                decided += usize::from(!tied);
            }
        }
        assert!(decided > qs.len() * n * 9 / 10, "{}: near ties should be rare ({} of {})", m.name, got.near_ties.len(), qs.len());
    }
}
