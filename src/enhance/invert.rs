//! Enhancement by GAN inversion: the generator's image nearest to what is known of a picture,
//! used where the picture is not known (or not trusted).
//!
//! For each picture several random latents ("starts", drawn from the request's seed as
//! generation draws them) are optimised with Adam for a fixed number of steps against a data
//! loss on the known pixels — all pixels of a noisy picture (`restore`), those outside a hole
//! (`inpaint`), or the area-downscaled generation against a small picture (`upscale`) — plus a
//! prior that keeps each latent near the sphere of radius √d where a Gaussian latent lives
//! (far from it the generator was never trained). All starts of all pictures go through the
//! generator together: one forward and one backward pass per step, gradients taken for the
//! latents alone (`run_backward`), the weights untouched. The start with the lowest data loss
//! wins, and is blended with the picture: a hole's known border is kept through a feathered
//! mask, an upscale is corrected so that its own downscale is the small picture exactly.
//!
//! Everything is deterministic for a seed on one machine: the starts come from ChaCha streams
//! ([`crate::gan::latents_for`]) and the loop has no other randomness.

use tch::{Device, Kind, Tensor};

use crate::gan::model::{latents_for, Generator};
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

/// The optimisation budget and its weights: the `[enhancement]` settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InversionSettings {
    /// Random latents optimised per picture.
    pub starts: usize,
    /// Adam steps.
    pub steps: usize,
    pub learning_rate: f64,
    /// Weight of the prior `(|z|²/d − 1)²` per latent.
    pub prior_weight: f64,
    /// Restore: share of the noisy picture kept in the answer (0: the generation alone).
    pub restore_keep: f64,
    /// Inpaint: width (pixels) over which kept pixels fade into the generated ones at the
    /// hole's edge.
    pub feather: u32,
}

/// One picture's result: the enhanced pixels (`[C, S, S]` in [-1, 1]) and the winning start's
/// data loss (mean squared error on what was known, in [-1, 1] units).
#[derive(Debug, Clone)]
pub struct Inverted {
    pub pixels: Vec<f32>,
    pub data_loss: f64,
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
/// in one batch; returns the enhanced pictures in order.
///
/// # Errors
/// A picture that does not fit the model ([`check`]), zero starts or steps, torch failures.
pub fn invert(
    generator: &Generator,
    known: &[(Known, u64)],
    settings: &InversionSettings,
) -> Result<Vec<Inverted>, GanError> {
    let arch = generator.architecture();
    let (size, channels) = (arch.image_size, arch.channels);
    if settings.starts == 0 || settings.steps == 0 {
        return Err(GanError::Setting(
            "an inversion needs at least one start and one step".into(),
        ));
    }
    for (k, _) in known {
        check(k, size, channels)?;
    }
    if known.is_empty() {
        return Ok(Vec::new());
    }
    let device = generator.device();
    let dim = arch.latent_dim as usize;
    let starts = settings.starts;
    let targets = known
        .iter()
        .map(|(k, _)| target(k, size, channels, device))
        .collect::<Result<Vec<_>, _>>()?;
    let mut flat = Vec::with_capacity(known.len() * starts * dim);
    for (_, seed) in known {
        for s in 0..starts {
            flat.extend(latents_for(*seed, s as u64, dim));
        }
    }
    let n = (known.len() * starts) as i64;
    let mut z = Tensor::f_from_slice(&flat)?
        .f_view([n, dim as i64])?
        .f_to_device(device)?;
    let mut adam = LatentAdam::new(&z, settings.learning_rate)?;
    for _ in 0..settings.steps {
        let leaf = z.detach().set_requires_grad(true);
        let images = generator.forward_t(&leaf, false);
        let per_start = data_losses(&images, &targets, starts)?;
        let prior = prior(&leaf, dim);
        let total = (&per_start + prior * settings.prior_weight).f_sum(Kind::Float)?;
        let grad = Tensor::f_run_backward(&[&total], &[&leaf], false, false)?
            .pop()
            .ok_or_else(|| GanError::Internal("no gradient at the latents".into()))?;
        z = tch::no_grad(|| adam.step(&z, &grad))?;
    }
    tch::no_grad(|| {
        let images = generator.forward_t(&z, false);
        let per_start = data_losses(&images, &targets, starts)?;
        let losses = Vec::<f32>::try_from(per_start.f_to_device(Device::Cpu)?)?;
        let mut out = Vec::with_capacity(known.len());
        for (i, ((k, _), t)) in known.iter().zip(&targets).enumerate() {
            let own = &losses[i * starts..(i + 1) * starts];
            let best = own
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(s, _)| s);
            let generated = images.f_narrow(0, (i * starts + best) as i64, 1)?;
            let blended = blend(k, t, &generated, settings, size)?;
            out.push(Inverted {
                pixels: Vec::<f32>::try_from(blended.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?,
                data_loss: f64::from(own[best]),
                start: best,
            });
        }
        Ok(out)
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

/// Mean squared error on the known data of each start: `[N]`.
fn data_losses(images: &Tensor, targets: &[Target], starts: usize) -> Result<Tensor, GanError> {
    let mut losses = Vec::with_capacity(targets.len());
    for (i, t) in targets.iter().enumerate() {
        let own = images.f_narrow(0, (i * starts) as i64, starts as i64)?;
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

/// The answer from the winning generation `[1, C, S, S]`.
fn blend(
    known: &Known,
    target: &Target,
    generated: &Tensor,
    settings: &InversionSettings,
    size: u32,
) -> Result<Tensor, GanError> {
    let out = match known {
        Known::All { .. } => {
            let keep = settings.restore_keep.clamp(0.0, 1.0);
            generated * (1.0 - keep) + &target.pixels * keep
        }
        Known::Masked { mask, .. } => {
            let keep = feathered(mask, size, settings.feather, generated.device())?;
            generated * (1.0 - &keep) + &target.pixels * &keep
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

/// The share of the known picture kept at each position `[1, 1, S, S]`: 0 in the hole, rising
/// to 1 at `feather` pixels (Chebyshev distance) from it, so the seam fades.
fn feathered(mask: &[bool], size: u32, feather: u32, device: Device) -> Result<Tensor, GanError> {
    let s = size as usize;
    let holes: Vec<(usize, usize)> = (0..s * s)
        .filter(|&i| !mask[i])
        .map(|i| (i / s, i % s))
        .collect();
    let keep: Vec<f32> = (0..s * s)
        .map(|i| {
            if !mask[i] {
                return 0.0;
            }
            let (y, x) = (i / s, i % s);
            let d = holes
                .iter()
                .map(|&(hy, hx)| y.abs_diff(hy).max(x.abs_diff(hx)))
                .min()
                .unwrap_or(usize::MAX);
            ((d as f32) / (feather as f32 + 1.0)).min(1.0)
        })
        .collect();
    Ok(Tensor::f_from_slice(&keep)?
        .f_view([1, 1, size as i64, size as i64])?
        .f_to_device(device)?)
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
        InversionSettings {
            starts: 4,
            steps,
            learning_rate: 0.05,
            prior_weight: 0.01,
            restore_keep: 0.0,
            feather: 2,
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
        let short = invert(&g, &[(known.clone(), 1)], &settings(1)).unwrap();
        let long = invert(&g, &[(known, 1)], &settings(60)).unwrap();
        assert!(
            long[0].data_loss < short[0].data_loss * 0.5,
            "{} then {}",
            short[0].data_loss,
            long[0].data_loss
        );
    }

    #[test]
    fn inpainting_keeps_the_known_pixels_away_from_the_hole() {
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
        let out = invert(&g, &[(known, 3)], &settings(40)).unwrap();
        let f = settings(1).feather as usize;
        assert_eq!(out[0].pixels.len(), 32 * 32);
        for (i, (got, was)) in out[0].pixels.iter().zip(&pixels).enumerate() {
            let (y, x) = (i / 32, i % 32);
            let far =
                !(10 - f - 1..22 + f + 1).contains(&x) || !(12 - f - 1..24 + f + 1).contains(&y);
            if far {
                assert!((got - was).abs() < 1e-6, "pixel {x},{y}");
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
        let out = invert(&g, &[(known, 5)], &settings(10)).unwrap();
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
        let alone = invert(&g, &[(a.clone(), 11)], &settings(5)).unwrap();
        let again = invert(&g, &[(a.clone(), 11)], &settings(5)).unwrap();
        assert_eq!(alone[0].pixels, again[0].pixels);
        let other = invert(&g, &[(a.clone(), 12)], &settings(5)).unwrap();
        assert_ne!(alone[0].pixels, other[0].pixels);
        let together = invert(&g, &[(b.clone(), 4), (a, 11)], &settings(5)).unwrap();
        let b_alone = invert(&g, &[(b, 4)], &settings(5)).unwrap();
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
