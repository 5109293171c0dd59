//! Section 2, training: the total and per-answer-digit loss curves with detected phase changes,
//! and the loss split by what each digit needs (base add only, a carry, a cascading carry); and
//! the analysis's account of when each digit was learned.

use super::page::{Block, Figure, Section};
use super::svg::{line_chart, ChartSpec, Marker, Series};
use crate::analysis::dynamics::Dynamics;
use crate::train::log::TrainingLog;

/// A drop of at least this factor between a curve's start and its end counts as learned.
pub const MIN_DROP: f64 = 10.0;

/// Where one loss curve goes through its phase change.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseChange {
    /// Curve name (`A3`, `total`).
    pub name: String,
    /// First logged step at which the loss is at or below the threshold.
    pub step: u64,
    /// The threshold: the geometric mean of the starting and final loss.
    pub threshold: f64,
}

/// The step at which `points` (step, loss) first falls to the geometric mean of its starting
/// loss (mean of the first three records) and its final loss (minimum over the last tenth of
/// records): the middle, on a log scale, of the drop. `None` when the loss falls by less than
/// [`MIN_DROP`] (nothing was learned, or the curve starts learned).
pub fn phase_change(name: &str, points: &[(f64, f64)]) -> Option<PhaseChange> {
    let ys: Vec<f64> = points.iter().map(|p| p.1).filter(|y| y.is_finite() && *y > 0.0).collect();
    if ys.len() < 4 {
        return None;
    }
    let start = ys[..3].iter().sum::<f64>() / 3.0;
    let tail = (ys.len() / 10).max(1);
    let end = ys[ys.len() - tail..].iter().copied().fold(f64::INFINITY, f64::min);
    if start / end < MIN_DROP {
        return None;
    }
    let threshold = (start * end).sqrt();
    let step = points.iter().find(|p| p.1.is_finite() && p.1 <= threshold)?.0 as u64;
    Some(PhaseChange { name: name.into(), step, threshold })
}

fn spec(title: &str) -> ChartSpec {
    ChartSpec { log_y: true, ..ChartSpec::new(title, "training step", "loss (log scale)", 760.0, 380.0) }
}

/// Per-answer-digit loss curves (and the total), each with its phase change.
pub fn digit_curves(log: &TrainingLog) -> (Vec<Series>, Vec<PhaseChange>) {
    let total = Series { name: "total".into(), points: log.records.iter().map(|r| (r.step as f64, r.loss)).collect() };
    let mut series = vec![total];
    for (d, name) in log.answer_names.iter().enumerate() {
        let points = log.records.iter().map(|r| (r.step as f64, r.digit_loss.get(d).copied().unwrap_or(f64::NAN))).collect();
        series.push(Series { name: name.clone(), points });
    }
    let phases = series.iter().skip(1).filter_map(|s| phase_change(&s.name, &s.points)).collect();
    (series, phases)
}

/// Loss per need, averaged over the answer digits that had a question with that need.
pub fn need_curves(log: &TrainingLog) -> Vec<Series> {
    let names = ["base add only", "carry (UC)", "sum-9 cascade (US)"];
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let points = log
                .records
                .iter()
                .map(|r| {
                    let v: Vec<f64> = r.need_loss.get(i).map(|d| d.iter().flatten().copied().collect()).unwrap_or_default();
                    (r.step as f64, if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 })
                })
                .collect();
            Series { name: name.to_string(), points }
        })
        .collect()
}

/// One marker per distinct step, labelled with every digit changing there.
fn markers(phases: &[PhaseChange]) -> Vec<Marker> {
    let mut out: Vec<Marker> = Vec::new();
    for p in phases {
        match out.iter_mut().find(|m| m.x == p.step as f64) {
            Some(m) => m.label = format!("{}, {}", m.label, p.name),
            None => out.push(Marker { x: p.step as f64, label: p.name.clone() }),
        }
    }
    out
}

fn phase_text(phases: &[PhaseChange]) -> String {
    if phases.is_empty() {
        return format!("No answer digit's loss fell by a factor of {MIN_DROP} or more, so no phase change is marked.");
    }
    let mut sorted = phases.to_vec();
    sorted.sort_by_key(|p| p.step);
    let list: Vec<String> = sorted.iter().map(|p| format!("{} at step {}", p.name, p.step)).collect();
    format!("Phase changes, in the order the digits were learned: {}.", list.join(", "))
}

/// The training section; a note when training.json is missing.
pub fn section(log: Option<&TrainingLog>) -> Section {
    let mut s = Section::new("training", "Training");
    let Some(log) = log else {
        s.push(Block::Note("No training.json in this run folder: train with `arithlens train` or `arithlens run`.".into()));
        return s;
    };
    let every = log.config.log_every;
    let (series, phases) = digit_curves(log);
    let markers = markers(&phases);
    let svg = line_chart(&spec("Loss per answer digit"), &series, &markers);
    s.push(Block::Figure(Figure::new(
        "training_digit_loss",
        svg,
        format!(
            "Training loss (cross-entropy of the answer tokens on each step's fresh random batch, mean over the {every} steps before each point) \
             in total and per answer digit, log scale. Dashed lines mark each digit's phase change: the first logged step at which its loss \
             reaches the geometric mean of its starting loss (first three points) and its final loss (lowest of the last tenth of points), \
             i.e. the middle of its drop on the log scale; digits whose loss fell by less than {MIN_DROP}x get no marker."
        ),
    )));
    s.push(Block::Text(phase_text(&phases)));
    let svg = line_chart(&spec("Loss by sub-task"), &need_curves(log), &[]);
    s.push(Block::Figure(Figure::new(
        "training_subtask_loss",
        svg,
        "Training loss of answer digits split by what the digit needs in its question: base add only (no carry into its column), \
         a carry made by the column just below (use carry, UC), or a carry passed up through one or more sum-9 columns (use sum 9, US); \
         each point is the mean over answer digits of that digit's mean loss over the questions with that need since the previous point. \
         Gaps mean no question with that need was seen.",
    )));
    s
}

/// The analysis's training dynamics, as a line under the curves: the step at which each digit's
/// loss first fell below the threshold, and whether the phase changes are separated.
pub fn dynamics(d: &Dynamics) -> Block {
    let steps: Vec<String> =
        d.digits.iter().map(|x| format!("{} at {}", x.digit, x.step.map_or(String::new(), |s| s.to_string()))).collect();
    let mut line = format!("Analysis: steps at which each digit's loss first falls below {}: {}.", d.threshold, steps.join(", "));
    if d.separated {
        line.push_str(" The digits' phase changes are separated in time.");
    }
    if d.carry_lags_base {
        line.push_str(" The carry sub-task is learned after base add.");
    }
    Block::Text(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_change_is_the_middle_of_the_drop_on_a_log_scale() {
        let pts: Vec<(f64, f64)> = (0..20)
            .map(|i| {
                (
                    i as f64 * 10.0,
                    if i < 8 {
                        1.0
                    } else if i < 10 {
                        0.1
                    } else {
                        0.0001
                    },
                )
            })
            .collect();
        let p = phase_change("A0", &pts).unwrap();
        assert_eq!(p.step, 100);
        assert!((p.threshold - 0.01).abs() < 1e-12);
        let flat: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 1.0 - i as f64 * 0.01)).collect();
        assert_eq!(phase_change("A1", &flat), None);
    }
}
