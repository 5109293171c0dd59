//! Sub-task tagging. By intervention: for a node and a candidate sub-task of a column (BA_k,
//! MC_k, MS_k, TriCase_k, US_k; for subtraction MD, MB, MZ, MT, UB), build pairs of
//! questions that differ in that sub-task's value and as little else as possible, patch the
//! node's activation from the source question into the clean one, and check that the answer
//! digits the node affects change exactly as the sub-task predicts (the clean question's labels
//! with that one value taken from the source). By PCA: the principal components of a head's
//! output (`hook_z` of the head at its position) over questions, and how well each candidate
//! sub-task's classes separate in the top components.

use super::intervene::{cache_activation, predict_from, Intervention, Interventions, Prefix, Units};
use super::naming::Node;
use super::pca::{pca, separation_of, Separation};
use crate::eval::predict::Predictions;
use crate::model::HookPoint;
use crate::task::columns::Columns;
use crate::task::labels::carry_out;
use crate::task::{tricase, Format, Op, Question};
use crate::task_model::TaskModel;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A kind of per-column sub-task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// Base add / base difference.
    Base,
    /// Make carry / make borrow.
    Make,
    /// Make sum 9 / make zero (passes a carry or borrow on).
    Pass,
    /// The three-way case: makes, passes, or neither.
    TriCase,
    /// Use sum 9: a carry reaching column k through a passing column k-1.
    UsePass,
    /// Mixed models: which operation the question asks for (a whole-question value).
    Operator,
    /// Subtraction: whether the answer is negative (x < y; a whole-question value).
    Sign,
}

/// The per-column kinds, in report order (the whole-question kinds `Operator` and `Sign` are
/// candidates only where they apply).
pub const KINDS: [Kind; 5] = [Kind::Base, Kind::Make, Kind::Pass, Kind::TriCase, Kind::UsePass];

/// A sub-task of one column, e.g. MC_2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubTask {
    /// Which sub-task.
    pub kind: Kind,
    /// Column k (0 = units).
    pub col: usize,
    /// The operation, for naming.
    pub op: Op,
    /// Subtraction with a negative answer (x < y): the sub-task acts on y - x.
    #[serde(default)]
    pub negative: bool,
}

impl SubTask {
    /// A sub-task of column `col` of questions with non-negative answers.
    pub fn new(kind: Kind, col: usize, op: Op) -> SubTask {
        SubTask { kind, col, op, negative: false }
    }

    /// `BA_3`, `MC_2`, `MS_2`, `TriCase_1`, `US_3`; subtraction `MD`, `MB`, `MZ`, `MT` (its
    /// TriCase: x > y / x = y / x < y), `UB`, and for negative answers `ND`, `NB`, `NZ`, `NT`,
    /// `NUB` (the follow-up library's names); `OP` and `SIGN` for the whole-question kinds.
    pub fn name(&self) -> String {
        let k = match (self.kind, self.op) {
            (Kind::Operator, _) => return "OP".into(),
            (Kind::Sign, _) => return "SIGN".into(),
            (Kind::Base, Op::Sub) if self.negative => "ND",
            (Kind::Make, Op::Sub) if self.negative => "NB",
            (Kind::Pass, Op::Sub) if self.negative => "NZ",
            (Kind::TriCase, Op::Sub) if self.negative => "NT",
            (Kind::UsePass, Op::Sub) if self.negative => "NUB",
            (Kind::Base, Op::Add) => "BA",
            (Kind::Make, Op::Add) => "MC",
            (Kind::Pass, Op::Add) => "MS",
            (Kind::UsePass, Op::Add) => "US",
            (Kind::Base, Op::Sub) => "MD",
            (Kind::Make, Op::Sub) => "MB",
            (Kind::Pass, Op::Sub) => "MZ",
            (Kind::UsePass, Op::Sub) => "UB",
            (Kind::TriCase, Op::Sub) => "MT",
            (Kind::TriCase, Op::Add) => "TriCase",
        };
        format!("{k}_{}", self.col)
    }

    /// The answer tokens the clean question would get if this sub-task's value came from
    /// `source`: for `OP` the source's answer (same operands, the other operation), for `SIGN`
    /// the clean answer with the source's sign, else [`SubTask::predicted_digits`].
    pub fn predicted_tokens(&self, clean: &Question, source: &Question, format: Format) -> Vec<u32> {
        match self.kind {
            Kind::Operator => source.answer_tokens(format),
            Kind::Sign => {
                let mut t = clean.answer_tokens(format);
                t[0] = source.answer_tokens(format)[0];
                t
            }
            _ => Columns::tokens(&self.predicted_digits(clean, source), clean, format),
        }
    }

    /// The answer digits A_0..A_n the clean question would get if this per-column sub-task's
    /// value came from `source` (the clean digits for the whole-question kinds).
    pub fn predicted_digits(&self, clean: &Question, source: &Question) -> Vec<u8> {
        let (mut c, s) = (Columns::of(clean), Columns::of(source));
        let k = self.col;
        let mut carries = None;
        match self.kind {
            Kind::Base => c.base[k] = s.base[k],
            Kind::Make => c.make[k] = s.make[k],
            Kind::Pass => c.pass[k] = s.pass[k],
            Kind::TriCase => (c.make[k], c.pass[k]) = (s.make[k], s.pass[k]),
            Kind::Operator | Kind::Sign => {}
            Kind::UsePass => {
                let (cc, sc) = (c.carries(), s.carries());
                let mut v = cc.clone();
                v[k] = carry_out(c.make[k - 1], s.pass[k - 1], sc[k - 1]);
                // The changed carry into k runs on up through the clean question's columns.
                for j in k..c.n() {
                    v[j + 1] = carry_out(c.make[j], c.pass[j], v[j]);
                }
                carries = Some(v);
            }
        }
        let carries = carries.unwrap_or_else(|| c.carries());
        c.digits(&carries)
    }

    /// The class of a question under this sub-task (for PCA colouring).
    pub fn class(&self, q: &Question) -> usize {
        let c = Columns::of(q);
        let k = self.col;
        match self.kind {
            Kind::Base => c.base[k] as usize,
            Kind::Make => c.make[k] as usize,
            Kind::Pass => c.pass[k] as usize,
            Kind::TriCase => c.make[k] as usize * 2 + c.pass[k] as usize,
            Kind::UsePass => (c.pass[k - 1] && c.carries()[k - 1]) as usize,
            Kind::Operator => (q.op == Op::Sub) as usize,
            Kind::Sign => (q.op == Op::Sub && q.x < q.y) as usize,
        }
    }

    /// Names of the values [`SubTask::class`] gives, in class order.
    pub fn class_names(&self) -> Vec<String> {
        let add = self.op == Op::Add;
        let names: &[&str] = match self.kind {
            Kind::Base => return (0..10).map(|d| d.to_string()).collect(),
            Kind::Make if add => &["no carry", "carry"],
            Kind::Make => &["no borrow", "borrow"],
            Kind::Pass if add => &["sum != 9", "sum = 9"],
            Kind::Pass => &["digits differ", "digits equal"],
            Kind::TriCase if add => &["sum <= 8", "sum = 9", "sum >= 10"],
            Kind::TriCase => &["no borrow, digits differ", "digits equal", "borrow"],
            Kind::UsePass if add => &["no carry passed on", "carry passed on by a sum 9"],
            Kind::UsePass => &["no borrow passed on", "borrow passed on by equal digits"],
            Kind::Operator => &["+", "-"],
            Kind::Sign => &["answer >= 0", "answer < 0"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Whether the sub-task is defined on `q`: a column sub-task on questions of its operation
    /// (for subtraction, of its answer's sign); the whole-question kinds on every question.
    pub fn applies_to(&self, q: &Question) -> bool {
        match self.kind {
            Kind::Operator | Kind::Sign => true,
            _ => q.op == self.op && (self.op == Op::Add || (q.x < q.y) == self.negative),
        }
    }

    /// The sub-task named `name` ([`SubTask::name`]'s output, e.g. `MC_2`, `NB_1`, `OP`);
    /// `None` for any other text.
    pub fn parse(name: &str) -> Option<SubTask> {
        // `OP` and `SIGN` carry no column; every other name ends in `_k`.
        let col = match name.rsplit_once('_') {
            Some((_, c)) => c.parse().ok()?,
            None => 0,
        };
        let kinds = KINDS.iter().chain(&[Kind::Operator, Kind::Sign]);
        kinds
            .flat_map(|&kind| {
                [(Op::Add, false), (Op::Sub, false), (Op::Sub, true)].map(|(op, negative)| SubTask { kind, col, op, negative })
            })
            .find(|t| t.name() == name)
            // Use sum 9 reads the column below: it has no column 0.
            .filter(|t| !(t.kind == Kind::UsePass && t.col == 0))
    }
}

fn set_col(q: &mut Question, k: usize, a: u8, b: u8) {
    let p = 10u128.pow(k as u32);
    let (xa, yb) = (q.digit_x(k) as u128, q.digit_y(k) as u128);
    q.x = q.x - xa * p + a as u128 * p;
    q.y = q.y - yb * p + b as u128 * p;
}

/// A random question of `task`'s operation; subtractions are ordered to the sign `task` wants.
fn random_q(rng: &mut ChaCha8Rng, n: usize, task: SubTask) -> Question {
    let lim = 10u128.pow(n as u32);
    let (mut x, mut y) = (rng.gen_range(0..lim), rng.gen_range(0..lim));
    if task.op == Op::Sub && (x < y) != task.negative {
        std::mem::swap(&mut x, &mut y);
    }
    Question { x, y, op: task.op, n_digits: n }
}

/// Whether `q` is a question of `task`'s operation and sign.
fn fits(task: SubTask, q: &Question) -> bool {
    task.op != Op::Sub || (q.x < q.y) == task.negative
}

fn tri(q: &Question, k: usize) -> (bool, bool) {
    let c = Columns::of(q);
    match q.op {
        Op::Add => {
            let t = tricase(q.digit_x(k), q.digit_y(k));
            (t == crate::task::TriCase::Carry, t == crate::task::TriCase::Sum9)
        }
        Op::Sub => (c.make[k], c.pass[k]),
    }
}

/// Up to `count` (clean, source) pairs whose values of `task` differ, changing only column k
/// (for US_k: columns below k-1, with column k-1 passing in both). Subtraction pairs keep
/// the sign of the task (x >= y, or x < y for the negative sub-tasks).
pub fn pairs(task: SubTask, n_digits: usize, count: usize, seed: u64) -> Vec<(Question, Question)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (task.col as u64 * 7919) ^ ((task.kind as u64) << 20));
    let mut out = Vec::new();
    let k = task.col;
    if task.kind == Kind::UsePass && (k == 0 || k > n_digits) || task.kind != Kind::UsePass && k >= n_digits {
        return out;
    }
    if matches!(task.kind, Kind::Operator | Kind::Sign) {
        out.extend((0..count * 200).filter_map(|_| whole_question_pair(task, &mut rng, n_digits)).take(count));
        return out;
    }
    for _ in 0..count * 200 {
        if out.len() == count {
            break;
        }
        let mut c = random_q(&mut rng, n_digits, task);
        let mut s = c;
        if task.kind == Kind::UsePass {
            let a: u8 = rng.gen_range(0..10);
            let b = if task.op == Op::Add { 9 - a } else { a };
            set_col(&mut c, k - 1, a, b);
            s = c;
            for j in 0..k - 1 {
                set_col(&mut s, j, rng.gen_range(0..10), rng.gen_range(0..10));
            }
        } else {
            set_col(&mut s, k, rng.gen_range(0..10), rng.gen_range(0..10));
        }
        if !fits(task, &c) || !fits(task, &s) {
            continue;
        }
        let (cc, sc) = (Columns::of(&c), Columns::of(&s));
        let ok = match task.kind {
            Kind::Base => tri(&c, k) == tri(&s, k) && cc.base[k] != sc.base[k],
            Kind::Make => cc.make[k] != sc.make[k] && cc.base[k] == sc.base[k],
            Kind::Pass => cc.pass[k] != sc.pass[k] && !cc.make[k] && !sc.make[k],
            Kind::TriCase => tri(&c, k) != tri(&s, k),
            Kind::UsePass => task.class(&c) != task.class(&s),
            Kind::Operator | Kind::Sign => unreachable!("whole-question kinds return above"),
        };
        if ok {
            out.push((c, s));
        }
    }
    out
}

/// A pair for a whole-question kind. `OP`: the same operands with `task.op` in the clean
/// question and the other operation in the source. `SIGN`: a subtraction and the same one with
/// the digits of its highest differing column swapped, which flips the sign and little else.
fn whole_question_pair(task: SubTask, rng: &mut ChaCha8Rng, n: usize) -> Option<(Question, Question)> {
    let lim = 10u128.pow(n as u32);
    let c = Question { x: rng.gen_range(0..lim), y: rng.gen_range(0..lim), op: task.op, n_digits: n };
    match task.kind {
        Kind::Operator => Some((c, Question { op: if task.op == Op::Add { Op::Sub } else { Op::Add }, ..c })),
        Kind::Sign => {
            let k = (0..n).rev().find(|&k| c.digit_x(k) != c.digit_y(k))?;
            let mut s = c;
            set_col(&mut s, k, c.digit_y(k), c.digit_x(k));
            Some((c, s))
        }
        _ => None,
    }
}

/// How one node behaves under patching for one candidate sub-task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatchTest {
    /// Sub-task name (`MC_2`).
    pub subtask: String,
    /// The sub-task.
    pub task: SubTask,
    /// Pairs where the sub-task predicts a change in a digit the node affects.
    pub informative: usize,
    /// Fraction of those where the node's digits became exactly the predicted ones.
    pub match_rate: f64,
}

/// Intervention tags of one node (or of a group of heads at one position patched together,
/// when the information is split between them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeTags {
    /// Node name (`P13L0H1`; a group is `P13L0H1+P13L0H2`).
    pub name: String,
    /// The (first) node.
    pub node: Node,
    /// Every node patched together.
    pub group: Vec<Node>,
    /// Answer tokens the node affects (indices into the answer).
    pub impact: Vec<usize>,
    /// Every candidate tested.
    pub tests: Vec<PatchTest>,
    /// Sub-tasks matched at or above the threshold, best first.
    pub tags: Vec<String>,
}

/// Sub-task kinds (the name before `_`) of the tags of nodes of head `h` in `layer`, for `op`
/// (or every operation when `op` is `None`).
pub fn head_roles(tags: &[NodeTags], layer: usize, h: usize, op: Option<Op>) -> Vec<String> {
    let mut kinds: Vec<String> = tags
        .iter()
        .filter(|t| t.group.iter().any(|n| n.layer == layer && n.head == Some(h)))
        .flat_map(|t| t.tests.iter().filter(|x| t.tags.contains(&x.subtask) && op.is_none_or(|o| x.task.op == o)))
        .map(|x| x.subtask.split('_').next().unwrap_or("").to_string())
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// Nodes patched together (of one position and layer; usually one node), with the answer
/// tokens they affect and the sub-tasks to test them for.
#[derive(Clone, Debug)]
pub struct PatchGroup {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Answer tokens their ablation changes.
    pub impact: Vec<usize>,
    /// Sub-tasks to test.
    pub candidates: Vec<SubTask>,
}

/// How sub-tasks are tested by patching.
#[derive(Clone, Copy, Debug)]
pub struct PatchSettings {
    /// Question pairs per sub-task.
    pub pairs: usize,
    /// Share of informative pairs whose patched answer must match the prediction.
    pub min_match: f64,
    /// Seed of the pairs.
    pub seed: u64,
    /// Questions per forward pass.
    pub batch: usize,
}

/// Patches each group from source into clean questions for each of its candidate sub-tasks.
/// Returns one entry per group; `tick(done, total)` follows the sub-tasks tested.
pub fn tag_by_patching(model: &TaskModel, groups: &[PatchGroup], s: &PatchSettings, tick: &mut dyn FnMut(usize, usize)) -> Vec<NodeTags> {
    let (n, batch) = (model.n_digits, s.batch);
    let mut all: Vec<SubTask> = groups.iter().flat_map(|g| g.candidates.iter()).copied().collect();
    // Sorted on every field, so equal sub-tasks sit together and each is tested once.
    all.sort_by_key(|t| (t.op == Op::Sub, t.col, t.kind, t.negative));
    all.dedup();
    // Each sub-task's pairs are patched into every group that may do it, sub-tasks in parallel.
    let per_task = super::stages::par_map_ticked(&all, tick, |&task| {
        let ps = pairs(task, n, s.pairs, s.seed);
        let mut found: Vec<(usize, PatchTest)> = Vec::new();
        if ps.is_empty() {
            return found;
        }
        let clean: Vec<Question> = ps.iter().map(|p| p.0).collect();
        let source: Vec<Question> = ps.iter().map(|p| p.1).collect();
        let predicted: Vec<Vec<u32>> = ps.iter().map(|(c, s)| task.predicted_tokens(c, s, model.format)).collect();
        let truth: Vec<Vec<u32>> = clean.iter().map(|c| c.answer_tokens(model.format)).collect();
        let mut cached: std::collections::HashMap<(HookPoint, usize), super::intervene::Stored> = Default::default();
        let mut prefix: Option<Prefix> = None;
        for (ni, group) in groups.iter().enumerate() {
            if !group.candidates.contains(&task) || group.impact.is_empty() {
                continue;
            }
            let node = group.nodes[0];
            let point = if node.head.is_some() { HookPoint::Z(node.layer) } else { HookPoint::MlpPost(node.layer) };
            let src =
                cached.entry((point, node.pos)).or_insert_with(|| cache_activation(model, &source, point, node.pos, 1, batch)).clone();
            let units = if node.head.is_some() { Units::Heads(group.nodes.iter().filter_map(|n| n.head).collect()) } else { Units::All };
            let mut ivs = Interventions::new(vec![Intervention::patch(point, Some(vec![node.pos]), units, src)]);
            // From the clean set's residual stream at the node's block and position.
            let prefix = prefix.get_or_insert_with(|| Prefix::new(model, &clean, batch));
            let after = predict_from(model, &clean, prefix, &mut ivs, batch);
            let (informative, match_rate) = score_patch(&group.impact, &predicted, &truth, &after);
            found.push((ni, PatchTest { subtask: task.name(), task, informative, match_rate }));
        }
        found
    });
    let mut tests: Vec<Vec<PatchTest>> = vec![Vec::new(); groups.len()];
    for (ni, test) in per_task.into_iter().flatten() {
        tests[ni].push(test);
    }
    groups.iter().zip(tests).map(|(g, tests)| NodeTags::from_tests(&g.nodes, &g.impact, tests, s.min_match)).collect()
}

/// Of the pairs where the sub-task's change should move one of the `impact` digits
/// (informative), the share whose patched answers give every impact digit the predicted value:
/// (informative pairs, match rate).
fn score_patch(impact: &[usize], predicted: &[Vec<u32>], truth: &[Vec<u32>], after: &Predictions) -> (usize, f64) {
    let na = after.n_answer;
    let informative: Vec<usize> = (0..predicted.len()).filter(|&i| impact.iter().any(|&d| predicted[i][d] != truth[i][d])).collect();
    let matched = informative.iter().filter(|&&i| impact.iter().all(|&d| after.argmax[i * na + d] == predicted[i][d])).count();
    let rate = if informative.is_empty() { 0.0 } else { matched as f64 / informative.len() as f64 };
    (informative.len(), rate)
}

impl NodeTags {
    /// A group's tags from its patching tests: every sub-task tested on at least 8 informative
    /// pairs that matched at `min_match` or more, best match first.
    fn from_tests(group: &[Node], impact: &[usize], tests: Vec<PatchTest>, min_match: f64) -> NodeTags {
        let mut good: Vec<&PatchTest> = tests.iter().filter(|t| t.informative >= 8 && t.match_rate >= min_match).collect();
        good.sort_by(|a, b| b.match_rate.total_cmp(&a.match_rate));
        let name = group.iter().map(Node::name).collect::<Vec<_>>().join("+");
        let mut tags: Vec<String> = Vec::new();
        for t in good {
            if !tags.contains(&t.subtask) {
                tags.push(t.subtask.clone());
            }
        }
        NodeTags { name, node: group[0], group: group.to_vec(), impact: impact.to_vec(), tags, tests }
    }
}

/// How well one sub-task's classes separate in a head's principal components.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PcaSeparation {
    /// Sub-task name.
    pub subtask: String,
    /// The separation of its classes in the top components, on the questions it applies to.
    #[serde(flatten)]
    pub score: Separation,
}

impl PcaSeparation {
    /// "best separated by MC_2 (2 classes, ...)", or "no sub-task separates above chance (best:
    /// MC_2, ...)" when even the best one is at noise level.
    pub fn verdict(&self) -> String {
        let lead = if self.score.separated() { "best separated by" } else { "no sub-task separates above chance (best:" };
        if !self.score.separated() {
            return format!("{lead} {}, {})", self.subtask, self.score.describe());
        }
        format!("{lead} {} ({})", self.subtask, self.score.describe())
    }
}

/// PCA of one head node's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodePca {
    /// Node name.
    pub name: String,
    /// For a mixed model, the operation whose questions were projected (each operation has its
    /// own PCA); `None` for a single-operation model.
    #[serde(default)]
    pub op: Option<Op>,
    /// Share of variance explained by each of the top components.
    pub explained: Vec<f64>,
    /// Each candidate sub-task, best separated (above chance) first.
    pub separation: Vec<PcaSeparation>,
}

impl NodePca {
    /// `P11L0H0`, or `P11L0H0 (subtraction)` for one operation of a mixed model.
    pub fn label(&self) -> String {
        match self.op {
            Some(op) => format!("{} ({})", self.name, op.word()),
            None => self.name.clone(),
        }
    }
}

/// PCA (top `k` components) of each head node's `hook_z`, with the class separation of its
/// candidate sub-tasks: one PCA per operation of the model, over that operation's `questions`
/// with that operation's candidates, node by node.
pub fn pca_nodes(
    model: &TaskModel,
    questions: &[Question],
    nodes: &[Node],
    candidates: &[Vec<SubTask>],
    k: usize,
    batch: usize,
) -> Vec<NodePca> {
    let mixed = model.ops.len() > 1;
    let dh = model.params.config.d_head;
    let mut out = Vec::new();
    let mut cached: std::collections::HashMap<(usize, usize), super::intervene::Stored> = Default::default();
    for (node, cands) in nodes.iter().zip(candidates) {
        let Some(h) = node.head else { continue };
        let z = cached
            .entry((node.layer, node.pos))
            .or_insert_with(|| cache_activation(model, questions, HookPoint::Z(node.layer), node.pos, 1, batch));
        for &op in &model.ops {
            let qs: Vec<(&Question, Vec<f64>)> = (0..questions.len())
                .filter(|&i| questions[i].op == op)
                .map(|i| (&questions[i], z.data[i * z.feat + h * dh..][..dh].iter().map(|&v| v as f64).collect()))
                .collect();
            let rows: Vec<Vec<f64>> = qs.iter().map(|(_, r)| r.clone()).collect();
            let p = pca(&rows, k);
            let mut separation: Vec<PcaSeparation> = cands
                .iter()
                .filter(|t| t.op == op && !matches!(t.kind, Kind::UsePass | Kind::Operator))
                .filter_map(|t| {
                    // Each sub-task is scored on the questions it is defined on (ND_k on
                    // negative answers, MD_k on positive ones, ...).
                    let (points, labels): (Vec<Vec<f64>>, Vec<usize>) = qs
                        .iter()
                        .zip(&p.projected)
                        .filter(|((q, _), _)| t.applies_to(q))
                        .map(|((q, _), r)| (r.clone(), t.class(q)))
                        .unzip();
                    if points.len() < 2 {
                        return None;
                    }
                    Some(PcaSeparation { subtask: t.name(), score: separation_of(&points, &labels) })
                })
                .collect();
            separation.sort_by(|a, b| b.score.adjusted_share.total_cmp(&a.score.adjusted_share));
            out.push(NodePca { name: node.name(), op: mixed.then_some(op), explained: p.explained, separation });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_is_scored_on_the_pairs_where_the_sub_task_should_move_an_impact_digit() {
        // Three answer digits; the node's impact is digit 1. Pair 0: the prediction differs from
        // the truth at digit 1 and the patched answer follows it (match). Pair 1: differs, not
        // followed. Pair 2: differs only at digit 2, outside the impact (not informative).
        let truth = vec![vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]];
        let predicted = vec![vec![1, 0, 3], vec![4, 0, 6], vec![7, 8, 0]];
        let after = Predictions { n_answer: 3, argmax: vec![1, 0, 3, 4, 5, 6, 7, 8, 9], nll: vec![0.0; 9] };
        assert_eq!(score_patch(&[1], &predicted, &truth, &after), (2, 0.5));
        assert_eq!(score_patch(&[2], &predicted, &truth, &after), (1, 0.0));
        assert_eq!(score_patch(&[0], &predicted, &truth, &after), (0, 0.0));
    }

    #[test]
    fn every_sub_task_name_parses_back_and_applies_to_its_own_questions() {
        for kind in KINDS.iter().chain(&[Kind::Operator, Kind::Sign]) {
            for (op, negative) in [(Op::Add, false), (Op::Sub, false), (Op::Sub, true)] {
                let t = SubTask { kind: *kind, col: 3, op, negative };
                let back = SubTask::parse(&t.name()).unwrap_or_else(|| panic!("{} does not parse", t.name()));
                assert_eq!(back.name(), t.name());
                assert_eq!(
                    t.class_names().len(),
                    if *kind == Kind::Base {
                        10
                    } else if *kind == Kind::TriCase {
                        3
                    } else {
                        2
                    }
                );
            }
        }
        assert_eq!(SubTask::parse("MC_12"), Some(SubTask::new(Kind::Make, 12, Op::Add)));
        assert_eq!(SubTask::parse("XX_1"), None);
        assert_eq!(SubTask::parse("MC"), None);
        assert_eq!(SubTask::parse("US_0"), None);
        let q = |x, y, op| Question::new(x, y, op, 2).unwrap();
        let (add, pos, neg) = (q(12, 34, Op::Add), q(34, 12, Op::Sub), q(12, 34, Op::Sub));
        let nb = SubTask::parse("NB_1").unwrap();
        assert_eq!([nb.applies_to(&add), nb.applies_to(&pos), nb.applies_to(&neg)], [false, false, true]);
        let mc = SubTask::parse("MC_1").unwrap();
        assert_eq!([mc.applies_to(&add), mc.applies_to(&pos), mc.applies_to(&neg)], [true, false, false]);
        assert!(SubTask::parse("OP").unwrap().applies_to(&neg));
    }

    #[test]
    fn operator_pairs_swap_only_the_operation_and_predict_the_other_answer() {
        let task = SubTask::new(Kind::Operator, 0, Op::Add);
        let ps = pairs(task, 3, 50, 1);
        assert_eq!(ps.len(), 50);
        for (c, s) in ps {
            assert_eq!((c.x, c.y, c.op, s.op), (s.x, s.y, Op::Add, Op::Sub));
            assert_eq!(task.predicted_tokens(&c, &s, Format::Paper2Sign), s.answer_tokens(Format::Paper2Sign));
        }
        assert_eq!(task.name(), "OP");
    }

    #[test]
    fn sign_pairs_flip_the_sign_by_swapping_one_column() {
        let task = SubTask::new(Kind::Sign, 0, Op::Sub);
        let ps = pairs(task, 4, 100, 2);
        assert_eq!(ps.len(), 100);
        for (c, s) in ps {
            assert_ne!(c.x < c.y, s.x < s.y, "{c:?} {s:?}");
            assert_eq!((0..4).filter(|&k| c.digit_x(k) != s.digit_x(k)).count(), 1);
            let (pc, ps) = (task.predicted_tokens(&c, &s, Format::Paper2Sign), s.answer_tokens(Format::Paper2Sign));
            assert_eq!(pc[0], ps[0], "the sign comes from the source");
            assert_eq!(pc[1..], c.answer_tokens(Format::Paper2Sign)[1..], "the digits stay the clean ones");
        }
    }

    #[test]
    fn negative_subtraction_pairs_keep_a_negative_answer_and_get_their_own_names() {
        let task = SubTask { negative: true, ..SubTask::new(Kind::Make, 1, Op::Sub) };
        let ps = pairs(task, 3, 40, 3);
        assert_eq!(ps.len(), 40);
        for (c, s) in &ps {
            assert!(c.x < c.y && s.x < s.y, "{c:?} {s:?}");
            assert_ne!(Columns::of(c).make[1], Columns::of(s).make[1]);
        }
        assert_eq!(task.name(), "NB_1");
        assert_eq!(SubTask::new(Kind::Make, 1, Op::Sub).name(), "MB_1");
    }

    #[test]
    fn every_column_sub_task_of_every_operation_and_sign_has_its_own_name() {
        let mut names: Vec<String> = Vec::new();
        for kind in KINDS {
            for (op, negative) in [(Op::Add, false), (Op::Sub, false), (Op::Sub, true)] {
                names.push(SubTask { kind, col: 2, op, negative }.name());
            }
        }
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "{names:?}");
        assert!(names.contains(&"MT_2".to_string()) && names.contains(&"NT_2".to_string()));
    }
}
