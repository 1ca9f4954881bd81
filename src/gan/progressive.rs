//! Progressive growing (Karras et al. 2018, "Progressive Growing of GANs for Improved Quality,
//! Stability, and Variation"): both networks start at 4x4 and gain a resolution at a time; a new
//! resolution fades in, its output blended with the upsampled output of the one before by an
//! `alpha` that rises from 0 to 1. The paper's other parts are here too: equalised learning
//! rate (weights drawn from N(0, 1) and scaled by He's constant at run time, so Adam's step is
//! the same for every layer), pixel-wise feature normalisation in the generator, and a minibatch
//! standard-deviation channel before the discriminator's last block.
//!
//! Every layer, up to the full resolution, exists from the start (so the weights file of a model
//! has one shape whatever stage it reached); layers of resolutions not reached yet take no part
//! in the forward pass and get no gradient. Where growth stands (`level`, `alpha`) is a
//! non-trainable variable saved with the weights: a checkpoint taken mid-fade is served as it
//! was trained, its images upsampled (nearest) to the card's size.

use std::cell::Cell;

use tch::nn;
use tch::{Kind, Tensor};

use super::card::Architecture;
use super::GanError;

/// Where growth stands: `level` 0 is 4x4, each level doubles the side; `alpha` is the weight of
/// the newest level's output while it fades in (1: fully in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Growth {
    pub level: u32,
    pub alpha: f64,
}

impl Growth {
    /// The side of the images at this level.
    #[must_use]
    pub fn resolution(self) -> i64 {
        4 << self.level
    }
}

/// When each level fades in: level 0 trains for `stage_steps`, then each further level fades in
/// over `fade_steps` and trains on for `stage_steps`; past the last level, training goes on at
/// full resolution. A pure function of the step, so a resumed run continues the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Levels up to the full size: `stages + 1` (4x4 .. image_size).
    pub levels: u32,
    pub stage_steps: u64,
    pub fade_steps: u64,
}

impl Schedule {
    /// The growth at `step`.
    #[must_use]
    pub fn at(&self, step: u64) -> Growth {
        let last = self.levels.saturating_sub(1);
        if step < self.stage_steps {
            return Growth {
                level: 0,
                alpha: 1.0,
            };
        }
        let mut t = step - self.stage_steps;
        for level in 1..=last {
            if t < self.fade_steps {
                return Growth {
                    level,
                    alpha: (t as f64 + 1.0) / (self.fade_steps as f64 + 1.0),
                };
            }
            t -= self.fade_steps;
            if t < self.stage_steps {
                return Growth { level, alpha: 1.0 };
            }
            t -= self.stage_steps;
        }
        Growth {
            level: last,
            alpha: 1.0,
        }
    }

    /// Steps until the full resolution is fully faded in and has trained `stage_steps`.
    #[must_use]
    pub fn ramp_steps(&self) -> u64 {
        u64::from(self.levels) * self.stage_steps
            + u64::from(self.levels.saturating_sub(1)) * self.fade_steps
    }

    /// A short name of a phase, for progress bars and sample grids: "16x16 fade-in".
    #[must_use]
    pub fn phase_name(growth: Growth) -> String {
        let r = growth.resolution();
        if growth.alpha < 1.0 {
            format!("{r}x{r} fade-in")
        } else {
            format!("{r}x{r}")
        }
    }

    /// The first step of the phase holding `step`.
    #[must_use]
    pub fn phase_start(&self, step: u64) -> u64 {
        let key = |g: Growth| (g.level, g.alpha < 1.0);
        let here = key(self.at(step));
        let mut start = step.min(self.ramp_steps());
        while start > 0 && key(self.at(start - 1)) == here {
            start -= 1;
        }
        start
    }

    /// The step at which the phase holding `step` ends.
    #[must_use]
    pub fn phase_end(&self, step: u64) -> u64 {
        let here = self.at(step);
        let fading = here.alpha < 1.0;
        let mut end = step + 1;
        let limit = self.ramp_steps();
        while end < limit {
            let next = self.at(end);
            if next.level != here.level || (next.alpha < 1.0) != fading {
                break;
            }
            end += 1;
        }
        end
    }
}

/// Channels at a level: `width` at the full size, doubling per level towards 4x4, at most 512.
fn width(base: u32, stages: u32, level: u32) -> i64 {
    (i64::from(base) << (stages - level)).min(512)
}

/// A convolution with an equalised learning rate (padding keeps the size).
#[derive(Debug)]
struct EqConv {
    weight: Tensor,
    bias: Tensor,
    scale: f64,
    padding: i64,
}

impl EqConv {
    fn new(path: &nn::Path, in_c: i64, out_c: i64, kernel: i64, gain: f64) -> Self {
        let weight = path.var(
            "weight",
            &[out_c, in_c, kernel, kernel],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        );
        let bias = path.var("bias", &[out_c], nn::Init::Const(0.0));
        Self {
            weight,
            bias,
            scale: gain / ((in_c * kernel * kernel) as f64).sqrt(),
            padding: kernel / 2,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &(&self.weight * self.scale),
            Some(&self.bias),
            [1, 1],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }
}

/// A fully connected layer with an equalised learning rate.
#[derive(Debug)]
struct EqLinear {
    weight: Tensor,
    bias: Tensor,
    scale: f64,
}

impl EqLinear {
    fn new(path: &nn::Path, in_f: i64, out_f: i64, gain: f64) -> Self {
        let weight = path.var(
            "weight",
            &[out_f, in_f],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        );
        let bias = path.var("bias", &[out_f], nn::Init::Const(0.0));
        Self {
            weight,
            bias,
            scale: gain / (in_f as f64).sqrt(),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&(&self.weight * self.scale), Some(&self.bias))
    }
}

const LRELU_GAIN: f64 = std::f64::consts::SQRT_2;

fn lrelu(x: &Tensor) -> Tensor {
    x.maximum(&(x * 0.2))
}

/// Each pixel's feature vector scaled to unit mean square.
fn pixel_norm(x: &Tensor) -> Tensor {
    x / (x.square().mean_dim(1, true, Kind::Float) + 1e-8).sqrt()
}

fn upsample2(x: &Tensor) -> Tensor {
    let s = x.size();
    x.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None)
}

fn downsample2(x: &Tensor) -> Tensor {
    x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None)
}

/// Blends `new` over `old` by `alpha`.
fn fade(old: &Tensor, new: &Tensor, alpha: f64) -> Tensor {
    old + (new - old) * alpha
}

/// Where a network's growth stands: a non-trainable `growth` variable (`[level, alpha]`,
/// saved with the weights) and a copy read without touching the tensor each forward pass.
#[derive(Debug)]
struct GrowthState {
    var: Tensor,
    cached: Cell<Growth>,
    levels: u32,
}

impl GrowthState {
    /// Fully grown, until training says otherwise.
    fn new(root: &nn::Path, levels: u32) -> Self {
        let state = Self {
            var: root.zeros_no_train("growth", &[2]),
            cached: Cell::new(Growth {
                level: levels - 1,
                alpha: 1.0,
            }),
            levels,
        };
        let _ = state.set(state.cached.get());
        state
    }

    fn get(&self) -> Growth {
        self.cached.get()
    }

    fn set(&self, growth: Growth) -> Result<(), GanError> {
        tch::no_grad(|| -> Result<(), GanError> {
            let mut var = self.var.shallow_clone();
            var.f_copy_(&Tensor::from_slice(&[
                growth.level as f32,
                growth.alpha as f32,
            ]))?;
            Ok(())
        })?;
        self.cached.set(growth);
        Ok(())
    }

    /// Re-reads the variable after weights were loaded into it.
    fn sync(&self) -> Result<(), GanError> {
        let v: Vec<f32> = Vec::try_from(&self.var.to_device(tch::Device::Cpu))?;
        let (level, alpha) = (v[0], v[1]);
        let possible = (0.0..self.levels as f32).contains(&level)
            && level.fract() == 0.0
            && alpha > 0.0
            && alpha <= 1.0;
        if !possible {
            return Err(GanError::Architecture(format!(
                "the weights' growth state (level {level}, alpha {alpha}) is impossible for this model"
            )));
        }
        self.cached.set(Growth {
            level: level as u32,
            alpha: f64::from(alpha),
        });
        Ok(())
    }
}

/// The progressive generator.
#[derive(Debug)]
pub struct ProGenerator {
    dense: EqLinear,
    conv0: EqConv,
    /// Two 3x3 convolutions per level from 1 up.
    blocks: Vec<(EqConv, EqConv)>,
    /// A 1x1 convolution to pixels per level.
    to_rgb: Vec<EqConv>,
    width0: i64,
    image_size: i64,
    growth: GrowthState,
}

impl ProGenerator {
    pub(crate) fn new(root: &nn::Path, arch: &Architecture) -> Self {
        let stages = arch.stages();
        let w = |level| width(arch.g_width, stages, level);
        let channels = i64::from(arch.channels);
        let width0 = w(0);
        let dense = EqLinear::new(
            &(root / "dense"),
            i64::from(arch.latent_dim),
            width0 * 16,
            LRELU_GAIN / 4.0,
        );
        let conv0 = EqConv::new(&(root / "conv0"), width0, width0, 3, LRELU_GAIN);
        let mut blocks = Vec::new();
        let mut to_rgb = vec![EqConv::new(&(root / "to_rgb0"), width0, channels, 1, 1.0)];
        for level in 1..=stages {
            let (i, o) = (w(level - 1), w(level));
            blocks.push((
                EqConv::new(&(root / format!("block{level}a")), i, o, 3, LRELU_GAIN),
                EqConv::new(&(root / format!("block{level}b")), o, o, 3, LRELU_GAIN),
            ));
            to_rgb.push(EqConv::new(
                &(root / format!("to_rgb{level}")),
                o,
                channels,
                1,
                1.0,
            ));
        }
        Self {
            dense,
            conv0,
            blocks,
            to_rgb,
            width0,
            image_size: i64::from(arch.image_size),
            growth: GrowthState::new(root, stages + 1),
        }
    }

    pub(crate) fn growth(&self) -> Growth {
        self.growth.get()
    }

    pub(crate) fn set_growth(&self, growth: Growth) -> Result<(), GanError> {
        self.growth.set(growth)
    }

    /// Re-reads the growth after weights were loaded into the variables.
    pub(crate) fn sync_growth(&self) -> Result<(), GanError> {
        self.growth.sync()
    }

    /// Images at the current level's resolution (`native`), or upsampled to the full size and
    /// clamped to [-1, 1] (for serving).
    pub(crate) fn forward(&self, latents: &Tensor, native: bool) -> Tensor {
        let g = self.growth.get();
        let mut x = lrelu(&self.dense.forward(&pixel_norm(latents))).view([-1, self.width0, 4, 4]);
        x = pixel_norm(&x);
        x = pixel_norm(&lrelu(&self.conv0.forward(&x)));
        let mut prev = None;
        for (a, b) in self.blocks.iter().take(g.level as usize) {
            let up = upsample2(&x);
            prev = Some(x);
            x = pixel_norm(&lrelu(&a.forward(&up)));
            x = pixel_norm(&lrelu(&b.forward(&x)));
        }
        let mut out = self.to_rgb[g.level as usize].forward(&x);
        if let (Some(prev), true) = (prev, g.alpha < 1.0) {
            let skip = upsample2(&self.to_rgb[g.level as usize - 1].forward(&prev));
            out = fade(&skip, &out, g.alpha);
        }
        if native {
            return out;
        }
        let side = out.size()[2];
        if side < self.image_size {
            out = out.upsample_nearest2d([self.image_size, self.image_size], None, None);
        }
        out.clamp(-1.0, 1.0)
    }
}

/// The progressive discriminator.
#[derive(Debug)]
pub struct ProDiscriminator {
    /// A 1x1 convolution from pixels per level.
    from_rgb: Vec<EqConv>,
    /// Two 3x3 convolutions then a 2x average pool, per level from 1 up.
    blocks: Vec<(EqConv, EqConv)>,
    last_conv: EqConv,
    dense: EqLinear,
    out: EqLinear,
    width0: i64,
    growth: GrowthState,
}

impl ProDiscriminator {
    pub(crate) fn new(root: &nn::Path, arch: &Architecture, channels: u32) -> Self {
        let stages = arch.stages();
        let w = |level| width(arch.d_width, stages, level);
        let channels = i64::from(channels);
        let width0 = w(0);
        let mut from_rgb = Vec::new();
        let mut blocks = Vec::new();
        for level in 0..=stages {
            from_rgb.push(EqConv::new(
                &(root / format!("from_rgb{level}")),
                channels,
                w(level),
                1,
                LRELU_GAIN,
            ));
            if level > 0 {
                let (i, o) = (w(level), w(level - 1));
                blocks.push((
                    EqConv::new(&(root / format!("block{level}a")), i, i, 3, LRELU_GAIN),
                    EqConv::new(&(root / format!("block{level}b")), i, o, 3, LRELU_GAIN),
                ));
            }
        }
        let last_conv = EqConv::new(&(root / "last_conv"), width0 + 1, width0, 3, LRELU_GAIN);
        let dense = EqLinear::new(&(root / "dense"), width0 * 16, width0, LRELU_GAIN);
        let out = EqLinear::new(&(root / "out"), width0, 1, 1.0);
        Self {
            from_rgb,
            blocks,
            last_conv,
            dense,
            out,
            width0,
            growth: GrowthState::new(root, stages + 1),
        }
    }

    pub(crate) fn set_growth(&self, growth: Growth) -> Result<(), GanError> {
        self.growth.set(growth)
    }

    pub(crate) fn sync_growth(&self) -> Result<(), GanError> {
        self.growth.sync()
    }

    fn block(&self, level: u32, h: &Tensor) -> Tensor {
        let (a, b) = &self.blocks[level as usize - 1];
        downsample2(&lrelu(&b.forward(&lrelu(&a.forward(h)))))
    }

    /// The activations before the output layer, `[N, width0]`. Larger images are
    /// average-pooled to the current level's resolution first.
    pub(crate) fn features(&self, images: &Tensor) -> Tensor {
        let g = self.growth.get();
        let res = g.resolution();
        let x = if images.size()[2] == res {
            images.shallow_clone()
        } else {
            images.adaptive_avg_pool2d([res, res])
        };
        let mut h = lrelu(&self.from_rgb[g.level as usize].forward(&x));
        if g.level > 0 {
            h = self.block(g.level, &h);
            if g.alpha < 1.0 {
                let skip = lrelu(&self.from_rgb[g.level as usize - 1].forward(&downsample2(&x)));
                h = fade(&skip, &h, g.alpha);
            }
            for level in (1..g.level).rev() {
                h = self.block(level, &h);
            }
        }
        let h = minibatch_stddev(&h);
        let h = lrelu(&self.last_conv.forward(&h));
        lrelu(&self.dense.forward(&h.flatten(1, -1)))
    }

    pub(crate) fn forward(&self, images: &Tensor) -> Tensor {
        self.out.forward(&self.features(images)).view([-1])
    }

    pub(crate) fn feature_width(&self) -> i64 {
        self.width0
    }
}

/// Appends the average standard deviation of each feature over groups of up to 4 images as
/// one more channel (ProGAN, section 3): a batch of near-identical images stands out.
fn minibatch_stddev(x: &Tensor) -> Tensor {
    let s = x.size();
    let (n, h, w) = (s[0], s[2], s[3]);
    let group = if n % 4 == 0 { 4.min(n) } else { n };
    let y = x.view([group, -1, s[1], h, w]);
    let y = &y - y.mean_dim(0, true, Kind::Float);
    let y = (y.square().mean_dim(0, false, Kind::Float) + 1e-8).sqrt();
    let y = y.mean_dim([1_i64, 2, 3].as_slice(), true, Kind::Float);
    let y = y.repeat([group, 1, h, w]);
    Tensor::cat(&[x, &y], 1)
}

/// Images at a level's resolution, as the discriminator sees real ones: full-size images
/// average-pooled down, and during a fade-in blended with their own lower-resolution version
/// (ProGAN does the same to the real images so they match what the generator can make).
pub fn real_at(images: &Tensor, growth: Growth) -> Tensor {
    let res = growth.resolution();
    let x = if images.size()[2] == res {
        images.shallow_clone()
    } else {
        images.adaptive_avg_pool2d([res, res])
    };
    if growth.level > 0 && growth.alpha < 1.0 {
        fade(&upsample2(&downsample2(&x)), &x, growth.alpha)
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_fades_each_level_in_then_stabilises() {
        let s = Schedule {
            levels: 3,
            stage_steps: 4,
            fade_steps: 2,
        };
        let at = |step| {
            let g = s.at(step);
            (g.level, g.alpha)
        };
        assert_eq!(at(0), (0, 1.0));
        assert_eq!(at(3), (0, 1.0));
        assert_eq!(at(4), (1, 1.0 / 3.0));
        assert_eq!(at(5), (1, 2.0 / 3.0));
        assert_eq!(at(6), (1, 1.0));
        assert_eq!(at(10), (2, 1.0 / 3.0));
        assert_eq!(at(11), (2, 2.0 / 3.0));
        assert_eq!(at(12), (2, 1.0));
        assert_eq!(at(100), (2, 1.0));
        assert_eq!(s.ramp_steps(), 3 * 4 + 2 * 2);
        assert_eq!(s.phase_end(0), 4);
        assert_eq!(s.phase_end(4), 6);
        assert_eq!(s.phase_end(6), 10);
        assert_eq!(s.phase_start(5), 4);
        assert_eq!(s.phase_start(9), 6);
        assert_eq!(s.phase_start(3), 0);
        assert_eq!(Schedule::phase_name(s.at(4)), "8x8 fade-in");
        assert_eq!(Schedule::phase_name(s.at(12)), "16x16");
    }

    #[test]
    fn minibatch_stddev_adds_one_channel_of_the_groups_spread() {
        let same = Tensor::ones([8, 3, 4, 4], (Kind::Float, tch::Device::Cpu));
        let out = minibatch_stddev(&same);
        assert_eq!(out.size(), [8, 4, 4, 4]);
        let extra = out.narrow(1, 3, 1);
        assert!(extra.abs().max().double_value(&[]) < 1e-3);
        let varied = Tensor::randn([6, 3, 4, 4], (Kind::Float, tch::Device::Cpu));
        assert_eq!(minibatch_stddev(&varied).size(), [6, 4, 4, 4]);
    }
}
