//! The forward pass (every hook), loss, backward pass and one AdamW step against golden
//! fixtures made with real TransformerLens 2.18 (tests/fixtures/transformer_lens, copied from the TransformerLens scripts there).

use arithlens::io::tensors::{self, Tensor, TensorFile};
use arithlens::model::file::ModelFile;
use arithlens::model::{backward, forward, loss, Cache, NoHooks, Params, Span, Targets, Workspace};
use arithlens::train::optim::{AdamW, AdamWConfig};
use std::path::PathBuf;

const FIXTURES: [&str; 3] = ["add_d3_l2_ln_relu", "sub_d2_l1_noln_gelu", "add_d2_l1_attnonly"];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transformer_lens")
}

struct Fixture {
    params: Params,
    io: TensorFile,
    tokens: Vec<u32>,
    batch: usize,
    n_ctx: usize,
    targets: Targets,
}

fn load(name: &str) -> Fixture {
    let model = ModelFile::load(&dir().join(format!("{name}.model.safetensors"))).unwrap();
    let io = tensors::load(&dir().join(format!("{name}.io.safetensors"))).unwrap();
    let tok = &io.tensors["tokens"];
    let (batch, n_ctx) = (tok.shape[0], tok.shape[1]);
    let tokens = tok.data.iter().map(|&v| v as u32).collect();
    let n = io.tensors["loss_per_digit"].data.len();
    let targets = Targets { first: n_ctx - n - 1, n };
    Fixture { params: model.params, io, tokens, batch, n_ctx, targets }
}

/// Asserts `got` matches `want` within `rtol` of the tensor's largest magnitude (float32 noise).
fn assert_close(name: &str, got: &[f32], want: &Tensor, rtol: f32) {
    assert_eq!(got.len(), want.data.len(), "{name}: length");
    let scale = want.data.iter().filter(|v| v.is_finite()).fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (g, w)) in got.iter().zip(&want.data).enumerate() {
        let ok = if w.is_finite() { (g - w).abs() <= rtol * scale } else { g == w };
        assert!(ok, "{name}[{i}]: got {g}, TransformerLens {w} (scale {scale})");
    }
}

#[test]
fn parameters_have_transformer_lens_names_and_shapes() {
    for name in FIXTURES {
        let f = load(name);
        let grads: Vec<&String> = f.io.tensors.keys().filter(|k| k.starts_with("grad.")).collect();
        assert_eq!(grads.len(), f.params.layout.entries.len(), "{name}: parameter count");
        for e in &f.params.layout.entries {
            assert_eq!(f.io.tensors[&format!("grad.{}", e.name)].shape, e.shape, "{name}: {}", e.name);
        }
    }
}

#[test]
fn forward_matches_every_hook_and_the_logits() {
    for name in FIXTURES {
        let f = load(name);
        let c = &f.params.config;
        let mut ws = Workspace::new(c, f.batch, Span::full(f.n_ctx));
        let mut cache = Cache::default();
        forward(&f.params, &f.tokens, f.n_ctx, &mut ws, &mut cache);
        let want: Vec<&String> = f.io.tensors.keys().filter(|k| k.starts_with("cache.")).collect();
        let got: Vec<String> = cache.tensors.keys().map(|k| format!("cache.{k}")).collect();
        assert_eq!(got.iter().collect::<Vec<_>>(), want, "{name}: hook names");
        for (k, t) in &cache.tensors {
            let w = &f.io.tensors[&format!("cache.{k}")];
            assert_eq!(t.shape, w.shape, "{name}: {k} shape");
            assert_close(&format!("{name}: {k}"), &t.data, w, 2e-5);
        }
        assert_close(&format!("{name}: logits"), &ws.logits, &f.io.tensors["logits"], 2e-5);
    }
}

fn check_grads(name: &str, params: &Params, grad: &[f32], io: &TensorFile) {
    for e in &params.layout.entries {
        assert_close(&format!("{name}: grad {}", e.name), &grad[e.range.clone()], &io.tensors[&format!("grad.{}", e.name)], 2e-4);
    }
}

#[test]
fn loss_and_gradients_match_over_the_full_and_the_answer_only_span() {
    for name in FIXTURES {
        let f = load(name);
        let c = &f.params.config;
        let spans = [Span::full(f.n_ctx), Span::predictions(f.targets.first, f.targets.n)];
        for span in spans {
            let mut ws = Workspace::new(c, f.batch, span);
            forward(&f.params, &f.tokens, f.n_ctx, &mut ws, &mut NoHooks);
            let mut nll = vec![0.0; f.batch * f.targets.n];
            let l = loss(&mut ws, &f.tokens, f.n_ctx, c.d_vocab_out, &f.targets, &mut nll, true);
            let want = f.io.tensors["loss"].data[0] as f64;
            assert!((l - want).abs() < 1e-5 * want.max(1.0), "{name} {span:?}: loss {l} vs {want}");
            for (d, w) in f.io.tensors["loss_per_digit"].data.iter().enumerate() {
                let got = (0..f.batch).map(|b| nll[b * f.targets.n + d]).sum::<f64>() / f.batch as f64;
                assert!((got - *w as f64).abs() < 1e-5, "{name}: digit {d} loss {got} vs {w}");
            }
            let mut grad = vec![0.0; f.params.data.len()];
            backward(&f.params, &f.tokens, f.n_ctx, &mut ws, &mut grad);
            check_grads(&format!("{name} {span:?}"), &f.params, &grad, &f.io);
        }
    }
}

#[test]
fn one_adamw_step_matches_torch() {
    for name in FIXTURES {
        let f = load(name);
        let mut grad = vec![0.0; f.params.data.len()];
        for e in &f.params.layout.entries {
            grad[e.range.clone()].copy_from_slice(&f.io.tensors[&format!("grad.{}", e.name)].data);
        }
        let cfg = AdamWConfig { lr: 1e-3, betas: (0.9, 0.98), eps: 1e-8, weight_decay: 0.1 };
        let mut opt = AdamW::new(cfg, grad.len());
        let mut p = f.params.clone();
        opt.step(&mut p.data, &grad, 1e-3);
        for e in &p.layout.entries {
            assert_close(&format!("{name}: adamw {}", e.name), &p.data[e.range.clone()], &f.io.tensors[&format!("adamw.{}", e.name)], 1e-5);
        }
    }
}

/// The reference model (`model::reference`, the readable specification) against TransformerLens
/// directly: every hook, the logits, the loss and every gradient.
#[test]
fn the_reference_model_matches_every_hook_the_loss_and_the_gradients() {
    use arithlens::model::reference;
    for name in FIXTURES {
        let f = load(name);
        let mut cache = Cache::default();
        let acts = reference::forward(&f.params, &f.tokens, f.batch, f.n_ctx, &mut cache);
        for (k, t) in &cache.tensors {
            let w = &f.io.tensors[&format!("cache.{k}")];
            assert_eq!(t.shape, w.shape, "{name}: {k} shape");
            assert_close(&format!("{name} reference: {k}"), &t.data, w, 2e-5);
        }
        let want: Vec<&String> = f.io.tensors.keys().filter(|k| k.starts_with("cache.")).collect();
        assert_eq!(cache.tensors.len(), want.len(), "{name}: every hook fires");
        assert_close(&format!("{name} reference: logits"), &acts.logits, &f.io.tensors["logits"], 2e-5);
        let (l, dlogits) = reference::loss(&acts, f.params.config.d_vocab_out, f.targets.first, f.targets.n);
        let want = f.io.tensors["loss"].data[0] as f64;
        assert!((l - want).abs() < 1e-5 * want.max(1.0), "{name}: loss {l} vs {want}");
        let grads = reference::backward(&f.params, &acts, &dlogits);
        assert_eq!(grads.len(), f.params.layout.entries.len(), "{name}: a gradient for every parameter");
        for e in &f.params.layout.entries {
            assert_close(&format!("{name} reference: grad {}", e.name), &grads[&e.name], &f.io.tensors[&format!("grad.{}", e.name)], 2e-4);
        }
    }
}
