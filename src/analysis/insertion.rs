//! Insertion: what became of the heads copied in from a trained model (the follow-up paper's
//! "ins" models). For each inserted head this reports how far its weights moved from the
//! source, how much each operation needs it (mean ablation of its nodes on that operation's
//! questions alone), the sub-tasks it was tagged with per operation, the roles it had in the
//! source model (from the source's analysis.json, when there is one), and a one-line verdict:
//! kept its addition role, took subtraction roles, both, or unused.

use super::naming::Node;
use super::nodes::{ablate_nodes, candidate_nodes, NodeAblation};
use super::subtasks::{head_roles, NodeTags};
use super::{analysis_questions, Analysis};
use crate::eval::predict::teacher_forced_transformer;
use crate::io::schema::Versioned;
use crate::model::Params;
use crate::task::Op;
use crate::task_model::TaskModel;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One inserted head in the trained model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InsertedHead {
    /// `L0H1`.
    pub head: String,
    /// Layer.
    pub layer: usize,
    /// Head index.
    pub index: usize,
    /// ‖W − W_source‖ / ‖W_source‖ over the head's W_Q, W_K, W_V and W_O slices.
    pub drift: f64,
    /// Per operation of the model, the highest failure rate when one of its nodes is
    /// mean-ablated on that operation's questions.
    pub fail_by_op: Vec<(Op, f64)>,
    /// Per operation, the sub-task kinds (`BA`, `MC`, `MD`, `TriCase`, ...) its nodes were tagged with.
    pub roles_by_op: Vec<(Op, Vec<String>)>,
    /// Its sub-task kinds in the source model (`None` when the source was not analysed).
    pub source_roles: Option<Vec<String>>,
    /// "kept an addition role (BA)", "took subtraction roles (MD+MB)", "serves both: ...",
    /// "needed by subtraction only (no sub-task tagged)", "unused: ...".
    pub verdict: String,
}

/// The insertion section of analysis.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Insertion {
    /// The inserted model's path, as the training config names it.
    pub from: String,
    /// Re-imposition period in steps (0 = inserted once).
    pub every: u64,
    /// Why the source's roles are unknown, if they are.
    pub source_note: Option<String>,
    /// Every inserted head.
    pub heads: Vec<InsertedHead>,
}

/// Why the model a run was inserted from could not be read for comparison.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The model itself.
    #[error(transparent)]
    Model(#[from] crate::task_model::ModelError),
    /// Its analysis.json, which is there but cannot be read.
    #[error(transparent)]
    Analysis(#[from] crate::io::schema::ReadError),
}

/// The source model and its analysis (analysis.json beside it, if there is one), as the
/// training config names it.
pub fn load_source(from: &Path) -> Result<(TaskModel, Option<Analysis>), SourceError> {
    let model = TaskModel::load(from)?;
    let dir = if from.is_dir() { from.to_path_buf() } else { from.parent().map(Path::to_path_buf).unwrap_or_default() };
    let path = crate::run_folder::RunFolder::new(dir).analysis();
    let analysis = if path.exists() { Some(Analysis::load(&path)?) } else { None };
    Ok((model, analysis))
}

/// Relative change of head `h` of `layer` between `source` and `model`.
pub fn head_drift(source: &Params, model: &Params, layer: usize, h: usize) -> f64 {
    let (s, m) = (&source.layout.blocks[layer].attn, &model.layout.blocks[layer].attn);
    let per = source.config.d_model * source.config.d_head;
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (a, b) in [(&s.w_q, &m.w_q), (&s.w_k, &m.w_k), (&s.w_v, &m.w_v), (&s.w_o, &m.w_o)] {
        let (a, b) = (&source.data[a.start + h * per..a.start + (h + 1) * per], &model.data[b.start + h * per..b.start + (h + 1) * per]);
        for (&x, &y) in a.iter().zip(b) {
            diff += f64::from(y - x).powi(2);
            norm += f64::from(x).powi(2);
        }
    }
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

/// The verdict line from an inserted head's per-operation needs and roles.
pub fn verdict(fail_by_op: &[(Op, f64)], roles_by_op: &[(Op, Vec<String>)], threshold: f64) -> String {
    let used = |op: Op| {
        let needed = fail_by_op.iter().any(|&(o, f)| o == op && f >= threshold);
        let roles = roles_by_op.iter().find(|(o, _)| *o == op).map(|(_, r)| r.join("+")).unwrap_or_default();
        (needed, roles)
    };
    let ((add, add_roles), (sub, sub_roles)) = (used(Op::Add), used(Op::Sub));
    let with = |r: &str| if r.is_empty() { String::new() } else { format!(" ({r})") };
    match (add, sub) {
        (true, false) if add_roles.is_empty() => "needed by addition only (no sub-task tagged)".into(),
        (false, true) if sub_roles.is_empty() => "needed by subtraction only (no sub-task tagged)".into(),
        (true, false) => format!("kept an addition role{}", with(&add_roles)),
        (false, true) => format!("took subtraction roles{}", with(&sub_roles)),
        (true, true) => format!("serves both: addition{} and subtraction{}", with(&add_roles), with(&sub_roles)),
        (false, false) => "unused: ablating it changes no answer".into(),
    }
}

/// Examines every inserted head of `model` (layers and heads below the source's counts).
/// `tags` are the model's intervention tags; `useful` its useful positions.
pub fn examine(
    model: &TaskModel,
    source: &TaskModel,
    source_analysis: Option<&Analysis>,
    tags: &[NodeTags],
    useful: &[usize],
    opts: &super::AnalyzeOptions,
) -> Vec<InsertedHead> {
    let sc = &source.params.config;
    let heads: Vec<(usize, usize)> = (0..sc.n_layers).flat_map(|l| (0..sc.n_heads).map(move |h| (l, h))).collect();
    let inserted = |n: &Node| n.layer < sc.n_layers && n.head.is_some_and(|h| h < sc.n_heads);
    let nodes: Vec<Node> = candidate_nodes(model, useful).into_iter().filter(inserted).collect();
    let qs = analysis_questions(model, opts.questions, opts.seed);
    let per_op: Vec<(Op, Vec<NodeAblation>)> = model
        .ops
        .iter()
        .map(|&op| {
            let q: Vec<_> = qs.iter().filter(|q| q.op == op).copied().collect();
            (
                op,
                ablate_nodes(
                    model,
                    &q,
                    &teacher_forced_transformer(model, &q, opts.batch),
                    &nodes,
                    opts.threshold,
                    opts.batch,
                    &mut |_, _| {},
                ),
            )
        })
        .collect();
    heads
        .into_iter()
        .map(|(layer, h)| {
            let fail_by_op: Vec<(Op, f64)> = per_op
                .iter()
                .map(|(op, abl)| {
                    let of_head = abl.iter().filter(|a| a.node.layer == layer && a.node.head == Some(h));
                    (*op, of_head.map(|a| a.fail_rate).fold(0.0, f64::max))
                })
                .collect();
            let roles_by_op: Vec<(Op, Vec<String>)> = model.ops.iter().map(|&op| (op, head_roles(tags, layer, h, Some(op)))).collect();
            InsertedHead {
                head: super::naming::head_name(layer, h),
                layer,
                index: h,
                drift: head_drift(&source.params, &model.params, layer, h),
                verdict: verdict(&fail_by_op, &roles_by_op, opts.threshold),
                fail_by_op,
                roles_by_op,
                source_roles: source_analysis.map(|a| head_roles(&a.tags, layer, h, None)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_names_the_operations_that_need_the_head() {
        let roles = vec![(Op::Add, vec!["BA".to_string()]), (Op::Sub, vec!["MD".to_string(), "MB".to_string()])];
        assert_eq!(verdict(&[(Op::Add, 0.3), (Op::Sub, 0.0)], &roles, 0.01), "kept an addition role (BA)");
        assert_eq!(verdict(&[(Op::Add, 0.0), (Op::Sub, 0.2)], &roles, 0.01), "took subtraction roles (MD+MB)");
        assert!(verdict(&[(Op::Add, 0.1), (Op::Sub, 0.2)], &roles, 0.01).starts_with("serves both"));
        assert!(verdict(&[(Op::Add, 0.001), (Op::Sub, 0.0)], &roles, 0.01).starts_with("unused"));
        let untagged = vec![(Op::Add, vec![]), (Op::Sub, vec![])];
        assert_eq!(verdict(&[(Op::Add, 0.0), (Op::Sub, 0.1)], &untagged, 0.01), "needed by subtraction only (no sub-task tagged)");
        assert_eq!(verdict(&[(Op::Add, 0.1), (Op::Sub, 0.0)], &untagged, 0.01), "needed by addition only (no sub-task tagged)");
    }

    #[test]
    fn drift_is_zero_for_a_copy_and_grows_with_the_change() {
        let c = crate::train::TrainConfig::preset("tiny").unwrap().model;
        let a = Params::init(&c);
        let mut b = a.clone();
        assert_eq!(head_drift(&a, &b, 0, 1), 0.0);
        let r = b.layout.blocks[0].attn.w_o.clone();
        let per = c.d_head * c.d_model;
        b.data[r.start + per..r.start + 2 * per].iter_mut().for_each(|x| *x *= 2.0);
        assert_eq!(head_drift(&a, &b, 0, 0), 0.0, "head 0 untouched");
        let d = head_drift(&a, &b, 0, 1);
        assert!(d > 0.1 && d < 1.0, "{d}");
    }
}
