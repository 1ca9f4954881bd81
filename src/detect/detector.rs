//! The synthetic-image detector: a network of the GAN discriminator's shape trained by
//! `hallmark train-detector` (its own weights file, `detector.safetensors`), a Platt
//! calibration of its logit, a threshold, and domain rules that refuse to score uploads the
//! model could never have made (wrong size, colour for a grey model, pixel statistics far from
//! the training data) instead of giving them a confident but meaningless probability.
//!
//! Everything the card stores is explained in [`DetectorCard`]; the maths of calibration and
//! the ranking metrics (AP, ROC) live here too so that training, evaluation and the service
//! share one implementation.

use std::path::Path;

use image::DynamicImage;
use tch::Device;

use crate::gan::card::ModelCard;
use crate::gan::card::{
    ArchFamily, Architecture, Calibration, CalibrationMethod, DetectorCard, DetectorInput,
    DetectorNetwork, DomainRules,
};
use crate::gan::model::{fit_square, to_chw_u8, Discriminator};
use crate::gan::GanError;

use super::attribution::Attribution;

/// The detector's answer for one image; serialised in the API's JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Detection {
    /// Model whose detector answered.
    pub model: String,
    /// Calibrated probability that the image is synthetic (made by this model's generator);
    /// None when out of domain.
    pub probability: Option<f64>,
    /// Probability at or above which an image is called likely synthetic (from the card).
    pub threshold: f64,
    pub likely_synthetic: bool,
    pub out_of_domain: bool,
    /// Plain-language reason when out of domain (e.g. "colour image; the model makes grey
    /// images").
    pub out_of_domain_reason: Option<String>,
    /// For an image called likely synthetic: the generator family its traces are nearest to,
    /// when the detector's family head is sure enough (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest_family: Option<NearestFamily>,
}

/// The generator family a synthetic image is nearest to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct NearestFamily {
    /// Family name (`tconv`, `nearest`, `pixelshuffle`, `vae`, `mlp`).
    pub family: String,
    /// How that family makes pixels.
    pub how: String,
    /// The family head's probability.
    pub probability: f64,
}

/// A loaded detector: network, calibration, threshold and domain rules. Holds tensors: keep it
/// on the thread that loaded it (like [`crate::gan::LoadedModel`]).
#[derive(Debug)]
pub struct Detector {
    net: DetectorNet,
    arch: Architecture,
    card: DetectorCard,
    attribution: Option<Attribution>,
}

/// Images scored per forward pass (bounds memory for large batches).
const CHUNK: usize = 256;

impl Detector {
    /// Loaded from the model dir when the card has a `[detector]` section; `Ok(None)` when it
    /// has none.
    ///
    /// # Errors
    /// When the card's detector section is inconsistent, or the weights file it names is
    /// missing, corrupt or does not match the architecture (the error names the file).
    /// `generator_sha256`: the served generator's weights' SHA-256 (hex,
    /// [`crate::gan::LoadedModel::generator_sha256`]), which a stale detector is refused against.
    pub fn load(
        dir: &Path,
        card: &ModelCard,
        generator_sha256: &str,
        device: Device,
    ) -> Result<Option<Self>, GanError> {
        let Some(detector) = &card.detector else {
            return Ok(None);
        };
        validate_card(detector).map_err(|message| GanError::Card {
            path: dir.join(crate::gan::CARD_FILE),
            message,
        })?;
        if let Some(expected) = &detector.generator_sha256 {
            let generator = dir.join(crate::gan::GENERATOR_FILE);
            let actual = generator_sha256;
            if !actual.eq_ignore_ascii_case(expected) {
                return Err(GanError::Card {
                    path: dir.join(crate::gan::CARD_FILE),
                    message: format!(
                        "the [detector] section is stale: it was trained against generator \
                         weights with SHA-256 {expected}, but {} has {actual}; run `hallmark \
                         train-detector` again",
                        generator.display()
                    ),
                });
            }
        }
        let path = dir.join(&detector.weights);
        let net = DetectorNet::load(
            &card.architecture,
            detector.input,
            detector.network,
            device,
            &path,
        )?;
        let attribution = match &detector.attribution {
            Some(a) => Some(Attribution::load(dir, a, net.feature_width(), device)?),
            None => None,
        };
        Ok(Some(
            Self::from_parts(net, card.architecture.clone(), detector.clone())
                .with_attribution(attribution),
        ))
    }

    /// The same detector with a family head.
    #[must_use]
    pub fn with_attribution(mut self, attribution: Option<Attribution>) -> Self {
        self.attribution = attribution;
        self
    }

    #[must_use]
    pub fn attribution(&self) -> Option<&Attribution> {
        self.attribution.as_ref()
    }

    /// A detector from a network and its card section (training and evaluation use this).
    #[must_use]
    pub fn from_parts(net: DetectorNet, arch: Architecture, card: DetectorCard) -> Self {
        Self {
            net,
            arch,
            card,
            attribution: None,
        }
    }

    #[must_use]
    pub fn card(&self) -> &DetectorCard {
        &self.card
    }

    #[must_use]
    pub fn threshold(&self) -> f64 {
        self.card.threshold
    }

    #[must_use]
    pub fn network(&self) -> &DetectorNet {
        &self.net
    }

    /// Raw network logits (high: real) for images of any size, ignoring the domain rules:
    /// the mean logit over the image's [`detector_views`].
    ///
    /// # Errors
    /// When torch fails.
    pub fn logits(&self, images: &[DynamicImage]) -> Result<Vec<f32>, GanError> {
        detector_logits(&self.net, images, &self.arch)
    }

    /// Why `image` is out of the detector's domain, or `None` when it may be scored.
    #[must_use]
    pub fn out_of_domain(&self, image: &DynamicImage) -> Option<String> {
        domain_reason(&self.card.domain, &self.arch, image)
    }

    /// Batch-scored; one Detection per image, in order. Images of any size/colour (decoded
    /// uploads). Out-of-domain images get no probability and are never called synthetic.
    ///
    /// # Errors
    /// When torch fails.
    pub fn detect(
        &self,
        model_name: &str,
        images: &[DynamicImage],
    ) -> Result<Vec<Detection>, GanError> {
        let reasons: Vec<Option<String>> = images.iter().map(|i| self.out_of_domain(i)).collect();
        let scored: Vec<DynamicImage> = images
            .iter()
            .zip(&reasons)
            .filter(|(_, r)| r.is_none())
            .map(|(i, _)| i.clone())
            .collect();
        let mut logits = self.logits(&scored)?.into_iter();
        let threshold = self.card.threshold;
        let mut detections: Vec<Detection> = reasons
            .into_iter()
            .map(|reason| {
                let probability = match reason {
                    Some(_) => None,
                    None => logits
                        .next()
                        .map(|l| self.card.calibration.probability(f64::from(l))),
                };
                Detection {
                    model: model_name.to_owned(),
                    probability,
                    threshold,
                    likely_synthetic: probability.is_some_and(|p| p >= threshold),
                    out_of_domain: reason.is_some(),
                    out_of_domain_reason: reason,
                    nearest_family: None,
                }
            })
            .collect();
        // The family head, for the images called synthetic only.
        if let Some(head) = &self.attribution {
            let called: Vec<usize> = (0..images.len())
                .filter(|&i| detections[i].likely_synthetic)
                .collect();
            if !called.is_empty() {
                let chosen: Vec<DynamicImage> = called.iter().map(|&i| images[i].clone()).collect();
                let nearest = head.nearest(&detector_features(&self.net, &chosen, &self.arch)?)?;
                for (i, (family, p)) in called.into_iter().zip(nearest) {
                    if p >= head.min_probability() {
                        detections[i].nearest_family = Some(NearestFamily {
                            family: family.to_string(),
                            how: family.how().to_owned(),
                            probability: (p * 1e4).round() / 1e4,
                        });
                    }
                }
            }
        }
        Ok(detections)
    }
}

/// The detector's network: a discriminator-shaped network (no batch norm, so an image's logit
/// never depends on its batch) over the [`DetectorInput`] of images in the model's layout,
/// the model's discriminator fine-tuned with or without its spectral norm ([`DetectorNetwork`]).
#[derive(Debug)]
pub struct DetectorNet {
    net: Discriminator,
    input: DetectorInput,
    channels: i64,
    size: i64,
}

impl DetectorNet {
    fn build(
        arch: &Architecture,
        input: DetectorInput,
        network: DetectorNetwork,
        device: Device,
    ) -> Result<Self, GanError> {
        let net = Discriminator::with_input_channels(
            arch,
            input.channels(arch.channels),
            network == DetectorNetwork::Discriminator,
            device,
        )?;
        Ok(Self {
            net,
            input,
            channels: i64::from(arch.channels),
            size: i64::from(arch.image_size),
        })
    }

    /// # Errors
    /// When the weights file is missing, corrupt or does not match.
    pub fn load(
        arch: &Architecture,
        input: DetectorInput,
        network: DetectorNetwork,
        device: Device,
        path: &Path,
    ) -> Result<Self, GanError> {
        let mut net = Self::build(arch, input, network, device)?;
        crate::gan::model::load_weights(net.net.var_store_mut(), path)?;
        Ok(net)
    }

    /// A network to train, initialised from the model's discriminator: for
    /// [`DetectorNetwork::Discriminator`] every weight copied; for [`DetectorNetwork::Plain`]
    /// each convolution's weight divided by its spectral norm (as the discriminator's own
    /// forward pass estimates it from its saved power-iteration vectors), so the network
    /// starts as the same function and is then trained without the norm. For
    /// [`DetectorInput::PixelsResidual`] the first convolution's residual channels keep their
    /// small random initialisation. A progressive model's discriminator is another network:
    /// its detector starts fresh.
    ///
    /// # Errors
    /// When the discriminator does not load, or torch fails.
    pub fn for_training(
        arch: &Architecture,
        input: DetectorInput,
        network: DetectorNetwork,
        device: Device,
        discriminator: &Path,
    ) -> Result<Self, GanError> {
        let net = Self::build(arch, input, network, device)?;
        if arch.family == ArchFamily::Progressive {
            return Ok(net);
        }
        let source = Discriminator::load(arch, device, discriminator)?;
        let from = source.var_store().variables();
        tch::no_grad(|| -> Result<(), GanError> {
            for (name, var) in net.var_store().variables() {
                let Some(src) = from.get(&name) else { continue };
                // Without the norm, the weight the discriminator actually applies.
                let layer = name.strip_suffix(".weight");
                let norm = layer
                    .and_then(|l| from.get(&format!("{l}.u")).zip(from.get(&format!("{l}.v"))));
                let src = match norm {
                    Some((u, v)) if network == DetectorNetwork::Plain => {
                        src / crate::gan::model::spectral_sigma(src, u, v)
                    }
                    _ => src.shallow_clone(),
                };
                let mut var = var.shallow_clone();
                if src.size() == var.size() {
                    var.f_copy_(&src)?;
                } else if name.ends_with(".weight") {
                    // [out, channels, k, k] into the first `channels` input channels.
                    let c = src.size()[1];
                    var.f_narrow(1, 0, c)?.f_copy_(&src)?;
                }
            }
            Ok(())
        })?;
        Ok(net)
    }

    #[must_use]
    pub fn network(&self) -> DetectorNetwork {
        if self.net.has_spectral_norm() {
            DetectorNetwork::Discriminator
        } else {
            DetectorNetwork::Plain
        }
    }

    #[must_use]
    pub fn input(&self) -> DetectorInput {
        self.input
    }

    #[must_use]
    pub fn device(&self) -> Device {
        self.net.device()
    }

    /// Channels of [`Self::features_t`].
    #[must_use]
    pub fn feature_width(&self) -> i64 {
        self.net.feature_width()
    }

    /// The last hidden layer's activations averaged over positions, `[N, width]`, in
    /// inference mode.
    pub fn features_t(&self, images: &tch::Tensor) -> tch::Tensor {
        self.net.features_t(&self.prepare(images), false)
    }

    fn prepare(&self, images: &tch::Tensor) -> tch::Tensor {
        match self.input {
            DetectorInput::Pixels => images.shallow_clone(),
            DetectorInput::PixelsResidual => {
                let residual = images - neighbour_copy(images);
                tch::Tensor::cat(&[images, &residual], 1)
            }
        }
    }

    #[must_use]
    pub fn var_store(&self) -> &tch::nn::VarStore {
        self.net.var_store()
    }

    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), GanError> {
        self.net.save(path)
    }

    /// Logits `[N]` (high: real) of images `[N, C, S, S]` in [-1, 1].
    pub fn forward_t(&self, images: &tch::Tensor, train: bool) -> tch::Tensor {
        self.net.forward_t(&self.prepare(images), train)
    }

    /// Logits of images in the model's input layout (NCHW floats in [-1, 1]).
    ///
    /// # Errors
    /// When the length is not a whole number of images, or torch fails.
    pub fn logits(&self, input: &[f32]) -> Result<Vec<f32>, GanError> {
        let logits = self.run(input, |x| self.forward_t(x, false))?;
        Ok(Vec::<f32>::try_from(&logits)?)
    }

    /// [`Self::features_t`] of images in the model's input layout, on the CPU.
    ///
    /// # Errors
    /// When the length is not a whole number of images, or torch fails.
    pub fn features(&self, input: &[f32]) -> Result<tch::Tensor, GanError> {
        self.run(input, |x| self.features_t(x))
    }

    fn run(
        &self,
        input: &[f32],
        f: impl Fn(&tch::Tensor) -> tch::Tensor,
    ) -> Result<tch::Tensor, GanError> {
        let per_image = (self.channels * self.size * self.size) as usize;
        if !input.len().is_multiple_of(per_image) {
            return Err(GanError::Shape(format!(
                "{} input values are not a whole number of {}x{}x{} images",
                input.len(),
                self.channels,
                self.size,
                self.size
            )));
        }
        let n = (input.len() / per_image) as i64;
        let out = tch::no_grad(|| -> Result<tch::Tensor, GanError> {
            let x = tch::Tensor::f_from_slice(input)?
                .f_view([n, self.channels, self.size, self.size])?
                .f_to_device(self.net.device())?;
            Ok(f(&x))
        })?;
        Ok(out.f_to_device(Device::Cpu)?)
    }
}

/// Each 2x2 block replaced by its top-left pixel: nearest-neighbour 2x down, then up.
fn neighbour_copy(images: &tch::Tensor) -> tch::Tensor {
    let size = images.size();
    let (h, w) = (size[2], size[3]);
    images
        .slice(2, 0, h, 2)
        .slice(3, 0, w, 2)
        .upsample_nearest2d([h, w], None::<f64>, None::<f64>)
}

/// The shortest side, as a share of the model size, that is placed on the canvas at native
/// scale ([`detector_views`]); smaller images are upscaled.
const PAD_MIN_SHARE: (u32, u32) = (3, 4);

/// Where an image of `w` x `h` pixels is placed on the `size` canvas without rescaling: the
/// offsets of its views (every whole-pixel placement inside the canvas), or `None` when it is
/// rescaled instead (a side above `size`, or the shorter side below 3/4 of it).
#[must_use]
pub fn pad_offsets(w: u32, h: u32, size: u32) -> Option<Vec<(u32, u32)>> {
    let min = (size * PAD_MIN_SHARE.0 / PAD_MIN_SHARE.1).max(1);
    if w > size || h > size || w.min(h) < min || (w == size && h == size) {
        return None;
    }
    let axis = |slack: u32| -> Vec<u32> { (0..=slack).collect() };
    let (xs, ys) = (axis(size - w), axis(size - h));
    Some(
        ys.iter()
            .flat_map(|&y| xs.iter().map(move |&x| (x, y)))
            .collect(),
    )
}

/// The model-size inputs the detector scores for one image, in the model's channel count.
///
/// An image at the model size is used as it is. One a little smaller (a crop, or the 28x28
/// original of a Fashion-MNIST image) is placed at native scale on a black canvas rather than
/// upscaled: a 1.1x-1.3x rescale smooths away the generator's pixel-level artefacts, and the
/// black canvas is what real images have around their objects. Its views are every
/// whole-pixel placement on the canvas (25 for a 28x28 crop): the generator's artefacts are
/// tied to its output's pixel grid (a detector scoring a crop at its original place is as good
/// as on the whole image, 2 px away much worse), and a crop's offset is unknown. Anything else
/// is resized and centre-cropped ([`fit_square`]).
#[must_use]
pub fn detector_views(image: &DynamicImage, arch: &Architecture) -> Vec<DynamicImage> {
    let size = arch.image_size;
    let image = in_model_channels(image, arch);
    match pad_offsets(image.width(), image.height(), size) {
        None => vec![fit_square(&image, size)],
        Some(offsets) => offsets
            .into_iter()
            .map(|at| placed(&image, size, at))
            .collect(),
    }
}

fn in_model_channels(image: &DynamicImage, arch: &Architecture) -> DynamicImage {
    if arch.channels == 1 {
        DynamicImage::ImageLuma8(image.to_luma8())
    } else {
        DynamicImage::ImageRgb8(image.to_rgb8())
    }
}

/// `image` on a black `size` canvas with its top-left corner at `(x, y)`.
fn placed(image: &DynamicImage, size: u32, (x, y): (u32, u32)) -> DynamicImage {
    let mut canvas = DynamicImage::new(size, size, image.color());
    image::imageops::replace(&mut canvas, image, i64::from(x), i64::from(y));
    canvas
}

/// An image (already model size) in the model's input layout, CHW in [-1, 1].
fn to_input(image: &DynamicImage, channels: u32, out: &mut Vec<f32>) {
    out.extend(
        to_chw_u8(image, channels)
            .into_iter()
            .map(|b| f32::from(b) / 127.5 - 1.0),
    );
}

/// One view per image, drawn at random among its [`detector_views`], in the model's input
/// layout (NCHW, [-1, 1]): the training batches.
#[must_use]
pub fn detector_input_random(
    images: &[DynamicImage],
    arch: &Architecture,
    rng: &mut impl rand::Rng,
) -> Vec<f32> {
    let size = arch.image_size;
    let mut out = Vec::new();
    for image in images {
        // One of the image's [`detector_views`], built alone (a crop has up to 81 of them).
        let image = in_model_channels(image, arch);
        let view = match pad_offsets(image.width(), image.height(), size) {
            None => fit_square(&image, size),
            Some(offsets) => placed(&image, size, offsets[rng.gen_range(0..offsets.len())]),
        };
        to_input(&view, arch.channels, &mut out);
    }
    out
}

/// The detector's logit (high: real) of each image: the mean over its [`detector_views`].
/// Training, calibration, evaluation and the service all score through this.
///
/// # Errors
/// When torch fails.
pub fn detector_logits(
    net: &DetectorNet,
    images: &[DynamicImage],
    arch: &Architecture,
) -> Result<Vec<f32>, GanError> {
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(CHUNK) {
        let mut input = Vec::new();
        let mut counts = Vec::with_capacity(chunk.len());
        for image in chunk {
            let views = detector_views(image, arch);
            counts.push(views.len());
            for view in &views {
                to_input(view, arch.channels, &mut input);
            }
        }
        let logits = net.logits(&input)?;
        let mut at = 0;
        for n in counts {
            let views = &logits[at..at + n];
            out.push(views.iter().sum::<f32>() / n as f32);
            at += n;
        }
    }
    Ok(out)
}

/// The detector's last hidden features of each image, `[N, width]`: the mean over its
/// [`detector_views`] (what the family head reads).
///
/// # Errors
/// When torch fails.
pub fn detector_features(
    net: &DetectorNet,
    images: &[DynamicImage],
    arch: &Architecture,
) -> Result<tch::Tensor, GanError> {
    let mut rows = Vec::with_capacity(images.len());
    for chunk in images.chunks(CHUNK) {
        let mut input = Vec::new();
        let mut counts = Vec::with_capacity(chunk.len());
        for image in chunk {
            let views = detector_views(image, arch);
            counts.push(views.len() as i64);
            for view in &views {
                to_input(view, arch.channels, &mut input);
            }
        }
        let features = net.features(&input)?;
        for part in features.f_split_with_sizes(counts.as_slice(), 0)? {
            rows.push(part.f_mean_dim([0_i64].as_slice(), false, tch::Kind::Float)?);
        }
    }
    if rows.is_empty() {
        return Ok(tch::Tensor::zeros(
            [0, net.feature_width()],
            (tch::Kind::Float, Device::Cpu),
        ));
    }
    Ok(tch::Tensor::f_stack(&rows, 0)?)
}

fn validate_card(card: &DetectorCard) -> Result<(), String> {
    let c = &card.calibration;
    if !(c.a.is_finite() && c.b.is_finite()) {
        return Err("detector.calibration a and b must be finite numbers".into());
    }
    if !(card.threshold > 0.0 && card.threshold < 1.0) {
        return Err(format!(
            "detector.threshold {} is not a probability strictly between 0 and 1",
            card.threshold
        ));
    }
    let d = &card.domain;
    if d.min_side == 0 || d.max_side < d.min_side || d.max_aspect < 1.0 {
        return Err("detector.domain sizes are inconsistent".into());
    }
    for (name, [lo, hi]) in [
        ("border_mean", d.border_mean),
        ("mean", d.mean),
        ("std", d.std),
    ] {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(format!(
                "detector.domain.{name} [{lo}, {hi}] is not a range"
            ));
        }
    }
    if card.weights.contains(['/', '\\']) || card.weights.starts_with('.') {
        return Err(format!(
            "detector.weights {:?} must be a file name in the model directory",
            card.weights
        ));
    }
    Ok(())
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Calibration {
    /// `sigmoid(a * logit + b)`: the calibrated probability that an image is synthetic.
    #[must_use]
    pub fn probability(&self, logit: f64) -> f64 {
        match self.method {
            CalibrationMethod::Platt => sigmoid(self.a * logit + self.b),
        }
    }

    /// Fits Platt scaling by Newton's method on the log loss, with Platt's smoothed targets
    /// (`(n+ + 1) / (n+ + 2)` and `1 / (n- + 2)`) so that separable data gives a finite slope.
    /// `synthetic[i]` is the label of `logits[i]`.
    ///
    /// # Errors
    /// When there are no examples of one class, or the lengths differ.
    pub fn fit_platt(logits: &[f64], synthetic: &[bool]) -> Result<Self, GanError> {
        if logits.len() != synthetic.len() {
            return Err(GanError::Shape(
                "calibration needs one label per logit".into(),
            ));
        }
        let pos = synthetic.iter().filter(|&&s| s).count() as f64;
        let neg = synthetic.len() as f64 - pos;
        if pos == 0.0 || neg == 0.0 {
            return Err(GanError::Setting(
                "calibration needs both real and synthetic examples".into(),
            ));
        }
        let (hi, lo) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
        let targets: Vec<f64> = synthetic.iter().map(|&s| if s { hi } else { lo }).collect();
        let loss = |a: f64, b: f64| -> f64 {
            logits
                .iter()
                .zip(&targets)
                .map(|(&x, &t)| {
                    let z = a * x + b;
                    // log(1 + e^z) - t z, computed stably.
                    z.max(0.0) + (-z.abs()).exp().ln_1p() - t * z
                })
                .sum()
        };
        // Start from the prior with a unit slope; the sign is learnt.
        let (mut a, mut b) = (0.0_f64, ((pos + 1.0) / (neg + 1.0)).ln());
        let mut current = loss(a, b);
        for _ in 0..100 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (&x, &t) in logits.iter().zip(&targets) {
                let p = sigmoid(a * x + b);
                let d = p - t;
                let w = (p * (1.0 - p)).max(1e-12);
                ga += d * x;
                gb += d;
                haa += w * x * x;
                hab += w * x;
                hbb += w;
            }
            // A tiny ridge keeps the Hessian invertible.
            haa += 1e-9;
            hbb += 1e-9;
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-300 {
                break;
            }
            let da = -(hbb * ga - hab * gb) / det;
            let db = -(haa * gb - hab * ga) / det;
            let mut step = 1.0;
            let mut improved = false;
            while step > 1e-10 {
                let (na, nb) = (a + step * da, b + step * db);
                let next = loss(na, nb);
                if next < current {
                    a = na;
                    b = nb;
                    let gain = current - next;
                    current = next;
                    improved = gain > 1e-12 * current.abs().max(1.0);
                    break;
                }
                step /= 2.0;
            }
            if !improved {
                break;
            }
        }
        Ok(Self {
            method: CalibrationMethod::Platt,
            a,
            b,
        })
    }
}

/// Pixel statistics of an image resized to the model size (`fit_square`, also for images
/// the detector scores padded: the statistics describe the picture, not the canvas), grey,
/// intensities in 0..1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageStats {
    /// Mean of the border ring `border_px` wide.
    pub border_mean: f64,
    pub mean: f64,
    pub std: f64,
    /// Mean over pixels of (max - min of R, G, B) / 255 on the image as uploaded; 0 for grey.
    pub chroma: f64,
}

/// Computes [`ImageStats`] (chroma on the original pixels, the rest at `size`).
#[must_use]
pub fn image_stats(image: &DynamicImage, size: u32, border_px: u32) -> ImageStats {
    let chroma = if image.color().has_color() {
        let rgb = image.to_rgb8();
        let total: u64 = rgb
            .pixels()
            .map(|p| {
                let [r, g, b] = p.0;
                u64::from(r.max(g).max(b) - r.min(g).min(b))
            })
            .sum();
        total as f64 / (255.0 * f64::from(rgb.width() * rgb.height()).max(1.0))
    } else {
        0.0
    };
    let grey = fit_square(image, size).to_luma8();
    let (w, h) = grey.dimensions();
    let n = f64::from(w * h).max(1.0);
    let (mut sum, mut sum2, mut border, mut border_n) = (0.0_f64, 0.0_f64, 0.0_f64, 0.0_f64);
    for (x, y, p) in grey.enumerate_pixels() {
        let v = f64::from(p.0[0]) / 255.0;
        sum += v;
        sum2 += v * v;
        if x < border_px || y < border_px || x + border_px >= w || y + border_px >= h {
            border += v;
            border_n += 1.0;
        }
    }
    let mean = sum / n;
    ImageStats {
        border_mean: border / border_n.max(1.0),
        mean,
        std: (sum2 / n - mean * mean).max(0.0).sqrt(),
        chroma,
    }
}

/// Intensity standard deviation (0..1) below which an image is flat whatever the card's
/// ranges say: less than a grey level of contrast (every image the model makes has an
/// object on its background).
pub const FLAT_STD: f64 = 1.0 / 255.0;

/// Why `image` is outside the domain described by `rules`, or `None` when it is inside.
#[must_use]
pub fn domain_reason(
    rules: &DomainRules,
    arch: &Architecture,
    image: &DynamicImage,
) -> Option<String> {
    let (w, h) = (image.width(), image.height());
    let size = arch.image_size;
    let (short, long) = (w.min(h), w.max(h));
    if short < rules.min_side {
        return Some(format!(
            "image is {w}x{h} pixels; the detector needs at least {} pixels a side (the model \
             makes {size}x{size} images)",
            rules.min_side
        ));
    }
    if long > rules.max_side {
        return Some(format!(
            "image is {w}x{h} pixels; the model makes {size}x{size} images and the detector \
             scores images up to {} pixels a side",
            rules.max_side
        ));
    }
    let aspect = f64::from(long) / f64::from(short);
    if aspect > rules.max_aspect {
        return Some(format!(
            "aspect ratio {aspect:.2} is beyond {:.2}; the model makes square images",
            rules.max_aspect
        ));
    }
    let stats = image_stats(image, size, rules.border_px);
    if arch.channels == 1 && stats.chroma > rules.max_chroma {
        return Some("colour image; the model makes grey images".into());
    }
    if stats.std < FLAT_STD {
        return Some(format!(
            "flat image (every pixel about {:.0} of 255): nothing the model could have drawn",
            stats.mean * 255.0
        ));
    }
    let outside = |v: f64, [lo, hi]: [f64; 2]| v < lo || v > hi;
    if outside(stats.border_mean, rules.border_mean) {
        return Some(format!(
            "border brightness {:.2} is outside the {:.2}-{:.2} of the model's images \
             (e.g. a light background; the model makes objects on a dark background)",
            stats.border_mean, rules.border_mean[0], rules.border_mean[1]
        ));
    }
    if outside(stats.mean, rules.mean) {
        return Some(format!(
            "mean brightness {:.2} is outside the {:.2}-{:.2} of the model's images",
            stats.mean, rules.mean[0], rules.mean[1]
        ));
    }
    if outside(stats.std, rules.std) {
        return Some(format!(
            "contrast (standard deviation {:.2}) is outside the {:.2}-{:.2} of the model's images",
            stats.std, rules.std[0], rules.std[1]
        ));
    }
    None
}

/// The size and aspect parts of the domain rules for a model: a 0.5x resize of a 28x28
/// Fashion-MNIST original (14 px) must stay in, so the floor is 3/8 of the model size (12 px at
/// 32); the ceiling is 8x the model size; aspect up to 1.5. Pixel ranges are filled in by
/// [`domain_from_stats`].
#[must_use]
pub fn size_rules(arch: &Architecture) -> (u32, u32, f64) {
    ((arch.image_size * 3 / 8).max(1), arch.image_size * 8, 1.5)
}

/// Domain rules from pixel statistics of real training images: each range is the 0.1st to
/// 99.9th percentile widened by `margin`, clamped to 0..1; chroma must stay below
/// `max_chroma`.
#[must_use]
pub fn domain_from_stats(
    arch: &Architecture,
    stats: &[ImageStats],
    border_px: u32,
    margin: f64,
    max_chroma: f64,
) -> DomainRules {
    // `floor`: the low end never goes below half the observed 0.1st percentile, so that a
    // range whose margin would reach 0 (mean and contrast of dark images) still refuses an
    // image with no content at all (e.g. all black).
    let range = |f: &dyn Fn(&ImageStats) -> f64, floor: bool| -> [f64; 2] {
        let mut v: Vec<f64> = stats.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            v[((v.len() - 1) as f64 * p).round() as usize]
        };
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        let low = q(0.001);
        let low = if floor {
            (low - margin).max(low / 2.0)
        } else {
            low - margin
        };
        // A positive floor never rounds to 0.
        let low = low.max(0.0);
        [
            if low > 0.0 {
                round(low).max(0.001)
            } else {
                0.0
            },
            round((q(0.999) + margin).min(1.0)),
        ]
    };
    let (min_side, max_side, max_aspect) = size_rules(arch);
    DomainRules {
        min_side,
        max_side,
        max_aspect,
        max_chroma,
        border_px,
        border_mean: range(&|s: &ImageStats| s.border_mean, false),
        mean: range(&|s: &ImageStats| s.mean, true),
        std: range(&|s: &ImageStats| s.std, true),
        margin,
    }
}

/// Average precision (area under the precision-recall curve as a step function, like
/// scikit-learn): `scores` higher for positives. Ties are handled as one threshold.
#[must_use]
pub fn average_precision(scores: &[f64], positive: &[bool]) -> f64 {
    let total_pos = positive.iter().filter(|&&p| p).count() as f64;
    if total_pos == 0.0 {
        return 0.0;
    }
    let (mut ap, mut last_recall) = (0.0, 0.0);
    for (tp, fp) in sweep(scores, positive) {
        let recall = tp / total_pos;
        ap += (recall - last_recall) * tp / (tp + fp);
        last_recall = recall;
    }
    ap
}

/// Counts of (true, false) positives at every distinct threshold, highest score first, ties taken
/// together: the walk both the precision-recall and the ROC curves make.
fn sweep(scores: &[f64], positive: &[bool]) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]));
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut out = Vec::new();
    let mut k = 0;
    while k < order.len() {
        let s = scores[order[k]];
        while k < order.len() && scores[order[k]] == s {
            if positive[order[k]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            k += 1;
        }
        out.push((tp, fp));
    }
    out
}

/// The ROC curve: (false positive rate, true positive rate) at every distinct threshold,
/// from (0, 0) to (1, 1).
#[must_use]
pub fn roc_curve(scores: &[f64], positive: &[bool]) -> Vec<(f64, f64)> {
    let pos = positive.iter().filter(|&&p| p).count().max(1) as f64;
    let neg = positive.iter().filter(|&&p| !p).count().max(1) as f64;
    let mut out = vec![(0.0, 0.0)];
    out.extend(
        sweep(scores, positive)
            .into_iter()
            .map(|(tp, fp)| (fp / neg, tp / pos)),
    );
    if out.last() != Some(&(1.0, 1.0)) {
        out.push((1.0, 1.0));
    }
    out
}

/// Area under the ROC curve (trapezoids; ties count half).
#[must_use]
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> f64 {
    roc_curve(scores, positive)
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum()
}

/// The highest true positive rate at a threshold whose false positive rate is at most
/// `max_fpr`.
#[must_use]
pub fn tpr_at_fpr(scores: &[f64], positive: &[bool], max_fpr: f64) -> f64 {
    roc_curve(scores, positive)
        .into_iter()
        .filter(|&(fpr, _)| fpr <= max_fpr + 1e-12)
        .map(|(_, tpr)| tpr)
        .fold(0.0, f64::max)
}

/// The smallest threshold `t` such that at most a `max_fpr` share of `negatives` score
/// `>= t`.
#[must_use]
pub fn threshold_for_fpr(negatives: &[f64], max_fpr: f64) -> f64 {
    if negatives.is_empty() {
        return 0.5;
    }
    let mut v = negatives.to_vec();
    v.sort_by(|a, b| b.total_cmp(a));
    let allowed = (max_fpr * v.len() as f64).floor() as usize;
    match v.get(allowed) {
        Some(&score) => score.next_up(),
        None => v[v.len() - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn arch() -> Architecture {
        Architecture {
            family: ArchFamily::Dcgan,
            image_size: 32,
            channels: 1,
            latent_dim: 8,
            g_width: 4,
            d_width: 4,
            loss: crate::gan::card::Loss::NonSaturating,
        }
    }

    fn rules() -> DomainRules {
        DomainRules {
            min_side: 12,
            max_side: 256,
            max_aspect: 1.5,
            max_chroma: 0.04,
            border_px: 2,
            border_mean: [0.0, 0.3],
            mean: [0.02, 0.8],
            std: [0.03, 0.5],
            margin: 0.05,
        }
    }

    /// A dark 32x32 picture with a bright blob in the middle.
    fn object(size: u32) -> DynamicImage {
        let c = f64::from(size) / 2.0;
        DynamicImage::ImageLuma8(GrayImage::from_fn(size, size, |x, y| {
            let d = ((f64::from(x) - c).powi(2) + (f64::from(y) - c).powi(2)).sqrt();
            Luma([if d < c * 0.6 { 180 } else { 0 }])
        }))
    }

    #[test]
    fn each_network_kind_round_trips_through_its_weights_file() {
        let a = arch();
        let dir = tempfile::tempdir().unwrap();
        let images = tch::Tensor::rand([3, 1, 32, 32], (tch::Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        for network in [DetectorNetwork::Plain, DetectorNetwork::Discriminator] {
            for input in [DetectorInput::Pixels, DetectorInput::PixelsResidual] {
                let net = DetectorNet::build(&a, input, network, Device::Cpu).unwrap();
                let path =
                    dir.path()
                        .join(format!("{}-{}.safetensors", network.name(), input.name()));
                net.save(&path).unwrap();
                let loaded = DetectorNet::load(&a, input, network, Device::Cpu, &path).unwrap();
                assert_eq!(loaded.network(), network);
                let (x, y) = (
                    net.forward_t(&images, false),
                    loaded.forward_t(&images, false),
                );
                assert_eq!(x.size(), [3]);
                assert_eq!(
                    Vec::<f32>::try_from(&x).unwrap(),
                    Vec::<f32>::try_from(&y).unwrap()
                );
                // The family head reads the last hidden layer: 4 << 2 channels here.
                assert_eq!(
                    loaded.features_t(&images).size(),
                    [3, loaded.feature_width()]
                );
                assert_eq!(loaded.feature_width(), 16);
            }
        }
        // Weights of one kind are refused by the other (the names match, the tensors do not:
        // the discriminator also stores its power-iteration vectors).
        let plain = dir.path().join("plain-pixels.safetensors");
        assert!(DetectorNet::load(
            &a,
            DetectorInput::Pixels,
            DetectorNetwork::Discriminator,
            Device::Cpu,
            &plain
        )
        .is_err());
        // Cards written before the network was recorded meant the fine-tuned discriminator.
        assert_eq!(DetectorNetwork::default(), DetectorNetwork::Discriminator);
        assert_eq!(DetectorNetwork::parse("plain"), Ok(DetectorNetwork::Plain));
        assert!(DetectorNetwork::parse("resnet").is_err());
    }

    #[test]
    fn a_plain_network_starts_as_the_discriminator_it_is_made_from() {
        let a = arch();
        let dir = tempfile::tempdir().unwrap();
        let images = tch::Tensor::rand([5, 1, 32, 32], (tch::Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let discriminator = Discriminator::new(&a, Device::Cpu).unwrap();
        // A few power iterations, as training leaves them, so that u and v are not the random
        // start.
        for _ in 0..3 {
            let _ = discriminator.forward_t(&images, true);
        }
        let path = dir.path().join("discriminator.safetensors");
        discriminator.save(&path).unwrap();
        let expected = Vec::<f32>::try_from(&discriminator.forward_t(&images, false)).unwrap();
        for network in [DetectorNetwork::Plain, DetectorNetwork::Discriminator] {
            let net =
                DetectorNet::for_training(&a, DetectorInput::Pixels, network, Device::Cpu, &path)
                    .unwrap();
            let got = Vec::<f32>::try_from(&net.forward_t(&images, false)).unwrap();
            for (x, y) in got.iter().zip(&expected) {
                assert!(
                    (x - y).abs() < 1e-4 * (1.0 + y.abs()),
                    "{network:?}: {got:?} vs {expected:?}"
                );
            }
        }
    }

    #[test]
    fn domain_rules_accept_objects_on_dark_backgrounds() {
        let (a, r) = (arch(), rules());
        assert_eq!(domain_reason(&r, &a, &object(32)), None);
        assert_eq!(domain_reason(&r, &a, &object(28)), None);
        assert_eq!(domain_reason(&r, &a, &object(14)), None);
        assert_eq!(domain_reason(&r, &a, &object(200)), None);
        // Grey pixels stored as RGB are still grey.
        let rgb = DynamicImage::ImageRgb8(object(32).to_rgb8());
        assert_eq!(domain_reason(&r, &a, &rgb), None);
    }

    #[test]
    fn domain_rules_refuse_sizes_colour_and_light_backgrounds() {
        let (a, r) = (arch(), rules());
        let small = domain_reason(&r, &a, &object(8)).unwrap();
        assert!(small.contains("8x8"), "{small}");
        assert!(domain_reason(&r, &a, &object(512)).is_some());
        let wide = DynamicImage::ImageLuma8(GrayImage::new(64, 32));
        assert!(domain_reason(&r, &a, &wide).unwrap().contains("aspect"));
        let colour = DynamicImage::ImageRgb8(RgbImage::from_fn(32, 32, |x, y| {
            Rgb([(x * 8) as u8, (y * 8) as u8, 128])
        }));
        assert_eq!(
            domain_reason(&r, &a, &colour).as_deref(),
            Some("colour image; the model makes grey images")
        );
        let mut white = GrayImage::from_pixel(32, 32, Luma([255]));
        for y in 10..22 {
            for x in 10..22 {
                white.put_pixel(x, y, Luma([20]));
            }
        }
        let white = domain_reason(&r, &a, &DynamicImage::ImageLuma8(white)).unwrap();
        assert!(white.contains("border"), "{white}");
        let flat = DynamicImage::ImageLuma8(GrayImage::new(32, 32));
        assert!(domain_reason(&r, &a, &flat).is_some());
    }

    #[test]
    fn a_flat_black_image_is_out_of_domain() {
        let a = arch();
        let black = DynamicImage::ImageLuma8(GrayImage::new(32, 32));
        // Rules as trained: dark real images put the low ends near 0, but never at 0.
        let stats: Vec<ImageStats> = (0..=1000)
            .map(|i| ImageStats {
                border_mean: 0.0,
                mean: 0.04 + f64::from(i) / 2000.0,
                std: 0.06 + f64::from(i) / 4000.0,
                chroma: 0.0,
            })
            .collect();
        let r = domain_from_stats(&a, &stats, 2, 0.1, 0.04);
        assert_eq!(r.border_mean[0], 0.0);
        assert!(r.mean[0] > 0.0 && r.mean[0] <= 0.02, "{:?}", r.mean);
        assert!(r.std[0] > 0.0 && r.std[0] <= 0.03, "{:?}", r.std);
        assert!(domain_reason(&r, &a, &black).is_some());
        assert_eq!(domain_reason(&r, &a, &object(32)), None);
        // Older cards whose low ends are 0 still refuse flat images, black or grey.
        let mut zero = rules();
        zero.mean[0] = 0.0;
        zero.std[0] = 0.0;
        let reason = domain_reason(&zero, &a, &black).unwrap();
        assert!(reason.contains("flat"), "{reason}");
        let grey = DynamicImage::ImageLuma8(GrayImage::from_pixel(32, 32, Luma([40])));
        assert!(domain_reason(&zero, &a, &grey).unwrap().contains("flat"));
        assert_eq!(domain_reason(&zero, &a, &object(32)), None);
    }

    #[test]
    fn small_images_are_padded_at_native_scale_and_others_resized() {
        let a = arch();
        assert_eq!(pad_offsets(32, 32, 32), None);
        assert_eq!(pad_offsets(16, 16, 32), None);
        assert_eq!(pad_offsets(23, 30, 32), None);
        assert_eq!(pad_offsets(40, 30, 32), None);
        let all = pad_offsets(28, 28, 32).unwrap();
        assert_eq!(all.len(), 25);
        assert_eq!((all[0], all[1], all[24]), ((0, 0), (1, 0), (4, 4)));
        assert_eq!(
            pad_offsets(32, 29, 32),
            Some(vec![(0, 0), (0, 1), (0, 2), (0, 3)])
        );
        assert_eq!(pad_offsets(31, 24, 32).map(|o| o.len()), Some(18));
        // A 28x28 crop: the pixels land unchanged on a black canvas, in each view.
        let crop = DynamicImage::ImageLuma8(GrayImage::from_fn(28, 28, |x, y| {
            Luma([(10 + x * 8 + y) as u8])
        }));
        let views = detector_views(&crop, &a);
        assert_eq!(views.len(), 25);
        for (view, (ox, oy)) in views.iter().zip(pad_offsets(28, 28, 32).unwrap()) {
            let g = view.to_luma8();
            assert_eq!(g.dimensions(), (32, 32));
            for (x, y, p) in g.enumerate_pixels() {
                let inside = (ox..ox + 28).contains(&x) && (oy..oy + 28).contains(&y);
                let want = if inside {
                    crop.to_luma8().get_pixel(x - ox, y - oy).0[0]
                } else {
                    0
                };
                assert_eq!(p.0[0], want, "({x}, {y}) in view at ({ox}, {oy})");
            }
        }
        // Model-size images are used as they are; small ones are upscaled; colour goes grey.
        let full = object(32);
        assert_eq!(detector_views(&full, &a), vec![full.clone()]);
        let small = detector_views(&object(16), &a);
        assert_eq!(small.len(), 1);
        assert_eq!((small[0].width(), small[0].height()), (32, 32));
        let rgb = DynamicImage::ImageRgb8(object(28).to_rgb8());
        assert!(detector_views(&rgb, &a)
            .iter()
            .all(|v| !v.color().has_color() && v.width() == 32));
        // Training input: one view per image, in [-1, 1].
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let input = detector_input_random(&[crop, full], &a, &mut rng);
        assert_eq!(input.len(), 2 * 32 * 32);
        assert!(input.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(input[0], -1.0);
    }

    #[test]
    fn stats_of_a_known_image() {
        let mut img = GrayImage::new(32, 32);
        img.put_pixel(0, 0, Luma([255]));
        let s = image_stats(&DynamicImage::ImageLuma8(img), 32, 2);
        // 32*32 - 28*28 = 240 border pixels, one of them white.
        assert!((s.border_mean - 1.0 / 240.0).abs() < 1e-9);
        assert!((s.mean - 1.0 / 1024.0).abs() < 1e-9);
        assert_eq!(s.chroma, 0.0);
    }

    #[test]
    fn rules_from_stats_widen_the_observed_range() {
        let stats: Vec<ImageStats> = (0..=100)
            .map(|i| ImageStats {
                border_mean: 0.0,
                mean: f64::from(i) / 200.0,
                std: 0.2,
                chroma: 0.0,
            })
            .collect();
        let r = domain_from_stats(&arch(), &stats, 2, 0.05, 0.04);
        assert_eq!(r.border_mean, [0.0, 0.05]);
        assert_eq!(r.mean, [0.0, 0.55]);
        assert_eq!(r.std, [0.15, 0.25]);
        assert_eq!((r.min_side, r.max_side), (12, 256));
    }

    #[test]
    fn platt_recovers_a_known_calibration() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut logits, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let x: f64 = rng.gen_range(-4.0..4.0);
            let p = sigmoid(-1.5 * x + 0.5);
            logits.push(x);
            labels.push(rng.gen_bool(p));
        }
        let c = Calibration::fit_platt(&logits, &labels).unwrap();
        assert!((c.a + 1.5).abs() < 0.1, "{c:?}");
        assert!((c.b - 0.5).abs() < 0.1, "{c:?}");
        assert!((c.probability(0.0) - sigmoid(c.b)).abs() < 1e-12);
        // Separable data still gives a finite, correctly signed slope.
        let c =
            Calibration::fit_platt(&[3.0, 2.0, -2.0, -3.0], &[false, false, true, true]).unwrap();
        assert!(c.a.is_finite() && c.a < 0.0);
        assert!(c.probability(-3.0) > 0.5 && c.probability(3.0) < 0.5);
        assert!(Calibration::fit_platt(&[1.0], &[true]).is_err());
    }

    #[test]
    fn sigmoid_is_stable() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn ranking_metrics() {
        let perfect = [0.9, 0.8, 0.2, 0.1];
        let labels = [true, true, false, false];
        assert!((average_precision(&perfect, &labels) - 1.0).abs() < 1e-12);
        assert!((roc_auc(&perfect, &labels) - 1.0).abs() < 1e-12);
        assert!((tpr_at_fpr(&perfect, &labels, 0.0) - 1.0).abs() < 1e-12);
        // One negative above one positive: AP = (1/1 + 2/3) / 2, AUC = 3/4.
        let mixed = [0.9, 0.8, 0.7, 0.1];
        let labels = [true, false, true, false];
        assert!((average_precision(&mixed, &labels) - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((roc_auc(&mixed, &labels) - 0.75).abs() < 1e-12);
        assert!((tpr_at_fpr(&mixed, &labels, 0.0) - 0.5).abs() < 1e-12);
        // All tied: AUC 1/2.
        assert!((roc_auc(&[0.5; 4], &labels) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn threshold_keeps_false_positives_at_most_the_budget() {
        let negatives: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
        let t = threshold_for_fpr(&negatives, 0.01);
        let above = negatives.iter().filter(|&&s| s >= t).count();
        assert!(above <= 10, "{above}");
        assert!(above >= 9, "{above}");
        let t = threshold_for_fpr(&[0.3; 50], 0.01);
        assert!(t > 0.3);
    }
}
