//! Principal component analysis for head outputs: the eigen-decomposition (faer's
//! self-adjoint solver) of the covariance of the rows. Head outputs are d_head wide (170 for the
//! paper's model), so the d x d covariance is small and exact components take milliseconds.

use faer::{Mat, Side};
use serde::{Deserialize, Serialize};

/// The top components of a set of rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Pca {
    /// Share of the total variance along each component.
    pub explained: Vec<f64>,
    /// Unit component vectors.
    pub components: Vec<Vec<f64>>,
    /// Each row's coordinates along the components (centred).
    pub projected: Vec<Vec<f64>>,
}

/// The top `k` principal components of `rows` (all of one length), largest variance first.
/// Fewer than `k` when the rows are narrower than `k`; none for fewer than two rows.
pub fn pca(rows: &[Vec<f64>], k: usize) -> Pca {
    let n = rows.len();
    let d = rows.first().map_or(0, Vec::len);
    if n < 2 || d == 0 {
        return Pca { explained: Vec::new(), components: Vec::new(), projected: vec![Vec::new(); n] };
    }
    let mean: Vec<f64> = (0..d).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n as f64).collect();
    let centred = Mat::from_fn(n, d, |i, j| rows[i][j] - mean[j]);
    let cov = centred.transpose() * &centred;
    let total: f64 = (0..d).map(|i| cov[(i, i)]).sum();
    let (values, vectors) = match cov.self_adjoint_eigen(Side::Lower) {
        Ok(e) => (e.S().column_vector().iter().copied().collect::<Vec<f64>>(), e.U().to_owned()),
        // The solver only fails on non-finite input; such rows have no meaningful components.
        Err(_) => return Pca { explained: Vec::new(), components: Vec::new(), projected: vec![Vec::new(); n] },
    };
    // Eigenvalues come in nondecreasing order: take them from the top.
    let top: Vec<usize> = (0..d).rev().take(k).collect();
    let explained = top.iter().map(|&c| if total > 0.0 { values[c].max(0.0) / total } else { 0.0 }).collect();
    let components: Vec<Vec<f64>> = top.iter().map(|&c| (0..d).map(|i| vectors[(i, c)]).collect()).collect();
    let projected = (0..n).map(|i| components.iter().map(|u| (0..d).map(|j| centred[(i, j)] * u[j]).sum()).collect()).collect();
    Pca { explained, components, projected }
}

/// How well labelled points separate into their classes, next to what random labels of the
/// same class sizes would give.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Separation {
    /// Number of classes present.
    pub classes: usize,
    /// Number of points scored.
    #[serde(default)]
    pub points: usize,
    /// Between-class share of the variance (0..1).
    pub between_share: f64,
    /// The share above chance: `(share - e) / (1 - e)` with `e = (classes - 1) / (points - 1)`,
    /// the exact mean share when the labels are randomly permuted. Near 0 for noise, 1 for
    /// perfect clusters; comparable between 2- and 10-class sub-tasks, which the raw share is not.
    #[serde(default)]
    pub adjusted_share: f64,
    /// Nearest-centroid accuracy.
    pub centroid_accuracy: f64,
    /// The largest class's share: the accuracy of always guessing it.
    #[serde(default)]
    pub majority_share: f64,
}

/// Below this share above chance a sub-task's classes are not called separated.
pub const SEPARATED_ABOVE_CHANCE: f64 = 0.1;

impl Separation {
    /// "2 classes, between-class share 0.45 (0.44 above chance), nearest-centroid accuracy 90%
    /// (largest class 55%)"; without the chance figures for an analysis.json written before
    /// they were recorded (`points` 0).
    pub fn describe(&self) -> String {
        let pct = |v: f64| format!("{:.0}%", 100.0 * v);
        if self.points == 0 {
            return format!(
                "{} classes, between-class share {:.2}, nearest-centroid accuracy {}",
                self.classes,
                self.between_share,
                pct(self.centroid_accuracy)
            );
        }
        format!(
            "{} classes, between-class share {:.2} ({:.2} above chance), nearest-centroid accuracy {} (largest class {})",
            self.classes,
            self.between_share,
            self.adjusted_share,
            pct(self.centroid_accuracy),
            pct(self.majority_share)
        )
    }

    /// Whether the classes separate clearly above chance (unknown for old files: judged by the
    /// raw share).
    pub fn separated(&self) -> bool {
        let score = if self.points == 0 { self.between_share } else { self.adjusted_share };
        score >= SEPARATED_ABOVE_CHANCE
    }
}

/// Class separation of labelled points (all of one width) in their own coordinates.
pub fn separation_of(points: &[Vec<f64>], labels: &[usize]) -> Separation {
    let d = points.first().map_or(0, Vec::len);
    let n_cls = labels.iter().max().map_or(0, |m| m + 1);
    let mut sums = vec![vec![0.0; d]; n_cls];
    let mut counts = vec![0usize; n_cls];
    for (p, &l) in points.iter().zip(labels) {
        counts[l] += 1;
        sums[l].iter_mut().zip(p).for_each(|(s, v)| *s += v);
    }
    let cents: Vec<Vec<f64>> = sums.iter().zip(&counts).map(|(s, &c)| s.iter().map(|v| v / c.max(1) as f64).collect()).collect();
    let n = points.len().max(1) as f64;
    let mean: Vec<f64> = (0..d).map(|j| points.iter().map(|p| p[j]).sum::<f64>() / n).collect();
    let dist2 = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
    let total: f64 = points.iter().map(|p| dist2(p, &mean)).sum();
    let between: f64 = cents.iter().zip(&counts).map(|(c, &k)| k as f64 * dist2(c, &mean)).sum();
    let correct = points
        .iter()
        .zip(labels)
        .filter(|(p, &l)| {
            let best = (0..n_cls).filter(|&c| counts[c] > 0).min_by(|&a, &b| dist2(p, &cents[a]).total_cmp(&dist2(p, &cents[b])));
            best == Some(l)
        })
        .count();
    let classes = counts.iter().filter(|&&c| c > 0).count();
    let between_share = if total > 0.0 { between / total } else { 0.0 };
    let chance = if points.len() > 1 { (classes.max(1) - 1) as f64 / (n - 1.0) } else { 0.0 };
    let adjusted_share = if chance < 1.0 { (between_share - chance) / (1.0 - chance) } else { 0.0 };
    Separation {
        classes,
        points: points.len(),
        between_share,
        adjusted_share,
        centroid_accuracy: correct as f64 / n,
        majority_share: counts.iter().max().map_or(0.0, |&m| m as f64 / n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_dominant_axis_and_perfect_clusters() {
        // Points on a line along (1, 1, 0) plus small noise along z: the first component is
        // (1, 1, 0)/sqrt 2 with nearly all the variance.
        let rows: Vec<Vec<f64>> = (0..100)
            .map(|i| {
                let t = (i % 10) as f64;
                vec![t, t, ((i * 37) % 5) as f64 * 0.01]
            })
            .collect();
        let p = pca(&rows, 2);
        assert!(p.explained[0] > 0.999, "{:?}", p.explained);
        assert!((p.components[0][0].abs() - 0.5f64.sqrt()).abs() < 1e-6);
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i % 10 >= 5)).collect();
        let s = separation_of(&p.projected, &labels);
        assert_eq!((s.classes, s.points), (2, 100));
        assert_eq!(s.centroid_accuracy, 1.0);
        assert_eq!(s.majority_share, 0.5);
        assert!(s.between_share > 0.7 && s.between_share < 1.0, "{s:?}");
        assert!(s.adjusted_share > 0.7 && s.adjusted_share < s.between_share, "{s:?}");
    }

    #[test]
    fn adjusted_share_is_the_share_above_its_mean_under_permuted_labels() {
        // Brute force: the mean between-class share over every relabelling that keeps the class
        // sizes (all 3-way splits of 7 points into sizes 3, 2, 2) is exactly (K - 1) / (n - 1),
        // so the adjusted share averages to zero over them.
        let points: Vec<Vec<f64>> = [0.3, 1.7, -2.0, 0.9, 4.1, -0.5, 2.2].iter().map(|&x| vec![x, x * x * 0.1]).collect();
        let mut shares = Vec::new();
        for code in 0..3usize.pow(7) {
            let labels: Vec<usize> = (0..7).map(|i| code / 3usize.pow(i) % 3).collect();
            let size = |c: usize| labels.iter().filter(|&&l| l == c).count();
            if (size(0), size(1), size(2)) == (3, 2, 2) {
                shares.push(separation_of(&points, &labels));
            }
        }
        let mean_share = shares.iter().map(|s| s.between_share).sum::<f64>() / shares.len() as f64;
        let mean_adjusted = shares.iter().map(|s| s.adjusted_share).sum::<f64>() / shares.len() as f64;
        assert_eq!(shares.len(), 210);
        assert!((mean_share - 2.0 / 6.0).abs() < 1e-12, "{mean_share}");
        assert!(mean_adjusted.abs() < 1e-12, "{mean_adjusted}");
    }

    #[test]
    fn components_are_orthonormal_eigenvectors_of_the_covariance_in_order_of_variance() {
        // Correlated 4-D rows from a fixed recurrence; checked against the definition: each
        // component u satisfies C u = lambda u for the covariance C, the projections' variance is
        // lambda, and the shares fall.
        let rows: Vec<Vec<f64>> = (0..200)
            .map(|i| {
                let a = ((i * 7919) % 101) as f64 / 101.0;
                let b = ((i * 104729) % 37) as f64 / 37.0;
                vec![a + b, 2.0 * a - b, 0.3 * b, a * 0.1 + ((i * 13) % 7) as f64 * 0.05]
            })
            .collect();
        let p = pca(&rows, 3);
        let (n, d) = (rows.len(), 4);
        let mean: Vec<f64> = (0..d).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n as f64).collect();
        let cov = |i: usize, j: usize| rows.iter().map(|r| (r[i] - mean[i]) * (r[j] - mean[j])).sum::<f64>();
        let total: f64 = (0..d).map(|i| cov(i, i)).sum();
        assert_eq!(p.components.len(), 3);
        assert!(p.explained.windows(2).all(|w| w[0] >= w[1]), "{:?}", p.explained);
        for (c, u) in p.components.iter().enumerate() {
            let lambda = p.explained[c] * total;
            for i in 0..d {
                let cu: f64 = (0..d).map(|j| cov(i, j) * u[j]).sum();
                assert!((cu - lambda * u[i]).abs() < 1e-9 * total, "component {c} row {i}: {cu} vs {}", lambda * u[i]);
            }
            let var: f64 = p.projected.iter().map(|r| r[c] * r[c]).sum();
            assert!((var - lambda).abs() < 1e-9 * total);
            for (e, v) in p.components.iter().enumerate() {
                let dot: f64 = u.iter().zip(v).map(|(a, b)| a * b).sum();
                assert!((dot - f64::from(u8::from(c == e))).abs() < 1e-9);
            }
        }
    }
}
