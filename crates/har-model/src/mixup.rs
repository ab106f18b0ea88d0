//! Mixup within a training batch: some windows are replaced by a blend `λ·x_i + (1 − λ)·x_j`
//! of themselves and another window of the batch, and their target becomes the same blend of
//! the two one-hot labels.
//!
//! In distillation the teacher sees the same blended window, so the student is taught the
//! teacher's function between classes, where a window of walking turns into one of going
//! downstairs — the region where the two disagree most (function matching, as in Beyer et
//! al., "Knowledge distillation: a good teacher is patient and consistent", 2022).

use candle_core::{Device, Tensor, D};
use har_core::rng::Rng;

use crate::error::Result;

/// Which windows of a batch are blended with which, and how much of each is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Mixup {
    /// For window `b`, the window of the batch it is blended with (`b` itself when unmixed).
    pub partner: Vec<u32>,
    /// For window `b`, the share λ of its own values and label (1 when unmixed).
    pub keep: Vec<f32>,
}

impl Mixup {
    /// Draws the blend of a batch of `batch` windows: each window is mixed with probability
    /// `share`, with a partner and a λ drawn uniformly.
    pub fn draw(batch: usize, share: f64, rng: &mut Rng) -> Self {
        let mut partner: Vec<u32> = (0..batch as u32).collect();
        let mut keep = vec![1f32; batch];
        for b in 0..batch {
            if rng.uniform(0.0, 1.0) < share {
                partner[b] = (rng.next_u64() % batch as u64) as u32;
                keep[b] = rng.uniform(0.0, 1.0) as f32;
            }
        }
        Self { partner, keep }
    }

    /// The blended inputs (each modality `[B, T, C]`).
    pub fn inputs(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let batch = self.keep.len();
        let partner = Tensor::new(self.partner.as_slice(), &Device::Cpu)?;
        let keep = Tensor::from_slice(&self.keep, (batch, 1, 1), &Device::Cpu)?;
        let other = (1.0 - &keep)?;
        inputs
            .iter()
            .map(|x| {
                let partners = x.index_select(&partner, 0)?;
                Ok((x.broadcast_mul(&keep)? + partners.broadcast_mul(&other)?)?)
            })
            .collect()
    }

    /// The blended targets `[B, K]` of the class indices `targets` (one per window).
    pub fn targets(&self, targets: &[u32], classes: usize) -> Result<Tensor> {
        let mut soft = vec![0f32; targets.len() * classes];
        for (b, row) in soft.chunks_exact_mut(classes).enumerate() {
            row[targets[b] as usize] += self.keep[b];
            row[targets[self.partner[b] as usize] as usize] += 1.0 - self.keep[b];
        }
        Ok(Tensor::from_vec(
            soft,
            (targets.len(), classes),
            &Device::Cpu,
        )?)
    }
}

/// Cross-entropy against target distributions `[B, K]` (rows summing to 1), averaged over
/// the batch.
pub fn soft_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let batch = logits.dim(0)? as f64;
    Ok(((targets * log_p)?.sum_all()?.neg()? / batch)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blends_values_and_labels_with_the_same_share() -> Result<()> {
        let mixup = Mixup {
            partner: vec![1, 1, 0],
            keep: vec![0.25, 1.0, 0.5],
        };
        let x = Tensor::from_vec(vec![0f32, 4., 8., 12., 100., 200.], (3, 2, 1), &Device::Cpu)?;
        let mixed = mixup.inputs(&[x])?[0].flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(mixed, vec![6., 10., 8., 12., 50., 102.]);
        let soft = mixup.targets(&[0, 2, 1], 3)?.to_vec2::<f32>()?;
        assert_eq!(
            soft,
            vec![vec![0.25, 0., 0.75], vec![0., 0., 1.], vec![0.5, 0.5, 0.],]
        );
        Ok(())
    }

    #[test]
    fn soft_cross_entropy_of_one_hot_targets_is_the_cross_entropy() -> Result<()> {
        let logits = Tensor::from_vec(vec![1f32, 2., 0.5, -1., 0., 3.], (2, 3), &Device::Cpu)?;
        let classes = Tensor::new(&[1u32, 2], &Device::Cpu)?;
        let one_hot = Mixup {
            partner: vec![0, 1],
            keep: vec![1.0, 1.0],
        }
        .targets(&[1, 2], 3)?;
        let expected = candle_nn::loss::cross_entropy(&logits, &classes)?.to_scalar::<f32>()?;
        let got = soft_cross_entropy(&logits, &one_hot)?.to_scalar::<f32>()?;
        assert!((expected - got).abs() < 1e-6, "{got} vs {expected}");
        Ok(())
    }

    #[test]
    fn no_share_mixes_nothing_and_draws_stay_in_the_batch() {
        let mut rng = Rng::new(3);
        let none = Mixup::draw(8, 0.0, &mut rng);
        assert!(none.keep.iter().all(|&k| k == 1.0));
        let all = Mixup::draw(8, 1.0, &mut rng);
        assert!(all.partner.iter().all(|&p| p < 8));
        assert!(all.keep.iter().all(|&k| (0.0..1.0).contains(&k)));
    }
}
