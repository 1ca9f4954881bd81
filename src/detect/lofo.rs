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

use super::detector::{average_precision, roc_auc};
use super::eval::{build_images, detector_study, write_roc, DetectorStudy};
use super::mix::FakeMix;
use super::train::{fit_detector, DetectorTrainConfig, EVALUATION_SEED_BASE};
use crate::gan::card::{FamilyScore, GeneratorScore};
use crate::gan::catalog::LoadedModel;
use crate::gan::zoo::{load_zoo, Family, ZooGenerator};
use crate::gan::GanError;

/// How big a leave-one-family-out run is.
#[derive(Debug, Clone)]
pub struct LofoConfig {
    /// Hold out only these families (empty: every family of [`families`]).
    pub only: Vec<Family>,
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
            .zip(&self.study.probabilities)
            .map(|(s, (real, generated))| FamilyScore {
                family: self.family.to_string(),
                generators: self.generators.clone(),
                trained_on: self.trained_on.keys().cloned().collect(),
                transform: s.transform.clone(),
                roc_auc: s.roc_auc,
                ap: s.ap,
                tpr_at_threshold: s.tpr,
                fpr_real: s.fpr_real,
                threshold: (self.threshold * 1e5).round() / 1e5,
                by_generator: if self.generators.len() > 1 {
                    self.by_generator(real, generated)
                } else {
                    Vec::new()
                },
            })
            .collect()
    }

    /// Each generator's images (as many from each, in `generators` order: [`family_images`])
    /// against all the real ones.
    fn by_generator(&self, real: &[f64], generated: &[f64]) -> Vec<GeneratorScore> {
        let round = |x: f64| (x * 1e5).round() / 1e5;
        self.generators
            .iter()
            .zip(generated.chunks((generated.len() / self.generators.len().max(1)).max(1)))
            .map(|(name, own)| {
                let probs: Vec<f64> = real.iter().chain(own).copied().collect();
                let labels: Vec<bool> = std::iter::repeat_n(false, real.len())
                    .chain(std::iter::repeat_n(true, own.len()))
                    .collect();
                GeneratorScore {
                    generator: name.clone(),
                    roc_auc: round(roc_auc(&probs, &labels)),
                    ap: round(average_precision(&probs, &labels)),
                }
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

/// Where a worker of [`leave_one_family_out`] loads its own copy of the model and the zoo
/// from (torch tensors cannot be shared between threads; the weights are small).
pub struct LofoSources<'a> {
    pub models_dir: &'a Path,
    pub model: &'a str,
    pub zoo_dir: &'a Path,
}

/// Runs the evaluation for every family of the zoo at `sources` ([`families`]), `jobs`
/// held-out detectors at a time, each on its own thread with its own copy of the model and
/// the zoo (torch should then run one intra-op thread per job: `--threads 1`); results are
/// in [`families`] order whatever the number of jobs. `real` are the real test images (never
/// used in training: the detector trains on the train split). ROC plots are written into
/// `plot_dir` as `detector-lofo-<family>.png`.
///
/// # Errors
/// Missing data or weights, torch failures, plot errors.
pub fn leave_one_family_out(
    sources: &LofoSources<'_>,
    dataset_dir: &Path,
    real: &[DynamicImage],
    config: &LofoConfig,
    plot_dir: Option<&Path>,
    device: Device,
    jobs: usize,
) -> Result<Vec<FamilyResult>, GanError> {
    let load = || -> Result<(LoadedModel, Vec<ZooGenerator>), GanError> {
        Ok((
            crate::gan::catalog::load_model(sources.models_dir, sources.model, device)?,
            load_zoo(sources.zoo_dir, device)?,
        ))
    };
    let todo: Vec<Family> = families(&load_zoo(sources.zoo_dir, device)?)
        .into_iter()
        .filter(|f| config.only.is_empty() || config.only.contains(f))
        .collect();
    if todo.is_empty() {
        return Err(GanError::Setting(
            "none of the families to hold out has zoo members".into(),
        ));
    }
    let jobs = jobs.clamp(1, todo.len().max(1));
    // Several bars redrawn from several threads garble a terminal: with more than one job each
    // held-out family says when it starts and ends instead.
    let show = config.train.progress;
    let mut config = config.clone();
    config.train.progress &= jobs == 1;
    let config = &config;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results = std::thread::scope(|scope| -> Result<Vec<FamilyResult>, GanError> {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                scope.spawn(|| -> Result<Vec<FamilyResult>, GanError> {
                    let (model, zoo) = load()?;
                    let mut done = Vec::new();
                    while let Some(&family) =
                        todo.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        let result = hold_out(
                            &model,
                            &zoo,
                            family,
                            dataset_dir,
                            real,
                            config,
                            device,
                            show,
                        )?;
                        if let Some(dir) = plot_dir {
                            write_roc(
                                &result.study,
                                &dir.join(format!("detector-lofo-{family}.png")),
                                None,
                            )?;
                        }
                        done.push(result);
                    }
                    Ok(done)
                })
            })
            .collect();
        let mut all = Vec::new();
        for worker in workers {
            all.extend(
                worker
                    .join()
                    .map_err(|_| GanError::Thread("a leave-one-out worker panicked".into()))??,
            );
        }
        Ok(all)
    })?;
    results.sort_by_key(|r| r.family);
    Ok(results)
}

/// One held-out family: train without it, score on it.
#[allow(clippy::too_many_arguments)]
fn hold_out(
    model: &LoadedModel,
    zoo: &[ZooGenerator],
    family: Family,
    dataset_dir: &Path,
    real: &[DynamicImage],
    config: &LofoConfig,
    device: Device,
    show: bool,
) -> Result<FamilyResult, GanError> {
    let seed = EVALUATION_SEED_BASE + config.seed;
    let mix = FakeMix::new(model, zoo, &[family])?;
    if show {
        eprintln!("holding out {family}: training on {}", mix.source_list());
    }
    let fitted = fit_detector(model, &mix, dataset_dir, &config.train, device)?;
    let (generators, images) = family_images(model, zoo, family, seed, config.per_generator)?;
    let trained_on = fitted.report.images_per_source.clone();
    if let Some(leak) = generators.iter().find(|g| trained_on.contains_key(*g)) {
        return Err(GanError::Internal(format!(
            "held-out generator {leak} trained the detector that is scored on it"
        )));
    }
    let bar = crate::progress::bar(0, "", false);
    let eval = build_images(real, &images, seed, &bar);
    let study = detector_study(&fitted.detector, &eval, &bar)?;
    let training_time_s = fitted
        .report
        .card
        .training
        .as_ref()
        .map_or(0.0, |t| t.training_time_s);
    if show {
        eprintln!(
            "held out {family}: clean ROC-AUC {:.4} ({training_time_s:.0} s of training)",
            study.scores.first().map_or(f64::NAN, |s| s.roc_auc)
        );
    }
    Ok(FamilyResult {
        family,
        generators,
        trained_on,
        threshold: fitted.detector.threshold(),
        study,
        training_time_s,
    })
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
            for g in &sc.by_generator {
                let _ = writeln!(
                    s,
                    "    {:<22} {:>8.4} {:>8.4}",
                    g.generator, g.roc_auc, g.ap
                );
            }
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
