//! Training dynamics from training.json: per answer digit, and per digit and need (base only,
//! carry from the column below, cascading carry), the step at which the loss falls through a
//! threshold, and whether the digits' phase changes are separated in time.

use crate::train::log::TrainingLog;
use serde::{Deserialize, Serialize};

/// When one answer digit was learned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigitPhase {
    /// Answer token name.
    pub digit: String,
    /// First logged step from which the digit's loss stays below the threshold for two records
    /// (or the last record); `None` if never.
    pub step: Option<u64>,
    /// The same for the questions where the digit needs only the base add, a carry, a cascade.
    pub need_steps: Vec<Option<u64>>,
}

/// The dynamics analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dynamics {
    /// Loss threshold.
    pub threshold: f64,
    /// Last logged step.
    pub total_steps: u64,
    /// Per answer digit.
    pub digits: Vec<DigitPhase>,
    /// Latest minus earliest digit step.
    pub spread_steps: u64,
    /// Distinct digit steps.
    pub distinct_steps: usize,
    /// Whether the digits' phase changes are spread over at least 5% of training.
    pub separated: bool,
    /// Whether, for the digits that have both, the carry case is learned no earlier than the
    /// base case.
    pub carry_lags_base: bool,
}

fn crossing(values: &[(u64, Option<f64>)], threshold: f64) -> Option<u64> {
    (0..values.len()).find_map(|i| {
        let below = |j: usize| values.get(j).is_none_or(|v| v.1.is_none_or(|l| l < threshold));
        (values[i].1.is_some_and(|l| l < threshold) && below(i + 1)).then_some(values[i].0)
    })
}

/// Phase changes of `log` at `threshold`.
pub fn phases(log: &TrainingLog, threshold: f64) -> Dynamics {
    let r = &log.records;
    let digits: Vec<DigitPhase> = log
        .answer_names
        .iter()
        .enumerate()
        .map(|(d, name)| {
            let series: Vec<(u64, Option<f64>)> = r.iter().map(|x| (x.step, x.digit_loss.get(d).copied())).collect();
            let need_steps = (0..3)
                .map(|need| {
                    let s: Vec<(u64, Option<f64>)> =
                        r.iter().map(|x| (x.step, x.need_loss.get(need).and_then(|v| v.get(d).copied().flatten()))).collect();
                    crossing(&s, threshold)
                })
                .collect();
            DigitPhase { digit: name.clone(), step: crossing(&series, threshold), need_steps }
        })
        .collect();
    let steps: Vec<u64> = digits.iter().filter_map(|d| d.step).collect();
    let spread_steps = steps.iter().max().zip(steps.iter().min()).map_or(0, |(a, b)| a - b);
    let mut distinct = steps.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let total_steps = r.last().map_or(0, |x| x.step);
    let carry_lags_base = digits.iter().all(|d| match (d.need_steps[0], d.need_steps[1]) {
        (Some(b), Some(c)) => c >= b,
        _ => true,
    });
    Dynamics {
        threshold,
        total_steps,
        spread_steps,
        distinct_steps: distinct.len(),
        separated: distinct.len() >= 2 && spread_steps as f64 >= 0.05 * total_steps as f64,
        carry_lags_base,
        digits,
    }
}
