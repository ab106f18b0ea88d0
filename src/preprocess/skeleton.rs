//! Skeleton normalisation: each frame centred on the centre joint (hip / spine base) and scaled
//! by the torso length (centre joint to torso-top joint), so that position and body size do
//! not drive the model.

use crate::recording::{ModalityKind, SkeletonLayout};

use super::align::AlignedRecording;

/// Smallest torso length (in the modality's units) that is used to scale; shorter torsos
/// (a collapsed or missing skeleton) are only centred.
pub const MIN_TORSO_LENGTH: f32 = 1e-6;

/// Centres and scales one frame of `3 × joints` values in place; returns false when the torso
/// was too short to scale (the frame is then only centred).
pub fn normalise_frame(layout: &SkeletonLayout, frame: &mut [f32]) -> bool {
    let centre = [0, 1, 2].map(|a| frame[3 * layout.centre_joint + a]);
    for joint in frame.chunks_exact_mut(3) {
        for a in 0..3 {
            joint[a] -= centre[a];
        }
    }
    let top = &frame[3 * layout.torso_top_joint..3 * layout.torso_top_joint + 3];
    let torso = top.iter().map(|v| v * v).sum::<f32>().sqrt();
    if torso.is_nan() || torso < MIN_TORSO_LENGTH {
        return false;
    }
    frame.iter_mut().for_each(|v| *v /= torso);
    true
}

/// Normalises every skeleton modality of an aligned recording; returns the number of frames
/// whose torso was too short to scale.
pub fn normalise_skeletons(aligned: &mut AlignedRecording) -> usize {
    let mut unscaled = 0;
    for (info, values) in &mut aligned.streams {
        if let ModalityKind::Skeleton(layout) = &info.kind {
            let c = info.channel_names.len();
            for frame in values.chunks_exact_mut(c) {
                if !normalise_frame(layout, frame) {
                    unscaled += 1;
                }
            }
        }
    }
    unscaled
}
