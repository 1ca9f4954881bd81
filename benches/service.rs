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

use std::time::{Duration, Instant};

use hallmark::config::Settings;
use hallmark::gan::{latents_for, load_model};
use hallmark::provenance::pki::{init_pki, register_signing_key};
use hallmark::provenance::SigningIdentity;
use hallmark::store::api_keys::{self, Role};
use hallmark::{store, Application};
use secrecy::ExposeSecret;
use sqlx::migrate::MigrateDatabase;
use sqlx::PgPool;

const STAGES: [&str; 5] = ["inference", "encode", "fingerprint", "sign", "store"];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

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

struct LoadResult {
    images_per_s: f64,
    p50: Duration,
    p99: Duration,
    stages_ms: [f64; 5],
}

async fn load(url: &str, key: &str, clients: usize, requests: usize) -> LoadResult {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (client, url, key) = (client.clone(), url.to_owned(), key.to_owned());
        let share = requests / clients + usize::from(worker < requests % clients);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            let mut stages = [0.0; 5];
            for i in 0..share {
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&serde_json::json!({"count": 1, "seed": worker * 100_000 + i}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    response.status().as_u16(),
                    201,
                    "{:?}",
                    response.text().await
                );
                let timing = response.headers()["server-timing"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                response.bytes().await.unwrap();
                latencies.push(sent.elapsed());
                for part in timing.split(", ") {
                    let (name, dur) = part.split_once(";dur=").unwrap();
                    let slot = STAGES.iter().position(|s| *s == name).unwrap();
                    stages[slot] += dur.parse::<f64>().unwrap();
                }
            }
            (latencies, stages)
        }));
    }
    let mut latencies = Vec::new();
    let mut stages = [0.0; 5];
    for task in tasks {
        let (mine, their_stages) = task.await.unwrap();
        latencies.extend(mine);
        for (total, part) in stages.iter_mut().zip(their_stages) {
            *total += part;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    LoadResult {
        images_per_s: requests as f64 / elapsed,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        stages_ms: stages.map(|total| total / requests as f64),
    }
}

async fn requests_per_s(url: &str, clients: usize, requests: usize) -> f64 {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            for _ in 0..requests / clients {
                let response = client.get(&url).send().await.unwrap();
                assert!(response.status().is_success());
                response.bytes().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    requests as f64 / started.elapsed().as_secs_f64()
}

async fn fresh_database(settings: &mut Settings) -> PgPool {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| settings.database.url.expose_secret().to_owned());
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL has a database name");
    let url = format!("{server}/hallmark_bench");
    if sqlx::Postgres::database_exists(&url).await.unwrap() {
        sqlx::Postgres::drop_database(&url).await.unwrap();
    }
    sqlx::Postgres::create_database(&url).await.unwrap();
    settings.database.url = url.into();
    let pool = store::lazy_pool(&settings.database).unwrap();
    store::migrate(&pool).await.unwrap();
    pool
}

fn main() {
    let threads = tch::get_num_threads();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let data_dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::load(None).unwrap();
        settings.server.port = 0;
        settings.storage.data_dir = data_dir.path().to_owned();
        settings.model.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models").into();
        settings.model.device = "cpu".into();
        settings.api.public_rate_per_s = 1_000_000;
        settings.api.public_burst = 1_000_000;
        init_pki(&settings.storage.keys_dir(), 30).unwrap();
        let pool = fresh_database(&mut settings).await;
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
        load(&url, &key, 8, 64).await; // warm-up

        println!("# Generation service (CPU, torch threads {threads}, model {})", settings.model.name);
        println!();
        println!("raw generator forward: batch 64 {ceiling_64:.0} images/s, batch 256 {ceiling_256:.0} images/s; ceiling = the better, {ceiling:.0} images/s");
        println!();
        println!("| clients | signed images/s | vs ceiling | p50 ms | p99 ms | inference | encode | fingerprint | sign | store (ms per image) |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (clients, requests) in [(1, 100), (8, 400), (32, 800)] {
            let r = load(&url, &key, clients, requests).await;
            println!(
                "| {clients} | {:.0} | {:.0}% | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.images_per_s,
                100.0 * r.images_per_s / ceiling,
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
        let health = requests_per_s(&format!("{base}/healthz"), 8, 4000).await;
        let record = requests_per_s(&format!("{base}/v1/records/{id}"), 8, 4000).await;
        println!();
        println!(
            "look-ups (8 clients): GET /healthz {health:.0} req/s, GET /v1/records/{{id}} {record:.0} req/s ({:.0}% of /healthz)",
            100.0 * record / health
        );
    });
}
