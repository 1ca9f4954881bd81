//! The transparency log's speed and what it costs a generation (`src/tlog/`).
//!
//! 1. Integration alone: `ENTRIES` pending entries (record-sized, 380 bytes) integrated by the
//!    sequencer in rounds of `transparency_log.batch_size`, then the same with each round's
//!    tiles and entry bundles written to the blob store, as the service does: entries/s.
//! 2. The service under generating clients (1, 8, 32; count 1, PNG): the log's integration
//!    delay (from a record's commit to the signed checkpoint that first includes it, p50/p99,
//!    from the `queued_at` and checkpoint times PostgreSQL keeps), the entries per checkpoint, and
//!    signed images/s beside the same service whose sequencer does not integrate during the run
//!    (`checkpoint_interval_ms` of an hour): the cost of integrating and publishing. Each is run
//!    four times, alternating which goes first. The entry's insert in the record's own transaction is in
//!    both (it is the `store` stage of `Server-Timing`).
//!
//! Run: `cargo bench --bench tlog` (needs PostgreSQL; makes databases `hallmark_bench_tlog*`
//! next to `DATABASE_URL`). `-- --entries N` changes the 20,000 of part 1.

#[allow(dead_code)] // what this bench does not use of the shared helpers
mod common;

use std::time::{Duration, Instant};

use common::{fresh_database, load, ms, percentile};
use hallmark::config::Settings;
use hallmark::provenance::SigningIdentity;
use hallmark::store::api_keys::{self, Role};
use hallmark::store::blobs::Blobs;
use hallmark::store::signing_keys::register as register_signing_key;
use hallmark::tlog::{Integration, Log};
use hallmark::Application;
use secrecy::ExposeSecret;
use sqlx::PgPool;

const ENTRY_BYTES: usize = 380;
const STAGES: [&str; 1] = ["store"];
/// Runs of each service per client count, alternating which goes first.
const PAIRS: usize = 4;

/// Integrates everything pending; publishes each round's tiles when `publish`. Entries/s and
/// the number of rounds.
async fn integrate_all(log: &Log, publish: bool) -> (u64, usize) {
    let mut entries = 0;
    let mut rounds = 0;
    loop {
        match log.integrate_once().await.unwrap() {
            Integration::Integrated { old, new } => {
                if publish {
                    log.publish(old, new).await.unwrap();
                }
                entries += new - old;
                rounds += 1;
            }
            Integration::Idle => return (entries, rounds),
            Integration::Busy => unreachable!("one sequencer in this bench"),
        }
    }
}

async fn queue(pool: &PgPool, n: usize, salt: u8) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let entries: Vec<(uuid::Uuid, Vec<u8>)> = chunk
            .iter()
            .map(|i| {
                let mut entry = vec![salt; ENTRY_BYTES];
                entry[..8].copy_from_slice(&(*i as u64).to_be_bytes());
                (uuid::Uuid::new_v4(), entry)
            })
            .collect();
        let mut tx = pool.begin().await.unwrap();
        hallmark::store::log::append_pending(&mut tx, &entries)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

/// One running service and what a run needs.
struct Service {
    pool: PgPool,
    url: String,
    key: String,
    _dir: tempfile::TempDir,
}

async fn service(database: &str, checkpoint_interval_ms: u64) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let mut settings: Settings = common::settings(dir.path());
    settings.transparency_log.checkpoint_interval_ms = checkpoint_interval_ms;
    let pool = fresh_database(&mut settings, database).await;
    let identity = SigningIdentity::load(&settings).unwrap();
    register_signing_key(&pool, &identity).await.unwrap();
    let key = api_keys::create(&pool, "bench", Role::Generator)
        .await
        .unwrap()
        .secret
        .expose_secret()
        .to_owned();
    let app = Application::build_with_pool(settings, pool.clone()).unwrap();
    let url = format!("http://127.0.0.1:{}/v1/generations", app.port());
    tokio::spawn(app.run_until_stopped());
    Service {
        pool,
        url,
        key,
        _dir: dir,
    }
}

/// Signed images/s of `requests` generations from `clients` clients.
async fn generate(service: &Service, clients: usize, requests: usize, run: usize) -> f64 {
    let (url, key) = (service.url.clone(), service.key.clone());
    let result = load(clients, requests, 201, &STAGES, move |client, worker, i| {
        client
            .post(&url)
            .bearer_auth(&key)
            .json(&serde_json::json!({"count": 1, "seed": (run * 1000 + worker) * 100_000 + i}))
    })
    .await;
    result.per_s
}

async fn log_size(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(max(size), 0) FROM log_checkpoints")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until nothing is pending; the integration delays of the entries from index `from` on,
/// sorted, and the mean number of entries per checkpoint that took them.
async fn delays_since(pool: &PgPool, from: i64) -> (Vec<Duration>, f64) {
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM log_pending")
            .fetch_one(pool)
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows: Vec<(f64, i64)> = sqlx::query_as(
        "SELECT extract(epoch FROM c.created_at - e.queued_at)::float8, c.size
         FROM log_entries e
         CROSS JOIN LATERAL (SELECT size, created_at FROM log_checkpoints
                             WHERE size > e.idx ORDER BY size LIMIT 1) c
         WHERE e.idx >= $1",
    )
    .bind(from)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut delays: Vec<Duration> = rows
        .iter()
        .map(|(d, _)| Duration::from_secs_f64(d.max(0.0)))
        .collect();
    delays.sort();
    let checkpoints: std::collections::HashSet<i64> = rows.iter().map(|(_, size)| *size).collect();
    (delays, rows.len() as f64 / checkpoints.len().max(1) as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let entries: usize = args
        .iter()
        .position(|a| a == "--entries")
        .and_then(|i| args.get(i + 1))
        .map_or(20_000, |n| n.parse().expect("--entries N"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // ----- 1. integration alone -----
        let dir = tempfile::tempdir().unwrap();
        let mut settings = common::settings(dir.path());
        let pool = fresh_database(&mut settings, "hallmark_bench_tlog").await;
        let blobs = Blobs::from_settings(&settings.storage).unwrap();
        let log = Log::from_settings(&settings, pool.clone(), blobs).unwrap();
        let batch = settings.transparency_log.batch_size;
        println!("# Transparency log");
        println!();
        println!("## Integration alone ({entries} entries of {ENTRY_BYTES} bytes, batch_size {batch})");
        println!();
        println!("| what | entries/s | rounds | ms per round |");
        println!("|---|---:|---:|---:|");
        integrate_all(&log, true).await; // the empty tree's checkpoint
        for (what, publish, salt) in [
            ("integrate + sign (PostgreSQL)", false, 1),
            ("integrate + sign + publish tiles (local blob store, fsync)", true, 2),
        ] {
            queue(&pool, entries, salt).await;
            let started = Instant::now();
            let (n, rounds) = integrate_all(&log, publish).await;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "| {what} | {:.0} | {rounds} | {:.0} |",
                n as f64 / seconds,
                1000.0 * seconds / rounds.max(1) as f64
            );
        }
        // The hand-over itself: a record's transaction also inserts its entry into `log_pending`.
        let transactions = 500;
        let time_transactions = |with_entry: bool| {
            let pool = pool.clone();
            async move {
                let started = Instant::now();
                for i in 0..transactions {
                    let mut tx = pool.begin().await.unwrap();
                    if with_entry {
                        let entry = (uuid::Uuid::new_v4(), vec![3u8; ENTRY_BYTES + i % 2]);
                        hallmark::store::log::append_pending(&mut tx, &[entry])
                            .await
                            .unwrap();
                    } else {
                        sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
                    }
                    tx.commit().await.unwrap();
                }
                started.elapsed().as_secs_f64() * 1e6 / transactions as f64
            }
        };
        let (bare, with_entry) = (time_transactions(false).await, time_transactions(true).await);
        println!();
        println!(
            "hand-over: a committed transaction {bare:.0} µs; with one entry inserted {with_entry:.0} µs (+{:.0} µs per record's transaction)",
            with_entry - bare
        );
        drop(log);
        pool.close().await;

        // ----- 2. the service under load, with and without integration -----
        let with_log = service("hallmark_bench_tlog_on", 500).await;
        let without = service("hallmark_bench_tlog_off", 3_600_000).await;
        generate(&with_log, 8, 64, 0).await; // warm-up
        generate(&without, 8, 64, 0).await;
        println!();
        println!("## Under generating clients (checkpoint_interval_ms 500; count 1, PNG)");
        println!();
        println!("| clients | images/s, log integrating | images/s, not integrating | cost | entries per checkpoint | delay p50 ms | delay p99 ms | max ms |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut run = 1;
        for (clients, requests) in [(1, 400), (8, 1500), (32, 2500)] {
            let from = log_size(&with_log.pool).await;
            let (mut on, mut off) = (0.0, 0.0);
            for pair in 0..PAIRS {
                // Alternate the order so that drift on a shared machine falls on both.
                if pair % 2 == 0 {
                    on += generate(&with_log, clients, requests, run).await;
                    off += generate(&without, clients, requests, run + 1).await;
                } else {
                    off += generate(&without, clients, requests, run).await;
                    on += generate(&with_log, clients, requests, run + 1).await;
                }
                run += 2;
            }
            let (delays, per_checkpoint) = delays_since(&with_log.pool, from).await;
            println!(
                "| {clients} | {:.0} | {:.0} | {:+.1}% | {per_checkpoint:.0} | {:.0} | {:.0} | {:.0} |",
                on / PAIRS as f64,
                off / PAIRS as f64,
                100.0 * (off - on) / off,
                ms(percentile(&delays, 0.5)),
                ms(percentile(&delays, 0.99)),
                ms(*delays.last().unwrap_or(&Duration::ZERO)),
            );
        }
        let checkpoints: i64 = sqlx::query_scalar("SELECT count(*) FROM log_checkpoints")
            .fetch_one(&with_log.pool)
            .await
            .unwrap();
        println!();
        println!(
            "{} entries in {checkpoints} checkpoints; cost = (not integrating − integrating) / not integrating",
            log_size(&with_log.pool).await
        );
    });
}
