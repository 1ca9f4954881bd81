//! The generator zoo (`hallmark zoo train`): small generators of *other families* than the
//! served DCGAN, trained by Hallmark itself on the real training split, so that the detector
//! can be trained against many kinds of generator and evaluated on families it never saw
//! (leave one family out, `hallmark evaluate --detector --leave-one-out`).
//!
//! A detector trained against one generator learns that generator's fingerprint (Wang et al.
//! 2020); what generalises is seeing many generators, and above all many ways of *making
//! pixels*, because the traces an upsampling layer leaves between neighbouring pixels are
//! shared by whole families (NPR, Tan et al. 2024). The families here differ exactly there:
//!
//! | family | how the last layers make pixels | loss |
//! |---|---|---|
//! | `tconv` | 4x4 transposed convolutions, stride 2, batch norm (the served model's family) | hinge GAN |
//! | `nearest` | nearest-neighbour upsampling, then a 3x3 convolution | non-saturating GAN |
//! | `pixelshuffle` | a 3x3 convolution to 4x channels, then sub-pixel shuffle (ESPCN) | hinge GAN |
//! | `vae` | a VAE decoder: bilinear upsampling, then a 3x3 convolution; trained by reconstruction + KL, no discriminator | ELBO |
//! | `mlp` | fully connected layers straight to every pixel, no convolution | non-saturating GAN |
//!
//! Each family is trained once per run and saved twice, an *early* checkpoint (a quarter of
//! the steps: coarser images, like an older checkpoint of someone's model) and a *late* one.
//! Each member is a directory with `generator.safetensors`, `member.toml` (its card) and
//! `samples.png`; `zoo.png` beside them shows every member's first images, one row each.
//! The GAN families are judged by the same spectrally normalised discriminator as the served
//! model, at a smaller width.

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::DynamicImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Reduction, Tensor};

use super::card::{write_atomic, ArchFamily, Architecture, Loss};
use super::data::Dataset;
use super::model::{latents_for, tensor_to_images, Discriminator};
use super::train::{discriminator_loss, generator_loss};
use super::{plot, GanError, GENERATOR_FILE, SAMPLES_FILE};

/// A member's card file.
pub const MEMBER_CARD: &str = "member.toml";
/// The overview grid: one row of images per member.
pub const ZOO_GRID: &str = "zoo.png";

/// How a generator makes its pixels; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Tconv,
    Nearest,
    Pixelshuffle,
    Vae,
    Mlp,
}

impl Family {
    pub const ALL: [Self; 5] = [
        Self::Tconv,
        Self::Nearest,
        Self::Pixelshuffle,
        Self::Vae,
        Self::Mlp,
    ];
    /// The family of the served DCGAN (`gan::model::Generator`): holding this family out of a
    /// detector's training holds out our own generator too.
    pub const OWN: Self = Self::Tconv;

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Tconv => "tconv",
            Self::Nearest => "nearest",
            Self::Pixelshuffle => "pixelshuffle",
            Self::Vae => "vae",
            Self::Mlp => "mlp",
        }
    }

    /// # Errors
    /// When `name` is not a family.
    pub fn parse(name: &str) -> Result<Self, GanError> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                GanError::Setting(format!(
                    "unknown generator family {name:?} (known: {})",
                    Self::ALL.map(Self::name).join(", ")
                ))
            })
    }

    /// Families named on a command line (`--hold-out a,b`); blank entries are skipped.
    ///
    /// # Errors
    /// When a name is not a family.
    pub fn parse_list(names: &[String]) -> Result<Vec<Self>, GanError> {
        names
            .iter()
            .filter(|f| !f.trim().is_empty())
            .map(|f| Self::parse(f.trim()))
            .collect()
    }

    /// How the family makes pixels, for cards and reports.
    #[must_use]
    pub fn how(self) -> &'static str {
        match self {
            Self::Tconv => "4x4 transposed convolutions, stride 2, with batch norm and ReLU",
            Self::Nearest => {
                "nearest-neighbour upsampling then 3x3 convolutions, with batch norm and ReLU"
            }
            Self::Pixelshuffle => {
                "3x3 convolutions to 4x the channels then sub-pixel shuffle, with batch norm"
            }
            Self::Vae => {
                "a VAE decoder: bilinear upsampling then 3x3 convolutions, trained by \
                 reconstruction and KL (no discriminator)"
            }
            Self::Mlp => "fully connected layers to every pixel, no convolution",
        }
    }

    /// The adversarial loss it is trained with; none for the VAE (trained by its ELBO).
    fn gan_loss(self) -> Option<Loss> {
        match self {
            Self::Tconv | Self::Pixelshuffle => Some(Loss::Hinge),
            Self::Nearest | Self::Mlp => Some(Loss::NonSaturating),
            Self::Vae => None,
        }
    }

    /// The loss as the member card names it.
    fn loss_name(self) -> &'static str {
        self.gan_loss().map_or("elbo", Loss::name)
    }

    fn learning_rate(self) -> f64 {
        match self {
            Self::Vae => 1e-3,
            _ => 2e-4,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `member.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberCard {
    /// Directory name, e.g. `nearest-late`.
    pub name: String,
    pub family: Family,
    /// How it makes pixels (from [`Family::how`]).
    pub how: String,
    pub image_size: u32,
    pub channels: u32,
    pub latent_dim: u32,
    /// Channels of the generator's narrowest convolution (hidden units / 16 for `mlp`).
    pub width: u32,
    pub loss: String,
    /// Steps this checkpoint was trained for.
    pub steps: u64,
    pub batch_size: u32,
    pub learning_rate: f64,
    pub seed: u64,
    pub dataset: String,
    pub training_time_s: f64,
    /// SHA-256 (hex) of `generator.safetensors`.
    pub weights_sha256: String,
    /// For an `-ema` member: the decay of the exponential moving average of the generator's
    /// weights it is (as the served model's generator); none for the raw checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
}

impl MemberCard {
    /// # Errors
    /// When the file is missing or not a member card.
    pub fn load(path: &Path) -> Result<Self, GanError> {
        let text = std::fs::read_to_string(path).map_err(|e| GanError::io(path, e))?;
        toml::from_str(&text).map_err(|e| GanError::Card {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    fn save(&self, path: &Path) -> Result<(), GanError> {
        let text = toml::to_string_pretty(self).map_err(|e| GanError::Card {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        write_atomic(path, text.as_bytes())
    }
}

/// The generator network of a family (and, for the VAE, its encoder).
struct Nets {
    generator: nn::SequentialT,
    encoder: Option<nn::SequentialT>,
}

fn up_channels(width: i64, step: u32) -> i64 {
    ((width * 4) >> step).max(width)
}

fn conv3(p: nn::Path, c_in: i64, c_out: i64) -> nn::Conv2D {
    nn::conv2d(
        p,
        c_in,
        c_out,
        3,
        nn::ConvConfig {
            padding: 1,
            ..Default::default()
        },
    )
}

fn build(card: &MemberCard, root: &nn::Path, with_encoder: bool) -> Result<Nets, GanError> {
    if card.image_size < 8 || !card.image_size.is_power_of_two() {
        return Err(GanError::Setting(format!(
            "zoo images are a power of two of at least 8 pixels, not {}",
            card.image_size
        )));
    }
    let dims = Dims::of(card);
    let g = root / "g";
    let generator = match card.family {
        Family::Tconv => tconv_generator(&g, &dims),
        Family::Nearest | Family::Pixelshuffle | Family::Vae => {
            upsampling_generator(&g, &dims, card.family)
        }
        Family::Mlp => mlp_generator(&g, &dims),
    };
    let encoder = (with_encoder && card.family == Family::Vae).then(|| vae_encoder(root, &dims));
    Ok(Nets { generator, encoder })
}

/// A member's sizes, as torch takes them.
struct Dims {
    /// Image side.
    size: i64,
    /// Image channels.
    ch: i64,
    latent: i64,
    /// Base width.
    w: i64,
    /// Upsamplings from 4x4 to the image size.
    ups: u32,
}

impl Dims {
    fn of(card: &MemberCard) -> Self {
        Self {
            size: i64::from(card.image_size),
            ch: i64::from(card.channels),
            latent: i64::from(card.latent_dim),
            w: i64::from(card.width.max(1)),
            ups: card.image_size.trailing_zeros() - 2,
        }
    }
}

/// Transposed convolutions with batch norm, as the DCGAN.
fn tconv_generator(g: &nn::Path, dims: &Dims) -> nn::SequentialT {
    let &Dims {
        ch, latent, w, ups, ..
    } = dims;
    let c0 = up_channels(w, 0);
    let mut seq = nn::seq_t()
        .add_fn(move |z| z.view([-1, latent, 1, 1]))
        .add(nn::conv_transpose2d(
            g / "up0",
            latent,
            c0,
            4,
            nn::ConvTransposeConfig {
                bias: false,
                ..Default::default()
            },
        ))
        .add(nn::batch_norm2d(g / "bn0", c0, Default::default()))
        .add_fn(Tensor::relu);
    let mut c = c0;
    for i in 1..ups {
        let out = up_channels(w, i);
        seq = seq.add(nn::conv_transpose2d(
            g / format!("up{i}"),
            c,
            out,
            4,
            nn::ConvTransposeConfig {
                stride: 2,
                padding: 1,
                bias: false,
                ..Default::default()
            },
        ));
        seq = bn_relu(seq, g, i, out);
        c = out;
    }
    seq.add(nn::conv_transpose2d(
        g / "out",
        c,
        ch,
        4,
        nn::ConvTransposeConfig {
            stride: 2,
            padding: 1,
            ..Default::default()
        },
    ))
    .add_fn(Tensor::tanh)
}

/// A linear layer to 4x4, then per doubling: nearest (`Nearest`) or bilinear (`Vae`) upsampling
/// and a 3x3 convolution, or a convolution and a pixel shuffle (`Pixelshuffle`).
fn upsampling_generator(g: &nn::Path, dims: &Dims, family: Family) -> nn::SequentialT {
    let &Dims {
        ch, latent, w, ups, ..
    } = dims;
    let c0 = up_channels(w, 0);
    let mut seq = nn::seq_t()
        .add(nn::linear(g / "fc", latent, c0 * 16, Default::default()))
        .add_fn(move |x| x.view([-1, c0, 4, 4]))
        .add(nn::batch_norm2d(g / "bn0", c0, Default::default()))
        .add_fn(Tensor::relu);
    let mut c = c0;
    let mut side = 4;
    for i in 1..=ups {
        let out = up_channels(w, i);
        side *= 2;
        let s = side;
        let name = format!("conv{i}");
        seq = match family {
            Family::Nearest => seq
                .add_fn(move |x| x.upsample_nearest2d([s, s], None::<f64>, None::<f64>))
                .add(conv3(g / name, c, out)),
            Family::Vae => seq
                .add_fn(move |x| x.upsample_bilinear2d([s, s], false, None::<f64>, None::<f64>))
                .add(conv3(g / name, c, out)),
            _ => seq
                .add(conv3(g / name, c, out * 4))
                .add_fn(|x| x.pixel_shuffle(2)),
        };
        seq = bn_relu(seq, g, i, out);
        c = out;
    }
    seq.add(conv3(g / "out", c, ch)).add_fn(Tensor::tanh)
}

/// Batch norm `bn{i}` over `channels`, then ReLU.
fn bn_relu(seq: nn::SequentialT, g: &nn::Path, i: u32, channels: i64) -> nn::SequentialT {
    seq.add(nn::batch_norm2d(
        g / format!("bn{i}"),
        channels,
        Default::default(),
    ))
    .add_fn(Tensor::relu)
}

/// Two hidden linear layers with batch norm.
fn mlp_generator(g: &nn::Path, dims: &Dims) -> nn::SequentialT {
    let &Dims {
        size,
        ch,
        latent,
        w,
        ..
    } = dims;
    let hidden = w * 16;
    nn::seq_t()
        .add(nn::linear(g / "fc0", latent, hidden, Default::default()))
        .add(nn::batch_norm1d(g / "bn0", hidden, Default::default()))
        .add_fn(Tensor::relu)
        .add(nn::linear(
            g / "fc1",
            hidden,
            hidden * 2,
            Default::default(),
        ))
        .add(nn::batch_norm1d(g / "bn1", hidden * 2, Default::default()))
        .add_fn(Tensor::relu)
        .add(nn::linear(
            g / "out",
            hidden * 2,
            ch * size * size,
            Default::default(),
        ))
        .add_fn(move |x| x.tanh().view([-1, ch, size, size]))
}

/// The VAE member's encoder: strided convolutions, then a linear layer to the latent's mean and
/// log-variance.
fn vae_encoder(root: &nn::Path, dims: &Dims) -> nn::SequentialT {
    let &Dims {
        size,
        ch,
        latent,
        w,
        ups,
    } = dims;
    let e = root / "e";
    let mut enc = nn::seq_t();
    let mut c = ch;
    let mut side = size;
    for i in 0..ups {
        let out = w << i;
        enc = enc
            .add(nn::conv2d(
                &e / format!("conv{i}"),
                c,
                out,
                4,
                nn::ConvConfig {
                    stride: 2,
                    padding: 1,
                    ..Default::default()
                },
            ))
            .add_fn(|x| x.leaky_relu());
        c = out;
        side /= 2;
    }
    let flat = c * side * side;
    enc.add_fn(move |x| x.view([-1, flat])).add(nn::linear(
        &e / "fc",
        flat,
        2 * latent,
        Default::default(),
    ))
}

/// A trained zoo member, ready to generate.
pub struct ZooGenerator {
    card: MemberCard,
    generator: nn::SequentialT,
    device: Device,
    _vs: nn::VarStore,
}

impl std::fmt::Debug for ZooGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZooGenerator")
            .field("card", &self.card)
            .finish_non_exhaustive()
    }
}

impl ZooGenerator {
    /// Loads the member in `dir` (its card and weights, checked against each other).
    ///
    /// # Errors
    /// When the card or weights are missing, or do not match.
    pub fn load(dir: &Path, device: Device) -> Result<Self, GanError> {
        let card = MemberCard::load(&dir.join(MEMBER_CARD))?;
        let mut vs = nn::VarStore::new(device);
        let nets = build(&card, &vs.root(), false)?;
        super::model::load_weights(&mut vs, &dir.join(GENERATOR_FILE))?;
        Ok(Self {
            card,
            generator: nets.generator,
            device,
            _vs: vs,
        })
    }

    #[must_use]
    pub fn card(&self) -> &MemberCard {
        &self.card
    }

    /// Images of latents (`seed`, index) for each index, like the served model's.
    ///
    /// # Errors
    /// When torch fails.
    pub fn generate(&self, seed: u64, indices: &[u64]) -> Result<Vec<DynamicImage>, GanError> {
        let dim = self.card.latent_dim as usize;
        let flat: Vec<f32> = indices
            .iter()
            .flat_map(|&i| latents_for(seed, i, dim))
            .collect();
        generate_flat(&self.generator, &flat, dim, self.device)
    }
}

fn generate_flat(
    generator: &nn::SequentialT,
    latents: &[f32],
    dim: usize,
    device: Device,
) -> Result<Vec<DynamicImage>, GanError> {
    if latents.is_empty() {
        return Ok(Vec::new());
    }
    let n = (latents.len() / dim) as i64;
    let images = tch::no_grad(|| -> Result<Tensor, GanError> {
        let z = Tensor::f_from_slice(latents)?
            .f_view([n, dim as i64])?
            .f_to_device(device)?;
        Ok(generator.forward_t(&z, false))
    })?;
    tensor_to_images(&images)
}

/// The member directories under `zoo_dir` (those with a card), sorted by name.
///
/// # Errors
/// When the directory cannot be read.
pub fn member_dirs(zoo_dir: &Path) -> Result<Vec<PathBuf>, GanError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(zoo_dir)
        .map_err(|e| GanError::io(zoo_dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join(MEMBER_CARD).is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Loads every member of the zoo.
///
/// # Errors
/// When the directory cannot be read or a member does not load.
pub fn load_zoo(zoo_dir: &Path, device: Device) -> Result<Vec<ZooGenerator>, GanError> {
    member_dirs(zoo_dir)?
        .iter()
        .map(|d| ZooGenerator::load(d, device))
        .collect()
}

/// How to train the zoo.
#[derive(Debug, Clone)]
pub struct ZooTrainConfig {
    pub families: Vec<Family>,
    pub steps: u64,
    pub batch_size: usize,
    pub width: u32,
    pub latent_dim: u32,
    pub seed: u64,
    /// Goes into the members' names (`nearest-<tag>-late`), so that runs with other settings
    /// (a wider, longer-trained tier) sit beside the default members instead of replacing them.
    pub tag: Option<String>,
    /// Also save the exponential moving average of the generator's weights at the end, as
    /// member `<family>[-<tag>]-ema` (GAN families; the served model is such an average).
    pub ema_decay: Option<f64>,
    pub progress: bool,
}

impl ZooTrainConfig {
    fn member_name(&self, family: Family, stage: &str) -> String {
        match &self.tag {
            Some(tag) => format!("{}-{tag}-{stage}", family.name()),
            None => format!("{}-{stage}", family.name()),
        }
    }
}

/// Trains every family of `config` on `dataset` and writes two members per family (early and
/// late) into `zoo_dir`, replacing members of the same name; then the overview grid.
///
/// # Errors
/// Bad settings, file errors, torch failures.
pub fn train_zoo(
    dataset: &Dataset,
    zoo_dir: &Path,
    config: &ZooTrainConfig,
    device: Device,
) -> Result<Vec<MemberCard>, GanError> {
    if config.steps < 4 || config.batch_size == 0 {
        return Err(GanError::Setting(
            "the zoo needs at least 4 steps and a positive batch size".into(),
        ));
    }
    if config.ema_decay.is_some_and(|d| !(0.0..1.0).contains(&d)) {
        return Err(GanError::Setting("the EMA decay is in [0, 1)".into()));
    }
    if let Some(tag) = &config.tag {
        let ok = !tag.is_empty()
            && tag.len() <= 32
            && tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        // Not "early", "late" or "ema": a tag must not make one member's name another's.
        if !ok || ["early", "late", "ema"].contains(&tag.as_str()) {
            return Err(GanError::Setting(format!(
                "a zoo tag is 1-32 lowercase letters or digits, and not early, late or ema: {tag:?}"
            )));
        }
    }
    std::fs::create_dir_all(zoo_dir).map_err(|e| GanError::io(zoo_dir, e))?;
    let mut cards = Vec::new();
    for (i, &family) in config.families.iter().enumerate() {
        cards.extend(train_family(
            dataset,
            zoo_dir,
            config,
            family,
            config.seed + i as u64,
            device,
        )?);
    }
    write_overview(zoo_dir, device)?;
    Ok(cards)
}

/// One row of 8 images per member (latent seed 0), members in name order.
///
/// # Errors
/// When a member does not load or the file cannot be written.
pub fn write_overview(zoo_dir: &Path, device: Device) -> Result<(), GanError> {
    let mut images = Vec::new();
    for member in load_zoo(zoo_dir, device)? {
        images.extend(member.generate(0, &(0..8).collect::<Vec<_>>())?);
    }
    if images.is_empty() {
        return Ok(());
    }
    plot::save_png(&plot::grid(&images, 8, 2), &zoo_dir.join(ZOO_GRID))
}

/// Trains one family and saves its early (a quarter of the steps), late and (for GANs with a
/// decay) averaged members. The order of random draws — weights, then per step the batch and
/// the latents — is part of what makes a member reproducible from its seed.
fn train_family(
    dataset: &Dataset,
    zoo_dir: &Path,
    config: &ZooTrainConfig,
    family: Family,
    seed: u64,
    device: Device,
) -> Result<Vec<MemberCard>, GanError> {
    let started = Instant::now();
    tch::manual_seed(seed as i64);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut card = MemberCard::untrained(dataset, config, family, seed);
    let vs = nn::VarStore::new(device);
    let nets = build(&card, &vs.root(), true)?;
    // The average of a GAN generator's weights (the VAE is not adversarial: no average).
    let mut ema = match config.ema_decay {
        Some(decay) if family != Family::Vae => {
            let target = nn::VarStore::new(device);
            let averaged = build(&card, &target.root(), true)?;
            let mut ema = super::adam::Ema::new(&vs, &target, decay)?;
            ema.copy()?;
            Some((target, averaged.generator, ema))
        }
        _ => None,
    };
    let mut opt = nn::Adam {
        beta1: if family == Family::Vae { 0.9 } else { 0.5 },
        ..Default::default()
    }
    .build(&vs, card.learning_rate)?;
    let mut adversary = Adversary::for_family(&card, config, family, device)?;
    let early = (config.steps / 4).max(1);
    let b = config.batch_size;
    let dim = config.latent_dim as usize;
    let bar = crate::progress::bar(config.steps, family.name(), config.progress);
    let mut saved = Vec::new();
    for step in 1..=config.steps {
        let indices: Vec<usize> = (0..b).map(|_| rng.gen_range(0..dataset.len())).collect();
        let real = dataset.batch(&indices, device)?;
        let z: Vec<f32> = (0..b * dim).map(|_| rng.sample(StandardNormal)).collect();
        let z = Tensor::f_from_slice(&z)?
            .f_view([b as i64, dim as i64])?
            .f_to_device(device)?;
        let message = match adversary.as_mut() {
            Some(adversary) => adversary.step(&nets, &mut opt, &real, &z)?,
            None => vae_step(&nets, &mut opt, &real, dim)?,
        };
        if let Some((_, _, ema)) = ema.as_mut() {
            ema.update(step - 1)?;
        }
        bar.inc(1);
        if step % 20 == 0 {
            bar.set_message(message);
        }
        if step == early || step == config.steps {
            let stage = if step == config.steps {
                "late"
            } else {
                "early"
            };
            card.steps = step;
            card.training_time_s = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
            let member = Member {
                zoo_dir,
                name: config.member_name(family, stage),
                store: &vs,
                generator: &nets.generator,
                seed,
                device,
            };
            saved.push(member.save(&mut card, None)?);
            if let (true, Some((store, generator, average))) = (step == config.steps, &ema) {
                let member = Member {
                    zoo_dir,
                    name: config.member_name(family, "ema"),
                    store,
                    generator,
                    seed,
                    device,
                };
                saved.push(member.save(&mut card, Some(average.decay))?);
            }
        }
    }
    bar.finish_and_clear();
    Ok(saved)
}

impl MemberCard {
    /// The card of a `family` member before training: its settings, no steps, no weights.
    fn untrained(dataset: &Dataset, config: &ZooTrainConfig, family: Family, seed: u64) -> Self {
        Self {
            name: String::new(),
            family,
            how: family.how().to_owned(),
            image_size: dataset.image_size(),
            channels: dataset.channels(),
            latent_dim: config.latent_dim,
            width: config.width,
            loss: family.loss_name().to_owned(),
            steps: 0,
            batch_size: config.batch_size as u32,
            learning_rate: family.learning_rate(),
            seed,
            dataset: dataset.description.clone(),
            training_time_s: 0.0,
            weights_sha256: String::new(),
            ema_decay: None,
        }
    }
}

/// The discriminator of an adversarial family, its optimiser and its loss.
struct Adversary {
    discriminator: Discriminator,
    opt: nn::Optimizer,
    loss: Loss,
}

impl Adversary {
    /// None for a family that is not adversarial (the VAE).
    fn for_family(
        card: &MemberCard,
        config: &ZooTrainConfig,
        family: Family,
        device: Device,
    ) -> Result<Option<Self>, GanError> {
        let Some(loss) = family.gan_loss() else {
            return Ok(None);
        };
        let arch = Architecture {
            family: ArchFamily::Dcgan,
            image_size: card.image_size,
            channels: card.channels,
            latent_dim: card.latent_dim,
            g_width: config.width,
            d_width: config.width * 2,
            loss,
        };
        let discriminator = Discriminator::new(&arch, device)?;
        let opt = nn::Adam {
            beta1: 0.5,
            ..Default::default()
        }
        .build(discriminator.var_store(), card.learning_rate)?;
        Ok(Some(Self {
            discriminator,
            opt,
            loss,
        }))
    }

    /// One discriminator step and one generator step on `real` and latents `z`; the losses as
    /// the progress bar's message.
    fn step(
        &mut self,
        nets: &Nets,
        opt_g: &mut nn::Optimizer,
        real: &Tensor,
        z: &Tensor,
    ) -> Result<String, GanError> {
        let n = real.size()[0];
        let fake = nets.generator.forward_t(z, true);
        let both = Tensor::f_cat(&[real, &fake.detach()], 0)?;
        let logits = self.discriminator.forward_t(&both, true);
        let d_loss =
            discriminator_loss(self.loss, &logits.narrow(0, 0, n), &logits.narrow(0, n, n));
        self.opt.backward_step(&d_loss);
        let g_loss = generator_loss(self.loss, &self.discriminator.forward_t(&fake, true));
        opt_g.backward_step(&g_loss);
        Ok(format!(
            "D {:.3} G {:.3}",
            d_loss.f_double_value(&[])?,
            g_loss.f_double_value(&[])?
        ))
    }
}

/// One step of the VAE on `real`: reparameterised sample, Bernoulli reconstruction plus KL;
/// the two terms as the progress bar's message.
fn vae_step(
    nets: &Nets,
    opt: &mut nn::Optimizer,
    real: &Tensor,
    dim: usize,
) -> Result<String, GanError> {
    let b = real.size()[0] as f64;
    let encoder = nets
        .encoder
        .as_ref()
        .ok_or_else(|| GanError::Internal("a VAE member was built without its encoder".into()))?;
    let stats = encoder.forward_t(real, true);
    let mu = stats.narrow(1, 0, dim as i64);
    let logvar = stats.narrow(1, dim as i64, dim as i64).clamp(-10.0, 10.0);
    let eps = Tensor::randn_like(&mu);
    let latent = &mu + (&logvar * 0.5).exp() * eps;
    let recon = nets.generator.forward_t(&latent, true);
    // Bernoulli likelihood of pixel intensities in [0, 1], summed per image.
    let target = (real + 1.0) / 2.0;
    let p = ((recon + 1.0) / 2.0).clamp(1e-4, 1.0 - 1e-4);
    let rec = p.f_binary_cross_entropy::<Tensor>(&target, None, Reduction::Sum)? / b;
    let kl = ((&mu * &mu) + logvar.exp() - 1.0 - &logvar).sum(Kind::Float) * 0.5 / b;
    let loss = &rec + &kl;
    opt.backward_step(&loss);
    Ok(format!(
        "rec {:.1} KL {:.1}",
        rec.f_double_value(&[])?,
        kl.f_double_value(&[])?
    ))
}

/// A checkpoint about to be written as a zoo member.
struct Member<'a> {
    zoo_dir: &'a Path,
    name: String,
    store: &'a nn::VarStore,
    generator: &'a nn::SequentialT,
    seed: u64,
    device: Device,
}

impl Member<'_> {
    /// Writes the weights, the card (`card` with this member's name, hash and EMA decay) and
    /// 64 samples into `<zoo>/<name>/`; returns the card.
    fn save(&self, card: &mut MemberCard, ema_decay: Option<f64>) -> Result<MemberCard, GanError> {
        let dir = self.zoo_dir.join(&self.name);
        std::fs::create_dir_all(&dir).map_err(|e| GanError::io(&dir, e))?;
        let weights = dir.join(GENERATOR_FILE);
        super::model::save_weights_prefixed(self.store, &weights, "g.")?;
        let bytes = std::fs::read(&weights).map_err(|e| GanError::io(&weights, e))?;
        card.name.clone_from(&self.name);
        card.weights_sha256 = hex::encode(Sha256::digest(&bytes));
        card.ema_decay = ema_decay;
        card.save(&dir.join(MEMBER_CARD))?;
        let dim = card.latent_dim as usize;
        let grid = generate_flat(
            self.generator,
            &(0..64u64)
                .flat_map(|i| latents_for(self.seed, i, dim))
                .collect::<Vec<_>>(),
            dim,
            self.device,
        )?;
        plot::save_png(&plot::grid(&grid, 8, 2), &dir.join(SAMPLES_FILE))?;
        Ok(card.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(family: Family) -> MemberCard {
        MemberCard {
            name: "t".into(),
            family,
            how: String::new(),
            image_size: 16,
            channels: 1,
            latent_dim: 8,
            width: 4,
            loss: family.loss_name().into(),
            steps: 0,
            batch_size: 2,
            learning_rate: 1e-3,
            seed: 0,
            dataset: String::new(),
            training_time_s: 0.0,
            weights_sha256: String::new(),
            ema_decay: None,
        }
    }

    #[test]
    fn every_family_makes_images_of_the_right_shape_and_range() {
        for family in Family::ALL {
            let vs = nn::VarStore::new(Device::Cpu);
            let nets = build(&card(family), &vs.root(), true).unwrap();
            let z = Tensor::randn([3, 8], (Kind::Float, Device::Cpu));
            let x = nets.generator.forward_t(&z, true);
            assert_eq!(x.size(), [3, 1, 16, 16], "{family}");
            assert!(x.abs().max().double_value(&[]) <= 1.0);
            if let Some(e) = nets.encoder {
                assert_eq!(e.forward_t(&x, true).size(), [3, 16]);
            }
        }
        assert_eq!(Family::parse("vae").unwrap(), Family::Vae);
        assert!(Family::parse("gan").is_err());
    }
}
