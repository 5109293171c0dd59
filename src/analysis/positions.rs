//! Useful positions: mean-ablate the residual stream (`hook_resid_post`) and each layer's
//! attention and MLP output at one position at a time, and record which answer digits change.
//! The positions where any ablation changes answers are where the computation happens.

use super::intervene::{changed, mean_activations, predict_from, Intervention, Interventions, Prefix, Units};
use super::naming::{answer_names, position_name, predicting_position};
use crate::eval::predict::Predictions;
use crate::model::HookPoint;
use crate::task::Question;
use crate::task_model::TaskModel;
use serde::{Deserialize, Serialize};

/// One ablation: a hook at one position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionAblation {
    /// TransformerLens hook name.
    pub hook: String,
    /// Position.
    pub position: usize,
    /// Token at the position (`D2`, `=`, `A3`, ...).
    pub token: String,
    /// Fraction of questions with any answer token changed.
    pub fail_rate: f64,
    /// Per answer token, the fraction of questions where it changed.
    pub digit_fail: Vec<f64>,
}

/// Where one answer token is computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigitPositions {
    /// Answer token name (`A3`).
    pub digit: String,
    /// Position it is predicted at (one before it is emitted).
    pub predicted_at: usize,
    /// Positions from `=` on whose ablation changes it (rate at least the threshold).
    pub computed_at: Vec<usize>,
    /// Whether it is computed only at `predicted_at` (among positions from `=` on).
    pub one_before: bool,
    /// Whether the model gives this token the same value on every question (the sign of an
    /// addition model, the top digit of a subtraction model): no ablation can move it, so where
    /// it is computed is not observable.
    #[serde(default)]
    pub constant: bool,
}

impl DigitPositions {
    /// Positions other than `predicted_at` whose ablation changes this token.
    pub fn also_at(&self) -> Vec<usize> {
        self.computed_at.iter().copied().filter(|&p| p != self.predicted_at).collect()
    }
}

/// The useful-positions analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Positions {
    /// Every ablation run.
    pub ablations: Vec<PositionAblation>,
    /// Positions where some ablation reaches the failure threshold, ascending.
    pub useful: Vec<usize>,
    /// Position of the `=` token.
    pub equals_position: usize,
    /// First useful position.
    pub first_useful: Option<usize>,
    /// Per answer token, where it is computed.
    pub digits: Vec<DigitPositions>,
}

/// Runs the sweep on `questions` (also the mean's reference set); `clean` are the unablated
/// predictions, `threshold` the failure rate that makes a position useful; `tick(done, total)`
/// follows the hook and position pairs ablated.
pub fn useful_positions(
    model: &TaskModel,
    questions: &[Question],
    clean: &Predictions,
    threshold: f64,
    batch: usize,
    tick: &mut dyn FnMut(usize, usize),
) -> Positions {
    let c = &model.params.config;
    let nl = c.n_layers;
    let q0 = model.answer_start() - 1;
    let mut points = Vec::new();
    for l in 0..nl {
        points.push(HookPoint::AttnOut(l));
        if c.has_mlp() {
            points.push(HookPoint::MlpOut(l));
        }
        points.push(HookPoint::ResidPost(l));
    }
    let means = mean_activations(model, questions, &points, batch);
    let prefix = Prefix::new(model, questions, batch);
    let names = answer_names(model);
    let n_ans = names.len();
    let runs: Vec<(usize, usize)> = (0..points.len()).flat_map(|h| (0..model.n_ctx() - 1).map(move |pos| (h, pos))).collect();
    let ablations = super::stages::par_map_ticked(&runs, tick, |&(h, pos)| {
        let point = points[h];
        let last = matches!(point, HookPoint::AttnOut(l) | HookPoint::MlpOut(l) | HookPoint::ResidPost(l) if l + 1 == nl);
        // The last position is never read, and in the last layer the rows before the answer
        // positions reach no logit: ablating them changes nothing, so they are not run.
        let (fail_rate, digit_fail) = if last && pos < q0 {
            (0.0, vec![0.0; n_ans])
        } else {
            let mut ivs = Interventions::new(vec![Intervention::mean(point, Some(vec![pos]), Units::All, means[h].clone())]);
            let after = predict_from(model, questions, &prefix, &mut ivs, batch);
            rates(&changed(clean, &after), n_ans)
        };
        PositionAblation { hook: point.name(), position: pos, token: position_name(model, pos), fail_rate, digit_fail }
    });
    let mut useful: Vec<usize> = ablations.iter().filter(|a| a.fail_rate >= threshold).map(|a| a.position).collect();
    useful.sort_unstable();
    useful.dedup();
    let digits = (0..n_ans)
        .map(|i| {
            let at = predicting_position(model, i);
            let mut computed_at: Vec<usize> =
                ablations.iter().filter(|a| a.position >= q0 && a.digit_fail[i] >= threshold).map(|a| a.position).collect();
            computed_at.sort_unstable();
            computed_at.dedup();
            let constant = clean.argmax.iter().skip(i).step_by(n_ans).all(|&t| t == clean.argmax[i]);
            DigitPositions { digit: names[i].clone(), predicted_at: at, one_before: computed_at == [at], computed_at, constant }
        })
        .collect();
    Positions { first_useful: useful.first().copied(), useful, equals_position: q0, ablations, digits }
}

/// Fraction of questions with any change, and per answer token.
pub fn rates(changed: &[bool], n_ans: usize) -> (f64, Vec<f64>) {
    let nq = (changed.len() / n_ans.max(1)).max(1) as f64;
    let any = changed.chunks_exact(n_ans).filter(|r| r.iter().any(|&c| c)).count() as f64 / nq;
    let per = (0..n_ans).map(|d| changed.chunks_exact(n_ans).filter(|r| r[d]).count() as f64 / nq).collect();
    (any, per)
}
