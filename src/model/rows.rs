//! Which rows a pass computes: the one place the model's two row optimisations live.
//!
//! A pass feeds positions `0..t` of each sequence ([`Span::t`]). Every block computes keys and
//! values at all of them, since attention reads every earlier position; but a block computes its
//! queries, attention output, MLP and output only at positions `q0..t` ([`Rows`]), where
//!
//! - **answer rows**: the last block starts at [`Span::q0`]. Training and evaluation set it to
//!   the first answer-predicting position, skipping every row the loss does not read; analysis
//!   sets it to 0 (every position, exactly TransformerLens's forward).
//! - **partial recompute**: the blocks before the last start at the workspace's first row
//!   (`Workspace::set_first_row`, 0 unless an intervention pass sets it). Attention is causal,
//!   so a pass whose interventions all sit at a position `first` or later changes nothing before
//!   it: such a pass loads the clean outputs and recomputes only the rows from `first` on.
//!
//! Rows `q0..t` are kept compact ([batch, t - q0, ...]); [`Rows::gather`], [`Rows::splice`] and
//! [`Rows::scatter_add`] move them between that and the full [batch, t, ...] layout. With
//! `q0 = 0` both layouts are the same and the pass is the reference model's, row for row.

use super::ops::AttnDims;

/// Which positions a pass computes: all layers see positions `0..t`; the last layer's output
/// (and so the logits) covers positions `q0..t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Number of positions fed in.
    pub t: usize,
    /// First position whose logits are computed.
    pub q0: usize,
}

impl Span {
    /// Every position, as TransformerLens computes it.
    pub fn full(n_ctx: usize) -> Span {
        Span { t: n_ctx, q0: 0 }
    }

    /// Only what a loss over predictions at positions `first..first + n` needs.
    pub fn predictions(first: usize, n: usize) -> Span {
        Span { t: first + n, q0: first }
    }

    /// Positions with logits.
    pub fn tq(&self) -> usize {
        self.t - self.q0
    }
}

/// The rows one block computes (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub struct Rows {
    /// Sequences.
    pub batch: usize,
    /// Key and value positions `0..t` per sequence.
    pub t: usize,
    /// First query position: queries, attention output, MLP and output cover `q0..t`.
    pub q0: usize,
    /// Whether the block's output is full width ([batch, t]) and only rows `q0..t` of it are
    /// recomputed (a partial recompute), rather than compact (the last block).
    pub spliced: bool,
}

impl Rows {
    /// Rows `q0..t` of block `l` of `n_layers`, for a pass over `span` whose earlier blocks start
    /// at `first_row`.
    pub fn of_block(l: usize, n_layers: usize, batch: usize, span: Span, first_row: usize) -> Rows {
        let last = l + 1 == n_layers;
        let q0 = if last { span.q0 } else { first_row };
        Rows { batch, t: span.t, q0, spliced: !last && q0 > 0 }
    }

    /// Query positions per sequence.
    pub fn tq(&self) -> usize {
        self.t - self.q0
    }

    /// Key and value rows of the batch.
    pub fn n_in(&self) -> usize {
        self.batch * self.t
    }

    /// Query rows of the batch.
    pub fn n_out(&self) -> usize {
        self.batch * self.tq()
    }

    /// Whether only some rows are queries (so inputs are gathered and gradients scattered).
    pub fn partial(&self) -> bool {
        self.q0 > 0
    }

    /// Attention's shapes over these rows.
    pub fn attn(&self, heads: usize, d_head: usize) -> AttnDims {
        AttnDims { heads, d_head, t: self.t, q0: self.q0 }
    }

    /// Copies rows `q0..t` of every sequence of `x` ([batch, t, d]) into `out` ([batch, t - q0, d]).
    pub fn gather(&self, x: &[f32], d: usize, out: &mut [f32]) {
        for (o, xs) in out.chunks_exact_mut(self.tq() * d).zip(x.chunks_exact(self.t * d)) {
            o.copy_from_slice(&xs[self.q0 * d..]);
        }
    }

    /// Copies the compact rows `y` ([batch, t - q0, d]) into rows `q0..t` of `x` ([batch, t, d]).
    pub fn splice(&self, x: &mut [f32], d: usize, y: &[f32]) {
        for (xs, ys) in x.chunks_exact_mut(self.t * d).zip(y.chunks_exact(self.tq() * d)) {
            xs[self.q0 * d..].copy_from_slice(ys);
        }
    }

    /// Adds the compact rows `y` ([batch, t - q0, d]) into rows `q0..t` of `x` ([batch, t, d]).
    pub fn scatter_add(&self, x: &mut [f32], d: usize, y: &[f32]) {
        for (xs, ys) in x.chunks_exact_mut(self.t * d).zip(y.chunks_exact(self.tq() * d)) {
            xs[self.q0 * d..].iter_mut().zip(ys).for_each(|(a, b)| *a += b);
        }
    }
}
