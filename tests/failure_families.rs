//! Failure families on a real, half-trained model: every wrong answer is counted once, either
//! in a family or as uncovered; each family's examples are wrong answers the model really gives
//! (greedy decoding), and each precision is a measured share.

use arithlens::eval::failure_families::{model_families, FamilyOptions};
use arithlens::eval::predict::greedy;
use arithlens::task::{all_questions, Op};
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};

fn half_trained(steps: u64, n_digits: usize) -> TaskModel {
    let o = [format!("steps={steps}"), format!("n_digits={n_digits}")];
    let mut t = Trainer::new(TrainConfig::preset("tiny").unwrap().with_overrides(&o).unwrap()).unwrap();
    for _ in 0..steps {
        t.step().unwrap();
    }
    TaskModel::from_file(t.model_file(), "test").unwrap()
}

#[test]
fn every_wrong_answer_is_in_one_family_or_counted_as_uncovered() {
    let m = half_trained(600, 3);
    let qs: Vec<_> = all_questions(3, Op::Add).unwrap().step_by(7).collect();
    let opts = FamilyOptions { precision_questions: 500, ..Default::default() };
    let f = model_families(&m, &qs, &opts);
    let wrong = greedy(&m, &qs).iter().zip(&qs).filter(|((t, _), q)| *t != q.answer_tokens(m.format)).count();
    assert_eq!(f.failures, wrong, "the failures are the greedy answers that are wrong");
    assert!(wrong > 20, "the model should still make mistakes: {wrong}");
    let covered: usize = f.families.iter().map(|x| x.count).sum();
    assert_eq!(covered + f.uncovered, f.failures, "{f:#?}");
    assert_eq!(f.uncovered_kinds.values().sum::<usize>(), f.uncovered);
    for fam in &f.families {
        assert_eq!(fam.classes.values().sum::<usize>(), fam.count, "{fam:#?}");
        assert!((fam.share_of_failures - fam.count as f64 / f.failures as f64).abs() < 1e-12);
        let p = fam.precision.expect("questions matching a rule found in the data can be drawn");
        assert!((0.0..=1.0).contains(&p) && fam.precision_questions > 0, "{fam:#?}");
        assert!(!fam.examples.is_empty() && fam.description.ends_with('.'));
        for [question, model, truth] in &fam.examples {
            let q = m.parse_question(question).unwrap();
            assert_eq!(truth, &m.format.tokens_text(&q.answer_tokens(m.format)));
            assert_eq!(model, &m.format.tokens_text(&greedy(&m, &[q])[0].0), "the example shows the greedy answer");
            assert_ne!(model, truth, "{question}");
        }
    }
}

#[test]
fn an_evaluation_groups_its_own_wrong_answers_into_families() {
    use arithlens::eval::{evaluate, EvalOptions};
    let m = half_trained(600, 3);
    let opts = EvalOptions { questions: 20_000, per_class: 50, ..Default::default() };
    let r = evaluate(&m, &opts, &arithlens::progress::Stop::new(), &mut arithlens::progress::ignore).unwrap();
    let add = &r.ops[0];
    let f = add.failure_families.as_ref().expect("eval.json records the families");
    assert!(add.failures > 20, "the model should still make mistakes: {}", add.failures);
    assert_eq!(f.failures as u64, add.failures, "every wrong answer of the random set is examined");
    let covered: usize = f.families.iter().map(|x| x.count).sum();
    assert_eq!(covered + f.uncovered, f.failures);
    assert!(!f.families.is_empty(), "{f:#?}");
    for fam in &f.families {
        assert!(!fam.digits.is_empty() && fam.digits.iter().all(|&k| k <= 3), "{fam:#?}");
        for [question, model, truth] in &fam.examples {
            // The first wrong digit (A3 is the first character) is one the family names.
            let first = model.chars().zip(truth.chars()).position(|(a, b)| a != b).unwrap();
            assert!(fam.digits.contains(&(3 - first)), "{question} {model} {truth}: {fam:#?}");
        }
    }
    let lines = f.lines("addition: ");
    assert!(lines[0].starts_with(&format!("addition: {} failure famil", f.families.len())), "{lines:?}");
    assert_eq!(lines.len(), 1 + f.families.len() + usize::from(f.coverage() < 0.9), "{lines:?}");
    for line in &lines {
        assert!(r.summary.contains(line), "the terminal summary states {line}");
    }
}
