//! Path patching between nodes, edge attribution patching, and the circuit per answer digit.
//!
//! Node ablation ([`super::nodes`]) says which nodes matter; this says how information flows
//! from one to the next. An **edge** joins a sender node (a head's output `z_h W_O[h]` at its
//! position, or an MLP's output) to one **input** of a later receiver node: a head's query (at
//! the receiver's own position), key or value (at the sender's position, at or before the
//! receiver's), or an MLP's input (at its position).
//!
//! - **Path patching** ([`patch`]): on a clean question, the sender's output difference between
//!   a corrupted and the clean question ([`corrupt`]: e.g. column 0's digits resampled) is added
//!   to the residual stream that this one input of this one receiver reads, re-normalised by its
//!   LayerNorm; every other component reads the clean residual stream, and the forward runs on
//!   normally after the receiver. What changes (the receiver's output, each answer digit's log
//!   probability, probability, margin and accuracy) is what flows along that edge alone.
//! - **Edge attribution patching** ([`eap`], Syed et al. 2023): the same effect to first order,
//!   `(Δ sender output) · ∂ metric / ∂ (receiver input)`, for every edge at once from one clean
//!   forward, one corrupted forward and one backward per answer digit (with the reference
//!   model's gradient hooks). Fast, but blind where a softmax saturates; [`eap::agreement`]
//!   measures how far its ranking agrees with real path patching.
//! - **The circuit** ([`mod@circuit`]): for each answer digit, the edges among the useful nodes whose
//!   path-patched effect on that digit is significant, per corrupted column, with effect sizes
//!   and the complexity classes they act on. Serde types, for analysis.json.
//!
//! Everything runs on the reference model ([`crate::model::reference`]) with its
//! TransformerLens hooks, so results read as TransformerLens users would compute them.

pub mod circuit;
pub mod corrupt;
pub mod eap;
pub mod patch;

pub use circuit::{circuit, circuit_among, Circuit, CircuitEdge, CircuitOptions, CorruptionCheck, DigitCircuit};
pub use corrupt::{corrupt_pairs, Corruption, Pairs};
pub use eap::{agreement, edge_attribution, Agreement, EdgeAttribution};
pub use patch::{ClassEffect, DigitEffect, EdgeEffect, PathPatcher, Scores};

use super::naming::Node;
use crate::task_model::TaskModel;
use serde::{Deserialize, Serialize};

/// Which input of the receiver an edge feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Input {
    /// A head's query (`hook_q`), read at the receiver's own position.
    Query,
    /// A head's key (`hook_k`), read at the sender's position.
    Key,
    /// A head's value (`hook_v`), read at the sender's position.
    Value,
    /// An MLP's input (`mlp.hook_pre`), read at its position.
    Mlp,
}

impl Input {
    /// `q`, `k`, `v` or `in`, as edge names write it (`P3L0H0 -> P7L1H0.v`).
    pub fn short(self) -> &'static str {
        match self {
            Input::Query => "q",
            Input::Key => "k",
            Input::Value => "v",
            Input::Mlp => "in",
        }
    }

    /// The inputs a receiver node has: a head's query, key and value, or an MLP's input.
    pub fn of(receiver: &Node) -> &'static [Input] {
        match receiver.head {
            Some(_) => &[Input::Query, Input::Key, Input::Value],
            None => &[Input::Mlp],
        }
    }
}

/// A path from a sender node into one input of a receiver node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Edge {
    /// The node whose output is patched.
    pub sender: Node,
    /// The node whose input receives it.
    pub receiver: Node,
    /// Which input.
    pub input: Input,
}

impl Edge {
    /// `P3L0H0 -> P7L1H0.v`.
    pub fn name(&self) -> String {
        format!("{} -> {}.{}", self.sender.name(), self.receiver.name(), self.input.short())
    }

    /// Whether the edge exists in `model`: both nodes inside it, the input one the receiver has,
    /// the sender computed before the receiver reads it (an earlier layer, or a head feeding
    /// the MLP of its own layer), and at the position that input reads (a query and an MLP
    /// read their own position, a key or value any position up to the receiver's). The error
    /// names the edge and what is wrong.
    pub fn check(&self, model: &TaskModel) -> Result<(), String> {
        let (s, r) = (&self.sender, &self.receiver);
        for n in [s, r] {
            check_node(model, n).map_err(|e| format!("edge {}: {e}", self.name()))?;
        }
        if !Input::of(r).contains(&self.input) {
            let what = if r.head.is_some() { "a head has query, key and value inputs" } else { "an MLP has one input, 'mlp'" };
            return Err(format!("edge {}: {} has no {:?} input ({what})", self.name(), r.name(), self.input));
        }
        let before = s.layer < r.layer || (s.layer == r.layer && s.head.is_some() && r.head.is_none());
        if !before {
            return Err(format!(
                "edge {}: the sender must come before the receiver (an earlier layer, or a head feeding its own layer's MLP)",
                self.name()
            ));
        }
        let pos_ok = match self.input {
            Input::Query | Input::Mlp => s.pos == r.pos,
            Input::Key | Input::Value => s.pos <= r.pos,
        };
        if !pos_ok {
            return Err(format!(
                "edge {}: a {:?} input reads position {}, not the sender's position {}",
                self.name(),
                self.input,
                if matches!(self.input, Input::Query | Input::Mlp) { format!("{}", r.pos) } else { format!("<= {}", r.pos) },
                s.pos
            ));
        }
        Ok(())
    }
}

/// Error unless `n` is a head or MLP of `model` at a position of its questions.
fn check_node(model: &TaskModel, n: &Node) -> Result<(), String> {
    let c = &model.params.config;
    if n.layer >= c.n_layers || n.pos >= model.n_ctx() {
        return Err(format!("node {} is outside the model ({} layers, positions 0..{})", n.name(), c.n_layers, model.n_ctx()));
    }
    match n.head {
        Some(h) if h >= c.n_heads => Err(format!("node {}: the model has heads 0..{}", n.name(), c.n_heads)),
        None if !c.has_mlp() => Err(format!("node {}: the model is attention-only (no MLP)", n.name())),
        _ => Ok(()),
    }
}

/// Every edge among `nodes` that exists ([`Edge::check`]), in a fixed order (receiver, input,
/// sender): what the circuit tests.
pub fn candidate_edges(model: &TaskModel, nodes: &[Node]) -> Vec<Edge> {
    let mut edges = Vec::new();
    for r in nodes {
        for &input in Input::of(r) {
            for s in nodes {
                let e = Edge { sender: *s, receiver: *r, input };
                if e.check(model).is_ok() {
                    edges.push(e);
                }
            }
        }
    }
    edges.sort_by_key(|e| (e.receiver, e.input, e.sender));
    edges.dedup();
    edges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{TrainConfig, Trainer};

    fn untrained(preset: &str) -> TaskModel {
        let cfg = TrainConfig::preset(preset).unwrap();
        TaskModel::from_file(Trainer::new(cfg).unwrap().model_file(), "test").unwrap()
    }

    fn node(s: &str) -> Node {
        Node::parse(s).unwrap()
    }

    #[test]
    fn an_edge_exists_only_forward_in_layers_and_at_the_position_its_input_reads() {
        let m = untrained("tiny_l2");
        let e = |s: &str, r: &str, input| Edge { sender: node(s), receiver: node(r), input };
        assert!(e("P3L0H0", "P7L1H2", Input::Value).check(&m).is_ok());
        assert!(e("P7L0H0", "P7L1H2", Input::Query).check(&m).is_ok());
        assert!(e("P7L0H1", "P7L0M", Input::Mlp).check(&m).is_ok(), "a head feeds its own layer's MLP");
        assert_eq!(e("P7L0H1", "P7L1H2", Input::Value).name(), "P7L0H1 -> P7L1H2.v");
        let err = e("P3L0H0", "P7L1H2", Input::Query).check(&m).unwrap_err();
        assert!(err.contains("reads position 7, not the sender's position 3"), "{err}");
        let err = e("P8L0H0", "P7L1H2", Input::Key).check(&m).unwrap_err();
        assert!(err.contains("reads position <= 7"), "{err}");
        let err = e("P7L1H0", "P7L0H1", Input::Value).check(&m).unwrap_err();
        assert!(err.contains("must come before"), "{err}");
        let err = e("P7L0M", "P7L0H1", Input::Query).check(&m).unwrap_err();
        assert!(err.contains("must come before"), "{err}");
        let err = e("P7L0H0", "P7L1M", Input::Value).check(&m).unwrap_err();
        assert!(err.contains("has no Value input"), "{err}");
        let err = e("P7L0H5", "P7L1M", Input::Mlp).check(&m).unwrap_err();
        assert!(err.contains("heads 0..3"), "{err}");
        let err = e("P9L0H0", "P9L1M", Input::Mlp).check(&m).unwrap_err();
        assert!(err.contains("positions 0..9"), "{err}");
    }

    #[test]
    fn candidate_edges_are_every_valid_pair_once() {
        let m = untrained("tiny_l2");
        let nodes: Vec<Node> = ["P3L0H0", "P7L0H1", "P7L0M", "P7L1H2", "P7L1M"].iter().map(|s| node(s)).collect();
        let names: Vec<String> = candidate_edges(&m, &nodes).iter().map(Edge::name).collect();
        let want = [
            "P7L0H1 -> P7L0M.in",
            "P3L0H0 -> P7L1H2.k",
            "P7L0H1 -> P7L1H2.k",
            "P7L0M -> P7L1H2.k",
            "P3L0H0 -> P7L1H2.v",
            "P7L0H1 -> P7L1H2.v",
            "P7L0M -> P7L1H2.v",
            "P7L0H1 -> P7L1H2.q",
            "P7L0M -> P7L1H2.q",
            "P7L0H1 -> P7L1M.in",
            "P7L0M -> P7L1M.in",
            "P7L1H2 -> P7L1M.in",
        ];
        let mut sorted_want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        sorted_want.sort();
        let mut got = names.clone();
        got.sort();
        assert_eq!(got, sorted_want);
    }
}
