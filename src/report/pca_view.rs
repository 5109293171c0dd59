//! Section 7, PCA of useful heads: the analysis's explained variance and best separating sub-task
//! per useful head node, and scatter plots of each node's output (`attn.hook_z` of that head at
//! that position) over random questions, projected on its top two principal components and
//! coloured by the classes of the sub-task that separates it best (as analysis.json names it).

use super::page::Block;
use super::page::Figure;
use super::svg::bar_chart;
use super::svg::{scatter, ChartSpec, ScatterPoint};
use crate::analysis::pca::pca;
use crate::analysis::subtasks::PcaSeparation;
use crate::analysis::subtasks::SubTask;
use crate::analysis::Analysis;
use crate::model::{forward, Cache, Span, Workspace};
use crate::task::{random_questions, Question};
use crate::task_model::TaskModel;

/// Questions projected per node.
pub const PCA_QUESTIONS: usize = 400;
/// Seed of those questions.
pub const PCA_SEED: u64 = 4321;

/// `(pos, layer, head)` of a head node name `P13L0H1` ([`crate::analysis::naming::Node::parse`];
/// `None` for an MLP node).
pub fn parse_head(name: &str) -> Option<(usize, usize, usize)> {
    let n = crate::analysis::naming::Node::parse(name)?;
    Some((n.pos, n.layer, n.head?))
}

/// The head's output at `pos` for each question: `[question][d_head]`.
fn head_outputs(model: &TaskModel, qs: &[Question], pos: usize, layer: usize, head: usize) -> Vec<Vec<f64>> {
    let c = &model.params.config;
    let mut tokens = vec![0u32; qs.len() * c.n_ctx];
    for (q, row) in qs.iter().zip(tokens.chunks_exact_mut(c.n_ctx)) {
        q.write_tokens(model.format, &mut row[..model.n_ctx()]);
    }
    let name = format!("blocks.{layer}.attn.hook_z");
    let mut cache = Cache::only(&[name.as_str()]);
    forward(&model.params, &tokens, c.n_ctx, &mut Workspace::new(c, qs.len(), Span::full(c.n_ctx)), &mut cache);
    let Some(z) = cache.get(&name) else { return Vec::new() };
    let (t, h, dh) = (z.shape[1], c.n_heads, c.d_head);
    (0..qs.len()).map(|b| z.data[((b * t + pos) * h + head) * dh..][..dh].iter().map(|&v| v as f64).collect()).collect()
}

/// The scatter figure of one head node coloured by `subtask`'s classes; `None` when the node
/// name or sub-task is not understood.
pub fn figure(model: &TaskModel, node: &str, subtask: &str) -> Option<Figure> {
    let (pos, layer, head) = parse_head(node)?;
    let c = &model.params.config;
    if pos >= model.n_ctx() || layer >= c.n_layers || head >= c.n_heads {
        return None;
    }
    let task = SubTask::parse(subtask).filter(|t| t.col < model.n_digits && model.ops.contains(&t.op))?;
    // Questions the sub-task is defined on: of its operation, and for subtraction of its sign.
    let qs: Vec<Question> = random_questions(model.n_digits, task.op, 4 * PCA_QUESTIONS, PCA_SEED)
        .ok()?
        .into_iter()
        .filter(|q| task.applies_to(q))
        .take(PCA_QUESTIONS)
        .collect();
    if qs.len() < 2 {
        return None;
    }
    let names = task.class_names();
    let p = pca(&head_outputs(model, &qs, pos, layer, head), 2);
    let share = |c: usize| p.explained.get(c).copied().unwrap_or(0.0);
    let shares = [share(0), share(1)];
    let coord = |r: &[f64], c: usize| r.get(c).copied().unwrap_or(0.0);
    let points: Vec<ScatterPoint> = p
        .projected
        .iter()
        .zip(&qs)
        .map(|(r, q)| ScatterPoint {
            x: coord(r, 0),
            y: coord(r, 1),
            class: task.class(q),
            label: q.full_text(model.format).unwrap_or_else(|_| q.text()),
        })
        .collect();
    let spec = ChartSpec::new(
        &format!("{node} coloured by {subtask}"),
        &format!("PC1 ({:.0}% of variance)", 100.0 * shares[0]),
        &format!("PC2 ({:.0}%)", 100.0 * shares[1]),
        560.0,
        380.0,
    );
    let caption = format!(
        "Output of head {head} of layer {layer} at position {pos} (attn.hook_z, d_head values) for {} random questions the sub-task applies to (seed {PCA_SEED}), \
         projected on its top two principal components (together {:.0}% of the variance) and coloured by the class of {subtask}, the sub-task \
         that separates it best according to the analysis; hover a point for its question and answer.",
        qs.len(),
        100.0 * (shares[0] + shares[1])
    );
    Some(Figure::new(&format!("pca_{node}_{subtask}"), scatter(&spec, &points, &names), caption))
}

/// Scatter plots drawn at most (the nodes listed first).
pub const MAX_FIGURES: usize = 12;

/// Section 7: explained variance per useful head node (bars), each node's best separating
/// sub-task, and with the model its scatter plots.
pub fn blocks(a: &Analysis, model: Option<&TaskModel>) -> Vec<Block> {
    let mut out = summary(a);
    if let Some(m) = model {
        let targets = a.pca.iter().filter_map(|n| n.separation.first().map(|s| (&n.name, &s.subtask)));
        out.extend(targets.filter_map(|(node, task)| figure(m, node, task)).take(MAX_FIGURES).map(Block::Figure));
    }
    out
}

/// Explained variance and class separation per useful head node (nothing without PCA results).
fn summary(a: &Analysis) -> Vec<Block> {
    if a.pca.is_empty() {
        return Vec::new();
    }
    let k = a.pca.iter().map(|n| n.explained.len()).max().unwrap_or(0);
    let cats: Vec<String> = (1..=k).map(|i| format!("PC{i}")).collect();
    let groups: Vec<(String, Vec<f64>)> = a.pca.iter().map(|n| (n.label(), n.explained.iter().map(|v| 100.0 * v).collect())).collect();
    let svg = bar_chart(
        &ChartSpec::new("Explained variance of head outputs", "principal component", "variance explained (%)", 760.0, 340.0).percent(),
        &cats,
        &groups,
    );
    let caption = "Share of the variance of each useful head node's output (attn.hook_z at its position, over the analysis sample) explained by each top principal component.";
    let lines = a
        .pca
        .iter()
        .map(|n| {
            let best = n.separation.first().map_or("no candidate sub-task".into(), PcaSeparation::verdict);
            format!("{}: {best}", n.label())
        })
        .collect();
    vec![Block::Figure(Figure::new("pca_explained", svg, caption)), Block::List(lines)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_node_names_parse() {
        assert_eq!(parse_head("P13L0H1"), Some((13, 0, 1)));
        assert_eq!(parse_head("P13L0M"), None);
    }

    #[test]
    fn pca_figures_use_the_questions_their_sub_task_is_defined_on() {
        use crate::task_model::TaskModel;
        use crate::train::{TrainConfig, Trainer};
        // An untrained mixed model: the projection needs only a forward pass.
        let m = TaskModel::from_file(Trainer::new(TrainConfig::preset("tiny_mix").unwrap()).unwrap().model_file(), "test").unwrap();
        let node = format!("P{}L0H0", m.answer_start());
        for (task, sign) in [("NB_1", "-"), ("MB_1", "+"), ("MC_0", "+")] {
            let f = figure(&m, &node, task).unwrap_or_else(|| panic!("no figure for {task}"));
            let opts = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
            let doc = roxmltree::Document::parse_with_options(&f.svg, opts).unwrap();
            // Every point's hover text is its question; a subtraction sub-task of negative answers
            // shows only questions with negative answers, an addition one only additions.
            let labels: Vec<String> =
                doc.descendants().filter(|n| n.has_tag_name("title")).filter_map(|n| n.text()).map(String::from).collect();
            let questions: Vec<&String> = labels.iter().filter(|t| t.contains('=')).collect();
            assert!(questions.len() > 100, "{task}: {} points", questions.len());
            let op = if task.starts_with("MC") { '+' } else { '-' };
            assert!(questions.iter().all(|q| q.contains(op)), "{task}: {questions:?}");
            let answers: Vec<char> = questions.iter().map(|q| q.split('=').nth(1).and_then(|a| a.chars().next()).unwrap_or(' ')).collect();
            assert!(answers.iter().all(|&c| c.to_string() == sign), "{task}: {questions:?}");
            assert!(f.caption.contains("random questions the sub-task applies to"), "{}", f.caption);
        }
        assert!(figure(&m, &node, "XX_1").is_none() && figure(&m, &node, "MC_9").is_none());
    }
}
