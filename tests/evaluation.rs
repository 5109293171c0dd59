//! Evaluation: teacher-forced correctness equals real greedy decoding, exhaustive evaluation is
//! exact, class tallies match an independent brute-force count, and bad requests are refused.

use arithlens::eval::accuracy::{evaluate_set, EvalOptions};
use arithlens::eval::evaluate;
use arithlens::eval::predict::{greedy, teacher_forced};
use arithlens::eval::stats::{ClassTallies, TopLoss};
use arithlens::progress::{ignore, Event, Stop};
use arithlens::task::generate::{all_questions, random_questions};
use arithlens::task::Op;
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};
use std::sync::OnceLock;

fn trained(steps: u64, n_digits: usize) -> TaskModel {
    trained_preset("tiny", steps, n_digits)
}

fn trained_preset(preset: &str, steps: u64, n_digits: usize) -> TaskModel {
    let cfg = TrainConfig::preset(preset).unwrap().with_overrides(&[format!("steps={steps}"), format!("n_digits={n_digits}")]).unwrap();
    let mut t = Trainer::new(cfg).unwrap();
    for _ in 0..steps {
        t.step().unwrap();
    }
    TaskModel::from_file(t.model_file(), "test").unwrap()
}

fn tiny() -> &'static TaskModel {
    static M: OnceLock<TaskModel> = OnceLock::new();
    M.get_or_init(|| trained(2000, 2))
}

#[test]
fn teacher_forced_correctness_equals_greedy_decoding_including_wrong_answers() {
    // The one-layer models take the table fast path, the two-layer one the reference pass in
    // parallel passes of 128 questions (500 per batch: four passes, the last one short).
    for m in [trained(150, 3), trained(600, 3), trained_preset("tiny_l2", 300, 3)] {
        let qs = random_questions(3, Op::Add, 3000, 11).unwrap();
        let tf = teacher_forced(&m, &qs, 500);
        let gr = greedy(&m, &qs);
        let mut wrong = 0;
        for (i, q) in qs.iter().enumerate() {
            let truth = q.answer_tokens(m.format);
            let tf_ok = tf.correct(i, &truth);
            assert_eq!(tf_ok, gr[i].0 == truth, "{}: teacher-forced {tf_ok}, greedy {:?}", q.text(), gr[i].0);
            wrong += !tf_ok as usize;
        }
        assert!(wrong > 30, "the check needs wrong answers too, got {wrong}");
    }
}

#[test]
fn exhaustive_evaluation_of_the_tiny_model_is_perfect() {
    let opts = EvalOptions { exhaustive: true, per_class: 200, ..Default::default() };
    let r = evaluate(tiny(), &opts, &Stop::new(), &mut ignore).unwrap();
    let add = &r.ops[0];
    assert!(add.exhaustive);
    assert_eq!((add.questions, add.failures, add.nines), (10_000, 0, 4));
    assert!(add.stratified.iter().all(|row| row.failures == 0));
    // Every question asked: an exact figure, not a lower bound on nines.
    let line = add.accuracy_line();
    assert!(line.contains("of all 10000 questions") && line.contains("exact") && !line.contains("at least"), "{line}");
    let sampled = arithlens::eval::accuracy::OpReport { exhaustive: false, ..add.clone() };
    assert!(sampled.accuracy_line().contains("random questions correct (100.000000%), 0 failures, at least 4 nines"));
}

/// Class of a + b by schoolbook addition, written independently of the task module.
fn brute_class(mut a: u32, mut b: u32) -> String {
    let (mut carry, mut any, mut run, mut depth) = (0, false, 0, 0);
    while a > 0 || b > 0 || carry > 0 {
        let s = a % 10 + b % 10;
        run = if carry == 1 && s == 9 { run + 1 } else { 0 };
        depth = depth.max(run);
        any |= s >= 10;
        carry = u32::from(s + carry >= 10);
        a /= 10;
        b /= 10;
    }
    if any {
        format!("S{}", depth + 1)
    } else {
        "S0".into()
    }
}

#[test]
fn exhaustive_class_counts_match_brute_force_for_two_and_three_digits() {
    for n in [2usize, 3] {
        let m = trained(1, n);
        let mut tallies = ClassTallies::default();
        evaluate_set(&m, all_questions(n, Op::Add).unwrap(), 4096, &mut tallies, &mut TopLoss::new(0), &mut |_| {});
        let mut want = std::collections::BTreeMap::<String, u64>::new();
        let lim = 10u32.pow(n as u32);
        for a in 0..lim {
            for b in 0..lim {
                *want.entry(brute_class(a, b)).or_default() += 1;
            }
        }
        let got: std::collections::BTreeMap<String, u64> = tallies.0.iter().map(|(c, t)| (c.to_string(), t.n)).collect();
        assert_eq!(got, want, "n = {n}");
    }
}

#[test]
fn bad_requests_get_clear_errors() {
    let opts = EvalOptions { questions: 0, ..Default::default() };
    assert!(evaluate(tiny(), &opts, &Stop::new(), &mut ignore).unwrap_err().to_string().contains("--questions must be at least 1"));
    let four = trained(1, 4);
    let opts = EvalOptions { exhaustive: true, ..Default::default() };
    let err = evaluate(&four, &opts, &Stop::new(), &mut ignore).unwrap_err().to_string();
    assert!(err.contains("--exhaustive covers n <= 3") && err.contains("4-digit"), "{err}");
    let err = tiny().parse_question("123+456=").unwrap_err().to_string();
    assert!(err.contains("3 digits") && err.contains("2-digit"), "{err}");
    let err = tiny().parse_question("12-34=").unwrap_err().to_string();
    assert!(err.contains("paper1"), "{err}");
}

/// The one-layer fast path decides every answer as the reference forward pass does.
#[test]
fn one_layer_fast_path_matches_the_reference_forward_pass() {
    use arithlens::eval::predict::{Predictions, Predictor};
    let fixtures = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transformer_lens");
    let models = [
        trained(300, 3),
        TaskModel::load(&fixtures.join("sub_d2_l1_noln_gelu.model.safetensors")).unwrap(),
        TaskModel::load(&fixtures.join("add_d2_l1_attnonly.model.safetensors")).unwrap(),
    ];
    for m in &models {
        let op = m.ops[0];
        let qs = random_questions(m.n_digits, op, 2000, 5).unwrap();
        let (mut fast, mut slow) = (Predictions::default(), Predictions::default());
        Predictor::new(m, 512).run_all(&qs, &mut fast);
        Predictor::transformer(m, 512).run_all(&qs, &mut slow);
        assert_eq!(fast.argmax, slow.argmax, "{}", m.name);
        for (a, b) in fast.nll.iter().zip(&slow.nll) {
            assert!((a - b).abs() < 1e-3 * b.max(1.0), "{}: nll {a} vs {b}", m.name);
        }
    }
}

#[test]
fn an_interrupted_evaluation_continues_from_its_progress_file_to_the_same_report() {
    use arithlens::eval::accuracy::SLICE;
    // A half-trained mixed model: failures in both operations, so tallies and top losses matter.
    let cfg = TrainConfig::preset("tiny_mix").unwrap().with_overrides(&["steps=80".into()]).unwrap();
    let mut t = Trainer::new(cfg).unwrap();
    for _ in 0..80 {
        t.step().unwrap();
    }
    let m = TaskModel::from_file(t.model_file(), "test").unwrap();
    let file = std::env::temp_dir().join(format!("arithlens-eval-progress-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let opts = EvalOptions { questions: SLICE + 100, per_class: 50, progress_file: Some(file.clone()), ..Default::default() };
    let whole = evaluate(&m, &EvalOptions { progress_file: None, ..opts.clone() }, &Stop::new(), &mut ignore).unwrap();
    assert!(whole.ops.iter().all(|r| r.failures > 0), "the model should still make mistakes");
    let stop = Stop::new();
    // Stopped in addition's first slice, then (after finishing addition) in subtraction's first.
    let mut first_seen = Vec::new();
    for stage in ["random addition", "random subtraction"] {
        stop.clear();
        let mut first = None;
        let err = evaluate(&m, &opts, &stop, &mut |e| {
            let Event::Eval { set, done, .. } = e else { panic!("evaluation reports Eval events: {e:?}") };
            if set == stage {
                stop.request();
            }
            first.get_or_insert((set, done));
        })
        .unwrap_err();
        assert!(matches!(err, arithlens::eval::EvalError::Stopped(_)), "a stop is told apart from a failure: {err:?}");
        let err = err.to_string();
        assert!(err.contains("run the same command again"), "{err}");
        assert!(file.exists());
        first_seen.push(first.unwrap());
    }
    let mut first = None;
    let resumed = evaluate(&m, &opts, &Stop::new(), &mut |e| {
        if let Event::Eval { set, done, .. } = e {
            first.get_or_insert((set, done));
        }
    })
    .unwrap();
    // Each run started where the last one stopped.
    assert!(first_seen[0].0 == "random addition" && first_seen[0].1 <= 1024);
    assert!(first_seen[1].0 == "random addition" && first_seen[1].1 > SLICE, "{:?}", first_seen[1]);
    let first = first.unwrap();
    assert!(first.0 == "random subtraction" && first.1 > SLICE, "{first:?}");
    assert!(!file.exists(), "the progress file is removed at the end");
    assert_eq!(resumed.ops, whole.ops);
    assert_eq!(resumed.summary, whole.summary);
}
