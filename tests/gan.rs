//! GAN library behaviour on tiny models: training, save/load, determinism, datasets, bad files.

use std::sync::atomic::AtomicBool;

use hallmark::gan::data::Dataset;
use hallmark::gan::train::{adam, train, train_step, TrainConfig};
use hallmark::gan::{
    latents_for, load_model, Architecture, Discriminator, GanError, GanNets, Generator, ModelCard,
    DISCRIMINATOR_FILE, GENERATOR_FILE,
};
use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage};
use tch::{Device, Kind, Tensor};

fn tiny(size: u32, channels: u32) -> Architecture {
    Architecture {
        family: "dcgan".into(),
        image_size: size,
        channels,
        latent_dim: 8,
        g_width: 4,
        d_width: 8,
        loss: "non-saturating".into(),
    }
}

/// Writes `n` simple 16x16 grey images (a bright square at varying places) into `dir`.
fn write_fixtures(dir: &std::path::Path, n: u32) {
    for i in 0..n {
        let image = GrayImage::from_fn(16, 16, |x, y| {
            let inside = (x + i) % 16 < 8 && (y + 2 * i) % 16 < 8;
            Luma([if inside { 230 } else { 20 }])
        });
        image.save(dir.join(format!("img{i:02}.png"))).unwrap();
    }
}

fn config(arch: &Architecture, steps: u64) -> TrainConfig {
    TrainConfig {
        name: "tiny".into(),
        architecture: arch.clone(),
        steps,
        batch_size: 8,
        learning_rate: 2e-3,
        seed: 3,
        checkpoint_every: 2,
        resume: false,
        progress: false,
    }
}

#[test]
fn training_steps_lower_the_discriminator_loss() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 12);
    let arch = tiny(16, 1);
    let data = Dataset::image_folder(dir.path(), 16, 1).unwrap();
    tch::manual_seed(11);
    let nets = GanNets::new(&arch, Device::Cpu).unwrap();
    let mut opt_d = adam(nets.discriminator.var_store(), 2e-3).unwrap();
    let mut opt_g = adam(nets.generator.var_store(), 2e-4).unwrap();
    let indices: Vec<usize> = (0..12).collect();
    let real = data.batch(&indices, Device::Cpu).unwrap();
    let z = Tensor::randn([12, 8], (Kind::Float, Device::Cpu));
    let (first, _) = train_step(&nets, &mut opt_d, &mut opt_g, &real, &z).unwrap();
    let mut last = first;
    for _ in 0..15 {
        last = train_step(&nets, &mut opt_d, &mut opt_g, &real, &z)
            .unwrap()
            .0;
    }
    assert!(first.is_finite() && last.is_finite());
    assert!(last < first, "D loss went from {first} to {last}");
}

#[test]
fn save_and_load_round_trip_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let arch = tiny(32, 3);
    tch::manual_seed(5);
    let nets = GanNets::new(&arch, Device::Cpu).unwrap();
    // One training-mode pass moves batch-norm statistics and power-iteration vectors.
    let z = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
    let x = nets.generator.forward_t(&z, true);
    let _ = nets.discriminator.forward_t(&x, true);
    let g_path = dir.path().join(GENERATOR_FILE);
    let d_path = dir.path().join(DISCRIMINATOR_FILE);
    nets.generator.save(&g_path).unwrap();
    nets.discriminator.save(&d_path).unwrap();
    let g = Generator::load(&arch, Device::Cpu, &g_path).unwrap();
    let d = Discriminator::load(&arch, Device::Cpu, &d_path).unwrap();
    for (a, b) in [
        (nets.generator.var_store(), g.var_store()),
        (nets.discriminator.var_store(), d.var_store()),
    ] {
        let (va, vb) = (a.variables(), b.variables());
        assert_eq!(va.len(), vb.len());
        for (name, t) in &va {
            assert!(t.equal(&vb[name]), "{name} differs after loading");
        }
    }
    let latents: Vec<Vec<f32>> = (0..3).map(|i| latents_for(9, i, 8)).collect();
    let before = nets.generator.generate(&latents).unwrap();
    let after = g.generate(&latents).unwrap();
    assert_eq!(before, after);
    let input = hallmark::gan::images_to_input(&before, &arch);
    assert_eq!(
        nets.discriminator.logits(&input).unwrap(),
        d.logits(&input).unwrap()
    );
}

#[test]
fn same_seed_same_pixels() {
    let arch = tiny(32, 1);
    let nets = GanNets::new(&arch, Device::Cpu).unwrap();
    let latents: Vec<Vec<f32>> = (0..4).map(|i| latents_for(42, i, 8)).collect();
    let a = nets.generator.generate(&latents).unwrap();
    let b = nets.generator.generate(&latents).unwrap();
    assert_eq!(a, b);
    let other: Vec<Vec<f32>> = (0..4).map(|i| latents_for(43, i, 8)).collect();
    assert_ne!(a, nets.generator.generate(&other).unwrap());
    for image in &a {
        assert_eq!((image.width(), image.height()), (32, 32));
        assert!(matches!(image, DynamicImage::ImageLuma8(_)));
    }
}

#[test]
fn training_is_reproducible_by_seed_and_resumable() {
    let data_dir = tempfile::tempdir().unwrap();
    write_fixtures(data_dir.path(), 10);
    let arch = tiny(16, 1);
    let data = Dataset::open(data_dir.path(), 16, 1).unwrap();
    let stop = AtomicBool::new(false);
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let out = tempfile::tempdir().unwrap();
            let report = train(&data, out.path(), &config(&arch, 4), Device::Cpu, &stop).unwrap();
            assert_eq!(report.steps, 4);
            out
        })
        .collect();
    let read = |d: &tempfile::TempDir| std::fs::read(d.path().join(GENERATOR_FILE)).unwrap();
    assert_eq!(read(&runs[0]), read(&runs[1]));
    for file in [
        "model.toml",
        "samples.png",
        "loss.png",
        "samples/step-000002.png",
    ] {
        assert!(runs[0].path().join(file).is_file(), "{file} missing");
    }
    // A second run on the same directory needs --resume, and then continues.
    let again = train(&data, runs[0].path(), &config(&arch, 6), Device::Cpu, &stop);
    assert!(matches!(again, Err(GanError::Invalid(_))));
    let mut resume = config(&arch, 6);
    resume.resume = true;
    let report = train(&data, runs[0].path(), &resume, Device::Cpu, &stop).unwrap();
    assert_eq!(report.steps, 6);
    let card = ModelCard::load(&runs[0].path().join("model.toml")).unwrap();
    assert_eq!(card.training.steps, 6);
}

#[test]
fn image_folder_loads_nested_files_and_counts_the_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b");
    std::fs::create_dir_all(&nested).unwrap();
    RgbImage::from_pixel(40, 20, Rgb([200, 10, 10]))
        .save(dir.path().join("wide.png"))
        .unwrap();
    RgbImage::from_pixel(20, 30, Rgb([10, 200, 10]))
        .save(nested.join("tall.jpg"))
        .unwrap();
    RgbImage::from_pixel(8, 8, Rgb([10, 10, 200]))
        .save(nested.join("small.webp"))
        .unwrap();
    std::fs::write(dir.path().join("broken.png"), b"\x89PNG not really").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
    let data = Dataset::image_folder(dir.path(), 16, 3).unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data.skipped, 1);
    let batch = data.batch(&[0, 1, 2], Device::Cpu).unwrap();
    assert_eq!(batch.size(), [3, 3, 16, 16]);
    assert!(batch.max().double_value(&[]) <= 1.0 && batch.min().double_value(&[]) >= -1.0);

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("broken.jpg"), b"nope").unwrap();
    let error = Dataset::image_folder(empty.path(), 16, 3)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&empty.path().display().to_string()),
        "{error}"
    );
    assert!(error.contains("1 unreadable"), "{error}");
    let missing = empty.path().join("absent");
    let error = Dataset::open(&missing, 16, 3).unwrap_err().to_string();
    assert!(error.contains("absent"), "{error}");
}

#[test]
fn bad_model_files_are_clear_errors() {
    let models = tempfile::tempdir().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    write_fixtures(data_dir.path(), 4);
    let data = Dataset::open(data_dir.path(), 16, 1).unwrap();
    let arch = tiny(16, 1);
    let dir = models.path().join("m");
    train(
        &data,
        &dir,
        &config(&arch, 1),
        Device::Cpu,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(load_model(models.path(), "m", Device::Cpu).is_ok());

    let error = load_model(models.path(), "nope", Device::Cpu).unwrap_err();
    assert!(matches!(error, GanError::UnknownModel { .. }));
    assert!(error.to_string().contains("available: m"), "{error}");
    assert!(load_model(models.path(), "../m", Device::Cpu).is_err());

    // A card that does not match the weights.
    let card_path = dir.join("model.toml");
    let card = std::fs::read_to_string(&card_path).unwrap();
    std::fs::write(&card_path, card.replace("g_width = 4", "g_width = 8")).unwrap();
    let error = load_model(models.path(), "m", Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(GENERATOR_FILE) && error.contains("shape"),
        "{error}"
    );
    std::fs::write(&card_path, "name = 3").unwrap();
    let error = load_model(models.path(), "m", Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(error.contains("model.toml"), "{error}");
    std::fs::write(&card_path, &card).unwrap();

    // Corrupt and missing weights.
    std::fs::write(dir.join(DISCRIMINATOR_FILE), b"garbage").unwrap();
    let error = load_model(models.path(), "m", Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(error.contains(DISCRIMINATOR_FILE), "{error}");
    std::fs::remove_file(dir.join(GENERATOR_FILE)).unwrap();
    let error = load_model(models.path(), "m", Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(error.contains(GENERATOR_FILE), "{error}");
}
