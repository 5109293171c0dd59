//! Section 5's figures computed from the model itself: the staircase (mean attention from each
//! answer-predicting position to each question token, per head) and the full attention pattern
//! of a few example questions, one per complexity class, per head; and from the analysis, what
//! each useful head node attends to and each head's staircase verdict.

use super::page::{Block, Figure, Picker, Section};
use super::page::{Cell, Table};
use super::svg::{heatmap, ChartSpec, HeatmapOpts};
use crate::analysis::naming::head_name;
use crate::analysis::Analysis;
use crate::model::{forward, Cache, Span, Workspace};
use crate::task::{curated, random_questions, Format, Op, Question};
use crate::task_model::TaskModel;

/// Random questions averaged over in the staircase maps.
pub const STAIRCASE_QUESTIONS: usize = 256;
/// Seed of those questions.
pub const STAIRCASE_SEED: u64 = 1234;

/// Name of position `pos` (`D2`, `+`, `D'2`, `=`, `sign`, `A3`) in a question of `op`, as the
/// paper labels tokens.
pub fn position_name(format: Format, op: Op, n: usize, pos: usize) -> String {
    let start = format.answer_start(n);
    match pos {
        p if p < n => format!("D{}", n - 1 - p),
        p if p == n => format.op_token(op).map_or("op", |t| format.token_name(t)).into(),
        p if p <= 2 * n => format!("D'{}", 2 * n - p),
        p if p == 2 * n + 1 => "=".into(),
        p if format == Format::Paper2Sign && p == start => "sign".into(),
        p => format!("A{}", start + format.n_answer(n) - 1 - p),
    }
}

/// Attention patterns of every layer for `questions` (with their answers), full span:
/// `out[layer]` is `[batch, head, q, k]` flattened.
pub fn patterns(model: &TaskModel, questions: &[Question]) -> Vec<Vec<f32>> {
    let c = &model.params.config;
    let mut tokens = vec![0u32; questions.len() * c.n_ctx];
    for (q, row) in questions.iter().zip(tokens.chunks_exact_mut(c.n_ctx)) {
        q.write_tokens(model.format, &mut row[..model.n_ctx()]);
    }
    let names: Vec<String> = (0..c.n_layers).map(|l| format!("blocks.{l}.attn.hook_pattern")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut cache = Cache::only(&refs);
    let mut ws = Workspace::new(c, questions.len(), Span::full(c.n_ctx));
    forward(&model.params, &tokens, c.n_ctx, &mut ws, &mut cache);
    names.iter().map(|n| cache.get(n).map(|t| t.data.clone()).unwrap_or_default()).collect()
}

fn opts() -> HeatmapOpts {
    HeatmapOpts { min: Some(0.0), max: Some(1.0), diverging: false, cell_text: false, value_fmt_pct: true }
}

/// The staircase map of every head: rows are answer-predicting positions, columns the question
/// tokens, values the mean attention weight over [`STAIRCASE_QUESTIONS`] random questions.
pub fn staircase_figures(model: &TaskModel) -> Vec<Figure> {
    let c = &model.params.config;
    let (n, t, h) = (model.n_digits, c.n_ctx, c.n_heads);
    let qs = match random_questions(n, model.ops[0], STAIRCASE_QUESTIONS, STAIRCASE_SEED) {
        Ok(q) => q,
        Err(_) => return Vec::new(),
    };
    let pats = patterns(model, &qs);
    let first = model.answer_start() - 1;
    let rows: Vec<usize> = (first..first + model.n_answer()).collect();
    let cols: Vec<usize> = (0..model.answer_start()).collect();
    let y: Vec<String> = rows.iter().map(|&p| format!("P{p} → {}", position_name(model.format, model.ops[0], n, p + 1))).collect();
    let x: Vec<String> = cols.iter().map(|&p| position_name(model.format, model.ops[0], n, p)).collect();
    let mut out = Vec::new();
    for (l, pat) in pats.iter().enumerate() {
        for head in 0..h {
            let at = |b: usize, q: usize, k: usize| pat[((b * h + head) * t + q) * t + k] as f64;
            let values: Vec<Vec<f64>> = rows
                .iter()
                .map(|&q| cols.iter().map(|&k| (0..qs.len()).map(|b| at(b, q, k)).sum::<f64>() / qs.len() as f64).collect())
                .collect();
            let spec =
                ChartSpec::new(&format!("Staircase, L{l}H{head}"), "source token", "query position → token it predicts", 520.0, 300.0);
            let caption = format!(
                "Mean attention weight of layer {l} head {head} from each answer-predicting position (rows; the token predicted there \
                 after the arrow) to each question token (columns), over {} random {}-digit questions (seed {STAIRCASE_SEED}); \
                 hover a cell for its value. A staircase is a diagonal walking from high to low digit pairs.",
                qs.len(),
                n
            );
            out.push(Figure::new(&format!("staircase_L{l}H{head}"), heatmap(&spec, &x, &y, &values, &opts()), caption));
        }
    }
    out
}

/// Labels of every position of `q`: position name and token (`D1 3`, `+`, `A0 7`).
fn token_labels(model: &TaskModel, q: &Question) -> Vec<String> {
    let toks = q.tokens(model.format).unwrap_or_default();
    (0..model.n_ctx())
        .map(|p| {
            let name = position_name(model.format, q.op, model.n_digits, p);
            let tok = toks.get(p).map_or("?", |&t| model.format.token_name(t));
            if name == tok {
                tok.to_string()
            } else {
                format!("{name} {tok}")
            }
        })
        .collect()
}

/// One figure per head of the full causal attention pattern of `q` (rows: query positions,
/// columns: key positions; cells above the diagonal are masked and grey).
pub fn question_figures(model: &TaskModel, q: &Question, tag: &str) -> Vec<Figure> {
    let c = &model.params.config;
    let (t, h, ctx) = (c.n_ctx, c.n_heads, model.n_ctx());
    let labels = token_labels(model, q);
    let pats = patterns(model, std::slice::from_ref(q));
    let full = format!("{}{}", q.text(), q.answer_tokens(model.format).iter().map(|&x| model.format.token_name(x)).collect::<String>());
    let mut out = Vec::new();
    for (l, pat) in pats.iter().enumerate() {
        for head in 0..h {
            let values: Vec<Vec<f64>> = (0..ctx)
                .map(|qp| (0..ctx).map(|k| if k > qp { f64::NAN } else { pat[(head * t + qp) * t + k] as f64 }).collect())
                .collect();
            let spec = ChartSpec::new(&format!("{full}: L{l}H{head}"), "key (attended) token", "query token", 560.0, 460.0);
            let caption = format!(
                "Attention pattern of layer {l} head {head} on the {tag} question {full}, one forward pass with the true answer as input: \
                 row = query position, column = attended position, cell = attention weight (hover for its value; grey = causal mask)."
            );
            let name = format!("pattern_{}_L{l}H{head}", q.text().replace(['+', '-', '='], "_"));
            out.push(Figure::new(&name, heatmap(&spec, &labels, &labels, &values, &opts()), caption));
        }
    }
    out
}

/// One example question per complexity class of the model's first operation: the first
/// curated question of each class.
pub fn example_questions(model: &TaskModel) -> Vec<(String, Question)> {
    let sets = curated(model.n_digits, model.ops[0]).unwrap_or_default();
    sets.into_iter().filter_map(|(class, qs)| qs.first().map(|q| (class.to_string(), *q))).collect()
}

/// The attention blocks computed from the model: staircase maps and the question picker.
pub fn blocks(model: &TaskModel) -> Vec<Block> {
    let mut out: Vec<Block> = staircase_figures(model).into_iter().map(Block::Figure).collect();
    let options: Vec<(String, Vec<Figure>)> = example_questions(model)
        .iter()
        .take(super::html::MAX_PICKER_OPTIONS)
        .map(|(class, q)| (format!("{} ({class})", q.text()), question_figures(model, q, class)))
        .collect();
    if !options.is_empty() {
        out.push(Block::Picker(Picker {
            id: "example-question".into(),
            prompt: "Example question (one per complexity class); pick one to see each head's full attention pattern:".into(),
            options,
        }));
    }
    out
}

/// A section holding only a note, for when there is no model to run.
pub fn missing_model(s: &mut Section) {
    s.push(Block::Note("No model.safetensors in this run folder, so no attention patterns: train with `arithlens run`.".into()));
}

/// The analysis's part of the section: what each useful head node attends to, and each head's
/// staircase verdict (nothing when the analysis found no useful head).
pub fn analysis_blocks(a: &Analysis) -> Vec<Block> {
    let rows: Vec<Vec<Cell>> = a
        .attention
        .iter()
        .map(|n| {
            let top: Vec<String> = n.top.iter().map(|s| format!("{} {:.0}%", s.token, 100.0 * s.weight)).collect();
            vec![n.name.as_str().into(), n.summary.as_str().into(), top.join(", ").into()]
        })
        .collect();
    if rows.is_empty() {
        return Vec::new();
    }
    let caption =
        "Per useful head node, the source tokens it attends to (mean attention weight over the analysis sample, sources of at least 5%).";
    let mut out = vec![Block::Table(Table {
        head: ["node", "attends to", "sources (weight)"].map(String::from).to_vec(),
        rows,
        caption: caption.into(),
    })];
    let stairs: Vec<String> = a
        .staircases
        .iter()
        .map(|s| {
            let kind = if s.is_staircase { "a staircase" } else { "no staircase" };
            let offset = s.typical_offset.map_or(String::new(), |o| o.to_string());
            format!("{}: {kind}, typical look-back {offset} column(s)", head_name(s.layer, s.head))
        })
        .collect();
    if !stairs.is_empty() {
        out.push(Block::List(stairs));
    }
    out
}
