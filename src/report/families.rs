//! The failure families of an evaluation, in the accuracy section: a bar per family (its share
//! of the wrong answers, and its precision: the share of questions drawn to match its rule that
//! the model gets wrong), the families in words with an example each, and what no family covers.

use super::page::{Block, Figure};
use super::svg::{bar_chart, ChartSpec};
use crate::eval::failure_families::{FailureFamilies, COVERAGE_GOAL};
use crate::task::Op;

/// The blocks for one operation's families; none when the model made no mistake.
pub fn blocks(op: Op, f: &FailureFamilies) -> Vec<Block> {
    let word = op.word();
    if f.failures == 0 {
        return Vec::new();
    }
    if f.families.is_empty() {
        return vec![Block::Note(format!(
            "No failure family found for {word}: its {} wrong answers share no rule with enough of them ({}).",
            f.failures,
            kinds(f)
        ))];
    }
    let names: Vec<String> = (1..=f.families.len()).map(|i| format!("F{i}")).collect();
    let groups = vec![
        ("share of the wrong answers".to_string(), f.families.iter().map(|x| 100.0 * x.share_of_failures).collect()),
        (
            "precision (questions matching the rule answered wrong)".to_string(),
            f.families.iter().map(|x| 100.0 * x.precision.unwrap_or(f64::NAN)).collect(),
        ),
    ];
    let width = 520.0 + 60.0 * names.len() as f64;
    let svg = bar_chart(&ChartSpec::new(&format!("Failure families ({word})"), "family", "%", width, 360.0).percent(), &names, &groups);
    let caption = format!(
        "The {} wrong {word} answers examined, grouped by a shallow decision tree over per-column features (how the first wrong digit is \
         wrong, and the columns below it); per family F1.., the share of the wrong answers it covers and its precision, measured on \
         questions drawn to match its rule. Together they cover {:.0}% of the wrong answers.",
        f.failures,
        100.0 * f.coverage()
    );
    let mut lines: Vec<String> =
        f.families.iter().zip(&names).map(|(x, name)| format!("{name}: {} Rule: {}.", x.description, x.rule)).collect();
    lines.extend(f.families.iter().zip(&names).filter_map(|(x, name)| {
        let e = x.examples.first()?;
        Some(format!("{name} example: {} answered {}, not {}", e[0], e[1], e[2]))
    }));
    let mut out = vec![Block::Figure(Figure::new(&format!("failure_families_{}", op.name()), svg, caption)), Block::List(lines)];
    if f.coverage() < COVERAGE_GOAL {
        out.push(Block::Note(format!("{} wrong {word} answers fall in no family ({}).", f.uncovered, kinds(f))));
    }
    out
}

/// The uncovered wrong answers by how they are wrong, e.g. "other digit error 12".
fn kinds(f: &FailureFamilies) -> String {
    let v: Vec<String> = f.uncovered_kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    if v.is_empty() {
        "none uncovered".into()
    } else {
        v.join(", ")
    }
}
