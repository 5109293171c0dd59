//! The algorithm, assembled: per answer digit, which nodes supply which sub-tasks and where they
//! are combined, as text ("A3 = BA_3 @P13L0H1 + MC_2 @P13L0H0 + (MS_2 and MC_1) @P13L0H2,
//! combined by P13L0M") and as data, with the lookahead depth (how many columns below the digit
//! its nodes read) that the derived symbolic formula uses. With a circuit
//! ([`super::paths::Circuit`]) each digit also gets the edges that carry its sub-tasks
//! ([`attach_circuit`]) and the columns those edges reach, which extend the derived formula's
//! depth ([`DigitAlgorithm::reach`]).

use super::naming::{answer_column, answer_names, predicting_position, Node};
use super::nodes::NodeAblation;
use super::paths::Circuit;
use super::subtasks::{Kind, NodeTags};
use crate::eval::failure_families::FailureFamilies;
use crate::task_model::TaskModel;
use serde::{Deserialize, Serialize};

/// One node's contribution to a digit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// Node name.
    pub node: String,
    /// Sub-tasks it was tagged with (empty if none matched).
    pub subtasks: Vec<String>,
    /// The operand column it attends to most, if a head.
    pub column: Option<usize>,
}

/// How one answer token is computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigitAlgorithm {
    /// Answer token (`A3`).
    pub digit: String,
    /// Its column k, if a digit.
    pub column: Option<usize>,
    /// Position it is predicted at.
    pub position: usize,
    /// Head nodes that affect it.
    pub parts: Vec<Part>,
    /// The useful MLP node at its position (latest layer), if any.
    pub combined_by: Option<String>,
    /// Columns below this one whose information reaches it (from tags, else attention).
    pub lookahead_depth: Option<usize>,
    /// The line of text.
    pub text: String,
    /// The failure families whose first wrong token is this digit, as "DESCRIPTION (N% of
    /// failures)" (empty in an analysis.json of an older arithlens).
    #[serde(default)]
    pub fails_when: Vec<String>,
    /// The circuit's largest edges into this digit, as "MC_0 via P6L0H0 -> P6L1M.in (column 0,
    /// 1.42 nats)" (the sender's sub-tasks first when it is one of the digit's tagged parts);
    /// empty without a circuit or in an analysis.json of an older arithlens.
    #[serde(default)]
    pub via: Vec<String>,
    /// Columns whose corruption has a significant edge into this digit (the circuit's reach),
    /// ascending.
    #[serde(default)]
    pub circuit_columns: Vec<usize>,
}

/// Edges per digit that its line names (the rest are counted).
const VIA_SHOWN: usize = 3;

impl DigitAlgorithm {
    /// The line the summary and the report show: `text`, then "; paths: ..." with the edges
    /// that carry its sub-tasks, then "; fails when ..." with the digit's failure families.
    pub fn line(&self) -> String {
        let mut s = self.text.clone();
        if !self.via.is_empty() {
            s += &format!("; paths: {}", self.via.join(", "));
        }
        if !self.fails_when.is_empty() {
            s += &format!("; fails when {}", self.fails_when.join(", or "));
        }
        s
    }

    /// How many columns below this digit its carry reaches: the nodes' depth
    /// ([`DigitAlgorithm::lookahead_depth`]), or as far down as a column whose corruption has a
    /// significant circuit edge into it, whichever is further; `None` when neither says.
    pub fn reach(&self) -> Option<usize> {
        let k = self.column?;
        let edges = self.circuit_columns.iter().filter(|&&c| c < k).map(|&c| k - c).max();
        match (self.lookahead_depth, edges) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Gives each digit the circuit's edges into it ([`DigitAlgorithm::via`], the largest
/// three) and the columns they carry ([`DigitAlgorithm::circuit_columns`]).
pub fn attach_circuit(algo: &mut [DigitAlgorithm], circuit: &Circuit) {
    for d in algo {
        let Some(c) = circuit.digits.iter().find(|c| c.digit == d.digit) else { continue };
        let mut cols: Vec<usize> = c.edges.iter().map(|e| e.corruption.column()).collect();
        cols.sort_unstable();
        cols.dedup();
        d.circuit_columns = cols;
        d.via = c.edges.iter().take(VIA_SHOWN).map(|e| via_term(&d.parts, e)).collect();
        if c.edges.len() > VIA_SHOWN {
            d.via.push(format!("{} more", c.edges.len() - VIA_SHOWN));
        }
    }
}

/// One edge as a digit's line names it: "MC_0 via EDGE" when its sender is a tagged part of the
/// digit (alone or in a group), else the edge alone.
fn via_term(parts: &[Part], e: &super::paths::CircuitEdge) -> String {
    let sender = e.edge.sender.name();
    let part = parts.iter().find(|p| !p.subtasks.is_empty() && p.node.split('+').any(|n| n == sender));
    match part {
        Some(p) => format!("{} via {}", p.subtasks.join(" and "), e.describe()),
        None => e.describe(),
    }
}

/// Gives each digit the families (of any operation) whose first wrong token is that digit; the
/// sign, which has no column, is digit `n_digits + 1` as the families count it.
pub fn attach_failures(algo: &mut [DigitAlgorithm], families: &[FailureFamilies], n_digits: usize) {
    for d in algo {
        let k = d.column.unwrap_or(n_digits + 1);
        d.fails_when = (families.iter().flat_map(|f| &f.families))
            .filter(|f| f.digits.contains(&k))
            .map(|f| format!("{} ({:.0}% of {} failures)", f.description.trim_end_matches('.'), 100.0 * f.share_of_failures, f.op.word()))
            .collect();
    }
}

/// Assembles the algorithm from node ablations, intervention tags and each head node's most
/// attended column (`columns`, by node).
pub fn assemble(
    model: &TaskModel,
    ablations: &[NodeAblation],
    tags: &[NodeTags],
    columns: &[(Node, Option<usize>)],
) -> Vec<DigitAlgorithm> {
    let names = answer_names(model);
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let pos = predicting_position(model, i);
            let col = answer_column(model, i);
            let parts: Vec<Part> = ablations
                .iter()
                .filter(|a| a.useful && a.node.head.is_some() && a.impact.contains(name))
                .map(|a| {
                    // The node's own tags, else those of a group it was patched in.
                    let own = tags.iter().find(|t| t.group == [a.node] && !t.tags.is_empty());
                    let t = own.or_else(|| tags.iter().find(|t| t.group.contains(&a.node) && !t.tags.is_empty()));
                    let column = columns.iter().find(|c| c.0 == a.node).and_then(|c| c.1);
                    let node = t.map_or(a.name.clone(), |t| t.name.clone());
                    Part { node, subtasks: t.map(|t| t.tags.clone()).unwrap_or_default(), column }
                })
                .collect();
            let parts = ordered_once(parts);
            let combined_by = ablations
                .iter()
                .filter(|a| a.useful && a.node.head.is_none() && a.node.pos == pos && a.impact.contains(name))
                .max_by_key(|a| a.node.layer)
                .map(|a| a.name.clone());
            let lookahead_depth = col.map(|k| depth(k, &parts, tags));
            let terms: Vec<String> = parts
                .iter()
                .map(|p| {
                    let what = match p.subtasks.len() {
                        0 => format!("?{}", p.column.map_or(String::new(), |c| format!("(D{c},D'{c})"))),
                        1 => p.subtasks[0].clone(),
                        _ => format!("({})", p.subtasks.join(" and ")),
                    };
                    format!("{what} @{}", p.node)
                })
                .collect();
            let mut text = format!("{name} = {}", if terms.is_empty() { "(no single node found)".into() } else { terms.join(" + ") });
            if let Some(m) = &combined_by {
                text += &format!(", combined by {m}");
            }
            DigitAlgorithm {
                digit: name.clone(),
                column: col,
                position: pos,
                parts,
                combined_by,
                lookahead_depth,
                text,
                fails_when: Vec::new(),
                via: Vec::new(),
                circuit_columns: Vec::new(),
            }
        })
        .collect()
}

/// Parts from the highest column down, each node (or group) once: a group's members may read
/// different columns, so its duplicates need not be neighbours.
fn ordered_once(mut parts: Vec<Part>) -> Vec<Part> {
    parts.sort_by_key(|p| std::cmp::Reverse(p.column));
    let mut seen = std::collections::HashSet::new();
    parts.retain(|p| seen.insert(p.node.clone()));
    parts
}

/// Columns below `k` whose information reaches digit `k`, part by part: a tagged part by its tags
/// (a make tag on column j reads column j; a pass or tricase tag on column j is only of use with
/// the carry out of column j - 1, so it reaches down to j - 1; a use-pass tag on column j reads
/// j - 1), an untagged part by the column its head attends to most (the digit needs it, so what
/// it reads counts even when no candidate sub-task names it).
fn depth(k: usize, parts: &[Part], tags: &[NodeTags]) -> usize {
    let mut lowest: Option<usize> = None;
    let mut note = |j: usize| {
        if j < k {
            lowest = Some(lowest.map_or(j, |l: usize| l.min(j)));
        }
    };
    for p in parts {
        let tagged = tags.iter().find(|t| t.name == p.node && !t.tags.is_empty());
        let Some(t) = tagged else {
            p.column.into_iter().for_each(&mut note);
            continue;
        };
        for test in t.tests.iter().filter(|x| t.tags.contains(&x.subtask)) {
            match test.task.kind {
                Kind::Base | Kind::Operator | Kind::Sign => {}
                Kind::Make => note(test.task.col),
                Kind::Pass | Kind::TriCase | Kind::UsePass => note(test.task.col.saturating_sub(1)),
            }
        }
    }
    lowest.map_or(0, |l| k - l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::subtasks::{PatchTest, SubTask};
    use crate::task::Op;

    fn part(node: &str, subtasks: &[&str], column: Option<usize>) -> Part {
        Part { node: node.into(), subtasks: subtasks.iter().map(|s| s.to_string()).collect(), column }
    }

    /// Tags of `node`: each (kind, column) tested and matched.
    fn tagged(node: &str, tasks: &[(Kind, usize)]) -> NodeTags {
        let n = Node { pos: 13, layer: 0, head: Some(0) };
        let tests: Vec<PatchTest> = tasks
            .iter()
            .map(|&(kind, col)| {
                let task = SubTask { kind, col, op: Op::Add, negative: false };
                PatchTest { subtask: format!("{kind:?}_{col}"), task, informative: 10, match_rate: 1.0 }
            })
            .collect();
        let tags = tests.iter().map(|t| t.subtask.clone()).collect();
        NodeTags { name: node.into(), node: n, group: vec![n], impact: vec![], tests, tags }
    }

    #[test]
    fn each_digit_gets_the_families_whose_first_wrong_token_it_is() {
        let families: crate::eval::failure_families::FailureFamilies = serde_json::from_value(serde_json::json!({
            "families": [
                {"name": "a", "description": "A2-A3 loses the carry.", "rule": "", "op": "add", "count": 3,
                 "share_of_failures": 0.75, "precision": null, "precision_questions": 0, "classes": {}, "examples": [], "digits": [2, 3]},
                {"name": "s", "description": "The sign is wrong.", "rule": "", "op": "sub", "count": 1,
                 "share_of_failures": 0.25, "precision": null, "precision_questions": 0, "classes": {}, "examples": [], "digits": [4]}
            ],
            "failures": 4, "uncovered": 0, "uncovered_kinds": {}
        }))
        .unwrap();
        let digit = |column: Option<usize>| DigitAlgorithm {
            digit: column.map_or("sign".into(), |k| format!("A{k}")),
            column,
            position: 0,
            parts: vec![],
            combined_by: None,
            lookahead_depth: None,
            text: "X = BA".into(),
            fails_when: vec![],
            via: vec![],
            circuit_columns: vec![],
        };
        let mut algo = vec![digit(None), digit(Some(3)), digit(Some(2)), digit(Some(1))];
        attach_failures(&mut algo, &[families], 3);
        assert_eq!(algo[0].line(), "X = BA; fails when The sign is wrong (25% of subtraction failures)");
        assert_eq!(algo[1].line(), "X = BA; fails when A2-A3 loses the carry (75% of addition failures)");
        assert_eq!(algo[2].fails_when, algo[1].fails_when);
        assert_eq!(algo[3].line(), "X = BA", "no family at A1");
    }

    /// A circuit edge `name` ("P6L0M -> P6L1M.in") carrying column `col` with a drop of `drop` nats.
    fn circuit_edge(name: &str, col: usize, drop: f64) -> crate::analysis::paths::CircuitEdge {
        use crate::analysis::paths::{Corruption, DigitEffect, Edge, Input};
        let (s, r) = name.split_once(" -> ").unwrap();
        let (r, input) = r.split_once('.').unwrap();
        let input = match input {
            "q" => Input::Query,
            "k" => Input::Key,
            "v" => Input::Value,
            _ => Input::Mlp,
        };
        let edge = Edge { sender: Node::parse(s).unwrap(), receiver: Node::parse(r).unwrap(), input };
        let effect = DigitEffect {
            digit: String::new(),
            logprob_drop: drop,
            logprob_se: 0.1,
            logit_drop: drop,
            prob_drop: 0.0,
            margin_drop: 0.0,
            accuracy_drop: 0.0,
            total_logprob_drop: drop,
            classes: vec![],
        };
        crate::analysis::paths::CircuitEdge {
            name: name.into(),
            edge,
            corruption: Corruption::Column { col },
            receiver_share: 1.0,
            effect,
            eap_drop: drop,
        }
    }

    #[test]
    fn each_digit_gets_the_edges_into_it_and_its_reach_follows_them() {
        use crate::analysis::paths::{Circuit, CircuitOptions, DigitCircuit};
        let digit = |name: &str, position| DigitCircuit { digit: name.into(), position, nodes: vec![], edges: vec![] };
        let mut a2 = digit("A2", 5);
        a2.edges = vec![
            circuit_edge("P5L0H0 -> P5L1M.in", 1, 2.0),
            circuit_edge("P3L0M -> P5L1H2.v", 0, 1.0),
            circuit_edge("P5L0M -> P5L1M.in", 1, 0.5),
            circuit_edge("P5L0H1 -> P5L1M.in", 1, 0.2),
        ];
        let circuit = Circuit {
            options: CircuitOptions::default(),
            questions: 10,
            candidates: 9,
            checks: vec![],
            digits: vec![a2, digit("A1", 6)],
            note: None,
        };
        let alg = |name: &str, column, depth| DigitAlgorithm {
            digit: name.into(),
            column: Some(column),
            position: 0,
            parts: vec![part("P5L0H0+P5L0H2", &["MC_1"], Some(1))],
            combined_by: None,
            lookahead_depth: depth,
            text: format!("{name} = X"),
            fails_when: vec![],
            via: vec![],
            circuit_columns: vec![],
        };
        let mut algo = vec![alg("A2", 2, Some(1)), alg("A1", 1, Some(1)), alg("A0", 0, None)];
        attach_circuit(&mut algo, &circuit);
        assert_eq!(
            algo[0].line(),
            "A2 = X; paths: MC_1 via P5L0H0 -> P5L1M.in (column 1, 2.00 nats), P3L0M -> P5L1H2.v (column 0, 1.00 nats), \
             P5L0M -> P5L1M.in (column 1, 0.50 nats), 1 more"
        );
        assert_eq!(algo[0].circuit_columns, [0, 1]);
        assert_eq!((algo[0].lookahead_depth, algo[0].reach()), (Some(1), Some(2)), "the edge from column 0 reaches 2 down");
        assert_eq!((algo[1].line(), algo[1].reach()), ("A1 = X".to_string(), Some(1)), "no edge: the nodes' depth");
        assert_eq!(algo[2].reach(), None);
    }

    #[test]
    fn a_group_is_listed_once_even_when_its_members_read_different_columns() {
        let g = "P15L1H0+P15L1H2";
        let parts = vec![part(g, &["NB_3"], Some(3)), part("P15L1H1", &["UB_4"], Some(2)), part(g, &["NB_3"], Some(1))];
        let names: Vec<String> = ordered_once(parts).into_iter().map(|p| p.node).collect();
        assert_eq!(names, [g, "P15L1H1"]);
    }

    #[test]
    fn depth_reads_tags_of_tagged_parts_and_attention_of_untagged_ones() {
        let tags = [tagged("P13L0H0", &[(Kind::Make, 2)]), tagged("P13L0H1", &[(Kind::Base, 3), (Kind::TriCase, 2)])];
        let base = [part("P13L0H1", &["Base_3"], Some(3))];
        assert_eq!(depth(3, &base, &tags), 2, "TriCase_2 needs the carry out of column 1");
        let make = [part("P13L0H0", &["Make_2"], Some(2))];
        assert_eq!(depth(3, &make, &tags), 1);
        // An untagged head reading column 0 reaches further down than the tags do.
        let with_untagged = [make[0].clone(), part("P10L0H2", &[], Some(0))];
        assert_eq!(depth(3, &with_untagged, &tags), 3);
        // A tagged part's own attention does not count beyond its tags, nor does a column at or above k.
        let high = [part("P13L0H0", &["Make_2"], Some(0)), part("P9L0H2", &[], Some(4))];
        assert_eq!(depth(3, &high, &tags), 1);
        assert_eq!(depth(3, &[], &tags), 0);
    }
}
