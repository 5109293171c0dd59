//! The analysis as text: the short readable account `arithlens analyze` prints, one function per
//! section (`[model]`, `[positions]`, `[nodes]`, `[attention]`, `[roles]`, `[logit attribution]`,
//! `[algorithm]`, `[circuit]`, `[failure families]`, `[symbolic]`, `[insertion]`, `[training]`). Its headline sentences ([`findings`]) are also
//! what the report lists, so they are written once.

use super::{insertion, nodes, positions, stages, symbolic, Analysis, Findings};
use crate::task::Op;

/// A short readable account of the findings, section by section.
pub fn summary(a: &Analysis) -> String {
    let mut s = model_line(a);
    s += &positions_section(a);
    s += &nodes_section(a);
    s += &attention_section(&a.findings);
    s += &roles_section(a);
    s += &attribution_section(a);
    s += "\n[algorithm]\n";
    for d in &a.algorithm {
        s += &format!("  {}\n", d.line());
    }
    s += &circuit_section(a);
    s += &families_section(a);
    s += &symbolic_section(a);
    if let Some(ins) = &a.insertion {
        s += &insertion_summary(ins);
    }
    if let Some(d) = &a.dynamics {
        s += &dynamics_section(d);
    }
    s += &format!("\nanalysis took {:.1} s ({})\n", a.seconds, stages::breakdown(&a.stages));
    s
}

/// Per answer token, the components that write most into its logit (direct logit attribution).
fn attribution_section(a: &Analysis) -> String {
    if a.logit_attribution.is_empty() {
        return String::new();
    }
    let mut s =
        "\n[logit attribution] per answer token, the largest direct contributions to the right token's centred logit:\n".to_string();
    for d in &a.logit_attribution {
        let top: Vec<String> = d.components.iter().take(3).map(|(name, v)| format!("{name} {v:+.2}")).collect();
        s += &format!("  {} (at position {}): {} (centred logit {:.2})\n", d.digit, d.position, top.join(", "), d.centred_logit);
    }
    s
}

/// The circuit between the useful nodes, per answer digit; the derived formula's reach follows it.
fn circuit_section(a: &Analysis) -> String {
    let Some(c) = &a.circuit else { return String::new() };
    format!(
        "\n[circuit] path patching between the useful nodes, each operand column corrupted in turn (a column an edge carries \
         into a digit is in that digit's reach in the derived formula):\n{}",
        indented(&c.lines())
    )
}

/// The families of the wrong answers on the family set, per operation.
fn families_section(a: &Analysis) -> String {
    let lines: Vec<String> =
        (a.model.ops.iter().zip(&a.failure_families)).flat_map(|(op, f)| f.lines(&format!("{}: ", op.word()))).collect();
    if lines.is_empty() {
        return String::new();
    }
    format!("\n[failure families] of the wrong answers on the family set:\n{}", indented(&lines))
}

/// Numbers as a comma-separated list ("5, 6, 7"), for positions and the like.
pub fn list(v: &[usize]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// The model and its accuracy on the analysis set.
fn model_line(a: &Analysis) -> String {
    let m = &a.model;
    format!(
        "Model {}: {} layer(s), {} heads, d_model {}, {}-digit {} ({}); accuracy on the analysis set {}.\n",
        m.name,
        m.n_layers,
        m.n_heads,
        m.d_model,
        m.n_digits,
        Op::words(&m.ops),
        m.format,
        pct(a.accuracy)
    )
}

/// The headline findings as sentences: where computation starts, when each answer token is
/// computed, the staircase heads and the column each head reads. The summary states them under
/// `[positions]` and `[attention]`; the report lists them.
pub fn findings(a: &Analysis) -> Vec<String> {
    let mut v = vec![start_sentence(a)];
    v.extend(timing_lines(&a.positions));
    v.push(staircase_sentence(&a.findings));
    v.extend(offset_lines(&a.findings));
    v
}

/// Each line indented by two spaces and ended.
fn indented(lines: &[String]) -> String {
    lines.iter().map(|l| format!("  {l}\n")).collect()
}

/// Where computation happens and when each answer token is computed.
fn positions_section(a: &Analysis) -> String {
    format!("\n[positions] {}\n{}", start_sentence(a), timing_summary(&a.positions))
}

/// Where computation starts, and the useful positions.
fn start_sentence(a: &Analysis) -> String {
    let f = &a.findings;
    match f.computation_starts_at {
        Some(p) => format!(
            "Computation starts at position {p} (token '{}'){}; useful positions {}.",
            f.starts_at_token.clone().unwrap_or_default(),
            if f.starts_at_equals { ": nothing before the '=' token matters" } else { ", before the '=' token" },
            list(&a.positions.useful)
        ),
        None => "No position's ablation changes the answers.".into(),
    }
}

/// The useful nodes with what they attend to and the sub-tasks they were tagged with.
fn nodes_section(a: &Analysis) -> String {
    let mut s = String::new();
    s += "\n[nodes] useful nodes (mean ablation):\n";
    let mut useful: Vec<&nodes::NodeAblation> = a.nodes.iter().filter(|n| n.useful).collect();
    useful.sort_by_key(|n| n.node);
    for n in &useful {
        let att = a.attention.iter().find(|x| x.node == n.node).map(|x| format!("; attends {}", x.summary)).unwrap_or_default();
        let tag = a
            .tags
            .iter()
            .find(|t| t.group.contains(&n.node) && !t.tags.is_empty())
            .map(|t| {
                format!("; does {}{}", t.tags.join(", "), if t.group.len() > 1 { format!(" (with {})", t.name) } else { String::new() })
            })
            .unwrap_or_default();
        s += &format!("  {}{att}{tag}\n", n.describe());
    }
    s
}

/// The staircase heads and the column each head reads.
fn attention_section(f: &Findings) -> String {
    format!("\n[attention] {}\n{}", staircase_sentence(f), indented(&offset_lines(f)))
}

/// Which heads walk down the digit pairs.
fn staircase_sentence(f: &Findings) -> String {
    if f.staircase_heads.is_empty() {
        "no head walks down the digit pairs.".into()
    } else {
        format!("staircase: heads {} attend to successive digit pairs, one column per answer position.", f.staircase_heads.join(", "))
    }
}

/// The column each head reads, relative to the answer digit it helps predict.
fn offset_lines(f: &Findings) -> Vec<String> {
    f.head_offsets.iter().filter_map(|(h, o)| o.map(|o| format!("{h} reads column k-{o} while predicting A_k"))).collect()
}

/// Each head's roles, the PCA of head outputs, and the operator and sign nodes.
fn roles_section(a: &Analysis) -> String {
    let mut s = String::new();
    let f = &a.findings;
    s += "\n[roles] ";
    let roles: Vec<String> =
        f.head_roles.iter().map(|(h, r)| format!("{h}: {}", if r.is_empty() { "-".into() } else { r.join("+") })).collect();
    s += &format!("{}\n", roles.join("; "));
    for p in &a.pca {
        if let Some(best) = p.separation.first() {
            s += &format!("  PCA {}: top-3 explain {}; {}\n", p.label(), pct(p.explained.iter().sum()), best.verdict());
        }
    }
    let list = |v: &[String]| if v.is_empty() { "none found".to_string() } else { v.join(", ") };
    if a.model.ops.len() > 1 {
        s += &format!("  operator (patching switches + and -): {}\n", list(&f.operator_nodes));
    }
    let signed = crate::task::Format::parse_name(&a.model.format).is_ok_and(|f| f.minus_token().is_some());
    if a.model.ops.contains(&Op::Sub) && signed {
        s += &format!("  sign (patching flips the answer's sign): {}\n", list(&f.sign_nodes));
    }
    s
}

/// Each symbolic formula's agreement with the model per class, the ceiling, and verdicts.
fn symbolic_section(a: &Analysis) -> String {
    let mut s = String::new();
    s += "\n[symbolic] agreement with the model's own answers per class:\n";
    let pcts = |v: &mut dyn Iterator<Item = f64>| v.map(|x| format!("{:.0}%", 100.0 * x)).collect::<Vec<_>>();
    if let Some(first) = a.symbolic.first() {
        s += &class_row("class", first.per_class.iter().map(|c| c.class.to_string()), "");
        s += &class_row("model acc", pcts(&mut first.per_class.iter().map(|c| c.model_accuracy)), "");
    }
    for fc in &a.symbolic {
        let wrong: usize = fc.per_class.iter().map(|c| c.model_wrong).sum();
        let rep: usize = fc.per_class.iter().map(|c| c.wrong_reproduced).sum();
        let note = format!("(reproduces {rep}/{wrong} wrong answers)");
        s += &class_row(&fc.name, pcts(&mut fc.per_class.iter().map(|c| c.agreement)), &note);
    }
    if let Some(c) = &a.ceiling {
        let (wrong, usual) = c.wrong();
        let note = format!("(the best, estimated; reproduces {usual}/{wrong} wrong answers)");
        s += &class_row("any formula", pcts(&mut c.per_class.iter().map(|k| k.ceiling)), &note);
    }
    for fc in a.symbolic.iter().filter(|f| f.name != "exact") {
        s += &formula_verdict(fc);
    }
    if let Some(c) = &a.ceiling {
        s += &ceiling_verdict(c, &a.model.ops);
    }
    s
}

/// The step at which each digit's loss fell through the threshold.
fn dynamics_section(d: &super::dynamics::Dynamics) -> String {
    let mut s = String::new();
    s += &format!("\n[training] digit loss below {} at steps: ", d.threshold);
    let v: Vec<String> = d.digits.iter().map(|x| format!("{} {}", x.digit, x.step.map_or("never".into(), |s| s.to_string()))).collect();
    s += &v.join(", ");
    s += &format!(
        "\n  phase changes {} (spread {} of {} steps); carry cases learned {} base cases\n",
        if d.separated { "separated in time" } else { "not separated" },
        d.spread_steps,
        d.total_steps,
        if d.carry_lags_base { "no earlier than" } else { "sometimes before" }
    );
    s
}

/// [`timing_lines`], indented, as the summary prints them.
fn timing_summary(p: &positions::Positions) -> String {
    indented(&timing_lines(p))
}

/// The "computed one position before it is emitted" lines: how many of the answer tokens that
/// vary are computed only there, which also use other positions (grouped by those positions), and
/// which are constant (so where they are computed cannot be seen).
fn timing_lines(p: &positions::Positions) -> Vec<String> {
    let varying: Vec<&positions::DigitPositions> = p.digits.iter().filter(|d| !d.constant).collect();
    let one: Vec<&str> = varying.iter().filter(|d| d.one_before).map(|d| d.digit.as_str()).collect();
    let mut first = format!(
        "{} of {} answer tokens are computed only at the position one before they are emitted{}",
        one.len(),
        varying.len(),
        if one.len() == varying.len() { " (each digit computed just in time)".to_string() } else { format!(" ({})", one.join(" ")) }
    );
    let constant: Vec<&str> = p.digits.iter().filter(|d| d.constant).map(|d| d.digit.as_str()).collect();
    if !constant.is_empty() {
        first += &format!("; {} never changes (the same on every question)", constant.join(" "));
    }
    first += ".";
    let mut lines = vec![first];
    // Tokens also computed one before, but reading other positions too, grouped by those positions.
    let mut groups: Vec<(Vec<usize>, Vec<&str>)> = Vec::new();
    for d in varying.iter().filter(|d| !d.one_before) {
        if !d.computed_at.contains(&d.predicted_at) {
            lines.push(format!("{} (predicted at {}) depends on positions {}", d.digit, d.predicted_at, list(&d.computed_at)));
            continue;
        }
        let also = d.also_at();
        match groups.iter_mut().find(|g| g.0 == also) {
            Some(g) => g.1.push(&d.digit),
            None => groups.push((also, vec![&d.digit])),
        }
    }
    for (also, digits) in groups {
        lines.push(format!(
            "{} {} computed one position before {} emitted, and also {} what is computed at position{} {}",
            digits.join(" "),
            if digits.len() == 1 { "is" } else { "are" },
            if digits.len() == 1 { "it is" } else { "they are" },
            if digits.len() == 1 { "uses" } else { "use" },
            if also.len() == 1 { "" } else { "s" },
            list(&also)
        ));
    }
    lines
}

fn insertion_summary(ins: &insertion::Insertion) -> String {
    let mut s = format!(
        "\n[insertion] heads inserted from {}{}:\n",
        ins.from,
        if ins.every > 0 { format!(", re-imposed every {} steps", ins.every) } else { String::new() }
    );
    for h in &ins.heads {
        let fails: Vec<String> = h.fail_by_op.iter().map(|(op, f)| format!("{} {:.0}%", op.word(), 100.0 * f)).collect();
        let src = h.source_roles.as_ref().map(|r| format!("; in the source: {}", if r.is_empty() { "-".into() } else { r.join("+") }));
        s += &format!(
            "  {}: {} (ablation fails {}; weights moved {:.0}%{})\n",
            h.head,
            h.verdict,
            fails.join(", "),
            100.0 * h.drift,
            src.unwrap_or_default()
        );
    }
    if let Some(n) = &ins.source_note {
        s += &format!("  note: {n}\n");
    }
    s
}

/// One row of the per-class table: a label, one right-aligned cell per class, and a note.
fn class_row(label: &str, cells: impl IntoIterator<Item = String>, note: &str) -> String {
    let cells: String = cells.into_iter().map(|c| format!("{c:>8}")).collect();
    let note = if note.is_empty() { String::new() } else { format!("   {note}") };
    format!("  {label:<12}{cells}{note}\n")
}

/// What the ceiling says about formulas over sub-task values.
fn ceiling_verdict(c: &symbolic::Ceiling, ops: &[Op]) -> String {
    let values = if ops.contains(&Op::Add) && ops.contains(&Op::Sub) {
        "column sums or differences"
    } else if ops.contains(&Op::Sub) {
        "column differences"
    } else {
        "column sums"
    };
    let (wrong, usual) = c.wrong();
    let mut s = format!(
        "  any formula: asked {} questions with the same {values} as each question above (every sub-task is a function of them)",
        c.siblings
    );
    if wrong == 0 {
        return s + "; the model answers them alike, as a formula over sub-tasks would\n";
    }
    s += &format!(
        "; {usual} of the model's {wrong} wrong answers are its usual answer for their {values} (what the best-agreeing formula over sub-tasks reproduces)"
    );
    if usual * 2 < wrong {
        s += &format!("; the other {} come and go with the digits themselves, which no sub-task formula sees", wrong - usual);
    }
    s + "\n"
}

/// Where a formula explains the model (classes with at least 99% agreement) and where the model
/// goes beyond it.
fn formula_verdict(fc: &symbolic::FormulaCheck) -> String {
    let explained: Vec<String> = fc.per_class.iter().filter(|c| c.agreement >= 0.99).map(|c| c.class.to_string()).collect();
    let beats: Vec<String> =
        fc.per_class.iter().filter(|c| c.model_beats_formula > 0).map(|c| format!("{} {}", c.class, c.model_beats_formula)).collect();
    let mut s = format!(
        "  {}: {}",
        fc.name,
        if explained.is_empty() { "explains no class (99% agreement)".to_string() } else { format!("explains {}", explained.join(", ")) }
    );
    if !beats.is_empty() {
        let total: usize = fc.per_class.iter().map(|c| c.model_beats_formula).sum();
        s += &format!("; the model answers {total} questions right that it gets wrong ({})", beats.join(", "));
    }
    s += "\n";
    for e in &fc.examples {
        s += &format!("    {}: {}{} model {}, formula {}\n", e.class, e.question, e.truth, e.model, e.formula);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::timing_summary;
    use crate::analysis::positions::{DigitPositions, Positions};

    fn digit(name: &str, at: usize, computed_at: &[usize], constant: bool) -> DigitPositions {
        let one_before = computed_at == [at];
        DigitPositions { digit: name.into(), predicted_at: at, computed_at: computed_at.to_vec(), one_before, constant }
    }

    #[test]
    fn timing_summary_counts_varying_tokens_and_groups_shared_extra_positions() {
        // A subtraction model's shape: the sign at '=', A2 always 0, A1 and A0 also reading the
        // sign position, and one token computed elsewhere only.
        let digits = vec![
            digit("sign", 5, &[5], false),
            digit("A2", 6, &[], true),
            digit("A1", 7, &[6, 7], false),
            digit("A0", 8, &[6, 8], false),
            digit("X", 9, &[5], false),
        ];
        let p = Positions { ablations: vec![], useful: vec![5, 6, 7, 8], equals_position: 5, first_useful: Some(5), digits };
        let s = timing_summary(&p);
        assert!(
            s.starts_with("  1 of 4 answer tokens are computed only at the position one before they are emitted (sign); A2 never changes"),
            "{s}"
        );
        assert!(
            s.contains("  A1 A0 are computed one position before they are emitted, and also use what is computed at position 6\n"),
            "{s}"
        );
        assert!(s.contains("  X (predicted at 9) depends on positions 5\n"), "{s}");
    }
}
