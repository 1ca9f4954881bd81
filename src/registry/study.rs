//! The registry-match study of `hallmark evaluate --registry`: the service's two-stage match
//! ([`super::confirm`]) run in memory over our own generated images and real ones, each under the
//! edits people apply ([`Edit::ALL`]), to measure recall and false matches and to choose the
//! confirmation thresholds from data.
//!
//! **The protocol.** Real images come in two disjoint splits ([`RealSplits`]): a *calibration*
//! split (the first `calibration` images of the training split: the hardest look-alikes, since the
//! generator learnt from them) on which the thresholds are chosen, and a *held-out* split (the test
//! split and the training images after the calibration block) on which false matches are
//! reported. The thresholds are chosen on the calibration split alone ([`MatchStudy::calibrated`]);
//! the held-out figures, and the margin between each threshold and the nearest held-out image,
//! are what the report and the card give.

use std::fmt::Write as _;
use std::io::Cursor;
use std::ops::Range;

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, ImageFormat};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::confirm::{score, Scores, Thresholds, UploadProbe};
use crate::config::VerifySettings;
use crate::fingerprint::align::{query_phashes, variant_phashes};
use crate::fingerprint::reenact::{area_resize, pillow_box_resize, Luma};
use crate::fingerprint::working_copy;
use crate::fingerprint::Fingerprinter;
use crate::progress::percentile;
use crate::registry::index::HashIndex;

/// How a copy is resized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Triangle (bilinear), support scaled when shrinking.
    Triangle,
    /// Catmull-Rom (Keys, a = -0.5): Pillow's and most editors' "bicubic".
    Bicubic,
    Lanczos,
    /// Area averaging, fractional pixels weighted by coverage: OpenCV's `INTER_AREA`, what
    /// browsers and phones mostly use to shrink ([`crate::fingerprint::reenact::area_resize`]).
    Area,
    /// Pillow's `Image.BOX`: the unweighted mean of the pixels whose centres fall in the window
    /// ([`crate::fingerprint::reenact::pillow_box_resize`]; the same as `Area` at 0.5x, not at
    /// 0.75x; `scripts/registry_pillow.py` checks Pillow's own).
    PillowBox,
    /// `image::imageops::thumbnail`: averages of whole-pixel blocks.
    Thumbnail,
}

impl Filter {
    fn name(self) -> &'static str {
        match self {
            Self::Triangle => "triangle",
            Self::Bicubic => "bicubic",
            Self::Lanczos => "lanczos",
            Self::Area => "area",
            Self::PillowBox => "pillow-box",
            Self::Thumbnail => "thumbnail",
        }
    }

    fn resize(self, image: &DynamicImage, factor: f64) -> DynamicImage {
        let w = ((f64::from(image.width()) * factor).round() as u32).max(1);
        let h = ((f64::from(image.height()) * factor).round() as u32).max(1);
        match self {
            Self::Triangle => image.resize_exact(w, h, FilterType::Triangle),
            Self::Bicubic => image.resize_exact(w, h, FilterType::CatmullRom),
            Self::Lanczos => image.resize_exact(w, h, FilterType::Lanczos3),
            Self::Area => {
                let plane = Luma::of(image);
                DynamicImage::ImageLuma8(area_resize(&plane, w as usize, h as usize).grey())
            }
            Self::PillowBox => {
                let plane = Luma::of(image);
                DynamicImage::ImageLuma8(pillow_box_resize(&plane, w as usize, h as usize).grey())
            }
            Self::Thumbnail => {
                DynamicImage::ImageLuma8(image::imageops::thumbnail(&image.to_luma8(), w, h))
            }
        }
    }
}

/// An edit an uploader's software makes before the copy reaches a moderator. Every edit ends in
/// a file (PNG, or JPEG or lossy WebP where named) that is decoded again, as an upload would
/// arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Edit {
    Clean,
    Jpeg(u8),
    /// Saved as a lossy WebP at this quality by libwebp's default preset (as Pillow and `cwebp`
    /// write it).
    Webp(u8),
    Resize(f64, Filter),
    /// Resized, then saved as JPEG at this quality (what a social network does).
    ResizeJpeg(f64, Filter, u8),
    /// A window of `1 - f` of each side at a seeded random offset.
    Crop(f64),
    CropJpeg(f64, u8),
    /// Moved by this many pixels along each axis (each direction drawn at random), the uncovered
    /// border black.
    Shift(u32),
}

impl Edit {
    /// The edits measured: the list of what people apply.
    pub const ALL: [Self; 20] = [
        Self::Clean,
        Self::Jpeg(90),
        Self::Jpeg(75),
        Self::Jpeg(50),
        Self::Webp(75),
        Self::Resize(0.5, Filter::Triangle),
        Self::Resize(0.5, Filter::Bicubic),
        Self::Resize(0.5, Filter::Lanczos),
        Self::Resize(0.5, Filter::Area),
        Self::Resize(0.75, Filter::Triangle),
        Self::Resize(0.75, Filter::Bicubic),
        Self::Resize(0.75, Filter::Lanczos),
        Self::Resize(0.75, Filter::Area),
        Self::Resize(0.75, Filter::PillowBox),
        Self::ResizeJpeg(0.5, Filter::Bicubic, 75),
        Self::ResizeJpeg(0.75, Filter::Area, 75),
        Self::Crop(0.1),
        Self::CropJpeg(0.1, 75),
        Self::Shift(1),
        Self::Resize(2.0, Filter::Bicubic),
    ];

    /// Short name for tables.
    #[must_use]
    pub fn name(&self) -> String {
        match *self {
            Self::Clean => "clean".into(),
            Self::Jpeg(q) => format!("jpeg{q}"),
            Self::Webp(q) => format!("webp{q}"),
            Self::Resize(f, filter) => format!("{f}x-{}", filter.name()),
            Self::ResizeJpeg(f, filter, q) => format!("{f}x-{}+jpeg{q}", filter.name()),
            Self::Crop(f) => format!("crop{}%", (f * 100.0).round()),
            Self::CropJpeg(f, q) => format!("crop{}%+jpeg{q}", (f * 100.0).round()),
            Self::Shift(p) => format!("shift{p}px"),
        }
    }

    /// Whether the target for this edit is the relaxed one (95%: JPEG 50, and a resize
    /// followed by JPEG) rather than 99%.
    #[must_use]
    pub fn relaxed_target(&self) -> bool {
        matches!(self, Self::Jpeg(q) if *q <= 50) || matches!(self, Self::ResizeJpeg(..))
    }

    /// The edited copy as a file's bytes and its decoded pixels.
    #[must_use]
    pub fn apply(&self, image: &DynamicImage, rng: &mut impl Rng) -> (Vec<u8>, DynamicImage) {
        match *self {
            Self::Clean => encode(image, None),
            Self::Jpeg(q) => encode(image, Some(q)),
            Self::Webp(q) => decoded(image, crate::fingerprint::webp::write_lossy(image, q)),
            Self::Resize(f, filter) => encode(&filter.resize(image, f), None),
            Self::ResizeJpeg(f, filter, q) => encode(&filter.resize(image, f), Some(q)),
            Self::Crop(f) => encode(&crop(image, f, rng), None),
            Self::CropJpeg(f, q) => encode(&crop(image, f, rng), Some(q)),
            Self::Shift(p) => {
                let grey = image.to_luma8();
                let (w, h) = grey.dimensions();
                let dx = if rng.gen_bool(0.5) {
                    i64::from(p)
                } else {
                    -i64::from(p)
                };
                let dy = if rng.gen_bool(0.5) {
                    i64::from(p)
                } else {
                    -i64::from(p)
                };
                let shifted = GrayImage::from_fn(w, h, |x, y| {
                    let (sx, sy) = (i64::from(x) - dx, i64::from(y) - dy);
                    if (0..i64::from(w)).contains(&sx) && (0..i64::from(h)).contains(&sy) {
                        *grey.get_pixel(sx as u32, sy as u32)
                    } else {
                        image::Luma([0])
                    }
                });
                encode(&DynamicImage::ImageLuma8(shifted), None)
            }
        }
    }
}

fn crop(image: &DynamicImage, f: f64, rng: &mut impl Rng) -> DynamicImage {
    crate::detect::augment::crop(image, f, f, rng)
}

/// PNG (`quality` None) or JPEG bytes of `image`, and the image decoded from them.
fn encode(image: &DynamicImage, quality: Option<u8>) -> (Vec<u8>, DynamicImage) {
    let mut bytes = Vec::new();
    let written = match quality {
        Some(q) => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, q)
            .encode_image(&image.to_luma8()),
        None => image.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png),
    };
    decoded(image, written.ok().map(|()| bytes))
}

/// The file's bytes and the image decoded from them; empty bytes and `image` itself when the
/// file could not be written or read back.
fn decoded(image: &DynamicImage, file: Option<Vec<u8>>) -> (Vec<u8>, DynamicImage) {
    match file.and_then(|bytes| image::load_from_memory(&bytes).ok().map(|d| (bytes, d))) {
        Some(pair) => pair,
        None => (Vec::new(), image.clone()),
    }
}

/// Which real images play which part: index ranges into the training and test splits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealSplits {
    /// Training images the thresholds are chosen on.
    pub calibration: Range<usize>,
    /// Training images after the calibration block, held out.
    pub held_out_train: Range<usize>,
    /// Test images, held out.
    pub test: Range<usize>,
}

impl RealSplits {
    /// The first `calibration` training images calibrate; the next `held_out_train` (default: the
    /// rest) and the first `test` test images (default: all) are held out.
    #[must_use]
    pub fn new(
        train_len: usize,
        test_len: usize,
        calibration: usize,
        held_out_train: Option<usize>,
        test: Option<usize>,
    ) -> Self {
        let calibration = calibration.min(train_len);
        let rest = train_len - calibration;
        Self {
            calibration: 0..calibration,
            held_out_train: calibration..calibration + held_out_train.map_or(rest, |n| n.min(rest)),
            test: 0..test.map_or(test_len, |n| n.min(test_len)),
        }
    }

    #[must_use]
    pub fn held_out_len(&self) -> usize {
        self.held_out_train.len() + self.test.len()
    }

    /// Whether no training image is in both the calibration and the held-out part.
    #[must_use]
    pub fn disjoint(&self) -> bool {
        self.calibration.end <= self.held_out_train.start
            || self.held_out_train.end <= self.calibration.start
            || self.held_out_train.is_empty()
            || self.calibration.is_empty()
    }
}

/// A generated image under one edit: its own original's scores (None when the original was not
/// among the candidates) and the best of every other candidate's.
#[derive(Debug, Clone, Copy)]
pub struct OwnScore {
    pub own: Option<Scores>,
    /// Best re-enacted and aligned scores of any other candidate.
    pub rival_reenacted: f64,
    pub rival_aligned: f64,
    pub downscaled: bool,
}

/// A real image under one edit: the best re-enacted score of any candidate and the best aligned
/// score of any candidate the service would align ([`Thresholds::aligns`]'s gate; 0: none), and
/// whether it was compared as a downscaled copy.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealScore {
    pub reenacted: f64,
    pub aligned: f64,
    pub downscaled: bool,
}

#[derive(Debug, Clone)]
pub struct MatchStudy {
    pub edits: Vec<Edit>,
    pub registered: usize,
    pub candidate_distance: u32,
    pub max_candidates: usize,
    pub splits: RealSplits,
    /// `own[e][i]`: generated image `i` under edit `e`.
    pub own: Vec<Vec<OwnScore>>,
    /// `calibration[e][i]`, `held_out[e][i]`: real image `i` of that split under edit `e`.
    pub calibration: Vec<Vec<RealScore>>,
    pub held_out: Vec<Vec<RealScore>>,
    /// The configured thresholds.
    pub configured: Thresholds,
}

/// Runs `f` over `items` on every core, keeping the order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let f = &f;
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, item)| f(c * chunk + i, item))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("study worker panicked"))
            .collect()
    })
}

/// A per-image random stream, so results do not depend on how the work is split among threads.
fn rng_for(seed: u64, stream: u64, index: usize) -> ChaCha8Rng {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    rng.set_stream(stream);
    rng
}

/// The study's inputs.
pub struct StudyImages<'a> {
    /// Our generated images, as generated: registered, then edited and looked up.
    pub generated: &'a [DynamicImage],
    pub calibration: &'a [DynamicImage],
    pub held_out: &'a [DynamicImage],
    pub splits: RealSplits,
}

/// Every generated original registered (its seventeen variant hashes), then each edited copy of
/// each image matched as the service would: candidates from the service's index, each scored by
/// both tiers (the study always aligns, to report the aligned tier on its own too).
#[must_use]
pub fn match_study(
    images: &StudyImages<'_>,
    settings: &VerifySettings,
    seed: u64,
    bar: &indicatif::ProgressBar,
) -> MatchStudy {
    let fp = Fingerprinter::new();
    let originals = images.generated;
    let variants: Vec<Vec<u64>> = par_map(originals, |_, i| variant_phashes(&fp, i));
    let index = HashIndex::standalone(
        variants
            .iter()
            .enumerate()
            .map(|(i, hashes)| (Uuid::from_u128(i as u128), hashes.as_slice())),
    );
    let (d, k) = (settings.phash_max_distance, settings.max_candidates);
    let align_from = settings.align_from;
    // Our copies are always aligned (for the aligned tier's own recall); real images where the
    // service would align them, whatever the thresholds chosen later.
    let scored = |edit: &Edit, image: &DynamicImage, rng: &mut ChaCha8Rng, align_all: bool| {
        let (bytes, copy) = edit.apply(image, rng);
        let work = working_copy(&copy);
        let probe = UploadProbe::new(&work, &bytes, copy.width().max(copy.height()));
        index
            .search(&query_phashes(&fp, &work), d, k)
            .unwrap_or_default()
            .into_iter()
            .map(|(id, _)| {
                let c = usize::try_from(id.as_u128()).unwrap_or(usize::MAX);
                (
                    c,
                    score(&probe, &originals[c], |r, _| align_all || r >= align_from),
                )
            })
            .collect::<Vec<_>>()
    };
    let real = |set: &[DynamicImage], edit: &Edit, e: usize, stream: u64| {
        par_map(set, |i, image| {
            bar.inc(1);
            let mut rng = rng_for(seed ^ e as u64, stream, i);
            let mut best = RealScore::default();
            for (_, s) in scored(edit, image, &mut rng, false) {
                best.reenacted = best.reenacted.max(s.reenacted);
                best.aligned = best.aligned.max(s.aligned.unwrap_or(0.0));
                best.downscaled |= s.downscaled;
            }
            best
        })
    };
    let mut own = Vec::new();
    let mut calibration = Vec::new();
    let mut held_out = Vec::new();
    for (e, edit) in Edit::ALL.iter().enumerate() {
        own.push(par_map(originals, |i, image| {
            bar.inc(1);
            let mut rng = rng_for(seed ^ e as u64, 2, i);
            let (mut own, mut rr, mut ra) = (None, 0f64, 0f64);
            let mut downscaled = false;
            for (c, s) in scored(edit, image, &mut rng, true) {
                downscaled |= s.downscaled;
                if c == i {
                    own = Some(s);
                } else {
                    rr = rr.max(s.reenacted);
                    ra = ra.max(s.aligned.unwrap_or(0.0));
                }
            }
            OwnScore {
                own,
                rival_reenacted: rr,
                rival_aligned: ra,
                downscaled,
            }
        }));
        calibration.push(real(images.calibration, edit, e, 3));
        held_out.push(real(images.held_out, edit, e, 4));
    }
    MatchStudy {
        edits: Edit::ALL.to_vec(),
        registered: originals.len(),
        candidate_distance: d,
        max_candidates: k,
        splits: images.splits.clone(),
        own,
        calibration,
        held_out,
        configured: Thresholds::of(settings),
    }
}

/// Which comparison tiers a rule uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The aligned similarity alone (the confirmation before re-enactment).
    AlignedOnly,
    /// Re-enactment alone.
    ReenactedOnly,
    /// Re-enactment, then alignment (the service's).
    Both,
}

impl Rule {
    fn limit(self, t: Thresholds) -> Thresholds {
        match self {
            Self::AlignedOnly => Thresholds {
                reenacted: f64::INFINITY,
                reenacted_downscaled: f64::INFINITY,
                align_from: f64::NEG_INFINITY,
                ..t
            },
            Self::ReenactedOnly => Thresholds {
                aligned: f64::INFINITY,
                aligned_downscaled: f64::INFINITY,
                ..t
            },
            Self::Both => t,
        }
    }
}

impl RealScore {
    fn matched(&self, t: &Thresholds) -> bool {
        self.reenacted >= t.reenacted_for(self.downscaled)
            || self.aligned >= t.aligned_for(self.downscaled)
    }
}

impl OwnScore {
    /// Whether the copy is matched to its own original (and no other candidate outranks it).
    fn found(&self, t: &Thresholds) -> bool {
        let Some(own) = self.own else { return false };
        let Some(mine) = own.confirmed(t) else {
            return false;
        };
        let rival = Scores {
            reenacted: self.rival_reenacted,
            aligned: Some(self.rival_aligned),
            downscaled: self.downscaled,
        };
        rival.confirmed(t).is_none_or(|theirs| !theirs.beats(&mine))
    }
}

/// Rounds up to the next `step` strictly above `x`.
fn just_above(x: f64, step: f64) -> f64 {
    ((x / step).floor() + 1.0) * step
}

impl MatchStudy {
    /// Share of generated images under edit `e` matched to their own original.
    #[must_use]
    pub fn recall(&self, e: usize, t: &Thresholds) -> f64 {
        let hits = self.own[e].iter().filter(|s| s.found(t)).count();
        hits as f64 / self.own[e].len().max(1) as f64
    }

    /// Real images of a split matched to any registered image under edit `e`.
    #[must_use]
    pub fn false_matches_under(set: &[Vec<RealScore>], e: usize, t: &Thresholds) -> usize {
        set[e].iter().filter(|r| r.matched(t)).count()
    }

    /// Real images of a split (counted once over every edit) matched to any registered image.
    #[must_use]
    pub fn false_matches(set: &[Vec<RealScore>], t: &Thresholds) -> usize {
        let n = set.first().map_or(0, Vec::len);
        (0..n)
            .filter(|&i| set.iter().any(|v| v[i].matched(t)))
            .count()
    }

    /// Share of generated images whose original was among the candidates, per edit.
    #[must_use]
    pub fn candidate_recall(&self, e: usize) -> f64 {
        let hits = self.own[e].iter().filter(|s| s.own.is_some()).count();
        hits as f64 / self.own[e].len().max(1) as f64
    }

    /// The highest score a real image of `set` reaches in each tier and size class, as
    /// thresholds (`align_from` is left as configured).
    #[must_use]
    pub fn highest(&self, set: &[Vec<RealScore>]) -> Thresholds {
        let mut top = Thresholds {
            reenacted: 0.0,
            reenacted_downscaled: 0.0,
            aligned: 0.0,
            aligned_downscaled: 0.0,
            align_from: self.configured.align_from,
        };
        for r in set.iter().flatten() {
            if r.downscaled {
                top.reenacted_downscaled = top.reenacted_downscaled.max(r.reenacted);
                top.aligned_downscaled = top.aligned_downscaled.max(r.aligned);
            } else {
                top.reenacted = top.reenacted.max(r.reenacted);
                top.aligned = top.aligned.max(r.aligned);
            }
        }
        top
    }

    /// The thresholds chosen on the calibration split, in each tier and size class: the highest
    /// calibration score plus the distance from the calibration's 99.9th percentile to it (the
    /// tail extrapolated once), rounded up to 0.0001. Just above the calibration's maximum would
    /// not do: a held-out split 2.5 times larger holds a higher score with probability ~5/7.
    #[must_use]
    pub fn calibrated(&self) -> Thresholds {
        let pick = |down: bool, value: fn(&RealScore) -> f64| {
            let mut v: Vec<f64> = self
                .calibration
                .iter()
                .flatten()
                .filter(|r| r.downscaled == down)
                .map(value)
                .filter(|&x| x > 0.0)
                .collect();
            v.sort_by(f64::total_cmp);
            let top = v.last().copied().unwrap_or(0.0);
            let tail = top - percentile(&v, 0.999);
            just_above(top + tail, 1e-4)
        };
        Thresholds {
            reenacted: pick(false, |r| r.reenacted),
            reenacted_downscaled: pick(true, |r| r.reenacted),
            aligned: pick(false, |r| r.aligned),
            aligned_downscaled: pick(true, |r| r.aligned),
            align_from: self.configured.align_from,
        }
    }

    /// Each threshold minus the highest held-out score in its tier and size class (positive: no
    /// held-out image reaches it): re-enacted full size, downscaled, aligned full size,
    /// downscaled.
    #[must_use]
    pub fn margins(&self, t: &Thresholds) -> [f64; 4] {
        let top = self.highest(&self.held_out);
        [
            t.reenacted - top.reenacted,
            t.reenacted_downscaled - top.reenacted_downscaled,
            t.aligned - top.aligned,
            t.aligned_downscaled - top.aligned_downscaled,
        ]
    }

    /// The card's summary at the thresholds chosen on the calibration split (the values
    /// `verify.*` ships; a test keeps the two in step).
    #[must_use]
    pub fn confirmed(&self) -> crate::gan::card::ConfirmedMatch {
        use crate::gan::card::{ConfirmedMatch, RegistrySplits, TransformRate};
        let t = self.calibrated();
        let rates = |f: &dyn Fn(usize) -> f64| {
            self.edits
                .iter()
                .enumerate()
                .map(|(e, edit)| TransformRate {
                    transform: edit.name(),
                    rate: (f(e) * 1e5).round() / 1e5,
                })
                .collect()
        };
        let chosen = t;
        let margins = self.margins(&t);
        ConfirmedMatch {
            max_candidates: self.max_candidates as u64,
            min_similarity: t.aligned,
            min_similarity_downscaled: t.aligned_downscaled,
            min_reenacted_similarity: Some(t.reenacted),
            min_reenacted_similarity_downscaled: Some(t.reenacted_downscaled),
            align_from: Some(t.align_from),
            recall: rates(&|e| self.recall(e, &t)),
            candidate_recall: rates(&|e| self.candidate_recall(e)),
            false_matches: Self::false_matches(&self.held_out, &t) as u64,
            recommended_min_similarity: chosen.aligned,
            recommended_min_similarity_downscaled: chosen.aligned_downscaled,
            recommended_min_reenacted_similarity: Some(chosen.reenacted),
            recommended_min_reenacted_similarity_downscaled: Some(chosen.reenacted_downscaled),
            splits: Some(RegistrySplits {
                calibration: format!(
                    "Fashion-MNIST training images {}..{}",
                    self.splits.calibration.start, self.splits.calibration.end
                ),
                calibration_images: self.splits.calibration.len() as u64,
                held_out: format!(
                    "Fashion-MNIST test images {}..{} and training images {}..{}",
                    self.splits.test.start,
                    self.splits.test.end,
                    self.splits.held_out_train.start,
                    self.splits.held_out_train.end
                ),
                held_out_images: self.splits.held_out_len() as u64,
                calibration_false_matches: Self::false_matches(&self.calibration, &t) as u64,
                margin_reenacted: round4(margins[0]),
                margin_reenacted_downscaled: round4(margins[1]),
                margin_aligned: round4(margins[2]),
                margin_aligned_downscaled: round4(margins[3]),
            }),
        }
    }

    /// The full report: what was measured, our copies' scores, the real images' best scores,
    /// the thresholds chosen on calibration, and recall and false matches at those and at the
    /// configured thresholds.
    #[must_use]
    pub fn report(&self) -> String {
        let mut s = String::new();
        self.write_protocol(&mut s);
        self.write_own_scores(&mut s);
        self.write_real_scores(&mut s);
        let chosen = self.calibrated();
        let _ = writeln!(
            s,
            "\nthresholds chosen on the calibration split (in each tier and size class, the \
             highest calibration score plus its distance from the calibration's 99.9th \
             percentile): {}",
            describe(&chosen)
        );
        self.write_outcomes(
            &mut s,
            &format!(
                "at the thresholds chosen on calibration ({}):",
                describe(&chosen)
            ),
            &chosen,
        );
        let c = self.configured;
        self.write_outcomes(
            &mut s,
            &format!("at the configured thresholds ({}):", describe(&c)),
            &c,
        );
        s
    }

    /// The protocol: registry, candidates, confirmation, the real-image splits, the edits.
    fn write_protocol(&self, s: &mut String) {
        let n_cal = self.splits.calibration.len();
        let n_ho = self.splits.held_out_len();
        let _ = writeln!(
            s,
            "registry match (two stages): {} generated images registered (17 pHashes each: whole + a 4x4 \
             grid of 13/16 windows; uploads looked up by whole + 4 windows); candidates: nearest \
             variant within {} bits, at most {}; confirmation: re-enacted similarity (the upload's \
             edits applied to the original: shift/crop at scale 1, resize by 7 filters, the upload's \
             JPEG luma quantisation or lossy WebP quantiser; NCC at the upload's size), else aligned similarity (every crop \
             down to 85% and scale; mean of shape and texture NCC at 32 px)",
            self.registered, self.candidate_distance, self.max_candidates
        );
        let _ = writeln!(
            s,
            "real images: calibration (thresholds chosen here) = training images {}..{} ({n_cal}); \
             held out (false matches reported here) = test images {}..{} and training images \
             {}..{} ({n_ho}); the two are disjoint",
            self.splits.calibration.start,
            self.splits.calibration.end,
            self.splits.test.start,
            self.splits.test.end,
            self.splits.held_out_train.start,
            self.splits.held_out_train.end,
        );
        let _ = writeln!(s, "\nedits (every copy is a file, decoded again):");
        for edit in &self.edits {
            let _ = writeln!(s, "  {}", edit.name());
        }
    }

    /// Our copies: the own original among the candidates, and its scores in each tier.
    fn write_own_scores(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\nown original among the candidates, and its scores (re-enacted / aligned):"
        );
        let _ = writeln!(
            s,
            "  {:<22} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "edit", "candidate", "re min", "re p1", "re p50", "al min", "al p1"
        );
        for (e, edit) in self.edits.iter().enumerate() {
            let mut re: Vec<f64> = self.own[e]
                .iter()
                .filter_map(|o| o.own.map(|s| s.reenacted))
                .collect();
            let mut al: Vec<f64> = self.own[e]
                .iter()
                .filter_map(|o| o.own.and_then(|s| s.aligned))
                .collect();
            re.sort_by(f64::total_cmp);
            al.sort_by(f64::total_cmp);
            let _ = writeln!(
                s,
                "  {:<22} {:>8.2}% {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4}",
                edit.name(),
                self.candidate_recall(e) * 100.0,
                re.first().copied().unwrap_or(0.0),
                percentile(&re, 0.01),
                percentile(&re, 0.5),
                al.first().copied().unwrap_or(0.0),
                percentile(&al, 0.01),
            );
        }
    }

    /// The real images' best scores against any candidate, calibration then held out.
    fn write_real_scores(&self, s: &mut String) {
        for (label, set) in [
            ("calibration", &self.calibration),
            ("held-out", &self.held_out),
        ] {
            let _ = writeln!(
                s,
                "\nbest score of a {label} real image against any candidate (re-enacted / aligned):"
            );
            let _ = writeln!(
                s,
                "  {:<22} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "edit", "re max", "re p99.9", "al max", "al p99.9", "al p99"
            );
            for (e, edit) in self.edits.iter().enumerate() {
                let mut re: Vec<f64> = set[e].iter().map(|r| r.reenacted).collect();
                let mut al: Vec<f64> = set[e].iter().map(|r| r.aligned).collect();
                re.sort_by(f64::total_cmp);
                al.sort_by(f64::total_cmp);
                let _ = writeln!(
                    s,
                    "  {:<22} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4}",
                    edit.name(),
                    re.last().copied().unwrap_or(0.0),
                    percentile(&re, 0.999),
                    al.last().copied().unwrap_or(0.0),
                    percentile(&al, 0.999),
                    percentile(&al, 0.99),
                );
            }
        }
    }

    /// Recall and false matches under each rule at thresholds `t`, with the margins.
    fn write_outcomes(&self, s: &mut String, title: &str, t: &Thresholds) {
        let n_cal = self.splits.calibration.len();
        let n_ho = self.splits.held_out_len();
        let rules = [
            ("aligned only", Rule::AlignedOnly),
            ("re-enacted only", Rule::ReenactedOnly),
            ("re-enacted, then aligned", Rule::Both),
        ];
        let _ = writeln!(s, "\n{title}");
        let _ = write!(s, "  {:<22}", "edit");
        for (name, _) in &rules {
            let _ = write!(s, " {name:>26}");
        }
        let _ = writeln!(s, "   (recall; held-out real images matched)");
        // Real images are aligned only above the service's gate (align_from), so the aligned
        // tier alone has no false-match count of its own.
        let count = |rule: Rule, n: usize| {
            if rule == Rule::AlignedOnly {
                "-".to_string()
            } else {
                n.to_string()
            }
        };
        for (e, edit) in self.edits.iter().enumerate() {
            let _ = write!(s, "  {:<22}", edit.name());
            for &(_, rule) in &rules {
                let limited = rule.limit(*t);
                let _ = write!(
                    s,
                    " {:>9.2}% {:>7} / {:<6}",
                    self.recall(e, &limited) * 100.0,
                    count(rule, Self::false_matches_under(&self.held_out, e, &limited)),
                    n_ho
                );
            }
            let target = if edit.relaxed_target() { 95.0 } else { 99.0 };
            let _ = writeln!(s, "  target >= {target:.0}%");
        }
        for (label, set, n) in [
            ("any edit, held out", &self.held_out, n_ho),
            ("any edit, calibration", &self.calibration, n_cal),
        ] {
            let _ = write!(s, "  {label:<22}");
            for &(_, rule) in &rules {
                let limited = rule.limit(*t);
                let _ = write!(
                    s,
                    " {:>10} {:>7} / {n:<6}",
                    "",
                    count(rule, Self::false_matches(set, &limited)),
                );
            }
            let _ = writeln!(s);
        }
        let [r, rd, a, ad] = self.margins(t);
        let _ = writeln!(
            s,
            "  threshold minus the nearest held-out real image: re-enacted {r:+.4} full size, \
             {rd:+.4} downscaled; aligned {a:+.4} full size, {ad:+.4} downscaled"
        );
    }
}

/// The thresholds in words, by their setting names.
fn describe(t: &Thresholds) -> String {
    format!(
        "min_reenacted_similarity {:.4}, _downscaled {:.4}; min_similarity {:.4}, _downscaled \
         {:.4}; align_from {:.2}",
        t.reenacted, t.reenacted_downscaled, t.aligned, t.aligned_downscaled, t.align_from
    )
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_and_held_out_images_are_disjoint() {
        let s = RealSplits::new(60_000, 10_000, 20_000, None, None);
        assert!(s.disjoint());
        assert_eq!(s.calibration, 0..20_000);
        assert_eq!(s.held_out_train, 20_000..60_000);
        assert_eq!(s.held_out_len(), 50_000);
        let small = RealSplits::new(60_000, 10_000, 500, Some(700), Some(300));
        assert!(small.disjoint());
        assert_eq!(small.held_out_train, 500..1200);
        assert_eq!(small.held_out_len(), 1000);
        // More calibration than there are images: the held-out training part is empty.
        let all = RealSplits::new(100, 10, 500, None, None);
        assert_eq!((all.calibration.len(), all.held_out_train.len()), (100, 0));
        assert!(all.disjoint());
        let overlapping = RealSplits {
            calibration: 0..10,
            held_out_train: 5..20,
            test: 0..0,
        };
        assert!(!overlapping.disjoint());
    }

    #[test]
    fn edits_make_files_of_the_stated_sizes() {
        let image = DynamicImage::ImageLuma8(GrayImage::from_fn(32, 32, |x, y| {
            image::Luma([((x * 7 + y * 3) % 256) as u8])
        }));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for edit in Edit::ALL {
            let (bytes, copy) = edit.apply(&image, &mut rng);
            let side = match edit {
                Edit::Resize(f, _) | Edit::ResizeJpeg(f, ..) => (32.0 * f) as u32,
                Edit::Crop(_) | Edit::CropJpeg(..) => 28,
                _ => 32,
            };
            assert_eq!(
                (copy.width(), copy.height()),
                (side, side),
                "{}",
                edit.name()
            );
            let is_jpeg = bytes.starts_with(&[0xff, 0xd8]);
            let named_jpeg = edit.name().contains("jpeg");
            assert_eq!(is_jpeg, named_jpeg, "{}", edit.name());
        }
    }

    #[test]
    fn thresholds_are_rounded_up_above_the_extrapolated_tail() {
        assert!((just_above(0.95731, 1e-4) - 0.9574).abs() < 1e-9);
        assert!((just_above(0.9574, 1e-4) - 0.9575).abs() < 1e-9);
        // 1,000 calibration scores 0.000..0.999 (full size), and one downscaled at 0.5: the
        // 99.9th percentile is 0.998, so the full-size threshold is 0.999 + 0.001 and a bit.
        let scores: Vec<RealScore> = (0..1000)
            .map(|i| RealScore {
                reenacted: f64::from(i) / 1000.0,
                aligned: 0.0,
                downscaled: false,
            })
            .chain(std::iter::once(RealScore {
                reenacted: 0.5,
                aligned: 0.9,
                downscaled: true,
            }))
            .collect();
        let study = MatchStudy {
            edits: vec![Edit::Clean],
            registered: 0,
            candidate_distance: 14,
            max_candidates: 24,
            splits: RealSplits::new(1001, 0, 1001, None, None),
            own: vec![Vec::new()],
            calibration: vec![scores],
            held_out: vec![Vec::new()],
            configured: Thresholds {
                reenacted: 0.9,
                reenacted_downscaled: 0.9,
                aligned: 0.9,
                aligned_downscaled: 0.9,
                align_from: 0.8,
            },
        };
        let t = study.calibrated();
        assert!((t.reenacted - 1.0001).abs() < 1e-9, "{}", t.reenacted);
        assert!((t.reenacted_downscaled - 0.5001).abs() < 1e-9);
        assert!((t.aligned_downscaled - 0.9001).abs() < 1e-9);
        assert_eq!(t.aligned, 0.0001, "no full-size image was aligned");
        assert_eq!(t.align_from, 0.8);

        // The report: its sections in order, both outcome tables, one row per edit.
        let report = study.report();
        let sections = [
            "registry match (two stages)",
            "real images: calibration",
            "edits (every copy is a file, decoded again):",
            "own original among the candidates",
            "best score of a calibration real image",
            "best score of a held-out real image",
            "thresholds chosen on the calibration split",
            "at the thresholds chosen on calibration (min_reenacted_similarity 1.0001",
            "at the configured thresholds (min_reenacted_similarity 0.9000",
        ];
        let mut from = 0;
        for section in sections {
            let at = report[from..]
                .find(section)
                .unwrap_or_else(|| panic!("{section:?} missing or out of order:\n{report}"));
            from += at + section.len();
        }
        assert_eq!(
            report.matches("  any edit, held out").count(),
            2,
            "{report}"
        );
        assert_eq!(report.matches("target >= 99%").count(), 2, "{report}");
    }
}
