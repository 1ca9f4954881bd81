//! The networks: a DCGAN generator (transposed convolutions, batch norm, ReLU, tanh) and a
//! DCGAN discriminator with spectral norm on every convolution (no batch norm, so its logit for
//! an image never depends on the rest of the batch: it doubles as the synthetic-image detector).

use std::collections::HashMap;
use std::path::Path;

use image::{DynamicImage, GrayImage, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::card::{ArchFamily, Architecture};
use super::progressive::{Growth, ProDiscriminator, ProGenerator};
use super::GanError;

/// The latent of image `index` of a request with `seed`: standard normal values from a ChaCha8
/// stream keyed by (seed, index), computed on the CPU. It does not depend on the torch RNG,
/// the device, or how images are batched.
#[must_use]
pub fn latents_for(seed: u64, index: u64, latent_dim: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    (0..latent_dim)
        .map(|_| rng.sample(StandardNormal))
        .collect()
}

fn dcgan_init() -> nn::Init {
    nn::Init::Randn {
        mean: 0.0,
        stdev: 0.02,
    }
}

/// The generator: latent `[N, latent_dim]` → images `[N, channels, size, size]` in [-1, 1].
/// A DCGAN or a progressive generator ([`super::progressive`]), as the card says.
#[derive(Debug)]
pub struct Generator {
    vs: nn::VarStore,
    arch: Architecture,
    net: GeneratorNet,
}

/// One upsampling block of a DCGAN generator.
type DcganBlock = (nn::ConvTranspose2D, nn::BatchNorm);

#[derive(Debug)]
enum GeneratorNet {
    Dcgan {
        blocks: Vec<DcganBlock>,
        out: nn::ConvTranspose2D,
    },
    Progressive(ProGenerator),
}

impl Generator {
    /// Builds a freshly initialised generator (weights from the torch RNG: call
    /// `tch::manual_seed` first for reproducibility).
    ///
    /// # Errors
    /// When the architecture is invalid.
    pub fn new(arch: &Architecture, device: Device) -> Result<Self, GanError> {
        arch.validate().map_err(GanError::Architecture)?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let net = match arch.family {
            ArchFamily::Progressive => GeneratorNet::Progressive(ProGenerator::new(&root, arch)),
            ArchFamily::Dcgan => dcgan_generator(&root, arch),
        };
        Ok(Self {
            vs,
            arch: arch.clone(),
            net,
        })
    }

    /// Builds a generator and loads its weights, checking every tensor's name and shape.
    ///
    /// # Errors
    /// When the file is missing, corrupt, or does not match the architecture.
    pub fn load(arch: &Architecture, device: Device, path: &Path) -> Result<Self, GanError> {
        let mut generator = Self::new(arch, device)?;
        load_weights(&mut generator.vs, path)?;
        generator.after_load().map_err(|e| GanError::Weights {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Ok(generator)
    }

    /// Copies another generator's weights (same architecture) into this one.
    ///
    /// # Errors
    /// When the architectures differ, or torch fails.
    pub fn copy_from(&mut self, other: &Self) -> Result<(), GanError> {
        if self.arch != other.arch {
            return Err(GanError::Architecture(
                "the generators' architectures differ".into(),
            ));
        }
        self.vs.copy(&other.vs)?;
        self.after_load()
    }

    fn after_load(&self) -> Result<(), GanError> {
        match &self.net {
            GeneratorNet::Progressive(p) => p.sync_growth(),
            GeneratorNet::Dcgan { .. } => Ok(()),
        }
    }

    /// Where a progressive generator's growth stands (`None` for a DCGAN).
    #[must_use]
    pub fn growth(&self) -> Option<Growth> {
        match &self.net {
            GeneratorNet::Progressive(p) => Some(p.growth()),
            GeneratorNet::Dcgan { .. } => None,
        }
    }

    /// Moves a progressive generator to `growth` (a DCGAN ignores it).
    ///
    /// # Errors
    /// When torch fails.
    pub fn set_growth(&self, growth: Growth) -> Result<(), GanError> {
        match &self.net {
            GeneratorNet::Progressive(p) => p.set_growth(growth),
            GeneratorNet::Dcgan { .. } => Ok(()),
        }
    }

    /// The forward pass of training: batch statistics for a DCGAN, the current level's
    /// resolution for a progressive generator.
    pub fn forward_train(&self, latents: &Tensor) -> Tensor {
        match &self.net {
            GeneratorNet::Progressive(p) => p.forward(latents, true),
            GeneratorNet::Dcgan { .. } => self.forward_t(latents, true),
        }
    }

    /// Writes the weights (and batch-norm statistics) as safetensors.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), GanError> {
        save_weights(&self.vs, path)
    }

    #[must_use]
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    #[must_use]
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    #[must_use]
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    /// The raw forward pass. `train` uses batch statistics (and updates the running ones);
    /// otherwise each image depends only on its own latent.
    /// A progressive generator's images are always of the full size (upsampled if it has not
    /// grown that far) and never depend on the batch.
    pub fn forward_t(&self, latents: &Tensor, train: bool) -> Tensor {
        match &self.net {
            GeneratorNet::Dcgan { blocks, out } => {
                let features = self.dcgan_head(blocks, latents, train);
                self.dcgan_tail(blocks, out, features, train)
            }
            GeneratorNet::Progressive(p) => p.forward(latents, false),
        }
    }

    /// A DCGAN's first block in inference mode: latents `[N, latent_dim]` → its features
    /// (`[N, width, 4, 4]`, after the ReLU, so never negative). `None` for a progressive
    /// generator. `self.tail_t(&self.head_t(z)?)` is `self.forward_t(z, false)`.
    #[must_use]
    pub fn head_t(&self, latents: &Tensor) -> Option<Tensor> {
        let (blocks, _) = self.dcgan_parts()?;
        Some(self.dcgan_head(blocks, latents, false))
    }

    /// The rest of a DCGAN after [`Self::head_t`], in inference mode: features → images.
    /// `None` for a progressive generator.
    #[must_use]
    pub fn tail_t(&self, features: &Tensor) -> Option<Tensor> {
        let (blocks, out) = self.dcgan_parts()?;
        Some(self.dcgan_tail(blocks, out, features.shallow_clone(), false))
    }

    /// A DCGAN's blocks and image layer; `None` for a progressive generator.
    fn dcgan_parts(&self) -> Option<(&[DcganBlock], &nn::ConvTranspose2D)> {
        match &self.net {
            GeneratorNet::Dcgan { blocks, out } => Some((blocks, out)),
            GeneratorNet::Progressive(_) => None,
        }
    }

    // Inference on a CPU: the two layers oneDNN handles badly (the first and the image layer)
    // take the direct kernel.
    fn dcgan_head(&self, blocks: &[DcganBlock], latents: &Tensor, train: bool) -> Tensor {
        let direct = !train && latents.device() == Device::Cpu;
        let (conv, bn) = &blocks[0];
        let x = latents.view([-1, i64::from(self.arch.latent_dim), 1, 1]);
        transpose(conv, &x, block_geometry(true), direct)
            .apply_t(bn, train)
            .relu()
    }

    fn dcgan_tail(
        &self,
        blocks: &[DcganBlock],
        out: &nn::ConvTranspose2D,
        mut x: Tensor,
        train: bool,
    ) -> Tensor {
        for (conv, bn) in &blocks[1..] {
            x = transpose(conv, &x, block_geometry(false), false)
                .apply_t(bn, train)
                .relu();
        }
        let direct = !train && x.device() == Device::Cpu;
        let image_layer = direct && self.arch.channels <= DIRECT_MAX_CHANNELS;
        transpose(out, &x, block_geometry(false), image_layer).tanh()
    }

    /// Latents (each `latent_dim` long, e.g. from [`latents_for`]) → images, in inference mode.
    ///
    /// # Errors
    /// When a latent has the wrong length, or torch fails (e.g. out of memory).
    pub fn generate(&self, latents: &[Vec<f32>]) -> Result<Vec<DynamicImage>, GanError> {
        let dim = self.arch.latent_dim as usize;
        let mut flat = Vec::with_capacity(latents.len() * dim);
        for (i, latent) in latents.iter().enumerate() {
            if latent.len() != dim {
                return Err(GanError::Shape(format!(
                    "latent {i} has {} values, the model takes {dim}",
                    latent.len()
                )));
            }
            flat.extend_from_slice(latent);
        }
        self.generate_flat(&flat)
    }

    /// Like [`Self::generate`], with the latents concatenated in one slice.
    ///
    /// # Errors
    /// When the length is not a multiple of `latent_dim`, or torch fails.
    pub fn generate_flat(&self, latents: &[f32]) -> Result<Vec<DynamicImage>, GanError> {
        let dim = self.arch.latent_dim as usize;
        if !latents.len().is_multiple_of(dim) {
            return Err(GanError::Shape(format!(
                "{} latent values are not a whole number of latents of {dim}",
                latents.len()
            )));
        }
        if latents.is_empty() {
            return Ok(Vec::new());
        }
        let n = (latents.len() / dim) as i64;
        let images = tch::no_grad(|| -> Result<Tensor, GanError> {
            let z = Tensor::f_from_slice(latents)?
                .f_view([n, dim as i64])?
                .f_to_device(self.device())?;
            Ok(self.forward_t(&z, false))
        })?;
        tensor_to_images(&images)
    }
}

/// A convolution whose weight is divided by its largest singular value, estimated by one
/// power iteration per training forward pass (Miyato et al. 2018), like
/// `torch.nn.utils.spectral_norm`. The power-iteration vectors are saved with the weights.
/// Built without the norm (`norm: None`) it is a plain convolution with the same weight names.
#[derive(Debug)]
struct SnConv2d {
    weight: Tensor,
    bias: Tensor,
    /// The power-iteration vectors `(u, v)`; `None`: no spectral norm.
    norm: Option<(Tensor, Tensor)>,
    stride: i64,
    padding: i64,
}

fn normalize(x: &Tensor) -> Tensor {
    x / x.norm().clamp_min(1e-12)
}

/// The spectral norm of `weight` (`[out, ...]`) as estimated from the power-iteration vectors
/// `u` (`[out]`) and `v` (`[rest]`): `u . (W v)`.
pub(crate) fn spectral_sigma(weight: &Tensor, u: &Tensor, v: &Tensor) -> Tensor {
    u.dot(&weight.view([weight.size()[0], -1]).mv(v))
}

impl SnConv2d {
    fn new(
        path: &nn::Path,
        in_c: i64,
        out_c: i64,
        stride: i64,
        padding: i64,
        spectral_norm: bool,
    ) -> Self {
        let weight = path.var("weight", &[out_c, in_c, 4, 4], dcgan_init());
        let bias = path.zeros("bias", &[out_c]);
        let norm = spectral_norm.then(|| {
            let mut u = path.zeros_no_train("u", &[out_c]);
            let mut v = path.zeros_no_train("v", &[in_c * 16]);
            tch::no_grad(|| {
                u.copy_(&normalize(&Tensor::randn(
                    [out_c],
                    (Kind::Float, path.device()),
                )));
                v.copy_(&normalize(&Tensor::randn(
                    [in_c * 16],
                    (Kind::Float, path.device()),
                )));
            });
            (u, v)
        });
        Self {
            weight,
            bias,
            norm,
            stride,
            padding,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let weight = match &self.norm {
            None => self.weight.shallow_clone(),
            Some((u, v)) => {
                if train {
                    tch::no_grad(|| {
                        let w_mat = self.weight.view([self.weight.size()[0], -1]);
                        let new_v = normalize(&w_mat.tr().mv(u));
                        let new_u = normalize(&w_mat.mv(&new_v));
                        v.shallow_clone().copy_(&new_v);
                        u.shallow_clone().copy_(&new_u);
                    });
                }
                &self.weight / spectral_sigma(&self.weight, u, v)
            }
        };
        x.conv2d(
            &weight,
            Some(&self.bias),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }
}

/// The discriminator: images `[N, channels, size, size]` in [-1, 1] → one logit per image
/// (high: real, low: generated).
///
/// [`Self::new`] builds the network of the card's family; [`Self::with_input_channels`]
/// always builds the DCGAN one (the detector is that network, whatever the generator).
#[derive(Debug)]
pub struct Discriminator {
    vs: nn::VarStore,
    arch: Architecture,
    net: DiscriminatorNet,
}

#[derive(Debug)]
enum DiscriminatorNet {
    Dcgan {
        convs: Vec<SnConv2d>,
        out: SnConv2d,
        slope: Tensor,
    },
    Progressive(ProDiscriminator),
}

/// Output channels up to which the DCGAN's image layer runs the direct kernel on a CPU.
const DIRECT_MAX_CHANNELS: u32 = 3;

/// Stride and padding of a DCGAN generator's transposed convolution: the first maps the 1x1
/// latent to 4x4, every other one doubles the size.
fn block_geometry(first: bool) -> (i64, i64) {
    if first {
        (1, 0)
    } else {
        (2, 1)
    }
}

/// A DCGAN generator's 4x4 transposed convolution, through libtorch's default (oneDNN on a CPU)
/// or, with `direct`, its direct kernel (`slow_conv_transpose2d`: im2col and one GEMM per image).
///
/// oneDNN is slow on two of the DCGAN's layers at every batch size: the first (a 1x1 input) and
/// the image layer (1 or 3 output channels). PyTorch 2.13 on the 2-core build machine, one
/// thread, 32x32 grey generator (`docs/benchmarks.md`, "the direct kernel"): the image layer
/// 218 against 39 µs at batch 1, 4942 against 1098 µs at batch 64; the first layer 225 against
/// 57 µs at batch 1, about even at 8, 1739 against 2262 µs at 64; the middle layers are faster
/// in oneDNN from batch 8. The choice is per layer and never per batch, so an image's pixels do
/// not depend on the batch it was computed in (the two kernels round differently).
fn transpose(conv: &nn::ConvTranspose2D, x: &Tensor, geometry: (i64, i64), direct: bool) -> Tensor {
    if !direct {
        return conv.forward(x);
    }
    let (stride, padding) = geometry;
    x.slow_conv_transpose2d(
        &conv.ws,
        [4, 4],
        conv.bs.as_ref(),
        [stride, stride],
        [padding, padding],
        [0, 0],
        [1, 1],
    )
}

/// The DCGAN generator's layers: transposed convolutions with batch norm, doubling the size
/// from 4x4 to the image's.
fn dcgan_generator(root: &nn::Path<'_>, arch: &Architecture) -> GeneratorNet {
    let stages = arch.stages();
    let mut blocks = Vec::new();
    let mut in_c = i64::from(arch.latent_dim);
    for i in 0..stages {
        let out_c = i64::from(arch.g_width) << (stages - 1 - i);
        let (stride, padding) = block_geometry(i == 0);
        let cfg = nn::ConvTransposeConfig {
            stride,
            padding,
            bias: false,
            ws_init: dcgan_init(),
            ..Default::default()
        };
        let conv = nn::conv_transpose2d(root / format!("up{i}"), in_c, out_c, 4, cfg);
        let bn = nn::batch_norm2d(root / format!("bn{i}"), out_c, Default::default());
        blocks.push((conv, bn));
        in_c = out_c;
    }
    let (stride, padding) = block_geometry(false);
    let cfg = nn::ConvTransposeConfig {
        stride,
        padding,
        ws_init: dcgan_init(),
        ..Default::default()
    };
    let out = nn::conv_transpose2d(root / "out", in_c, i64::from(arch.channels), 4, cfg);
    GeneratorNet::Dcgan { blocks, out }
}

impl Discriminator {
    /// Builds a freshly initialised discriminator.
    ///
    /// # Errors
    /// When the architecture is invalid.
    pub fn new(arch: &Architecture, device: Device) -> Result<Self, GanError> {
        match arch.family {
            ArchFamily::Progressive => {
                arch.validate().map_err(GanError::Architecture)?;
                let vs = nn::VarStore::new(device);
                let net = ProDiscriminator::new(&vs.root(), arch, arch.channels);
                Ok(Self {
                    vs,
                    arch: arch.clone(),
                    net: DiscriminatorNet::Progressive(net),
                })
            }
            ArchFamily::Dcgan => Self::with_input_channels(arch, arch.channels, true, device),
        }
    }

    /// A DCGAN discriminator of `arch` whose input has `channels` channels (the detector's
    /// input can carry more than the image's), with or without spectral norm on its
    /// convolutions (the detector may drop it; the GAN always has it).
    ///
    /// # Errors
    /// When the architecture is invalid.
    pub fn with_input_channels(
        arch: &Architecture,
        channels: u32,
        spectral_norm: bool,
        device: Device,
    ) -> Result<Self, GanError> {
        arch.validate().map_err(GanError::Architecture)?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut convs = Vec::new();
        let mut in_c = i64::from(channels);
        for i in 0..arch.stages() {
            let out_c = i64::from(arch.d_width) << i;
            convs.push(SnConv2d::new(
                &(&root / format!("conv{i}")),
                in_c,
                out_c,
                2,
                1,
                spectral_norm,
            ));
            in_c = out_c;
        }
        let out = SnConv2d::new(&(&root / "out"), in_c, 1, 1, 0, spectral_norm);
        let slope = Tensor::from_slice(&[0.2_f32]).to_device(device);
        Ok(Self {
            vs,
            arch: arch.clone(),
            net: DiscriminatorNet::Dcgan { convs, out, slope },
        })
    }

    /// Builds a discriminator and loads its weights, checking every tensor's name and shape.
    ///
    /// # Errors
    /// When the file is missing, corrupt, or does not match the architecture.
    pub fn load(arch: &Architecture, device: Device, path: &Path) -> Result<Self, GanError> {
        let mut discriminator = Self::new(arch, device)?;
        load_weights(&mut discriminator.vs, path)?;
        if let DiscriminatorNet::Progressive(p) = &discriminator.net {
            p.sync_growth().map_err(|e| GanError::Weights {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        }
        Ok(discriminator)
    }

    /// Moves a progressive discriminator to `growth` (a DCGAN one ignores it).
    ///
    /// # Errors
    /// When torch fails.
    pub fn set_growth(&self, growth: Growth) -> Result<(), GanError> {
        match &self.net {
            DiscriminatorNet::Progressive(p) => p.set_growth(growth),
            DiscriminatorNet::Dcgan { .. } => Ok(()),
        }
    }

    /// Writes the weights (and power-iteration vectors) as safetensors.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), GanError> {
        save_weights(&self.vs, path)
    }

    #[must_use]
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    #[must_use]
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    #[must_use]
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    /// Whether the convolutions are spectrally normalised (a progressive discriminator: no).
    #[must_use]
    pub fn has_spectral_norm(&self) -> bool {
        match &self.net {
            DiscriminatorNet::Dcgan { out, .. } => out.norm.is_some(),
            DiscriminatorNet::Progressive(_) => false,
        }
    }

    /// The raw forward pass: logits `[N]`. `train` runs a power iteration per layer.
    /// A progressive discriminator pools larger images down to its current resolution.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Tensor {
        let (convs, out, slope) = match &self.net {
            DiscriminatorNet::Dcgan { convs, out, slope } => (convs, out, slope),
            DiscriminatorNet::Progressive(p) => return p.forward(images),
        };
        let mut x = images.shallow_clone();
        for conv in convs {
            x = conv.forward_t(&x, train).prelu(slope);
        }
        out.forward_t(&x, train).view([-1])
    }

    /// The last hidden layer's activations averaged over positions: `[N, channels]` (what the
    /// detector's family attribution reads).
    pub fn features_t(&self, images: &Tensor, train: bool) -> Tensor {
        let (convs, slope) = match &self.net {
            DiscriminatorNet::Dcgan { convs, slope, .. } => (convs, slope),
            DiscriminatorNet::Progressive(p) => return p.features(images),
        };
        let mut x = images.shallow_clone();
        for conv in convs {
            x = conv.forward_t(&x, train).prelu(slope);
        }
        x.mean_dim([2_i64, 3].as_slice(), false, Kind::Float)
    }

    /// Channels of [`Self::features_t`].
    #[must_use]
    pub fn feature_width(&self) -> i64 {
        match &self.net {
            DiscriminatorNet::Progressive(p) => p.feature_width(),
            DiscriminatorNet::Dcgan { .. } => {
                i64::from(self.arch.d_width) << (self.arch.stages() - 1)
            }
        }
    }

    /// Logits for a batch given in the model's input layout (see [`images_to_input`]):
    /// `N * channels * size * size` values, NCHW, in [-1, 1].
    ///
    /// # Errors
    /// When the length is not a whole number of images, or torch fails.
    pub fn logits(&self, input: &[f32]) -> Result<Vec<f32>, GanError> {
        let size = i64::from(self.arch.image_size);
        let per_image = (i64::from(self.arch.channels) * size * size) as usize;
        if !input.len().is_multiple_of(per_image) {
            return Err(GanError::Shape(format!(
                "{} input values are not a whole number of {}x{}x{} images",
                input.len(),
                self.arch.channels,
                size,
                size
            )));
        }
        if input.is_empty() {
            return Ok(Vec::new());
        }
        let n = (input.len() / per_image) as i64;
        let logits = tch::no_grad(|| -> Result<Tensor, GanError> {
            let x = Tensor::f_from_slice(input)?
                .f_view([n, i64::from(self.arch.channels), size, size])?
                .f_to_device(self.device())?;
            Ok(self.forward_t(&x, false))
        })?;
        Ok(Vec::<f32>::try_from(&logits.f_to_device(Device::Cpu)?)?)
    }

    /// Logits for decoded images of any size: they are resized and centre-cropped first.
    ///
    /// # Errors
    /// When torch fails.
    pub fn logits_for_images(&self, images: &[DynamicImage]) -> Result<Vec<f32>, GanError> {
        self.logits(&images_to_input(images, &self.arch))
    }
}

/// Both networks, freshly built, for training.
#[derive(Debug)]
pub struct GanNets {
    pub generator: Generator,
    pub discriminator: Discriminator,
}

impl GanNets {
    /// # Errors
    /// When the architecture is invalid.
    pub fn new(arch: &Architecture, device: Device) -> Result<Self, GanError> {
        Ok(Self {
            generator: Generator::new(arch, device)?,
            discriminator: Discriminator::new(arch, device)?,
        })
    }
}

/// Resizes so the shorter side is `size`, then crops the centre square.
#[must_use]
pub fn fit_square(image: &DynamicImage, size: u32) -> DynamicImage {
    let (w, h) = (image.width().max(1), image.height().max(1));
    if w == size && h == size {
        return image.clone();
    }
    let scale = f64::from(size) / f64::from(w.min(h));
    let nw = ((f64::from(w) * scale).round() as u32).max(size);
    let nh = ((f64::from(h) * scale).round() as u32).max(size);
    let resized = image.resize_exact(nw, nh, image::imageops::FilterType::Triangle);
    resized.crop_imm((nw - size) / 2, (nh - size) / 2, size, size)
}

/// An image as CHW bytes of the given channel count (1: luma, 3: RGB), already `size` square.
#[must_use]
pub fn to_chw_u8(image: &DynamicImage, channels: u32) -> Vec<u8> {
    if channels == 1 {
        image.to_luma8().into_raw()
    } else {
        let rgb = image.to_rgb8();
        let plane = (rgb.width() * rgb.height()) as usize;
        let raw = rgb.as_raw();
        let mut out = vec![0u8; plane * 3];
        for (i, px) in raw.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = px[c];
            }
        }
        out
    }
}

/// Images → the model's input layout: each resized and centre-cropped to the model size,
/// converted to its channel count, NCHW, scaled to [-1, 1] (`byte / 127.5 - 1`).
#[must_use]
pub fn images_to_input(images: &[DynamicImage], arch: &Architecture) -> Vec<f32> {
    let mut out = Vec::new();
    for image in images {
        let square = fit_square(image, arch.image_size);
        out.extend(
            to_chw_u8(&square, arch.channels)
                .into_iter()
                .map(|b| f32::from(b) / 127.5 - 1.0),
        );
    }
    out
}

/// A batch `[N, C, S, S]` in [-1, 1] (any device) → 8-bit images (C = 1: grey, 3: RGB).
///
/// # Errors
/// When the tensor is not 4-D with 1 or 3 channels, or torch fails.
pub fn tensor_to_images(images: &Tensor) -> Result<Vec<DynamicImage>, GanError> {
    let size = images.size();
    let [n, c, h, w] = size[..] else {
        return Err(GanError::Shape(format!(
            "expected NCHW images, got shape {size:?}"
        )));
    };
    if c != 1 && c != 3 {
        return Err(GanError::Shape(format!(
            "expected 1 or 3 channels, got {c}"
        )));
    }
    let bytes = images
        .f_add_scalar(1.0)?
        .f_mul_scalar(127.5)?
        .f_round()?
        .f_clamp(0.0, 255.0)?
        .f_to_kind(Kind::Uint8)?
        .f_permute([0, 2, 3, 1])?
        .f_contiguous()?
        .f_to_device(Device::Cpu)?;
    let numel = (n * c * h * w) as usize;
    let mut buf = vec![0u8; numel];
    bytes.f_copy_data_u8(&mut buf, numel)?;
    let per = (c * h * w) as usize;
    let (w, h) = (w as u32, h as u32);
    let mut out = Vec::with_capacity(n as usize);
    for chunk in buf.chunks_exact(per.max(1)) {
        let image = if c == 1 {
            GrayImage::from_raw(w, h, chunk.to_vec()).map(DynamicImage::ImageLuma8)
        } else {
            RgbImage::from_raw(w, h, chunk.to_vec()).map(DynamicImage::ImageRgb8)
        };
        out.push(image.ok_or_else(|| GanError::Shape("image buffer size mismatch".into()))?);
    }
    Ok(out)
}

pub(crate) fn save_weights(vs: &nn::VarStore, path: &Path) -> Result<(), GanError> {
    save_weights_prefixed(vs, path, "")
}

/// Like [`save_weights`], for the variables whose names start with `prefix` only (a zoo
/// member's generator without the VAE's encoder).
pub(crate) fn save_weights_prefixed(
    vs: &nn::VarStore,
    path: &Path,
    prefix: &str,
) -> Result<(), GanError> {
    let tmp = path.with_extension("tmp.safetensors");
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, t)| (name, t.to_device(Device::Cpu)))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Tensor::write_safetensors(&named, &tmp).map_err(|e| GanError::Weights {
        path: tmp.clone(),
        message: e.to_string(),
    })?;
    std::fs::rename(&tmp, path).map_err(|e| GanError::io(path, e))
}

/// Every tensor of a safetensors file, by name.
pub(crate) fn load_named(path: &Path) -> Result<HashMap<String, Tensor>, GanError> {
    if !path.is_file() {
        return Err(GanError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        ));
    }
    Ok(Tensor::read_safetensors(path)
        .map_err(|e| GanError::Weights {
            path: path.to_owned(),
            message: format!("not a readable safetensors file ({e})"),
        })?
        .into_iter()
        .collect())
}

/// Loads safetensors into a var store after checking that the file holds exactly the store's
/// tensors, with the same shapes, as 32-bit floats: `VarStore::load` would broadcast a
/// mismatched tensor silently.
pub(crate) fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<(), GanError> {
    let bad = |message: String| GanError::Weights {
        path: path.to_owned(),
        message,
    };
    let named = load_named(path)?;
    let vars = vs.variables();
    for name in named.keys() {
        if !vars.contains_key(name) {
            return Err(bad(format!(
                "holds tensor {name:?} that the card's architecture does not have"
            )));
        }
    }
    for (name, var) in &vars {
        let src = named.get(name).ok_or_else(|| {
            bad(format!(
                "lacks tensor {name:?}: the card does not match these weights"
            ))
        })?;
        if src.size() != var.size() {
            return Err(bad(format!(
                "tensor {name:?} has shape {:?}, the card's architecture needs {:?}",
                src.size(),
                var.size()
            )));
        }
        if src.kind() != Kind::Float {
            return Err(bad(format!(
                "tensor {name:?} is {:?}, expected f32",
                src.kind()
            )));
        }
    }
    tch::no_grad(|| -> Result<(), GanError> {
        for (name, var) in &vars {
            let mut var = var.shallow_clone();
            var.f_copy_(&named[name])?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(size: u32, channels: u32) -> Architecture {
        Architecture {
            family: ArchFamily::Dcgan,
            image_size: size,
            channels,
            latent_dim: 8,
            g_width: 4,
            d_width: 4,
            loss: crate::gan::card::Loss::NonSaturating,
        }
    }

    /// The direct kernel computes what oneDNN computes (to rounding), and an image comes out
    /// bit for bit the same whatever the batch it is computed in.
    #[test]
    fn inference_layers_agree_with_the_default_and_do_not_depend_on_the_batch() {
        for (size, channels) in [(32, 1), (64, 3)] {
            let a = Architecture {
                g_width: 16,
                ..arch(size, channels)
            };
            let generator = Generator::new(&a, Device::Cpu).unwrap();
            let GeneratorNet::Dcgan { blocks, out } = &generator.net else {
                unreachable!("a DCGAN")
            };
            // The default path, layer by layer, against the forward pass.
            let z = Tensor::randn([5, 8], (Kind::Float, Device::Cpu));
            let reference = tch::no_grad(|| {
                let mut x = z.view([-1, 8, 1, 1]);
                for (conv, bn) in blocks {
                    x = conv.forward(&x).apply_t(bn, false).relu();
                }
                out.forward(&x).tanh()
            });
            let served = tch::no_grad(|| generator.forward_t(&z, false));
            let gap = (&served - &reference).abs().max().double_value(&[]);
            assert!(gap < 1e-5, "{size}x{size}x{channels}: {gap}");

            let latents: Vec<Vec<f32>> = (0..5).map(|i| latents_for(9, i, 8)).collect();
            let together = generator.generate(&latents).unwrap();
            for (i, latent) in latents.iter().enumerate() {
                let alone = generator.generate(std::slice::from_ref(latent)).unwrap();
                assert_eq!(alone[0].as_bytes(), together[i].as_bytes(), "image {i}");
            }
        }
    }

    #[test]
    fn shapes_and_ranges() {
        for (size, channels) in [(32, 1), (64, 3), (128, 3)] {
            let a = arch(size, channels);
            let nets = GanNets::new(&a, Device::Cpu).unwrap();
            let z = Tensor::randn([3, 8], (Kind::Float, Device::Cpu));
            let x = nets.generator.forward_t(&z, true);
            assert_eq!(
                x.size(),
                [3, i64::from(channels), i64::from(size), i64::from(size)]
            );
            assert!(x.max().double_value(&[]) <= 1.0);
            assert!(x.min().double_value(&[]) >= -1.0);
            let logits = nets.discriminator.forward_t(&x, true);
            assert_eq!(logits.size(), [3]);
            let images = nets.generator.generate(&[latents_for(1, 0, 8)]).unwrap();
            assert_eq!((images[0].width(), images[0].height()), (size, size));
        }
    }

    #[test]
    fn a_progressive_model_grows_and_keeps_its_growth_in_the_weights() {
        use crate::gan::progressive::Growth;
        for (size, channels) in [(32, 1), (64, 3)] {
            let a = Architecture {
                family: ArchFamily::Progressive,
                ..arch(size, channels)
            };
            let nets = GanNets::new(&a, Device::Cpu).unwrap();
            let z = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
            let full = [4, i64::from(channels), i64::from(size), i64::from(size)];
            assert_eq!(nets.generator.forward_train(&z).size(), full);
            let small = Growth {
                level: 1,
                alpha: 0.25,
            };
            nets.generator.set_growth(small).unwrap();
            nets.discriminator.set_growth(small).unwrap();
            let native = nets.generator.forward_train(&z);
            assert_eq!(native.size(), [4, i64::from(channels), 8, 8]);
            assert_eq!(nets.discriminator.forward_t(&native, true).size(), [4]);
            // Served images are always of the card's size, in range.
            let served = nets.generator.forward_t(&z, false);
            assert_eq!(served.size(), full);
            assert!(served.abs().max().double_value(&[]) <= 1.0);
            // A full-size image is pooled down to the discriminator's resolution.
            assert_eq!(nets.discriminator.forward_t(&served, true).size(), [4]);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("g.safetensors");
            nets.generator.save(&path).unwrap();
            let loaded = Generator::load(&a, Device::Cpu, &path).unwrap();
            assert_eq!(loaded.growth(), Some(small));
            assert!(loaded.forward_t(&z, false).equal(&served));
        }
    }

    #[test]
    fn latents_depend_only_on_seed_and_index() {
        assert_eq!(latents_for(7, 3, 16), latents_for(7, 3, 16));
        assert_ne!(latents_for(7, 3, 16), latents_for(7, 4, 16));
        assert_ne!(latents_for(7, 3, 16), latents_for(8, 3, 16));
        assert_eq!(latents_for(7, 3, 16)[..8], latents_for(7, 3, 8)[..]);
    }

    #[test]
    fn wrong_latent_length_is_an_error() {
        let nets = GanNets::new(&arch(32, 1), Device::Cpu).unwrap();
        assert!(nets.generator.generate(&[vec![0.0; 7]]).is_err());
        assert!(nets.discriminator.logits(&[0.0; 5]).is_err());
    }
}
