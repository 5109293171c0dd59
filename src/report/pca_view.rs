//! Section 7's scatter plots: each useful head node's output (`attn.hook_z` of that head at that
//! position) over random questions, projected on its top two principal components and coloured
//! by the classes of the sub-task that separates it best (as analysis.json names it).

use super::page::Figure;
use super::svg::{scatter, ChartSpec, ScatterPoint};
use crate::model::{forward, Cache, Span, Workspace};
use crate::task::{random_questions, Op, Question};
use crate::task_model::TaskModel;

/// Questions projected per node.
pub const PCA_QUESTIONS: usize = 400;
/// Seed of those questions.
pub const PCA_SEED: u64 = 4321;

/// `(pos, layer, head)` of a head node name `P13L0H1`.
pub fn parse_head(name: &str) -> Option<(usize, usize, usize)> {
    let (pos, rest) = name.strip_prefix('P')?.split_once('L')?;
    let (layer, head) = rest.split_once('H')?;
    Some((pos.parse().ok()?, layer.parse().ok()?, head.parse().ok()?))
}

/// Class names and the class of `q` under sub-task `name` (`BA_3`, `MC_2`, `MS_1`, `TriCase_0`,
/// subtraction `MD`, `MB`, `MZ`, `MT`); `None` for an unknown sub-task.
pub fn subtask_class(name: &str, q: &Question) -> Option<(Vec<String>, usize)> {
    let (kind, col) = name.split_once('_')?;
    let k: usize = col.parse().ok()?;
    if k >= q.n_digits {
        return None;
    }
    let (x, y) = (q.digit_x(k) as i32, q.digit_y(k) as i32);
    let named = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let digits = || (0..10).map(|d| d.to_string()).collect::<Vec<_>>();
    Some(match (q.op, kind) {
        (Op::Add, "BA") => (digits(), ((x + y) % 10) as usize),
        (Op::Add, "MC") => (named(&["no carry", "carry"]), (x + y >= 10) as usize),
        (Op::Add, "MS") => (named(&["sum != 9", "sum = 9"]), (x + y == 9) as usize),
        (Op::Add, "TriCase") => (named(&["sum <= 8", "sum = 9", "sum >= 10"]), if x + y >= 10 { 2 } else { (x + y == 9) as usize }),
        (Op::Sub, "MD") => (digits(), (x - y).rem_euclid(10) as usize),
        (Op::Sub, "MB") => (named(&["no borrow", "borrow"]), (x < y) as usize),
        (Op::Sub, "MZ") => (named(&["digits differ", "digits equal"]), (x == y) as usize),
        (Op::Sub, "MT") => (named(&["x > y", "x = y", "x < y"]), if x < y { 2 } else { (x == y) as usize }),
        _ => return None,
    })
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

/// Top-2 principal components of `rows`: the projections and each component's share of the variance.
pub fn pca2(rows: &[Vec<f64>]) -> (Vec<(f64, f64)>, [f64; 2]) {
    let (n, d) = (rows.len(), rows.first().map_or(0, Vec::len));
    if n < 2 || d == 0 {
        return (Vec::new(), [0.0; 2]);
    }
    let mean: Vec<f64> = (0..d).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n as f64).collect();
    let x: Vec<Vec<f64>> = rows.iter().map(|r| r.iter().zip(&mean).map(|(a, m)| a - m).collect()).collect();
    let mut cov = vec![vec![0.0; d]; d];
    for r in &x {
        for i in 0..d {
            for j in 0..d {
                cov[i][j] += r[i] * r[j] / (n - 1) as f64;
            }
        }
    }
    let trace: f64 = (0..d).map(|i| cov[i][i]).sum::<f64>().max(f64::MIN_POSITIVE);
    let mut comps = Vec::new();
    let mut shares = [0.0; 2];
    for share in &mut shares {
        let (v, lambda) = power_iteration(&cov);
        *share = lambda / trace;
        for i in 0..d {
            for j in 0..d {
                cov[i][j] -= lambda * v[i] * v[j];
            }
        }
        comps.push(v);
    }
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    (x.iter().map(|r| (dot(r, &comps[0]), dot(r, &comps[1]))).collect(), shares)
}

/// The leading eigenvector and eigenvalue of a symmetric matrix.
fn power_iteration(m: &[Vec<f64>]) -> (Vec<f64>, f64) {
    let d = m.len();
    let mut v: Vec<f64> = (0..d).map(|i| 1.0 + (i as f64 * 0.37).sin()).collect();
    let mut lambda = 0.0;
    for _ in 0..300 {
        let w: Vec<f64> = m.iter().map(|row| row.iter().zip(&v).map(|(a, b)| a * b).sum()).collect();
        let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm == 0.0 {
            break;
        }
        lambda = norm;
        v = w.iter().map(|a| a / norm).collect();
    }
    (v, lambda)
}

/// The scatter figure of one head node coloured by `subtask`'s classes; `None` when the node
/// name or sub-task is not understood.
pub fn figure(model: &TaskModel, node: &str, subtask: &str) -> Option<Figure> {
    let (pos, layer, head) = parse_head(node)?;
    let c = &model.params.config;
    if pos >= model.n_ctx() || layer >= c.n_layers || head >= c.n_heads {
        return None;
    }
    let qs = random_questions(model.n_digits, model.ops[0], PCA_QUESTIONS, PCA_SEED).ok()?;
    let (names, _) = subtask_class(subtask, &qs[0])?;
    let (proj, shares) = pca2(&head_outputs(model, &qs, pos, layer, head));
    let points: Vec<ScatterPoint> = proj
        .iter()
        .zip(&qs)
        .map(|(&(x, y), q)| ScatterPoint { x, y, class: subtask_class(subtask, q).map_or(0, |c| c.1), label: q.text() })
        .collect();
    let spec = ChartSpec {
        title: format!("{node} coloured by {subtask}"),
        x_label: format!("PC1 ({:.0}% of variance)", 100.0 * shares[0]),
        y_label: format!("PC2 ({:.0}%)", 100.0 * shares[1]),
        log_y: false,
        width: 560.0,
        height: 380.0,
    };
    let caption = format!(
        "Output of head {head} of layer {layer} at position {pos} (attn.hook_z, d_head values) for {PCA_QUESTIONS} random questions (seed {PCA_SEED}), \
         projected on its top two principal components (together {:.0}% of the variance) and coloured by the class of {subtask}, the sub-task \
         that separates it best according to the analysis; hover a point for its question.",
        100.0 * (shares[0] + shares[1])
    );
    Some(Figure::new(&format!("pca_{node}"), scatter(&spec, &points, &names), caption))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_dominant_direction() {
        let rows: Vec<Vec<f64>> = (0..50).map(|i| vec![i as f64, 2.0 * i as f64 + (i % 2) as f64 * 0.1, 0.0]).collect();
        let (proj, shares) = pca2(&rows);
        assert_eq!(proj.len(), 50);
        assert!(shares[0] > 0.99 && shares[1] < 0.01, "{shares:?}");
        assert_eq!(parse_head("P13L0H1"), Some((13, 0, 1)));
        assert_eq!(parse_head("P13L0M"), None);
    }
}
