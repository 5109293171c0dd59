//! Small versions of the follow-up paper's models: subtraction and mixed addition/subtraction
//! models in the sign-token format learn every 2-digit question, and the analysis runs on them.

use arithlens::analysis::{analyze, AnalyzeOptions};
use arithlens::eval::{evaluate, EvalOptions};
use arithlens::task::Op;
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};

fn train(preset: &str) -> (TaskModel, arithlens::train::log::TrainingLog) {
    let dir = std::env::temp_dir().join(format!("arithlens-follow-up-{}-{preset}", std::process::id()));
    let mut t = Trainer::new(TrainConfig::preset(preset).unwrap()).unwrap();
    t.train(&dir, &mut |_| {}).unwrap();
    let m = TaskModel::load(&dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (m, t.log)
}

fn exhaustive_failures(m: &TaskModel) -> Vec<(Op, u64)> {
    let opts = EvalOptions { exhaustive: true, per_class: 100, ..Default::default() };
    evaluate(m, &opts, &mut |_, _, _| {}).unwrap().ops.iter().map(|r| (r.op, r.failures)).collect()
}

#[test]
fn tiny_subtraction_model_answers_every_question() {
    let (m, _) = train("tiny_sub");
    assert_eq!(exhaustive_failures(&m), vec![(Op::Sub, 0)]);
}

#[test]
fn tiny_mixed_model_answers_every_question_of_both_operations_and_is_analysed() {
    let (m, log) = train("tiny_mix");
    assert_eq!(exhaustive_failures(&m), vec![(Op::Add, 0), (Op::Sub, 0)]);
    let a = analyze(&m, Some(&log), &AnalyzeOptions { questions: 300, pairs: 30, ..Default::default() });
    let json = serde_json::to_value(&a).unwrap();
    assert!(!json["nodes"].as_array().unwrap().is_empty(), "useful nodes found");
    let summary = arithlens::analysis::summary(&a);
    assert!(summary.contains("[algorithm]") && summary.contains("sign"), "{summary}");
}
