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

/// How far [`sharpen`] splits a leaf.
#[derive(Clone, Copy, Debug)]
pub struct Sharpen {
    /// How many times the leaf's odds of a positive (precision / (1 - precision)) a side's must
    /// be for a split to be taken (a material rise, not noise).
    pub rise: f64,
    /// Most splits added on a path.
    pub max_depth: usize,
    /// Fewest positive rows a side with any must keep.
    pub min_positive_rows: usize,
}

/// Precision of a set of rows: its positive weight over all its weight (with weights that
/// stand for the population, the share of matching cases that are positive).
fn precision(p: f64, n: f64) -> f64 {
    if p + n <= 0.0 {
        0.0
    } else {
        p / (p + n)
    }
}

/// The odds of a precision, p / (1 - p): near p where p is small, unbounded as p nears 1 (so a
/// rise from 90% to 99% counts as much as one from 1% to 10%).
fn odds(p: f64) -> f64 {
    if p >= 1.0 {
        f64::INFINITY
    } else {
        p / (1.0 - p)
    }
}

/// Splits `leaf` further while it gets materially sharper (its precision measured with `data`'s
/// weights, whatever weights grew it): the split `feature <= t` whose
/// sharper side has the largest FOIL gain (its positive rows times the log of its precision
/// over the leaf's), taken when that side's odds of a positive are at least `rise` times the
/// leaf's and
/// each side keeps no positive row or at least `min_positive_rows`. A side without positive
/// rows is dropped (the rule no longer claims it); the others are sharpened in turn. Where a
/// Gini tree stops once a leaf is mostly positive or mostly negative, this goes on while the
/// share of matching cases that are positive still rises, so a broad rule is narrowed to the
/// part where the failure really happens (or split into a sharp and a diffuse part).
pub fn sharpen(data: &Data, leaf: Leaf, s: Sharpen) -> Vec<Leaf> {
    let best = if s.max_depth > 0 { sharpest_split(data, &leaf, s) } else { None };
    let Some((feature, t)) = best else { return vec![leaf] };
    let (left, right): (Vec<usize>, Vec<usize>) = leaf.rows.iter().partition(|&&r| data.rows[r][feature] <= t);
    let deeper = Sharpen { max_depth: s.max_depth - 1, ..s };
    let mut out = Vec::new();
    for (rows, lo, hi) in [(left, i16::MIN, t), (right, t + 1, i16::MAX)] {
        let (positive, negative) = weights(data, &rows);
        if rows.iter().any(|&r| data.positive[r]) {
            let conditions = narrow(&leaf.conditions, feature, lo, hi);
            out.extend(sharpen(data, Leaf { conditions, rows, positive, negative }, deeper));
        }
    }
    out
}

/// The split of `leaf` [`sharpen`] takes, if any.
fn sharpest_split(data: &Data, leaf: &Leaf, s: Sharpen) -> Option<(usize, i16)> {
    let (all_p, all_n) = weights(data, &leaf.rows);
    let base = precision(all_p, all_n);
    let positives = leaf.rows.iter().filter(|&&r| data.positive[r]).count();
    let mut best: Option<(f64, usize, i16)> = None;
    for feature in 0..data.rows.first()?.len() {
        let (mut lp, mut ln, mut lrows) = (0.0, 0.0, 0);
        for (&t, &(vp, vn, vrows)) in &counts(data, &leaf.rows, feature) {
            (lp, ln, lrows) = (lp + vp, ln + vn, lrows + vrows);
            let few = |rows: usize| rows > 0 && rows < s.min_positive_rows;
            if few(lrows) || few(positives - lrows) {
                continue;
            }
            let sides = [(precision(lp, ln), lrows), (precision(all_p - lp, all_n - ln), positives - lrows)];
            for (p, rows) in sides {
                let gain = rows as f64 * (p / base).ln();
                if rows > 0 && odds(p) >= s.rise * odds(base) && best.is_none_or(|b| gain > b.0) {
                    best = Some((gain, feature, t));
                }
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

    #[test]
    fn sharpening_keeps_the_part_where_the_positives_are() {
        // A leaf over feature 0 in 0..10: value 7 is positive 9 times in 10, values 0..=6 once
        // in 100, 8 and 9 never; feature 1 (which half of each value's rows) is noise.
        let mut rows = Vec::new();
        let mut positive = Vec::new();
        for a in 0..10i16 {
            for i in 0..200i16 {
                rows.push(vec![a, i / 100]);
                positive.push(match a {
                    7 => i % 10 != 0,
                    0..=6 => i % 100 == 0,
                    _ => false,
                });
            }
        }
        let weight = vec![1.0; rows.len()];
        let data = Data { rows: &rows, positive: &positive, weight: &weight };
        let leaf = Leaf { conditions: Vec::new(), rows: (0..rows.len()).collect(), positive: 0.0, negative: 0.0 };
        let s = Sharpen { rise: 1.5, max_depth: 3, min_positive_rows: 5 };
        let parts = sharpen(&data, leaf.clone(), s);
        let sharp: Vec<&Leaf> = parts.iter().filter(|l| precision(l.positive, l.negative) > 0.5).collect();
        assert_eq!(sharp.len(), 1, "{parts:?}");
        assert_eq!(sharp[0].conditions, vec![Interval { feature: 0, lo: 7, hi: 7 }], "{parts:?}");
        assert_eq!(sharp[0].positive, 180.0);
        // Every positive row stays in some part (the 14 diffuse ones in 0..=6 form their own),
        // and the rows of 8 and 9, never positive, are dropped.
        let kept: f64 = parts.iter().map(|l| l.positive).sum();
        assert_eq!(kept, 194.0, "{parts:?}");
        assert!(parts.iter().all(|l| l.rows.iter().all(|&r| rows[r][0] <= 7)), "{parts:?}");
        // Without the rise it asks for, no split is taken.
        let flat = sharpen(&data, leaf, Sharpen { rise: 1e9, ..s });
        assert_eq!(flat.len(), 1);
    }
}
