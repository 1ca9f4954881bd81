//! The synthetic-image detector: the shipped one scores our generated images above its
//! threshold and real Fashion-MNIST test images below it, its domain rules accept what the
//! model makes (also re-encoded, resized, cropped) and refuse colour photos and light
//! backgrounds; `train-detector` and `evaluate --detector` write what they promise.

use std::path::{Path, PathBuf};
use std::process::Command;

use hallmark::detect::augment::Transform;
use hallmark::detect::train::real_images;
use hallmark::gan::data::Split;
use hallmark::gan::ModelCard;
use hallmark::inference::ServedModel;
use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::Device;

const MODEL: &str = "fashion-dcgan32";
const DATASET: &str = "/usr/share/datasets/fashion-mnist";

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

#[test]
fn shipped_detector_separates_generated_from_real_images() {
    let model = ServedModel::load(&models_dir(), MODEL, Device::Cpu).unwrap();
    let detector = model
        .detector
        .as_ref()
        .expect("the shipped model has a detector");
    let generated = model
        .model
        .generate(987_654, &(0..64).collect::<Vec<_>>())
        .unwrap();
    let real = real_images(Path::new(DATASET), Split::Test, 32, 1, Some(64)).unwrap();
    let mean = |images: &[DynamicImage]| -> f64 {
        let d = detector.detect(MODEL, images).unwrap();
        assert_eq!(d.len(), images.len());
        assert!(d.iter().all(|d| !d.out_of_domain && d.model == MODEL));
        d.iter().map(|d| d.probability.unwrap()).sum::<f64>() / d.len() as f64
    };
    let threshold = detector.threshold();
    let (g, r) = (mean(&generated), mean(&real));
    assert!(g > threshold, "generated {g} vs threshold {threshold}");
    assert!(r < threshold, "real {r} vs threshold {threshold}");
    // Most individual images land on the right side too.
    let called = detector.detect(MODEL, &generated).unwrap();
    assert!(called.iter().filter(|d| d.likely_synthetic).count() > 48);
    let called = detector.detect(MODEL, &real).unwrap();
    assert!(called.iter().filter(|d| d.likely_synthetic).count() < 8);
}

#[test]
fn shipped_domain_rules_accept_the_models_images_and_refuse_others() {
    let model = ServedModel::load(&models_dir(), MODEL, Device::Cpu).unwrap();
    let detector = model.detector.as_ref().unwrap();
    let mut images = model
        .model
        .generate(4242, &(0..16).collect::<Vec<_>>())
        .unwrap();
    images.extend(real_images(Path::new(DATASET), Split::Test, 32, 1, Some(16)).unwrap());
    // The 28x28 original of a Fashion-MNIST image (the dataset pads it to 32x32).
    images.push(images[16].crop_imm(2, 2, 28, 28));
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for image in images.clone() {
        for t in Transform::STANDARD {
            let variant = t.apply(&image, &mut rng);
            assert_eq!(
                detector.out_of_domain(&variant),
                None,
                "{} of a {}x{} image",
                t.name(),
                image.width(),
                image.height()
            );
        }
    }
    let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(64, 48, |x, y| {
        Rgb([(x * 4) as u8, (y * 5) as u8, 255 - (x * 3) as u8])
    }));
    let white = DynamicImage::ImageLuma8(GrayImage::from_fn(32, 32, |x, y| {
        let inside = (8..24).contains(&x) && (6..26).contains(&y);
        Luma([if inside { 60 } else { 250 }])
    }));
    let tiny = DynamicImage::ImageLuma8(GrayImage::new(6, 6));
    let huge = DynamicImage::ImageLuma8(GrayImage::new(1024, 1024));
    let d = detector
        .detect(MODEL, &[photo, white, tiny, huge, images[0].clone()])
        .unwrap();
    assert_eq!(
        d[0].out_of_domain_reason.as_deref(),
        Some("colour image; the model makes grey images")
    );
    for d in &d[..4] {
        assert!(d.out_of_domain && d.probability.is_none() && !d.likely_synthetic);
        assert!(d.out_of_domain_reason.is_some());
    }
    assert!(d[1]
        .out_of_domain_reason
        .as_ref()
        .unwrap()
        .contains("border"));
    assert!(!d[4].out_of_domain && d[4].probability.is_some());
}

/// A copy of the shipped model without its detector, in a temporary models directory.
fn model_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(MODEL);
    std::fs::create_dir_all(&dir).unwrap();
    let src = models_dir().join(MODEL);
    for file in ["generator.safetensors", "discriminator.safetensors"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    let mut card = ModelCard::load(&src.join("model.toml")).unwrap();
    card.detector = None;
    card.save(&dir.join("model.toml")).unwrap();
    tmp
}

fn hallmark(models: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_hallmark"))
        .args(args)
        .env("HALLMARK__MODEL__DIR", models)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hallmark {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn train_detector_then_evaluate_on_a_tiny_run() {
    let tmp = model_copy();
    let models = tmp.path();
    let dir = models.join(MODEL);
    assert!(ServedModel::load(models, MODEL, Device::Cpu)
        .unwrap()
        .detector
        .is_none());
    hallmark(
        models,
        &[
            "train-detector",
            "--model",
            MODEL,
            "--steps",
            "3",
            "--batch-size",
            "8",
            "--validation",
            "64",
            "--real-limit",
            "256",
            "--eval-every",
            "2",
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    assert!(dir.join("detector.safetensors").is_file());
    assert!(dir.join("detector-training.png").is_file());
    // The discriminator is left alone.
    assert_eq!(
        std::fs::read(dir.join("discriminator.safetensors")).unwrap(),
        std::fs::read(models_dir().join(MODEL).join("discriminator.safetensors")).unwrap()
    );
    let model = ServedModel::load(models, MODEL, Device::Cpu).unwrap();
    let detector = model.detector.as_ref().expect("a detector after training");
    let card = detector.card();
    assert!(card.threshold > 0.0 && card.threshold < 1.0);
    let training = card.training.as_ref().unwrap();
    assert_eq!((training.steps, training.real_validation_images), (3, 64));
    let images = model.model.generate(1, &[0, 1]).unwrap();
    assert_eq!(detector.detect(MODEL, &images).unwrap().len(), 2);

    let out = hallmark(
        models,
        &[
            "evaluate",
            "--detector",
            "--model",
            MODEL,
            "--real",
            "60",
            "--generated",
            "60",
            "--write-card",
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for word in [
        "jpeg75",
        "resize0.5x",
        "crop10%",
        "ROC-AUC",
        "false matches",
    ] {
        assert!(stdout.contains(word), "{word} missing in:\n{stdout}");
    }
    assert!(dir.join("detector-roc.png").is_file());
    let card = ModelCard::load(&dir.join("model.toml")).unwrap();
    let evaluation = card.detector.unwrap().evaluation.unwrap();
    assert_eq!(evaluation.detector.len(), 4);
    assert_eq!(
        (evaluation.real_images, evaluation.generated_images),
        (60, 60)
    );
    assert_eq!(evaluation.registry.recall.len(), 4);

    // The detector alone: new detector figures, the registry figures kept.
    let out = hallmark(
        models,
        &[
            "evaluate",
            "--detector",
            "--no-registry",
            "--model",
            MODEL,
            "--real",
            "40",
            "--generated",
            "40",
            "--write-card",
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("crop10%") && !stdout.contains("false matches"));
    let card = ModelCard::load(&dir.join("model.toml")).unwrap();
    let detector_only = card.detector.unwrap().evaluation.unwrap();
    assert_eq!(detector_only.real_images, 40);
    assert_eq!(detector_only.detector.len(), 4);
    assert_eq!(detector_only.registry, evaluation.registry);

    // The detector records the generator it was trained against; with other generator
    // weights it is stale and refused.
    let mut card = ModelCard::load(&dir.join("model.toml")).unwrap();
    let section = card.detector.as_mut().unwrap();
    let recorded = section.generator_sha256.clone().unwrap();
    assert_eq!(
        recorded,
        hex::encode(hallmark::fingerprint::sha256(
            &std::fs::read(dir.join("generator.safetensors")).unwrap()
        ))
    );
    section.generator_sha256 = Some("0".repeat(64));
    card.save(&dir.join("model.toml")).unwrap();
    let error = ServedModel::load(models, MODEL, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(error.contains("stale"), "{error}");
    card.detector.as_mut().unwrap().generator_sha256 = Some(recorded);
    card.save(&dir.join("model.toml")).unwrap();
    assert!(ServedModel::load(models, MODEL, Device::Cpu)
        .unwrap()
        .detector
        .is_some());

    // Weights that the card names but that are gone: an error naming the file.
    std::fs::remove_file(dir.join("detector.safetensors")).unwrap();
    let error = ServedModel::load(models, MODEL, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(error.contains("detector.safetensors"), "{error}");
}
