//! Direct logit attribution, beside the node map: per answer token, how much each head and MLP
//! writes straight into the right token's logit (through the final LayerNorm's linearisation),
//! for the components that matter most to some token.

use super::page::{Block, Figure};
use super::svg::{bar_chart, ChartSpec};
use crate::analysis::Analysis;

/// Components shown: those among the largest few of some answer token.
const TOP: usize = 3;

/// The figure, or nothing for an analysis without attribution.
pub fn blocks(a: &Analysis) -> Vec<Block> {
    let dla = &a.logit_attribution;
    if dla.is_empty() {
        return Vec::new();
    }
    let mut shown: Vec<String> = Vec::new();
    for d in dla {
        for (name, _) in d.components.iter().take(TOP) {
            if !shown.contains(name) {
                shown.push(name.clone());
            }
        }
    }
    shown.sort();
    let digits: Vec<String> = dla.iter().map(|d| d.digit.clone()).collect();
    let groups: Vec<(String, Vec<f64>)> = shown
        .iter()
        .map(|c| (c.clone(), dla.iter().map(|d| d.components.iter().find(|x| &x.0 == c).map_or(f64::NAN, |x| x.1)).collect()))
        .collect();
    let width = 560.0 + 40.0 * (digits.len() * groups.len()) as f64;
    let spec = ChartSpec::new(
        "Direct logit attribution",
        "answer token",
        "mean contribution to the right token's centred logit",
        width.min(1400.0),
        380.0,
    );
    let caption = format!(
        "Per answer token, over the {} questions of the ablation set: each component's mean direct contribution to the right token's logit \
         less the mean logit, at the position that predicts it (the final LayerNorm linearised at each input, as TransformerLens's \
         decompose_resid and apply_ln_to_stack do); shown are the {TOP} largest of each token. Heads are L<layer>H<head>, MLPs L<layer>M.",
        a.options.questions
    );
    vec![Block::Figure(Figure::new("logit_attribution", bar_chart(&spec, &digits, &groups), caption))]
}
