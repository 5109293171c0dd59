//! The report as a reader sees it: a tiny model is trained and evaluated, the report rendered,
//! and the HTML and every SVG parsed; each section must exist and each figure hold data marks
//! and a caption. With a synthetic analysis.json (schema 1 of `crate::analysis::Analysis`) the
//! analysis sections render; without it they say to run `arithlens analyze`.

use arithlens::eval::{evaluate, EvalOptions};
use arithlens::progress::{ignore, Stop};
use arithlens::report::write_report;
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
        let model = arithlens::task_model::TaskModel::load(&dir).unwrap();
        let opts = EvalOptions { questions: 2000, per_class: 200, ..Default::default() };
        let eval = evaluate(&model, &opts, &Stop::new(), &mut ignore).unwrap();
        arithlens::io::atomic::write_json(&dir.join("eval.json"), &eval).unwrap();
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

/// A minimal analysis.json in the schema of `crate::analysis::Analysis` (version 1) for the tiny
/// model (2 digits: positions 0-8, answer A2 A1 A0 predicted at 5, 6, 7), recording the shared
/// model's hash so the report shows it.
fn synthetic_analysis() -> serde_json::Value {
    let sha = arithlens::provenance::sha256_file(&trained_run().join("model.safetensors")).unwrap();
    let mut a = synthetic_analysis_body();
    a["provenance"] = serde_json::json!({"model_sha256": sha, "options": {}});
    a
}

fn synthetic_analysis_body() -> serde_json::Value {
    let node = |pos: u64, head: Option<u64>| serde_json::json!({"pos": pos, "layer": 0, "head": head});
    let abl = |hook: &str, p: u64, tok: &str, f: [f64; 3]| serde_json::json!({"hook": hook, "position": p, "token": tok, "fail_rate": f[0].max(f[1]).max(f[2]), "digit_fail": f});
    serde_json::json!({
        "schema": 1,
        "options": {"questions": 1000, "threshold": 0.01, "per_class": 200},
        "accuracy": 1.0,
        "positions": {
            "ablations": [abl("blocks.0.hook_resid_post", 5, "=", [0.9, 0.0, 0.0]), abl("blocks.0.hook_resid_post", 6, "A2", [0.0, 0.8, 0.0]), abl("blocks.0.hook_resid_post", 7, "A1", [0.0, 0.0, 0.7])],
            "useful": [5, 6, 7], "equals_position": 5, "first_useful": 5,
            "digits": [{"digit": "A2", "predicted_at": 5, "computed_at": [5], "one_before": true}, {"digit": "A1", "predicted_at": 6, "computed_at": [6], "one_before": true}, {"digit": "A0", "predicted_at": 7, "computed_at": [7], "one_before": true}]
        },
        "nodes": [
            {"name": "P6L0H0", "node": node(6, Some(0)), "fail_rate": 0.4, "digit_fail": [0.0, 0.4, 0.0], "impact": ["A1"], "useful": true},
            {"name": "P7L0H1", "node": node(7, Some(1)), "fail_rate": 0.9, "digit_fail": [0.0, 0.0, 0.9], "impact": ["A0"], "useful": true},
            {"name": "P7L0M", "node": node(7, None), "fail_rate": 0.95, "digit_fail": [0.0, 0.0, 0.95], "impact": ["A0"], "useful": true},
            {"name": "P5L0H2", "node": node(5, Some(2)), "fail_rate": 0.0, "digit_fail": [0.0, 0.0, 0.0], "impact": [], "useful": false}
        ],
        "attention": [{"name": "P6L0H0", "node": node(6, Some(0)), "top": [{"position": 4, "token": "D'0", "weight": 0.5}, {"position": 1, "token": "D0", "weight": 0.4}], "summary": "D0 and D'0", "column": 0, "column_weight": 0.9}],
        "staircases": [{"layer": 0, "head": 0, "query_positions": [5, 6, 7], "source_tokens": ["D1", "D0", "+", "D'1", "D'0", "="], "weights": [[0.5, 0.0, 0.0, 0.5, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0, 0.5, 0.0], [0.0, 0.5, 0.0, 0.0, 0.5, 0.0]], "top_column": [1, 0, 0], "offset": [1, 1, 0], "typical_offset": 1, "descending_steps": 1, "is_staircase": true}],
        "tags": [{"name": "P6L0H0", "node": node(6, Some(0)), "impact": [1], "tests": [{"subtask": "MC_0", "task": {"kind": "Make", "col": 0, "op": "add"}, "informative": 50, "match_rate": 0.95}], "tags": ["MC_0"]},
                 {"name": "P7L0H1", "node": node(7, Some(1)), "impact": [2], "tests": [], "tags": ["BA_0"]}],
        "pca": [{"name": "P6L0H0", "explained": [0.6, 0.2, 0.1], "separation": [{"subtask": "MC_0", "classes": 2, "between_share": 0.7, "centroid_accuracy": 0.98}]},
                {"name": "P7L0H1", "explained": [0.3, 0.25, 0.2], "separation": [{"subtask": "BA_0", "classes": 10, "between_share": 0.8, "centroid_accuracy": 0.9}]}],
        "algorithm": [{"digit": "A1", "column": 1, "position": 6, "parts": [], "combined_by": "P6L0M", "lookahead_depth": 1, "text": "A1 = BA_1 + MC_0 @P6L0H0, combined by P6L0M"},
                      {"digit": "A0", "column": 0, "position": 7, "parts": [], "combined_by": "P7L0M", "lookahead_depth": 0, "text": "A0 = BA_0 @P7L0H1"}],
        "symbolic": [{"name": "exact", "description": "exact addition", "per_class": [{"class": "S0", "questions": 200, "model_accuracy": 1.0, "agreement": 1.0, "model_wrong": 0, "wrong_reproduced": 0}, {"class": "S1", "questions": 200, "model_accuracy": 1.0, "agreement": 0.99, "model_wrong": 2, "wrong_reproduced": 0}], "mean_agreement": 0.995},
                     {"name": "lookahead2", "description": "A_k = (BA_k + MC_k-1 + (MS_k-1 and MC_k-2)) mod 10", "per_class": [{"class": "S0", "questions": 200, "model_accuracy": 1.0, "agreement": 1.0, "model_wrong": 0, "wrong_reproduced": 0}, {"class": "S1", "questions": 200, "model_accuracy": 1.0, "agreement": 1.0, "model_wrong": 2, "wrong_reproduced": 2}], "mean_agreement": 1.0}],
        "ceiling": {"siblings": 16, "per_class": [{"class": "S0", "questions": 200, "ceiling": 1.0, "model_wrong": 0, "wrong_usual": 0}, {"class": "S1", "questions": 200, "ceiling": 0.995, "model_wrong": 2, "wrong_usual": 1}]},
        "dynamics": {"threshold": 0.1, "total_steps": 2000, "digits": [{"digit": "A0", "step": 300, "need_steps": [300, null, null]}], "spread_steps": 400, "distinct_steps": 3, "separated": true, "carry_lags_base": true},
        "findings": {"computation_starts_at": 5, "starts_at_token": "=", "starts_at_equals": true, "one_before": ["A2", "A1", "A0"], "staircase_heads": ["L0H0"], "head_offsets": [["L0H0", 1]], "head_roles": [["L0H0", ["MC"]]], "lookahead_agreement": 1.0, "derived_agreement": null},
        "seconds": 1.0
    })
}

#[test]
fn report_with_analysis_renders_the_analysis_sections() {
    let dir = copy_run("analysed");
    arithlens::io::atomic::write_json(&dir.join("analysis.json"), &synthetic_analysis()).unwrap();
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
    a["pca"][0]["separation"][0] = serde_json::json!({"subtask": "MC_0", "classes": 2, "points": 300, "between_share": 0.7,
        "adjusted_share": 0.699, "centroid_accuracy": 0.98, "majority_share": 0.55});
    // Ten classes over 150 points share 6% of the variance by chance alone.
    a["pca"][1]["separation"][0] = serde_json::json!({"subtask": "BA_0", "classes": 10, "points": 150, "between_share": 0.08,
        "adjusted_share": 0.021, "centroid_accuracy": 0.16, "majority_share": 0.12});
    arithlens::io::atomic::write_json(&dir.join("analysis.json"), &a).unwrap();
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
    let head = |name: &str, add: f64, sub: f64, verdict: &str| {
        serde_json::json!({"head": name, "layer": 0, "index": 0, "drift": 0.25, "fail_by_op": [["add", add], ["sub", sub]],
                           "roles_by_op": [["add", ["BA"]], ["sub", []]], "source_roles": ["BA"], "verdict": verdict})
    };
    a["insertion"] = serde_json::json!({"from": "runs/add_d2", "every": 0, "source_note": null,
        "heads": [head("L0H0", 0.4, 0.0, "kept an addition role (BA)"), head("L0H1", 0.0, 0.3, "took subtraction roles (MD)")]});
    // A mixed model's PCA entries are per operation, and say which.
    a["pca"][1]["op"] = "sub".into();
    a["pca"][1]["separation"][0]["subtask"] = "MD_0".into();
    arithlens::io::atomic::write_json(&dir.join("analysis.json"), &a).unwrap();
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
fn pca_figures_use_the_questions_their_sub_task_is_defined_on() {
    use arithlens::report::pca_view::figure;
    use arithlens::task_model::TaskModel;
    // An untrained mixed model: the projection needs only a forward pass.
    let m = TaskModel::from_file(Trainer::new(TrainConfig::preset("tiny_mix").unwrap()).unwrap().model_file(), "test").unwrap();
    let node = format!("P{}L0H0", m.answer_start());
    for (task, sign) in [("NB_1", "-"), ("MB_1", "+"), ("MC_0", "+")] {
        let f = figure(&m, &node, task).unwrap_or_else(|| panic!("no figure for {task}"));
        let doc = parse(&f.svg);
        // Every point's hover text is its question; a subtraction sub-task of negative answers
        // shows only questions with negative answers, an addition one only additions.
        let labels: Vec<String> =
            doc.descendants().filter(|n| n.has_tag_name("title")).filter_map(|n| n.text()).map(String::from).collect();
        let questions: Vec<&String> = labels.iter().filter(|t| t.contains('=')).collect();
        assert!(questions.len() > 100, "{task}: {} points", questions.len());
        let op = if task.starts_with("MC") { '+' } else { '-' };
        assert!(questions.iter().all(|q| q.contains(op)), "{task}: {questions:?}");
        let answers: Vec<char> = questions.iter().map(|q| q.split('=').nth(1).and_then(|a| a.chars().next()).unwrap_or(' ')).collect();
        assert!(answers.iter().all(|&c| c.to_string() == sign), "{task}: {questions:?}");
        assert!(f.caption.contains("random questions the sub-task applies to"), "{}", f.caption);
    }
    assert!(figure(&m, &node, "XX_1").is_none() && figure(&m, &node, "MC_9").is_none());
}
