//! Path patching and edge attribution patching against planted truth: hand-built models in
//! which exactly one edge carries a column's information, a brute-force recomputation of the
//! patched pass, the reference model's gradient hooks against finite differences, and the
//! circuit of a small trained 2-layer model.

use arithlens::analysis::naming::Node;
use arithlens::analysis::nodes::{ablate_nodes, candidate_nodes};
use arithlens::analysis::paths::{
    candidate_edges, circuit, corrupt_pairs, edge_attribution, Circuit, CircuitEdge, CircuitOptions, Corruption, Edge, Input, PathPatcher,
    Scores,
};
use arithlens::eval::predict::teacher_forced;
use arithlens::io::schema::Versioned;
use arithlens::model::{forward, reference, ActFn, Cache, HookPoint, HookTensor, Hooks, ModelConfig, NoHooks, Params, Span, Workspace};
use arithlens::task::{random_questions, Format, Op, Question};
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};
use std::sync::OnceLock;

// ---- Planted models ----
//
// Two-digit addition, Paper 1 format: positions 0 D1, 1 D0, 2 +, 3 D'1, 4 D'0, 5 =, 6 A2,
// 7 A1, 8 A0; A0 is predicted at position 7. Attention-only, no LayerNorm, d_model 64:
// dims 0..12 the token, 12..21 the position, 21..31 a "carrier" (a copied digit), 31..41 a
// distractor subspace nobody reads, 41..51 the output the unembedding reads.

const D: usize = 64;
const DH: usize = 16;
const CARRIER: usize = 21;
const DISTRACT: usize = 31;
const OUT: usize = 41;

fn planted_config() -> ModelConfig {
    ModelConfig {
        n_layers: 2,
        n_heads: 2,
        d_model: D,
        d_head: DH,
        d_mlp: 0,
        d_vocab: 12,
        d_vocab_out: 12,
        n_ctx: 9,
        act_fn: ActFn::Relu,
        normalization_type: None,
        attn_only: true,
        eps: 1e-5,
        seed: 0,
        initializer_range: None,
    }
}

/// Writes `value` at `[row, col]` of head `h`'s slice of a `[head, rows, cols]` tensor.
fn set(p: &mut Params, name: &str, h: usize, row: usize, col: usize, value: f32) {
    let shape = p.layout.entry(name).unwrap().shape.clone();
    let (rows, cols) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    p.get_mut(name).unwrap()[h * rows * cols + row * cols + col] = value;
}

/// Head `h` of layer `l` attends from each query position q to `target(q)` (score `a * k / 4`).
fn attend_by_position(p: &mut Params, l: usize, h: usize, a: f32, k: f32, target: impl Fn(usize) -> usize) {
    for q in 0..9 {
        set(p, &format!("blocks.{l}.attn.W_Q"), h, 12 + q, target(q), a);
        set(p, &format!("blocks.{l}.attn.W_K"), h, 12 + q, q, k);
    }
}

/// Head `h` of layer `l` moves the digit one-hot from dims `from..from + 10` to `to..to + 10`.
fn copy_digits(p: &mut Params, l: usize, h: usize, from: usize, to: usize) {
    for d in 0..10 {
        set(p, &format!("blocks.{l}.attn.W_V"), h, from + d, d, 1.0);
        set(p, &format!("blocks.{l}.attn.W_O"), h, d, to + d, 1.0);
    }
}

fn planted_base() -> Params {
    let mut p = Params::zeros(&planted_config());
    for t in 0..12 {
        p.get_mut("embed.W_E").unwrap()[t * D + t] = 1.0;
    }
    for pos in 0..9 {
        p.get_mut("pos_embed.W_pos").unwrap()[pos * D + 12 + pos] = 1.0;
    }
    // The distractor L0H1 copies D'0 (corrupted with column 0) where nobody reads it.
    attend_by_position(&mut p, 0, 1, 8.0, 8.0, |q| if q >= 4 { 4 } else { 0 });
    copy_digits(&mut p, 0, 1, 0, DISTRACT);
    for d in 0..10 {
        p.get_mut("unembed.W_U").unwrap()[(OUT + d) * 12 + d] = 10.0;
    }
    p
}

fn as_task_model(params: Params) -> TaskModel {
    TaskModel { params, n_digits: 2, format: Format::Paper1, ops: vec![Op::Add], name: "planted".into(), sha256: None }
}

/// Value path: L0H0 at position 3 copies D0 into the carrier; L1H0 at position 7 reads that
/// carrier by its value and writes it out, so the model answers A0 = D0. Every other query
/// attends to the `+` (no digit, nothing copied).
fn planted_value() -> TaskModel {
    let mut p = planted_base();
    let elsewhere = |q: usize| if q >= 2 { 2 } else { 0 };
    attend_by_position(&mut p, 0, 0, 8.0, 8.0, |q| if q == 3 { 1 } else { elsewhere(q) });
    copy_digits(&mut p, 0, 0, 0, CARRIER);
    attend_by_position(&mut p, 1, 0, 8.0, 8.0, |q| if q == 7 { 3 } else { elsewhere(q) });
    copy_digits(&mut p, 1, 0, CARRIER, OUT);
    as_task_model(p)
}

/// Query path: L0H0 at position 7 copies D0 into the carrier there; L1H0's query at 7 reads it
/// and attends to D1 (even D0) or D'1 (odd D0), whose digit it writes out. Its keys are the
/// positions; queries elsewhere are empty (uniform attention).
fn planted_query() -> TaskModel {
    let mut p = planted_base();
    attend_by_position(&mut p, 0, 0, 8.0, 8.0, |q| {
        if q == 7 {
            1
        } else if q >= 2 {
            2
        } else {
            0
        }
    });
    copy_digits(&mut p, 0, 0, 0, CARRIER);
    for d in 0..10 {
        set(&mut p, "blocks.1.attn.W_Q", 0, CARRIER + d, if d % 2 == 0 { 0 } else { 3 }, 2.5);
    }
    for k in 0..9 {
        set(&mut p, "blocks.1.attn.W_K", 0, 12 + k, k, 4.0);
    }
    copy_digits(&mut p, 1, 0, 0, OUT);
    as_task_model(p)
}

/// Questions the planted models answer right at A0: `a0(x, y1)` gives y's units digit.
fn planted_questions(seed: u64, a0: impl Fn(u128, u128) -> u128) -> Vec<Question> {
    random_questions(2, Op::Add, 200, seed)
        .unwrap()
        .into_iter()
        .map(|q| {
            let y1 = q.y / 10;
            Question::new(q.x, y1 * 10 + a0(q.x, y1), Op::Add, 2).unwrap()
        })
        .collect()
}

fn every_head(model: &TaskModel) -> Vec<Node> {
    let c = &model.params.config;
    let mut v = Vec::new();
    for pos in 0..model.n_ctx() {
        for layer in 0..c.n_layers {
            v.extend((0..c.n_heads).map(|h| Node { pos, layer, head: Some(h) }));
        }
    }
    v
}

fn node(s: &str) -> Node {
    Node::parse(s).unwrap()
}

/// The circuit of a planted model has exactly `want` (for A0, from column 0) and nothing else,
/// and edge attribution ranks `want` first.
fn finds_only(model: &TaskModel, qs: &[Question], want: Edge) {
    let nodes = every_head(model);
    let c = circuit(model, qs, &nodes, &CircuitOptions::default(), &mut |_, _| {}).unwrap();
    let found: Vec<(String, String, String)> =
        c.digits.iter().flat_map(|d| d.edges.iter().map(|e| (d.digit.clone(), e.name.clone(), e.corruption.name()))).collect();
    assert_eq!(found, vec![("A0".to_string(), want.name(), "column 0".to_string())], "{c:#?}");
    let e = &c.digits[2].edges[0];
    assert_eq!(e.edge.input, want.input);
    assert!(e.effect.logprob_drop > 1.0 && e.effect.accuracy_drop > 0.3, "{e:#?}");
    assert!(e.effect.classes.iter().all(|k| k.questions > 0), "{e:#?}");
    // Edge attribution over every candidate edge ranks the planted one first.
    let pairs = corrupt_pairs(qs, Corruption::Column { col: 0 }, 5).unwrap();
    let edges = candidate_edges(model, &nodes);
    let eap = edge_attribution(model, &pairs, &edges, 1).unwrap();
    let mut ranked: Vec<(f64, String)> = eap.iter().map(|a| (a.drop[2].abs(), a.name.clone())).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    assert_eq!(ranked[0].1, want.name(), "top edges {:?}", &ranked[..4]);
    assert!(ranked[0].0 > 100.0 * ranked[1].0, "top edges {:?}", &ranked[..4]);
}

#[test]
fn path_patching_finds_the_one_planted_value_edge_and_only_it() {
    let m = planted_value();
    let qs = planted_questions(1, |_, _| 0);
    let want = Edge { sender: node("P3L0H0"), receiver: node("P7L1H0"), input: Input::Value };
    finds_only(&m, &qs, want);
}

#[test]
fn path_patching_finds_the_one_planted_query_edge_and_only_it() {
    let m = planted_query();
    // A0 = D1 when D0 is even, else D'1: y0 = (that digit - D0) mod 10.
    let qs = planted_questions(2, |x, y1| {
        let (d1, d0) = (x / 10, x % 10);
        ((if d0 % 2 == 0 { d1 } else { y1 }) + 10 - d0) % 10
    });
    let want = Edge { sender: node("P7L0H0"), receiver: node("P7L1H0"), input: Input::Query };
    finds_only(&m, &qs, want);
}

// ---- A trained 2-layer model ----

fn trained_l2() -> &'static TaskModel {
    static MODEL: OnceLock<TaskModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let cfg = TrainConfig::preset("tiny_l2").unwrap();
        let mut t = Trainer::new(cfg.clone()).unwrap();
        for _ in 0..cfg.steps {
            t.step().unwrap();
        }
        TaskModel::from_file(t.model_file(), "tiny_l2").unwrap()
    })
}

/// Sets the slice of head `head` (or the whole row) at `pos` of one hook to `rows[b]`, resets
/// head `head`'s `hook_z` elsewhere than `keep` to `clean_z`, and caches everything.
struct BruteHook<'a> {
    point: HookPoint,
    pos: usize,
    head: Option<usize>,
    rows: &'a [f32],
    z_reset: Option<(usize, usize, &'a [f32])>,
    cache: Cache,
}

impl Hooks for BruteHook<'_> {
    fn call(&mut self, point: HookPoint, t: HookTensor) {
        let (n, np) = (t.shape[0], t.shape[1]);
        let feat: usize = t.shape[2..].iter().product();
        if point == self.point {
            let w = self.rows.len() / n;
            for b in 0..n {
                let o = (b * np + self.pos) * feat + self.head.map_or(0, |h| h * w);
                t.data[o..o + w].copy_from_slice(&self.rows[b * w..(b + 1) * w]);
            }
        }
        if let Some((layer, keep, clean)) = self.z_reset {
            if point == HookPoint::Z(layer) {
                let (h, dh) = (self.head.unwrap(), t.shape[3]);
                for b in 0..n {
                    for pos in (0..np).filter(|&p| p != keep) {
                        let o = (b * np + pos) * feat + h * dh;
                        t.data[o..o + dh].copy_from_slice(&clean[o..o + dh]);
                    }
                }
            }
        }
        self.cache.call(point, t);
    }
}

/// Adds `rows[b]` to one hook's row at `pos` and caches everything.
struct AddHook<'a> {
    point: HookPoint,
    pos: usize,
    rows: &'a [f32],
    cache: Cache,
}

impl Hooks for AddHook<'_> {
    fn call(&mut self, point: HookPoint, t: HookTensor) {
        let (n, np, d) = (t.shape[0], t.shape[1], t.shape[2]);
        if point == self.point {
            for b in 0..n {
                let o = (b * np + self.pos) * d;
                t.data[o..o + d].iter_mut().zip(&self.rows[b * d..(b + 1) * d]).for_each(|(a, r)| *a += r);
            }
        }
        self.cache.call(point, t);
    }
}

/// The fast model over token rows with `hooks`: the logits.
fn fast<H: Hooks>(m: &TaskModel, tokens: &[u32], n: usize, hooks: &mut H) -> Vec<f32> {
    let mut ws = Workspace::new(&m.params.config, n, Span::full(m.n_ctx()));
    forward(&m.params, tokens, m.n_ctx(), &mut ws, hooks);
    ws.logits.clone()
}

/// A node's output from a cache: `z_h W_O[h]` or `hook_mlp_out`, at its position.
fn output(m: &TaskModel, cache: &Cache, node: &Node, n: usize) -> Vec<f32> {
    let c = &m.params.config;
    let (t, d, nh, dh) = (m.n_ctx(), c.d_model, c.n_heads, c.d_head);
    let mut out = vec![0.0f32; n * d];
    for b in 0..n {
        let row = &mut out[b * d..(b + 1) * d];
        match node.head {
            Some(h) => {
                let z = &cache.get(&HookPoint::Z(node.layer).name()).unwrap().data[((b * t + node.pos) * nh + h) * dh..][..dh];
                let w_o = m.params.get(&format!("blocks.{}.attn.W_O", node.layer)).unwrap();
                for (k, zk) in z.iter().enumerate() {
                    row.iter_mut().zip(&w_o[(h * dh + k) * d..(h * dh + k + 1) * d]).for_each(|(r, w)| *r += zk * w);
                }
            }
            None => row.copy_from_slice(&cache.get(&HookPoint::MlpOut(node.layer).name()).unwrap().data[(b * t + node.pos) * d..][..d]),
        }
    }
    out
}

/// The right token's log probability, and its logit less the mean logit, at each answer
/// position from logits `[n, t, v]`.
fn logprobs(m: &TaskModel, logits: &[f32], tokens: &[u32], n: usize) -> (Vec<f64>, Vec<f64>) {
    let (t, v) = (m.n_ctx(), m.params.config.d_vocab_out);
    let (mut out, mut centred) = (Vec::new(), Vec::new());
    for b in 0..n {
        for i in 0..m.n_answer() {
            let p = m.answer_start() - 1 + i;
            let row = &logits[(b * t + p) * v..(b * t + p + 1) * v];
            let max = row.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x as f64));
            let lse = max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
            let right = row[tokens[b * t + p + 1] as usize] as f64;
            out.push(right - lse);
            centred.push(right - row.iter().map(|&x| x as f64).sum::<f64>() / v as f64);
        }
    }
    (out, centred)
}

/// By hand, on the fast model: the sender's corrupted-less-clean output added to the clean
/// residual stream the receiver reads, the receiver's input read from that pass, then put in
/// place of the clean one (a key or value path reset elsewhere than the receiver's position).
fn brute_force(m: &TaskModel, clean_tok: &[u32], corrupt_tok: &[u32], n: usize, e: &Edge) -> (Vec<f64>, Vec<f64>) {
    let mut clean = Cache::default();
    fast(m, clean_tok, n, &mut clean);
    let mut corrupt = Cache::default();
    fast(m, corrupt_tok, n, &mut corrupt);
    let delta: Vec<f32> = output(m, &corrupt, &e.sender, n).iter().zip(output(m, &clean, &e.sender, n)).map(|(a, b)| a - b).collect();
    let l = e.receiver.layer;
    let (resid, point, pos) = match e.input {
        Input::Query => (HookPoint::ResidPre(l), HookPoint::Q(l), e.receiver.pos),
        Input::Key => (HookPoint::ResidPre(l), HookPoint::K(l), e.sender.pos),
        Input::Value => (HookPoint::ResidPre(l), HookPoint::V(l), e.sender.pos),
        Input::Mlp => (HookPoint::ResidMid(l), HookPoint::MlpPre(l), e.receiver.pos),
    };
    let mut add = AddHook { point: resid, pos, rows: &delta, cache: Cache::default() };
    fast(m, clean_tok, n, &mut add);
    let src = &add.cache.get(&point.name()).unwrap();
    let (t, feat) = (m.n_ctx(), src.shape[2..].iter().product::<usize>());
    let w = e.receiver.head.map_or(feat, |_| m.params.config.d_head);
    let off = e.receiver.head.map_or(0, |h| h * w);
    let rows: Vec<f32> = (0..n).flat_map(|b| src.data[(b * t + pos) * feat + off..][..w].iter().copied()).collect();
    let clean_z = clean.get(&HookPoint::Z(l).name()).unwrap().data.clone();
    let reset = matches!(e.input, Input::Key | Input::Value).then_some((l, e.receiver.pos, clean_z.as_slice()));
    let mut hook = BruteHook { point, pos, head: e.receiver.head, rows: &rows, z_reset: reset, cache: Cache::default() };
    let logits = fast(m, clean_tok, n, &mut hook);
    logprobs(m, &logits, clean_tok, n)
}

#[test]
fn the_path_patched_pass_equals_a_brute_force_recomputation_for_every_input_kind() {
    let m = trained_l2();
    let (nodes, _) = trained_circuit();
    let qs = random_questions(2, Op::Add, 64, 7).unwrap();
    let pairs = corrupt_pairs(&qs, Corruption::Column { col: 0 }, 3).unwrap();
    let (ct, kt) = pairs.tokens(m).unwrap();
    let patcher = PathPatcher::new(m, &pairs).unwrap();
    let clean = &patcher.clean_scores().logit;
    let moved = |got: &[f64]| got.iter().zip(clean).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let edges = candidate_edges(m, nodes);
    for input in [Input::Query, Input::Key, Input::Value, Input::Mlp] {
        // The edge of this kind whose patch moves the answers most (so the check is not vacuous).
        let runs: Vec<(Edge, Scores)> = edges.iter().filter(|e| e.input == input).map(|e| (*e, patcher.run(e).unwrap().scores)).collect();
        let (e, got) = runs.into_iter().max_by(|a, b| moved(&a.1.logit).total_cmp(&moved(&b.1.logit))).expect("an edge of each kind");
        assert!(moved(&got.logit) > 1e-2, "{}: the patch should change something (max {})", e.name(), moved(&got.logit));
        let (want_lp, want_logit) = brute_force(m, &ct, &kt, qs.len(), &e);
        for (what, g, w) in [("log probability", &got.logprob, &want_lp), ("centred logit", &got.logit, &want_logit)] {
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert!((g - w).abs() < 1e-3 * w.abs().max(1.0), "{} {what} [{i}]: path patching {g}, brute force {w}", e.name());
            }
        }
    }
}

/// Adds `eps` to one element of one activation.
struct Nudge {
    point: HookPoint,
    index: usize,
    eps: f32,
}

impl Hooks for Nudge {
    fn call(&mut self, point: HookPoint, t: HookTensor) {
        if point == self.point {
            t.data[self.index] += self.eps;
        }
    }
}

#[test]
fn gradient_hooks_see_the_activation_gradients_and_leave_the_parameter_gradients_alone() {
    let m = trained_l2();
    let (n, t) = (8, m.n_ctx());
    let tokens: Vec<u32> = random_questions(2, Op::Add, n, 9).unwrap().iter().flat_map(|q| q.tokens(m.format).unwrap()).collect();
    let p = &m.params;
    let (first, na, v) = (m.answer_start() - 1, m.n_answer(), p.config.d_vocab_out);
    let acts = reference::forward(p, &tokens, n, t, &mut NoHooks);
    let (_, dlogits) = reference::loss(&acts, v, first, na);
    let plain = reference::backward(p, &acts, &dlogits);
    let mut grads = Cache::default();
    let hooked = reference::backward_hooked(p, &acts, &dlogits, &mut grads);
    assert_eq!(plain, hooked, "watching the gradients changes no parameter gradient");
    let loss_with = |nudge: &mut Nudge| {
        let a = reference::forward(p, &tokens, n, t, nudge);
        reference::loss(&a, v, first, na).0
    };
    for point in [
        HookPoint::Q(1),
        HookPoint::K(0),
        HookPoint::V(1),
        HookPoint::Z(0),
        HookPoint::MlpPre(1),
        HookPoint::ResidMid(0),
        HookPoint::ResidPre(1),
    ] {
        let g = &grads.get(&point.name()).unwrap_or_else(|| panic!("no gradient at {}", point.name())).data;
        // The largest gradient element, checked by central differences.
        let index = (0..g.len()).max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs())).unwrap();
        let eps = 1e-2;
        let up = loss_with(&mut Nudge { point, index, eps });
        let down = loss_with(&mut Nudge { point, index, eps: -eps });
        let numeric = (up - down) / (2.0 * eps as f64);
        assert!(
            (numeric - g[index] as f64).abs() < 0.05 * g[index].abs() as f64 + 1e-6,
            "{}: hook {} numeric {numeric}",
            point.name(),
            g[index]
        );
    }
}

// ---- The circuit of a trained 2-layer model ----

fn useful_nodes(m: &TaskModel, qs: &[Question]) -> Vec<Node> {
    let clean = teacher_forced(m, qs, 256);
    let all: Vec<usize> = (0..m.n_ctx()).collect();
    let cands = candidate_nodes(m, &all);
    ablate_nodes(m, qs, &clean, &cands, 0.02, 256, &mut |_, _| {}).into_iter().filter(|a| a.useful).map(|a| a.node).collect()
}

fn trained_circuit() -> &'static (Vec<Node>, Circuit) {
    static C: OnceLock<(Vec<Node>, Circuit)> = OnceLock::new();
    C.get_or_init(|| {
        let m = trained_l2();
        let qs = random_questions(2, Op::Add, 300, 21).unwrap();
        let nodes = useful_nodes(m, &qs);
        let c = circuit(m, &qs, &nodes, &CircuitOptions::default(), &mut |_, _| {}).unwrap();
        (nodes, c)
    })
}

/// The circuit, one edge a line, for failure messages.
fn describe(c: &Circuit) -> String {
    let mut out = String::new();
    for d in &c.digits {
        out += &format!("{} (predicted at {}):\n", d.digit, d.position);
        for e in &d.edges {
            let classes: Vec<String> = e.effect.classes.iter().map(|k| format!("{} {:.2}", k.class, k.logprob_drop)).collect();
            out += &format!(
                "  {} [{}] drop {:.3} of {:.3} (se {:.3}), accuracy -{:.3}, EAP {:.3} (logit {:.3}), by class: {}\n",
                e.name,
                e.corruption.name(),
                e.effect.logprob_drop,
                e.effect.total_logprob_drop,
                e.effect.logprob_se,
                e.effect.accuracy_drop,
                e.eap_drop,
                e.effect.logit_drop,
                classes.join(", ")
            );
        }
    }
    for k in &c.checks {
        out += &format!("{}: {} edges tested, {:?}\n", k.corruption.name(), k.tested, k.agreement);
    }
    out
}

#[test]
fn the_trained_circuit_carries_the_carry_of_column_0_from_layer_0_to_layer_1() {
    let (_, c) = trained_circuit();
    // A layer-0 node passing column 0's information to a layer-1 node, for A1 (the carry into
    // column 1) or A2 (the carry out of it), acting on questions with a carry (S1, S2) more than
    // on those without (S0).
    let drop_on = |e: &CircuitEdge, class: &str| e.effect.classes.iter().find(|k| k.class == class).map_or(0.0, |k| k.logprob_drop);
    let carry = c
        .digits
        .iter()
        .filter(|d| d.digit == "A1" || d.digit == "A2")
        .flat_map(|d| &d.edges)
        .filter(|e| e.edge.sender.layer == 0 && e.edge.receiver.layer == 1 && e.corruption == Corruption::Column { col: 0 })
        .any(|e| drop_on(e, "S1").max(drop_on(e, "S2")) > drop_on(e, "S0"));
    assert!(carry, "no layer-0 -> layer-1 edge carries column 0's carry:\n{}", describe(c));
    // A0 is column 0's base sum: nothing of column 1 reaches it, and its circuit is not empty.
    let a0 = c.digits.iter().find(|d| d.digit == "A0").unwrap();
    assert!(!a0.edges.is_empty() && a0.edges.iter().all(|e| e.corruption == Corruption::Column { col: 0 }), "{}", describe(c));
    // Every kept edge passes the options' test.
    assert!(c.digits.iter().flat_map(|d| &d.edges).all(|e| c.options.significant(&e.effect)));
}

#[test]
fn edge_attribution_agrees_with_path_patching_on_the_top_edges_of_the_trained_model() {
    let (_, c) = trained_circuit();
    // Every candidate edge was path-patched; edge attribution (4 integrated-gradient steps)
    // finds most of the ten largest and ranks all of them in the same direction.
    let col0 = &c.checks[0];
    assert_eq!(col0.tested, c.candidates);
    assert!(col0.agreement.shared_top_k >= 5 && col0.agreement.spearman > 0.2, "{}", describe(c));
}

// ---- The circuit stage of a whole analysis ----

#[test]
fn the_analysis_stage_records_the_circuit_with_the_carry_edge_of_tiny_l2() {
    let m = trained_l2();
    // 200 questions per column (the default is 100): the carry edge acts on S1 questions only, a
    // third of the set, and needs that many to clear 3 standard errors.
    let opts = arithlens::analysis::AnalyzeOptions { circuit_questions: 200, ..Default::default() };
    let a = arithlens::analysis::analyze(m, None, &opts);
    let c = a.circuit.as_ref().expect("the circuit stage ran");
    assert_eq!(c.note, None, "two layers: nothing to explain");
    assert!(c.checks.iter().all(|k| k.tested == 24.min(c.candidates)), "capped by EAP ranking: {}", describe(c));
    // Column 0's carry reaches A1 through the layer-0 MLP at A1's position into the layer-1 MLP
    // there, and only on questions whose carry comes from column 0 (S1), not on S0 or S2.
    let a1 = c.digits.iter().find(|d| d.digit == "A1").unwrap();
    let carry = a1
        .edges
        .iter()
        .find(|e| e.name == "P6L0M -> P6L1M.in" && e.corruption == Corruption::Column { col: 0 })
        .unwrap_or_else(|| panic!("no carry edge:\n{}", describe(c)));
    let on = |class: &str| carry.effect.classes.iter().find(|k| k.class == class).map_or(0.0, |k| k.logprob_drop);
    assert!(on("S1") > 0.5 && on("S0").abs() < 0.1 && on("S2").abs() < 0.1, "{}", describe(c));
    // The algorithm names the edges and follows their reach; the summary shows the circuit.
    let alg = a.algorithm.iter().find(|d| d.digit == "A1").unwrap();
    assert!(alg.circuit_columns.contains(&0) && alg.reach() == Some(1), "{alg:?}");
    assert!(alg.line().contains("; paths: ") && alg.line().contains(" (column 1, "), "{}", alg.line());
    let text = arithlens::analysis::summary(&a);
    assert!(text.contains("[circuit] path patching between the useful nodes") && text.contains("  A1: P6L0H"), "{text}");
    // It survives analysis.json.
    let path = std::env::temp_dir().join(format!("arithlens-circuit-{}.json", std::process::id()));
    a.save(&path).unwrap();
    let back = arithlens::analysis::Analysis::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let names = |c: &Circuit| c.digits.iter().flat_map(|d| d.edges.iter().map(|e| e.name.clone())).collect::<Vec<_>>();
    assert_eq!(names(back.circuit.as_ref().unwrap()), names(c));
}

#[test]
fn a_circuit_without_edges_says_why_and_none_is_measured_when_skipped() {
    let m = trained_l2();
    let qs = random_questions(2, Op::Add, 20, 3).unwrap();
    let lone = [Node::parse("P6L1M").unwrap()];
    let c = arithlens::analysis::paths::circuit_among(m, &qs, &lone, &CircuitOptions::default(), &mut |_, _| {});
    assert_eq!((c.candidates, c.digits.len()), (0, 0));
    assert_eq!(c.note.as_deref(), Some("no edges among the 1 useful nodes"));
    assert_eq!(c.lines(), ["note: no edges among the 1 useful nodes"]);
    let opts = arithlens::analysis::AnalyzeOptions { questions: 100, pairs: 5, siblings: 0, circuit_questions: 0, ..Default::default() };
    let a = arithlens::analysis::analyze(m, None, &opts);
    assert_eq!(a.circuit, None);
    assert!(!arithlens::analysis::summary(&a).contains("[circuit]"));
    let bad = arithlens::analysis::AnalyzeOptions { eap_steps: 0, ..Default::default() };
    assert!(bad.validate().unwrap_err().to_string().contains("--eap-steps 0 is out of range"));
}

#[test]
fn a_circuit_class_draws_every_circuit_question_from_that_class_and_a_foreign_class_is_refused() {
    let m = trained_l2();
    let opts = arithlens::analysis::AnalyzeOptions { circuit_questions: 100, circuit_class: Some("s2".into()), ..Default::default() };
    assert_eq!(opts.circuit_class_for(m).unwrap().map(|c| c.to_string()).as_deref(), Some("S2"));
    let a = arithlens::analysis::analyze(m, None, &opts);
    let c = a.circuit.as_ref().expect("the circuit stage ran");
    assert_eq!(c.questions, 100);
    // Every effect is measured on S2 questions alone (a carry from column 0 cascading through a
    // sum-9 column 1 into A2), and column 0's carry has a path into the answer there.
    let edges: Vec<_> = c.digits.iter().flat_map(|d| &d.edges).collect();
    assert!(edges.iter().all(|e| e.effect.classes.iter().all(|k| k.class == "S2")), "{}", describe(c));
    assert!(edges.iter().any(|e| e.corruption == Corruption::Column { col: 0 }), "{}", describe(c));
    // The option is recorded (and absent when unset, so older analyses keep their provenance).
    let json = serde_json::to_value(&a.options).unwrap();
    assert_eq!(json["circuit_class"], "s2");
    assert!(serde_json::to_value(arithlens::analysis::AnalyzeOptions::default()).unwrap().get("circuit_class").is_none());
    // A class the model has no questions of is refused, naming the model's classes.
    for (name, says) in [("S3", "is not a class of this 2-digit model"), ("M1", "its classes are S0, S1, S2"), ("Q1", "unknown class 'Q1'")]
    {
        let bad = arithlens::analysis::AnalyzeOptions { circuit_class: Some(name.into()), ..Default::default() };
        let err = bad.circuit_class_for(m).unwrap_err();
        assert!(err.contains(says) && err.contains("S0, S1, S2"), "{name}: {err}");
    }
    // A library caller that passes one anyway gets the usual mix, and the circuit says so.
    let foreign = arithlens::analysis::AnalyzeOptions { circuit_questions: 20, circuit_class: Some("S3".into()), ..Default::default() };
    let a = arithlens::analysis::analyze(m, None, &foreign);
    let note = a.circuit.as_ref().and_then(|c| c.note.clone()).unwrap_or_default();
    assert!(
        note.contains("circuit class S3 is not a class of this 2-digit model") && note.contains("the ablation set's mix was used"),
        "{note}"
    );
}
