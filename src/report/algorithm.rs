//! Section 8, the algorithm and the symbolic model: the algorithm found per answer digit, and
//! how often each symbolic formula (and the best any formula over sub-task values could do)
//! agrees with the model, per complexity class.

use super::page::{Block, Figure};
use super::svg::{bar_chart, ChartSpec};
use crate::analysis::symbolic::{Ceiling, FormulaCheck};
use crate::analysis::Analysis;
use crate::task::Class;

/// The section's blocks: the algorithm as text, then the symbolic check.
pub fn blocks(a: &Analysis) -> Vec<Block> {
    let mut out = algorithm(a);
    out.extend(symbolic(a));
    out
}

/// The algorithm per answer digit as text.
fn algorithm(a: &Analysis) -> Vec<Block> {
    let lines: Vec<String> = a.algorithm.iter().map(|d| d.line()).filter(|t| !t.is_empty()).collect();
    if lines.is_empty() {
        return Vec::new();
    }
    vec![Block::Pre(lines.join("\n"))]
}

/// Agreement of each symbolic formula with the model per complexity class.
fn symbolic(a: &Analysis) -> Vec<Block> {
    let mut classes: Vec<Class> = Vec::new();
    for c in a.symbolic.iter().flat_map(|c| &c.per_class).map(|r| r.class) {
        if !classes.contains(&c) {
            classes.push(c);
        }
    }
    if classes.is_empty() {
        return Vec::new();
    }
    // Percent of each class (NaN where a formula has no row for it).
    let per_class = |rows: Vec<(Class, f64)>| -> Vec<f64> {
        classes.iter().map(|k| rows.iter().find(|r| r.0 == *k).map_or(f64::NAN, |r| 100.0 * r.1)).collect()
    };
    let mut groups: Vec<(String, Vec<f64>)> =
        a.symbolic.iter().map(|c| (c.name.clone(), per_class(c.per_class.iter().map(|r| (r.class, r.agreement)).collect()))).collect();
    if let Some(ceiling) = &a.ceiling {
        let rows = ceiling.per_class.iter().map(|r| (r.class, r.ceiling)).collect();
        groups.push(("any formula (best, estimated)".into(), per_class(rows)));
    }
    let names: Vec<String> = classes.iter().map(Class::to_string).collect();
    let svg = bar_chart(
        &ChartSpec::new("Symbolic formulas vs the model", "complexity class", "questions where formula = model (%)", 760.0, 360.0)
            .percent(),
        &names,
        &groups,
    );
    let caption = format!(
        "Per complexity class ({} questions each), the share of questions where a symbolic formula's answer equals the model's own \
         (teacher-forced) answer, wrong answers included: exact addition, the one-layer lookahead formula, the formula derived from the nodes, and the carry table fitted to the model's answers on other questions; \
         'any formula' estimates the most that any formula over the sub-task values can agree, by asking the model questions with the same \
         column values.",
        a.options.per_class
    );
    let mut lines: Vec<String> = a.symbolic.iter().map(formula_line).collect();
    lines.extend(a.ceiling.as_ref().map(ceiling_line));
    vec![Block::Figure(Figure::new("symbolic_agreement", svg, caption)), Block::List(lines)]
}

/// One formula's line: what it computes, its mean agreement, how often the model beats it, and
/// the examples where they differ.
fn formula_line(c: &FormulaCheck) -> String {
    let beats: usize = c.per_class.iter().map(|r| r.model_beats_formula).sum();
    let beyond = if beats > 0 { format!("; the model answers {beats} questions right that it gets wrong") } else { String::new() };
    let name = &c.name;
    let examples: Vec<String> =
        c.examples.iter().map(|e| format!("{} {}{}: model {}, {name} {}", e.class, e.question, e.truth, e.model, e.formula)).collect();
    let examples = if examples.is_empty() { String::new() } else { format!(". Where they differ: {}", examples.join("; ")) };
    format!("{name}: {} (mean agreement {:.2}%{beyond}){examples}", c.description, 100.0 * c.mean_agreement)
}

/// The ceiling's line: how many of the model's wrong answers any formula over sub-task values could reproduce.
fn ceiling_line(ceiling: &Ceiling) -> String {
    let (wrong, usual) = ceiling.wrong();
    format!(
        "any formula: of the model's {wrong} wrong answers, {usual} are its usual answer for their column values ({} siblings asked per question), \
         what the best-agreeing formula over sub-task values reproduces",
        ceiling.siblings
    )
}
