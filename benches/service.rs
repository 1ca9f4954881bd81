//! End-to-end throughput of the generation service against its own ceiling.
//!
//! Starts the real app (shipped model, real PostgreSQL database `hallmark_bench`, fresh PKI) on a
//! loopback port, then drives it with concurrent HTTP clients from this process:
//! - ceiling: the raw generator forward pass (batch 64 and 256) on the same machine, same run;
//! - signed images/s and p50/p99 latency at 1, 8 and 32 concurrent clients (count 1, PNG);
//! - the per-stage cost from the `Server-Timing` header (inference, encode, fingerprint, sign, store,
//!   and store's two parts: writing the blobs, and waiting for and committing a group transaction);
//! - records per group commit (one PostgreSQL transaction), from `/metrics`;
//! - record look-ups per second beside `/healthz`.
//!
//! Run: `make bench` or `cargo bench --bench service` (DATABASE_URL names the server to use);
//! `cargo test --bench service` runs it on the dev profile (dependencies at opt-level 2), without
//! a release build. Settings come from the environment as for `hallmark serve`, e.g.
//! `HALLMARK__GENERATION__MAX_GROUP=1` (one transaction per request, no group commit). For the
//! investigation of what the service's throughput depends on, besides:
//! - `OMP_NUM_THREADS=1`: torch's intra-op threads (default: one per core);
//! - `BENCH_LOG=1`: install the service's log subscriber (`log.level`, e.g.
//!   `HALLMARK__LOG__LEVEL=warn`; logs go to stderr), as `hallmark serve` does; off by default;
//! - `BENCH_DATABASE=name`: the database to (re)create instead of `hallmark_bench`;
//! - `BENCH_SYNCHRONOUS_COMMIT=off`: PostgreSQL commits without waiting for the WAL flush (on the
//!   bench's own database only), to measure what the fsync costs; never a setting to serve with.

#[allow(dead_code)] // what this bench does not use of the shared helpers
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

const STAGES: [&str; 7] = [
    "inference",
    "encode",
    "fingerprint",
    "sign",
    "store",
    "store-blobs",
    "store-commit",
];

/// The `_sum` and `_count` of `hallmark_commit_group_size` in `GET /metrics` (records committed
/// in groups, groups).
async fn group_totals(base: &str) -> (f64, f64) {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("hallmark_commit_group_size_sum "),
        value("hallmark_commit_group_size_count "),
    )
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
        if std::env::var_os("BENCH_LOG").is_some() {
            hallmark::telemetry::init(&settings.log);
        }
        // Another name keeps runs of several people on one PostgreSQL apart.
        let database =
            std::env::var("BENCH_DATABASE").unwrap_or_else(|_| "hallmark_bench".to_owned());
        let mut pool = fresh_database(&mut settings, &database).await;
        let synchronous_commit = std::env::var("BENCH_SYNCHRONOUS_COMMIT").ok();
        if let Some(value) = &synchronous_commit {
            assert!(["on", "off"].contains(&value.as_str()), "on or off");
            sqlx::query(&format!(
                "ALTER DATABASE \"{database}\" SET synchronous_commit = {value}"
            ))
            .execute(&pool)
            .await
            .unwrap();
            // New sessions take the database's setting.
            pool.close().await;
            pool = hallmark::store::lazy_pool(&settings.database).unwrap();
        }
        let identity = SigningIdentity::load(&settings).unwrap();
        register_signing_key(&pool, &identity).await.unwrap();
        let key = api_keys::create(&pool, "bench", Role::Generator).await.unwrap();
        let key = key.secret.expose_secret().to_owned();

        let ceiling_64 = raw_forward(&settings, 64);
        let ceiling_256 = raw_forward(&settings, 256);
        let ceiling = ceiling_64.max(ceiling_256);

        let app = Application::build_with_pool(settings.clone(), pool.clone()).unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_base = format!(
            "http://127.0.0.1:{}",
            app.metrics_port().expect("a metrics listener")
        );
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

        let generation = &settings.generation;
        println!("# Generation service (CPU, torch threads {threads}, model {})", settings.model.name);
        println!();
        println!(
            "group commit: max_group {}, commit_linger_us {}, committers {}; database pool {}; synchronous_commit {}; log {}",
            generation.max_group,
            generation.commit_linger_us,
            generation.committers,
            settings.database.max_connections,
            synchronous_commit.as_deref().unwrap_or("(server default)"),
            if std::env::var_os("BENCH_LOG").is_some() { settings.log.level.as_str() } else { "(none)" },
        );
        println!();
        println!("raw generator forward: batch 64 {ceiling_64:.0} images/s, batch 256 {ceiling_256:.0} images/s; ceiling = the better, {ceiling:.0} images/s");
        println!();
        println!("| clients | signed images/s | vs ceiling | p50 ms | p99 ms | inference | encode | fingerprint | sign | store (ms per image) | store: blobs | store: group commit | records per commit |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (clients, requests) in [(1, 100), (8, 400), (32, 800)] {
            let (records_before, groups_before) = group_totals(&metrics_base).await;
            let r = run(clients, requests).await;
            let (records_after, groups_after) = group_totals(&metrics_base).await;
            let per_group = (records_after - records_before) / (groups_after - groups_before).max(1.0);
            println!(
                "| {clients} | {:.0} | {:.0}% | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {per_group:.1} |",
                r.per_s,
                100.0 * r.per_s / ceiling,
                ms(r.p50),
                ms(r.p99),
                r.stages_ms[0],
                r.stages_ms[1],
                r.stages_ms[2],
                r.stages_ms[3],
                r.stages_ms[4],
                r.stages_ms[5],
                r.stages_ms[6],
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
