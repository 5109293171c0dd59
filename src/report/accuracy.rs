//! Section 3, accuracy: per complexity class (bars, random and stratified sets) and the
//! highest-loss questions as a table with the wrong answer digits highlighted.

use super::page::{Block, Cell, Figure, Section, Table};
use super::svg::{bar_chart, ChartSpec};
use crate::eval::accuracy::OpReport;
use crate::eval::stats::{ClassRow, HardQuestion};
use crate::eval::EvalReport;

fn op_name(r: &OpReport) -> &'static str {
    match r.op {
        crate::task::Op::Add => "addition",
        crate::task::Op::Sub => "subtraction",
    }
}

/// Class names in the stratified table's order (every class of the operation), without "all".
fn classes(r: &OpReport) -> Vec<String> {
    r.stratified.iter().map(|c| c.class.clone()).filter(|c| c != "all").collect()
}

/// Values of `f` per class from `rows`, NaN for a class the set did not contain.
fn per_class(rows: &[ClassRow], classes: &[String], f: impl Fn(&ClassRow) -> f64) -> Vec<f64> {
    classes.iter().map(|c| rows.iter().find(|r| &r.class == c).map_or(f64::NAN, &f)).collect()
}

/// Bars of `f` per class, random and stratified sets side by side.
fn bars(r: &OpReport, spec: &ChartSpec, f: impl Fn(&ClassRow) -> f64 + Copy) -> String {
    let cats = classes(r);
    let random = if r.exhaustive { "every question" } else { "random questions" };
    let groups = vec![(random.to_string(), per_class(&r.random, &cats, f)), ("stratified".to_string(), per_class(&r.stratified, &cats, f))];
    bar_chart(spec, &cats, &groups)
}

fn class_figures(r: &OpReport) -> Vec<Block> {
    let op = op_name(r);
    let sample = if r.exhaustive { format!("all {} questions", r.questions) } else { format!("{} random questions", r.questions) };
    let n_strat = r.stratified.first().map_or(0, |c| c.n);
    let how = format!(
        "measured on {sample} and on about {n_strat} stratified questions per class (classes S0 no carry, S1 carry, S2.. a carry cascading \
         through 1.. sum-9 columns; M/N for subtraction); a question counts as correct when every answer token is the teacher-forced argmax"
    );
    let spec = |title: String, y_label| ChartSpec::new(&title, "complexity class", y_label, 640.0, 340.0);
    let acc_spec = spec(format!("Accuracy by class ({op})"), "questions answered correctly (%)").percent();
    let acc = bars(r, &acc_spec, |c| 100.0 * c.accuracy);
    let loss_spec = ChartSpec { log_y: true, ..spec(format!("Mean loss by class ({op})"), "mean answer-token loss (log scale)") };
    let loss = bars(r, &loss_spec, |c| c.mean_loss);
    vec![
        Block::Figure(Figure::new(&format!("accuracy_{op}"), acc, format!("Share of {op} questions answered entirely correctly per class, {how}."))),
        Block::Figure(Figure::new(
            &format!("class_loss_{op}"),
            loss,
            format!("Mean per-token cross-entropy of the answer per class, log scale, {how}; shows where the remaining error sits even when accuracy rounds to 100%."),
        )),
    ]
}

/// Character indices where `predicted` differs from `truth`.
pub fn wrong_chars(truth: &str, predicted: &str) -> Vec<usize> {
    let t: Vec<char> = truth.chars().collect();
    predicted.chars().enumerate().filter(|(i, c)| t.get(*i) != Some(c)).map(|(i, _)| i).collect()
}

fn hard_table(r: &OpReport) -> Table {
    let row = |h: &HardQuestion| -> Vec<Cell> {
        vec![
            h.question.as_str().into(),
            h.class.as_str().into(),
            format!("{:.3e}", h.loss).into(),
            h.truth.as_str().into(),
            Cell { text: h.predicted.clone(), marked: wrong_chars(&h.truth, &h.predicted) },
            if h.wrong_digits.is_empty() { "-".into() } else { h.wrong_digits.join(" ").into() },
        ]
    };
    Table {
        head: ["question", "class", "loss", "true answer", "model's answer", "wrong digits"].map(String::from).to_vec(),
        rows: r.top_loss.iter().map(row).collect(),
        caption: format!(
            "The {} highest-loss {} questions over the random and stratified sets (loss = mean cross-entropy of the answer tokens, \
             teacher-forced); wrong digits of the model's answer are highlighted.",
            r.top_loss.len(),
            op_name(r)
        ),
    }
}

/// The accuracy section; a note when eval.json is missing.
pub fn section(eval: Option<&EvalReport>) -> Section {
    let mut s = Section::new("accuracy", "Accuracy by complexity class");
    let Some(eval) = eval else {
        s.push(Block::Note("No eval.json in this run folder: run `arithlens eval RUN_DIR` (or `arithlens run`).".into()));
        return s;
    };
    s.push(Block::List(eval.summary.clone()));
    for r in &eval.ops {
        s.blocks.extend(class_figures(r));
        s.push(Block::Table(hard_table(r)));
        s.blocks.extend(r.failure_families.iter().flat_map(|f| super::families::blocks(r.op, f)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_characters_are_found() {
        assert_eq!(wrong_chars("001000", "000900"), vec![2, 3]);
        assert_eq!(wrong_chars("12", "12"), Vec::<usize>::new());
    }
}
