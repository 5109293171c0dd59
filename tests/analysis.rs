//! The analyses against planted ground truth on small models trained in the test.

use arithlens::analysis::intervene::{
    cache_activation, full_cache, mean_activations, predict, predict_from, Intervention, Interventions, Prefix, Units,
};
use arithlens::analysis::naming::{answer_names, Node};
use arithlens::analysis::subtasks::{pairs, Kind, SubTask};
use arithlens::analysis::{analyze, nodes, positions, summary, symbolic, Analysis, AnalyzeOptions};
use arithlens::eval::predict::{teacher_forced_transformer as teacher_forced, Predictions};
use arithlens::model::{forward, HookPoint, Span, Workspace};
use arithlens::progress::{ignore, Stop};
use arithlens::task::Columns;
use arithlens::task::{all_questions, random_questions, stratified_set, Class, Format, Op, Question};
use arithlens::task_model::TaskModel;
use arithlens::train::log::TrainingLog;
use arithlens::train::{TrainConfig, Trainer};
use std::sync::OnceLock;

/// The tiny preset (2-digit addition, 1 layer), trained once per test binary.
fn tiny() -> &'static (TaskModel, TrainingLog) {
    static M: OnceLock<(TaskModel, TrainingLog)> = OnceLock::new();
    M.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("arithlens-analysis-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut t = Trainer::new(TrainConfig::preset("tiny").unwrap()).unwrap();
        t.train(&dir, &Stop::new(), &mut ignore).unwrap();
        let m = TaskModel::load(&dir).unwrap();
        let log = t.log.clone();
        std::fs::remove_dir_all(&dir).unwrap();
        (m, log)
    })
}

fn tiny_analysis() -> &'static Analysis {
    static A: OnceLock<Analysis> = OnceLock::new();
    A.get_or_init(|| {
        let (m, log) = tiny();
        analyze(m, Some(log), &AnalyzeOptions { questions: 600, ..Default::default() })
    })
}

fn qs(n: usize, seed: u64) -> Vec<Question> {
    random_questions(2, Op::Add, n, seed).unwrap()
}

#[test]
fn identity_interventions_change_nothing() {
    let (m, _) = tiny();
    let q = qs(300, 1);
    let clean = teacher_forced(m, &q, 128);
    for point in [HookPoint::ResidPre(0), HookPoint::Z(0), HookPoint::MlpPost(0), HookPoint::ResidPost(0)] {
        // Each question patched with its own activation (mean over a reference of itself).
        let own = cache_activation(m, &q, point, 0, m.n_ctx(), 128);
        let mut ivs = Interventions::new(vec![Intervention::patch(point, None, Units::All, own)]);
        let p = predict(m, &q, &mut ivs, 128);
        assert_eq!(p.argmax, clean.argmax, "{}", point.name());
        assert!(p.nll.iter().zip(&clean.nll).all(|(a, b)| (a - b).abs() < 1e-9), "{}", point.name());
        let mut one = Interventions::new(vec![Intervention::scale(point, None, Units::All, 1.0)]);
        assert_eq!(predict(m, &q, &mut one, 77).nll, clean.nll, "scale 1 at {}", point.name());
    }
    // A mean over a one-question reference is that question's activation.
    let single = &q[..1];
    let mean = arithlens::analysis::intervene::mean_activations(m, single, &[HookPoint::Z(0)], 8).remove(0);
    let mut ivs = Interventions::new(vec![Intervention::mean(HookPoint::Z(0), None, Units::Heads(vec![0, 1, 2]), mean)]);
    assert_eq!(predict(m, single, &mut ivs, 8).nll, teacher_forced(m, single, 8).nll);
}

#[test]
fn answer_span_runs_equal_full_runs_under_interventions() {
    let (m, _) = tiny();
    let q = qs(64, 2);
    let c = &m.params.config;
    for (point, pos, units) in [
        (HookPoint::Z(0), 5, Units::Heads(vec![1])),
        (HookPoint::MlpPost(0), 6, Units::Neurons(vec![3, 7, 100])),
        (HookPoint::ResidPre(0), 1, Units::All),
    ] {
        let iv = Intervention::zero(point, Some(vec![pos]), units);
        let p = predict(m, &q, &mut Interventions::new(vec![iv.clone()]), 64);
        let mut ws = Workspace::new(c, q.len(), Span::full(m.n_ctx()));
        let mut tokens = vec![0u32; q.len() * c.n_ctx];
        for (qq, row) in q.iter().zip(tokens.chunks_exact_mut(c.n_ctx)) {
            qq.write_tokens(m.format, &mut row[..m.n_ctx()]);
        }
        forward(&m.params, &tokens, c.n_ctx, &mut ws, &mut Interventions::new(vec![iv]));
        let v = c.d_vocab_out;
        for (i, _) in q.iter().enumerate() {
            for d in 0..m.n_answer() {
                let r = (i * m.n_ctx() + m.answer_start() - 1 + d) * v;
                let want = arithlens::eval::predict::argmax(&ws.logits[r..r + v]) as u32;
                assert_eq!(p.argmax[i * m.n_answer() + d], want, "{} question {i} digit {d}", point.name());
            }
        }
    }
}

/// An untrained 3-layer mixed model: enough to check that passes agree, no training needed.
fn three_layers() -> TaskModel {
    let mut cfg = TrainConfig::preset("tiny_mix").unwrap();
    cfg.model.n_layers = 3;
    TaskModel::from_file(Trainer::new(cfg).unwrap().model_file(), "test").unwrap()
}

#[test]
fn passes_started_from_a_prefix_equal_full_passes_and_caches_stop_early_without_changing_values() {
    let m = three_layers();
    let q: Vec<Question> = random_questions(2, Op::Sub, 90, 5).unwrap();
    let prefix = Prefix::new(&m, &q, 32);
    let means = mean_activations(&m, &q, &[HookPoint::Z(1), HookPoint::MlpPost(2)], 32);
    let cases = [
        vec![Intervention::zero(HookPoint::Z(1), Some(vec![6]), Units::Heads(vec![0, 2]))],
        vec![Intervention::mean(HookPoint::MlpPost(2), Some(vec![7]), Units::All, means[1].clone())],
        vec![
            Intervention::scale(HookPoint::ResidPre(2), Some(vec![5, 6]), Units::All, 0.5),
            Intervention::mean(HookPoint::Z(1), None, Units::Heads(vec![1]), means[0].clone()),
        ],
        vec![Intervention::zero(HookPoint::ResidPre(0), Some(vec![2]), Units::All)],
        // Late positions in early blocks: those blocks compute only the rows from there on.
        vec![Intervention::zero(HookPoint::Z(0), Some(vec![7]), Units::Heads(vec![1]))],
        vec![Intervention::scale(HookPoint::MlpOut(1), Some(vec![8]), Units::All, -1.0)],
        vec![
            Intervention::zero(HookPoint::K(1), Some(vec![6]), Units::All),
            Intervention::scale(HookPoint::ResidPost(0), Some(vec![9, 7]), Units::All, 2.0),
        ],
        vec![],
    ];
    let clean = predict(&m, &q, &mut Interventions::default(), 32);
    for list in cases {
        let full = predict(&m, &q, &mut Interventions::new(list.clone()), 32);
        let mut ivs = Interventions::new(list.clone());
        let first = ivs.first_block(3);
        let from = predict_from(&m, &q, &prefix, &mut ivs, 32);
        assert_eq!(from.argmax, full.argmax, "starting at block {first}");
        assert!(from.nll.iter().zip(&full.nll).all(|(a, b)| (a - b).abs() < 1e-6), "starting at block {first}");
        // Each intervention but the empty set changes some loss: the check is not vacuous.
        assert_eq!(list.is_empty(), full.nll == clean.nll, "{list:?}");
    }
    // A cache stops after its hook's block and holds the full pass's values.
    let z1 = cache_activation(&m, &q, HookPoint::Z(1), 4, 3, 32);
    let whole = full_cache(&m, &q, &["blocks.1.attn.hook_z"]);
    let t = whole.get("blocks.1.attn.hook_z").unwrap();
    let feat = z1.feat;
    for (i, _) in q.iter().enumerate() {
        for p in 4..7 {
            let want = &t.data[(i * m.n_ctx() + p) * feat..(i * m.n_ctx() + p + 1) * feat];
            let got = z1.at(i, p).unwrap();
            assert!(got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5), "question {i} position {p}");
        }
    }
}

#[test]
fn zero_ablating_heads_from_equals_breaks_answers_and_before_changes_nothing() {
    let (m, _) = tiny();
    let q = qs(400, 3);
    let clean = teacher_forced(m, &q, 200);
    let heads = Units::Heads(vec![0, 1, 2]);
    let after: Vec<usize> = (m.answer_start() - 1..m.n_ctx()).collect();
    let mut ivs = Interventions::new(vec![Intervention::zero(HookPoint::Z(0), Some(after), heads.clone())]);
    let broken = predict(m, &q, &mut ivs, 200);
    let (fail, _) = positions::rates(&arithlens::analysis::intervene::changed(&clean, &broken), m.n_answer());
    assert!(fail > 0.8, "zero-ablating every head from '=' on changed only {fail}");
    let before: Vec<usize> = (0..m.answer_start() - 1).collect();
    let mut ivs = Interventions::new(vec![Intervention::zero(HookPoint::Z(0), Some(before), heads)]);
    assert_eq!(predict(m, &q, &mut ivs, 200).argmax, clean.argmax);
}

#[test]
fn patching_the_whole_input_gives_the_source_answer() {
    let (m, _) = tiny();
    let (clean_q, source_q) = (qs(200, 4), qs(200, 5));
    let src = cache_activation(m, &source_q, HookPoint::ResidPre(0), 0, m.n_ctx(), 64);
    let mut ivs = Interventions::new(vec![Intervention::patch(HookPoint::ResidPre(0), None, Units::All, src)]);
    let p = predict(m, &clean_q, &mut ivs, 64);
    let want: Vec<u32> = source_q.iter().flat_map(|q| q.answer_tokens(m.format)).collect();
    assert_eq!(p.argmax, want);
    // Patching only the question tokens (answer tokens stay the clean ones): the first answer
    // digit, predicted at '=', is the source's.
    let src = cache_activation(m, &source_q, HookPoint::ResidPre(0), 0, m.answer_start(), 64);
    let mut ivs = Interventions::new(vec![Intervention::patch(HookPoint::ResidPre(0), None, Units::All, src)]);
    let p = predict(m, &clean_q, &mut ivs, 64);
    for (i, s) in source_q.iter().enumerate() {
        assert_eq!(p.argmax[i * m.n_answer()], s.answer_tokens(m.format)[0]);
    }
}

#[test]
fn positions_and_nodes_are_found_where_the_answer_is_computed() {
    let a = tiny_analysis();
    let (m, _) = tiny();
    assert_eq!(a.accuracy, 1.0);
    let eq = m.answer_start() - 1;
    assert_eq!(a.positions.first_useful, Some(eq));
    assert!(a.findings.starts_at_equals);
    assert_eq!(a.findings.one_before, answer_names(m));
    // Every answer digit has a node that breaks it, and a node only breaks the digit predicted
    // at its own position (one layer, teacher forcing).
    for (i, name) in answer_names(m).iter().enumerate() {
        let hit: Vec<&nodes::NodeAblation> = a.nodes.iter().filter(|n| n.impact.contains(name)).collect();
        assert!(!hit.is_empty(), "no node computes {name}");
        assert!(hit.iter().all(|n| n.node.pos == eq + i), "{name}: {:?}", hit.iter().map(|n| &n.name).collect::<Vec<_>>());
    }
    // The MLP at the A0 position is needed (planted: a 1-layer model must combine there).
    let mlp = a.nodes.iter().find(|n| n.node == Node { pos: eq + 2, layer: 0, head: None }).unwrap();
    assert!(mlp.useful && mlp.fail_rate > 0.3, "{}", mlp.describe());
}

#[test]
fn units_digit_is_tagged_base_add_and_the_attention_reads_column_zero() {
    let a = tiny_analysis();
    let a0 = a.algorithm.iter().find(|d| d.digit == "A0").unwrap();
    assert!(a0.parts.iter().any(|p| p.subtasks.contains(&"BA_0".to_string())), "{}", a0.text);
    assert_eq!(a0.lookahead_depth, Some(0));
    for at in a.attention.iter().filter(|x| x.node.pos == 7) {
        assert_eq!(at.column, Some(0), "{}", at.summary);
    }
    // Some node reading column 0 for A1 is tagged with the carry it makes.
    let a1 = a.algorithm.iter().find(|d| d.digit == "A1").unwrap();
    assert!(a1.parts.iter().any(|p| p.subtasks.iter().any(|s| s == "MC_0" || s == "TriCase_0")), "{}", a1.text);
}

#[test]
fn exact_addition_agrees_fully_on_a_perfect_model_and_the_summary_says_so() {
    let a = tiny_analysis();
    let exact = a.symbolic.iter().find(|f| f.name == "exact").unwrap();
    assert!(exact.per_class.iter().all(|c| c.agreement == 1.0 && c.model_accuracy == 1.0), "{exact:?}");
    // Questions with the same column sums get the same (right) answer: nothing is left that a
    // formula over sub-tasks could not follow.
    let fitted = a.symbolic.iter().find(|f| f.name == "fitted").unwrap();
    assert!(fitted.per_class.iter().all(|c| c.agreement == 1.0), "{fitted:?}");
    assert!(fitted.description.ends_with("the exact carry everywhere"), "{}", fitted.description);
    let ceiling = a.ceiling.as_ref().unwrap();
    assert_eq!(ceiling.per_class.len(), exact.per_class.len());
    assert!(ceiling.per_class.iter().all(|c| c.ceiling == 1.0 && c.model_wrong == 0), "{ceiling:?}");
    let text = summary(a);
    assert!(text.contains("the model answers them alike, as a formula over sub-tasks would"), "{text}");
    assert!(text.contains("Computation starts at position 5 (token '=')"), "{text}");
    assert!(text.contains("3 of 3 answer tokens are computed only at the position one before"), "{text}");
    let json = serde_json::to_string(a).unwrap();
    let back: Analysis = serde_json::from_str(&json).unwrap();
    // (f64 text round trips can differ in the last bit, so compare the float-free parts.)
    assert_eq!((&back.findings, &back.algorithm, back.nodes.len()), (&a.findings, &a.algorithm, a.nodes.len()));
    let d = a.dynamics.as_ref().unwrap();
    assert!(d.digits.iter().all(|x| x.step.is_some_and(|s| s <= d.total_steps)), "{d:?}");
    // Every stage ran, in order, and the stages account for (nearly all of) the total time.
    let stages: Vec<_> = a.stages.iter().map(|t| t.stage).collect();
    assert_eq!(stages, arithlens::analysis::stages::Stage::ALL);
    let staged: f64 = a.stages.iter().map(|t| t.seconds).sum();
    assert!(staged <= a.seconds && staged > 0.9 * a.seconds, "{staged} of {} s", a.seconds);
}

/// The lookahead formula computed independently, digit by digit from the operands.
fn brute_lookahead(q: &Question) -> Vec<u32> {
    let n = q.n_digits;
    let s = |k: isize| if k < 0 { 0 } else { q.digit_x(k as usize) + q.digit_y(k as usize) };
    let mut out = Vec::new();
    for k in (0..=n as isize).rev() {
        let ba = if k < n as isize { s(k) % 10 } else { 0 };
        let carry = (s(k - 1) >= 10) || (s(k - 1) == 9 && s(k - 2) >= 10);
        out.push(((ba + carry as u8) % 10) as u32);
    }
    out
}

#[test]
fn lookahead_formula_agreement_matches_a_brute_force_count() {
    let n = 3;
    let mut per_class: std::collections::BTreeMap<Class, (usize, usize)> = Default::default();
    let mut sets: std::collections::BTreeMap<Class, Vec<Question>> = Default::default();
    for q in all_questions(n, Op::Add).unwrap() {
        let e = per_class.entry(Class::of(&q)).or_default();
        e.0 += 1;
        e.1 += (brute_lookahead(&q) == q.answer_tokens(Format::Paper1)) as usize;
        sets.entry(Class::of(&q)).or_default().push(q);
    }
    let sets: Vec<(Class, Vec<Question>)> = sets.into_iter().collect();
    // "Model" = exact addition.
    let preds: Vec<Predictions> = sets
        .iter()
        .map(|(_, qs)| Predictions {
            n_answer: n + 1,
            argmax: qs.iter().flat_map(|q| q.answer_tokens(Format::Paper1)).collect(),
            nll: vec![],
        })
        .collect();
    let check = symbolic::check(&symbolic::lookahead(Format::Paper1, 2), Format::Paper1, &sets, &preds);
    for c in &check.per_class {
        let (total, agree) = per_class[&c.class];
        assert_eq!((c.questions, (c.agreement * total as f64).round() as usize), (total, agree), "{}", c.class);
        // Right exactly up to one sum-9 column in a cascade; wrong on every deeper cascade.
        let want = if c.class.index() <= 2 { 1.0 } else { 0.0 };
        assert_eq!(c.agreement, want, "{}", c.class);
        // The exact "model" is right wherever the formula is wrong.
        assert_eq!(c.model_beats_formula, total - agree, "{}", c.class);
    }
    assert!(check.per_class.iter().any(|c| c.class == Class::S(3)));
    // Examples of where they differ: here only questions the "model" gets right beyond the formula.
    let text = |t: &[u32]| Format::Paper1.tokens_text(t);
    let find = |s: &str| sets.iter().flat_map(|(_, qs)| qs).find(|q| q.text() == s).copied().unwrap();
    assert_eq!(check.examples.len(), 3);
    for e in &check.examples {
        let q = find(&e.question);
        assert!(e.class.index() >= 3, "{e:?}");
        assert_eq!((e.truth.clone(), e.model.clone()), (text(&q.answer_tokens(Format::Paper1)), text(&q.answer_tokens(Format::Paper1))));
        assert_eq!(e.formula, text(&brute_lookahead(&q)));
    }
    // With the lookahead as the "model", exact arithmetic's examples are the model's wrong answers.
    let lookahead_preds: Vec<Predictions> = sets
        .iter()
        .map(|(_, qs)| Predictions { n_answer: n + 1, argmax: qs.iter().flat_map(brute_lookahead).collect(), nll: vec![] })
        .collect();
    let exact = symbolic::check(&symbolic::exact(Format::Paper1), Format::Paper1, &sets, &lookahead_preds);
    assert_eq!(exact.examples.len(), 3);
    assert!(exact
        .examples
        .iter()
        .all(|e| e.model != e.truth && e.formula == e.truth && e.model == text(&brute_lookahead(&find(&e.question)))));
}

#[test]
fn sub_task_pairs_differ_in_the_sub_task_and_one_column() {
    for op in [Op::Add, Op::Sub] {
        for kind in [Kind::Base, Kind::Make, Kind::Pass, Kind::TriCase] {
            let t = SubTask::new(kind, 1, op);
            let ps = pairs(t, 3, 50, 9);
            assert_eq!(ps.len(), 50, "{}", t.name());
            for (c, s) in ps {
                assert_ne!(t.class(&c), t.class(&s), "{}", t.name());
                assert!((0..3).filter(|&k| k != 1).all(|k| c.digit_x(k) == s.digit_x(k) && c.digit_y(k) == s.digit_y(k)));
                // Taking every value of the changed column from the source gives its answer.
                let cs = Columns::of(&s);
                assert_eq!(Columns::tokens(&cs.digits(&cs.carries()), &s, Format::Paper2Sign), s.answer_tokens(Format::Paper2Sign));
            }
        }
    }
    let us = SubTask::new(Kind::UsePass, 2, Op::Add);
    for (c, s) in pairs(us, 3, 30, 1) {
        assert_eq!(c.digit_x(1) + c.digit_y(1), 9);
        // Predicted answer: the source's carry into column 2 on the clean question = the source's
        // own A2 when columns 2 agree.
        let d = us.predicted_digits(&c, &s);
        assert_eq!(d[2], ((c.digit_x(2) + c.digit_y(2)) % 10 + us.class(&s) as u8) % 10);
    }
}

#[test]
fn stratified_symbolic_sets_cover_rare_classes() {
    let sets = stratified_set(5, Op::Add, 5, 1).unwrap();
    assert!(sets.iter().any(|(c, qs)| *c == Class::S(4) && qs.len() == 5));
}

#[test]
fn the_analysis_records_failure_families_and_each_answer_tokens_logit_attribution() {
    let a = tiny_analysis();
    assert_eq!(a.failure_families.len(), 1, "one per operation");
    let f = &a.failure_families[0];
    assert_eq!((f.failures, f.families.len()), (0, 0), "the perfect tiny model makes no mistake on the family set: {f:?}");
    assert!(a.algorithm.iter().all(|d| d.fails_when.is_empty() && !d.line().contains("; fails when")));
    let digits: Vec<(&str, usize)> = a.logit_attribution.iter().map(|d| (d.digit.as_str(), d.position)).collect();
    assert_eq!(digits, [("A2", 5), ("A1", 6), ("A0", 7)]);
    for d in &a.logit_attribution {
        // The model answers right, so the right token's logit stands above the mean one.
        assert!(d.centred_logit > 1.0 && d.max_residual < 1e-3 * d.centred_logit, "{d:?}");
        assert!(d.components.windows(2).all(|w| w[0].1.abs() >= w[1].1.abs()), "largest first: {d:?}");
    }
    let text = summary(a);
    assert!(text.contains("[logit attribution]") && text.contains("  A0 (at position 7): "), "{text}");
    assert!(!text.contains("[failure families]"), "nothing to group: {text}");
}

#[test]
fn a_one_layer_circuit_has_only_head_to_mlp_edges_and_says_so() {
    let a = tiny_analysis();
    let c = a.circuit.as_ref().expect("the circuit stage ran");
    assert!(c.note.as_deref().is_some_and(|n| n.starts_with("one layer: the only edges")), "{:?}", c.note);
    let edges: Vec<_> = c.digits.iter().flat_map(|d| &d.edges).collect();
    assert!(!edges.is_empty(), "the heads at each answer position feed its MLP");
    for e in &edges {
        let (s, r) = (e.edge.sender, e.edge.receiver);
        assert!(s.head.is_some() && r.head.is_none() && s.pos == r.pos && s.layer == 0 && r.layer == 0, "{}", e.name);
    }
    // A0 (column 0's base sum) is fed column 0 only.
    let a0 = c.digits.iter().find(|d| d.digit == "A0").unwrap();
    assert!(!a0.edges.is_empty() && a0.edges.iter().all(|e| e.corruption.column() == 0), "{a0:?}");
}
