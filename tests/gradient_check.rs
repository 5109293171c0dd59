//! Finite-difference check of the hand-written backward pass on small configs, independent of
//! the TransformerLens fixtures (covers gelu with LN, and the answer-only span of 2 layers).

use arithlens::model::{backward, forward, loss, ActFn, ModelConfig, NoHooks, Norm, Params, Span, Targets, Workspace};

fn config(act_fn: ActFn, ln: bool, n_layers: usize) -> ModelConfig {
    ModelConfig {
        n_layers,
        n_heads: 2,
        d_model: 12,
        d_head: 5,
        d_mlp: 20,
        d_vocab: 7,
        d_vocab_out: 7,
        n_ctx: 8,
        act_fn,
        normalization_type: ln.then_some(Norm::LN),
        attn_only: false,
        eps: 1e-5,
        seed: 5,
        initializer_range: Some(0.5),
    }
}

fn loss_at(p: &Params, tokens: &[u32], span: Span, t: &Targets) -> f64 {
    let mut ws = Workspace::new(&p.config, 3, span);
    forward(p, tokens, 8, &mut ws, &mut NoHooks);
    let mut nll = vec![0.0; 3 * t.n];
    loss(&mut ws, tokens, 8, 7, t, &mut nll, false)
}

#[test]
fn backward_matches_finite_differences() {
    let tokens: Vec<u32> = (0..24).map(|i| ((i * 5 + 3) % 7) as u32).collect();
    let t = Targets { first: 4, n: 3 };
    for (act, ln, layers) in [(ActFn::Gelu, true, 2), (ActFn::Relu, false, 1), (ActFn::Gelu, false, 2)] {
        let p = Params::init(&config(act, ln, layers));
        let span = Span::predictions(t.first, t.n);
        let mut ws = Workspace::new(&p.config, 3, span);
        forward(&p, &tokens, 8, &mut ws, &mut NoHooks);
        let mut nll = vec![0.0; 9];
        loss(&mut ws, &tokens, 8, 7, &t, &mut nll, true);
        let mut grad = vec![0.0; p.data.len()];
        backward(&p, &tokens, 8, &mut ws, &mut grad);
        let mut checked = 0;
        for e in &p.layout.entries {
            for i in (e.range.start..e.range.end).step_by(e.range.len() / 3 + 1) {
                let h = 1e-2f32;
                let mut plus = p.clone();
                plus.data[i] += h;
                let mut minus = p.clone();
                minus.data[i] -= h;
                let fd = (loss_at(&plus, &tokens, span, &t) - loss_at(&minus, &tokens, span, &t)) / (2.0 * h as f64);
                let g = grad[i] as f64;
                assert!(
                    (fd - g).abs() <= 2e-3 + 2e-2 * g.abs(),
                    "{act:?} ln={ln} {}[{}]: backward {g}, finite difference {fd}",
                    e.name,
                    i - e.range.start
                );
                checked += 1;
            }
        }
        assert!(checked > 40);
    }
}
