//! Section 4, where computation happens: the analysis's headline findings (the sentences the
//! terminal summary states, [`crate::analysis::summary::findings`]) and, per hook, the failure
//! rate of each answer digit when one position is mean-ablated.

use super::page::{Block, Figure};
use super::svg::{heatmap, ChartSpec, HeatmapOpts};
use crate::analysis::positions::PositionAblation;
use crate::analysis::Analysis;

/// Heat-map options for shares in [0, 1], written as percentages.
fn pct_opts() -> HeatmapOpts {
    HeatmapOpts { min: Some(0.0), max: Some(1.0), diverging: false, cell_text: true, value_fmt_pct: true }
}

/// The section's blocks: the findings, then one heat map per ablated hook and the useful positions.
pub fn blocks(a: &Analysis) -> Vec<Block> {
    let mut out = vec![Block::List(crate::analysis::summary::findings(a))];
    out.extend(ablation_maps(a));
    out
}

/// Ablation failure rate per (answer digit, position), one heat map per hook, in the order the
/// hooks were ablated.
fn ablation_maps(a: &Analysis) -> Vec<Block> {
    let abl = &a.positions.ablations;
    let names: Vec<String> = a.positions.digits.iter().map(|d| d.digit.clone()).collect();
    let mut hooks: Vec<&str> = Vec::new();
    for x in abl {
        if !hooks.contains(&x.hook.as_str()) {
            hooks.push(&x.hook);
        }
    }
    let mut out: Vec<Block> = hooks.iter().map(|hook| Block::Figure(ablation_map(a, hook, &names))).collect();
    if !a.positions.useful.is_empty() {
        out.push(Block::Text(format!(
            "Useful positions (an ablation there changes at least {:.0}% of answers): {}.",
            100.0 * a.options.threshold,
            crate::analysis::summary::list(&a.positions.useful)
        )));
    }
    out
}

/// The heat map of the positions ablated at `hook`: rows the answer digits `names`.
fn ablation_map(a: &Analysis, hook: &str, names: &[String]) -> Figure {
    let rows: Vec<&PositionAblation> = a.positions.ablations.iter().filter(|x| x.hook == hook).collect();
    let cols: Vec<String> = rows.iter().map(|x| format!("P{} {}", x.position, x.token)).collect();
    let values: Vec<Vec<f64>> =
        (0..names.len()).map(|d| rows.iter().map(|x| x.digit_fail.get(d).copied().unwrap_or(f64::NAN)).collect()).collect();
    let svg = heatmap(
        &ChartSpec::new(&format!("Ablating {hook}"), "ablated position (token)", "answer digit", 760.0, 300.0),
        &cols,
        names,
        &values,
        &pct_opts(),
    );
    let caption = format!(
        "Mean ablation of {hook} at one position at a time (replaced by its mean over the analysis question set, {} questions): \
         share of questions whose answer digit (row) changes. Columns with colour are where the computation happens.",
        a.options.questions
    );
    Figure::new(&format!("positions_{}", hook.replace('.', "_")), svg, caption)
}
