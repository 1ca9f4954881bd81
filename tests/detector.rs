//! The synthetic-image detector: the shipped one scores our generated images above its
//! threshold and real Fashion-MNIST test images below it, its domain rules accept what the
//! model makes (also re-encoded, resized, cropped) and refuse colour photos and light
//! backgrounds; `train-detector` and `evaluate --detector` write what they promise.

use std::path::{Path, PathBuf};
use std::process::Command;

use hallmark::detect::augment::Transform;
use hallmark::detect::train::real_images;
use hallmark::gan::card::DetectorNetwork;
use hallmark::gan::data::Split;
use hallmark::gan::ModelCard;
use hallmark::inference::ServedModel;
use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::Device;

const MODEL: &str = "fashion-dcgan32-ema";
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
    // Each image scored once.
    let score = |images: &[DynamicImage]| -> (Vec<f64>, usize) {
        let d = detector.detect(MODEL, images).unwrap();
        assert_eq!(d.len(), images.len());
        assert!(d.iter().all(|d| !d.out_of_domain && d.model == MODEL));
        let flagged = d.iter().filter(|d| d.likely_synthetic).count();
        (d.iter().map(|d| d.probability.unwrap()).collect(), flagged)
    };
    let mean = |p: &[f64]| p.iter().sum::<f64>() / p.len() as f64;
    let ((pg, generated_flagged), (pr, real_flagged)) = (score(&generated), score(&real));
    let threshold = detector.threshold();
    let (g, r) = (mean(&pg), mean(&pr));
    assert!(g > r + 0.3, "generated {g} vs real {r}");
    assert!(r < threshold, "real {r} vs threshold {threshold}");
    // On 10,000 + 10,000 images the served detector ranks a generated image above a real one
    // 99.7% of the time (ROC-AUC 0.997), calls 0.2% of real images and 79% of generated ones
    // synthetic at its threshold (docs/detector-evaluation.txt); these 64 + 64 must agree,
    // with room for sampling (the 79% is 51 of 64, sd ~3).
    let above = pg
        .iter()
        .flat_map(|g| pr.iter().map(move |r| f64::from(u8::from(g > r))))
        .sum::<f64>()
        / (pg.len() * pr.len()) as f64;
    assert!(above > 0.97, "a generated image above a real one {above}");
    assert!(real_flagged < 3, "{real_flagged} of 64 real images flagged");
    assert!(
        generated_flagged >= 32,
        "{generated_flagged} of 64 generated images flagged"
    );
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
    // The threshold keeps the validation FPR at most 0.8% under each standard transform.
    let fpr = &training.validation_fpr_by_transform;
    assert_eq!(
        fpr.keys().collect::<Vec<_>>(),
        ["crop10%", "jpeg75", "resize0.5x"]
    );
    assert!(fpr.values().all(|f| *f <= 0.008), "{fpr:?}");
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
            // The registry study's real images beside the 60 test images: a small calibration
            // split of training images, none held out from the training split.
            "--calibration",
            "20",
            "--held-out-train",
            "0",
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
    let registry = evaluation.registry.as_ref().unwrap();
    assert_eq!(registry.recall.len(), 4, "the pHash alone, four transforms");
    let confirmed = registry.confirmed.as_ref().unwrap();
    assert_eq!(
        confirmed.recall.len(),
        hallmark::registry::study::Edit::ALL.len()
    );
    let splits = confirmed.splits.as_ref().unwrap();
    assert_eq!(
        (splits.calibration_images, splits.held_out_images),
        (20, 60)
    );
    assert_eq!(
        splits.calibration_false_matches, 0,
        "chosen on the calibration split"
    );
    assert!(stdout.contains("calibration") && stdout.contains("held out"));

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

    // Another model's images (an older generator trained on the same data) scored by this
    // detector: a study of its own, the card left alone.
    let other = models.join("fashion-dcgan32");
    std::fs::create_dir_all(&other).unwrap();
    for file in [
        "generator.safetensors",
        "discriminator.safetensors",
        "model.toml",
    ] {
        std::fs::copy(
            models_dir().join("fashion-dcgan32").join(file),
            other.join(file),
        )
        .unwrap();
    }
    let before = std::fs::read(dir.join("model.toml")).unwrap();
    let out = hallmark(
        models,
        &[
            "evaluate",
            "--detector",
            "--no-registry",
            "--images-from",
            "fashion-dcgan32",
            "--model",
            MODEL,
            "--real",
            "30",
            "--generated",
            "30",
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("30 images generated by fashion-dcgan32") && stdout.contains("crop10%"),
        "{stdout}"
    );
    assert!(dir.join("detector-roc-fashion-dcgan32.png").is_file());
    assert_eq!(std::fs::read(dir.join("model.toml")).unwrap(), before);

    // Retraining drops the old weights' detector figures but keeps the registry's (they depend
    // on the generator alone), so that `evaluate --detector --no-registry --write-card` follows.
    hallmark(
        models,
        &[
            "train-detector",
            "--model",
            MODEL,
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--validation",
            "64",
            "--real-limit",
            "256",
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    let card = ModelCard::load(&dir.join("model.toml")).unwrap();
    let kept = card.detector.unwrap().evaluation.unwrap();
    assert!(kept.detector.is_empty());
    assert_eq!(kept.registry, evaluation.registry);

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

/// `zoo train`, `train-detector` against the zoo with a family held out, and
/// `evaluate --leave-one-out`, end to end on a tiny budget; the held-out family's generators
/// never give the detector a training image.
#[test]
fn zoo_detector_and_leave_one_family_out_on_a_tiny_budget() {
    let tmp = model_copy();
    let models = tmp.path();
    let dir = models.join(MODEL);
    let zoo = models.join("zoo");
    let out = hallmark(
        models,
        &[
            "zoo",
            "train",
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--width",
            "4",
            "--latent-dim",
            "8",
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let families = ["tconv", "nearest", "pixelshuffle", "vae", "mlp"];
    for family in families {
        for stage in ["early", "late"] {
            let member = zoo.join(format!("{family}-{stage}"));
            assert!(stdout.contains(&format!("{family}-{stage}")), "{stdout}");
            for file in ["generator.safetensors", "member.toml", "samples.png"] {
                assert!(
                    member.join(file).is_file(),
                    "{}",
                    member.join(file).display()
                );
            }
            let card = hallmark::gan::zoo::MemberCard::load(&member.join("member.toml")).unwrap();
            assert_eq!(card.family.name(), family);
            assert_eq!(card.steps, if stage == "early" { 1 } else { 4 });
        }
    }
    assert!(zoo.join("zoo.png").is_file());
    let members = hallmark::gan::zoo::load_zoo(&zoo, Device::Cpu).unwrap();
    assert_eq!(members.len(), 10);
    let images = members[0].generate(3, &[0, 1, 2]).unwrap();
    assert_eq!((images.len(), images[0].width()), (3, 32));

    let train = |hold_out: &str, input: &str| {
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
                "--hold-out",
                hold_out,
                "--input",
                input,
                "--device",
                "cpu",
                "--quiet",
            ],
        );
        let card = ModelCard::load(&dir.join("model.toml")).unwrap();
        card.detector.unwrap().training.unwrap()
    };
    // Every generator but the held-out family's gives images, ours included.
    let training = train("nearest", "pixels");
    let sources: Vec<&String> = training.generated_sources.keys().collect();
    assert_eq!(training.held_out_families, ["nearest"]);
    assert!(
        sources.iter().all(|s| !s.starts_with("zoo:nearest-")),
        "{sources:?}"
    );
    assert!(training.generated_sources[&format!("own:{MODEL}")] > 0);
    for family in families.iter().filter(|f| **f != "nearest") {
        for stage in ["early", "late"] {
            assert!(training.generated_sources[&format!("zoo:{family}-{stage}")] > 0);
        }
    }
    // Holding out the model's own family holds out the model's generator too.
    let training = train("tconv", "pixels");
    assert!(training
        .generated_sources
        .keys()
        .all(|s| !s.starts_with("own:") && !s.starts_with("zoo:tconv-")));
    assert_eq!(training.generated_sources.len(), 8);

    // Back to a detector trained on everything, with a family head over all five families
    // that the served model loads (on the residual input, so that both inputs are exercised);
    // then leave one family out with that recipe.
    train("", "pixels-residual");
    let card = ModelCard::load(&dir.join("model.toml")).unwrap();
    let section = card.detector.unwrap();
    // The default network: the discriminator's shape from scratch, without spectral norm.
    assert_eq!(section.network, DetectorNetwork::Plain);
    assert_eq!(section.training.as_ref().unwrap().augmented_share, 0.5);
    let head = section.attribution.unwrap();
    assert_eq!(head.families, families);
    assert!(dir.join(&head.weights).is_file());
    let served = ServedModel::load(models, MODEL, Device::Cpu).unwrap();
    let detector = served.detector.as_ref().unwrap();
    assert!(detector.attribution().is_some());
    let images = served.model.generate(1, &[0, 1, 2]).unwrap();
    for d in detector.detect(MODEL, &images).unwrap() {
        if let Some(n) = &d.nearest_family {
            assert!(d.likely_synthetic && n.probability >= 0.6);
            assert!(families.contains(&n.family.as_str()));
        }
    }
    let out = hallmark(
        models,
        &[
            "evaluate",
            "--leave-one-out",
            "--model",
            MODEL,
            "--lofo-steps",
            "2",
            "--real",
            "40",
            "--per-generator",
            "10",
            // Two held-out detectors at a time, each on its own thread and copy of the model.
            "--jobs",
            "2",
            "--threads",
            "1",
            "--write-card",
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("mean") && stdout.contains("crop10%"),
        "{stdout}"
    );
    // The held-out detectors repeat the served detector's recipe, network and input included.
    assert!(
        stdout.contains("network plain, input pixels-residual, 50% of training images augmented"),
        "{stdout}"
    );
    let card = ModelCard::load(&dir.join("model.toml")).unwrap();
    let rows = card.detector.unwrap().leave_one_family_out;
    assert_eq!(rows.len(), families.len() * Transform::STANDARD.len());
    // In family order, whichever job finished first.
    let order: Vec<&str> = rows
        .iter()
        .step_by(Transform::STANDARD.len())
        .map(|r| r.family.as_str())
        .collect();
    assert_eq!(order, families);
    for row in &rows {
        assert!(!row.generators.is_empty());
        for generator in &row.generators {
            assert!(
                !row.trained_on.contains(generator),
                "{generator} trained the detector that held out {}",
                row.family
            );
        }
        assert!((0.0..=1.0).contains(&row.roc_auc) && row.threshold > 0.0);
        // Each generator of a family of several also gets its own figures, in order; the
        // tconv family holds our own generator, the hardest of its images to tell from real.
        let named: Vec<&String> = row.by_generator.iter().map(|g| &g.generator).collect();
        assert_eq!(named, row.generators.iter().collect::<Vec<_>>());
        assert!(row
            .by_generator
            .iter()
            .all(|g| (0.0..=1.0).contains(&g.roc_auc) && (0.0..=1.0).contains(&g.ap)));
    }
    let tconv = &rows[0];
    assert_eq!(
        tconv.generators,
        [
            format!("own:{MODEL}"),
            "zoo:tconv-early".into(),
            "zoo:tconv-late".into()
        ]
    );
    assert!(stdout.contains(&format!("own:{MODEL}")), "{stdout}");
    for family in families {
        assert!(dir.join(format!("detector-lofo-{family}.png")).is_file());
    }
}

/// `zoo train --tag --ema`: a second tier of members beside the default ones (same family,
/// other names), and for GAN families the average of the generator's weights as an `-ema`
/// member; a tag that would collide with a stage name is refused.
#[test]
fn zoo_tiers_and_averaged_members() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = tmp.path().join("zoo");
    let zoo_arg = zoo.to_str().unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "zoo",
            "train",
            "--dir",
            zoo_arg,
            "--families",
            "nearest,vae",
            "--steps",
            "8",
            "--batch-size",
            "4",
            "--width",
            "4",
            "--latent-dim",
            "8",
            "--device",
            "cpu",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_hallmark"))
            .args(&args)
            .output()
            .unwrap()
    };
    assert!(train(&[]).status.success());
    let out = train(&["--tag", "wide2", "--ema", "0.9"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let card = |name: &str| {
        hallmark::gan::zoo::MemberCard::load(&zoo.join(name).join("member.toml")).unwrap()
    };
    // The default members are still there; the tagged tier sits beside them.
    for name in ["nearest-early", "nearest-late", "vae-early", "vae-late"] {
        assert_eq!(card(name).ema_decay, None, "{name}");
    }
    let late = card("nearest-wide2-late");
    let ema = card("nearest-wide2-ema");
    assert_eq!(
        (late.family.name(), late.steps, late.ema_decay),
        ("nearest", 8, None)
    );
    assert_eq!(
        (ema.family.name(), ema.steps, ema.ema_decay),
        ("nearest", 8, Some(0.9))
    );
    assert_ne!(late.weights_sha256, ema.weights_sha256);
    assert!(zoo.join("nearest-wide2-ema/samples.png").is_file());
    // The VAE is not adversarial: no averaged member.
    assert!(zoo.join("vae-wide2-late").is_dir());
    assert!(!zoo.join("vae-wide2-ema").exists());
    let members = hallmark::gan::zoo::load_zoo(&zoo, Device::Cpu).unwrap();
    assert_eq!(members.len(), 4 + 5);
    for bad in ["late", "Wide", "a-b", ""] {
        let out = train(&["--tag", bad]);
        assert!(!out.status.success(), "--tag {bad:?} was accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("zoo tag"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The registry's confirmation thresholds ship as the values the served model's registry study
/// chose on its calibration split (`hallmark evaluate --registry --write-card`), and that study
/// judged them on at least 50,000 held-out real images. One value differs, on purpose (README,
/// "Registry match"): the study's rule pools every full-size edit, and the 0.75x copies' higher
/// scores stretch that pool's tail past 1.0, which would switch the re-enacted tier off for
/// full-size uploads; the shipped value is the same extrapolation over the 0.75x edits alone,
/// still above every calibration score of the class (0.9833) and below the pooled value.
#[test]
fn shipped_registry_thresholds_are_the_ones_the_calibration_split_chose() {
    let settings = hallmark::config::Settings::load(None).unwrap();
    let card = ModelCard::load(&models_dir().join(MODEL).join("model.toml")).unwrap();
    let confirmed = card
        .detector
        .and_then(|d| d.evaluation)
        .and_then(|e| e.registry)
        .and_then(|r| r.confirmed)
        .expect("the card holds the registry study");
    let v = &settings.verify;
    assert_eq!(
        (
            confirmed.min_reenacted_similarity_downscaled,
            confirmed.min_similarity,
            confirmed.min_similarity_downscaled,
            confirmed.align_from,
        ),
        (
            Some(v.min_reenacted_similarity_downscaled),
            v.min_similarity,
            v.min_similarity_downscaled,
            Some(v.align_from),
        )
    );
    let pooled = confirmed.min_reenacted_similarity.unwrap();
    assert!(
        v.min_reenacted_similarity > 0.9833 && v.min_reenacted_similarity < pooled,
        "{} against the pooled {pooled}",
        v.min_reenacted_similarity
    );
    let splits = confirmed.splits.expect("calibration and held-out splits");
    assert!(splits.held_out_images >= 50_000, "{splits:?}");
    assert_eq!(splits.calibration_false_matches, 0);
}
