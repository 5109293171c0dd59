//! `arithlens._native.NativeModel`: a loaded [`TaskModel`] and the calls the Python `Model`
//! makes on it (questions, tokens, `run_with_cache`, interventions, evaluation, analysis).

use crate::errors::{Failure, Kind, Result};
use crate::progress::{self, Progress};
use arithlens::analysis::intervene::{self, Intervention, Interventions, Units};
use arithlens::model::file::LoadOptions;
use arithlens::model::HookPoint;
use arithlens::task::Question;
use arithlens::task_model::TaskModel;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// A model and the task it answers (operand width, token format, operations).
#[pyclass(frozen, module = "arithlens._native")]
pub struct NativeModel {
    pub(crate) model: TaskModel,
    /// The file or run folder it was loaded from.
    path: Option<PathBuf>,
}

/// One intervention as Python describes it: (kind, hook, positions, heads, neurons, factor,
/// source questions) with kind one of zero, mean, patch, scale.
type Spec = (String, String, Option<Vec<usize>>, Option<Vec<usize>>, Option<Vec<usize>>, f32, Option<Vec<String>>);

/// A row-major buffer as a numpy array of `shape`, without a copy.
fn array<'py, T: numpy::Element>(py: Python<'py>, data: Vec<T>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, data).reshape(shape.to_vec())?.into_any())
}

impl NativeModel {
    fn questions(&self, texts: &[String]) -> Result<Vec<Question>> {
        texts.iter().map(|t| self.model.parse_question(t).map_err(|e| Failure::value(format!("'{t}': {e}")))).collect()
    }

    fn run_folder(&self) -> Option<&PathBuf> {
        self.path.as_ref().filter(|p| p.is_dir())
    }

    /// The shape a hook's activation has for one question.
    fn hook_shape(&self, point: HookPoint) -> Result<Vec<usize>> {
        let t = self.model.n_ctx();
        let (_, cache) = intervene::cache_tokens(&self.model, &vec![0; t], t, Some(&[&point.name()]), 1)?;
        Ok(cache.get(&point.name()).map(|x| x.shape.clone()).unwrap_or_default())
    }

    /// The library intervention a Python spec describes, checked against the model.
    fn intervention(&self, spec: &Spec, reference: &[Question], n: usize, batch: usize) -> Result<Intervention> {
        let (kind, hook, positions, heads, neurons, factor, source) = spec;
        let point = HookPoint::parse(hook, self.model.params.config.n_layers).map_err(Failure::value)?;
        if point.pos_axis() != 1 {
            return Err(Failure::value(format!("{hook}: interventions take a hook with positions on axis 1 (not hook_attn_scores or hook_pattern); ablate hook_z or hook_v heads instead")));
        }
        let shape = self.hook_shape(point)?;
        let n_ctx = self.model.n_ctx();
        if let Some(p) = positions.as_ref().and_then(|ps| ps.iter().find(|&&p| p >= n_ctx)) {
            return Err(Failure::value(format!("{hook}: position {p} is outside the sequence (0 to {})", n_ctx - 1)));
        }
        let units = match (heads, neurons) {
            (Some(_), Some(_)) => return Err(Failure::value(format!("{hook}: give heads or neurons, not both"))),
            (Some(hs), None) => {
                if shape.len() != 4 {
                    return Err(Failure::value(format!("{hook} has no head axis: heads apply to hook_q, hook_k, hook_v and hook_z")));
                }
                if let Some(h) = hs.iter().find(|&&h| h >= shape[2]) {
                    return Err(Failure::value(format!("{hook}: head {h} does not exist (the model has {})", shape[2])));
                }
                Units::Heads(hs.clone())
            }
            (None, Some(ns)) => {
                let feat: usize = shape[2..].iter().product();
                if let Some(u) = ns.iter().find(|&&u| u >= feat) {
                    return Err(Failure::value(format!("{hook}: neuron {u} does not exist (0 to {})", feat - 1)));
                }
                Units::Neurons(ns.clone())
            }
            (None, None) => Units::All,
        };
        let positions = positions.clone();
        Ok(match kind.as_str() {
            "zero" => Intervention::zero(point, positions, units),
            "scale" => Intervention::scale(point, positions, units, *factor),
            "mean" => {
                if reference.is_empty() {
                    return Err(Failure::value("mean ablation needs reference questions to average over"));
                }
                let mean = intervene::mean_activations(&self.model, reference, &[point], batch).remove(0);
                Intervention::mean(point, positions, units, mean)
            }
            "patch" => {
                let src = self.questions(source.as_deref().unwrap_or_default())?;
                if src.len() != n {
                    return Err(Failure::value(format!("{hook}: patching needs one source question per question: {} for {n}", src.len())));
                }
                Intervention::patch(point, positions, units, intervene::cache_activation(&self.model, &src, point, 0, n_ctx, batch))
            }
            other => return Err(Failure::value(format!("unknown intervention '{other}': expected zero, mean, patch or scale"))),
        })
    }
}

#[pymethods]
impl NativeModel {
    /// Loads a model file or run folder.
    #[staticmethod]
    #[pyo3(signature = (path, allow_non_finite=false))]
    fn load(py: Python<'_>, path: PathBuf, allow_non_finite: bool) -> PyResult<NativeModel> {
        let model = py.detach(|| TaskModel::load_with(&path, LoadOptions { allow_non_finite })).map_err(Failure::from)?;
        Ok(NativeModel { model, path: Some(path) })
    }

    /// Run or model name.
    #[getter]
    fn name(&self) -> &str {
        &self.model.name
    }

    /// Token format: "paper1" or "paper2_sign".
    #[getter]
    fn format(&self) -> &'static str {
        self.model.format.name()
    }

    /// Operand width.
    #[getter]
    fn n_digits(&self) -> usize {
        self.model.n_digits
    }

    /// Operations the model answers: "add", "sub".
    #[getter]
    fn ops(&self) -> Vec<&'static str> {
        self.model.ops.iter().map(|o| if o.symbol() == '+' { "add" } else { "sub" }).collect()
    }

    /// The HookedTransformerConfig fields as JSON.
    #[getter]
    fn config_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.model.params.config).map_err(|e| Failure::new(Kind::Other, e.to_string()).into())
    }

    /// Hex SHA-256 of the model file.
    #[getter]
    fn sha256(&self) -> Option<String> {
        self.model.sha256.clone()
    }

    /// The path it was loaded from.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    /// (n_ctx, answer_start, n_answer) of a question with its answer.
    #[getter]
    fn layout(&self) -> (usize, usize, usize) {
        (self.model.n_ctx(), self.model.answer_start(), self.model.n_answer())
    }

    /// Token names, by id.
    #[getter]
    fn token_names(&self) -> Vec<&'static str> {
        (0..self.model.format.d_vocab() as u32).map(|t| self.model.format.token_name(t)).collect()
    }

    /// Answer token names ("sign", "A5" .. "A0").
    #[getter]
    fn answer_names(&self) -> Vec<String> {
        self.model.format.answer_names(self.model.n_digits)
    }

    /// Hook names of the model, in forward order.
    #[getter]
    fn hook_names(&self) -> Vec<String> {
        let c = &self.model.params.config;
        HookPoint::all(c.n_layers, c.has_ln(), c.has_mlp()).iter().map(HookPoint::name).collect()
    }

    /// Greedy answer of one question: (question text, answer tokens, probabilities, true
    /// tokens, true value, decoded answer or None).
    #[allow(clippy::type_complexity)]
    fn ask(&self, question: &str) -> PyResult<(String, Vec<u32>, Vec<f32>, Vec<u32>, String, Option<String>)> {
        let q = self.questions(&[question.to_string()])?.remove(0);
        let (tokens, probs) = arithlens::eval::predict::greedy(&self.model, &[q]).remove(0);
        let got = arithlens::task::decode_answer(self.model.format, &tokens).ok().map(|v| v.to_string());
        Ok((q.text(), tokens, probs, q.answer_tokens(self.model.format), q.answer().to_string(), got))
    }

    /// Token rows [len, n_ctx] (int64) of questions, with their true answers.
    fn to_tokens<'py>(&self, py: Python<'py>, questions: Vec<String>) -> PyResult<Bound<'py, PyAny>> {
        let qs = self.questions(&questions)?;
        let t = self.model.n_ctx();
        let mut tokens = vec![0u32; qs.len() * t];
        for (q, row) in qs.iter().zip(tokens.chunks_exact_mut(t)) {
            q.write_tokens(self.model.format, row);
        }
        array(py, tokens.into_iter().map(i64::from).collect(), &[qs.len(), t])
    }

    /// `count` random questions per operation (seeded), as text.
    fn random_questions(&self, count: usize, seed: u64) -> PyResult<Vec<String>> {
        arithlens::limits::check_range("count", count as u64, arithlens::limits::MAX_HELD_QUESTIONS as u64, "questions are held in memory")
            .map_err(Failure::value)?;
        let mut out = Vec::new();
        for (i, &op) in self.model.ops.iter().enumerate() {
            let qs = arithlens::task::generate::random_questions(self.model.n_digits, op, count, seed.wrapping_add(i as u64))
                .map_err(|e| Failure::value(e.to_string()))?;
            out.extend(qs.iter().map(Question::text));
        }
        Ok(out)
    }

    /// Logits [batch, pos, d_vocab_out] and the activations under `names` (all when None) of a
    /// full pass over token rows, as `(logits, {name: array})`.
    #[pyo3(signature = (tokens, names, batch=1024))]
    fn run_with_cache<'py>(
        &self,
        py: Python<'py>,
        tokens: PyReadonlyArray2<'py, i64>,
        names: Option<Vec<String>>,
        batch: usize,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
        let t = tokens.shape()[1];
        let ids = tokens.as_array().iter().map(|&v| u32::try_from(v).unwrap_or(u32::MAX)).collect::<Vec<u32>>();
        let (logits, cache) = progress::run(py, None, None, |_: &Progress| {
            let names: Option<Vec<&str>> = names.as_ref().map(|ns| ns.iter().map(String::as_str).collect());
            intervene::cache_tokens(&self.model, &ids, t, names.as_deref(), batch).map_err(Failure::value)
        })?;
        let out = PyDict::new(py);
        for (name, tensor) in cache.tensors {
            out.set_item(name, array(py, tensor.data, &tensor.shape)?)?;
        }
        Ok((array(py, logits.data, &logits.shape)?, out))
    }

    /// Teacher-forced answers [n, n_answer] (int64) and per-digit losses [n, n_answer] (float64)
    /// of `questions` under the interventions `specs` (see [`Spec`]); mean ablations average
    /// over `reference`.
    #[pyo3(signature = (questions, specs, reference, batch=1024))]
    fn intervene<'py>(
        &self,
        py: Python<'py>,
        questions: Vec<String>,
        specs: Vec<Spec>,
        reference: Vec<String>,
        batch: usize,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let qs = self.questions(&questions)?;
        let reference = self.questions(&reference)?;
        let batch = batch.max(1);
        let preds = progress::run(py, None, None, |_: &Progress| {
            let list = specs.iter().map(|s| self.intervention(s, &reference, qs.len(), batch)).collect::<Result<Vec<_>>>()?;
            Ok(intervene::predict(&self.model, &qs, &mut Interventions::new(list), batch))
        })?;
        let n = preds.n_answer;
        let argmax = preds.argmax.into_iter().map(i64::from).collect();
        Ok((array(py, argmax, &[qs.len(), n])?, array(py, preds.nll, &[qs.len(), n])?))
    }

    /// The weights under TransformerLens names and shapes.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (name, t) in self.model.params.to_tensor_file().tensors {
            out.set_item(name, array(py, t.data, &t.shape)?)?;
        }
        Ok(out)
    }

    /// Evaluates the model (`arithlens eval`), returning the report as JSON. In a run folder,
    /// progress is kept in eval.partial.json so an interrupted evaluation continues.
    /// Options left out take `arithlens eval`'s defaults.
    #[pyo3(signature = (questions=None, seed=None, exhaustive=false, per_class=None, top_k=None, threads=None, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &self,
        py: Python<'_>,
        questions: Option<u64>,
        seed: Option<u64>,
        exhaustive: bool,
        per_class: Option<usize>,
        top_k: Option<usize>,
        threads: Option<usize>,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let d = arithlens::eval::EvalOptions::default();
        let opts = arithlens::eval::EvalOptions {
            questions: questions.unwrap_or(d.questions),
            seed: seed.unwrap_or(d.seed),
            exhaustive,
            per_class: per_class.unwrap_or(d.per_class),
            top_k: top_k.unwrap_or(d.top_k),
            progress_file: self.run_folder().map(|dir| arithlens::run_folder::RunFolder::new(dir).eval_partial()),
            ..d
        };
        arithlens::pipeline::check_eval_options(&opts).map_err(Failure::from)?;
        progress::run(py, threads, progress, |p: &Progress| {
            let report = arithlens::eval::evaluate(&self.model, &opts, p.stop(), &mut |e| p.event(e))?;
            serde_json::to_string(&report).map_err(|e| Failure::new(Kind::Other, e.to_string()))
        })
    }

    /// Analyses the model (`arithlens analyze`, without writing analysis.json), returning the
    /// analysis as JSON. A run folder's training.json is read for the training dynamics.
    /// Options left out take `arithlens analyze`'s defaults.
    #[pyo3(signature = (questions=None, seed=None, pairs=None, siblings=None, threads=None, progress=None, circuit_questions=None, circuit_edges=None, eap_steps=None, circuit_class=None))]
    #[allow(clippy::too_many_arguments)]
    fn analyze(
        &self,
        py: Python<'_>,
        questions: Option<usize>,
        seed: Option<u64>,
        pairs: Option<usize>,
        siblings: Option<usize>,
        threads: Option<usize>,
        progress: Option<&Bound<'_, PyAny>>,
        circuit_questions: Option<usize>,
        circuit_edges: Option<usize>,
        eap_steps: Option<usize>,
        circuit_class: Option<String>,
    ) -> PyResult<String> {
        let d = arithlens::analysis::AnalyzeOptions::default();
        let opts = arithlens::analysis::AnalyzeOptions {
            questions: questions.unwrap_or(d.questions),
            seed: seed.unwrap_or(d.seed),
            pairs: pairs.unwrap_or(d.pairs),
            siblings: siblings.unwrap_or(d.siblings),
            circuit_questions: circuit_questions.unwrap_or(d.circuit_questions),
            circuit_edges: circuit_edges.unwrap_or(d.circuit_edges),
            eap_steps: eap_steps.unwrap_or(d.eap_steps),
            circuit_class,
            ..d
        };
        opts.validate().map_err(Failure::value)?;
        opts.circuit_class_for(&self.model).map_err(|problem| Failure::value(format!("circuit_class: {problem}")))?;
        let log = self.run_folder().map(|d| crate::pipeline::training_log(d)).transpose()?.flatten();
        progress::run(py, threads, progress, |p: &Progress| {
            let analysis = arithlens::analysis::analyze_with_progress(&self.model, log.as_ref(), &opts, p.stop(), &mut |e| p.event(e))?;
            serde_json::to_string(&analysis).map_err(|e| Failure::new(Kind::Other, e.to_string()))
        })
    }
}
