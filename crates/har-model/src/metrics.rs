//! Classification metrics: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix.

use serde::{Deserialize, Serialize};

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class name.
    pub name: String,
    /// TP / (TP + FP); 0 when nothing was predicted as this class.
    pub precision: f64,
    /// TP / (TP + FN); 0 when the class has no samples.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Number of true samples of the class.
    pub support: usize,
}

/// Metrics of a set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Share of correct predictions.
    pub accuracy: f64,
    /// Unweighted mean of per-class F1 over classes with support.
    pub macro_f1: f64,
    /// Per class, in class order.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Metrics {
    /// Computes the metrics of `predicted` against `truth` (class indices below `names.len()`).
    pub fn compute(predicted: &[u32], truth: &[u32], names: &[String]) -> Self {
        let k = names.len();
        let mut confusion = vec![vec![0usize; k]; k];
        for (&p, &t) in predicted.iter().zip(truth) {
            confusion[t as usize][p as usize] += 1;
        }
        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|c| {
                let tp = confusion[c][c] as f64;
                let predicted_c: usize = (0..k).map(|t| confusion[t][c]).sum();
                let support: usize = confusion[c].iter().sum();
                let precision = if predicted_c > 0 {
                    tp / predicted_c as f64
                } else {
                    0.0
                };
                let recall = if support > 0 {
                    tp / support as f64
                } else {
                    0.0
                };
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassMetrics {
                    name: names[c].clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let with_support: Vec<&ClassMetrics> = per_class.iter().filter(|c| c.support > 0).collect();
        let macro_f1 = if with_support.is_empty() {
            0.0
        } else {
            with_support.iter().map(|c| c.f1).sum::<f64>() / with_support.len() as f64
        };
        let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
        Self {
            accuracy: if truth.is_empty() {
                0.0
            } else {
                correct as f64 / truth.len() as f64
            },
            macro_f1,
            per_class,
            confusion,
        }
    }
}
