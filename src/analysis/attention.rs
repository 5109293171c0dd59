//! Attention of the useful heads: the source tokens each head node attends to most, averaged
//! over questions ("D2 and D'2"), and per head the staircase map (answer-predicting position x
//! source position), with the digit column each query position reads.

use super::intervene::full_cache;
use super::naming::{answer_column, position_name, slot, Node, Slot};
use crate::model::HookPoint;
use crate::task::Question;
use crate::task_model::TaskModel;
use serde::{Deserialize, Serialize};

/// One attended source position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Source position.
    pub position: usize,
    /// Its token name (`D2`, `D'2`, `=`).
    pub token: String,
    /// Mean attention weight.
    pub weight: f64,
}

/// What one head node attends to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeAttention {
    /// Node name.
    pub name: String,
    /// The node.
    pub node: Node,
    /// Sources with mean weight of at least 0.05, heaviest first.
    pub top: Vec<Source>,
    /// "D2 and D'2": the sources making up most of the attention.
    pub summary: String,
    /// The operand column attended most (weight of `D_k` plus `D'_k`), if any has weight.
    pub column: Option<usize>,
    /// That column's total weight.
    pub column_weight: f64,
}

/// One head's attention from the answer-predicting positions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Staircase {
    /// Layer.
    pub layer: usize,
    /// Head.
    pub head: usize,
    /// Query positions (from `=` to the last predicting position).
    pub query_positions: Vec<usize>,
    /// Source token names, by position.
    pub source_tokens: Vec<String>,
    /// `weights[i][s]`: mean attention from query position i to source position s.
    pub weights: Vec<Vec<f64>>,
    /// Per query position, the operand column attended most (if its weight is at least 0.3).
    pub top_column: Vec<Option<usize>>,
    /// Per query position, (predicted answer column) - (top column): the head's look-back.
    pub offset: Vec<Option<i64>>,
    /// The most common offset, if any.
    pub typical_offset: Option<i64>,
    /// Steps between consecutive query positions where the top column moves down by one.
    pub descending_steps: usize,
    /// Whether the head walks down the digit pairs (at least 3 such steps, or all but one for
    /// short answers).
    pub is_staircase: bool,
}

/// Mean attention patterns of every layer over `questions`: `[layer][head][query][key]`.
pub fn mean_patterns(model: &TaskModel, questions: &[Question], batch: usize) -> Vec<Vec<Vec<Vec<f64>>>> {
    let c = &model.params.config;
    let t = model.n_ctx();
    let mut acc = vec![vec![vec![vec![0.0f64; t]; t]; c.n_heads]; c.n_layers];
    let names: Vec<String> = (0..c.n_layers).map(|l| HookPoint::Pattern(l).name()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    for chunk in questions.chunks(batch.max(1)) {
        let cache = full_cache(model, chunk, &refs);
        for (l, name) in names.iter().enumerate() {
            let p = cache.get(name).expect("pattern cached");
            let [b, nh, tq, tk] = p.shape[..] else { panic!("pattern shape {:?}", p.shape) };
            for bi in 0..b {
                for (h, rows) in acc[l].iter_mut().enumerate().take(nh) {
                    for (q, row) in rows.iter_mut().enumerate().take(tq) {
                        let src = &p.data[((bi * nh + h) * tq + q) * tk..((bi * nh + h) * tq + q + 1) * tk];
                        row.iter_mut().zip(src).for_each(|(a, &v)| *a += v as f64);
                    }
                }
            }
        }
    }
    let n = questions.len().max(1) as f64;
    acc.iter_mut().flatten().flatten().flatten().for_each(|v| *v /= n);
    acc
}

/// Weight on each operand column (`D_k` + `D'_k`) of one attention row.
pub fn column_weights(model: &TaskModel, row: &[f64]) -> Vec<f64> {
    let mut w = vec![0.0; model.n_digits];
    for (pos, &v) in row.iter().enumerate() {
        if let Slot::X(k) | Slot::Y(k) = slot(model, pos) {
            w[k] += v;
        }
    }
    w
}

fn top_column(w: &[f64]) -> (Option<usize>, f64) {
    w.iter().enumerate().fold((None, 0.0), |best, (k, &v)| if v > best.1 { (Some(k), v) } else { best })
}

/// What each head node in `nodes` attends to (MLP nodes are skipped).
pub fn node_attention(model: &TaskModel, patterns: &[Vec<Vec<Vec<f64>>>], nodes: &[Node]) -> Vec<NodeAttention> {
    nodes
        .iter()
        .filter_map(|&node| {
            let h = node.head?;
            let row = &patterns[node.layer][h][node.pos];
            let mut top: Vec<Source> = row
                .iter()
                .enumerate()
                .filter(|(_, &w)| w >= 0.05)
                .map(|(p, &w)| Source { position: p, token: position_name(model, p), weight: w })
                .collect();
            top.sort_by(|a, b| b.weight.total_cmp(&a.weight));
            let mut parts = Vec::new();
            let mut covered = 0.0;
            for s in &top {
                if covered >= 0.8 || parts.len() == 3 {
                    break;
                }
                parts.push(s.token.clone());
                covered += s.weight;
            }
            let (column, column_weight) = top_column(&column_weights(model, row));
            Some(NodeAttention { name: node.name(), node, summary: parts.join(" and "), top, column, column_weight })
        })
        .collect()
}

/// The staircase map of every head.
pub fn staircases(model: &TaskModel, patterns: &[Vec<Vec<Vec<f64>>>]) -> Vec<Staircase> {
    let q0 = model.answer_start() - 1;
    let queries: Vec<usize> = (q0..model.n_ctx() - 1).collect();
    let source_tokens: Vec<String> = (0..model.n_ctx()).map(|p| position_name(model, p)).collect();
    let mut out = Vec::new();
    for (layer, heads) in patterns.iter().enumerate() {
        for (head, rows) in heads.iter().enumerate() {
            let weights: Vec<Vec<f64>> = queries.iter().map(|&q| rows[q].clone()).collect();
            let top: Vec<Option<usize>> = weights
                .iter()
                .map(|r| match top_column(&column_weights(model, r)) {
                    (Some(k), w) if w >= 0.3 => Some(k),
                    _ => None,
                })
                .collect();
            let offset: Vec<Option<i64>> = queries
                .iter()
                .zip(&top)
                .map(|(&q, t)| Some(answer_column(model, q + 1 - model.answer_start())? as i64 - (*t)? as i64))
                .collect();
            let mut counts = std::collections::BTreeMap::new();
            offset.iter().flatten().for_each(|&o| *counts.entry(o).or_insert(0usize) += 1);
            let typical_offset = counts.iter().max_by_key(|(o, &c)| (c, -(**o).abs())).map(|(&o, _)| o);
            let descending_steps = top.windows(2).filter(|w| matches!((w[0], w[1]), (Some(a), Some(b)) if b + 1 == a)).count();
            let need = 3.min(model.n_digits.saturating_sub(1)).max(1);
            out.push(Staircase {
                layer,
                head,
                query_positions: queries.clone(),
                source_tokens: source_tokens.clone(),
                weights,
                top_column: top,
                offset,
                typical_offset,
                descending_steps,
                is_staircase: descending_steps >= need,
            });
        }
    }
    out
}
