//! Row-vector broadcasts (`x + v`, `x ⊙ v` with `v` over the last dimension) as candle custom
//! ops, for biases and layer-norm scales in training.
//!
//! candle differentiates a broadcast by summing the gradient over the broadcast dimensions with
//! its generic strided reduction, which computes an index with integer divisions for every
//! element — a fifth of a HAPT training step. These ops sum the rows with plain vector
//! additions instead, in the same order (row 0 first, from zero) and with the same `f32`
//! operations, so gradients and trained weights are bit-identical to candle's broadcasts.
//! Tensors on other devices (or of other dtypes) use candle's broadcasts.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// `xs + v`, `v` of the size of `xs`'s last dimension added to every row.
pub fn add_row_vector(xs: &Tensor, v: &Tensor) -> Result<Tensor> {
    if !is_cpu_f32(xs, v) {
        return xs.broadcast_add(v);
    }
    xs.contiguous()?.apply_op2(&v.contiguous()?, RowVector::Add)
}

/// `xs ⊙ v`, every row of `xs` multiplied element-wise by `v`.
pub fn mul_row_vector(xs: &Tensor, v: &Tensor) -> Result<Tensor> {
    if !is_cpu_f32(xs, v) {
        return xs.broadcast_mul(v);
    }
    xs.contiguous()?.apply_op2(&v.contiguous()?, RowVector::Mul)
}

fn is_cpu_f32(xs: &Tensor, v: &Tensor) -> bool {
    xs.device().is_cpu() && xs.dtype() == DType::F32 && v.dtype() == DType::F32
}

/// The broadcast of a row vector over the rows of a matrix.
#[derive(Debug, Clone, Copy)]
enum RowVector {
    Add,
    Mul,
}

/// The contiguous `f32` values of a CPU tensor.
fn values<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(values), Some((start, end))) => Ok(&values[start..end]),
        _ => candle_core::bail!("{op}: needs contiguous f32 tensors"),
    }
}

/// Sums the rows (`width` wide) of `rows`, row 0 first, as candle's reduction does.
fn sum_rows(rows: &[f32], width: usize) -> Vec<f32> {
    let mut sums = vec![0f32; width];
    for row in rows.chunks_exact(width) {
        for (sum, &v) in sums.iter_mut().zip(row) {
            *sum += v;
        }
    }
    sums
}

/// The contiguous values of a tensor as a vector.
fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

impl CustomOp2 for RowVector {
    fn name(&self) -> &'static str {
        match self {
            RowVector::Add => "har-add-row-vector",
            RowVector::Mul => "har-mul-row-vector",
        }
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        v: &CpuStorage,
        v_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (xs, v) = (
            values(xs, xs_layout, self.name())?,
            values(v, v_layout, self.name())?,
        );
        let width = v.len();
        if xs_layout.dims().last() != Some(&width) {
            candle_core::bail!(
                "{}: vector of {width} for rows of {:?}",
                self.name(),
                xs_layout.dims()
            );
        }
        let mut out = Vec::with_capacity(xs.len());
        for row in xs.chunks_exact(width) {
            match self {
                RowVector::Add => out.extend(row.iter().zip(v).map(|(x, v)| x + v)),
                RowVector::Mul => out.extend(row.iter().zip(v).map(|(x, v)| x * v)),
            }
        }
        Ok((CpuStorage::F32(out), xs_layout.shape().clone()))
    }

    fn bwd(
        &self,
        xs: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let width = v.elem_count();
        match self {
            // d(x + v)/dx = 1, d/dv = Σ rows.
            RowVector::Add => {
                let v_grad = sum_rows(&to_vec(grad)?, width);
                Ok((
                    Some(grad.clone()),
                    Some(Tensor::from_vec(v_grad, v.shape(), v.device())?),
                ))
            }
            // d(x ⊙ v)/dx = grad ⊙ v, d/dv = Σ rows of grad ⊙ x.
            RowVector::Mul => {
                let (g, x, v_values) = (to_vec(grad)?, to_vec(xs)?, to_vec(v)?);
                let mut xs_grad = Vec::with_capacity(g.len());
                let mut products = Vec::with_capacity(g.len());
                for (g_row, x_row) in g.chunks_exact(width).zip(x.chunks_exact(width)) {
                    xs_grad.extend(g_row.iter().zip(&v_values).map(|(g, v)| g * v));
                    products.extend(g_row.iter().zip(x_row).map(|(g, x)| g * x));
                }
                Ok((
                    Some(Tensor::from_vec(xs_grad, xs.shape(), xs.device())?),
                    Some(Tensor::from_vec(
                        sum_rows(&products, width),
                        v.shape(),
                        v.device(),
                    )?),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Values and gradients equal candle's broadcasts exactly (not just closely).
    #[test]
    fn ops_and_gradients_equal_candles_broadcasts_bit_for_bit() -> Result<()> {
        let device = Device::Cpu;
        let x_values: Vec<f32> = (0..2 * 5 * 7)
            .map(|i| (i as f32 * 0.731).sin() * 3.0)
            .collect();
        let v_values: Vec<f32> = (0..7).map(|i| (i as f32 * 1.37).cos()).collect();
        let weights = Tensor::from_vec(
            (0..2 * 5 * 7)
                .map(|i| (i as f32 * 0.17).cos())
                .collect::<Vec<_>>(),
            (2, 5, 7),
            &device,
        )?;
        for op in [RowVector::Add, RowVector::Mul] {
            let run = |ours: bool| -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
                let x = Var::from_vec(x_values.clone(), (2, 5, 7), &device)?;
                let v = Var::from_vec(v_values.clone(), 7, &device)?;
                let y = match (op, ours) {
                    (RowVector::Add, true) => add_row_vector(&x, &v)?,
                    (RowVector::Mul, true) => mul_row_vector(&x, &v)?,
                    (RowVector::Add, false) => x.broadcast_add(&v)?,
                    (RowVector::Mul, false) => x.broadcast_mul(&v)?,
                };
                let grads = (&y * &weights)?.sum_all()?.backward()?;
                Ok((
                    to_vec(&y)?,
                    to_vec(grads.get(&x).expect("x grad"))?,
                    to_vec(grads.get(&v).expect("v grad"))?,
                ))
            };
            let (ours, candle) = (run(true)?, run(false)?);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&ours.0), bits(&candle.0), "{op:?} values");
            assert_eq!(bits(&ours.1), bits(&candle.1), "{op:?} input gradient");
            assert_eq!(bits(&ours.2), bits(&candle.2), "{op:?} vector gradient");
        }
        Ok(())
    }
}
