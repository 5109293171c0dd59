//! Matrix products on strided f32 views, through the `gemm` crate (the kernel candle and burn
//! use). A view is a slice plus row and column strides, so transposes cost nothing.

use gemm::Parallelism;

/// A read-only matrix view: `rows x cols`, element (i, j) at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A matrix with explicit strides (e.g. one head's columns inside a [rows, heads*d] buffer).
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        if rows > 0 && cols > 0 {
            assert!((rows - 1) * rs + (cols - 1) * cs < data.len(), "matrix view out of bounds");
        }
        MatRef { data, rows, cols, rs, cs }
    }

    /// The transpose, without copying.
    pub fn t(self) -> Self {
        MatRef { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }
}

/// How many threads a product of this size should use: small products run on the calling
/// thread, because waking workers costs more than it saves.
fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    if (m * n * k) < 64 * 64 * 64 || rayon::current_num_threads() == 1 || rayon::current_thread_index().is_some() {
        Parallelism::None
    } else {
        Parallelism::Rayon(0)
    }
}

/// `dst = a · b` (or `dst += a · b` when `accumulate`), `dst` a strided `a.rows x b.cols` view
/// of `out` with row stride `dst_rs` and column stride 1.
pub fn matmul_into(out: &mut [f32], dst_rs: usize, a: MatRef, b: MatRef, accumulate: bool) {
    let par = parallelism(a.rows, b.cols, a.cols);
    matmul_with(out, dst_rs, a, b, accumulate, par)
}

/// `matmul_into` with an explicit thread count (`threads` 0 = all of the current pool), for
/// measuring the machine's peak.
pub fn matmul_threads(out: &mut [f32], a: MatRef, b: MatRef, threads: usize) {
    matmul_with(out, b.cols, a, b, false, Parallelism::Rayon(threads))
}

fn matmul_with(out: &mut [f32], dst_rs: usize, a: MatRef, b: MatRef, accumulate: bool, par: Parallelism) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "inner dimensions differ");
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * dst_rs + n <= out.len(), "destination out of bounds");
    if k == 0 {
        if !accumulate {
            (0..m).for_each(|i| out[i * dst_rs..i * dst_rs + n].fill(0.0));
        }
        return;
    }
    // SAFETY: every index the kernel touches was bounds-checked above through the strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// `dst = a · b` for a contiguous row-major `dst`.
pub fn matmul(out: &mut [f32], a: MatRef, b: MatRef, accumulate: bool) {
    let n = b.cols;
    matmul_into(out, n, a, b, accumulate)
}

/// Adds `bias` to every row of the row-major `[rows, bias.len()]` matrix `x`.
pub fn add_bias(x: &mut [f32], bias: &[f32]) {
    x.chunks_exact_mut(bias.len()).for_each(|row| row.iter_mut().zip(bias).for_each(|(v, b)| *v += b));
}

/// Adds the column sums of the row-major `[rows, out.len()]` matrix `x` into `out` (a bias gradient).
pub fn add_col_sums(out: &mut [f32], x: &[f32]) {
    x.chunks_exact(out.len()).for_each(|row| out.iter_mut().zip(row).for_each(|(o, v)| *o += v));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn matches_naive_product_with_transposes_and_accumulation() {
        let (m, k, n) = (37, 70, 29);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 104729) % 11) as f32 - 5.0).collect();
        let want = naive(&a, &b, m, k, n);
        let mut c = vec![0.0; m * n];
        matmul(&mut c, MatRef::new(&a, m, k), MatRef::new(&b, k, n), false);
        assert_eq!(c, want);
        // (b^T)^T through a transposed copy.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        matmul(&mut c, MatRef::new(&a, m, k), MatRef::new(&bt, n, k).t(), true);
        assert!(c.iter().zip(&want).all(|(x, y)| *x == 2.0 * y));
    }
}
