//! What the HTTP benchmarks share: a fresh database, a concurrent load driver that reads the
//! `Server-Timing` stages, and percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hallmark::config::Settings;
use hallmark::store;
use secrecy::ExposeSecret;
use sqlx::migrate::MigrateDatabase;
use sqlx::PgPool;

pub use hallmark::progress::percentile;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Default settings for a bench: port 0, `data_dir` with a fresh PKI and log key, the shipped
/// model on CPU.
pub fn settings(data_dir: &std::path::Path) -> Settings {
    let mut settings = Settings::load(None).unwrap();
    settings.server.port = 0;
    settings.storage.data_dir = data_dir.to_owned();
    settings.model.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models").into();
    settings.model.device = "cpu".into();
    // Beside a running service: the metrics listener on a free port, not 9464.
    settings.metrics.listen = "127.0.0.1:0".into();
    hallmark::provenance::pki::init_pki(&settings.storage.keys_dir(), 30, None).unwrap();
    // The transparency log's key, which `serve` needs as `hallmark init` makes it.
    hallmark::provenance::pki::init_log_key(&settings.storage.keys_dir(), None).unwrap();
    settings
}

/// Drops and creates database `name` next to `DATABASE_URL` (or the configured URL), migrates
/// it and points `settings` at it.
pub async fn fresh_database(settings: &mut Settings, name: &str) -> PgPool {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| settings.database.url.expose_secret().to_owned());
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL has a database name");
    let url = format!("{server}/{name}");
    if sqlx::Postgres::database_exists(&url).await.unwrap() {
        sqlx::Postgres::drop_database(&url).await.unwrap();
    }
    sqlx::Postgres::create_database(&url).await.unwrap();
    settings.database.url = url.into();
    let pool = store::lazy_pool(&settings.database).unwrap();
    store::migrate(&pool).await.unwrap();
    pool
}

/// A bench's signing service state: a fresh data folder (PKI and log key, kept while the
/// `TempDir` lives), settings pointing at the fresh, migrated database `name`, and the signing
/// key registered there.
pub async fn signing_service(name: &str) -> (tempfile::TempDir, Settings, PgPool) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = settings(data_dir.path());
    let pool = fresh_database(&mut settings, name).await;
    let identity = hallmark::provenance::SigningIdentity::load(&settings).unwrap();
    hallmark::store::signing_keys::register(&pool, &identity)
        .await
        .unwrap();
    (data_dir, settings, pool)
}

pub struct LoadResult {
    pub per_s: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Mean milliseconds per request of each named `Server-Timing` stage.
    pub stages_ms: Vec<f64>,
}

/// `requests` requests from `clients` concurrent clients; `request(client, worker, i)` builds
/// request `i` of a worker, which must answer `status`.
pub async fn load<F>(
    clients: usize,
    requests: usize,
    status: u16,
    stages: &'static [&'static str],
    request: F,
) -> LoadResult
where
    F: Fn(&reqwest::Client, usize, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let client = reqwest::Client::new();
    let request = Arc::new(request);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (client, request) = (client.clone(), Arc::clone(&request));
        let share = requests / clients + usize::from(worker < requests % clients);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share);
            let mut totals = vec![0.0; stages.len()];
            for i in 0..share {
                let sent = Instant::now();
                let response = request(&client, worker, i).send().await.unwrap();
                assert_eq!(
                    response.status().as_u16(),
                    status,
                    "{:?}",
                    response.text().await
                );
                // Routes without `Server-Timing` (or stages not asked for) add no stage time.
                let timing = response
                    .headers()
                    .get("server-timing")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                response.bytes().await.unwrap();
                latencies.push(sent.elapsed());
                for part in timing.split(", ").filter(|p| !p.is_empty()) {
                    let (name, dur) = part.split_once(";dur=").unwrap();
                    if let Some(slot) = stages.iter().position(|s| *s == name) {
                        totals[slot] += dur.parse::<f64>().unwrap();
                    }
                }
            }
            (latencies, totals)
        }));
    }
    let mut latencies = Vec::new();
    let mut totals = vec![0.0; stages.len()];
    for task in tasks {
        let (mine, theirs) = task.await.unwrap();
        latencies.extend(mine);
        for (total, part) in totals.iter_mut().zip(theirs) {
            *total += part;
        }
    }
    let n = latencies.len();
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    LoadResult {
        per_s: n as f64 / elapsed,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        stages_ms: totals.into_iter().map(|t| t / n as f64).collect(),
    }
}

/// Plain GETs per second from `clients` concurrent clients.
pub async fn get_per_s(url: &str, clients: usize, requests: usize) -> f64 {
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
