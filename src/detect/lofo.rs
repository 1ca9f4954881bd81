//! Leave-one-family-out evaluation (`hallmark evaluate --leave-one-out`): for each generator
//! family of the zoo, a detector is trained with the served detector's recipe on every *other*
//! family (holding out [`Family::OWN`] also holds out the model's own generator), calibrated
//! on validation images of those families only, and then scored on the held-out family's
//! images against real test images, clean and under each standard transform. This is the
//! figure that says how the detector does on generators it never saw.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use image::DynamicImage;
use tch::Device;

use super::eval::{build_images, detector_study, write_roc, DetectorStudy};
use super::mix::FakeMix;
use super::train::{fit_detector, DetectorTrainConfig, EVALUATION_SEED_BASE};
use crate::gan::card::FamilyScore;
use crate::gan::catalog::LoadedModel;
use crate::gan::zoo::{Family, ZooGenerator};
use crate::gan::GanError;

/// How big a leave-one-family-out run is.
#[derive(Debug, Clone)]
pub struct LofoConfig {
    /// The recipe of each held-out detector (the served detector's, normally).
    pub train: DetectorTrainConfig,
    /// Generated evaluation images per generator of the held-out family.
    pub per_generator: usize,
    /// Latent seed offset of the evaluation images (`EVALUATION_SEED_BASE + seed`).
    pub seed: u64,
}

/// One held-out family's result.
pub struct FamilyResult {
    pub family: Family,
    pub generators: Vec<String>,
    /// Generated images per source that trained the held-out detector.
    pub trained_on: BTreeMap<String, u64>,
    pub threshold: f64,
    pub study: DetectorStudy,
    pub training_time_s: f64,
}

impl FamilyResult {
    /// The card's rows for this family, one per transform.
    #[must_use]
    pub fn scores(&self) -> Vec<FamilyScore> {
        self.study
            .scores
            .iter()
            .map(|s| FamilyScore {
                family: self.family.to_string(),
                generators: self.generators.clone(),
                trained_on: self.trained_on.keys().cloned().collect(),
                transform: s.transform.clone(),
                roc_auc: s.roc_auc,
                ap: s.ap,
                tpr_at_threshold: s.tpr,
                fpr_real: s.fpr_real,
                threshold: (self.threshold * 1e5).round() / 1e5,
            })
            .collect()
    }
}

/// The families a leave-one-out run covers: those with zoo members (and the model's own).
#[must_use]
pub fn families(zoo: &[ZooGenerator]) -> Vec<Family> {
    Family::ALL
        .into_iter()
        .filter(|f| *f == Family::OWN || zoo.iter().any(|m| m.card().family == *f))
        .collect()
}

/// The held-out family's evaluation images: `per_generator` from each of its generators.
fn family_images(
    model: &LoadedModel,
    zoo: &[ZooGenerator],
    family: Family,
    seed: u64,
    per_generator: usize,
) -> Result<(Vec<String>, Vec<DynamicImage>), GanError> {
    let indices: Vec<u64> = (0..per_generator as u64).collect();
    let mut names = Vec::new();
    let mut images = Vec::new();
    if family == Family::OWN {
        names.push(format!("own:{}", model.card.name));
        images.extend(model.generate(seed, &indices)?);
    }
    for member in zoo.iter().filter(|m| m.card().family == family) {
        names.push(format!("zoo:{}", member.card().name));
        images.extend(member.generate(seed, &indices)?);
    }
    Ok((names, images))
}

/// Runs the evaluation for every family of [`families`]. `real` are the real test images
/// (never used in training: the detector trains on the train split). ROC plots are written
/// into `plot_dir` as `detector-lofo-<family>.png`.
///
/// # Errors
/// Missing data or weights, torch failures, plot errors.
pub fn leave_one_family_out(
    model: &LoadedModel,
    zoo: &[ZooGenerator],
    dataset_dir: &Path,
    real: &[DynamicImage],
    config: &LofoConfig,
    plot_dir: Option<&Path>,
    device: Device,
) -> Result<Vec<FamilyResult>, GanError> {
    let seed = EVALUATION_SEED_BASE + config.seed;
    let mut results = Vec::new();
    for family in families(zoo) {
        let mix = FakeMix::new(model, zoo, &[family])?;
        if config.train.progress {
            eprintln!(
                "holding out {family}: training on {}",
                mix.sources()
                    .iter()
                    .map(|s| s.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let fitted = fit_detector(model, &mix, dataset_dir, &config.train, device)?;
        let (generators, images) = family_images(model, zoo, family, seed, config.per_generator)?;
        let trained_on = fitted.report.images_per_source.clone();
        if let Some(leak) = generators.iter().find(|g| trained_on.contains_key(*g)) {
            return Err(GanError::Invalid(format!(
                "held-out generator {leak} trained the detector that is scored on it"
            )));
        }
        let bar = crate::progress::bar(0, "", false);
        let eval = build_images(real, &images, seed, &bar);
        let study = detector_study(&fitted.detector, &eval, &bar)?;
        if let Some(dir) = plot_dir {
            write_roc(
                &study,
                &dir.join(format!("detector-lofo-{family}.png")),
                None,
            )?;
        }
        let training_time_s = fitted
            .report
            .card
            .training
            .as_ref()
            .map_or(0.0, |t| t.training_time_s);
        results.push(FamilyResult {
            family,
            generators,
            trained_on,
            threshold: fitted.detector.threshold(),
            study,
            training_time_s,
        });
    }
    Ok(results)
}

/// The report table.
#[must_use]
pub fn table(results: &[FamilyResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "leave one family out: each family scored by a detector trained without it \
         (positive = the family's images, negative = real test images)"
    );
    let _ = writeln!(
        s,
        "  {:<13} {:<10} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "held out", "transform", "ROC-AUC", "AP", "TPR@thr", "FPR real", "threshold"
    );
    for r in results {
        for sc in r.scores() {
            let _ = writeln!(
                s,
                "  {:<13} {:<10} {:>8.4} {:>8.4} {:>8.2}% {:>8.2}% {:>9.4}",
                sc.family,
                sc.transform,
                sc.roc_auc,
                sc.ap,
                sc.tpr_at_threshold * 100.0,
                sc.fpr_real * 100.0,
                sc.threshold
            );
        }
    }
    let clean: Vec<f64> = results
        .iter()
        .filter_map(|r| r.study.scores.first().map(|s| s.roc_auc))
        .collect();
    if !clean.is_empty() {
        let mean = clean.iter().sum::<f64>() / clean.len() as f64;
        let min = clean.iter().copied().fold(f64::INFINITY, f64::min);
        let _ = writeln!(
            s,
            "  clean ROC-AUC over {} held-out families: mean {mean:.4}, lowest {min:.4}",
            clean.len()
        );
    }
    for r in results {
        let _ = writeln!(
            s,
            "  {}: {} ({:.0} s of training)",
            r.family,
            r.generators.join(", "),
            r.training_time_s
        );
    }
    s
}
