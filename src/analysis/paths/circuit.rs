//! The circuit per answer digit: for each column c, corrupt column c's digits, test every edge
//! among the given nodes (the useful ones from node ablation, or any list) by path patching, and
//! keep, for each answer digit, the edges whose effect on it is significant. The result says
//! which node passes what (the information of which column) to which node, through which
//! input, how much of the digit's log probability rides on it, and on which complexity classes.

use super::corrupt::{corrupt_pairs, Corruption};
use super::eap::{agreement, edge_attribution, Agreement};
use super::patch::{DigitEffect, EdgeEffect, PathPatcher};
use super::{candidate_edges, Edge};
use crate::analysis::naming::{answer_names, predicting_position, Node};
use crate::task::Question;
use crate::task_model::TaskModel;
use serde::{Deserialize, Serialize};

/// What makes an edge part of a digit's circuit, and how many edges to test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CircuitOptions {
    /// Least mean log-probability drop (nats, either sign) of the digit's right token.
    pub min_drop: f64,
    /// Least share of the whole corruption's drop on that digit.
    pub min_share: f64,
    /// Least drop over its standard error.
    pub min_z: f64,
    /// Path-patch only this many edges per column, those edge attribution patching ranks
    /// highest (by the largest estimated drop over the answer digits); `None` tests all.
    pub max_edges: Option<usize>,
    /// Gradient points of edge attribution patching (1: plain EAP; more: integrated gradients).
    pub eap_steps: usize,
    /// Seed of the corruptions (column c uses `seed + c`).
    pub seed: u64,
}

impl Default for CircuitOptions {
    fn default() -> Self {
        CircuitOptions { min_drop: 0.05, min_share: 0.05, min_z: 3.0, max_edges: None, eap_steps: 4, seed: 1 }
    }
}

impl CircuitOptions {
    /// Whether an effect on one digit is significant.
    pub fn significant(&self, d: &DigitEffect) -> bool {
        let drop = d.logprob_drop.abs();
        let z = if d.logprob_se > 0.0 { drop / d.logprob_se } else { f64::INFINITY };
        drop >= self.min_drop && drop >= self.min_share * d.total_logprob_drop.abs() && z >= self.min_z
    }
}

/// One edge of a digit's circuit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CircuitEdge {
    /// `P3L0H0 -> P7L1H0.v`.
    pub name: String,
    /// The edge.
    pub edge: Edge,
    /// The corruption it carries (what flows: "column 0").
    pub corruption: Corruption,
    /// The receiver's output change over the whole corruption's change to it.
    pub receiver_share: f64,
    /// The effect on this digit (with its classes).
    pub effect: DigitEffect,
    /// Edge attribution patching's estimate of `effect.logit_drop`.
    pub eap_drop: f64,
}

impl CircuitEdge {
    /// "P6L0M -> P6L1M.in (column 0, 1.42 nats)": the edge, what flows along it and the mean
    /// log-probability drop of the digit's right token when it alone carries the corruption.
    pub fn describe(&self) -> String {
        format!("{} ({}, {:.2} nats)", self.name, self.corruption.name(), self.effect.logprob_drop)
    }
}

/// One answer digit's circuit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigitCircuit {
    /// "A2".
    pub digit: String,
    /// The position that predicts it.
    pub position: usize,
    /// The nodes on its edges, by name, in node order.
    pub nodes: Vec<String>,
    /// Its edges, largest drop first.
    pub edges: Vec<CircuitEdge>,
}

/// How far edge attribution patching agreed with path patching on one corruption's tested
/// edges (every answer digit's logit drop of every edge, pooled).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorruptionCheck {
    /// The corruption.
    pub corruption: Corruption,
    /// Edges path-patched.
    pub tested: usize,
    /// The agreement (top 10).
    pub agreement: Agreement,
}

/// The circuits of every answer digit of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Circuit {
    /// The options used.
    pub options: CircuitOptions,
    /// Question pairs per corruption.
    pub questions: usize,
    /// Candidate edges among the nodes.
    pub candidates: usize,
    /// Per corruption, the edges tested and EAP's agreement with them.
    pub checks: Vec<CorruptionCheck>,
    /// Per answer digit.
    pub digits: Vec<DigitCircuit>,
    /// Why the circuit is empty or limited (no useful nodes, no edges among them, one layer),
    /// if it is.
    #[serde(default)]
    pub note: Option<String>,
}

impl Circuit {
    /// The circuit as a few lines of text (what the terminal summary prints): why it is empty or
    /// limited, what was measured, each digit's largest edges, the columns each digit's edges
    /// carry, and how far edge attribution patching agreed with path patching.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.note.iter().map(|n| format!("note: {n}")).collect();
        if self.candidates == 0 {
            return out;
        }
        let tested = self.checks.first().map_or(0, |c| c.tested);
        out.push(format!(
            "{} questions per corrupted column; {} candidate edges among the useful nodes, {tested} path-patched per column \
             (ranked by edge attribution patching, {} gradient step(s))",
            self.questions, self.candidates, self.options.eap_steps
        ));
        for d in &self.digits {
            let top: Vec<String> = d.edges.iter().take(3).map(CircuitEdge::describe).collect();
            let more = d.edges.len().saturating_sub(3);
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            let edges = if top.is_empty() { "no significant edge".to_string() } else { top.join(", ") + &more };
            out.push(format!("{}: {edges}{}", d.digit, reach_note(d)));
        }
        let agree: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c.tested > 1)
            .map(|c| {
                format!(
                    "{} Spearman {:.2}, top-{} shared {}",
                    c.corruption.name(),
                    c.agreement.spearman,
                    c.agreement.top_k,
                    c.agreement.shared_top_k
                )
            })
            .collect();
        if !agree.is_empty() {
            out.push(format!("edge attribution vs path patching: {}", agree.join("; ")));
        }
        out
    }
}

/// " (reaches columns 0, 1)": the columns whose corruption has a significant edge into `d`.
fn reach_note(d: &DigitCircuit) -> String {
    let mut cols: Vec<usize> = d.edges.iter().map(|e| e.corruption.column()).collect();
    cols.sort_unstable();
    cols.dedup();
    if cols.is_empty() {
        return String::new();
    }
    format!(" (reaches column{} {})", if cols.len() == 1 { "" } else { "s" }, crate::analysis::summary::list(&cols))
}

/// [`circuit`] among the useful `nodes` of an analysis, never failing: with no edge among the
/// nodes, or an error, the circuit is empty and its `note` says why; a one-layer model's note
/// says which edges it can have.
pub fn circuit_among(
    model: &TaskModel,
    questions: &[Question],
    nodes: &[Node],
    opts: &CircuitOptions,
    tick: &mut dyn FnMut(usize, usize),
) -> Circuit {
    let empty = |note: String| Circuit {
        options: opts.clone(),
        questions: questions.len(),
        candidates: 0,
        checks: Vec::new(),
        digits: Vec::new(),
        note: Some(note),
    };
    let one_layer = (model.params.config.n_layers == 1).then_some(
        "one layer: the only edges between nodes run from a head into the MLP at its own position (a head at an earlier \
         position reaches no later node, so a column's carry can only travel by attention at the answer position)",
    );
    if candidate_edges(model, nodes).is_empty() {
        let why = one_layer.map_or(String::new(), |w| format!(" ({w})"));
        return empty(format!("no edges among the {} useful nodes{why}", nodes.len()));
    }
    match circuit(model, questions, nodes, opts, tick) {
        Ok(mut c) => {
            c.note = one_layer.map(String::from);
            c
        }
        Err(e) => empty(format!("the circuit could not be measured: {e}")),
    }
}

/// The circuit among `nodes` on `questions`, corrupting each column in turn. `tick(done, total)`
/// follows the edges path-patched. Errors name a node outside the model or an empty question
/// list.
pub fn circuit(
    model: &TaskModel,
    questions: &[Question],
    nodes: &[Node],
    opts: &CircuitOptions,
    tick: &mut dyn FnMut(usize, usize),
) -> Result<Circuit, String> {
    let bad: Vec<String> = nodes.iter().filter_map(|n| super::check_node(model, n).err()).collect();
    if !bad.is_empty() {
        return Err(bad.join("; "));
    }
    let edges = candidate_edges(model, nodes);
    let per_column = opts.max_edges.map_or(edges.len(), |k| k.min(edges.len()));
    let total = model.n_digits * per_column;
    let names = answer_names(model);
    let mut digits: Vec<DigitCircuit> = names
        .iter()
        .enumerate()
        .map(|(i, d)| DigitCircuit { digit: d.clone(), position: predicting_position(model, i), nodes: Vec::new(), edges: Vec::new() })
        .collect();
    let mut checks = Vec::new();
    for col in 0..model.n_digits {
        let corruption = Corruption::Column { col };
        let pairs = corrupt_pairs(questions, corruption, opts.seed.wrapping_add(col as u64))?;
        let eap = edge_attribution(model, &pairs, &edges, opts.eap_steps)?;
        let chosen = top_edges(&eap, per_column);
        let patcher = PathPatcher::new(model, &pairs)?;
        let done = col * per_column;
        let effects: Vec<EdgeEffect> =
            crate::analysis::stages::par_map_ticked(&chosen, &mut |d, _| tick(done + d, total), |&i| patcher.effect(&edges[i]))
                .into_iter()
                .collect::<Result<_, _>>()?;
        let est: Vec<f64> = chosen.iter().flat_map(|&i| eap[i].drop.clone()).collect();
        let measured: Vec<f64> = effects.iter().flat_map(|e| e.digits.iter().map(|d| d.logit_drop)).collect();
        checks.push(CorruptionCheck { corruption, tested: chosen.len(), agreement: agreement(&est, &measured, 10) });
        for (&i, effect) in chosen.iter().zip(effects) {
            keep_significant(&mut digits, effect, &eap[i].drop, corruption, opts);
        }
    }
    digits.iter_mut().for_each(finish);
    Ok(Circuit { options: opts.clone(), questions: questions.len(), candidates: edges.len(), checks, digits, note: None })
}

/// Indices of the `k` edges with the largest estimated drop on any digit (all, in order, when
/// `k` covers them).
fn top_edges(eap: &[super::EdgeAttribution], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..eap.len()).collect();
    if k < eap.len() {
        let key = |i: usize| eap[i].drop.iter().fold(0.0f64, |m, d| m.max(d.abs()));
        idx.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
        idx.truncate(k);
        idx.sort_unstable();
    }
    idx
}

/// Adds `effect` to each digit's circuit where it is significant.
fn keep_significant(digits: &mut [DigitCircuit], effect: EdgeEffect, eap: &[f64], corruption: Corruption, opts: &CircuitOptions) {
    for (i, d) in effect.digits.iter().enumerate() {
        if opts.significant(d) {
            digits[i].edges.push(CircuitEdge {
                name: effect.name.clone(),
                edge: effect.edge,
                corruption,
                receiver_share: effect.receiver_share,
                effect: d.clone(),
                eap_drop: eap[i],
            });
        }
    }
}

/// Sorts a digit's edges by drop and lists its nodes.
fn finish(d: &mut DigitCircuit) {
    d.edges.sort_by(|a, b| b.effect.logprob_drop.abs().total_cmp(&a.effect.logprob_drop.abs()));
    let mut nodes: Vec<Node> = d.edges.iter().flat_map(|e| [e.edge.sender, e.edge.receiver]).collect();
    nodes.sort();
    nodes.dedup();
    d.nodes = nodes.iter().map(Node::name).collect();
}
