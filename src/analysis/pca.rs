//! Principal component analysis for head outputs, by power iteration with deflation on the
//! covariance matrix. Only the top few components of a d_head-sized covariance (170 for the
//! paper's model) are needed, which this does in milliseconds; a general eigen-solver crate
//! (faer) would add far more compile time than the problem needs.

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

/// The top `k` principal components of `rows` (all of one length).
pub fn pca(rows: &[Vec<f64>], k: usize) -> Pca {
    let n = rows.len();
    let d = rows.first().map_or(0, Vec::len);
    let mut mean = vec![0.0; d];
    rows.iter().for_each(|r| mean.iter_mut().zip(r).for_each(|(m, v)| *m += v / n.max(1) as f64));
    let centred: Vec<Vec<f64>> = rows.iter().map(|r| r.iter().zip(&mean).map(|(v, m)| v - m).collect()).collect();
    let mut cov = vec![vec![0.0; d]; d];
    for r in &centred {
        for i in 0..d {
            if r[i] == 0.0 {
                continue;
            }
            for j in 0..d {
                cov[i][j] += r[i] * r[j];
            }
        }
    }
    let total: f64 = (0..d).map(|i| cov[i][i]).sum();
    let mut components = Vec::new();
    let mut explained = Vec::new();
    for c in 0..k.min(d) {
        let mut v: Vec<f64> = (0..d).map(|i| 1.0 + ((i * 7 + c * 13) % 11) as f64 / 10.0).collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let mut w: Vec<f64> = (0..d).map(|i| cov[i].iter().zip(&v).map(|(a, b)| a * b).sum()).collect();
            // Keep orthogonal to the components found (deflation by projection).
            for u in &components {
                let dot: f64 = w.iter().zip(u).map(|(a, b): (&f64, &f64)| a * b).sum();
                w.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            w.iter_mut().for_each(|x| *x /= norm);
            let delta: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = w;
            lambda = norm;
            if delta < 1e-10 {
                break;
            }
        }
        explained.push(if total > 0.0 { lambda / total } else { 0.0 });
        components.push(v);
    }
    let projected = centred.iter().map(|r| components.iter().map(|u| r.iter().zip(u).map(|(a, b)| a * b).sum()).collect()).collect();
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
}
