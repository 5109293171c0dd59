//! A shallow weighted decision tree over small integer features, grown to separate rare positive
//! rows (a model's wrong answers of one kind) from negative ones (its right answers), and read
//! back as rules: each leaf is the conjunction of the intervals on its path.
//!
//! Classic CART with the Gini impurity on weighted rows and splits of the form `feature <= t`;
//! the features here take a few dozen values, so each split is found by counting per value.

use std::collections::BTreeMap;

/// `lo <= row[feature] <= hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// Feature index.
    pub feature: usize,
    /// Smallest value allowed.
    pub lo: i16,
    /// Largest value allowed.
    pub hi: i16,
}

/// A leaf: the rows that reach it, their weights, and the path's conditions (one interval per
/// feature the path splits on, narrowed by every split on it).
#[derive(Clone, Debug)]
pub struct Leaf {
    /// Conditions, by feature index.
    pub conditions: Vec<Interval>,
    /// Row indices.
    pub rows: Vec<usize>,
    /// Weight of the positive rows.
    pub positive: f64,
    /// Weight of the negative rows.
    pub negative: f64,
}

impl Leaf {
    /// Whether the positive rows outweigh the negative ones.
    pub fn is_positive(&self) -> bool {
        self.positive > self.negative
    }
}

/// How far the tree grows.
#[derive(Clone, Copy, Debug)]
pub struct Growth {
    /// Longest path.
    pub max_depth: usize,
    /// Fewest positive rows a child with any must keep for a split to be taken (splits that
    /// isolate only a handful of failures describe nothing).
    pub min_positive_rows: usize,
}

/// Rows of features with a label and a weight each.
pub struct Data<'a> {
    /// Features per row.
    pub rows: &'a [Vec<i16>],
    /// Whether each row is positive.
    pub positive: &'a [bool],
    /// Weight of each row.
    pub weight: &'a [f64],
}

/// Grows the tree and returns its leaves.
pub fn grow(data: &Data, growth: Growth) -> Vec<Leaf> {
    let mut leaves = Vec::new();
    let all: Vec<usize> = (0..data.rows.len()).collect();
    split(data, growth, all, Vec::new(), 0, &mut leaves);
    leaves
}

fn split(data: &Data, growth: Growth, rows: Vec<usize>, conditions: Vec<Interval>, depth: usize, out: &mut Vec<Leaf>) {
    let best = if depth < growth.max_depth { best_split(data, &rows, growth) } else { None };
    let Some((feature, t)) = best else {
        let (positive, negative) = weights(data, &rows);
        out.push(Leaf { conditions, rows, positive, negative });
        return;
    };
    let (left, right): (Vec<usize>, Vec<usize>) = rows.into_iter().partition(|&r| data.rows[r][feature] <= t);
    split(data, growth, left, narrow(&conditions, feature, i16::MIN, t), depth + 1, out);
    split(data, growth, right, narrow(&conditions, feature, t + 1, i16::MAX), depth + 1, out);
}

/// `conditions` with `feature` further limited to `lo..=hi`.
fn narrow(conditions: &[Interval], feature: usize, lo: i16, hi: i16) -> Vec<Interval> {
    let mut c = conditions.to_vec();
    match c.iter_mut().find(|i| i.feature == feature) {
        Some(i) => {
            i.lo = i.lo.max(lo);
            i.hi = i.hi.min(hi);
        }
        None => c.push(Interval { feature, lo, hi }),
    }
    c.sort_by_key(|i| i.feature);
    c
}

fn weights(data: &Data, rows: &[usize]) -> (f64, f64) {
    rows.iter().fold((0.0, 0.0), |(p, n), &r| if data.positive[r] { (p + data.weight[r], n) } else { (p, n + data.weight[r]) })
}

/// Gini impurity of a weighted two-class set, times its weight.
fn impurity(p: f64, n: f64) -> f64 {
    let w = p + n;
    if w <= 0.0 {
        0.0
    } else {
        2.0 * p * n / w
    }
}

/// Per value of `feature`: (positive weight, negative weight, positive rows).
fn counts(data: &Data, rows: &[usize], feature: usize) -> BTreeMap<i16, (f64, f64, usize)> {
    let mut by_value: BTreeMap<i16, (f64, f64, usize)> = BTreeMap::new();
    for &r in rows {
        let e = by_value.entry(data.rows[r][feature]).or_default();
        if data.positive[r] {
            e.0 += data.weight[r];
            e.2 += 1;
        } else {
            e.1 += data.weight[r];
        }
    }
    by_value
}

/// The split `feature <= t` that lowers the impurity most, if any does.
fn best_split(data: &Data, rows: &[usize], growth: Growth) -> Option<(usize, i16)> {
    let (p, n) = weights(data, rows);
    let parent = impurity(p, n);
    let positives = rows.iter().filter(|&&r| data.positive[r]).count();
    let mut best: Option<(f64, usize, i16)> = None;
    for feature in 0..data.rows.first()?.len() {
        let (mut lp, mut ln, mut lrows) = (0.0, 0.0, 0);
        for (&t, &(vp, vn, vrows)) in &counts(data, rows, feature) {
            (lp, ln, lrows) = (lp + vp, ln + vn, lrows + vrows);
            let (rp, rn) = (p - lp, n - ln);
            // A child may hold no positive row (it sets negatives aside), but not just a few.
            let few = |rows: usize| rows > 0 && rows < growth.min_positive_rows;
            let too_few = few(lrows) || few(positives - lrows);
            if too_few || rp + rn <= 1e-12 {
                continue;
            }
            let gain = parent - impurity(lp, ln) - impurity(rp, rn);
            if gain > 1e-9 * (p + n) && best.is_none_or(|b| gain > b.0) {
                best = Some((gain, feature, t));
            }
        }
    }
    best.map(|(_, f, t)| (f, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_planted_conjunction_of_two_intervals() {
        // Positive exactly when feature 0 is 3 and feature 1 is at least 5; feature 2 is noise.
        let mut rows = Vec::new();
        for a in 0..8i16 {
            for b in 0..10i16 {
                for c in 0..4i16 {
                    rows.push(vec![a, b, c]);
                }
            }
        }
        let positive: Vec<bool> = rows.iter().map(|r| r[0] == 3 && r[1] >= 5).collect();
        let weight = vec![1.0; rows.len()];
        let leaves = grow(&Data { rows: &rows, positive: &positive, weight: &weight }, Growth { max_depth: 4, min_positive_rows: 1 });
        let hits: Vec<&Leaf> = leaves.iter().filter(|l| l.is_positive()).collect();
        assert_eq!(hits.len(), 1, "{leaves:?}");
        let mut c = hits[0].conditions.clone();
        c.retain(|i| i.lo > i16::MIN + 1 || i.hi < i16::MAX - 1);
        assert_eq!(c, vec![Interval { feature: 0, lo: 3, hi: 3 }, Interval { feature: 1, lo: 5, hi: i16::MAX }]);
        assert_eq!((hits[0].positive, hits[0].negative), (20.0, 0.0));
    }

    #[test]
    fn no_leaf_holds_fewer_positive_rows_than_asked() {
        let rows: Vec<Vec<i16>> = (0..100).map(|i| vec![i]).collect();
        let positive: Vec<bool> = (0..100).map(|i| i == 7 || i == 50).collect();
        let weight = vec![1.0; 100];
        let leaves = grow(&Data { rows: &rows, positive: &positive, weight: &weight }, Growth { max_depth: 5, min_positive_rows: 2 });
        assert!(leaves.iter().all(|l| l.rows.iter().filter(|&&r| positive[r]).count() != 1), "{leaves:?}");
        assert!(leaves.iter().any(|l| l.positive == 2.0), "the two failures stay together: {leaves:?}");
    }
}
