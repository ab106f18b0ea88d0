//! The spectral token's band powers on candle tensors (training); the tables, the band layout
//! and the plain-slice path are the runtime's ([`har_runtime::spectrum`]).

use candle_core::{Result, Tensor};
use har_runtime::spectrum::{SpectrumTables, BAND_POWER_FLOOR};

/// Log band powers of windows `[B, T, C]` (normalised values): `[B, C, bands]`. (The
/// operations, and so the rounding, are those the shipped HAPT models were trained with.)
pub fn log_band_power(tables: &SpectrumTables, xs: &Tensor) -> Result<Tensor> {
    let (b, t, c) = xs.dims3()?;
    let bins = tables.bins();
    let device = xs.device();
    let cos = Tensor::from_slice(tables.cos(), (t, bins), device)?;
    let sin = Tensor::from_slice(tables.sin(), (t, bins), device)?;
    let bands = Tensor::from_slice(&tables.band_matrix(), (bins, tables.bands()), device)?;
    let rows = xs.transpose(1, 2)?.contiguous()?.reshape((b * c, t))?;
    let power = (rows.matmul(&cos)?.sqr()? + rows.matmul(&sin)?.sqr()?)?;
    (power.matmul(&bands)? + BAND_POWER_FLOOR as f64)?
        .log()?
        .reshape((b, c, tables.bands()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The tensor path equals the runtime's slice path (DFT matrix, then band powers).
    #[test]
    fn tensor_and_slice_band_powers_agree() {
        let tables = SpectrumTables::new(128);
        let window: Vec<f32> = (0..128)
            .flat_map(|t| {
                let t = t as f32;
                [(0.25 * t).sin() + 0.1 * (1.3 * t).cos(), 0.3]
            })
            .collect();
        let k2 = 2 * tables.bins();
        for channel in 0..2 {
            let mut row = vec![0f32; k2];
            for (t, sample) in window.chunks_exact(2).enumerate() {
                for (r, w) in row
                    .iter_mut()
                    .zip(&tables.dft_matrix()[t * k2..(t + 1) * k2])
                {
                    *r += sample[channel] * w;
                }
            }
            let mut plain = Vec::new();
            tables.log_band_power_from_dft(&row, &mut plain);
            let xs = Tensor::from_vec(window.clone(), (1, 128, 2), &Device::Cpu).unwrap();
            let tensor = log_band_power(&tables, &xs)
                .unwrap()
                .to_vec3::<f32>()
                .unwrap();
            for (a, b) in tensor[0][channel].iter().zip(&plain) {
                assert!((a - b).abs() < 1e-3, "channel {channel}: {a} vs {b}");
            }
        }
    }
}
