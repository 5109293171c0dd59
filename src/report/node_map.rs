//! Section 6, the node map: each useful node (a head or MLP at one position) as a box on a grid
//! of positions by layer/head, with the answer digits it affects and its best intervention tag;
//! and, for a model trained from an inserted one, what became of each inserted head.

use super::page::{Block, Figure};
use super::svg::{bar_chart, node_grid, ChartSpec, GridCell};
use crate::analysis::insertion::{InsertedHead, Insertion};
use crate::analysis::naming::{head_name, Node};
use crate::analysis::nodes::NodeAblation;
use crate::analysis::Analysis;

/// The section's blocks: the node map, then the inserted heads (if any).
pub fn blocks(a: &Analysis) -> Vec<Block> {
    let mut out = node_map(a);
    out.extend(a.insertion.as_ref().map(insertion).unwrap_or_default());
    out
}

/// The role of a node for colouring: the kind of its best tag (`MC_2` -> `MC`), else "untagged".
fn role(tags: &[String]) -> String {
    tags.first().map_or("untagged".into(), |t| t.split('_').next().unwrap_or(t).to_string())
}

/// A node's tags: its own, else those of a group it was patched with (e.g. two heads sharing BA).
fn tags_of(a: &Analysis, name: &str) -> Vec<String> {
    let own = a.tags.iter().find(|t| t.name == name).map(|t| t.tags.clone()).unwrap_or_default();
    if !own.is_empty() {
        return own;
    }
    let in_group = |t: &&crate::analysis::subtasks::NodeTags| t.name.split('+').count() > 1 && t.name.split('+').any(|n| n == name);
    a.tags.iter().find(in_group).map(|t| t.tags.clone()).unwrap_or_default()
}

/// A grid row's name: `L0H1` for a head, `L0M` for the MLP.
fn row_name((layer, head): (usize, Option<usize>)) -> String {
    head.map_or(format!("L{layer}M"), |h| head_name(layer, h))
}

/// Useful nodes as a grid (position x layer/head/MLP).
fn node_map(a: &Analysis) -> Vec<Block> {
    let useful: Vec<&NodeAblation> = a.nodes.iter().filter(|n| n.useful).collect();
    if useful.is_empty() {
        return vec![Block::Note("The analysis found no useful node (no single ablation reached the failure threshold).".into())];
    }
    let mut cols: Vec<usize> = useful.iter().map(|n| n.node.pos).collect();
    cols.sort_unstable();
    cols.dedup();
    let slot = |n: &Node| (n.layer, n.head);
    let mut rows: Vec<(usize, Option<usize>)> = useful.iter().map(|n| slot(&n.node)).collect();
    rows.sort_by_key(|&(l, h)| (l, h.unwrap_or(usize::MAX)));
    rows.dedup();
    let cells: Vec<GridCell> = useful
        .iter()
        .map(|n| {
            let tags = tags_of(a, &n.name);
            let impact = n.impact.join(" ");
            let tooltip = format!(
                "{}: affects {impact}, {:.0}% fail when ablated; tags {}",
                n.name,
                100.0 * n.fail_rate,
                if tags.is_empty() { "none".into() } else { tags.join(", ") }
            );
            GridCell {
                col: cols.iter().position(|&c| c == n.node.pos).unwrap_or(0),
                row: rows.iter().position(|&r| r == slot(&n.node)).unwrap_or(0),
                lines: vec![impact, tags.first().cloned().unwrap_or_default()],
                colour_key: role(&tags),
                tooltip,
            }
        })
        .collect();
    let col_names: Vec<String> = cols.iter().map(|p| format!("P{p}")).collect();
    let row_names: Vec<String> = rows.iter().copied().map(row_name).collect();
    let height = 140.0 + 70.0 * rows.len() as f64;
    let svg = node_grid(&ChartSpec::new("Useful nodes", "position", "layer / head or MLP", 760.0, height), &col_names, &row_names, &cells);
    let caption = format!(
        "Each useful node (head or MLP at one position; its mean ablation changes at least {:.0}% of answers): first line the answer digits \
         it affects, second line its best intervention tag (the sub-task whose activation patching moves the answer as predicted), colour \
         by that tag's kind (BA base add, MC make carry, MS make sum 9, TriCase, US use sum 9). Hover a box for its failure rate and all tags.",
        100.0 * a.options.threshold
    );
    vec![Block::Figure(Figure::new("node_map", svg, caption))]
}

/// For an inserted model: per inserted head, how much each operation needs it, and the verdict
/// on its role; then why the source's roles are unknown, if they are.
fn insertion(ins: &Insertion) -> Vec<Block> {
    let mut out = Vec::new();
    if let Some(first) = ins.heads.first() {
        let names: Vec<String> = ins.heads.iter().map(|h| h.head.clone()).collect();
        // The operations in the order the first head lists them; each head's rate by that index.
        let groups: Vec<(String, Vec<f64>)> = (first.fail_by_op.iter().enumerate())
            .map(|(i, (op, _))| {
                let rate = |h: &InsertedHead| h.fail_by_op.get(i).map_or(f64::NAN, |p| p.1);
                (op.name().to_string(), ins.heads.iter().map(|h| 100.0 * rate(h)).collect())
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
            ins.from, ins.every
        );
        out.push(Block::Figure(Figure::new("insertion", svg, caption)));
        out.push(Block::List(ins.heads.iter().map(head_line).collect()));
    }
    if let Some(n) = &ins.source_note {
        out.push(Block::Note(n.clone()));
    }
    out
}

/// One inserted head's verdict, how far its weights moved, and its roles in the source model.
fn head_line(h: &InsertedHead) -> String {
    let src = h.source_roles.as_ref().map(|r| format!("; in the source model: {}", if r.is_empty() { "-".into() } else { r.join("+") }));
    format!("{}: {} (weights moved {:.0}%{})", h.head, h.verdict, 100.0 * h.drift, src.unwrap_or_default())
}
