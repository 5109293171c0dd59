//! Useful nodes and their answer impact: mean-ablate each head (`hook_z` of one head at one
//! position) and each MLP (`mlp.hook_post` at one position) on a question set, and record the
//! failure rate and which answer digits go wrong ("P13L0H1: A3, 42% fail").

use super::intervene::{changed, mean_activations, predict_from, Intervention, Interventions, Prefix, Units};
use super::naming::{answer_names, Node};
use super::positions::rates;
use crate::eval::predict::Predictions;
use crate::model::HookPoint;
use crate::task::Question;
use crate::task_model::TaskModel;
use serde::{Deserialize, Serialize};

/// The ablation result of one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeAblation {
    /// `P13L0H1` / `P13L0M`.
    pub name: String,
    /// The node.
    pub node: Node,
    /// Fraction of questions with any answer token changed.
    pub fail_rate: f64,
    /// Per answer token, the fraction of questions where it changed.
    pub digit_fail: Vec<f64>,
    /// Answer tokens changed in at least `threshold` of questions (`A3`).
    pub impact: Vec<String>,
    /// Whether the failure rate reaches the threshold.
    pub useful: bool,
}

impl NodeAblation {
    /// "P13L0H1: A3, 42% fail"; a node whose failures spread over several answer tokens, none
    /// of them often enough on its own: "P11L0H2: 1% fail, no single answer token".
    pub fn describe(&self) -> String {
        let pct = 100.0 * self.fail_rate;
        if self.impact.is_empty() {
            format!("{}: {pct:.0}% fail, no single answer token", self.name)
        } else {
            format!("{}: {}, {pct:.0}% fail", self.name, self.impact.join(" "))
        }
    }
}

/// The nodes to test at `positions`: every head and MLP of every layer, except last-layer nodes
/// before the answer-predicting positions (they cannot reach an answer).
pub fn candidate_nodes(model: &TaskModel, positions: &[usize]) -> Vec<Node> {
    let c = &model.params.config;
    let q0 = model.answer_start() - 1;
    let mut v = Vec::new();
    for &pos in positions {
        for layer in 0..c.n_layers {
            if layer + 1 == c.n_layers && pos < q0 {
                continue;
            }
            v.extend((0..c.n_heads).map(|h| Node { pos, layer, head: Some(h) }));
            if c.has_mlp() {
                v.push(Node { pos, layer, head: None });
            }
        }
    }
    v
}

/// Mean-ablates each node on `questions` (the mean's reference set too); `tick(done, total)`
/// follows the nodes ablated.
pub fn ablate_nodes(
    model: &TaskModel,
    questions: &[Question],
    clean: &Predictions,
    nodes: &[Node],
    threshold: f64,
    batch: usize,
    tick: &mut dyn FnMut(usize, usize),
) -> Vec<NodeAblation> {
    let c = &model.params.config;
    let mut points = Vec::new();
    for l in 0..c.n_layers {
        points.push(HookPoint::Z(l));
        if c.has_mlp() {
            points.push(HookPoint::MlpPost(l));
        }
    }
    let means = mean_activations(model, questions, &points, batch);
    let prefix = Prefix::new(model, questions, batch);
    let names = answer_names(model);
    super::stages::par_map_ticked(nodes, tick, |&node| {
        let point = if node.head.is_some() { HookPoint::Z(node.layer) } else { HookPoint::MlpPost(node.layer) };
        let mean = &means[points.iter().position(|&p| p == point).expect("hook listed")];
        let units = node.head.map_or(Units::All, |h| Units::Heads(vec![h]));
        let mut ivs = Interventions::new(vec![Intervention::mean(point, Some(vec![node.pos]), units, mean.clone())]);
        let after = predict_from(model, questions, &prefix, &mut ivs, batch);
        let (fail_rate, digit_fail) = rates(&changed(clean, &after), names.len());
        let impact = names.iter().zip(&digit_fail).filter(|(_, &r)| r >= threshold).map(|(n, _)| n.clone()).collect();
        NodeAblation { name: node.name(), node, fail_rate, digit_fail, impact, useful: fail_rate >= threshold }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_names_the_answer_tokens_or_says_there_is_none() {
        let node = Node { pos: 13, layer: 0, head: Some(1) };
        let mut a = NodeAblation { name: node.name(), node, fail_rate: 0.42, digit_fail: vec![], impact: vec!["A3".into()], useful: true };
        assert_eq!(a.describe(), "P13L0H1: A3, 42% fail");
        a.impact.clear();
        assert_eq!(a.describe(), "P13L0H1: 42% fail, no single answer token");
    }
}
