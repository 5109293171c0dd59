//! `zoo table`: one row per model from its run folder (only files current by provenance),
//! beside the figures the papers report, written as `ROOT/zoo.md`, `ROOT/zoo.json` and
//! `ROOT/zoo.html` (a self-contained page with the table, links to each model's report and a
//! figure of nines per model, ours against the papers').
//!
//! zoo.json: `{zoo, manifest, rows[]}`; each row `{model, preset, ops[], digits, layers, heads,
//! steps, seed, final_loss, per_op[{op, questions, exhaustive, accuracy, failures, nines,
//! paper_nines, meets}], computation_starts, head_roles[], paper_loss, paper_note,
//! paper_unverified, report, missing[], timing{train_seconds, steps_per_s, threads}}`. Everything
//! but `timing` is the same for the same models whatever machine or engine ran them.

use super::fresh::job_state;
use super::graph::{Job, Stage};
use super::manifest::{op_key, Zoo};
use crate::report::svg::{bar_chart, escape_xml, ChartSpec};
use crate::run_folder::RunFolder;
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

/// One operation's accuracy on the evaluation's random (or exhaustive) questions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpRow {
    /// `add` or `sub`.
    pub op: String,
    /// Questions asked.
    pub questions: u64,
    /// Every question asked (n <= 3).
    pub exhaustive: bool,
    /// Share answered correctly.
    pub accuracy: f64,
    /// Questions answered wrongly.
    pub failures: u64,
    /// floor(log10(questions / max(failures, 1))).
    pub nines: u32,
    /// The papers' nines for this operation.
    pub paper_nines: Option<u32>,
    /// Whether ours are at least the papers'.
    pub meets: Option<bool>,
}

/// Wall-clock figures of training (differ between machines and runs).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimingRow {
    /// Seconds trained, every sitting together.
    pub train_seconds: f64,
    /// Steps per second of the latest sitting.
    pub steps_per_s: f64,
    /// Threads of the latest sitting.
    pub threads: usize,
}

/// One model's row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Run folder name.
    pub model: String,
    /// Preset.
    pub preset: String,
    /// Operations (`add`, `sub`).
    pub ops: Vec<String>,
    /// Digits per operand.
    pub digits: usize,
    /// Layers.
    pub layers: usize,
    /// Heads per layer.
    pub heads: usize,
    /// Training steps.
    pub steps: u64,
    /// Seed of the weights.
    pub seed: u64,
    /// Mean training loss of the last record.
    pub final_loss: Option<f64>,
    /// Accuracy per operation.
    pub per_op: Vec<OpRow>,
    /// First useful position and its token (`P11 (=)`), from the analysis.
    pub computation_starts: Option<String>,
    /// Heads with the sub-task kinds their nodes were tagged with (`L0H1: BA MC`).
    pub head_roles: Vec<String>,
    /// The papers' final loss.
    pub paper_loss: Option<f64>,
    /// The papers' note on their figures.
    pub paper_note: Option<String>,
    /// Whether a paper figure is unverified.
    pub paper_unverified: bool,
    /// The report, relative to the root.
    pub report: Option<String>,
    /// Stages not current (their figures are left out).
    pub missing: Vec<String>,
    /// Training time and speed.
    pub timing: Option<TimingRow>,
}

/// zoo.json.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ZooTable {
    /// The zoo's name.
    pub zoo: String,
    /// The manifest's file name.
    pub manifest: String,
    /// One row per model, in manifest order.
    pub rows: Vec<Row>,
}

/// The table of the zoo's run folders as they are now.
pub fn table(zoo: &Zoo) -> ZooTable {
    let rows = (0..zoo.models.len()).map(|i| row(zoo, i)).collect();
    let manifest = zoo.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    ZooTable { zoo: zoo.name.clone(), manifest, rows }
}

fn row(zoo: &Zoo, i: usize) -> Row {
    let m = &zoo.models[i];
    let c = &m.config;
    let run = RunFolder::new(zoo.run_dir(i));
    let done = |stage| m.stages.contains(&stage) && job_state(zoo, Job { model: i, stage }).is_done();
    let missing = m.stages.iter().filter(|&&s| !done(s)).map(|s| s.name().to_string()).collect();
    let paper = m.paper.clone().unwrap_or_default();
    let mut r = Row {
        model: m.name.clone(),
        preset: m.preset.clone(),
        ops: c.task.ops().into_iter().map(|o| op_key(o).to_string()).collect(),
        digits: c.task.n_digits,
        layers: c.model.n_layers,
        heads: c.model.n_heads,
        steps: c.steps,
        seed: c.model.seed,
        final_loss: None,
        per_op: Vec::new(),
        computation_starts: None,
        head_roles: Vec::new(),
        paper_loss: paper.loss,
        paper_note: paper.note.clone(),
        paper_unverified: paper.unverified,
        report: done(Stage::Report).then(|| format!("{}/{}", m.name, crate::run_folder::files::REPORT)),
        missing,
        timing: None,
    };
    if done(Stage::Train) {
        let log: Option<crate::train::log::TrainingLog> = crate::provenance::read_parsed(&run.training()).ok();
        r.final_loss = log.and_then(|l| l.records.last().map(|x| x.loss));
        r.timing = crate::train::timing::Timing::load(run.dir()).map(|t| TimingRow {
            train_seconds: t.elapsed_s,
            steps_per_s: t.steps_per_s,
            threads: t.threads,
        });
    }
    if done(Stage::Eval) {
        if let Ok(e) = crate::provenance::read_parsed::<crate::eval::EvalReport>(&run.eval()) {
            r.per_op = e.ops.iter().map(|o| op_row(o, &paper)).collect();
        }
    }
    if done(Stage::Analyze) {
        if let Ok(a) = crate::provenance::read_parsed::<crate::analysis::Analysis>(&run.analysis()) {
            let f = &a.findings;
            r.computation_starts = f.computation_starts_at.map(|p| format!("P{p} ({})", f.starts_at_token.clone().unwrap_or_default()));
            r.head_roles =
                f.head_roles.iter().filter(|(_, kinds)| !kinds.is_empty()).map(|(h, kinds)| format!("{h}: {}", kinds.join(" "))).collect();
        }
    }
    r
}

fn op_row(o: &crate::eval::accuracy::OpReport, paper: &super::manifest::PaperFigures) -> OpRow {
    let key = op_key(o.op).to_string();
    let paper_nines = paper.nines.get(&key).copied();
    OpRow {
        op: key,
        questions: o.questions,
        exhaustive: o.exhaustive,
        accuracy: o.accuracy,
        failures: o.failures,
        nines: o.nines,
        paper_nines,
        meets: paper_nines.map(|p| o.nines >= p),
    }
}

/// One cell per operation: `add 99.9999% (1 wrong of 1,000,000), 6 nines; paper 6: meets`.
fn op_cell(r: &Row) -> String {
    if r.per_op.is_empty() {
        return "-".into();
    }
    let cells: Vec<String> = r
        .per_op
        .iter()
        .map(|o| {
            let paper = match (o.paper_nines, o.meets) {
                (Some(p), Some(m)) => format!("; paper {p}: {}", if m { "meets" } else { "below" }),
                _ => String::new(),
            };
            let all = if o.exhaustive { "every question" } else { "random" };
            format!("{} {:.4}% ({} wrong of {}, {all}), {} nines{paper}", o.op, 100.0 * o.accuracy, o.failures, o.questions, o.nines)
        })
        .collect();
    cells.join("; ")
}

fn loss_cell(r: &Row) -> String {
    let ours = r.final_loss.map_or("-".into(), |l| format!("{l:.2e}"));
    match r.paper_loss {
        Some(p) => format!("{ours} (paper {p:.1e})"),
        None => ours,
    }
}

/// The table's columns, and a row's cells (plain text), shared by zoo.md and zoo.html.
const HEAD: [&str; 12] = [
    "model",
    "ops",
    "digits",
    "layers",
    "heads",
    "steps",
    "seed",
    "final loss",
    "accuracy per op (papers' nines)",
    "training",
    "computation starts",
    "heads' roles",
];

fn cells(r: &Row) -> Vec<String> {
    let timing =
        r.timing.as_ref().map_or("-".into(), |t| format!("{} at {:.1} steps/s", super::progress::duration(t.train_seconds), t.steps_per_s));
    let mut note = r.paper_note.clone().unwrap_or_default();
    if r.paper_unverified {
        note = format!("UNVERIFIED: {note}");
    }
    let mut accuracy = op_cell(r);
    if !note.is_empty() {
        accuracy.push_str(&format!(" [{note}]"));
    }
    vec![
        r.model.clone(),
        r.ops.join("+"),
        r.digits.to_string(),
        r.layers.to_string(),
        r.heads.to_string(),
        r.steps.to_string(),
        r.seed.to_string(),
        loss_cell(r),
        accuracy,
        timing,
        r.computation_starts.clone().unwrap_or_else(|| "-".into()),
        if r.head_roles.is_empty() { "-".into() } else { r.head_roles.join("; ") },
    ]
}

/// zoo.md.
pub fn markdown(t: &ZooTable) -> String {
    let mut s = format!("# Zoo {} ({})\n\n", t.zoo, t.manifest);
    let _ = writeln!(s, "| {} | report |", HEAD.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(HEAD.len() + 1));
    for r in &t.rows {
        let c: Vec<String> = cells(r).into_iter().map(|c| c.replace('|', "\\|")).collect();
        let link = r.report.as_ref().map_or_else(|| format!("missing: {}", r.missing.join(", ")), |p| format!("[report]({p})"));
        let _ = writeln!(s, "| {} | {link} |", c.join(" | "));
    }
    s.push_str(&format!("\n{}\n", footnote()));
    s
}

fn footnote() -> &'static str {
    "Nines: floor(log10(questions / max(failures, 1))), so 0 or 1 failures in a million are six nines (a lower bound when none fail); \
     a model meets the paper when its nines are at least the paper's for every operation. Final loss: the mean training loss of the last record."
}

/// The figure: nines per model and operation, ours beside the papers'.
pub fn figure(t: &ZooTable) -> String {
    let mut cats = Vec::new();
    let (mut ours, mut papers) = (Vec::new(), Vec::new());
    for r in &t.rows {
        for o in &r.per_op {
            cats.push(if r.per_op.len() > 1 { format!("{} {}", r.model, o.op) } else { r.model.clone() });
            ours.push(o.nines as f64);
            papers.push(o.paper_nines.map_or(f64::NAN, f64::from));
        }
    }
    let spec =
        ChartSpec::new("Nines per model: ours and the papers'", "model (operation)", "nines on the evaluation's questions", 960.0, 420.0);
    bar_chart(&spec, &cats, &[("ours".into(), ours), ("papers'".into(), papers)])
}

/// zoo.html: the table with links to each report, and the figure; self-contained.
pub fn html(t: &ZooTable) -> String {
    let mut s = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n");
    let _ = writeln!(s, "<title>Zoo {}</title>", escape_xml(&t.zoo));
    s.push_str("<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;font-size:13px}");
    s.push_str(
        "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}th{background:#f3f3f3}</style>\n</head>\n<body>\n",
    );
    let _ = writeln!(s, "<h1>Zoo {} ({})</h1>", escape_xml(&t.zoo), escape_xml(&t.manifest));
    s.push_str("<section id=\"table\">\n<h2>Models</h2>\n<table>\n<tr>");
    for h in HEAD.iter().chain(std::iter::once(&"report")) {
        let _ = write!(s, "<th>{}</th>", escape_xml(h));
    }
    s.push_str("</tr>\n");
    for r in &t.rows {
        s.push_str("<tr>");
        for c in cells(r) {
            let _ = write!(s, "<td>{}</td>", escape_xml(&c));
        }
        let link = match &r.report {
            Some(p) => format!("<a href=\"{}\">report</a>", escape_xml(p)),
            None => escape_xml(&format!("missing: {}", r.missing.join(", "))),
        };
        let _ = writeln!(s, "<td>{link}</td></tr>");
    }
    let _ = writeln!(s, "</table>\n<p>{}</p>\n</section>", escape_xml(footnote()));
    s.push_str("<section id=\"figure\">\n<h2>Nines per model</h2>\n");
    let svg = figure(t);
    // The standalone SVG's XML declaration has no place inside HTML.
    let inline = svg.find("<svg").map_or(svg.as_str(), |p| &svg[p..]);
    let _ = writeln!(s, "{inline}\n<p>Bars: nines on the evaluation's questions per model and operation; the papers' where they report one.</p>\n</section>");
    s.push_str("</body>\n</html>\n");
    s
}

/// Writes zoo.md, zoo.json and zoo.html under the zoo's root (each atomically); returns their paths.
pub fn write_table(zoo: &Zoo) -> Result<Vec<PathBuf>, String> {
    let t = table(zoo);
    std::fs::create_dir_all(&zoo.root).map_err(|e| format!("cannot create {}: {e}", zoo.root.display()))?;
    let json = serde_json::to_string_pretty(&t).map_err(|e| e.to_string())? + "\n";
    let mut paths = Vec::new();
    for (name, text) in [("zoo.md", markdown(&t)), ("zoo.json", json), ("zoo.html", html(&t))] {
        let path = zoo.root.join(name);
        crate::io::atomic::write_atomic(&path, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}
