//! `hallmark evaluate --detector` and `--registry`: the detector's ranking and threshold
//! figures, and the perceptual-hash registry match, on held-out real test images and fresh
//! generated images, clean and under each of [`Transform::STANDARD`].
//!
//! Both kinds of image are written as PNG in memory and decoded again before any transform
//! (same file format for both), and every transform ends in a decoded file (see
//! [`super::augment`]).

use std::fmt::Write as _;
use std::path::Path;

use image::DynamicImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::augment::{png_roundtrip, Transform};
use super::detector::{average_precision, roc_auc, roc_curve, tpr_at_fpr, Detector};
use super::train::{real_images, EVALUATION_SEED_BASE};
use crate::fingerprint::{hamming, Fingerprinter};
use crate::gan::card::{
    Architecture, DetectorCard, DetectorEvaluation, DetectorScore, RegistryEvaluation,
    TransformRate,
};
use crate::gan::catalog::LoadedModel;
use crate::gan::data::Split;
use crate::gan::plot::{self, Series, PALETTE};
use crate::gan::GanError;
use crate::progress::percentile;

/// The ROC plots written by `evaluate --detector`.
pub const ROC_FILE: &str = "detector-roc.png";
pub const ROC_ZOOM_FILE: &str = "detector-roc-zoom.png";

/// What an evaluation scores: held-out real test images and fresh images from a generator.
pub struct EvaluationSet {
    pub real: Vec<DynamicImage>,
    pub generated: Vec<DynamicImage>,
    /// The latent seed the generated images come from.
    pub seed: u64,
}

impl EvaluationSet {
    /// Up to `real_limit` images of the test split of `dataset` (all by default) at the size
    /// of `arch`, and `generated` images of `generator` from latent seed
    /// [`EVALUATION_SEED_BASE`] + `seed_offset` (never a seed that training draws from).
    ///
    /// # Errors
    /// A missing or malformed dataset, torch failures.
    pub fn load(
        dataset: &Path,
        arch: &Architecture,
        real_limit: Option<usize>,
        generator: &LoadedModel,
        generated: usize,
        seed_offset: u64,
    ) -> Result<Self, GanError> {
        let real = real_images(
            dataset,
            Split::Test,
            arch.image_size,
            arch.channels,
            real_limit,
        )?;
        let seed = EVALUATION_SEED_BASE + seed_offset;
        let indices: Vec<u64> = (0..generated as u64).collect();
        let mut images = Vec::with_capacity(indices.len());
        for chunk in indices.chunks(500) {
            images.extend(generator.generate(seed, chunk)?);
        }
        Ok(Self {
            real,
            generated: images,
            seed,
        })
    }
}

/// Adds an evaluation's figures to the detector section of a model card: with a detector
/// study, a new evaluation (carrying `registry`, else the registry figures measured before —
/// they depend on the generator alone); with registry figures only, they replace those of the
/// evaluation already there.
///
/// # Errors
/// Registry figures with neither a detector study nor an earlier evaluation to add them to.
pub fn record_evaluation(
    section: &mut DetectorCard,
    detector: Option<&DetectorStudy>,
    set: &EvaluationSet,
    real_source: String,
    registry: Option<RegistryEvaluation>,
) -> Result<(), GanError> {
    match (detector, registry, section.evaluation.as_mut()) {
        (Some(study), registry, _) => {
            let kept = section.evaluation.as_ref().and_then(|e| e.registry.clone());
            section.evaluation = Some(evaluation_card(
                study,
                (set.real.len(), set.generated.len()),
                real_source,
                set.seed,
                registry.or(kept),
            ));
        }
        (None, Some(registry), Some(evaluation)) => evaluation.registry = Some(registry),
        (None, Some(_), None) => {
            return Err(GanError::Setting(
                "registry figures need a detector evaluation to add to: pass --detector".into(),
            ))
        }
        (None, None, _) => {}
    }
    Ok(())
}

/// The evaluation's images: real and generated, each clean and under every transform.
pub struct EvalImages {
    pub transforms: Vec<Transform>,
    /// `real[t][i]`: real image `i` under transform `t`.
    pub real: Vec<Vec<DynamicImage>>,
    pub generated: Vec<Vec<DynamicImage>>,
    /// The generated images as the generator made them (their hashes are "registered").
    pub generated_original: Vec<DynamicImage>,
}

/// Builds the transformed image sets. Crop offsets come from a ChaCha8 stream seeded with
/// `seed` (one stream for real, another for generated images).
#[must_use]
pub fn build_images(
    real: &[DynamicImage],
    generated: &[DynamicImage],
    seed: u64,
    bar: &indicatif::ProgressBar,
) -> EvalImages {
    let transforms = Transform::STANDARD.to_vec();
    let mut rng_real = ChaCha8Rng::seed_from_u64(seed);
    rng_real.set_stream(1);
    let mut rng_gen = ChaCha8Rng::seed_from_u64(seed);
    rng_gen.set_stream(2);
    let real_png: Vec<DynamicImage> = real.iter().map(png_roundtrip).collect();
    let gen_png: Vec<DynamicImage> = generated.iter().map(png_roundtrip).collect();
    let mut out_real = Vec::new();
    let mut out_gen = Vec::new();
    for t in &transforms {
        out_real.push(
            real_png
                .iter()
                .map(|i| {
                    bar.inc(1);
                    t.apply(i, &mut rng_real)
                })
                .collect(),
        );
        out_gen.push(
            gen_png
                .iter()
                .map(|i| {
                    bar.inc(1);
                    t.apply(i, &mut rng_gen)
                })
                .collect(),
        );
    }
    EvalImages {
        transforms,
        real: out_real,
        generated: out_gen,
        generated_original: generated.to_vec(),
    }
}

/// The registry-match study: pHash distances of transformed generated images to their own
/// originals, and of real images to the nearest registered hash.
#[derive(Debug, Clone)]
pub struct PhashStudy {
    pub transforms: Vec<String>,
    /// `own[t][i]`: distance of generated image `i` under transform `t` to its original.
    pub own: Vec<Vec<u32>>,
    /// `nearest_real[t][i]`: distance of real image `i` under `t` to the nearest registered hash.
    pub nearest_real: Vec<Vec<u32>>,
    pub registered: usize,
}

/// Runs the pHash study on prepared images.
#[must_use]
pub fn phash_study(images: &EvalImages, bar: &indicatif::ProgressBar) -> PhashStudy {
    let fp = Fingerprinter::new();
    let registered: Vec<u64> = images
        .generated_original
        .iter()
        .map(|i| fp.phash(i))
        .collect();
    let mut own = Vec::new();
    let mut nearest_real = Vec::new();
    for (t, _) in images.transforms.iter().enumerate() {
        own.push(
            images.generated[t]
                .iter()
                .zip(&registered)
                .map(|(i, &h)| {
                    bar.inc(1);
                    hamming(fp.phash(i), h)
                })
                .collect(),
        );
        nearest_real.push(
            images.real[t]
                .iter()
                .map(|i| {
                    bar.inc(1);
                    let h = fp.phash(i);
                    registered
                        .iter()
                        .map(|&r| hamming(h, r))
                        .min()
                        .unwrap_or(64)
                })
                .collect(),
        );
    }
    PhashStudy {
        transforms: images.transforms.iter().map(Transform::name).collect(),
        own,
        nearest_real,
        registered: registered.len(),
    }
}

impl PhashStudy {
    /// Share of generated images under transform `t` within `d` of their own original.
    #[must_use]
    pub fn recall(&self, t: usize, d: u32) -> f64 {
        self.own[t].iter().filter(|&&x| x <= d).count() as f64 / self.own[t].len().max(1) as f64
    }

    /// Real images (counted once) with any variant within `d` of a registered hash.
    #[must_use]
    pub fn false_matches(&self, d: u32) -> usize {
        let n = self.nearest_real.first().map_or(0, Vec::len);
        (0..n)
            .filter(|&i| self.nearest_real.iter().any(|v| v[i] <= d))
            .count()
    }

    /// The smallest distance with at least 99% recall under every transform.
    #[must_use]
    pub fn recommended(&self) -> Option<u32> {
        (0..=64).find(|&d| (0..self.own.len()).all(|t| self.recall(t, d) >= 0.99))
    }

    /// A plain-text report: distance percentiles, recall / false matches per distance, and a
    /// recommendation.
    #[must_use]
    pub fn report(&self, max_distance: u32) -> String {
        let mut s = String::new();
        let n_real = self.nearest_real.first().map_or(0, Vec::len);
        let _ = writeln!(
            s,
            "pHash registry match: {} generated images registered (pHash of the image as generated); \
             {n_real} real test images checked clean and under every transform",
            self.registered
        );
        let _ = writeln!(
            s,
            "\ndistance of a transformed generated image to its own original:"
        );
        let _ = writeln!(
            s,
            "  {:<10} {:>5} {:>5} {:>5} {:>5} {:>6} {:>5}",
            "transform", "p50", "p90", "p99", "p99.5", "p99.9", "max"
        );
        for (t, name) in self.transforms.iter().enumerate() {
            let mut v = self.own[t].clone();
            v.sort_unstable();
            let _ = writeln!(
                s,
                "  {name:<10} {:>5} {:>5} {:>5} {:>5} {:>6} {:>5}",
                percentile(&v, 0.5),
                percentile(&v, 0.9),
                percentile(&v, 0.99),
                percentile(&v, 0.995),
                percentile(&v, 0.999),
                v.last().copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            s,
            "\ndistance of a real test image to the nearest registered hash:"
        );
        let _ = writeln!(
            s,
            "  {:<10} {:>5} {:>5} {:>5} {:>5} {:>5}",
            "transform", "min", "p0.1", "p1", "p5", "p50"
        );
        for (t, name) in self.transforms.iter().enumerate() {
            let mut v = self.nearest_real[t].clone();
            v.sort_unstable();
            let _ = writeln!(
                s,
                "  {name:<10} {:>5} {:>5} {:>5} {:>5} {:>5}",
                v.first().copied().unwrap_or(0),
                percentile(&v, 0.001),
                percentile(&v, 0.01),
                percentile(&v, 0.05),
                percentile(&v, 0.5)
            );
        }
        let _ = writeln!(
            s,
            "\nrecall (own original within d) and false matches (real images, any variant, within d of any registered hash):"
        );
        let mut header = format!("  {:>3}", "d");
        for name in &self.transforms {
            let _ = write!(header, " {name:>10}");
        }
        let _ = writeln!(s, "{header} {:>14}", "false matches");
        for d in 0..=20 {
            let mut line = format!("  {d:>3}");
            for t in 0..self.own.len() {
                let _ = write!(line, " {:>9.2}%", self.recall(t, d) * 100.0);
            }
            let marker = if d == max_distance {
                "  <- configured"
            } else {
                ""
            };
            let _ = writeln!(s, "{line} {:>8} / {n_real}{marker}", self.false_matches(d));
        }
        let zero_fm = (0..=64).take_while(|&d| self.false_matches(d) == 0).last();
        match self.recommended() {
            Some(d) if self.false_matches(d) == 0 => {
                let _ = writeln!(
                    s,
                    "\nrecommendation: phash_max_distance = {d} (smallest distance with >= 99% recall under every transform; no false matches among {n_real} real images; the largest distance with none is {})",
                    zero_fm.map_or_else(|| "-".into(), |z| z.to_string())
                );
            }
            Some(d) => {
                let _ = writeln!(
                    s,
                    "\nNOT REACHABLE with this hash: >= 99% recall under every transform needs d >= {d}, which gives {} false matches among {n_real} real images; with zero false matches (d <= {}) the recall is {}",
                    self.false_matches(d),
                    zero_fm.map_or_else(|| "none".into(), |z| z.to_string()),
                    zero_fm.map_or_else(
                        || "-".into(),
                        |z| self
                            .transforms
                            .iter()
                            .enumerate()
                            .map(|(t, n)| format!("{n} {:.2}%", self.recall(t, z) * 100.0))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "\nNOT REACHABLE: no distance gives 99% recall under every transform"
                );
            }
        }
        s
    }

    /// The card's summary at `max_distance`.
    #[must_use]
    pub fn evaluation(&self, max_distance: u32) -> RegistryEvaluation {
        RegistryEvaluation {
            registered: self.registered as u64,
            max_distance,
            recall: self
                .transforms
                .iter()
                .enumerate()
                .map(|(t, name)| TransformRate {
                    transform: name.clone(),
                    rate: round(self.recall(t, max_distance), 5),
                })
                .collect(),
            false_matches: self.false_matches(max_distance) as u64,
            real_images_checked: self.nearest_real.first().map_or(0, Vec::len) as u64,
            recommended_max_distance: self.recommended(),
            confirmed: None,
        }
    }
}

fn round(x: f64, digits: i32) -> f64 {
    (x * 10f64.powi(digits)).round() / 10f64.powi(digits)
}

/// Detector figures per transform, and the ROC curves (thinned) for the plot.
pub struct DetectorStudy {
    pub scores: Vec<DetectorScore>,
    pub curves: Vec<(String, Vec<(f64, f64)>)>,
    /// Per transform, the calibrated probabilities of the real and of the generated images
    /// (in the order given), for figures on a subset of the generated images.
    pub probabilities: Vec<(Vec<f64>, Vec<f64>)>,
}

/// Scores every image with the detector, as the service would (domain rules included).
///
/// # Errors
/// When torch fails.
pub fn detector_study(
    detector: &Detector,
    images: &EvalImages,
    bar: &indicatif::ProgressBar,
) -> Result<DetectorStudy, GanError> {
    let threshold = detector.threshold();
    let calibration = detector.card().calibration;
    let mut scores = Vec::new();
    let mut curves = Vec::new();
    let mut probabilities = Vec::new();
    for (t, transform) in images.transforms.iter().enumerate() {
        let mut probs = Vec::new();
        let mut labels = Vec::new();
        let mut called = Vec::new();
        let mut ood = 0u64;
        for (set, synthetic) in [(&images.real[t], false), (&images.generated[t], true)] {
            for chunk in set.chunks(500) {
                let logits = detector.logits(chunk)?;
                for (image, logit) in chunk.iter().zip(logits) {
                    let p = calibration.probability(f64::from(logit));
                    let in_domain = detector.out_of_domain(image).is_none();
                    ood += u64::from(!in_domain);
                    probs.push(p);
                    labels.push(synthetic);
                    called.push(in_domain && p >= threshold);
                }
                bar.inc(chunk.len() as u64);
            }
        }
        let n_real = labels.iter().filter(|&&l| !l).count().max(1) as f64;
        let n_gen = labels.iter().filter(|&&l| l).count().max(1) as f64;
        let right = labels.iter().zip(&called).filter(|(l, c)| l == c).count() as f64;
        let fp = labels
            .iter()
            .zip(&called)
            .filter(|(l, c)| !**l && **c)
            .count() as f64;
        let tp = labels
            .iter()
            .zip(&called)
            .filter(|(l, c)| **l && **c)
            .count() as f64;
        let curve = roc_curve(&probs, &labels);
        let stride = (curve.len() / 4000).max(1);
        let thin: Vec<(f64, f64)> = curve
            .iter()
            .enumerate()
            .filter(|(i, _)| i % stride == 0 || *i + 1 == curve.len())
            .map(|(_, &p)| p)
            .collect();
        curves.push((transform.name(), thin));
        scores.push(DetectorScore {
            transform: transform.name(),
            ap: round(average_precision(&probs, &labels), 5),
            roc_auc: round(roc_auc(&probs, &labels), 5),
            tpr_at_1pct_fpr: round(tpr_at_fpr(&probs, &labels, 0.01), 5),
            accuracy: round(right / labels.len().max(1) as f64, 5),
            fpr_real: round(fp / n_real, 5),
            tpr: round(tp / n_gen, 5),
            out_of_domain: ood,
        });
        let generated = probs.split_off(labels.iter().filter(|&&l| !l).count());
        probabilities.push((probs, generated));
    }
    Ok(DetectorStudy {
        scores,
        curves,
        probabilities,
    })
}

/// Writes the ROC plots (full, and zoomed on FPR 0-5%).
///
/// # Errors
/// When drawing or writing fails.
pub fn write_roc(study: &DetectorStudy, full: &Path, zoom: Option<&Path>) -> Result<(), GanError> {
    let series = |max_fpr: f64| -> Vec<Series> {
        study
            .curves
            .iter()
            .enumerate()
            .map(|(i, (name, points))| Series {
                label: format!("{name} (AUC {:.4})", study.scores[i].roc_auc),
                points: points
                    .iter()
                    .copied()
                    .filter(|&(x, _)| x <= max_fpr)
                    .collect(),
                color: PALETTE[i % PALETTE.len()],
            })
            .collect()
    };
    plot::line_chart(
        full,
        "Detector ROC: real test vs generated images",
        (
            "false positive rate (real called synthetic)",
            "true positive rate",
        ),
        0.0..1.0,
        0.0..1.0,
        &series(1.0),
    )?;
    if let Some(zoom) = zoom {
        let s = series(0.05);
        let low = s
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|&y| y > 0.0)
            .fold(1.0_f64, f64::min);
        plot::line_chart(
            zoom,
            "Detector ROC, false positive rate up to 5%",
            (
                "false positive rate (real called synthetic)",
                "true positive rate",
            ),
            0.0..0.05,
            (low - 0.02).clamp(0.0, 0.98)..1.0,
            &s,
        )?;
    }
    Ok(())
}

/// A table of the detector figures.
#[must_use]
pub fn detector_table(scores: &[DetectorScore], threshold: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "detector (positive = synthetic; threshold p >= {threshold:.4}):"
    );
    let _ = writeln!(
        s,
        "  {:<10} {:>8} {:>8} {:>11} {:>9} {:>9} {:>9} {:>6}",
        "transform", "AP", "ROC-AUC", "TPR@1%FPR", "accuracy", "FPR real", "TPR", "OOD"
    );
    for sc in scores {
        let _ = writeln!(
            s,
            "  {:<10} {:>8.4} {:>8.4} {:>10.2}% {:>8.2}% {:>8.2}% {:>8.2}% {:>6}",
            sc.transform,
            sc.ap,
            sc.roc_auc,
            sc.tpr_at_1pct_fpr * 100.0,
            sc.accuracy * 100.0,
            sc.fpr_real * 100.0,
            sc.tpr * 100.0,
            sc.out_of_domain
        );
    }
    s
}

/// The card's evaluation section.
#[must_use]
pub fn evaluation_card(
    detector: &DetectorStudy,
    (real_images, generated_images): (usize, usize),
    real_source: String,
    generated_seed: u64,
    registry: Option<RegistryEvaluation>,
) -> DetectorEvaluation {
    DetectorEvaluation {
        real_images: real_images as u64,
        real_source,
        generated_images: generated_images as u64,
        generated_seed,
        transforms: Transform::STANDARD
            .iter()
            .map(Transform::definition)
            .collect::<Vec<_>>()
            .join("; "),
        detector: detector.scores.clone(),
        registry,
    }
}
