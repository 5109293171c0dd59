//! The report as a reader sees it: a tiny model is trained and evaluated, the report rendered,
//! and the HTML and every SVG parsed; each section must exist and each figure hold data marks
//! and a caption. With an analysis.json (a typed `Analysis`, built here) the analysis sections
//! render; without it they say to run `arithlens analyze`.

use arithlens::analysis::algorithm::DigitAlgorithm;
use arithlens::analysis::attention::{NodeAttention, Source, Staircase};
use arithlens::analysis::dynamics::{DigitPhase, Dynamics};
use arithlens::analysis::insertion::{InsertedHead, Insertion};
use arithlens::analysis::nodes::NodeAblation;
use arithlens::analysis::paths::{
    Agreement, Circuit, CircuitEdge, CircuitOptions, ClassEffect, Corruption, CorruptionCheck, DigitCircuit, DigitEffect, Edge, Input,
};
use arithlens::analysis::pca::Separation;
use arithlens::analysis::positions::{DigitPositions, PositionAblation, Positions};
use arithlens::analysis::subtasks::{NodePca, NodeTags, PatchTest, PcaSeparation, SubTask};
use arithlens::analysis::symbolic::{Ceiling, ClassAgreement, ClassCeiling, FormulaCheck};
use arithlens::analysis::{Analysis, AnalyzeOptions, Findings, ModelInfo};
use arithlens::eval::{evaluate, EvalOptions};
use arithlens::io::schema::Versioned;
use arithlens::progress::{ignore, Stop};
use arithlens::provenance::Provenance;
use arithlens::report::write_report;
use arithlens::task::Op;
use arithlens::task_model::TaskModel;
use arithlens::train::{TrainConfig, Trainer};
use roxmltree::{Document, Node, ParsingOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SECTIONS: [&str; 8] = ["run", "training", "accuracy", "positions", "attention", "nodes", "pca", "algorithm"];
const ANALYSIS_SECTIONS: [&str; 4] = ["positions", "nodes", "pca", "algorithm"];
/// Classes of the SVG elements that draw data (line, heat-map cell, bar, point, node box).
const MARKS: [&str; 5] = ["series", "cell", "bar", "pt", "node"];

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("arithlens-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A trained and evaluated tiny run, shared by the tests (copied before each use).
fn trained_run() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tmp("trained");
        let mut t = Trainer::new(TrainConfig::preset("tiny").unwrap()).unwrap();
        t.train(&dir, &Stop::new(), &mut ignore).unwrap();
        let model = TaskModel::load(&dir).unwrap();
        let opts = EvalOptions { questions: 2000, per_class: 200, ..Default::default() };
        let eval = evaluate(&model, &opts, &Stop::new(), &mut ignore).unwrap();
        eval.save(&dir.join("eval.json")).unwrap();
        dir
    })
}

fn copy_run(name: &str) -> PathBuf {
    let dir = tmp(name);
    for f in ["model.safetensors", "training.json", "eval.json"] {
        std::fs::copy(trained_run().join(f), dir.join(f)).unwrap();
    }
    dir
}

fn parse(text: &str) -> Document<'_> {
    let opts = ParsingOptions { allow_dtd: true, ..Default::default() };
    Document::parse_with_options(text, opts).unwrap_or_else(|e| panic!("not well-formed: {e}"))
}

fn class_of<'a>(n: &Node<'a, '_>) -> &'a str {
    n.attribute("class").unwrap_or("")
}

fn marks(n: Node) -> usize {
    n.descendants().filter(|d| MARKS.contains(&class_of(d))).count()
}

fn section<'a, 'i>(doc: &'a Document<'i>, id: &str) -> Node<'a, 'i> {
    doc.descendants().find(|n| n.has_tag_name("section") && n.attribute("id") == Some(id)).unwrap_or_else(|| panic!("no section {id}"))
}

fn text_of(n: Node) -> String {
    n.descendants().filter_map(|d| d.text()).collect()
}

/// Checks every section and figure; returns the figure count per section.
fn check_page(dir: &Path) -> Vec<(String, usize)> {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let doc = parse(&html);
    for n in doc.descendants() {
        for a in n.attributes() {
            assert!(a.name() == "xmlns" || !a.value().contains("://"), "external reference {}={}", a.name(), a.value());
        }
    }
    let mut counts = Vec::new();
    for id in SECTIONS {
        let s = section(&doc, id);
        assert!(s.descendants().any(|n| n.has_tag_name("h2")), "section {id} has no heading");
        let figures: Vec<Node> = s.descendants().filter(|n| n.has_tag_name("figure")).collect();
        for f in &figures {
            let name = f.attribute("id").unwrap_or("?");
            let svg = f.children().find(|c| c.has_tag_name("svg")).unwrap_or_else(|| panic!("{name} has no svg"));
            assert!(marks(svg) > 0, "{name} draws no data");
            let cap = f.children().find(|c| c.has_tag_name("figcaption")).map(text_of).unwrap_or_default();
            assert!(cap.len() > 60, "{name}: caption too short: {cap}");
        }
        counts.push((id.to_string(), figures.len()));
    }
    counts
}

fn check_figure_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir.join("figures")).unwrap() {
        let path = e.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc = parse(&text);
        assert!(doc.root_element().has_tag_name("svg"), "{}", path.display());
        assert!(marks(doc.root_element()) > 0, "{} draws no data", path.display());
        n += 1;
    }
    n
}

fn count(counts: &[(String, usize)], id: &str) -> usize {
    counts.iter().find(|c| c.0 == id).unwrap().1
}

#[test]
fn report_without_analysis_has_every_section_and_says_to_run_analyze() {
    let dir = copy_run("plain");
    // Left from an earlier report: a figure this page does not have goes, other files stay.
    std::fs::create_dir_all(dir.join("figures")).unwrap();
    std::fs::write(dir.join("figures/pca_P5L0H0.svg"), "<svg/>").unwrap();
    std::fs::write(dir.join("figures/notes.txt"), "mine").unwrap();
    let path = write_report(&dir).unwrap();
    assert!(!dir.join("figures/pca_P5L0H0.svg").exists(), "a stale figure is removed");
    assert!(dir.join("figures/notes.txt").exists(), "other files are left alone");
    std::fs::remove_file(dir.join("figures/notes.txt")).unwrap();
    assert_eq!(path, dir.join("report.html"));
    let counts = check_page(&dir);
    assert_eq!(count(&counts, "training"), 2);
    assert_eq!(count(&counts, "accuracy"), 2);
    // 3 staircase maps + 3 example questions (S0, S1, S2) x 3 heads.
    assert_eq!(count(&counts, "attention"), 12);
    let html = std::fs::read_to_string(&path).unwrap();
    let doc = parse(&html);
    for id in ANALYSIS_SECTIONS {
        let s = section(&doc, id);
        let note = s.descendants().find(|n| class_of(n) == "note").map(text_of).unwrap_or_default();
        assert!(note.contains("arithlens analyze"), "section {id}: {note}");
    }
    let acc = section(&doc, "accuracy");
    let rows = acc.descendants().filter(|n| n.has_tag_name("tr")).count();
    assert!(rows > 5, "the highest-loss table has {rows} rows");
    let radios = doc.descendants().filter(|n| n.has_tag_name("input") && n.attribute("type") == Some("radio")).count();
    assert_eq!(radios, 3, "one example question per class");
    assert_eq!(check_figure_files(&dir), 16);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A small analysis of the tiny model (2 digits: positions 0-8, answer A2 A1 A0 predicted at 5,
/// 6, 7), built as the typed [`Analysis`] the analysis writes, recording the shared model's hash
/// so the report shows it.
fn synthetic_analysis() -> Analysis {
    let sha = arithlens::provenance::sha256_file(&trained_run().join("model.safetensors")).unwrap();
    let model = TaskModel::load(trained_run()).unwrap();
    let mut a = synthetic_analysis_body(ModelInfo::of(&model));
    a.provenance = Some(Provenance::new(&sha, &a.options));
    a
}

/// Node `P{pos}L0H{head}` (`P{pos}L0M` without a head).
fn node(pos: usize, head: Option<usize>) -> arithlens::analysis::naming::Node {
    arithlens::analysis::naming::Node { pos, layer: 0, head }
}

fn ablation(n: arithlens::analysis::naming::Node, digit_fail: [f64; 3], impact: &[&str]) -> NodeAblation {
    let fail_rate = digit_fail.iter().copied().fold(0.0, f64::max);
    let impact: Vec<String> = impact.iter().map(|s| s.to_string()).collect();
    NodeAblation { name: n.name(), node: n, fail_rate, digit_fail: digit_fail.to_vec(), useful: !impact.is_empty(), impact }
}

fn separation(subtask: &str, classes: usize, points: usize, shares: [f64; 2], accuracy: [f64; 2]) -> PcaSeparation {
    let [between_share, adjusted_share] = shares;
    let [centroid_accuracy, majority_share] = accuracy;
    PcaSeparation {
        subtask: subtask.into(),
        score: Separation { classes, points, between_share, adjusted_share, centroid_accuracy, majority_share },
    }
}

fn agreement(class: &str, agreement: f64, model_wrong: usize, wrong_reproduced: usize) -> ClassAgreement {
    let class = class.parse().unwrap();
    ClassAgreement { class, questions: 200, model_accuracy: 1.0, agreement, model_wrong, wrong_reproduced, model_beats_formula: 0 }
}

fn formula(name: &str, description: &str, per_class: Vec<ClassAgreement>, mean_agreement: f64) -> FormulaCheck {
    FormulaCheck { name: name.into(), description: description.into(), per_class, mean_agreement, examples: vec![] }
}

fn synthetic_positions() -> Positions {
    let abl = |position: usize, token: &str, digit_fail: [f64; 3]| PositionAblation {
        hook: "blocks.0.hook_resid_post".into(),
        position,
        token: token.into(),
        fail_rate: digit_fail.iter().copied().fold(0.0, f64::max),
        digit_fail: digit_fail.to_vec(),
    };
    let digit = |digit: &str, at: usize| DigitPositions {
        digit: digit.into(),
        predicted_at: at,
        computed_at: vec![at],
        one_before: true,
        constant: false,
    };
    Positions {
        ablations: vec![abl(5, "=", [0.9, 0.0, 0.0]), abl(6, "A2", [0.0, 0.8, 0.0]), abl(7, "A1", [0.0, 0.0, 0.7])],
        useful: vec![5, 6, 7],
        equals_position: 5,
        first_useful: Some(5),
        digits: vec![digit("A2", 5), digit("A1", 6), digit("A0", 7)],
    }
}

fn synthetic_attention() -> (Vec<NodeAttention>, Vec<Staircase>) {
    let source = |position: usize, token: &str, weight: f64| Source { position, token: token.into(), weight };
    let attention = vec![NodeAttention {
        name: "P6L0H0".into(),
        node: node(6, Some(0)),
        top: vec![source(4, "D'0", 0.5), source(1, "D0", 0.4)],
        summary: "D0 and D'0".into(),
        column: Some(0),
        column_weight: 0.9,
    }];
    let staircase = Staircase {
        layer: 0,
        head: 0,
        query_positions: vec![5, 6, 7],
        source_tokens: ["D1", "D0", "+", "D'1", "D'0", "="].map(String::from).to_vec(),
        weights: vec![vec![0.5, 0.0, 0.0, 0.5, 0.0, 0.0], vec![0.0, 0.5, 0.0, 0.0, 0.5, 0.0], vec![0.0, 0.5, 0.0, 0.0, 0.5, 0.0]],
        top_column: vec![Some(1), Some(0), Some(0)],
        offset: vec![Some(1), Some(1), Some(0)],
        typical_offset: Some(1),
        descending_steps: 1,
        is_staircase: true,
    };
    (attention, vec![staircase])
}

fn synthetic_tags() -> Vec<NodeTags> {
    let mc = PatchTest { subtask: "MC_0".into(), task: SubTask::parse("MC_0").unwrap(), informative: 50, match_rate: 0.95 };
    let tags = |n: arithlens::analysis::naming::Node, impact: usize, tests: Vec<PatchTest>, tag: &str| NodeTags {
        name: n.name(),
        node: n,
        group: vec![n],
        impact: vec![impact],
        tests,
        tags: vec![tag.into()],
    };
    vec![tags(node(6, Some(0)), 1, vec![mc], "MC_0"), tags(node(7, Some(1)), 2, vec![], "BA_0")]
}

fn synthetic_symbolic() -> (Vec<FormulaCheck>, Ceiling) {
    let exact = formula("exact", "exact addition", vec![agreement("S0", 1.0, 0, 0), agreement("S1", 0.99, 2, 0)], 0.995);
    let lookahead = formula(
        "lookahead2",
        "A_k = (BA_k + MC_k-1 + (MS_k-1 and MC_k-2)) mod 10",
        vec![agreement("S0", 1.0, 0, 0), agreement("S1", 1.0, 2, 2)],
        1.0,
    );
    let ceiling = |class: &str, ceiling: f64, model_wrong: usize, wrong_usual: usize| ClassCeiling {
        class: class.parse().unwrap(),
        questions: 200,
        ceiling,
        model_wrong,
        wrong_usual,
    };
    (vec![exact, lookahead], Ceiling { siblings: 16, per_class: vec![ceiling("S0", 1.0, 0, 0), ceiling("S1", 0.995, 2, 1)] })
}

fn synthetic_analysis_body(model: ModelInfo) -> Analysis {
    let (attention, staircases) = synthetic_attention();
    let (symbolic, ceiling) = synthetic_symbolic();
    let pca = |name: &str, explained: [f64; 3], sep: PcaSeparation| NodePca {
        name: name.into(),
        op: None,
        explained: explained.to_vec(),
        separation: vec![sep],
    };
    let digit_algorithm = |digit: &str, column: usize, position: usize, depth: usize, text: &str| DigitAlgorithm {
        digit: digit.into(),
        column: Some(column),
        position,
        parts: vec![],
        combined_by: Some(format!("P{position}L0M")),
        lookahead_depth: Some(depth),
        text: text.into(),
        fails_when: vec![],
        via: vec![],
        circuit_columns: vec![],
    };
    Analysis {
        schema: Analysis::SCHEMA,
        model,
        options: AnalyzeOptions::default(),
        accuracy: 1.0,
        positions: synthetic_positions(),
        nodes: vec![
            ablation(node(6, Some(0)), [0.0, 0.4, 0.0], &["A1"]),
            ablation(node(7, Some(1)), [0.0, 0.0, 0.9], &["A0"]),
            ablation(node(7, None), [0.0, 0.0, 0.95], &["A0"]),
            ablation(node(5, Some(2)), [0.0, 0.0, 0.0], &[]),
        ],
        attention,
        staircases,
        tags: synthetic_tags(),
        pca: vec![
            pca("P6L0H0", [0.6, 0.2, 0.1], separation("MC_0", 2, 300, [0.7, 0.699], [0.98, 0.55])),
            pca("P7L0H1", [0.3, 0.25, 0.2], separation("BA_0", 10, 300, [0.8, 0.79], [0.9, 0.12])),
        ],
        algorithm: vec![
            digit_algorithm("A1", 1, 6, 1, "A1 = BA_1 + MC_0 @P6L0H0, combined by P6L0M"),
            digit_algorithm("A0", 0, 7, 0, "A0 = BA_0 @P7L0H1"),
        ],
        symbolic,
        ceiling: Some(ceiling),
        dynamics: Some(Dynamics {
            threshold: 0.1,
            total_steps: 2000,
            digits: vec![DigitPhase { digit: "A0".into(), step: Some(300), need_steps: vec![Some(300), None, None] }],
            spread_steps: 400,
            distinct_steps: 3,
            separated: true,
            carry_lags_base: true,
        }),
        findings: Findings {
            computation_starts_at: Some(5),
            starts_at_token: Some("=".into()),
            starts_at_equals: true,
            one_before: ["A2", "A1", "A0"].map(String::from).to_vec(),
            staircase_heads: vec!["L0H0".into()],
            head_offsets: vec![("L0H0".into(), Some(1))],
            head_roles: vec![("L0H0".into(), vec!["MC".into()])],
            lookahead_agreement: Some(1.0),
            derived_agreement: None,
            operator_nodes: vec![],
            sign_nodes: vec![],
        },
        insertion: None,
        stages: vec![],
        seconds: 1.0,
        provenance: None,
        failure_families: vec![],
        logit_attribution: vec![],
        circuit: None,
    }
}

#[test]
fn report_with_analysis_renders_the_analysis_sections() {
    let dir = copy_run("analysed");
    let analysis = synthetic_analysis();
    analysis.save(&dir.join("analysis.json")).unwrap();
    assert_eq!(Analysis::load(&dir.join("analysis.json")).unwrap(), analysis, "the fixture is a valid analysis.json");
    write_report(&dir).unwrap();
    let counts = check_page(&dir);
    assert_eq!(count(&counts, "positions"), 1);
    assert_eq!(count(&counts, "nodes"), 1);
    assert_eq!(count(&counts, "pca"), 3, "explained-variance bars and one scatter per node");
    assert_eq!(count(&counts, "algorithm"), 1);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let doc = parse(&html);
    for id in ANALYSIS_SECTIONS {
        assert!(!section(&doc, id).descendants().any(|n| class_of(&n) == "note"), "section {id} still shows a note");
    }
    let nodes = section(&doc, "nodes");
    assert_eq!(nodes.descendants().filter(|n| class_of(n) == "node").count(), 3, "three useful nodes");
    // The findings are the sentences the terminal summary states, from the one typed source.
    let positions = text_of(section(&doc, "positions"));
    for line in arithlens::analysis::summary::findings(&analysis) {
        assert!(positions.contains(&line), "{line} not in {positions}");
    }
    assert!(positions.contains("Computation starts at position 5 (token '='): nothing before the '=' token matters"), "{positions}");
    let summary = arithlens::analysis::summary(&analysis);
    assert!(summary.contains("staircase: heads L0H0 attend to successive digit pairs"), "{summary}");
    assert!(positions.contains("staircase: heads L0H0 attend to successive digit pairs"), "{positions}");
    let attention = text_of(section(&doc, "attention"));
    assert!(attention.contains("D0 and D'0") && attention.contains("L0H0: a staircase, typical look-back 1 column(s)"), "{attention}");
    let training = text_of(section(&doc, "training"));
    assert!(training.contains("Analysis: steps at which each digit's loss first falls below 0.1: A0 at 300."), "{training}");
    let algo = text_of(section(&doc, "algorithm"));
    assert!(algo.contains("A1 = BA_1 + MC_0 @P6L0H0"), "{algo}");
    assert!(algo.contains("of the model's 2 wrong answers, 1 are its usual answer for their column values"), "{algo}");
    let pca = section(&doc, "pca");
    assert!(pca.descendants().filter(|n| class_of(n) == "pt").count() >= 400);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn pca_section_says_when_no_sub_task_separates_above_chance() {
    let dir = copy_run("chance");
    let mut a = synthetic_analysis();
    a.pca[0].separation[0] = separation("MC_0", 2, 300, [0.7, 0.699], [0.98, 0.55]);
    // Ten classes over 150 points share 6% of the variance by chance alone.
    a.pca[1].separation[0] = separation("BA_0", 10, 150, [0.08, 0.021], [0.16, 0.12]);
    a.save(&dir.join("analysis.json")).unwrap();
    write_report(&dir).unwrap();
    let pca = text_of(section(&parse(&std::fs::read_to_string(dir.join("report.html")).unwrap()), "pca"));
    assert!(pca.contains("P6L0H0: best separated by MC_0 (2 classes, between-class share 0.70 (0.70 above chance), nearest-centroid accuracy 98% (largest class 55%))"), "{pca}");
    assert!(
        pca.contains("P7L0H1: no sub-task separates above chance (best: BA_0, 10 classes, between-class share 0.08 (0.02 above chance)"),
        "{pca}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn report_of_an_inserted_model_shows_what_became_of_the_inserted_heads() {
    let dir = copy_run("inserted");
    let mut a = synthetic_analysis();
    let head = |name: &str, add: f64, sub: f64, verdict: &str| InsertedHead {
        head: name.into(),
        layer: 0,
        index: 0,
        drift: 0.25,
        fail_by_op: vec![(Op::Add, add), (Op::Sub, sub)],
        roles_by_op: vec![(Op::Add, vec!["BA".into()]), (Op::Sub, vec![])],
        source_roles: Some(vec!["BA".into()]),
        verdict: verdict.into(),
    };
    a.insertion = Some(Insertion {
        from: "runs/add_d2".into(),
        every: 0,
        source_note: None,
        heads: vec![head("L0H0", 0.4, 0.0, "kept an addition role (BA)"), head("L0H1", 0.0, 0.3, "took subtraction roles (MD)")],
    });
    // A mixed model's PCA entries are per operation, and say which.
    a.pca[1].op = Some(Op::Sub);
    a.pca[1].separation[0].subtask = "MD_0".into();
    a.save(&dir.join("analysis.json")).unwrap();
    write_report(&dir).unwrap();
    let counts = check_page(&dir);
    assert_eq!(count(&counts, "nodes"), 2, "the node map and the inserted-head bars");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let nodes = text_of(section(&parse(&html), "nodes"));
    assert!(nodes.contains("L0H1: took subtraction roles (MD) (weights moved 25%; in the source model: BA)"), "{nodes}");
    let pca = text_of(section(&parse(&html), "pca"));
    assert!(pca.contains("P7L0H1 (subtraction): best separated by MD_0"), "{pca}");
    assert!(pca.contains("P6L0H0: best separated by MC_0"), "{pca}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_analysis_of_a_newer_schema_is_withheld_with_both_versions_named() {
    let dir = copy_run("newer");
    let mut a = serde_json::to_value(synthetic_analysis()).unwrap();
    a["schema"] = 2.into();
    std::fs::write(dir.join("analysis.json"), serde_json::to_vec(&a).unwrap()).unwrap();
    let err = Analysis::load(&dir.join("analysis.json")).unwrap_err();
    assert!(
        err.to_string().contains("analysis.json: it has schema version 2, but this arithlens reads analysis.json of schema version 1 only"),
        "{err}"
    );
    write_report(&dir).unwrap();
    let doc_text = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let doc = parse(&doc_text);
    for id in ANALYSIS_SECTIONS {
        let note = text_of(section(&doc, id));
        assert!(note.contains("analysis.json holds no usable analysis (it has schema version 2"), "section {id}: {note}");
        assert!(note.contains("arithlens analyze RUN_DIR"), "section {id}: {note}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_run_folder_written_before_schema_versions_reports_as_before() {
    let dir = copy_run("unversioned");
    // eval.json and training.json as an older arithlens wrote them: no schema field.
    for f in ["eval.json", "training.json"] {
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap();
        assert_eq!(v["schema"], 1, "{f} records its schema");
        v.as_object_mut().unwrap().remove("schema");
        std::fs::write(dir.join(f), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }
    let eval = arithlens::eval::EvalReport::load(&dir.join("eval.json")).unwrap();
    assert_eq!(eval.schema, 1, "no field reads as version 1");
    arithlens::train::log::TrainingLog::load(&dir.join("training.json")).unwrap();
    write_report(&dir).unwrap();
    let counts = check_page(&dir);
    assert_eq!((count(&counts, "training"), count(&counts, "accuracy")), (2, 2), "both shown");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(!html.contains("holds no usable") && !html.contains("does not belong"), "nothing withheld");
    std::fs::remove_dir_all(dir).unwrap();
}

/// One addition family at A1 covering 6 of 10 wrong answers (so 4 are left uncovered), as JSON.
fn synthetic_families() -> arithlens::eval::failure_families::FailureFamilies {
    serde_json::from_value(serde_json::json!({
        "families": [{
            "name": "carry lost at A1",
            "description": "A1 loses the carry that comes in when the column below sums to exactly 10.",
            "rule": "carry lost & digit = 1 & below = 10",
            "op": "add",
            "count": 6,
            "share_of_failures": 0.6,
            "precision": 0.8,
            "precision_questions": 2000,
            "classes": {"S1": 6},
            "examples": [["15+05=", "010", "020"]],
            "digits": [1]
        }],
        "failures": 10,
        "uncovered": 4,
        "uncovered_kinds": {"other digit error": 4}
    }))
    .unwrap()
}

fn attribution(digit: &str, position: usize, components: &[(&str, f64)]) -> arithlens::analysis::logit_attribution::DigitAttribution {
    arithlens::analysis::logit_attribution::DigitAttribution {
        digit: digit.into(),
        position,
        components: components.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        centred_logit: components.iter().map(|c| c.1).sum(),
        max_residual: 1e-6,
    }
}

#[test]
fn failure_families_and_logit_attribution_are_shown_in_report_and_summary() {
    let dir = copy_run("families");
    let mut eval = arithlens::eval::EvalReport::load(&dir.join("eval.json")).unwrap();
    eval.ops[0].failure_families = Some(synthetic_families());
    eval.save(&dir.join("eval.json")).unwrap();
    let mut a = synthetic_analysis();
    a.failure_families = vec![synthetic_families()];
    arithlens::analysis::algorithm::attach_failures(&mut a.algorithm, &a.failure_families, 2);
    a.logit_attribution = vec![
        attribution("A1", 6, &[("L0H0", 2.5), ("L0M", 1.0), ("embed", -0.2), ("L0H1", 0.1)]),
        attribution("A0", 7, &[("L0H1", 3.0), ("L0M", -1.5), ("pos_embed", 0.5), ("L0H0", 0.05)]),
    ];
    a.save(&dir.join("analysis.json")).unwrap();
    write_report(&dir).unwrap();
    let counts = check_page(&dir);
    assert_eq!(count(&counts, "nodes"), 2, "the node map and the attribution");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let doc = parse(&html);
    let figure = |id: &str| doc.descendants().find(|n| n.attribute("id") == Some(id)).unwrap_or_else(|| panic!("no {id}"));
    // Shown: the top 3 of each token (L0H0, L0H1, L0M, embed, pos_embed), a bar per token each
    // where the token lists that component (A1 lists no pos_embed, A0 no embed).
    let bars = |n: Node| n.descendants().filter(|n| class_of(n) == "bar").count();
    assert_eq!(bars(figure("fig-logit_attribution")), 8);
    assert_eq!(bars(figure("fig-failure_families_add")), 2, "share and precision of the one family");
    let acc = text_of(section(&doc, "accuracy"));
    assert!(
        acc.contains("F1: A1 loses the carry that comes in when the column below sums to exactly 10. Rule: carry lost & digit = 1"),
        "{acc}"
    );
    assert!(acc.contains("F1 example: 15+05= answered 010, not 020"), "{acc}");
    assert!(acc.contains("4 wrong addition answers fall in no family (other digit error 4)"), "{acc}");
    let algo = text_of(section(&doc, "algorithm"));
    assert!(
        algo.contains("A1 = BA_1 + MC_0 @P6L0H0, combined by P6L0M; fails when A1 loses the carry that comes in when the column below sums to exactly 10 (60% of addition failures)"),
        "{algo}"
    );
    assert!(!algo.contains("A0 = BA_0 @P7L0H1; fails"), "A0 has no family: {algo}");
    let summary = arithlens::analysis::summary(&a);
    for line in [
        "A1 (at position 6): L0H0 +2.50, L0M +1.00, embed -0.20 (centred logit 3.40)",
        "addition: 1 failure family cover 60% of the 10 wrong answers examined",
        "addition:   A1 loses the carry that comes in when the column below sums to exactly 10 (6 wrong answers, 60%; 80% of 2000 questions drawn to match are wrong); e.g. 15+05= answered 010, not 020",
        "addition:   not covered: 4 wrong answers (other digit error 4)",
        "; fails when A1 loses",
    ] {
        assert!(summary.contains(line), "{line} not in {summary}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn artifacts_without_families_or_attribution_still_load_and_report() {
    let dir = copy_run("before_families");
    // eval.json and analysis.json as arithlens wrote them before the new keys.
    let mut eval: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("eval.json")).unwrap()).unwrap();
    for op in eval["ops"].as_array_mut().unwrap() {
        assert!(op.as_object_mut().unwrap().remove("failure_families").is_some(), "eval.json records the families");
    }
    std::fs::write(dir.join("eval.json"), serde_json::to_vec(&eval).unwrap()).unwrap();
    let mut a = serde_json::to_value(synthetic_analysis()).unwrap();
    for key in ["failure_families", "logit_attribution", "circuit"] {
        a.as_object_mut().unwrap().remove(key).unwrap();
    }
    for d in a["algorithm"].as_array_mut().unwrap() {
        for key in ["fails_when", "via", "circuit_columns"] {
            d.as_object_mut().unwrap().remove(key).unwrap();
        }
    }
    for key in ["circuit_questions", "circuit_edges", "eap_steps"] {
        a["options"].as_object_mut().unwrap().remove(key).unwrap();
    }
    std::fs::write(dir.join("analysis.json"), serde_json::to_vec(&a).unwrap()).unwrap();
    assert_eq!(arithlens::eval::EvalReport::load(&dir.join("eval.json")).unwrap().ops[0].failure_families, None);
    let loaded = Analysis::load(&dir.join("analysis.json")).unwrap();
    let mut before = synthetic_analysis();
    (before.options.circuit_questions, before.options.circuit_edges) = (0, 0);
    assert_eq!(loaded, before, "the new keys default to empty, and no circuit stage");
    write_report(&dir).unwrap();
    let counts = check_page(&dir);
    assert_eq!((count(&counts, "accuracy"), count(&counts, "nodes")), (2, 1), "the figures of before");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(!html.contains("holds no usable") && !html.contains("fails when"), "nothing withheld, no family invented");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A circuit edge of the synthetic model: `sender -> receiver.input` carrying column `col`.
fn circuit_edge(sender: Node3, receiver: Node3, input: Input, col: usize, drop: f64) -> CircuitEdge {
    let edge = Edge { sender, receiver, input };
    let class = |class: &str, d: f64| ClassEffect { class: class.into(), questions: 50, logprob_drop: d, accuracy_drop: d / 10.0 };
    CircuitEdge {
        name: edge.name(),
        edge,
        corruption: Corruption::Column { col },
        receiver_share: 0.5,
        effect: DigitEffect {
            digit: "A1".into(),
            logprob_drop: drop,
            logprob_se: 0.05,
            logit_drop: 2.0 * drop,
            prob_drop: drop / 4.0,
            margin_drop: drop,
            accuracy_drop: 0.1,
            total_logprob_drop: 2.0 * drop,
            classes: vec![class("S0", 0.0), class("S1", 2.0 * drop)],
        },
        eap_drop: 1.5 * drop,
    }
}

type Node3 = arithlens::analysis::naming::Node;

#[test]
fn the_circuit_is_drawn_per_digit_with_its_edges_and_tabled() {
    let dir = copy_run("circuit");
    let mut a = synthetic_analysis();
    let (h, m) = (node(6, Some(0)), node(6, None));
    let l1 = Node3 { pos: 6, layer: 1, head: None };
    let digit = |name: &str, edges: Vec<CircuitEdge>| DigitCircuit { digit: name.into(), position: 6, nodes: vec![], edges };
    let check = |col| CorruptionCheck {
        corruption: Corruption::Column { col },
        tested: 3,
        agreement: Agreement { edges: 6, spearman: 0.75, top_k: 10, shared_top_k: 5 },
    };
    a.circuit = Some(Circuit {
        options: CircuitOptions::default(),
        questions: 100,
        candidates: 3,
        checks: vec![check(0), check(1)],
        digits: vec![
            digit(
                "A1",
                vec![
                    circuit_edge(m, l1, Input::Mlp, 0, 1.42),
                    circuit_edge(h, m, Input::Mlp, 1, 0.7),
                    circuit_edge(h, l1, Input::Mlp, 1, 0.2),
                ],
            ),
            digit("A0", vec![]),
        ],
        note: None,
    });
    arithlens::analysis::algorithm::attach_circuit(&mut a.algorithm, a.circuit.as_ref().unwrap());
    a.save(&dir.join("analysis.json")).unwrap();
    write_report(&dir).unwrap();
    let counts = check_page(&dir);
    assert_eq!(count(&counts, "nodes"), 2, "the node map and A1's circuit (A0 has no edge)");
    let svg = std::fs::read_to_string(dir.join("figures/circuit_A1.svg")).unwrap();
    let doc = parse(&svg);
    let edges: Vec<Node> = doc.descendants().filter(|n| class_of(n) == "edge").collect();
    assert_eq!(edges.len(), 3);
    let title = |n: Node| n.children().find(|c| c.has_tag_name("title")).and_then(|t| t.text()).unwrap_or_default().to_string();
    let tips: Vec<String> = edges.iter().map(|e| title(*e)).collect();
    assert!(tips[0].starts_with("P6L0M -> P6L1M.in: column 0 lowers A1's log probability by 1.42 nats"), "{tips:?}");
    assert!(tips[0].contains("edge attribution's estimate 2.13; by class: S0 0.00, S1 2.84"), "{tips:?}");
    let boxes: Vec<String> = doc.descendants().filter(|n| class_of(n) == "node").map(title).collect();
    assert_eq!(boxes, ["P6L0M", "P6L0H0", "P6L1M"], "in node order");
    let labels: Vec<&str> = doc.descendants().filter(|n| class_of(n) == "edge-label").filter_map(|n| n.text()).collect();
    assert_eq!(labels, ["c0", "c1", "c1"]);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let page = parse(&html);
    let nodes = text_of(section(&page, "nodes"));
    assert!(nodes.contains("No edge among the useful nodes carries a column's information into A0."), "{nodes}");
    let cells: Vec<&str> = section(&page, "nodes").descendants().filter(|n| n.has_tag_name("td")).filter_map(|n| n.text()).collect();
    let row = ["A1", "P6L0M -> P6L1M.in", "column 0", "1.420", "10.0%", "2.840", "2.130"];
    assert!(cells.windows(7).any(|w| w == row), "the largest edge's row: {cells:?}");
    assert!(cells.windows(4).any(|w| w == ["column 1", "3", "0.75", "5 of 6"]), "the agreement row: {cells:?}");
    let algo = text_of(section(&page, "algorithm"));
    assert!(algo.contains("; paths: P6L0M -> P6L1M.in (column 0, 1.42 nats)"), "{algo}");
    std::fs::remove_dir_all(dir).unwrap();
}
