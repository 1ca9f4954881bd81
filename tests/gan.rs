//! GAN library behaviour on tiny models: training, save/load, determinism, datasets, bad files.

use std::sync::atomic::AtomicBool;

use hallmark::gan::card::{ArchFamily, Loss};
use hallmark::gan::data::{Dataset, Split};
use hallmark::gan::progressive::Schedule;
use hallmark::gan::train::{adam, train, train_step, TrainConfig};
use hallmark::gan::{
    latents_for, load_model, Architecture, Discriminator, GanError, GanNets, Generator, ModelCard,
    DISCRIMINATOR_FILE, GENERATOR_FILE, OPTIMIZER_D_FILE, OPTIMIZER_G_FILE, TRAINED_GENERATOR_FILE,
};
use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage};
use tch::{Device, Kind, Tensor};

fn tiny(size: u32, channels: u32) -> Architecture {
    Architecture {
        family: ArchFamily::Dcgan,
        image_size: size,
        channels,
        latent_dim: 8,
        g_width: 4,
        d_width: 8,
        loss: Loss::NonSaturating,
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
        batch_size: 8,
        learning_rate: 2e-3,
        seed: 3,
        checkpoint_every: 2,
        ema_decay: None,
        ..TrainConfig::new("tiny", arch.clone(), steps)
    }
}

fn progressive(size: u32, channels: u32) -> Architecture {
    Architecture {
        family: ArchFamily::Progressive,
        ..tiny(size, channels)
    }
}

/// Every file of a model directory that training state lives in.
fn checkpoint_files(dir: &std::path::Path) -> Vec<(String, String)> {
    [
        GENERATOR_FILE,
        DISCRIMINATOR_FILE,
        TRAINED_GENERATOR_FILE,
        OPTIMIZER_G_FILE,
        OPTIMIZER_D_FILE,
    ]
    .into_iter()
    .map(|name| {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        (
            name.to_owned(),
            hex::encode(hallmark::fingerprint::sha256(&bytes)),
        )
    })
    .collect()
}

/// Progressive growing through two fade-ins (4x4 → 8x8 → 16x16), stopped in the middle of the
/// second, then resumed: the resumed run goes on at the same alpha with the same optimiser
/// moments and moving average, and ends bit for bit where an uninterrupted run ends. Resuming
/// without the optimiser state does not (so the comparison can fail).
#[test]
fn progressive_training_resumes_mid_fade_as_if_never_stopped() {
    let data_dir = tempfile::tempdir().unwrap();
    write_fixtures(data_dir.path(), 10);
    let data = Dataset::open(data_dir.path(), 16, 1).unwrap();
    let stop = AtomicBool::new(false);
    let schedule = Schedule {
        levels: 3,
        stage_steps: 2,
        fade_steps: 3,
    };
    let run_config = |steps| TrainConfig {
        schedule: Some(schedule),
        ema_decay: Some(0.9),
        r1_gamma: 0.1,
        checkpoint_every: 100,
        learning_rate: 1e-3,
        ..config(&progressive(16, 1), steps)
    };
    // 12 steps: 4x4 (2), 8x8 fade-in (3) and stable (2), 16x16 fade-in (3) and stable (2).
    assert_eq!(schedule.ramp_steps(), 12);
    let whole = tempfile::tempdir().unwrap();
    let report = train(&data, whole.path(), &run_config(12), Device::Cpu, &stop).unwrap();
    assert_eq!(report.growth, Some(schedule.at(11)));
    assert_eq!(report.growth.unwrap().alpha, 1.0);
    for stage in ["004x004", "008x008", "016x016"] {
        let grid = whole.path().join(format!("samples/stage-{stage}.png"));
        assert!(grid.is_file(), "{} missing", grid.display());
    }
    let card = ModelCard::load(&whole.path().join("model.toml")).unwrap();
    assert_eq!(card.architecture.family, ArchFamily::Progressive);
    assert_eq!(
        (card.training.stage_steps, card.training.fade_steps),
        (Some(2), Some(3))
    );
    assert_eq!(card.training.ema_decay, Some(0.9));

    let mut stopped_runs = Vec::new();
    for keep_optimiser in [true, false] {
        let root = tempfile::tempdir().unwrap();
        let part = root.path().join("m");
        // Stop after step 9 of 12: the 16x16 fade-in has run 2 of its 3 steps.
        let report = train(&data, part.as_path(), &run_config(9), Device::Cpu, &stop).unwrap();
        let growth = report.growth.unwrap();
        assert_eq!((growth.level, growth.alpha), (2, 0.5), "stopped mid-fade");
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(part.as_path().join("train_state.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(state["growth"], serde_json::json!([2, 0.5]));
        // The checkpoint serves as it was trained: 16x16 images, half faded in.
        let served = load_model(root.path(), "m", Device::Cpu).unwrap();
        assert_eq!(served.generator.growth().unwrap().alpha, 0.5);
        let images = served.generate(1, &[0, 1]).unwrap();
        assert_eq!((images[0].width(), images[0].height()), (16, 16));
        if !keep_optimiser {
            std::fs::remove_file(part.as_path().join(OPTIMIZER_G_FILE)).unwrap();
            std::fs::remove_file(part.as_path().join(OPTIMIZER_D_FILE)).unwrap();
        }
        let resume = TrainConfig {
            resume: true,
            ..run_config(12)
        };
        let report = train(&data, part.as_path(), &resume, Device::Cpu, &stop).unwrap();
        assert_eq!(report.steps, 12);
        stopped_runs.push((root, part));
    }
    let expected = checkpoint_files(whole.path());
    assert_eq!(
        checkpoint_files(&stopped_runs[0].1),
        expected,
        "the resumed run ended elsewhere than the uninterrupted one"
    );
    let without = checkpoint_files(&stopped_runs[1].1);
    assert_ne!(
        without[..2],
        expected[..2],
        "forgetting Adam's moments made no difference: the comparison cannot fail"
    );
}

/// With a moving average the served generator is the average, the trained one is kept for
/// `--resume`, and a DCGAN run resumed mid-way also ends where an uninterrupted one does.
#[test]
fn the_moving_average_is_served_and_a_dcgan_resumes_exactly() {
    let data_dir = tempfile::tempdir().unwrap();
    write_fixtures(data_dir.path(), 10);
    let data = Dataset::open(data_dir.path(), 16, 1).unwrap();
    let stop = AtomicBool::new(false);
    let with_ema = |steps| TrainConfig {
        ema_decay: Some(0.5),
        checkpoint_every: 100,
        ..config(&tiny(16, 1), steps)
    };
    let whole = tempfile::tempdir().unwrap();
    train(&data, whole.path(), &with_ema(6), Device::Cpu, &stop).unwrap();
    let files = checkpoint_files(whole.path());
    assert_ne!(
        files[0].1, files[2].1,
        "the served weights are the trained ones"
    );
    let part = tempfile::tempdir().unwrap();
    train(&data, part.path(), &with_ema(3), Device::Cpu, &stop).unwrap();
    let resume = TrainConfig {
        resume: true,
        ..with_ema(6)
    };
    train(&data, part.path(), &resume, Device::Cpu, &stop).unwrap();
    assert_eq!(checkpoint_files(part.path()), files);
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
    assert!(matches!(again, Err(GanError::Setting(_))));
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

#[test]
fn an_image_folder_splits_every_tenth_image_into_the_test_split() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), 25);
    let all = Dataset::image_folder(dir.path(), 16, 1).unwrap();
    let train = Dataset::split(dir.path(), Split::Train, 16, 1).unwrap();
    let test = Dataset::split(dir.path(), Split::Test, 16, 1).unwrap();
    assert_eq!((train.len(), test.len()), (23, 2));
    assert_eq!(test.image_bytes(0), all.image_bytes(9));
    assert_eq!(test.image_bytes(1), all.image_bytes(19));
    assert_eq!(train.image_bytes(9), all.image_bytes(10));
    let few = tempfile::tempdir().unwrap();
    write_fixtures(few.path(), 9);
    let error = Dataset::split(few.path(), Split::Test, 16, 1)
        .unwrap_err()
        .to_string();
    assert!(error.contains("at least 10"), "{error}");
}
