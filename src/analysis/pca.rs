//! Principal component analysis for head outputs: the eigen-decomposition (faer's
//! self-adjoint solver) of the covariance of the rows. Head outputs are d_head wide (170 for the
//! paper's model), so the d x d covariance is small and exact components take milliseconds.

use faer::{Mat, Side};

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

/// Class separation of labelled points: (between-class share of the variance, nearest-centroid
/// accuracy, number of classes present).
pub fn separation_of(points: &[Vec<f64>], labels: &[usize]) -> (f64, f64, usize) {
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
    let share = if total > 0.0 { between / total } else { 0.0 };
    (share, correct as f64 / n, counts.iter().filter(|&&c| c > 0).count())
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
        let (share, acc, k) = separation_of(&p.projected, &labels);
        assert_eq!(k, 2);
        assert_eq!(acc, 1.0);
        assert!(share > 0.7 && share < 1.0, "{share}");
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
