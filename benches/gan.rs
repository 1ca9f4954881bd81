//! GAN speed: one training step (D then G, batch 64, 32x32) and generator inference (batch 1,
//! 64, 256) in Hallmark, next to the same architecture in PyTorch (benches/gan_torch.py), on the
//! same number of CPU threads.
//!
//! Run: `cargo bench --bench gan` (Makefile: `make bench`). Environment:
//! `HALLMARK_BENCH_THREADS` (default 2), `HALLMARK_BENCH_STEPS` (default 20),
//! `HALLMARK_BENCH_ROUNDS` (default 3: Hallmark and PyTorch are measured in interleaved rounds
//! and each side's best round is kept), `HALLMARK_PYTHON` (default `python3`).

use std::process::Command;
use std::time::Instant;

use hallmark::gan::adam::Ema;
use hallmark::gan::card::Loss;
use hallmark::gan::progressive::{real_at, Growth};
use hallmark::gan::train::{adam, train_step, train_step_with};
use hallmark::gan::{latents_for, ArchFamily, Architecture, GanNets, Generator};
use tch::{Device, Kind, Tensor};

const BATCHES: [usize; 3] = [1, 64, 256];

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn time<F: FnMut()>(iters: usize, mut f: F) -> f64 {
    f();
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_secs_f64() / iters as f64
}

fn main() -> anyhow::Result<()> {
    let threads = env_num("HALLMARK_BENCH_THREADS", 2);
    let steps = env_num("HALLMARK_BENCH_STEPS", 20);
    let infer_iters = 10;
    tch::set_num_threads(threads as i32);
    tch::manual_seed(0);
    let arch = Architecture {
        family: ArchFamily::Dcgan,
        image_size: 32,
        channels: 1,
        latent_dim: 64,
        g_width: 32,
        d_width: 32,
        loss: Loss::NonSaturating,
    };
    let device = Device::Cpu;
    let nets = GanNets::new(&arch, device)?;
    let mut opt_d = adam(nets.discriminator.var_store(), 2e-4)?;
    let mut opt_g = adam(nets.generator.var_store(), 2e-4)?;
    let real = Tensor::rand([64, 1, 32, 32], (Kind::Float, device)) * 2.0 - 1.0;
    let z = Tensor::randn([64, 64], (Kind::Float, device));
    for _ in 0..2 {
        train_step(&nets, &mut opt_d, &mut opt_g, &real, &z)?;
    }
    // The two sides run one after the other, so on a shared machine they can see different
    // load; with OpenMP threads spin-waiting at every barrier, an oversubscribed machine can
    // slow either side several-fold. Interleave rounds (Hallmark, then PyTorch) and keep each
    // side's best round, so both are measured under the same conditions.
    let rounds = env_num("HALLMARK_BENCH_ROUNDS", 3).max(1);
    let python = std::env::var("HALLMARK_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/gan_torch.py");
    let mut step_s = f64::INFINITY;
    let mut generate = vec![0.0_f64; BATCHES.len()];
    let mut forward = vec![0.0_f64; BATCHES.len()];
    let mut torch_rounds: Vec<serde_json::Value> = Vec::new();
    for _ in 0..rounds {
        step_s = step_s.min(time(steps, || {
            train_step(&nets, &mut opt_d, &mut opt_g, &real, &z).expect("train step");
        }));
        for (i, batch) in BATCHES.into_iter().enumerate() {
            let zb = Tensor::randn([batch as i64, 64], (Kind::Float, device));
            let raw = time(infer_iters, || {
                tch::no_grad(|| {
                    let _ = nets.generator.forward_t(&zb, false);
                });
            });
            // The library path: per-image latents from (seed, index), forward, 8-bit images.
            let full = time(infer_iters, || {
                let latents: Vec<f32> = (0..batch as u64)
                    .flat_map(|i| latents_for(1, i, 64))
                    .collect();
                let images = nets.generator.generate_flat(&latents).expect("generate");
                assert_eq!(images.len(), batch);
            });
            forward[i] = forward[i].max(batch as f64 / raw);
            generate[i] = generate[i].max(batch as f64 / full);
        }
        let output = Command::new(&python)
            .args([
                script,
                "--threads",
                &threads.to_string(),
                "--steps",
                &steps.to_string(),
                "--infer-iters",
                &infer_iters.to_string(),
            ])
            .output();
        match output {
            Ok(out) if out.status.success() => {
                if let Ok(v) = serde_json::from_slice(&out.stdout) {
                    torch_rounds.push(v);
                }
            }
            Ok(out) => {
                eprintln!(
                    "PyTorch baseline failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                break;
            }
            Err(e) => {
                eprintln!("cannot run {python}: {e}");
                break;
            }
        }
    }
    let best = |f: &dyn Fn(&serde_json::Value) -> Option<f64>| {
        torch_rounds.iter().filter_map(f).reduce(f64::max)
    };
    let torch_train = best(&|t| t["train_images_per_s"].as_f64());
    let torch_infer = |b: usize| best(&|t| t["infer_images_per_s"][b.to_string()].as_f64());

    println!(
        "GAN benchmark: DCGAN 32x32x1, latent 64, widths 32/32, CPU, {threads} thread(s), \
         best of {rounds} interleaved rounds"
    );
    println!("| measure | Hallmark (images/s) | PyTorch (images/s) | Hallmark / PyTorch |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, ours: f64, theirs: Option<f64>| {
        let (t, r) = theirs.map_or(("n/a".to_owned(), "n/a".to_owned()), |t| {
            (format!("{t:.0}"), format!("{:.2}", ours / t))
        });
        println!("| {name} | {ours:.0} | {t} | {r} |");
    };
    row(
        &format!("train step, batch 64 ({:.0} ms/step)", step_s * 1000.0),
        64.0 / step_s,
        torch_train,
    );
    for (i, batch) in BATCHES.iter().enumerate() {
        row(
            &format!("generator forward, batch {batch}"),
            forward[i],
            torch_infer(*batch),
        );
        row(
            &format!("generate() to images, batch {batch}"),
            generate[i],
            torch_infer(*batch),
        );
    }
    println!();
    println!("| batch | generate() / raw forward |");
    println!("|---:|---:|");
    for (i, batch) in BATCHES.iter().enumerate() {
        println!("| {batch} | {:.2} |", generate[i] / forward[i]);
    }
    progressive(steps, step_s)
}

/// The progressive recipe at each resolution of a 32x32 model (`hallmark train --progressive
/// --g-width 16 --d-width 16`, the CPU run of docs/model-quality.md): a training step (D with
/// R1 on one step in four, G, the moving-average update) and the served forward pass, against
/// the DCGAN step measured above. `HALLMARK_BENCH_DEVICE=cuda` runs it on a GPU (with autocast).
fn progressive(steps: usize, dcgan_step_s: f64) -> anyhow::Result<()> {
    let device = match std::env::var("HALLMARK_BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::Cuda(0),
        _ => Device::Cpu,
    };
    let autocast = device.is_cuda();
    let arch = Architecture {
        family: ArchFamily::Progressive,
        image_size: 32,
        channels: 1,
        latent_dim: 64,
        g_width: 16,
        d_width: 16,
        loss: Loss::NonSaturating,
    };
    tch::manual_seed(0);
    let nets = GanNets::new(&arch, device)?;
    let served = Generator::new(&arch, device)?;
    let mut ema = Ema::new(nets.generator.var_store(), served.var_store(), 0.999)?;
    let mut opt_d = adam(nets.discriminator.var_store(), 1e-3)?;
    let mut opt_g = adam(nets.generator.var_store(), 1e-3)?;
    let real = Tensor::rand([64, 1, 32, 32], (Kind::Float, device)) * 2.0 - 1.0;
    let z = Tensor::randn([64, 64], (Kind::Float, device));
    println!();
    println!("Progressive GAN 32x32x1, latent 64, widths 16/16, {device:?}, batch 64:");
    println!("| resolution | train step ms (R1 every 4th) | images/s | vs DCGAN step | served forward, batch 64, images/s |");
    println!("|---|---:|---:|---:|---:|");
    for level in 0..=arch.stages() {
        let growth = Growth { level, alpha: 1.0 };
        for g in [&nets.generator, &served] {
            g.set_growth(growth)?;
        }
        nets.discriminator.set_growth(growth)?;
        let real = real_at(&real, growth);
        let mut step = 0u64;
        let mut one = || {
            let r1 = if step.is_multiple_of(4) { 0.4 } else { 0.0 };
            step += 1;
            train_step_with(&nets, &mut opt_d, &mut opt_g, &real, &z, r1, autocast)
                .expect("train step");
            ema.update(1000).expect("average");
        };
        one();
        let step_s = time(steps.max(4), one);
        let forward_s = time(10, || {
            tch::no_grad(|| {
                let _ = served.forward_t(&z, false);
            });
        });
        let r = growth.resolution();
        println!(
            "| {r}x{r} | {:.0} | {:.0} | {:.2} | {:.0} |",
            step_s * 1000.0,
            64.0 / step_s,
            dcgan_step_s / step_s,
            64.0 / forward_s
        );
    }
    Ok(())
}
