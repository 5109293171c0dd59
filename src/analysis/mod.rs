//! Interpretability analyses: the intervention engine and the analyses of Quirke & Barez
//! ("Understanding Addition in Transformers") and its follow-up (arXiv 2402.02619), found and
//! checked automatically for any trained model. [`analyze`] runs them all; `arithlens analyze
//! RUN_DIR` writes the result to RUN_DIR/analysis.json and prints [`summary()`].
//!
//! # analysis.json (schema version 1)
//! One [`Analysis`] object, read with [`Analysis::load`](crate::io::schema::Versioned::load) (which refuses another schema version)
//! and written with [`Analysis::save`](crate::io::schema::Versioned::save); the report and the terminal summary read this type:
//! - `schema` ([`Analysis::SCHEMA`]), `model` ([`ModelInfo`]), `options` ([`AnalyzeOptions`]), `seconds`;
//! - `provenance` ([`crate::provenance::Provenance`]): {model_sha256 of the model file, options
//!   (the [`AnalyzeOptions`] again)}; `run` and `report` use it to tell whose analysis it is;
//! - `accuracy`: the model's teacher-forced accuracy on the analysis question set;
//! - `positions` ([`positions::Positions`]): `ablations[]` {hook, position, token, fail_rate,
//!   digit_fail[answer token]}, `useful[]` positions, `equals_position`, `first_useful`,
//!   `digits[]` {digit, predicted_at, computed_at[], one_before, constant};
//! - `nodes[]` ([`nodes::NodeAblation`]): {name "P13L0H1" | "P13L0M", node {pos, layer, head|null},
//!   fail_rate, digit_fail[], impact["A3"], useful};
//! - `attention[]` ([`attention::NodeAttention`]) per useful head node: {name, node, top[{position,
//!   token, weight}], summary "D2 and D'2", column, column_weight};
//! - `staircases[]` ([`attention::Staircase`]) per head: {layer, head, query_positions[],
//!   source_tokens[], `weights[query][source]`, top_column[], offset[], typical_offset,
//!   descending_steps, is_staircase};
//! - `tags[]` ([`subtasks::NodeTags`]) per useful head node: {name, node, impact[answer index],
//!   tests[{subtask "MC_2", task {kind, col, op}, informative, match_rate}], tags["MC_2"]};
//! - `pca[]` ([`subtasks::NodePca`]): {name, op (mixed models: "add" | "sub", else null),
//!   explained[], separation[{subtask, classes, points, between_share, adjusted_share,
//!   centroid_accuracy, majority_share}] ([`pca::Separation`], best above chance first)};
//! - `algorithm[]` ([`algorithm::DigitAlgorithm`]): {digit, column, position, parts[{node,
//!   subtasks[], column}], combined_by, lookahead_depth, text};
//! - `symbolic[]` ([`symbolic::FormulaCheck`]): {name "exact" | "lookahead2" | "derived" | "fitted",
//!   description, per_class[{class, questions, model_accuracy, agreement, model_wrong,
//!   wrong_reproduced, model_beats_formula}], mean_agreement, examples[{class, question, truth,
//!   model, formula}]};
//! - `ceiling` ([`symbolic::Ceiling`] or null): {siblings, per_class[{class, questions, ceiling,
//!   model_wrong, wrong_usual}]}: how far any formula over the sub-task values can agree with
//!   the model, from its answers to questions with the same column values;
//! - `dynamics` ([`dynamics::Dynamics`] or null): {threshold, total_steps, digits[{digit, step,
//!   need_steps[base, carry, cascade]}], spread_steps, distinct_steps, separated,
//!   carry_lags_base};
//! - `findings` ([`Findings`]): the headline facts the summary states;
//! - `insertion` ([`insertion::Insertion`] or null): for a model trained from an inserted one,
//!   {from, every, source_note, heads[{head, layer, index, drift, fail_by_op[[op, rate]],
//!   roles_by_op[[op, kinds]], source_roles, verdict}]};
//! - `stages[]` ([`stages::StageTime`]): {stage, seconds} per stage, in the order run;
//! - `failure_families[]` ([`crate::eval::failure_families::FailureFamilies`]), one per
//!   operation: {families[{name, description, rule, op, count, share_of_failures, precision,
//!   precision_questions, classes, examples, digits}], failures, uncovered, uncovered_kinds}, of
//!   the model's wrong answers on [`FAMILY_QUESTIONS`] questions drawn like the ablation set
//!   (half uniform, half per class, so rare cascades fail often enough to group); measured here
//!   rather than copied from eval.json, so an analysis is whole without an evaluation;
//! - `logit_attribution[]` ([`logit_attribution::DigitAttribution`]) per answer token: {digit,
//!   position, components[[name, mean DLA]], centred_logit, max_residual} over the ablation set;
//! - `circuit` ([`paths::Circuit`] or null when `options.circuit_questions` is 0): path patching
//!   between the useful nodes, each operand column corrupted in turn, on
//!   `options.circuit_questions` questions drawn like the ablation set (or all of
//!   `options.circuit_class`, when given): {options, questions,
//!   candidates, checks[{corruption, tested, agreement}], digits[{digit, position, nodes[],
//!   edges[{name, edge, corruption, receiver_share, effect, eap_drop}]}], note}.
//!
//! `failure_families`, `logit_attribution`, `circuit`, `algorithm[].fails_when`,
//! `algorithm[].via`, `algorithm[].circuit_columns` and the options `circuit_questions`,
//! `circuit_edges` and `eap_steps` were added within schema version 1: they are new keys that
//! default to empty (an absent circuit option reads as "no circuit stage"), so an older
//! analysis.json still loads (and reports without them), and no existing field changed its
//! meaning.

pub mod algorithm;
pub mod attention;
pub mod dynamics;
pub mod insertion;
pub mod intervene;
pub mod logit_attribution;
pub mod naming;
pub mod nodes;
pub mod paths;
pub mod pca;
pub mod positions;
pub mod stages;
pub mod subtasks;
pub mod summary;
pub mod symbolic;

use crate::eval::predict::{teacher_forced, teacher_forced_transformer, Predictions};
use crate::limits::OptionError;
use crate::progress::{Stop, Stopped};
use crate::task::{random_questions, stratified_set, Class, Op, Question};
use crate::task_model::TaskModel;
use crate::train::log::TrainingLog;
use naming::{answer_names, Node};
use serde::{Deserialize, Serialize};
use subtasks::{Kind, SubTask, KINDS};
pub use summary::summary;

/// Settings of a run of every analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalyzeOptions {
    /// Questions in the ablation set (half uniform, half spread over complexity classes).
    pub questions: usize,
    /// Seed of every question set.
    pub seed: u64,
    /// Failure rate that makes a position or node useful, and a digit impacted.
    pub threshold: f64,
    /// Question pairs per candidate sub-task in intervention tagging.
    pub pairs: usize,
    /// Match rate that tags a node with a sub-task.
    pub min_match: f64,
    /// Questions for attention averages and PCA.
    pub sample: usize,
    /// Questions per complexity class for the symbolic check.
    pub per_class: usize,
    /// Questions with the same column values asked per symbolic-check question, to measure how
    /// far any sub-task formula can agree with the model (0 skips it).
    #[serde(default = "default_siblings")]
    pub siblings: usize,
    /// Loss threshold for the training-dynamics phase changes.
    pub loss_threshold: f64,
    /// Forward-pass batch size.
    pub batch: usize,
    /// Questions on which each operand column is corrupted to path-patch the edges between the
    /// useful nodes (the circuit stage); 0 skips the stage (and is what an analysis.json of an
    /// older arithlens, which had no such stage, reads as).
    #[serde(default)]
    pub circuit_questions: usize,
    /// Edges path-patched per corrupted column: those edge attribution patching ranks highest;
    /// 0 path-patches every candidate edge.
    #[serde(default)]
    pub circuit_edges: usize,
    /// Gradient points of edge attribution patching (1: plain EAP; more: integrated gradients).
    #[serde(default = "default_eap_steps")]
    pub eap_steps: usize,
    /// A complexity class ("S3", "M2", "N1") every circuit question is drawn from, instead of the
    /// ablation set's mix: a path that acts on a rare class (a deep carry cascade) is a small
    /// average over a mixed sample, under the significance bar, and plain on its own class.
    /// Absent (the default) from analysis.json when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_class: Option<String>,
}

impl AnalyzeOptions {
    /// Checks the options a user sets (`arithlens analyze --questions/--pairs`): an analysis over
    /// too few questions or pairs would measure nothing, so it is refused with the fix.
    pub fn validate(&self) -> Result<(), OptionError> {
        let refuse = |flag, value, problem| Err(OptionError { flag, value, problem });
        if self.questions < MIN_QUESTIONS {
            let default = Self::default().questions;
            return refuse(
                "--questions",
                self.questions,
                format!("is too few: failure rates of positions and nodes need at least {MIN_QUESTIONS} questions (default {default})"),
            );
        }
        if self.questions > crate::limits::MAX_ANALYZE_QUESTIONS {
            return refuse(
                "--questions",
                self.questions,
                format!(
                    "is too many: at most {} (every node is ablated at every position on each question; the default is {})",
                    crate::limits::MAX_ANALYZE_QUESTIONS,
                    Self::default().questions
                ),
            );
        }
        for (flag, v) in [("--pairs", self.pairs), ("--siblings", self.siblings)] {
            if v > crate::limits::MAX_ANALYZE_PAIRS {
                return refuse(
                    flag,
                    v,
                    format!("is too many: at most {} (each is a forward pass per node)", crate::limits::MAX_ANALYZE_PAIRS),
                );
            }
        }
        if self.pairs == 0 {
            return refuse("--pairs", 0, format!("would tag no node with a sub-task: use at least 1 (default {})", Self::default().pairs));
        }
        self.validate_circuit()
    }

    /// Checks the circuit stage's options (`--circuit-questions`, `--eap-steps`).
    /// The circuit class (`--circuit-class`) as a class `model` has questions of: `None` when
    /// unset; else what is wrong with the name and which classes the model has.
    pub fn circuit_class_for(&self, model: &TaskModel) -> Result<Option<Class>, String> {
        let Some(name) = &self.circuit_class else { return Ok(None) };
        let classes: Vec<Class> = model.ops.iter().flat_map(|&op| crate::task::classes_for(op, model.n_digits)).collect();
        let listed = classes.iter().map(Class::to_string).collect::<Vec<_>>().join(", ");
        let class = Class::parse(name).map_err(|e| format!("{e}; this model's classes are {listed}"))?;
        match classes.contains(&class) {
            true => Ok(Some(class)),
            false => Err(format!("is not a class of this {}-digit model: its classes are {listed}", model.n_digits)),
        }
    }

    fn validate_circuit(&self) -> Result<(), OptionError> {
        if self.circuit_questions > crate::limits::MAX_ANALYZE_PAIRS {
            return Err(OptionError {
                flag: "--circuit-questions",
                value: self.circuit_questions,
                problem: format!(
                    "is too many: at most {} (each is a forward pass per edge and column; the default is {})",
                    crate::limits::MAX_ANALYZE_PAIRS,
                    Self::default().circuit_questions
                ),
            });
        }
        if !(1..=MAX_EAP_STEPS).contains(&self.eap_steps) {
            return Err(OptionError {
                flag: "--eap-steps",
                value: self.eap_steps,
                problem: format!(
                    "is out of range: 1 (plain edge attribution patching) to {MAX_EAP_STEPS} (default {})",
                    Self::default().eap_steps
                ),
            });
        }
        Ok(())
    }
}

/// Most gradient points of edge attribution patching: each is a forward and a backward per answer
/// digit and column, and past a few the ranking no longer changes.
pub const MAX_EAP_STEPS: usize = 32;

/// Fewest questions in the ablation set: below this a single failure is over the usefulness
/// threshold's scale and the per-class halves are nearly empty.
pub const MIN_QUESTIONS: usize = 20;

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            questions: 1000,
            seed: 673023,
            threshold: 0.01,
            pairs: 100,
            min_match: 0.8,
            sample: 500,
            per_class: 200,
            siblings: default_siblings(),
            loss_threshold: 0.1,
            batch: 500,
            circuit_questions: 100,
            circuit_edges: 24,
            eap_steps: default_eap_steps(),
            circuit_class: None,
        }
    }
}

fn default_siblings() -> usize {
    16
}

fn default_eap_steps() -> usize {
    2
}

/// What model was analysed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Run or model name.
    pub name: String,
    /// Operand width.
    pub n_digits: usize,
    /// Token format name.
    pub format: String,
    /// Operations.
    pub ops: Vec<Op>,
    /// Layers.
    pub n_layers: usize,
    /// Heads per layer.
    pub n_heads: usize,
    /// Residual width.
    pub d_model: usize,
}

impl ModelInfo {
    /// The description of `model`.
    pub fn of(model: &TaskModel) -> ModelInfo {
        let c = &model.params.config;
        ModelInfo {
            name: model.name.clone(),
            n_digits: model.n_digits,
            format: model.format.name().into(),
            ops: model.ops.clone(),
            n_layers: c.n_layers,
            n_heads: c.n_heads,
            d_model: c.d_model,
        }
    }
}

/// The headline findings, as data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// First useful position and its token.
    pub computation_starts_at: Option<usize>,
    /// Token at that position.
    pub starts_at_token: Option<String>,
    /// Whether nothing before the `=` position is useful.
    pub starts_at_equals: bool,
    /// Answer tokens that vary over the questions and are computed only one position before
    /// they are emitted.
    pub one_before: Vec<String>,
    /// Heads (`L0H1`) whose attention walks down the digit pairs.
    pub staircase_heads: Vec<String>,
    /// Per head, its typical look-back (answer column minus attended column).
    pub head_offsets: Vec<(String, Option<i64>)>,
    /// Per head (`L0H1`) with a tag, and every last-layer head, the sub-task kinds its nodes
    /// were tagged with (`BA`, `MC`, ...).
    pub head_roles: Vec<(String, Vec<String>)>,
    /// Mean per-class agreement of the lookahead formula with the model.
    pub lookahead_agreement: Option<f64>,
    /// Mean per-class agreement of the derived formula with the model.
    pub derived_agreement: Option<f64>,
    /// Mixed models: nodes whose patching switches the operation (`OP` tag).
    #[serde(default)]
    pub operator_nodes: Vec<String>,
    /// Nodes whose patching flips the answer's sign (`SIGN` tag).
    #[serde(default)]
    pub sign_nodes: Vec<String>,
}

/// analysis.json: everything [`analyze`] found. See the module doc for the schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Schema version ([`Analysis::SCHEMA`]).
    pub schema: u32,
    /// The model.
    pub model: ModelInfo,
    /// Settings used.
    pub options: AnalyzeOptions,
    /// Teacher-forced accuracy on the analysis set.
    pub accuracy: f64,
    /// Useful positions.
    pub positions: positions::Positions,
    /// Node ablations.
    pub nodes: Vec<nodes::NodeAblation>,
    /// Attention of useful head nodes.
    pub attention: Vec<attention::NodeAttention>,
    /// Staircase map per head.
    pub staircases: Vec<attention::Staircase>,
    /// Intervention tags of useful head nodes.
    pub tags: Vec<subtasks::NodeTags>,
    /// PCA of useful head nodes.
    pub pca: Vec<subtasks::NodePca>,
    /// The algorithm per answer digit.
    pub algorithm: Vec<algorithm::DigitAlgorithm>,
    /// Symbolic formulas checked per class.
    pub symbolic: Vec<symbolic::FormulaCheck>,
    /// How far any formula over the sub-task values can agree with the model.
    #[serde(default)]
    pub ceiling: Option<symbolic::Ceiling>,
    /// Training dynamics, if a training log was given.
    pub dynamics: Option<dynamics::Dynamics>,
    /// Headline findings.
    pub findings: Findings,
    /// For a model started from another by insertion: what became of the inserted heads.
    #[serde(default)]
    pub insertion: Option<insertion::Insertion>,
    /// Seconds each stage took, in the order run.
    #[serde(default)]
    pub stages: Vec<stages::StageTime>,
    /// Seconds taken.
    pub seconds: f64,
    /// The model file's hash and the options; `None` for a model built in memory or an
    /// analysis.json of an older arithlens.
    #[serde(default)]
    pub provenance: Option<crate::provenance::Provenance>,
    /// Per operation, the families of the model's wrong answers on the family set (empty in an
    /// analysis.json of an older arithlens).
    #[serde(default)]
    pub failure_families: Vec<crate::eval::failure_families::FailureFamilies>,
    /// Direct logit attribution per answer token over the ablation set (empty in an
    /// analysis.json of an older arithlens).
    #[serde(default)]
    pub logit_attribution: Vec<logit_attribution::DigitAttribution>,
    /// The circuit between the useful nodes per answer digit (`None` when the stage was
    /// skipped, or in an analysis.json of an older arithlens).
    #[serde(default)]
    pub circuit: Option<paths::Circuit>,
}

impl Analysis {
    /// The schema version of analysis.json this arithlens writes and reads.
    pub const SCHEMA: u32 = 1;
}

impl crate::io::schema::Versioned for Analysis {
    const FILE: &'static str = crate::run_folder::files::ANALYSIS;
    const SCHEMA: u32 = Analysis::SCHEMA;
}

impl crate::provenance::Derived for Analysis {
    fn provenance(&self) -> Option<&crate::provenance::Provenance> {
        self.provenance.as_ref()
    }
}

/// The ablation question set: per operation, half uniform questions and half spread evenly over
/// the complexity classes (so rare cascades are present).
pub fn analysis_questions(model: &TaskModel, count: usize, seed: u64) -> Vec<Question> {
    let mut out = Vec::new();
    let per_op = count / model.ops.len().max(1);
    for (i, &op) in model.ops.iter().enumerate() {
        let s = seed.wrapping_add(i as u64 * 1000);
        out.extend(random_questions(model.n_digits, op, per_op - per_op / 2, s).expect("valid width"));
        let classes = crate::task::classes_for(op, model.n_digits).len().max(1);
        let per_class = (per_op / 2).div_ceil(classes);
        let strat = stratified_set(model.n_digits, op, per_class, s + 1).expect("valid width");
        out.extend(strat.into_iter().flat_map(|(_, v)| v).take(per_op / 2));
    }
    out
}

/// `count` questions of complexity class `class`, drawn uniformly within it.
fn class_questions(model: &TaskModel, class: Class, count: usize, seed: u64) -> Vec<Question> {
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..count).map_while(|_| crate::task::sample_class(&mut rng, model.n_digits, class).ok()).collect()
}

/// Questions per operation whose wrong answers the analysis groups into failure families (drawn
/// like the ablation set: half uniform, half spread over the complexity classes).
pub const FAMILY_QUESTIONS: usize = 20_000;

/// Per operation, the families of `model`'s wrong answers on [`FAMILY_QUESTIONS`] questions.
fn failure_families(model: &TaskModel, opts: &AnalyzeOptions) -> Vec<crate::eval::failure_families::FailureFamilies> {
    use crate::eval::failure_families::{model_families, FamilyOptions};
    let qs = analysis_questions(model, FAMILY_QUESTIONS * model.ops.len(), opts.seed.wrapping_add(29));
    let family_opts = FamilyOptions { seed: opts.seed, ..FamilyOptions::default() };
    model
        .ops
        .iter()
        .map(|&op| model_families(model, &qs.iter().copied().filter(|q| q.op == op).collect::<Vec<_>>(), &family_opts))
        .collect()
}

/// The whole-question sub-tasks worth testing on every useful head: the operator in a mixed
/// model (clean addition, source subtraction) and the answer's sign when subtraction can be negative.
fn whole_question_candidates(model: &TaskModel) -> Vec<SubTask> {
    let mut v = Vec::new();
    if model.ops.len() > 1 {
        v.push(SubTask::new(Kind::Operator, 0, model.ops[0]));
    }
    if model.ops.contains(&Op::Sub) && model.format.minus_token().is_some() {
        v.push(SubTask::new(Kind::Sign, 0, Op::Sub));
    }
    v
}

/// Columns below each answer digit whose states key the fitted carry table (4^3 x 2 patterns
/// per digit: few enough for a stratified set to cover the cascades).
const CARRY_TABLE_DEPTH: usize = 3;

/// Runs every analysis on `model` (and its training log, if any).
pub fn analyze(model: &TaskModel, log: Option<&TrainingLog>, opts: &AnalyzeOptions) -> Analysis {
    match analyze_with_progress(model, log, opts, &Stop::new(), &mut crate::progress::ignore) {
        Ok(a) => a,
        Err(_) => unreachable!("nothing sets a fresh stop handle"),
    }
}

/// [`analyze`], reporting each of [`stages::Stage::ALL`] as it begins and its passes as they
/// finish ([`crate::progress::Event::Analysis`]), and stopping before the next stage once `stop`
/// is set.
pub fn analyze_with_progress(
    model: &TaskModel,
    log: Option<&TrainingLog>,
    opts: &AnalyzeOptions,
    stop: &Stop,
    report: &mut dyn FnMut(crate::progress::Event),
) -> Result<Analysis, Stopped> {
    let t0 = std::time::Instant::now();
    let mut watch = stages::Stopwatch::new(report, stop);
    let b = opts.batch.max(1);
    watch.begin(stages::Stage::Accuracy)?;
    let qs = analysis_questions(model, opts.questions, opts.seed);
    // The baseline of hooked passes, which take the transformer pass: the same pass, the same
    // floats.
    let clean = teacher_forced_transformer(model, &qs, b);
    let correct = qs.iter().enumerate().filter(|(i, q)| clean.correct(*i, &q.answer_tokens(model.format))).count();
    let accuracy = correct as f64 / qs.len().max(1) as f64;
    let families = failure_families(model, opts);

    watch.begin(stages::Stage::Positions)?;
    let positions = positions::useful_positions(model, &qs, &clean, opts.threshold, b, &mut watch.tick());
    watch.begin(stages::Stage::Nodes)?;
    let cands = nodes::candidate_nodes(model, &positions.useful);
    let node_abl = nodes::ablate_nodes(model, &qs, &clean, &cands, opts.threshold, b, &mut watch.tick());
    let useful_heads: Vec<Node> = node_abl.iter().filter(|a| a.useful && a.node.head.is_some()).map(|a| a.node).collect();
    let dla = logit_attribution::direct_logit_attribution(model, &qs);
    watch.begin(stages::Stage::Circuit)?;
    let circuit = circuit_stage(model, opts, &node_abl, &mut watch.tick());

    watch.begin(stages::Stage::Attention)?;
    let sample = analysis_questions(model, opts.sample, opts.seed.wrapping_add(17));
    let patterns = attention::mean_patterns(model, &sample, 100);
    let attn = attention::node_attention(model, &patterns, &useful_heads);
    let stairs = attention::staircases(model, &patterns);

    let candidates = head_candidates(model, &patterns, &useful_heads);
    let impact = head_impacts(model, &node_abl, &useful_heads);
    watch.begin(stages::Stage::Tags)?;
    let singles: Vec<subtasks::PatchGroup> = (useful_heads.iter().zip(&impact).zip(&candidates))
        .map(|((&n, imp), cands)| subtasks::PatchGroup { nodes: vec![n], impact: imp.clone(), candidates: cands.clone() })
        .collect();
    let settings = subtasks::PatchSettings { pairs: opts.pairs, min_match: opts.min_match, seed: opts.seed, batch: b };
    let mut tags = subtasks::tag_by_patching(model, &singles, &settings, &mut watch.tick());
    let shared = shared_value_groups(&tags, &singles, &attn);
    if !shared.is_empty() {
        tags.extend(subtasks::tag_by_patching(model, &shared, &settings, &mut |_, _| {}));
    }
    watch.begin(stages::Stage::Pca)?;
    let pca = subtasks::pca_nodes(model, &sample, &useful_heads, &candidates, 3, b);

    let columns: Vec<(Node, Option<usize>)> = attn.iter().map(|a| (a.node, a.column)).collect();
    let mut algo = algorithm::assemble(model, &node_abl, &tags, &columns);
    algorithm::attach_failures(&mut algo, &families, model.n_digits);
    if let Some(c) = &circuit {
        algorithm::attach_circuit(&mut algo, c);
    }

    watch.begin(stages::Stage::Symbolic)?;
    let (symbolic, ceiling) = check_formulas(model, opts, &algo, &mut watch)?;
    let dynamics = log.map(|l| dynamics::phases(l, opts.loss_threshold));

    let findings = findings(model, &positions, &stairs, &tags, &symbolic);
    watch.begin(stages::Stage::Insertion)?;
    let insertion = log.and_then(|l| l.config.insert.as_ref()).map(|ins| inserted_heads(model, ins, &tags, &positions.useful, opts));
    Ok(Analysis {
        schema: Analysis::SCHEMA,
        model: ModelInfo::of(model),
        options: opts.clone(),
        accuracy,
        positions,
        nodes: node_abl,
        attention: attn,
        staircases: stairs,
        tags,
        pca,
        algorithm: algo,
        symbolic,
        ceiling,
        dynamics,
        findings,
        insertion,
        stages: watch.finish(),
        seconds: t0.elapsed().as_secs_f64(),
        provenance: model.provenance(opts),
        failure_families: families,
        logit_attribution: dla,
        circuit,
    })
}

/// The circuit stage: path patching between the useful nodes of `node_abl` on
/// `opts.circuit_questions` questions drawn like the ablation set (seed offset 41), or all of
/// `opts.circuit_class` when set; `None` when the count is 0.
fn circuit_stage(
    model: &TaskModel,
    opts: &AnalyzeOptions,
    node_abl: &[nodes::NodeAblation],
    tick: &mut dyn FnMut(usize, usize),
) -> Option<paths::Circuit> {
    if opts.circuit_questions == 0 {
        return None;
    }
    let seed = opts.seed.wrapping_add(41);
    // `arithlens analyze` and Python refuse a foreign class before any work; a library caller
    // that passes one gets the usual mix, and the circuit's note says so.
    let (qs, refused) = match opts.circuit_class_for(model) {
        Ok(Some(class)) => (class_questions(model, class, opts.circuit_questions, seed), None),
        Ok(None) => (analysis_questions(model, opts.circuit_questions, seed), None),
        Err(problem) => (analysis_questions(model, opts.circuit_questions, seed), Some(problem)),
    };
    let useful: Vec<Node> = node_abl.iter().filter(|a| a.useful).map(|a| a.node).collect();
    let copts = paths::CircuitOptions {
        max_edges: (opts.circuit_edges > 0).then_some(opts.circuit_edges),
        eap_steps: opts.eap_steps,
        seed: opts.seed,
        ..Default::default()
    };
    let mut circuit = paths::circuit_among(model, &qs, &useful, &copts, tick);
    if let Some(problem) = refused {
        let class = opts.circuit_class.as_deref().unwrap_or_default();
        let why = format!("circuit class {class} {problem}: the ablation set's mix was used");
        circuit.note = Some(circuit.note.map_or(why.clone(), |n| format!("{n}; {why}")));
    }
    Some(circuit)
}

/// Candidate sub-tasks per useful head: for each operand column it attends to with weight at
/// least 0.15, every sub-task of that column (and the use-pass of the column above), for each
/// operation and answer sign, plus the whole-question ones.
fn head_candidates(model: &TaskModel, patterns: &[Vec<Vec<Vec<f64>>>], useful_heads: &[Node]) -> Vec<Vec<SubTask>> {
    useful_heads
        .iter()
        .map(|n| {
            let h = n.head.expect("head");
            let w = attention::column_weights(model, &patterns[n.layer][h][n.pos]);
            let mut v = Vec::new();
            for &op in &model.ops {
                // Subtraction with a sign token also has negative answers, with their own sub-tasks.
                let negatives = op == Op::Sub && model.format.minus_token().is_some();
                for (col, _) in w.iter().enumerate().filter(|(_, &wt)| wt >= 0.15) {
                    for negative in [false, true].into_iter().filter(|&n| !n || negatives) {
                        let t = |kind, col| SubTask { kind, col, op, negative };
                        v.extend(KINDS.iter().filter(|&&k| k != Kind::UsePass).map(|&kind| t(kind, col)));
                        v.push(t(Kind::UsePass, col + 1));
                    }
                }
            }
            v.extend(whole_question_candidates(model));
            v
        })
        .collect()
}

/// The answer indices each useful head's ablation breaks.
fn head_impacts(model: &TaskModel, node_abl: &[nodes::NodeAblation], useful_heads: &[Node]) -> Vec<Vec<usize>> {
    let names = answer_names(model);
    useful_heads
        .iter()
        .map(|n| {
            let a = node_abl.iter().find(|a| a.node == *n).expect("ablated");
            names.iter().enumerate().filter(|(_, nm)| a.impact.contains(nm)).map(|(i, _)| i).collect()
        })
        .collect()
}

/// Groups of two or more untagged heads that share a position, layer, impact and attended
/// column, with their impact and common candidates: they may split one value between them, so
/// they are patched together.
fn shared_value_groups(
    tags: &[subtasks::NodeTags],
    singles: &[subtasks::PatchGroup],
    attn: &[attention::NodeAttention],
) -> Vec<subtasks::PatchGroup> {
    let column = |n: Node| attn.iter().find(|a| a.node == n).and_then(|a| a.column);
    let mut groups: Vec<subtasks::PatchGroup> = Vec::new();
    for (t, single) in tags.iter().zip(singles).filter(|(t, g)| t.tags.is_empty() && !g.impact.is_empty()) {
        let same = |g: &&mut subtasks::PatchGroup| {
            let n = g.nodes[0];
            n.pos == t.node.pos && n.layer == t.node.layer && g.impact == single.impact && column(n) == column(t.node)
        };
        match groups.iter_mut().find(same) {
            Some(g) => {
                g.nodes.push(t.node);
                g.candidates.retain(|c| single.candidates.contains(c));
            }
            None => groups.push(single.clone()),
        }
    }
    groups.retain(|g| g.nodes.len() > 1);
    groups
}

/// The symbolic stage: each candidate formula (exact arithmetic, the one-layer lookahead, the
/// formula derived from `algo`, the carry table fitted to the model's own answers) checked
/// against the model per class on stratified questions of every operation, then (stage
/// "ceiling", unless `opts.siblings` is 0) how far any formula over the sub-tasks could go.
fn check_formulas(
    model: &TaskModel,
    opts: &AnalyzeOptions,
    algo: &[algorithm::DigitAlgorithm],
    watch: &mut stages::Stopwatch,
) -> Result<(Vec<symbolic::FormulaCheck>, Option<symbolic::Ceiling>), Stopped> {
    let b = opts.batch.max(1);
    let sets: Vec<(Class, Vec<Question>)> = model
        .ops
        .iter()
        .flat_map(|&op| stratified_set(model.n_digits, op, opts.per_class, opts.seed.wrapping_add(99)).expect("valid width"))
        .collect();
    let preds: Vec<_> = sets.iter().map(|(_, qs)| teacher_forced_transformer(model, qs, b)).collect();
    // (Unhooked passes: the one-layer table path gives the same answers, faster.)
    let answers = |qs: &[Question]| teacher_forced(model, qs, b);
    let format = model.format;
    let formulas =
        [symbolic::exact(format), symbolic::lookahead(format, 2), derived_formula(model, algo), fitted_formula(model, opts, answers)];
    let checks = formulas.iter().map(|f| symbolic::check(f, format, &sets, &preds)).collect();
    watch.begin(stages::Stage::Ceiling)?;
    let ceiling = (opts.siblings > 0).then(|| symbolic::ceiling(format, &sets, &preds, opts.siblings, opts.seed.wrapping_add(7), answers));
    Ok((checks, ceiling))
}

/// The formula derived from the nodes: each digit's carry looks as many columns down as its
/// nodes read, or as the circuit's edges into it reach if further
/// ([`algorithm::DigitAlgorithm::reach`]; all of them where neither found a depth).
fn derived_formula(model: &TaskModel, algo: &[algorithm::DigitAlgorithm]) -> symbolic::Formula<'static> {
    let n = model.n_digits;
    let depths: Vec<usize> = (0..=n).map(|k| algo.iter().find(|a| a.column == Some(k)).and_then(|a| a.reach()).unwrap_or(n)).collect();
    let format = model.format;
    symbolic::Formula {
        name: "derived".into(),
        description: format!("A_k = (BA_k + carry from the columns its nodes read: depths by column {}) mod 10", summary::list(&depths)),
        answer: Box::new(move |q| symbolic::lookahead_tokens(q, format, &depths)),
    }
}

/// The carry table fitted to the model's own answers on a stratified set apart from the checked one.
fn fitted_formula(model: &TaskModel, opts: &AnalyzeOptions, answers: impl Fn(&[Question]) -> Predictions) -> symbolic::Formula<'static> {
    let fit_set: Vec<Question> = model
        .ops
        .iter()
        .flat_map(|&op| stratified_set(model.n_digits, op, 2 * opts.per_class, opts.seed.wrapping_add(123)).expect("valid width"))
        .flat_map(|(_, qs)| qs)
        .collect();
    let table = symbolic::CarryTable::fit(&fit_set, &answers(&fit_set), CARRY_TABLE_DEPTH);
    symbolic::fitted(model.format, table)
}

/// The insertion section for a model trained from `ins`; a source that cannot be loaded leaves
/// the heads unexamined and says why.
fn inserted_heads(
    model: &TaskModel,
    ins: &crate::train::insert::InsertConfig,
    tags: &[subtasks::NodeTags],
    useful: &[usize],
    opts: &AnalyzeOptions,
) -> insertion::Insertion {
    let mut out = insertion::Insertion { from: ins.from.display().to_string(), every: ins.every, source_note: None, heads: Vec::new() };
    match insertion::load_source(&ins.from) {
        Ok((source, source_analysis)) => {
            if source_analysis.is_none() {
                out.source_note = Some(format!(
                    "{} has no analysis.json: run `arithlens analyze` on it to compare the heads' roles with their source",
                    ins.from.display()
                ));
            }
            out.heads = insertion::examine(model, &source, source_analysis.as_ref(), tags, useful, opts);
        }
        Err(e) => out.source_note = Some(format!("the inserted model could not be loaded ({e}), so its heads were not examined")),
    }
    out
}

fn findings(
    model: &TaskModel,
    positions: &positions::Positions,
    stairs: &[attention::Staircase],
    tags: &[subtasks::NodeTags],
    symbolic: &[symbolic::FormulaCheck],
) -> Findings {
    let nl = model.params.config.n_layers;
    let mut head_roles: Vec<(String, Vec<String>)> = Vec::new();
    for s in stairs {
        let kinds = subtasks::head_roles(tags, s.layer, s.head, None);
        // Every head with a role; untagged heads only from the last layer (as "-").
        if !kinds.is_empty() || s.layer + 1 == nl {
            head_roles.push((naming::head_name(s.layer, s.head), kinds));
        }
    }
    let agreement = |name: &str| symbolic.iter().find(|f| f.name == name).map(|f| f.mean_agreement);
    Findings {
        computation_starts_at: positions.first_useful,
        starts_at_token: positions.first_useful.map(|p| naming::position_name(model, p)),
        starts_at_equals: positions.first_useful.is_some_and(|p| p >= positions.equals_position),
        one_before: positions.digits.iter().filter(|d| d.one_before && !d.constant).map(|d| d.digit.clone()).collect(),
        staircase_heads: stairs.iter().filter(|s| s.is_staircase).map(|s| naming::head_name(s.layer, s.head)).collect(),
        head_offsets: stairs.iter().map(|s| (naming::head_name(s.layer, s.head), s.typical_offset)).collect(),
        head_roles,
        operator_nodes: tags.iter().filter(|t| t.tags.iter().any(|x| x == "OP")).map(|t| t.name.clone()).collect(),
        sign_nodes: tags.iter().filter(|t| t.tags.iter().any(|x| x == "SIGN")).map(|t| t.name.clone()).collect(),
        lookahead_agreement: agreement("lookahead2"),
        derived_agreement: agreement("derived"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_that_would_measure_nothing_are_refused_with_the_fix() {
        assert!(AnalyzeOptions::default().validate().is_ok());
        let err = AnalyzeOptions { questions: 0, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(err.contains("--questions 0") && err.contains(&format!("at least {MIN_QUESTIONS}")), "{err}");
        assert!(AnalyzeOptions { questions: MIN_QUESTIONS, ..Default::default() }.validate().is_ok());
        let err = AnalyzeOptions { pairs: 0, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(err.contains("--pairs 0"), "{err}");
    }
}
