//! The circuit between nodes, beside the node map: per answer digit, a figure of the nodes on its
//! significant edges (boxes by position and layer/head) and the edges as arrows whose width is
//! the path-patched drop, coloured by the receiver's input and labelled with the corrupted
//! column; then a table of the largest edges with edge attribution patching's estimate, and
//! how far that estimate agreed with path patching per column.

use super::page::{Block, Figure, Picker, Table};
use super::svg::{circuit_graph, ChartSpec, GraphEdge, GraphNode};
use crate::analysis::naming::{head_name, Node};
use crate::analysis::paths::{Circuit, CircuitEdge, DigitCircuit, Input};
use crate::analysis::Analysis;

/// Rows of the table of largest edges.
const TABLE_ROWS: usize = 12;

/// The circuit's blocks, or nothing for an analysis without a circuit.
pub fn blocks(a: &Analysis) -> Vec<Block> {
    let Some(c) = &a.circuit else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(n) = &c.note {
        out.push(Block::Note(format!("The circuit: {n}.")));
    }
    let options: Vec<(String, Vec<Figure>)> =
        c.digits.iter().filter(|d| !d.edges.is_empty()).map(|d| (d.digit.clone(), vec![digit_figure(c, d)])).collect();
    let empty: Vec<&str> = c.digits.iter().filter(|d| d.edges.is_empty()).map(|d| d.digit.as_str()).collect();
    if options.is_empty() {
        if c.candidates > 0 {
            out.push(Block::Note(format!(
                "The circuit: none of the {} candidate edges among the useful nodes has a significant effect on any answer digit.",
                c.candidates
            )));
        }
        return out;
    }
    out.push(Block::Picker(Picker {
        id: "circuit-digit".into(),
        prompt: "The circuit between nodes, per answer digit; pick a digit:".into(),
        options,
    }));
    if !empty.is_empty() {
        out.push(Block::Text(format!("No edge among the useful nodes carries a column's information into {}.", empty.join(", "))));
    }
    out.push(Block::Table(edge_table(c)));
    out.push(Block::Table(agreement_table(c)));
    out
}

/// A node's grid row: (layer, head), the MLP after the heads.
fn slot(n: &Node) -> (usize, usize) {
    (n.layer, n.head.unwrap_or(usize::MAX))
}

/// "query", "key", "value" or "MLP input": the legend's name of an input.
fn input_name(i: Input) -> &'static str {
    match i {
        Input::Query => "query",
        Input::Key => "key",
        Input::Value => "value",
        Input::Mlp => "MLP input",
    }
}

/// One digit's circuit as a figure.
fn digit_figure(c: &Circuit, d: &DigitCircuit) -> Figure {
    let mut nodes: Vec<Node> = d.edges.iter().flat_map(|e| [e.edge.sender, e.edge.receiver]).collect();
    nodes.sort();
    nodes.dedup();
    let mut cols: Vec<usize> = nodes.iter().map(|n| n.pos).collect();
    cols.sort_unstable();
    cols.dedup();
    let mut rows: Vec<(usize, usize)> = nodes.iter().map(slot).collect();
    rows.sort_unstable();
    rows.dedup();
    let at = |n: &Node| nodes.iter().position(|m| m == n).unwrap_or(0);
    let boxes: Vec<GraphNode> = nodes
        .iter()
        .map(|n| GraphNode {
            col: cols.iter().position(|&p| p == n.pos).unwrap_or(0),
            row: rows.iter().position(|&r| r == slot(n)).unwrap_or(0),
            label: n.name(),
            tooltip: String::new(),
        })
        .collect();
    let arrows: Vec<GraphEdge> = d
        .edges
        .iter()
        .map(|e| GraphEdge {
            from: at(&e.edge.sender),
            to: at(&e.edge.receiver),
            weight: e.effect.logprob_drop.abs(),
            colour_key: input_name(e.edge.input).into(),
            label: format!("c{}", e.corruption.column()),
            tooltip: edge_tooltip(&d.digit, e),
        })
        .collect();
    let col_names: Vec<String> = cols.iter().map(|p| format!("P{p}")).collect();
    let row_names: Vec<String> = rows.iter().map(|&(l, h)| if h == usize::MAX { format!("L{l}M") } else { head_name(l, h) }).collect();
    let (w, h) = ((360.0 + 110.0 * cols.len() as f64).min(1400.0), 150.0 + 80.0 * rows.len() as f64);
    let spec = ChartSpec::new(&format!("The circuit of {}", d.digit), "position", "layer / head or MLP", w, h);
    let caption = format!(
        "{}: each arrow is an edge (a sender node's output into one input of a later node) whose path patching alone, on {} questions \
         with one operand column resampled (the label: c0 = column 0), lowers the log probability of {}'s right token significantly \
         (at least {} nats, {:.0}% of the whole corruption's drop and {} standard errors); its width is that drop, its colour the \
         receiver's input. Hover an arrow for its numbers by complexity class.",
        d.digit,
        c.questions,
        d.digit,
        c.options.min_drop,
        100.0 * c.options.min_share,
        c.options.min_z
    );
    Figure::new(&format!("circuit_{}", d.digit), circuit_graph(&spec, &col_names, &row_names, &boxes, &arrows), caption)
}

/// An arrow's hover text: what flows, the drop with its error and share, EAP's estimate, and
/// the drop per complexity class.
fn edge_tooltip(digit: &str, e: &CircuitEdge) -> String {
    let f = &e.effect;
    let classes: Vec<String> = f.classes.iter().map(|k| format!("{} {:.2}", k.class, k.logprob_drop)).collect();
    format!(
        "{}: {} lowers {digit}'s log probability by {:.2} nats (se {:.2}; the whole corruption {:.2}), its accuracy by {:.1}%; \
         logit drop {:.2}, edge attribution's estimate {:.2}; by class: {}",
        e.name,
        e.corruption.name(),
        f.logprob_drop,
        f.logprob_se,
        f.total_logprob_drop,
        100.0 * f.accuracy_drop,
        f.logit_drop,
        e.eap_drop,
        classes.join(", ")
    )
}

/// The largest edges over every digit.
fn edge_table(c: &Circuit) -> Table {
    let mut all: Vec<(&str, &CircuitEdge)> = c.digits.iter().flat_map(|d| d.edges.iter().map(move |e| (d.digit.as_str(), e))).collect();
    all.sort_by(|a, b| b.1.effect.logprob_drop.abs().total_cmp(&a.1.effect.logprob_drop.abs()));
    let rows = all
        .iter()
        .take(TABLE_ROWS)
        .map(|(digit, e)| {
            vec![
                digit.to_string().into(),
                e.name.clone().into(),
                e.corruption.name().into(),
                format!("{:.3}", e.effect.logprob_drop).into(),
                format!("{:.1}%", 100.0 * e.effect.accuracy_drop).into(),
                format!("{:.3}", e.effect.logit_drop).into(),
                format!("{:.3}", e.eap_drop).into(),
            ]
        })
        .collect();
    Table {
        head: ["digit", "edge", "carries", "drop (nats)", "accuracy drop", "logit drop", "EAP estimate"].map(String::from).to_vec(),
        rows,
        caption: format!(
            "The {} largest edges of the circuit (of {}): the mean drop of the digit's right-token log probability and accuracy when the \
             edge alone carries the corrupted column, the same as a drop of the centred logit, and edge attribution patching's \
             first-order estimate of that logit drop ({} gradient step(s)).",
            all.len().min(TABLE_ROWS),
            all.len(),
            c.options.eap_steps
        ),
    }
}

/// Per corrupted column, how far edge attribution patching's ranking agreed with path patching.
fn agreement_table(c: &Circuit) -> Table {
    let rows = c
        .checks
        .iter()
        .map(|k| {
            vec![
                k.corruption.name().into(),
                k.tested.to_string().into(),
                format!("{:.2}", k.agreement.spearman).into(),
                format!("{} of {}", k.agreement.shared_top_k, k.agreement.top_k.min(k.agreement.edges)).into(),
            ]
        })
        .collect();
    Table {
        head: ["corrupted", "edges path-patched", "Spearman", "shared top 10"].map(String::from).to_vec(),
        rows,
        caption: format!(
            "Edge attribution patching against path patching, per corrupted column: of the {} candidate edges among the useful nodes, \
             the highest-ranked by attribution were path-patched; the rank correlation of the two over every answer digit's logit \
             drop, and how many of the ten largest they share.",
            c.candidates
        ),
    }
}
