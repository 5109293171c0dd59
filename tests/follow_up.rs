//! Small versions of the follow-up paper's models: subtraction and mixed addition/subtraction
//! models in the sign-token format learn every 2-digit question, and the analysis runs on them.

use arithlens::analysis::{analyze, AnalyzeOptions};
use arithlens::eval::{evaluate, EvalOptions};
use arithlens::progress::{ignore, Stop};
use arithlens::task::Op;
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};

fn train(preset: &str) -> (TaskModel, arithlens::train::log::TrainingLog) {
    let dir = std::env::temp_dir().join(format!("arithlens-follow-up-{}-{preset}", std::process::id()));
    let mut t = Trainer::new(TrainConfig::preset(preset).unwrap()).unwrap();
    t.train(&dir, &Stop::new(), &mut ignore).unwrap();
    let m = TaskModel::load(&dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (m, t.log)
}

fn exhaustive_failures(m: &TaskModel) -> Vec<(Op, u64)> {
    let opts = EvalOptions { exhaustive: true, per_class: 100, ..Default::default() };
    evaluate(m, &opts, &Stop::new(), &mut ignore).unwrap().ops.iter().map(|r| (r.op, r.failures)).collect()
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
    // The answer depends on the operator, so some node must carry it into the answer digits.
    assert!(!a.findings.operator_nodes.is_empty(), "{summary}");
    // Roles are reported for the heads of every layer that has them, not only the last.
    assert!(a.findings.head_roles.iter().any(|(h, r)| h.starts_with("L0") && !r.is_empty()), "{summary}");
    assert!(summary.contains("operator (patching switches + and -): P"), "{summary}");
    // Each operation gets its own PCA, scored with that operation's sub-tasks.
    for (op, prefixes) in [(Op::Add, ["BA", "MC", "MS", "TriCase"]), (Op::Sub, ["MD", "MB", "MZ", "MT"])] {
        let entries: Vec<_> = a.pca.iter().filter(|p| p.op == Some(op)).collect();
        assert!(!entries.is_empty(), "no PCA of {op:?} questions");
        let other = if op == Op::Add { ["MD", "MB", "MZ", "MT"] } else { ["BA", "MC", "MS", "TriCase"] };
        let is = |names: &[&str; 4], t: &str| names.iter().any(|o| t.starts_with(&format!("{o}_")));
        assert!(entries.iter().all(|p| p.separation.iter().all(|s| !is(&other, &s.subtask))), "{entries:?}");
        assert!(entries.iter().any(|p| p.separation.iter().any(|s| is(&prefixes, &s.subtask))), "{entries:?}");
    }
    assert!(summary.contains(" (subtraction): top-3 explain"), "{summary}");
    // Each sub-task is tested once per node, so it is tagged at most once.
    for t in &a.tags {
        let tasks: Vec<_> = t.tests.iter().map(|x| x.task).collect();
        assert!(tasks.iter().enumerate().all(|(i, x)| !tasks[..i].contains(x)), "{} tests a sub-task twice: {:?}", t.name, tasks);
        assert!(t.tags.iter().enumerate().all(|(i, x)| !t.tags[..i].contains(x)), "{} tagged twice: {:?}", t.name, t.tags);
    }
}

#[test]
fn the_analysis_of_an_inserted_model_reports_what_became_of_each_inserted_head() {
    use arithlens::train::insert::InsertConfig;
    let dir = std::env::temp_dir().join(format!("arithlens-follow-up-{}-ins-source", std::process::id()));
    let add = TrainConfig::preset("tiny_mix").unwrap().with_overrides(&["sub_share=0".into(), "steps=1500".into()]).unwrap();
    Trainer::new(add).unwrap().train(&dir, &Stop::new(), &mut ignore).unwrap();
    let source = TaskModel::load(&dir).unwrap();
    let opts = AnalyzeOptions { questions: 200, pairs: 20, sample: 200, per_class: 50, ..Default::default() };
    let source_analysis = analyze(&source, None, &opts);
    std::fs::write(dir.join("analysis.json"), serde_json::to_vec(&source_analysis).unwrap()).unwrap();
    // The sign of an addition-only model is always '+': reported as constant, not as a token
    // computed nowhere.
    let sign = &source_analysis.positions.digits[0];
    assert!(sign.digit == "sign" && sign.constant, "{sign:?}");
    assert!(source_analysis.positions.digits[1..].iter().all(|d| !d.constant));
    let source_summary = arithlens::analysis::summary(&source_analysis);
    assert!(source_summary.contains("; sign never changes (the same on every question)."), "{source_summary}");

    let mut cfg =
        TrainConfig::preset("tiny_mix").unwrap().with_overrides(&["n_heads=4".into(), "d_head=21".into(), "steps=200".into()]).unwrap();
    cfg.insert = Some(InsertConfig { from: dir.clone(), every: 0, mlps: false });
    let mut t = Trainer::new(cfg).unwrap();
    let out = dir.with_extension("target");
    t.train(&out, &Stop::new(), &mut ignore).unwrap();
    let m = TaskModel::load(&out).unwrap();
    let a = analyze(&m, Some(&t.log), &opts);
    let ins = a.insertion.as_ref().expect("an insertion section for an inserted model");
    let names: Vec<&str> = ins.heads.iter().map(|h| h.head.as_str()).collect();
    assert_eq!(names, ["L0H0", "L0H1", "L0H2", "L1H0", "L1H1", "L1H2"], "two layers of three heads were inserted");
    assert!(ins.source_note.is_none(), "{:?}", ins.source_note);
    assert!(ins.heads.iter().all(|h| h.drift > 0.0 && h.drift < 1.0), "trained on, but started from the source");
    assert!(ins.heads.iter().all(|h| h.source_roles.is_some()));
    // Shortly after insertion the addition circuit is still in use.
    assert!(ins.heads.iter().any(|h| h.fail_by_op.iter().any(|&(op, f)| op == Op::Add && f >= 0.05)), "{ins:?}");
    let summary = arithlens::analysis::summary(&a);
    assert!(summary.contains("[insertion]") && summary.contains("L1H2"), "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
}
