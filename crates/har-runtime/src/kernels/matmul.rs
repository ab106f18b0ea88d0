//! The one matrix-product kernel of the runtime: `Y = X · W + b` on strided
//! row-major `f32` slices, with AVX2 + FMA when the CPU has them and portable loops otherwise.
//! Dense layers, attention scores (`Q · Kᵀ`) and attention outputs (`P · V`) all run on it.

/// A right-hand operand `W` (`in_dim × out_dim`, row `i` at `weight[i * weight_stride..]`)
/// and an optional bias of `out_dim`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operand<'a> {
    pub weight: &'a [f32],
    pub weight_stride: usize,
    pub bias: Option<&'a [f32]>,
    pub in_dim: usize,
    pub out_dim: usize,
}

/// Rows of a strided row-major matrix: row `r` starts at `data[r * stride]`.
#[derive(Debug)]
pub(crate) struct Rows<T> {
    pub data: T,
    pub stride: usize,
    pub rows: usize,
}

impl Operand<'_> {
    /// `y[r] = x[r] · W + b` for every row of `x` (`y` has as many rows; only the first
    /// `out_dim` values of each `y` row are written).
    pub(crate) fn multiply(&self, x: Rows<&[f32]>, y: Rows<&mut [f32]>) {
        assert!(
            x.rows == y.rows,
            "matmul: {} input rows, {} output rows",
            x.rows,
            y.rows
        );
        if x.rows == 0 || self.out_dim == 0 {
            return;
        }
        let last = |stride: usize, rows: usize, width: usize| (rows - 1) * stride + width;
        assert!(
            self.weight.len() >= last(self.weight_stride, self.in_dim, self.out_dim)
                && x.data.len() >= last(x.stride, x.rows, self.in_dim)
                && y.data.len() >= last(y.stride, y.rows, self.out_dim)
                && self.bias.is_none_or(|b| b.len() >= self.out_dim),
            "matmul: operand slices shorter than their shapes"
        );
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU supports the features; the slices' extents were checked above.
            unsafe { multiply_avx2_fma(self, x, y) };
            return;
        }
        multiply_portable(self, x, y);
    }
}

/// True when the CPU has AVX2 and FMA (std caches the detection).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// [`Operand::multiply`] as axpy updates over contiguous rows of `W` (the portable path).
pub(crate) fn multiply_portable(w: &Operand, x: Rows<&[f32]>, y: Rows<&mut [f32]>) {
    for r in 0..x.rows {
        let xr = &x.data[r * x.stride..r * x.stride + w.in_dim];
        let out = &mut y.data[r * y.stride..r * y.stride + w.out_dim];
        match w.bias {
            Some(b) => out.copy_from_slice(&b[..w.out_dim]),
            None => out.fill(0.0),
        }
        for (i, &xi) in xr.iter().enumerate() {
            let row = &w.weight[i * w.weight_stride..i * w.weight_stride + w.out_dim];
            for (o, &wv) in out.iter_mut().zip(row) {
                *o += xi * wv;
            }
        }
    }
}

/// [`Operand::multiply`] with AVX2 + FMA. Rows go in blocks of four and outputs in blocks of
/// 16, so eight accumulators stay in registers (enough independent FMAs to hide their latency)
/// and each load of `W` serves four rows; leftover rows use smaller blocks, leftover outputs
/// (fewer than 8) are scalar.
///
/// # Safety
/// The CPU must have AVX2 and FMA, and the slices must cover the shapes (as
/// [`Operand::multiply`] asserts).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn multiply_avx2_fma(w: &Operand, x: Rows<&[f32]>, y: Rows<&mut [f32]>) {
    let mut r = 0;
    while r + 4 <= x.rows {
        row_block::<4>(
            w,
            &x.data[r * x.stride..],
            x.stride,
            &mut y.data[r * y.stride..],
            y.stride,
        );
        r += 4;
    }
    if r == x.rows {
        return;
    }
    let (xs, ys) = (&x.data[r * x.stride..], &mut y.data[r * y.stride..]);
    match x.rows - r {
        3 => row_block::<3>(w, xs, x.stride, ys, y.stride),
        2 => row_block::<2>(w, xs, x.stride, ys, y.stride),
        1 => row_block::<1>(w, xs, x.stride, ys, y.stride),
        _ => {}
    }
}

/// `R` rows of [`multiply_avx2_fma`], starting at the first row of `x` and `y`: blocks of
/// `8·V` outputs with `V` chosen so that `R·V` accumulators (eight for two or more rows) keep
/// the FMA units busy, then blocks of 8, then scalar leftovers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn row_block<const R: usize>(
    w: &Operand,
    x: &[f32],
    x_stride: usize,
    y: &mut [f32],
    y_stride: usize,
) {
    let vector_end = w.out_dim / 8 * 8;
    let mut o = 0;
    if R <= 2 {
        while o + 32 <= vector_end {
            output_block::<R, 4>(w, x, x_stride, y, y_stride, o);
            o += 32;
        }
    }
    while o + 16 <= vector_end {
        output_block::<R, 2>(w, x, x_stride, y, y_stride, o);
        o += 16;
    }
    if o < vector_end {
        output_block::<R, 1>(w, x, x_stride, y, y_stride, o);
    }
    for rr in 0..R {
        for oo in vector_end..w.out_dim {
            let mut sum = w.bias.map_or(0.0, |b| b[oo]);
            for i in 0..w.in_dim {
                sum = x[rr * x_stride + i].mul_add(w.weight[i * w.weight_stride + oo], sum);
            }
            y[rr * y_stride + oo] = sum;
        }
    }
}

/// Outputs `o..o + 8·V` of `R` rows, in `R × V` AVX registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn output_block<const R: usize, const V: usize>(
    w: &Operand,
    x: &[f32],
    x_stride: usize,
    y: &mut [f32],
    y_stride: usize,
    o: usize,
) {
    use std::arch::x86_64::*;
    let (wp, xp, out) = (w.weight.as_ptr(), x.as_ptr(), y.as_mut_ptr());
    let mut start = [_mm256_setzero_ps(); V];
    if let Some(b) = w.bias {
        for (v, slot) in start.iter_mut().enumerate() {
            *slot = _mm256_loadu_ps(b.as_ptr().add(o + 8 * v));
        }
    }
    let mut acc = [start; R];
    for i in 0..w.in_dim {
        let row = wp.add(i * w.weight_stride + o);
        let mut weights = [_mm256_setzero_ps(); V];
        for (v, slot) in weights.iter_mut().enumerate() {
            *slot = _mm256_loadu_ps(row.add(8 * v));
        }
        for (rr, slots) in acc.iter_mut().enumerate() {
            let a = _mm256_set1_ps(*xp.add(rr * x_stride + i));
            for (slot, &wv) in slots.iter_mut().zip(&weights) {
                *slot = _mm256_fmadd_ps(a, wv, *slot);
            }
        }
    }
    for (rr, slots) in acc.iter().enumerate() {
        for (v, slot) in slots.iter().enumerate() {
            _mm256_storeu_ps(out.add(rr * y_stride + o + 8 * v), *slot);
        }
    }
}

/// A linear layer `y = x · Wᵀ + b`, with `W` stored transposed (`[in, out]`).
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    weight_t: Vec<f32>,
    bias: Vec<f32>,
    out_dim: usize,
}

impl Dense {
    /// A bias-free layer from its weight already transposed to `[in, out]`.
    pub(crate) fn from_transposed(weight_t: Vec<f32>, out_dim: usize) -> Self {
        Self {
            weight_t,
            bias: vec![0.0; out_dim],
            out_dim,
        }
    }

    /// A layer from its weight `[out, in]` (row-major, as candle's `Linear` stores it) and
    /// bias `[out]`.
    pub(crate) fn new(weight: &[f32], bias: Vec<f32>, in_dim: usize, out_dim: usize) -> Self {
        debug_assert_eq!(weight.len(), in_dim * out_dim);
        debug_assert_eq!(bias.len(), out_dim);
        let mut weight_t = vec![0f32; in_dim * out_dim];
        for (o, row) in weight.chunks_exact(in_dim.max(1)).enumerate() {
            for (i, w) in row.iter().enumerate() {
                weight_t[i * out_dim + o] = *w;
            }
        }
        Self {
            weight_t,
            bias,
            out_dim,
        }
    }

    /// Output width.
    pub(crate) fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Input width.
    pub(crate) fn in_dim(&self) -> usize {
        self.weight_t.len() / self.out_dim.max(1)
    }

    /// Applies to each row of `x` (`rows × in`), writing `rows × out` into `y`.
    pub(crate) fn apply(&self, x: &[f32], rows: usize, y: &mut Vec<f32>) {
        // Every output is written by the kernel, so only a length change needs filling.
        y.resize(rows * self.out_dim, 0.0);
        let in_dim = self.weight_t.len() / self.out_dim.max(1);
        let operand = Operand {
            weight: &self.weight_t,
            weight_stride: self.out_dim,
            bias: Some(&self.bias),
            in_dim,
            out_dim: self.out_dim,
        };
        operand.multiply(
            Rows {
                data: x,
                stride: in_dim,
                rows,
            },
            Rows {
                data: y,
                stride: self.out_dim,
                rows,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(w: &Operand, x: &[f32], x_stride: usize, rows: usize) -> Vec<f32> {
        (0..rows)
            .flat_map(|r| (0..w.out_dim).map(move |o| (r, o)))
            .map(|(r, o)| {
                w.bias.map_or(0.0, |b| b[o])
                    + (0..w.in_dim)
                        .map(|i| x[r * x_stride + i] * w.weight[i * w.weight_stride + o])
                        .sum::<f32>()
            })
            .collect()
    }

    /// Both kernels compute the product, for every row-block size, output-block size and
    /// stride combination (the model tests only reach the AVX2 path on machines with it).
    #[test]
    fn kernels_compute_strided_products() {
        for (rows, in_dim, out_dim, with_bias) in [
            (1, 3, 5, true),
            (3, 10, 45, true),
            (7, 16, 17, false),
            (8, 8, 32, true),
            (9, 8, 32, true),
        ] {
            let (w_stride, x_stride, y_stride) = (out_dim + 3, in_dim + 2, out_dim + 1);
            let weight: Vec<f32> = (0..in_dim * w_stride)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1)
                .collect();
            let bias: Vec<f32> = (0..out_dim).map(|i| i as f32 * 0.01).collect();
            let x: Vec<f32> = (0..rows * x_stride)
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let w = Operand {
                weight: &weight,
                weight_stride: w_stride,
                bias: with_bias.then_some(bias.as_slice()),
                in_dim,
                out_dim,
            };
            let expected = reference(&w, &x, x_stride, rows);
            let run = |portable: bool| {
                let mut y = vec![f32::NAN; rows * y_stride];
                let (xr, yr) = (
                    Rows {
                        data: x.as_slice(),
                        stride: x_stride,
                        rows,
                    },
                    Rows {
                        data: y.as_mut_slice(),
                        stride: y_stride,
                        rows,
                    },
                );
                if portable {
                    multiply_portable(&w, xr, yr);
                } else {
                    w.multiply(xr, yr);
                }
                y
            };
            for y in [run(true), run(false)] {
                for r in 0..rows {
                    for o in 0..out_dim {
                        let (got, want) = (y[r * y_stride + o], expected[r * out_dim + o]);
                        assert!(
                            (got - want).abs() < 1e-5,
                            "{rows}×{in_dim}→{out_dim} [{r},{o}]"
                        );
                    }
                }
            }
        }
    }
}
