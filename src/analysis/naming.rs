//! Names of positions, answer digits and nodes as the papers write them: operand digits `D3`,
//! `D'3` (k = 0 is the units column), answer digits `A3` (and `sign`), and nodes
//! `P13L0H1` (head 1 of layer 0 at position 13) and `P13L0M` (the MLP of layer 0 there).

use crate::task::Format;
use crate::task_model::TaskModel;
use serde::{Deserialize, Serialize};

/// What sits at a position of the sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Digit `k` of the first operand.
    X(usize),
    /// The operator token.
    Op,
    /// Digit `k` of the second operand.
    Y(usize),
    /// The `=` token.
    Equals,
    /// The answer's sign token (follow-up format).
    Sign,
    /// Answer digit `k`.
    A(usize),
}

/// What is at position `pos` of a question for `model`.
pub fn slot(model: &TaskModel, pos: usize) -> Slot {
    let n = model.n_digits;
    let start = model.answer_start();
    match pos {
        p if p < n => Slot::X(n - 1 - p),
        p if p == n => Slot::Op,
        p if p <= 2 * n => Slot::Y(2 * n - p),
        p if p == 2 * n + 1 => Slot::Equals,
        p if model.format == Format::Paper2Sign && p == start => Slot::Sign,
        p => Slot::A(start + model.n_answer() - 1 - p),
    }
}

/// `D2`, `D'2`, `+`, `=`, `sign`, `A3`.
pub fn position_name(model: &TaskModel, pos: usize) -> String {
    match slot(model, pos) {
        Slot::X(k) => format!("D{k}"),
        Slot::Op => "OP".into(),
        Slot::Y(k) => format!("D'{k}"),
        Slot::Equals => "=".into(),
        Slot::Sign => "sign".into(),
        Slot::A(k) => format!("A{k}"),
    }
}

/// Names of the answer tokens in order (`sign`, `A5`, .., `A0`).
pub fn answer_names(model: &TaskModel) -> Vec<String> {
    model.format.answer_names(model.n_digits)
}

/// The column (k of `A_k`) of answer token `i`; `None` for the sign.
pub fn answer_column(model: &TaskModel, i: usize) -> Option<usize> {
    match slot(model, model.answer_start() + i) {
        Slot::A(k) => Some(k),
        _ => None,
    }
}

/// The position at which answer token `i` is predicted (one before it is emitted).
pub fn predicting_position(model: &TaskModel, i: usize) -> usize {
    model.answer_start() - 1 + i
}

/// A head's name, `L0H1`: layer 0, head 1 (a [`Node`] adds its position, `P13L0H1`).
pub fn head_name(layer: usize, head: usize) -> String {
    format!("L{layer}H{head}")
}

/// A node: one head, or the MLP, of one layer at one position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Node {
    /// Position.
    pub pos: usize,
    /// Layer.
    pub layer: usize,
    /// Head, or `None` for the MLP.
    pub head: Option<usize>,
}

impl Node {
    /// `P13L0H1` or `P13L0M`.
    pub fn name(&self) -> String {
        match self.head {
            Some(h) => format!("P{}{}", self.pos, head_name(self.layer, h)),
            None => format!("P{}L{}M", self.pos, self.layer),
        }
    }

    /// Parses [`Node::name`].
    pub fn parse(s: &str) -> Option<Node> {
        let s = s.strip_prefix('P')?;
        let (pos, rest) = s.split_once('L')?;
        let (layer, head) = match rest.strip_suffix('M') {
            Some(l) => (l, None),
            None => {
                let (l, h) = rest.split_once('H')?;
                (l, Some(h.parse().ok()?))
            }
        };
        Some(Node { pos: pos.parse().ok()?, layer: layer.parse().ok()?, head })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip() {
        for n in [Node { pos: 13, layer: 0, head: Some(1) }, Node { pos: 8, layer: 2, head: None }] {
            assert_eq!(Node::parse(&n.name()), Some(n));
        }
        assert_eq!(Node { pos: 13, layer: 0, head: Some(1) }.name(), "P13L0H1");
        assert_eq!(Node::parse("P1L2X"), None);
    }
}
