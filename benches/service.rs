//! End-to-end throughput of the generation service against its own ceiling.
//!
//! Starts the real app (shipped model, real PostgreSQL database `hallmark_bench`, fresh PKI) on a
//! loopback port, then drives it with concurrent HTTP clients from this process:
//! - ceiling: the raw generator forward pass (batch 64 and 256) on the same machine, same run;
//! - signed images/s and p50/p99 latency at 1, 8 and 32 concurrent clients (count 1, PNG);
//! - the per-stage cost from the `Server-Timing` header (inference, encode, fingerprint, sign, store);
//! - record look-ups per second beside `/healthz`.
//!
//! Run: `make bench` or `cargo bench --bench service` (DATABASE_URL names the server to use).

mod common;

use std::time::Instant;

use common::{fresh_database, get_per_s, load, ms};

use hallmark::config::Settings;
use hallmark::gan::{latents_for, load_model};
use hallmark::provenance::SigningIdentity;
use hallmark::store::api_keys::{self, Role};
use hallmark::store::signing_keys::register as register_signing_key;
use hallmark::Application;
use secrecy::ExposeSecret;

const STAGES: [&str; 5] = ["inference", "encode", "fingerprint", "sign", "store"];

/// The generator alone: images/s of one forward pass at `batch`, best of several runs.
fn raw_forward(settings: &Settings, batch: usize) -> f64 {
    let model = load_model(&settings.model.dir, &settings.model.name, tch::Device::Cpu).unwrap();
    let dim = model.latent_dim();
    let latents: Vec<f32> = (0..batch as u64)
        .flat_map(|i| latents_for(1, i, dim))
        .collect();
    model.generator.generate_flat(&latents).unwrap(); // warm-up
    let mut best = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        model.generator.generate_flat(&latents).unwrap();
        best = best.min(started.elapsed().as_secs_f64());
    }
    batch as f64 / best
}

fn main() {
    let threads = tch::get_num_threads();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let data_dir = tempfile::tempdir().unwrap();
        let mut settings = common::settings(data_dir.path());
        settings.api.public_rate_per_s = 1_000_000;
        settings.api.public_burst = 1_000_000;
        let pool = fresh_database(&mut settings, "hallmark_bench").await;
        let identity = SigningIdentity::load(&settings).unwrap();
        register_signing_key(&pool, &identity).await.unwrap();
        let key = api_keys::create(&pool, "bench", Role::Generator).await.unwrap();
        let key = key.secret.expose_secret().to_owned();

        let ceiling_64 = raw_forward(&settings, 64);
        let ceiling_256 = raw_forward(&settings, 256);
        let ceiling = ceiling_64.max(ceiling_256);

        let app = Application::build_with_pool(settings.clone(), pool.clone()).unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let url = format!("{base}/v1/generations");
        let generate = move |client: &reqwest::Client, worker: usize, i: usize| {
            client
                .post(&url)
                .bearer_auth(&key)
                .json(&serde_json::json!({"count": 1, "seed": worker * 100_000 + i}))
        };
        let generate = std::sync::Arc::new(generate);
        let run = |clients, requests| {
            let generate = std::sync::Arc::clone(&generate);
            load(clients, requests, 201, &STAGES, move |c, w, i| generate(c, w, i))
        };
        run(8, 64).await; // warm-up

        println!("# Generation service (CPU, torch threads {threads}, model {})", settings.model.name);
        println!();
        println!("raw generator forward: batch 64 {ceiling_64:.0} images/s, batch 256 {ceiling_256:.0} images/s; ceiling = the better, {ceiling:.0} images/s");
        println!();
        println!("| clients | signed images/s | vs ceiling | p50 ms | p99 ms | inference | encode | fingerprint | sign | store (ms per image) |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (clients, requests) in [(1, 100), (8, 400), (32, 800)] {
            let r = run(clients, requests).await;
            println!(
                "| {clients} | {:.0} | {:.0}% | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.per_s,
                100.0 * r.per_s / ceiling,
                ms(r.p50),
                ms(r.p99),
                r.stages_ms[0],
                r.stages_ms[1],
                r.stages_ms[2],
                r.stages_ms[3],
                r.stages_ms[4],
            );
        }
        let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM records LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
        let health = get_per_s(&format!("{base}/healthz"), 8, 4000).await;
        let record = get_per_s(&format!("{base}/v1/records/{id}"), 8, 4000).await;
        println!();
        println!(
            "look-ups (8 clients): GET /healthz {health:.0} req/s, GET /v1/records/{{id}} {record:.0} req/s ({:.0}% of /healthz)",
            100.0 * record / health
        );
    });
}
