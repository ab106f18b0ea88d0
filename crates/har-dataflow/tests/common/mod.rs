//! Helpers shared by the integration tests of the dataflow library.

use har_core::preprocess::normalize::{ChannelStats, Normalizer};
use har_core::preprocess::{LabelPolicy, WindowConfig};
use har_dataflow::windower::{ModalitySetup, StreamingSpec};

/// Identity standardisation for `channels` channels of each named modality.
pub fn identity(modalities: &[(&str, usize)]) -> Normalizer {
    Normalizer {
        modalities: modalities
            .iter()
            .map(|(name, c)| ChannelStats {
                modality: name.to_string(),
                channel_names: (0..*c).map(|i| i.to_string()).collect(),
                mean: vec![0.0; *c],
                std: vec![1.0; *c],
            })
            .collect(),
    }
}

/// A 50 Hz streaming spec of the named modalities with identity standardisation.
pub fn spec(modalities: &[(&str, usize)], length: usize, stride: usize) -> StreamingSpec {
    StreamingSpec {
        modalities: modalities
            .iter()
            .map(|(name, c)| ModalitySetup {
                name: name.to_string(),
                channels: *c,
                skeleton: None,
            })
            .collect(),
        rate_hz: Some(50.0),
        window: WindowConfig {
            length,
            stride,
            label_policy: LabelPolicy::Pure,
        },
        max_gap_periods: 2.5,
        normalizer: identity(modalities),
    }
}
