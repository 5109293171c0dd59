//! The mapping from RUN_DIR/analysis.json (written by `arithlens analyze`, schema version 1 of
//! `crate::analysis::Analysis`) to the report's figures and text for sections 4-8. The file is
//! read as untyped JSON so the report builds and degrades gracefully without the analysis module
//! or with an older or newer file: each part renders when its fields exist. Adjust field names
//! here, and only here, when the schema changes.

use super::page::{Block, Cell, Figure, Table};
use super::svg::{bar_chart, heatmap, node_grid, ChartSpec, GridCell, HeatmapOpts};
use crate::analysis::subtasks::{NodePca, PcaSeparation};
use serde_json::Value;

/// Field `k` of `v` as an array (empty when absent).
fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Field `k` of `v` as a number (NaN when absent).
fn num(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// Field `k` of `v` as text (empty when absent; numbers are written out).
fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    arr(v, k).iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string)).collect()
}

fn pct_opts() -> HeatmapOpts {
    HeatmapOpts { min: Some(0.0), max: Some(1.0), diverging: false, cell_text: true, value_fmt_pct: true }
}

/// Answer token names, from the positions analysis (`digits[].digit`).
fn answer_names(a: &Value) -> Vec<String> {
    arr(&a["positions"], "digits").iter().map(|d| text(d, "digit")).collect()
}

fn threshold(a: &Value) -> f64 {
    a.get("options").map_or(f64::NAN, |o| num(o, "threshold"))
}

/// Section 4: ablation failure rate per (answer digit, position), one heat map per hook.
pub fn positions(a: &Value) -> Vec<Block> {
    let abl = arr(&a["positions"], "ablations");
    let names = answer_names(a);
    let mut hooks: Vec<String> = Vec::new();
    abl.iter().map(|x| text(x, "hook")).for_each(|h| {
        if !hooks.contains(&h) {
            hooks.push(h)
        }
    });
    let mut out = Vec::new();
    for hook in hooks {
        let rows: Vec<&Value> = abl.iter().filter(|x| text(x, "hook") == hook).collect();
        let cols: Vec<String> = rows.iter().map(|x| format!("P{} {}", num(x, "position"), text(x, "token"))).collect();
        let values: Vec<Vec<f64>> = (0..names.len())
            .map(|d| rows.iter().map(|x| arr(x, "digit_fail").get(d).and_then(Value::as_f64).unwrap_or(f64::NAN)).collect())
            .collect();
        let svg = heatmap(
            &ChartSpec::new(&format!("Ablating {hook}"), "ablated position (token)", "answer digit", 760.0, 300.0),
            &cols,
            &names,
            &values,
            &pct_opts(),
        );
        let caption = format!(
            "Mean ablation of {hook} at one position at a time (replaced by its mean over the analysis question set, {} questions): \
             share of questions whose answer digit (row) changes. Columns with colour are where the computation happens.",
            a.get("options").map_or(String::new(), |o| text(o, "questions"))
        );
        out.push(Block::Figure(Figure::new(&format!("positions_{}", hook.replace('.', "_")), svg, caption)));
    }
    let useful = strings(&a["positions"], "useful");
    if !useful.is_empty() {
        out.push(Block::Text(format!(
            "Useful positions (an ablation there changes at least {:.0}% of answers): {}.",
            100.0 * threshold(a),
            useful.join(", ")
        )));
    }
    out
}

/// Section 5, from the analysis: what each useful head node attends to.
pub fn attention_table(a: &Value) -> Vec<Block> {
    let rows: Vec<Vec<Cell>> = arr(a, "attention")
        .iter()
        .map(|n| {
            let top: Vec<String> = arr(n, "top").iter().map(|s| format!("{} {:.0}%", text(s, "token"), 100.0 * num(s, "weight"))).collect();
            vec![text(n, "name").into(), text(n, "summary").into(), top.join(", ").into()]
        })
        .collect();
    if rows.is_empty() {
        return Vec::new();
    }
    let caption =
        "Per useful head node, the source tokens it attends to (mean attention weight over the analysis sample, sources of at least 5%).";
    let mut out = vec![Block::Table(Table {
        head: ["node", "attends to", "sources (weight)"].map(String::from).to_vec(),
        rows,
        caption: caption.into(),
    })];
    let stairs: Vec<String> = arr(a, "staircases")
        .iter()
        .map(|s| {
            let kind = if s.get("is_staircase").and_then(Value::as_bool) == Some(true) { "a staircase" } else { "no staircase" };
            format!("L{}H{}: {kind}, typical look-back {} column(s)", text(s, "layer"), text(s, "head"), text(s, "typical_offset"))
        })
        .collect();
    if !stairs.is_empty() {
        out.push(Block::List(stairs));
    }
    out
}

/// The role of a node for colouring: the kind of its best tag (`MC_2` -> `MC`), else "untagged".
fn role(tags: &[String]) -> String {
    tags.first().map_or("untagged".into(), |t| t.split('_').next().unwrap_or(t).to_string())
}

/// Section 6: useful nodes as a grid (position x layer/head/MLP).
pub fn node_map(a: &Value) -> Vec<Block> {
    let useful: Vec<&Value> = arr(a, "nodes").iter().filter(|n| n.get("useful").and_then(Value::as_bool) == Some(true)).collect();
    if useful.is_empty() {
        return vec![Block::Note("The analysis found no useful node (no single ablation reached the failure threshold).".into())];
    }
    let node = |n: &Value| (n["node"]["pos"].as_u64().unwrap_or(0), n["node"]["layer"].as_u64().unwrap_or(0), n["node"]["head"].as_u64());
    let mut cols: Vec<u64> = useful.iter().map(|n| node(n).0).collect();
    cols.sort_unstable();
    cols.dedup();
    let mut rows: Vec<(u64, Option<u64>)> = useful.iter().map(|n| (node(n).1, node(n).2)).collect();
    rows.sort_by_key(|&(l, h)| (l, h.unwrap_or(u64::MAX)));
    rows.dedup();
    // A node's own tags, else those of a group it was patched with (e.g. two heads sharing BA).
    let tags_of = |name: &str| {
        let own = arr(a, "tags").iter().find(|t| text(t, "name") == name).map(|t| strings(t, "tags")).unwrap_or_default();
        if !own.is_empty() {
            return own;
        }
        let in_group = |t: &&Value| text(t, "name").split('+').count() > 1 && text(t, "name").split('+').any(|n| n == name);
        arr(a, "tags").iter().find(in_group).map(|t| strings(t, "tags")).unwrap_or_default()
    };
    let cells: Vec<GridCell> = useful
        .iter()
        .map(|n| {
            let (p, l, h) = node(n);
            let name = text(n, "name");
            let tags = tags_of(&name);
            let lines = vec![strings(n, "impact").join(" "), tags.first().cloned().unwrap_or_default()];
            let tooltip = format!(
                "{name}: affects {}, {:.0}% fail when ablated; tags {}",
                strings(n, "impact").join(" "),
                100.0 * num(n, "fail_rate"),
                if tags.is_empty() { "none".into() } else { tags.join(", ") }
            );
            GridCell {
                col: cols.iter().position(|&c| c == p).unwrap_or(0),
                row: rows.iter().position(|&r| r == (l, h)).unwrap_or(0),
                lines,
                colour_key: role(&tags),
                tooltip,
            }
        })
        .collect();
    let col_names: Vec<String> = cols.iter().map(|p| format!("P{p}")).collect();
    let row_names: Vec<String> = rows.iter().map(|(l, h)| h.map_or(format!("L{l}M"), |h| format!("L{l}H{h}"))).collect();
    let height = 140.0 + 70.0 * rows.len() as f64;
    let svg = node_grid(&ChartSpec::new("Useful nodes", "position", "layer / head or MLP", 760.0, height), &col_names, &row_names, &cells);
    let caption = format!(
        "Each useful node (head or MLP at one position; its mean ablation changes at least {:.0}% of answers): first line the answer digits \
         it affects, second line its best intervention tag (the sub-task whose activation patching moves the answer as predicted), colour \
         by that tag's kind (BA base add, MC make carry, MS make sum 9, TriCase, US use sum 9). Hover a box for its failure rate and all tags.",
        100.0 * threshold(a)
    );
    vec![Block::Figure(Figure::new("node_map", svg, caption))]
}

/// A PCA entry's label ([`NodePca::label`]: `P11L0H0 (subtraction)` for one operation of a
/// mixed model); its name alone if the entry does not read as a [`NodePca`].
fn pca_label(n: &Value) -> String {
    serde_json::from_value::<NodePca>(n.clone()).map_or_else(|_| text(n, "name"), |p| p.label())
}

/// Section 7 text and bars: explained variance and class separation per useful head node.
pub fn pca_summary(a: &Value) -> Vec<Block> {
    let nodes = arr(a, "pca");
    if nodes.is_empty() {
        return Vec::new();
    }
    let k = nodes.iter().map(|n| arr(n, "explained").len()).max().unwrap_or(0);
    let cats: Vec<String> = (1..=k).map(|i| format!("PC{i}")).collect();
    let groups: Vec<(String, Vec<f64>)> = nodes
        .iter()
        .map(|n| (pca_label(n), arr(n, "explained").iter().map(|v| 100.0 * v.as_f64().unwrap_or(f64::NAN)).collect()))
        .collect();
    let svg = bar_chart(
        &ChartSpec::new("Explained variance of head outputs", "principal component", "variance explained (%)", 760.0, 340.0).percent(),
        &cats,
        &groups,
    );
    let caption = "Share of the variance of each useful head node's output (attn.hook_z at its position, over the analysis sample) explained by each top principal component.";
    let lines = nodes
        .iter()
        .map(|n| {
            let best = arr(n, "separation")
                .first()
                .and_then(|s| serde_json::from_value::<PcaSeparation>(s.clone()).ok())
                .map_or("no candidate sub-task".into(), |s| s.verdict());
            format!("{}: {best}", pca_label(n))
        })
        .collect();
    vec![Block::Figure(Figure::new("pca_explained", svg, caption)), Block::List(lines)]
}

/// The useful head nodes with PCA results and their best separating sub-task.
pub fn pca_targets(a: &Value) -> Vec<(String, String)> {
    arr(a, "pca").iter().filter_map(|n| arr(n, "separation").first().map(|s| (text(n, "name"), text(s, "subtask")))).collect()
}

/// Section 8: the algorithm per answer digit as text.
pub fn algorithm(a: &Value) -> Vec<Block> {
    let lines: Vec<String> = arr(a, "algorithm").iter().map(|d| text(d, "text")).filter(|t| !t.is_empty()).collect();
    if lines.is_empty() {
        return Vec::new();
    }
    vec![Block::Pre(lines.join("\n"))]
}

/// Section 8: agreement of each symbolic formula with the model per complexity class.
pub fn symbolic(a: &Value) -> Vec<Block> {
    let checks = arr(a, "symbolic");
    let mut classes: Vec<String> = Vec::new();
    checks.iter().flat_map(|c| arr(c, "per_class")).map(|r| text(r, "class")).for_each(|c| {
        if !classes.contains(&c) {
            classes.push(c)
        }
    });
    if classes.is_empty() {
        return Vec::new();
    }
    // Percent `key` of `v`'s per-class entries, one per class (NaN where a class is missing).
    let per_class = |v: &Value, key: &str| -> Vec<f64> {
        let rows = arr(v, "per_class");
        classes.iter().map(|k| rows.iter().find(|r| text(r, "class") == *k).map_or(f64::NAN, |r| 100.0 * num(r, key))).collect()
    };
    let mut groups: Vec<(String, Vec<f64>)> = checks.iter().map(|c| (text(c, "name"), per_class(c, "agreement"))).collect();
    let ceiling = &a["ceiling"];
    if !ceiling.is_null() {
        groups.push(("any formula (best, estimated)".into(), per_class(ceiling, "ceiling")));
    }
    let svg = bar_chart(
        &ChartSpec::new("Symbolic formulas vs the model", "complexity class", "questions where formula = model (%)", 760.0, 360.0)
            .percent(),
        &classes,
        &groups,
    );
    let per = a.get("options").map_or(String::new(), |o| text(o, "per_class"));
    let caption = format!(
        "Per complexity class ({per} questions each), the share of questions where a symbolic formula's answer equals the model's own \
         (teacher-forced) answer, wrong answers included: exact addition, the one-layer lookahead formula, the formula derived from the nodes, and the carry table fitted to the model's answers on other questions; \
         'any formula' estimates the most that any formula over the sub-task values can agree, by asking the model questions with the same \
         column values."
    );
    let mut lines: Vec<String> = checks.iter().map(formula_line).collect();
    if !ceiling.is_null() {
        lines.push(ceiling_line(ceiling));
    }
    vec![Block::Figure(Figure::new("symbolic_agreement", svg, caption)), Block::List(lines)]
}

/// One formula's line: what it computes, its mean agreement, how often the model beats it, and
/// the examples where they differ.
fn formula_line(c: &Value) -> String {
    let beats: f64 = arr(c, "per_class").iter().map(|r| num(r, "model_beats_formula")).filter(|v| v.is_finite()).sum();
    let beyond = if beats > 0.0 { format!("; the model answers {beats} questions right that it gets wrong") } else { String::new() };
    let name = text(c, "name");
    let examples: Vec<String> = arr(c, "examples")
        .iter()
        .map(|e| {
            format!(
                "{} {}{}: model {}, {name} {}",
                text(e, "class"),
                text(e, "question"),
                text(e, "truth"),
                text(e, "model"),
                text(e, "formula")
            )
        })
        .collect();
    let examples = if examples.is_empty() { String::new() } else { format!(". Where they differ: {}", examples.join("; ")) };
    format!("{name}: {} (mean agreement {:.2}%{beyond}){examples}", text(c, "description"), 100.0 * num(c, "mean_agreement"))
}

/// The ceiling's line: how many of the model's wrong answers any formula over sub-task values could reproduce.
fn ceiling_line(ceiling: &Value) -> String {
    let sum = |key: &str| arr(ceiling, "per_class").iter().map(|r| num(r, key)).filter(|v| v.is_finite()).sum::<f64>();
    format!(
        "any formula: of the model's {} wrong answers, {} are its usual answer for their column values ({} siblings asked per question), \
         what the best-agreeing formula over sub-task values reproduces",
        sum("model_wrong"),
        sum("wrong_usual"),
        text(ceiling, "siblings")
    )
}

/// Training dynamics as the analysis measured them (section 2 addendum).
pub fn dynamics(a: &Value) -> Vec<Block> {
    let d = &a["dynamics"];
    if d.is_null() {
        return Vec::new();
    }
    let steps: Vec<String> = arr(d, "digits").iter().map(|x| format!("{} at {}", text(x, "digit"), text(x, "step"))).collect();
    let mut line = format!("Analysis: steps at which each digit's loss first falls below {}: {}.", text(d, "threshold"), steps.join(", "));
    if d.get("separated").and_then(Value::as_bool) == Some(true) {
        line.push_str(" The digits' phase changes are separated in time.");
    }
    if d.get("carry_lags_base").and_then(Value::as_bool) == Some(true) {
        line.push_str(" The carry sub-task is learned after base add.");
    }
    vec![Block::Text(line)]
}

/// The analysis's headline summary, if present (`summary` lines, else `findings` as JSON).
pub fn findings(a: &Value) -> Vec<Block> {
    let lines = strings(a, "summary");
    if !lines.is_empty() {
        return vec![Block::List(lines)];
    }
    let f = &a["findings"];
    let mut out = Vec::new();
    if let Some(p) = f.get("computation_starts_at").and_then(Value::as_u64) {
        out.push(format!("Computation starts at position {p} ({}).", text(f, "starts_at_token")));
    }
    let one = strings(f, "one_before");
    if !one.is_empty() {
        out.push(format!("Computed one position before being emitted: {}.", one.join(", ")));
    }
    let stairs = strings(f, "staircase_heads");
    if !stairs.is_empty() {
        out.push(format!("Staircase heads: {}.", stairs.join(", ")));
    }
    if out.is_empty() {
        Vec::new()
    } else {
        vec![Block::List(out)]
    }
}

/// Section 6 addendum for an inserted model: per inserted head, how much each operation needs
/// it, and the verdict on its role.
pub fn insertion(a: &Value) -> Vec<Block> {
    let ins = &a["insertion"];
    let heads = arr(ins, "heads");
    if ins.is_null() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if !heads.is_empty() {
        let names: Vec<String> = heads.iter().map(|h| text(h, "head")).collect();
        let ops: Vec<String> =
            arr(&heads[0], "fail_by_op").iter().filter_map(|p| p.get(0).and_then(Value::as_str).map(String::from)).collect();
        let groups: Vec<(String, Vec<f64>)> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                let rate = |h: &Value| arr(h, "fail_by_op").get(i).and_then(|p| p.get(1)).and_then(Value::as_f64).unwrap_or(f64::NAN);
                (op.clone(), heads.iter().map(|h| 100.0 * rate(h)).collect())
            })
            .collect();
        let svg = bar_chart(
            &ChartSpec::new("Inserted heads: who needs them now", "inserted head", "questions failing when ablated (%)", 760.0, 360.0)
                .percent(),
            &names,
            &groups,
        );
        let caption = format!(
            "Heads copied in from {} (re-imposed every {} steps; 0 = only at the start): per operation, the highest share of that \
             operation's questions whose answer changes when one of the head's nodes is mean-ablated.",
            text(ins, "from"),
            text(ins, "every")
        );
        out.push(Block::Figure(Figure::new("insertion", svg, caption)));
        out.push(Block::List(
            heads
                .iter()
                .map(|h| {
                    let src = h.get("source_roles").and_then(Value::as_array).map(|r| {
                        let r: Vec<String> = r.iter().filter_map(Value::as_str).map(String::from).collect();
                        format!("; in the source model: {}", if r.is_empty() { "-".into() } else { r.join("+") })
                    });
                    format!(
                        "{}: {} (weights moved {:.0}%{})",
                        text(h, "head"),
                        text(h, "verdict"),
                        100.0 * num(h, "drift"),
                        src.unwrap_or_default()
                    )
                })
                .collect(),
        ));
    }
    if let Some(n) = ins.get("source_note").and_then(Value::as_str) {
        out.push(Block::Note(n.to_string()));
    }
    out
}
