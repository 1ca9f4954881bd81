//! Enhancement (`POST /v1/enhancements`) end to end against the inversion alone.
//!
//! Starts the real app (shipped model and `[enhancement]` settings, real PostgreSQL database
//! `hallmark_bench_enhance`, fresh PKI) on a loopback port, and measures in the same run:
//! - ceiling: the inversion alone (`enhance::invert::invert` on the model, no HTTP, no signing),
//!   one picture at a time and eight in one batch, CPU seconds per picture;
//! - signed enhancements/s and p50/p99 latency at 1 and 8 concurrent clients, for each operation
//!   (inpaint of a 12x12 rectangle, restore, upscale 4x) on held-out Fashion-MNIST test images,
//!   with the `Server-Timing` stages (inference = the inversion on the model thread).
//!
//! Run: `cargo bench --bench enhance` (DATABASE_URL names the server to use); `cargo test --bench
//! enhance` runs it on the dev profile. Settings come from the environment as for `hallmark
//! serve`, e.g. `HALLMARK__ENHANCEMENT__STEPS=50`.

#[allow(dead_code)] // what this bench does not use of the shared helpers
mod common;

use std::io::Cursor;
use std::time::Instant;

use common::{load, ms, signing_service};

use hallmark::config::Settings;
use hallmark::enhance::invert::{invert, Known};
use hallmark::enhance::model_pixels;
use hallmark::gan::data::Split;
use hallmark::gan::{load_model, LoadedModel};
use hallmark::inference::threads::{self, TorchThreads};
use hallmark::store::api_keys::{self, Role};
use hallmark::Application;
use image::DynamicImage;
use reqwest::multipart::{Form, Part};
use secrecy::ExposeSecret;

const STAGES: [&str; 4] = ["inference", "encode", "sign", "store"];

/// Test pictures, never trained on.
const DATASET: &str = "/usr/share/datasets/fashion-mnist";

fn png(image: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// An operation as the route takes it: its form fields, and the upload made from a picture.
#[derive(Clone, Copy)]
enum Op {
    Inpaint,
    Restore,
    Upscale4,
}

impl Op {
    const ALL: [Self; 3] = [Self::Inpaint, Self::Restore, Self::Upscale4];

    fn name(self) -> &'static str {
        match self {
            Self::Inpaint => "inpaint 12x12",
            Self::Restore => "restore",
            Self::Upscale4 => "upscale 4x",
        }
    }

    fn fields(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Self::Inpaint => vec![("op", "inpaint"), ("rect", "10,10,12,12")],
            Self::Restore => vec![("op", "restore")],
            Self::Upscale4 => vec![("op", "upscale"), ("factor", "4")],
        }
    }

    fn upload(self, picture: &DynamicImage) -> DynamicImage {
        match self {
            Self::Upscale4 => picture.resize_exact(8, 8, image::imageops::FilterType::Triangle),
            _ => picture.clone(),
        }
    }

    fn known(self, picture: &DynamicImage) -> Known {
        let pixels = model_pixels(&self.upload(picture), 1);
        match self {
            Self::Inpaint => Known::Masked {
                pixels,
                mask: (0..32 * 32)
                    .map(|i| !((10..22).contains(&(i / 32)) && (10..22).contains(&(i % 32))))
                    .collect(),
            },
            Self::Restore => Known::All { pixels },
            Self::Upscale4 => Known::Downscaled { pixels, factor: 4 },
        }
    }
}

/// CPU seconds per picture of the inversion alone, `batch` pictures at a time.
fn inversion_alone(
    model: &LoadedModel,
    settings: &Settings,
    pictures: &[DynamicImage],
    op: Op,
    batch: usize,
) -> f64 {
    let jobs: Vec<(Known, u64)> = pictures
        .iter()
        .take(batch)
        .enumerate()
        .map(|(i, p)| (op.known(p), i as u64))
        .collect();
    let d = Some(&model.discriminator);
    invert(&model.generator, d, &jobs, &settings.enhancement).unwrap(); // warm-up
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        invert(&model.generator, d, &jobs, &settings.enhancement).unwrap();
        best = best.min(started.elapsed().as_secs_f64());
    }
    best / jobs.len() as f64
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_data_dir, settings, pool) = signing_service("hallmark_bench_enhance").await;
        let key = api_keys::create(&pool, "bench", Role::Generator).await.unwrap();
        let key = key.secret.expose_secret().to_owned();
        let pictures =
            hallmark::detect::train::real_images(DATASET.as_ref(), Split::Test, 32, 1, Some(64))
                .unwrap();

        // The inversion alone runs here with the torch threads the model thread gets.
        let threads = TorchThreads::resolve(&settings.model, threads::available_cores(), false)
            .apply()
            .intra_op;
        let e = &settings.enhancement;
        println!(
            "# Enhancement (CPU, torch threads {threads}, model {}; {} candidates, {} starts x {} steps, refinement steps restore {} / inpaint {} / upscale {})",
            settings.model.name,
            e.candidates,
            e.starts,
            e.steps,
            e.refine.restore.steps,
            e.refine.inpaint.steps,
            e.refine.upscale.steps
        );
        println!();
        let model =
            load_model(&settings.model.dir, &settings.model.name, tch::Device::Cpu).unwrap();
        let mut alone = Vec::new();
        for op in Op::ALL {
            let one = inversion_alone(&model, &settings, &pictures, op, 1);
            let eight = inversion_alone(&model, &settings, &pictures, op, 8);
            alone.push((one, eight));
        }

        let app = Application::build_with_pool(settings.clone(), pool.clone()).unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let url = format!("{base}/v1/enhancements");

        println!("| operation | clients | signed enhancements/s | p50 ms | p99 ms | inference | encode | sign | store (ms per request) | inversion alone: s/picture at batch 1, 8 | vs inversion alone at batch 8 |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (op, (one, eight)) in Op::ALL.into_iter().zip(alone) {
            let uploads: Vec<Vec<u8>> = pictures.iter().map(|p| png(&op.upload(p))).collect();
            let (url, key) = (url.clone(), key.clone());
            let request = move |client: &reqwest::Client, worker: usize, i: usize| {
                let upload = uploads[(worker * 7 + i) % uploads.len()].clone();
                let mut form = Form::new().part("image", Part::bytes(upload).file_name("in.png"));
                for (name, value) in op.fields() {
                    form = form.text(name, value);
                }
                let seed = (worker * 100_000 + i).to_string();
                client
                    .post(&url)
                    .bearer_auth(&key)
                    .multipart(form.text("seed", seed))
            };
            let request = std::sync::Arc::new(request);
            let run = |clients, requests| {
                let request = std::sync::Arc::clone(&request);
                load(clients, requests, 201, &STAGES, move |c, w, i| request(c, w, i))
            };
            run(2, 4).await; // warm-up
            for (clients, requests) in [(1, 12), (8, 48)] {
                let r = run(clients, requests).await;
                println!(
                    "| {} | {clients} | {:.2} | {:.0} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {one:.3}, {eight:.3} | {:.0}% |",
                    op.name(),
                    r.per_s,
                    ms(r.p50),
                    ms(r.p99),
                    r.stages_ms[0],
                    r.stages_ms[1],
                    r.stages_ms[2],
                    r.stages_ms[3],
                    100.0 * r.per_s * eight,
                );
            }
        }
    });
}
