//! Enhancement by GAN inversion: the generator's image nearest to what is known of a picture,
//! used where the picture is not known (or not trusted).
//!
//! Three stages, all on the model thread:
//! 1. **Warm start.** `candidates` random latents per picture (drawn from the request's seed as
//!    generation draws them) go through the generator without gradients; the `starts` whose
//!    images are nearest to what is known are kept.
//! 2. **Latent search.** Adam on those latents for `steps` steps against a data loss on the
//!    known pixels — all pixels of a noisy picture (`restore`), those outside a hole
//!    (`inpaint`), or the area-downscaled generation against a small picture (`upscale`) — plus
//!    a prior that keeps each latent near the sphere of radius √d where a Gaussian latent lives
//!    (far from it the generator was never trained). All starts of all pictures go through the
//!    generator together: one forward and one backward pass per step, gradients taken for the
//!    latents alone (`run_backward`), the weights untouched. The start with the lowest data
//!    loss wins.
//! 3. **Refinement** (a DCGAN generator): Adam on the winner's features after the generator's
//!    first block (4x4 maps, far more freedom than the latent), held near where the latent put
//!    them by a proximity term and kept non-negative as the ReLU leaves them — the
//!    intermediate-layer optimisation of Daras et al. 2021 ("Intermediate Layer Optimization
//!    for Inverse Problems using Deep Generative Models"). Its budget is set per operation.
//!
//! The answer is the refined generation blended with the picture: a restore is the generation
//! (or a share of the noisy picture, `restore_keep`); an inpaint keeps every known pixel and
//! fills the hole with the generation plus the harmonic interpolation of the generation's
//! error on the hole's border, so the seam is continuous; an upscale is corrected so that its
//! own downscale is the small picture exactly.
//!
//! Everything is deterministic for a seed on one machine: the candidates come from ChaCha
//! streams ([`crate::gan::latents_for`]) and the loop has no other randomness. A picture's
//! result does not depend on the other pictures inverted with it.

use tch::{Device, Kind, Tensor};

use super::quality::{harmonic_fill, Planes};
use crate::gan::model::{latents_for, Discriminator, Generator};
use crate::gan::GanError;

/// What is known of one picture, in the model's pixel space (`[C, S, S]` values in [-1, 1],
/// channels first, S the model size).
#[derive(Debug, Clone, PartialEq)]
pub enum Known {
    /// Every pixel, degraded (noise, compression): restore.
    All { pixels: Vec<f32> },
    /// The pixels where `mask` is true (`[S, S]`, one flag per position for all channels);
    /// false marks the missing region: inpaint.
    Masked { pixels: Vec<f32>, mask: Vec<bool> },
    /// The picture area-downscaled by `factor` (`[C, S/f, S/f]`): upscale.
    Downscaled { pixels: Vec<f32>, factor: u32 },
}

impl Known {
    /// Which operation's refinement budget applies.
    fn kind(&self) -> usize {
        match self {
            Self::All { .. } => 0,
            Self::Masked { .. } => 1,
            Self::Downscaled { .. } => 2,
        }
    }
}

/// The optimisation budget and its weights: the `[enhancement]` settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InversionSettings {
    /// Random latents scored per picture; the best `starts` of them are optimised.
    pub candidates: usize,
    /// Latents optimised per picture.
    pub starts: usize,
    /// Adam steps on the latents.
    pub steps: usize,
    pub learning_rate: f64,
    /// Weight of the prior `(|z|²/d − 1)²` per latent.
    pub prior_weight: f64,
    /// Weight of the discriminator's realism term `softplus(−D(G(z)))` (the non-saturating
    /// generator loss) in the latent search; 0: pixels and prior only.
    pub realism_weight: f64,
    /// Restore: share of the noisy picture kept in the answer (0: the generation alone).
    pub restore_keep: f64,
    /// The refinement of the winner's first-block features, per operation.
    pub refine: Refinements,
}

/// The refinement budget of each operation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refinements {
    pub restore: Refine,
    pub inpaint: Refine,
    pub upscale: Refine,
}

/// Adam on the first block's features: `steps` (0: none), its rate, and the weight of
/// `mean((h − h₀)²)` that keeps them near where the latent put them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refine {
    pub steps: usize,
    pub learning_rate: f64,
    pub proximity: f64,
}

impl Refinements {
    /// The budget for the operation that `known` asks for.
    #[must_use]
    pub fn for_known(&self, known: &Known) -> Refine {
        self.of(known.kind())
    }

    fn of(&self, kind: usize) -> Refine {
        match kind {
            0 => self.restore,
            1 => self.inpaint,
            _ => self.upscale,
        }
    }
}

/// One picture's result: the enhanced pixels (`[C, S, S]` in [-1, 1]) and the final
/// generation's data loss (mean squared error on what was known, in [-1, 1] units).
#[derive(Debug, Clone)]
pub struct Inverted {
    pub pixels: Vec<f32>,
    pub data_loss: f64,
    /// The winning candidate's index among the request's latents.
    pub start: usize,
}

/// A picture's target and loss weights on the device.
struct Target {
    /// `[1, C, S, S]`, or `[1, C, S/f, S/f]` for an upscale.
    pixels: Tensor,
    /// `[1, 1, S, S]` weights (1 known, 0 missing) for restore and inpaint.
    weight: Option<Tensor>,
    factor: Option<i64>,
    /// Number of known values, the loss's denominator.
    known: f64,
}

/// Checks that `known` fits a model of `size` pixels and `channels` channels.
///
/// # Errors
/// [`GanError::Shape`] naming what does not fit.
pub fn check(known: &Known, size: u32, channels: u32) -> Result<(), GanError> {
    let plane = (size * size) as usize;
    let full = plane * channels as usize;
    match known {
        Known::All { pixels } if pixels.len() == full => Ok(()),
        Known::Masked { pixels, mask } if pixels.len() == full && mask.len() == plane => {
            if mask.iter().all(|&m| m) || !mask.iter().any(|&m| m) {
                Err(GanError::Shape(
                    "a mask must leave some pixels known and some missing".into(),
                ))
            } else {
                Ok(())
            }
        }
        Known::Downscaled { pixels, factor }
            if *factor >= 2 && size.is_multiple_of(*factor) && {
                let small = (size / factor) as usize;
                pixels.len() == small * small * channels as usize
            } =>
        {
            Ok(())
        }
        _ => Err(GanError::Shape(format!(
            "the picture does not fit a {channels}x{size}x{size} model"
        ))),
    }
}

/// Inverts every picture of `known` (each with its own seed) through `generator`, all starts
/// in one batch; returns the enhanced pictures in order. `discriminator` serves the realism
/// term (`settings.realism_weight` > 0); without one the term is left out.
///
/// # Errors
/// A picture that does not fit the model ([`check`]), zero starts or steps, fewer candidates
/// than starts, torch failures.
pub fn invert(
    generator: &Generator,
    discriminator: Option<&Discriminator>,
    known: &[(Known, u64)],
    settings: &InversionSettings,
) -> Result<Vec<Inverted>, GanError> {
    let arch = generator.architecture();
    let (size, channels) = (arch.image_size, arch.channels);
    if settings.starts == 0 || settings.steps == 0 || settings.candidates < settings.starts {
        return Err(GanError::Setting(
            "an inversion needs at least one start, one step, and as many candidates as starts"
                .into(),
        ));
    }
    for (k, _) in known {
        check(k, size, channels)?;
    }
    if known.is_empty() {
        return Ok(Vec::new());
    }
    let device = generator.device();
    let targets = known
        .iter()
        .map(|(k, _)| target(k, size, channels, device))
        .collect::<Result<Vec<_>, _>>()?;
    let (z, indices) = warm_starts(generator, known, &targets, settings)?;
    let critic = discriminator.filter(|_| settings.realism_weight > 0.0);
    let z = search_latents(generator, critic, z, &targets, settings)?;
    let (winners, losses, generated) =
        tch::no_grad(|| pick_winners(generator, &z, &targets, settings))?;
    let mut images: Vec<Tensor> = winners
        .iter()
        .map(|&w| generated.f_narrow(0, w as i64, 1))
        .collect::<Result<_, _>>()?;
    let mut data_loss: Vec<f64> = losses;
    for kind in 0..3 {
        let group: Vec<usize> = (0..known.len())
            .filter(|&i| known[i].0.kind() == kind)
            .collect();
        let refine = settings.refine.of(kind);
        if group.is_empty() || refine.steps == 0 {
            continue;
        }
        let rows: Vec<i64> = group.iter().map(|&i| winners[i] as i64).collect();
        let own: Vec<&Target> = group.iter().map(|&i| &targets[i]).collect();
        if let Some((refined, loss)) = refine_features(generator, &z, &rows, &own, &refine)? {
            for (j, &i) in group.iter().enumerate() {
                images[i] = refined.f_narrow(0, j as i64, 1)?;
                data_loss[i] = loss[j];
            }
        }
    }
    tch::no_grad(|| {
        let mut out = Vec::with_capacity(known.len());
        for (i, ((k, _), t)) in known.iter().zip(&targets).enumerate() {
            let blended = blend(k, t, &images[i], settings, size, channels)?;
            out.push(Inverted {
                pixels: Vec::<f32>::try_from(blended.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?,
                data_loss: data_loss[i],
                start: indices[winners[i]],
            });
        }
        Ok(out)
    })
}

/// Each picture's `starts` best of its `candidates` random latents (by data loss, ties to the
/// lower index), stacked picture by picture `[P·starts, d]`, and each row's index among its
/// picture's candidates.
fn warm_starts(
    generator: &Generator,
    known: &[(Known, u64)],
    targets: &[Target],
    settings: &InversionSettings,
) -> Result<(Tensor, Vec<usize>), GanError> {
    let dim = generator.architecture().latent_dim as usize;
    let device = generator.device();
    let mut flat = Vec::with_capacity(known.len() * settings.starts * dim);
    let mut indices = Vec::with_capacity(known.len() * settings.starts);
    for ((_, seed), t) in known.iter().zip(targets) {
        let mut pool = Vec::with_capacity(settings.candidates * dim);
        for c in 0..settings.candidates {
            pool.extend(latents_for(*seed, c as u64, dim));
        }
        let chosen: Vec<usize> = if settings.candidates == settings.starts {
            (0..settings.starts).collect()
        } else {
            let losses = tch::no_grad(|| -> Result<Vec<f32>, GanError> {
                let z = Tensor::f_from_slice(&pool)?
                    .f_view([settings.candidates as i64, dim as i64])?
                    .f_to_device(device)?;
                let images = generator.forward_t(&z, false);
                let l = data_losses(&images, &[t], settings.candidates)?;
                Ok(Vec::<f32>::try_from(l.f_to_device(Device::Cpu)?)?)
            })?;
            let mut order: Vec<usize> = (0..settings.candidates).collect();
            order.sort_by(|&a, &b| losses[a].total_cmp(&losses[b]).then(a.cmp(&b)));
            order.truncate(settings.starts);
            order
        };
        for &c in &chosen {
            flat.extend_from_slice(&pool[c * dim..(c + 1) * dim]);
        }
        indices.extend(chosen);
    }
    let n = (known.len() * settings.starts) as i64;
    let z = Tensor::f_from_slice(&flat)?
        .f_view([n, dim as i64])?
        .f_to_device(device)?;
    Ok((z, indices))
}

/// Adam on the latents `z` (`[P·starts, d]`) against the data loss and the prior.
fn search_latents(
    generator: &Generator,
    critic: Option<&Discriminator>,
    mut z: Tensor,
    targets: &[Target],
    settings: &InversionSettings,
) -> Result<Tensor, GanError> {
    let dim = generator.architecture().latent_dim as usize;
    let all: Vec<&Target> = targets.iter().collect();
    let mut adam = LatentAdam::new(&z, settings.learning_rate)?;
    for _ in 0..settings.steps {
        let leaf = z.detach().set_requires_grad(true);
        let images = generator.forward_t(&leaf, false);
        let per_start = data_losses(&images, &all, settings.starts)?;
        let prior = prior(&leaf, dim);
        let mut total = &per_start + prior * settings.prior_weight;
        if let Some(d) = critic {
            let unreal = d.forward_t(&images, false).f_neg()?.f_softplus()?;
            total += unreal * settings.realism_weight;
        }
        let total = total.f_sum(Kind::Float)?;
        let grad = Tensor::f_run_backward(&[&total], &[&leaf], false, false)?
            .pop()
            .ok_or_else(|| GanError::Internal("no gradient at the latents".into()))?;
        z = tch::no_grad(|| adam.step(&z, &grad))?;
    }
    Ok(z)
}

/// Each picture's winning row of `z` (lowest data loss, ties to the lower start), that loss, and
/// the generations of every row.
fn pick_winners(
    generator: &Generator,
    z: &Tensor,
    targets: &[Target],
    settings: &InversionSettings,
) -> Result<(Vec<usize>, Vec<f64>, Tensor), GanError> {
    let all: Vec<&Target> = targets.iter().collect();
    let images = generator.forward_t(z, false);
    let per_start = data_losses(&images, &all, settings.starts)?;
    let losses = Vec::<f32>::try_from(per_start.f_to_device(Device::Cpu)?)?;
    let mut rows = Vec::with_capacity(targets.len());
    let mut best_losses = Vec::with_capacity(targets.len());
    for (i, own) in losses.chunks(settings.starts).enumerate() {
        let best = own
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(s, _)| s);
        rows.push(i * settings.starts + best);
        best_losses.push(f64::from(own[best]));
    }
    Ok((rows, best_losses, images))
}

/// Adam on the first-block features of the rows `rows` of `z`, one per target: the refined
/// generations `[G, C, S, S]` and their data losses; `None` when the generator cannot be split
/// (a progressive one).
fn refine_features(
    generator: &Generator,
    z: &Tensor,
    rows: &[i64],
    targets: &[&Target],
    refine: &Refine,
) -> Result<Option<(Tensor, Vec<f64>)>, GanError> {
    let picked = z.f_index_select(0, &Tensor::f_from_slice(rows)?.f_to_device(z.device())?)?;
    let Some(start) = tch::no_grad(|| generator.head_t(&picked)) else {
        return Ok(None);
    };
    let mut h = start.copy();
    let mut adam = LatentAdam::new(&h, refine.learning_rate)?;
    for _ in 0..refine.steps {
        let leaf = h.detach().set_requires_grad(true);
        let images = generator
            .tail_t(&leaf)
            .ok_or_else(|| GanError::Internal("the generator lost its tail".into()))?;
        let data = data_losses(&images, targets, 1)?;
        let near = (&leaf - &start).f_square()?.f_mean_dim(
            [1_i64, 2, 3].as_slice(),
            false,
            Kind::Float,
        )?;
        let total = (data + near * refine.proximity).f_sum(Kind::Float)?;
        let grad = Tensor::f_run_backward(&[&total], &[&leaf], false, false)?
            .pop()
            .ok_or_else(|| GanError::Internal("no gradient at the features".into()))?;
        h = tch::no_grad(|| -> Result<Tensor, GanError> {
            Ok(adam.step(&h, &grad)?.f_clamp_min(0.0)?)
        })?;
    }
    tch::no_grad(|| {
        let images = generator
            .tail_t(&h)
            .ok_or_else(|| GanError::Internal("the generator lost its tail".into()))?;
        let losses = data_losses(&images, targets, 1)?;
        let losses = Vec::<f32>::try_from(losses.f_to_device(Device::Cpu)?)?;
        Ok(Some((images, losses.into_iter().map(f64::from).collect())))
    })
}

fn target(known: &Known, size: u32, channels: u32, device: Device) -> Result<Target, GanError> {
    let (s, c) = (i64::from(size), i64::from(channels));
    Ok(match known {
        Known::All { pixels } => Target {
            pixels: Tensor::f_from_slice(pixels)?
                .f_view([1, c, s, s])?
                .f_to_device(device)?,
            weight: None,
            factor: None,
            known: pixels.len() as f64,
        },
        Known::Masked { pixels, mask } => {
            let weights: Vec<f32> = mask.iter().map(|&m| f32::from(u8::from(m))).collect();
            let count = weights.iter().filter(|&&w| w > 0.0).count();
            Target {
                pixels: Tensor::f_from_slice(pixels)?
                    .f_view([1, c, s, s])?
                    .f_to_device(device)?,
                weight: Some(
                    Tensor::f_from_slice(&weights)?
                        .f_view([1, 1, s, s])?
                        .f_to_device(device)?,
                ),
                factor: None,
                known: (count * channels as usize) as f64,
            }
        }
        Known::Downscaled { pixels, factor } => {
            let small = s / i64::from(*factor);
            Target {
                pixels: Tensor::f_from_slice(pixels)?
                    .f_view([1, c, small, small])?
                    .f_to_device(device)?,
                weight: None,
                factor: Some(i64::from(*factor)),
                known: pixels.len() as f64,
            }
        }
    })
}

/// The area downscale by `f` that an upscale's input is assumed to have come from.
fn downscale(images: &Tensor, f: i64) -> Result<Tensor, GanError> {
    Ok(images.f_avg_pool2d([f, f], [f, f], [0, 0], false, true, None::<i64>)?)
}

/// Mean squared error on the known data of each image, `per` consecutive images per target:
/// `[targets.len() · per]`.
fn data_losses(images: &Tensor, targets: &[&Target], per: usize) -> Result<Tensor, GanError> {
    let mut losses = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let own = images.f_narrow(0, (i * per) as i64, per as i64)?;
        let own = match t.factor {
            Some(f) => downscale(&own, f)?,
            None => own,
        };
        let mut err = (own - &t.pixels).f_square()?;
        if let Some(w) = &t.weight {
            err *= w;
        }
        losses.push(err.f_sum_dim_intlist([1_i64, 2, 3].as_slice(), false, Kind::Float)? / t.known);
    }
    Ok(Tensor::f_cat(&losses, 0)?)
}

/// `(|z|²/d − 1)²` per latent: zero on the sphere where standard normal latents concentrate.
fn prior(z: &Tensor, dim: usize) -> Tensor {
    let radius = z
        .square()
        .sum_dim_intlist([1_i64].as_slice(), false, Kind::Float)
        / dim as f64;
    (radius - 1.0).square()
}

/// The answer from the final generation `[1, C, S, S]`.
fn blend(
    known: &Known,
    target: &Target,
    generated: &Tensor,
    settings: &InversionSettings,
    size: u32,
    channels: u32,
) -> Result<Tensor, GanError> {
    let out = match known {
        Known::All { .. } => {
            let keep = settings.restore_keep.clamp(0.0, 1.0);
            generated * (1.0 - keep) + &target.pixels * keep
        }
        Known::Masked { pixels, mask } => {
            let filled = fill_hole(pixels, mask, generated, size, channels)?;
            Tensor::f_from_slice(&filled)?
                .f_view([1, i64::from(channels), i64::from(size), i64::from(size)])?
                .f_to_device(generated.device())?
        }
        Known::Downscaled { factor, .. } => {
            // Back-projection that respects the range: each block's residual is spread over
            // its pixels in proportion to the room each has to move that way (1 − p up, p + 1
            // down). A block's mean then equals the small picture's pixel exactly, and no pixel
            // leaves [-1, 1] (the residual never exceeds the block's mean room).
            let f = i64::from(*factor);
            let s = i64::from(size);
            let up = generated.f_neg()? + 1.0;
            let down = generated + 1.0;
            let residual = &target.pixels - downscale(generated, f)?;
            let rise = residual.f_clamp_min(0.0)? / downscale(&up, f)?.f_clamp_min(1e-12)?;
            let fall =
                residual.f_neg()?.f_clamp_min(0.0)? / downscale(&down, f)?.f_clamp_min(1e-12)?;
            let full = |t: Tensor| t.f_upsample_nearest2d([s, s], None::<f64>, None::<f64>);
            generated + up * full(rise)? - down * full(fall)?
        }
    };
    Ok(out.f_clamp(-1.0, 1.0)?)
}

/// An inpaint's answer `[C, S, S]`: every known pixel as it was; in the hole the generation
/// plus the harmonic interpolation (Laplace's equation) of its error on the known pixels, so
/// the generation meets the known picture without a step at the seam.
fn fill_hole(
    pixels: &[f32],
    mask: &[bool],
    generated: &Tensor,
    size: u32,
    channels: u32,
) -> Result<Vec<f32>, GanError> {
    let generated = Vec::<f32>::try_from(generated.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?;
    let plane = (size * size) as usize;
    let error = Planes {
        channels: channels as usize,
        size: size as usize,
        data: pixels
            .iter()
            .zip(&generated)
            .enumerate()
            .map(|(i, (p, g))| if mask[i % plane] { p - g } else { 0.0 })
            .collect(),
    };
    let correction = harmonic_fill(&error, mask);
    Ok((0..pixels.len())
        .map(|i| {
            if mask[i % plane] {
                pixels[i]
            } else {
                (generated[i] + correction.data[i]).clamp(-1.0, 1.0)
            }
        })
        .collect())
}

/// Adam on one tensor (Kingma & Ba 2015, as `torch.optim.Adam`).
struct LatentAdam {
    m: Tensor,
    v: Tensor,
    t: i32,
    learning_rate: f64,
}

impl LatentAdam {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new(like: &Tensor, learning_rate: f64) -> Result<Self, GanError> {
        Ok(Self {
            m: like.f_zeros_like()?,
            v: like.f_zeros_like()?,
            t: 0,
            learning_rate,
        })
    }

    fn step(&mut self, z: &Tensor, grad: &Tensor) -> Result<Tensor, GanError> {
        self.t += 1;
        self.m = &self.m * Self::BETA1 + grad * (1.0 - Self::BETA1);
        self.v = &self.v * Self::BETA2 + grad.f_square()? * (1.0 - Self::BETA2);
        let m_hat = &self.m / (1.0 - Self::BETA1.powi(self.t));
        let v_hat = &self.v / (1.0 - Self::BETA2.powi(self.t));
        Ok(z - m_hat / (v_hat.f_sqrt()? + Self::EPS) * self.learning_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped model: a random network's pictures are all but constant.
    fn generator() -> Generator {
        let models = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
        crate::gan::catalog::load_model(models.as_ref(), "fashion-dcgan32-ema", Device::Cpu)
            .unwrap()
            .generator
    }

    /// A picture the generator can make (from another seed than any start).
    fn reachable(g: &Generator) -> Vec<f32> {
        let dim = g.architecture().latent_dim as usize;
        let z = Tensor::from_slice(&latents_for(99, 0, dim)).view([1, dim as i64]);
        let image = tch::no_grad(|| g.forward_t(&z, false));
        Vec::<f32>::try_from(image.flatten(0, -1)).unwrap()
    }

    fn settings(steps: usize) -> InversionSettings {
        let none = Refine {
            steps: 0,
            learning_rate: 0.03,
            proximity: 0.1,
        };
        InversionSettings {
            candidates: 4,
            starts: 4,
            steps,
            learning_rate: 0.05,
            prior_weight: 0.01,
            realism_weight: 0.0,
            restore_keep: 0.0,
            refine: Refinements {
                restore: none,
                inpaint: none,
                upscale: none,
            },
        }
    }

    /// `settings(steps)` with a refinement of `refine` steps for every operation.
    fn refined(steps: usize, refine: usize) -> InversionSettings {
        let r = Refine {
            steps: refine,
            learning_rate: 0.03,
            proximity: 0.1,
        };
        InversionSettings {
            refine: Refinements {
                restore: r,
                inpaint: r,
                upscale: r,
            },
            ..settings(steps)
        }
    }

    fn hole(x: usize, y: usize, w: usize, h: usize) -> Vec<bool> {
        (0..32 * 32)
            .map(|i| !((y..y + h).contains(&(i / 32)) && (x..x + w).contains(&(i % 32))))
            .collect()
    }

    #[test]
    fn the_data_loss_falls_as_the_latents_are_optimised() {
        let g = generator();
        let known = Known::All {
            pixels: reachable(&g),
        };
        let short = invert(&g, None, &[(known.clone(), 1)], &settings(1)).unwrap();
        let long = invert(&g, None, &[(known, 1)], &settings(60)).unwrap();
        assert!(
            long[0].data_loss < short[0].data_loss * 0.5,
            "{} then {}",
            short[0].data_loss,
            long[0].data_loss
        );
    }

    #[test]
    fn inpainting_keeps_every_known_pixel() {
        let g = generator();
        let truth = reachable(&g);
        let mask = hole(10, 12, 12, 12);
        // What the caller knows: the picture with its hole blacked out.
        let pixels: Vec<f32> = truth
            .iter()
            .zip(&mask)
            .map(|(&p, &k)| if k { p } else { -1.0 })
            .collect();
        let known = Known::Masked {
            pixels: pixels.clone(),
            mask: mask.clone(),
        };
        let out = invert(&g, None, &[(known, 3)], &refined(40, 5)).unwrap();
        assert_eq!(out[0].pixels.len(), 32 * 32);
        for (i, (got, was)) in out[0].pixels.iter().zip(&pixels).enumerate() {
            if mask[i] {
                assert!((got - was).abs() < 1e-6, "pixel {},{}", i % 32, i / 32);
            }
        }
        // Inside the hole the generator's pixels, nearer the truth than the black fill.
        let error = |picture: &[f32]| -> f32 {
            mask.iter()
                .zip(picture.iter().zip(&truth))
                .filter(|(&k, _)| !k)
                .map(|(_, (p, t))| (p - t).abs())
                .sum()
        };
        assert!(error(&out[0].pixels) < 0.5 * error(&pixels));
    }

    #[test]
    fn an_upscale_downscales_back_to_its_input() {
        let g = generator();
        let full = Tensor::from_slice(&reachable(&g)).view([1, 1, 32, 32]);
        let small = downscale(&full, 4).unwrap();
        let known = Known::Downscaled {
            pixels: Vec::<f32>::try_from(small.flatten(0, -1)).unwrap(),
            factor: 4,
        };
        let out = invert(&g, None, &[(known, 5)], &refined(10, 5)).unwrap();
        let back = downscale(&Tensor::from_slice(&out[0].pixels).view([1, 1, 32, 32]), 4).unwrap();
        let error = f64::try_from((back - &small).abs().max()).unwrap();
        assert!(error < 1e-5, "{error}");
    }

    #[test]
    fn a_seed_decides_the_pixels_and_pictures_do_not_disturb_each_other() {
        let g = generator();
        let pixels = reachable(&g);
        let a = Known::All {
            pixels: pixels.clone(),
        };
        let b = Known::Masked {
            pixels,
            mask: hole(0, 0, 16, 8),
        };
        // Warm starts, latent search and refinement, each stage free of the batch's others.
        let all_stages = InversionSettings {
            candidates: 16,
            ..refined(5, 3)
        };
        let alone = invert(&g, None, &[(a.clone(), 11)], &all_stages).unwrap();
        let again = invert(&g, None, &[(a.clone(), 11)], &all_stages).unwrap();
        assert_eq!(alone[0].pixels, again[0].pixels);
        let other = invert(&g, None, &[(a.clone(), 12)], &all_stages).unwrap();
        assert_ne!(alone[0].pixels, other[0].pixels);
        let together = invert(&g, None, &[(b.clone(), 4), (a, 11)], &all_stages).unwrap();
        let b_alone = invert(&g, None, &[(b, 4)], &all_stages).unwrap();
        for (x, y) in [(&together[1], &alone[0]), (&together[0], &b_alone[0])] {
            assert_eq!(x.start, y.start);
            let most = x
                .pixels
                .iter()
                .zip(&y.pixels)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0_f32, f32::max);
            assert!(most < 1e-4, "{most}");
        }
    }

    #[test]
    fn warm_starts_and_refinement_each_lower_the_data_loss() {
        let g = generator();
        let known = Known::All {
            pixels: reachable(&g),
        };
        let job = [(known, 21)];
        let plain = invert(&g, None, &job, &settings(5)).unwrap();
        let warm = invert(
            &g,
            None,
            &job,
            &InversionSettings {
                candidates: 64,
                ..settings(5)
            },
        )
        .unwrap();
        let refined = invert(
            &g,
            None,
            &job,
            &InversionSettings {
                candidates: 64,
                ..refined(5, 20)
            },
        )
        .unwrap();
        assert!(warm[0].data_loss < plain[0].data_loss, "{warm:?} {plain:?}");
        assert!(
            refined[0].data_loss < warm[0].data_loss,
            "{refined:?} {warm:?}"
        );
        // The winner is named by its index among the request's candidates.
        assert!(warm[0].start < 64);
        assert!(invert(
            &g,
            None,
            &job,
            &InversionSettings {
                candidates: 3,
                ..settings(5)
            }
        )
        .is_err());
    }

    #[test]
    fn the_realism_term_needs_the_discriminator_and_moves_the_search() {
        let models = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
        let model =
            crate::gan::catalog::load_model(models.as_ref(), "fashion-dcgan32-ema", Device::Cpu)
                .unwrap();
        let known = Known::All {
            pixels: reachable(&model.generator),
        };
        let job = [(known, 8)];
        let with = InversionSettings {
            realism_weight: 0.05,
            ..settings(5)
        };
        let plain = invert(&model.generator, None, &job, &with).unwrap();
        let off = invert(
            &model.generator,
            Some(&model.discriminator),
            &job,
            &settings(5),
        );
        let on = invert(&model.generator, Some(&model.discriminator), &job, &with).unwrap();
        // Weight 0 or no discriminator: the pixels-and-prior search, exactly.
        assert_eq!(off.unwrap()[0].pixels, plain[0].pixels);
        assert_ne!(on[0].pixels, plain[0].pixels);
    }

    #[test]
    fn pictures_that_do_not_fit_are_refused() {
        let full = vec![0.0; 32 * 32];
        let bad = [
            Known::All {
                pixels: vec![0.0; 31 * 31],
            },
            Known::Masked {
                pixels: full.clone(),
                mask: vec![true; 32 * 32],
            },
            Known::Masked {
                pixels: full.clone(),
                mask: vec![false; 32 * 32],
            },
            Known::Masked {
                pixels: full.clone(),
                mask: vec![true; 16 * 16],
            },
            Known::Downscaled {
                pixels: vec![0.0; 64],
                factor: 0,
            },
            Known::Downscaled {
                pixels: vec![0.0; 100],
                factor: 3,
            },
            Known::Downscaled {
                pixels: vec![0.0; 1],
                factor: 1000,
            },
            Known::Downscaled {
                pixels: vec![0.0; 63],
                factor: 4,
            },
            Known::Downscaled {
                pixels: full,
                factor: 1,
            },
        ];
        for known in &bad {
            assert!(
                matches!(check(known, 32, 1), Err(GanError::Shape(_))),
                "{known:?}"
            );
        }
        assert!(check(
            &Known::Downscaled {
                pixels: vec![0.0; 64],
                factor: 4
            },
            32,
            1
        )
        .is_ok());
    }
}
