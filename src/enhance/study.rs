//! `hallmark evaluate --enhancement`: the three operations on held-out Fashion-MNIST test
//! images, against the clean originals, next to simple methods measured in the same run.
//!
//! Conditions: restore under Gaussian noise σ = 0.1 and 0.2 (on [0, 1], clamped, 8-bit);
//! inpaint of a 12x12 and a 16x8 hole at a random place; upscale 2x from 16x16 and 4x from 8x8
//! (area downscale, 8-bit). Baselines: 3x3 median and a Gaussian blur (restore), mean fill and
//! harmonic fill (inpaint), bicubic and Lanczos-3 (upscale).
//!
//! Two disjoint parts of the test split: the first `tuning` images choose the blur's σ for each
//! noise level (the one a user would tune for the baseline); the next `images` judge every
//! method. The model never trained on the test split.

use std::path::Path;
use std::time::Instant;

use image::imageops::FilterType;
use image::DynamicImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::invert::{invert, InversionSettings, Known};
use super::quality::{
    area_downscale, gaussian_blur, harmonic_fill, mean_fill, median3, psnr, resample, ssim, Planes,
};
use super::{model_pixels, to_image};
use crate::gan::catalog::LoadedModel;
use crate::gan::data::Split;
use crate::gan::GanError;

/// The blur σ values tried on the tuning images.
const BLUR_SIGMAS: [f64; 8] = [0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5];

/// How the study runs.
#[derive(Debug, Clone)]
pub struct StudyConfig {
    /// Test images that judge (after the tuning ones).
    pub images: usize,
    /// Test images that tune the baselines.
    pub tuning: usize,
    /// Seed of the noise, the holes' places and the inversion's starts.
    pub seed: u64,
    pub settings: InversionSettings,
    /// Pictures inverted together on the model.
    pub batch: usize,
    pub progress: bool,
}

/// One method under one condition.
#[derive(Debug, Clone)]
pub struct Row {
    pub condition: String,
    pub method: String,
    pub psnr: f64,
    pub ssim: f64,
    /// CPU (or device) seconds per picture.
    pub seconds: f64,
}

/// The study's figures and its picture grid (per condition, two examples: input, best
/// baseline, Hallmark, original).
pub struct Study {
    pub rows: Vec<Row>,
    /// The blur σ chosen per noise level.
    pub blur_sigma: Vec<(f64, f64)>,
    pub grid: Vec<DynamicImage>,
    pub images: usize,
    pub tuning: usize,
}

/// A condition: its name, how a clean picture is degraded, and the baselines.
#[derive(Debug, Clone, Copy)]
enum Condition {
    Noise(f64),
    Hole(usize, usize),
    Down(usize),
}

impl Condition {
    const ALL: [Self; 6] = [
        Self::Noise(0.1),
        Self::Noise(0.2),
        Self::Hole(12, 12),
        Self::Hole(16, 8),
        Self::Down(2),
        Self::Down(4),
    ];

    fn name(self) -> String {
        match self {
            Self::Noise(s) => format!("restore, noise σ={s}"),
            Self::Hole(w, h) => format!("inpaint, {w}x{h} hole"),
            Self::Down(f) => format!("upscale {f}x"),
        }
    }
}

/// A degraded picture: what the method sees (and the hole, for an inpaint).
struct Degraded {
    input: Planes,
    known: Option<Vec<bool>>,
}

fn degrade(clean: &Planes, condition: Condition, rng: &mut ChaCha8Rng) -> Degraded {
    match condition {
        Condition::Noise(sigma) => {
            let mut input = clean.clone();
            for v in &mut input.data {
                let noise: f64 = rng.sample(StandardNormal);
                *v = quantise(*v + (sigma * noise) as f32);
            }
            Degraded { input, known: None }
        }
        Condition::Hole(w, h) => {
            let n = clean.size;
            let x = rng.gen_range(0..=n - w);
            let y = rng.gen_range(0..=n - h);
            let known: Vec<bool> = (0..n * n)
                .map(|i| !((y..y + h).contains(&(i / n)) && (x..x + w).contains(&(i % n))))
                .collect();
            let mut input = clean.clone();
            let plane = n * n;
            for c in 0..clean.channels {
                for (i, &k) in known.iter().enumerate() {
                    if !k {
                        input.data[c * plane + i] = 0.0;
                    }
                }
            }
            Degraded {
                input,
                known: Some(known),
            }
        }
        Condition::Down(f) => {
            let mut input = area_downscale(clean, f);
            for v in &mut input.data {
                *v = quantise(*v);
            }
            Degraded { input, known: None }
        }
    }
}

/// Clamped to [0, 1] and rounded to 8 bits, as a saved picture would be.
fn quantise(v: f32) -> f32 {
    (v.clamp(0.0, 1.0) * 255.0).round() / 255.0
}

/// The baselines of a condition, each named.
fn baselines(condition: Condition, d: &Degraded, size: usize, blur: f64) -> Vec<(String, Planes)> {
    match (condition, &d.known) {
        (Condition::Noise(_), _) => vec![
            ("median 3x3".into(), median3(&d.input)),
            (
                format!("Gaussian blur σ={blur}"),
                gaussian_blur(&d.input, blur),
            ),
        ],
        (Condition::Hole(..), Some(known)) => vec![
            ("mean fill".into(), mean_fill(&d.input, known)),
            ("harmonic fill".into(), harmonic_fill(&d.input, known)),
        ],
        (Condition::Down(_), _) => vec![
            (
                "bicubic".into(),
                resample(&d.input, size, FilterType::CatmullRom),
            ),
            (
                "Lanczos-3".into(),
                resample(&d.input, size, FilterType::Lanczos3),
            ),
        ],
        (Condition::Hole(..), None) => Vec::new(),
    }
}

/// The blur σ with the best mean SSIM on the tuning pictures at `noise`.
fn tune_blur(tuning: &[Planes], noise: f64, seed: u64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noisy: Vec<Planes> = tuning
        .iter()
        .map(|p| degrade(p, Condition::Noise(noise), &mut rng).input)
        .collect();
    let mean_ssim = |sigma: f64| {
        tuning
            .iter()
            .zip(&noisy)
            .map(|(clean, n)| ssim(&gaussian_blur(n, sigma), clean))
            .sum::<f64>()
            / tuning.len().max(1) as f64
    };
    BLUR_SIGMAS
        .into_iter()
        .map(|s| (s, mean_ssim(s)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(1.0, |(s, _)| s)
}

/// What the inversion is told for a degraded picture.
fn known_for(d: &Degraded, channels: u32) -> Known {
    let pixels = model_pixels(&d.input.to_image(), channels);
    match &d.known {
        Some(mask) => Known::Masked {
            pixels,
            mask: mask.clone(),
        },
        None => Known::All { pixels },
    }
}

/// Runs the study on the test split of `dataset`.
///
/// # Errors
/// A missing dataset, too few test images, torch failures.
pub fn run(model: &LoadedModel, dataset: &Path, config: &StudyConfig) -> Result<Study, GanError> {
    let arch = &model.card.architecture;
    let channels = arch.channels as usize;
    let size = arch.image_size as usize;
    let needed = config.tuning + config.images;
    let real = crate::detect::train::real_images(
        dataset,
        Split::Test,
        arch.image_size,
        arch.channels,
        Some(needed),
    )?;
    if real.len() < needed || config.images == 0 || config.batch == 0 {
        return Err(GanError::Setting(format!(
            "the study needs {needed} test images ({} found) and a positive batch",
            real.len()
        )));
    }
    let planes: Vec<Planes> = real
        .iter()
        .map(|i| Planes::from_image(i, channels))
        .collect();
    let (tuning, judged) = planes.split_at(config.tuning);
    let bar = crate::progress::bar(
        (Condition::ALL.len() * config.images) as u64,
        "enhancement study",
        config.progress,
    );
    let mut study = Study {
        rows: Vec::new(),
        blur_sigma: Vec::new(),
        grid: Vec::new(),
        images: config.images,
        tuning: config.tuning,
    };
    for (c, condition) in Condition::ALL.into_iter().enumerate() {
        let blur = match condition {
            Condition::Noise(noise) => {
                let sigma = tune_blur(tuning, noise, config.seed ^ 0x7475_6e65);
                study.blur_sigma.push((noise, sigma));
                sigma
            }
            _ => 1.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(c as u64));
        let degraded: Vec<Degraded> = judged
            .iter()
            .map(|p| degrade(p, condition, &mut rng))
            .collect();
        let (sums, examples) = baseline_scores(condition, &degraded, judged, size, blur);
        let (h_psnr, h_ssim, hallmark_seconds, hallmark_examples) =
            hallmark_scores(model, condition, &degraded, judged, config, &bar)?;
        let n = config.images as f64;
        let name = condition.name();
        for (method, p, s, t) in sums {
            study.rows.push(Row {
                condition: name.clone(),
                method,
                psnr: p / n,
                ssim: s / n,
                seconds: t / n,
            });
        }
        study.rows.push(Row {
            condition: name,
            method: format!(
                "Hallmark ({}/{} starts x {} steps)",
                config.settings.starts, config.settings.candidates, config.settings.steps
            ),
            psnr: h_psnr / n,
            ssim: h_ssim / n,
            seconds: hallmark_seconds,
        });
        // The grid: input, the last baseline, Hallmark, original.
        for i in 0..2.min(config.images) {
            let input = &degraded[i].input;
            let shown = if input.size == size {
                input.to_image()
            } else {
                input
                    .to_image()
                    .resize_exact(size as u32, size as u32, FilterType::Nearest)
            };
            study.grid.push(shown);
            if let Some(b) = examples[i].last() {
                study.grid.push(b.to_image());
            }
            if let Some(h) = hallmark_examples.get(i) {
                study.grid.push(h.to_image());
            }
            study.grid.push(judged[i].to_image());
        }
    }
    bar.finish_and_clear();
    Ok(study)
}

/// Each baseline's sums of PSNR, SSIM and seconds over the pictures, and the first two
/// pictures' outputs.
type BaselineScores = (Vec<(String, f64, f64, f64)>, Vec<Vec<Planes>>);

fn baseline_scores(
    condition: Condition,
    degraded: &[Degraded],
    judged: &[Planes],
    size: usize,
    blur: f64,
) -> BaselineScores {
    let mut sums: Vec<(String, f64, f64, f64)> = Vec::new();
    let mut examples: Vec<Vec<Planes>> = vec![Vec::new(); 2];
    for (i, (d, clean)) in degraded.iter().zip(judged).enumerate() {
        let started = Instant::now();
        let outs = baselines(condition, d, size, blur);
        let seconds = started.elapsed().as_secs_f64() / outs.len().max(1) as f64;
        for (k, (name, out)) in outs.iter().enumerate() {
            if sums.len() <= k {
                sums.push((name.clone(), 0.0, 0.0, 0.0));
            }
            sums[k].1 += psnr(out, clean);
            sums[k].2 += ssim(out, clean);
            sums[k].3 += seconds;
        }
        if i < 2 {
            examples[i] = outs.into_iter().map(|(_, p)| p).collect();
        }
    }
    (sums, examples)
}

/// Hallmark's sums of PSNR and SSIM, seconds per picture, and the first two pictures' outputs:
/// the pictures inverted `config.batch` at a time.
fn hallmark_scores(
    model: &LoadedModel,
    condition: Condition,
    degraded: &[Degraded],
    judged: &[Planes],
    config: &StudyConfig,
    bar: &indicatif::ProgressBar,
) -> Result<(f64, f64, f64, Vec<Planes>), GanError> {
    let arch = &model.card.architecture;
    let channels = arch.channels as usize;
    let (mut h_psnr, mut h_ssim) = (0.0, 0.0);
    let mut hallmark_examples = Vec::new();
    let started = Instant::now();
    for (chunk_index, chunk) in degraded.chunks(config.batch).enumerate() {
        let first = chunk_index * config.batch;
        let jobs: Vec<(Known, u64)> = chunk
            .iter()
            .enumerate()
            .map(|(j, d)| {
                let known = match condition {
                    Condition::Down(f) => Known::Downscaled {
                        pixels: model_pixels(&d.input.to_image(), arch.channels),
                        factor: f as u32,
                    },
                    _ => known_for(d, arch.channels),
                };
                (known, config.seed.wrapping_add((first + j) as u64))
            })
            .collect();
        let out = invert(
            &model.generator,
            Some(&model.discriminator),
            &jobs,
            &config.settings,
        )?;
        for (j, inverted) in out.iter().enumerate() {
            let picture = Planes::from_image(
                &to_image(&inverted.pixels, arch.image_size, arch.channels),
                channels,
            );
            let clean = &judged[first + j];
            h_psnr += psnr(&picture, clean);
            h_ssim += ssim(&picture, clean);
            if first + j < 2 {
                hallmark_examples.push(picture);
            }
        }
        bar.inc(chunk.len() as u64);
    }
    let hallmark_seconds = started.elapsed().as_secs_f64() / config.images as f64;
    Ok((h_psnr, h_ssim, hallmark_seconds, hallmark_examples))
}

impl Study {
    /// The table, condition by condition, with which baselines Hallmark beats on SSIM.
    #[must_use]
    pub fn report(&self) -> String {
        use std::fmt::Write as _;
        let mut s = format!(
            "{} held-out test images per condition (tuning: the {} before them)\n",
            self.images, self.tuning
        );
        for (noise, sigma) in &self.blur_sigma {
            let _ = writeln!(s, "blur sigma chosen for noise {noise}: {sigma}");
        }
        let _ = writeln!(
            s,
            "\n{:<24} {:<34} {:>8} {:>7} {:>10}",
            "condition", "method", "PSNR dB", "SSIM", "ms/image"
        );
        let mut conditions: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !conditions.contains(&row.condition.as_str()) {
                conditions.push(&row.condition);
            }
        }
        for condition in conditions {
            let rows: Vec<&Row> = self
                .rows
                .iter()
                .filter(|r| r.condition == condition)
                .collect();
            for row in &rows {
                let _ = writeln!(
                    s,
                    "{:<24} {:<34} {:>8.2} {:>7.4} {:>10.2}",
                    row.condition,
                    row.method,
                    row.psnr,
                    row.ssim,
                    row.seconds * 1000.0
                );
            }
            if let Some((hallmark, others)) = rows.split_last() {
                let beaten = others.iter().filter(|r| hallmark.ssim > r.ssim).count();
                let _ = writeln!(
                    s,
                    "{:<24} Hallmark beats {beaten} of {} baselines on SSIM\n",
                    "",
                    others.len()
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny run: every condition has its baselines and Hallmark's row, scores in range, the
    /// grid four pictures per example, and the report names who beats whom.
    #[test]
    fn a_small_study_scores_every_condition() {
        let models = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
        let model = crate::gan::catalog::load_model(
            models.as_ref(),
            "fashion-dcgan32-ema",
            tch::Device::Cpu,
        )
        .unwrap();
        let refine = super::super::invert::Refine {
            steps: 2,
            learning_rate: 0.03,
            proximity: 0.1,
        };
        let config = StudyConfig {
            images: 3,
            tuning: 2,
            seed: 1,
            settings: InversionSettings {
                candidates: 8,
                starts: 2,
                steps: 3,
                learning_rate: 0.05,
                prior_weight: 0.01,
                realism_weight: 0.01,
                restore_keep: 0.0,
                refine: super::super::invert::Refinements {
                    restore: refine,
                    inpaint: refine,
                    upscale: refine,
                },
            },
            batch: 2,
            progress: false,
        };
        let study = run(
            &model,
            Path::new(crate::cli::gan::FASHION_MNIST_DIR),
            &config,
        )
        .unwrap();
        assert_eq!(study.rows.len(), Condition::ALL.len() * 3);
        for row in &study.rows {
            assert!(row.psnr.is_finite() && row.psnr > 5.0, "{row:?}");
            assert!((-1.0..=1.0).contains(&row.ssim), "{row:?}");
        }
        assert_eq!(study.grid.len(), Condition::ALL.len() * 2 * 4);
        assert_eq!(study.blur_sigma.len(), 2);
        let report = study.report();
        assert_eq!(
            report.matches("baselines on SSIM").count(),
            Condition::ALL.len()
        );
    }
}
