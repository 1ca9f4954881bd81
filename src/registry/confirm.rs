//! Stage 2 of the near-duplicate match, one rule for the service and the study: each candidate's
//! original is first re-enacted ([`crate::fingerprint::reenact`]: the upload's own edits applied to
//! the original, compared at the upload's size), and only where that falls short is it aligned
//! the old way ([`crate::fingerprint::align::similarity`]: every crop and scale, shape and
//! texture). A candidate is confirmed by the first tier whose threshold it reaches; a re-enacted
//! match outranks an aligned one, and within a tier the higher score wins.

use image::DynamicImage;
use serde::{Deserialize, Serialize};

use crate::config::VerifySettings;
use crate::fingerprint::align::{comparison_image, is_downscaled, similarity};
use crate::fingerprint::reenact::{reenacted_similarity, Probe};

/// Which comparison confirmed a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The original, put through the upload's edits, reproduces the upload.
    Reenacted,
    /// The original, aligned over crops and scales, resembles the upload closely enough.
    Aligned,
}

/// The confirmation thresholds (settings `verify.min_reenacted_similarity[_downscaled]`,
/// `min_similarity[_downscaled]`, `align_from`). An upload under 3/4 of the original's side
/// ([`is_downscaled`]) carries less detail, so look-alikes come closer: it has its own, stricter
/// value in each tier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub reenacted: f64,
    pub reenacted_downscaled: f64,
    pub aligned: f64,
    pub aligned_downscaled: f64,
    /// Candidates whose re-enacted similarity is below this are not aligned at all (the
    /// alignment search costs ten re-enactments, and a candidate that no edit brings this close
    /// is no copy).
    pub align_from: f64,
}

impl Thresholds {
    #[must_use]
    pub fn of(settings: &VerifySettings) -> Self {
        Self {
            reenacted: settings.min_reenacted_similarity,
            reenacted_downscaled: settings.min_reenacted_similarity_downscaled,
            aligned: settings.min_similarity,
            aligned_downscaled: settings.min_similarity_downscaled,
            align_from: settings.align_from,
        }
    }

    /// The re-enacted tier's threshold.
    #[must_use]
    pub fn reenacted_for(&self, downscaled: bool) -> f64 {
        if downscaled {
            self.reenacted_downscaled
        } else {
            self.reenacted
        }
    }

    /// The aligned tier's threshold.
    #[must_use]
    pub fn aligned_for(&self, downscaled: bool) -> f64 {
        if downscaled {
            self.aligned_downscaled
        } else {
            self.aligned
        }
    }

    /// Whether the service aligns a candidate with these scores: re-enactment fell short, but
    /// not by far.
    #[must_use]
    pub fn aligns(&self, reenacted: f64, downscaled: bool) -> bool {
        reenacted >= self.align_from && reenacted < self.reenacted_for(downscaled)
    }
}

/// What stage 2 keeps of an upload: its small comparison copy, what re-enactment needs, and its
/// longer side as uploaded.
#[derive(Debug, Clone)]
pub struct UploadProbe {
    pub comparison: DynamicImage,
    pub reenact: Probe,
    pub side: u32,
}

impl UploadProbe {
    /// From the decoded upload and its bytes (a JPEG's quantisation table, a lossy WebP's
    /// quantiser). `image` may be
    /// the bounded working copy of a large upload; `side` is the upload's longer side as
    /// uploaded.
    #[must_use]
    pub fn new(image: &DynamicImage, bytes: &[u8], side: u32) -> Self {
        Self {
            comparison: comparison_image(image),
            reenact: Probe::of_upload(image, bytes),
            side,
        }
    }
}

/// One candidate's scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub reenacted: f64,
    /// `None` where the candidate was not aligned ([`Thresholds::aligns`]).
    pub aligned: Option<f64>,
    /// The upload is downscaled against this original (the stricter aligned threshold).
    pub downscaled: bool,
}

/// Scores `original` against the upload: re-enacted first, then aligned where `align(reenacted,
/// downscaled)` says so (the service: [`Thresholds::aligns`]; the study aligns more, to report
/// each tier on its own).
#[must_use]
pub fn score(
    probe: &UploadProbe,
    original: &DynamicImage,
    align: impl FnOnce(f64, bool) -> bool,
) -> Scores {
    let reenacted = reenacted_similarity(&probe.reenact, original);
    let downscaled = is_downscaled(probe.side, original.width().max(original.height()));
    let aligned = align(reenacted, downscaled).then(|| similarity(&probe.comparison, original));
    Scores {
        reenacted,
        aligned,
        downscaled,
    }
}

/// A confirmed candidate: the tier, its score there and the threshold it reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confirmed {
    pub tier: Tier,
    pub similarity: f64,
    pub threshold: f64,
}

impl Scores {
    /// The tier that confirms this candidate, if any.
    #[must_use]
    pub fn confirmed(&self, thresholds: &Thresholds) -> Option<Confirmed> {
        let needed = thresholds.reenacted_for(self.downscaled);
        if self.reenacted >= needed {
            return Some(Confirmed {
                tier: Tier::Reenacted,
                similarity: self.reenacted,
                threshold: needed,
            });
        }
        if self.reenacted < thresholds.align_from {
            return None;
        }
        let needed = thresholds.aligned_for(self.downscaled);
        self.aligned
            .filter(|&a| a >= needed)
            .map(|similarity| Confirmed {
                tier: Tier::Aligned,
                similarity,
                threshold: needed,
            })
    }
}

impl Confirmed {
    /// Whether `self` outranks `other`: a re-enacted match over an aligned one, then the higher
    /// score.
    #[must_use]
    pub fn beats(&self, other: &Self) -> bool {
        match (self.tier, other.tier) {
            (Tier::Reenacted, Tier::Aligned) => true,
            (Tier::Aligned, Tier::Reenacted) => false,
            _ => self.similarity > other.similarity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        reenacted: 0.995,
        reenacted_downscaled: 0.998,
        aligned: 0.96,
        aligned_downscaled: 0.99,
        align_from: 0.9,
    };

    fn scores(reenacted: f64, aligned: Option<f64>, downscaled: bool) -> Scores {
        Scores {
            reenacted,
            aligned,
            downscaled,
        }
    }

    #[test]
    fn each_tier_has_its_threshold() {
        let c = scores(0.996, None, false).confirmed(&T).unwrap();
        assert_eq!((c.tier, c.threshold), (Tier::Reenacted, 0.995));
        let c = scores(0.9, Some(0.97), false).confirmed(&T).unwrap();
        assert_eq!((c.tier, c.similarity), (Tier::Aligned, 0.97));
        assert_eq!(scores(0.9, Some(0.97), true).confirmed(&T), None);
        assert_eq!(scores(0.994, Some(0.95), false).confirmed(&T), None);
        assert_eq!(scores(0.994, None, false).confirmed(&T), None);
        // Downscaled: the stricter re-enacted value.
        assert_eq!(scores(0.996, None, true).confirmed(&T), None);
        // Below the alignment gate an alignment does not count (the service never makes it).
        assert_eq!(scores(0.85, Some(0.999), false).confirmed(&T), None);
        assert!(T.aligns(0.9, false) && !T.aligns(0.89, false) && !T.aligns(0.995, false));
    }

    #[test]
    fn a_reenacted_match_outranks_a_closer_looking_aligned_one() {
        let reenacted = scores(0.996, None, false).confirmed(&T).unwrap();
        let aligned = scores(0.9, Some(0.999), false).confirmed(&T).unwrap();
        assert!(reenacted.beats(&aligned));
        assert!(!aligned.beats(&reenacted));
        let better = scores(0.999, None, false).confirmed(&T).unwrap();
        assert!(better.beats(&reenacted) && !reenacted.beats(&better));
    }
}
