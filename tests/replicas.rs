//! Past one machine: two `hallmark serve` replicas behind one PostgreSQL database and one
//! S3-compatible bucket, a real S3 server in its own process (moto's, `tests/support/s3.rs`),
//! each replica with a data directory of its own that holds only a copy of the keys.
//!
//! An image generated on one replica is fetched, looked up and verified on the other (as
//! served, stripped of its credentials, cropped), and the other way round. Then both take a load
//! of generations and one is killed with SIGKILL: the other keeps answering, and nothing is lost:
//! every generation answered 201 on either replica has its record, its image and its manifest
//! store on the survivor and in the bucket, the transparency log (integrated by whichever replica
//! holds the sequencer's advisory lock each round) takes every record once and checks with
//! `hallmark log verify` and `hallmark log monitor`, every tile in the bucket is the one
//! PostgreSQL makes, and `hallmark gc` leaves exactly the referenced blobs.

#[allow(dead_code)]
#[path = "support/s3.rs"]
mod s3;
#[allow(dead_code)]
#[path = "support/serve.rs"]
mod serve;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use hallmark::config::Settings;
use hallmark::provenance::pki::load_log_key;
use hallmark::store::blobs::Blobs;
use hallmark::tlog::{Log, LogSigner, TilePath};
use image::ImageFormat;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// Longest wait for any one condition: a guard against a hang, not a performance check.
const LIMIT: Duration = Duration::from_secs(90);

/// One image a replica answered 201 for.
#[derive(Debug, Clone)]
struct Acked {
    id: String,
    sha256: String,
    manifest_id: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn acked(body: &Value) -> Vec<Acked> {
    body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| Acked {
            id: image["id"].as_str().unwrap().to_owned(),
            sha256: image["sha256"].as_str().unwrap().to_owned(),
            manifest_id: image["manifest_id"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(hallmark::fingerprint::sha256(bytes))
}

/// A 90% x 90% window from the top-left corner, as a PNG.
fn cropped(bytes: &[u8]) -> Vec<u8> {
    let image = image::load_from_memory(bytes).unwrap();
    let (w, h) = (image.width() * 9 / 10, image.height() * 9 / 10);
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .crop_imm(0, 0, w, h)
        .write_to(&mut out, ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

async fn get(
    http: &reqwest::Client,
    server: &serve::Server,
    key: Option<&str>,
    path: &str,
) -> reqwest::Response {
    let mut request = http.get(server.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

/// An image generated on `maker` is served, looked up and recognised by `other`, which reads
/// the image and its manifest store from the bucket.
async fn made_here_found_there(
    maker: &serve::Server,
    other: &serve::Server,
    generator: &str,
    moderator: &str,
    seed: u64,
) -> Acked {
    let http = client();
    let response = http
        .post(maker.url("/v1/generations"))
        .bearer_auth(generator)
        .json(&json!({ "count": 1, "seed": seed }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let image = acked(&response.json().await.unwrap()).remove(0);
    let id = &image.id;

    let record = get(&http, other, None, &format!("/v1/records/{id}")).await;
    assert_eq!(record.status(), StatusCode::OK);
    let record: Value = record.json().await.unwrap();
    assert_eq!(record["file_sha256"], image.sha256.as_str(), "{record}");
    assert_eq!(record["signature_valid"], true, "{record}");

    let served = get(&http, other, Some(generator), &format!("/v1/images/{id}")).await;
    assert_eq!(served.status(), StatusCode::OK);
    let bytes = served.bytes().await.unwrap().to_vec();
    assert_eq!(sha256_hex(&bytes), image.sha256, "the very bytes signed");

    let report = other.verify(moderator, bytes.clone()).await;
    assert_eq!(report["verdict"], "hallmark_generated", "{report}");
    assert_eq!(report["provenance"]["state"], "trusted", "{report}");
    assert_eq!(report["registry"]["match"], "file_sha256", "{report}");
    assert_eq!(report["registry"]["record"]["id"], id.as_str(), "{report}");

    // Stripped: found by its pixels, its credentials recovered from the manifest store and the
    // original, both read from the bucket.
    let report = other.verify(moderator, serve::stripped(&bytes)).await;
    assert_eq!(report["registry"]["match"], "pixel_sha256", "{report}");
    assert_eq!(report["registry"]["record"]["id"], id.as_str(), "{report}");
    let recovered = &report["recovered"];
    assert_eq!(
        recovered["manifest_id"],
        image.manifest_id.as_str(),
        "{report}"
    );
    assert_eq!(recovered["provenance"]["state"], "trusted", "{report}");

    let manifest = get(
        &http,
        other,
        None,
        &format!("/c2pa/v1/manifests/{}", image.manifest_id),
    )
    .await;
    assert_eq!(manifest.status(), StatusCode::OK);
    assert_eq!(manifest.headers()["content-type"], "application/c2pa");
    assert!(!manifest.bytes().await.unwrap().is_empty());

    // Cropped: a near duplicate, found through the other replica's in-memory index, which
    // learns of records committed elsewhere from PostgreSQL's notifications (asynchronously:
    // hence the bounded wait), and confirmed against the original from the bucket.
    let crop = cropped(&bytes);
    let started = Instant::now();
    loop {
        let report = other.verify(moderator, crop.clone()).await;
        if report["registry"]["match"] == "phash" {
            assert_eq!(report["registry"]["record"]["id"], id.as_str(), "{report}");
            assert_eq!(report["verdict"], "hallmark_generated", "{report}");
            break;
        }
        assert!(
            started.elapsed() < LIMIT,
            "the crop of {id} was never matched on the other replica: {report}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    image
}

/// [`serve::generate_until`], keeping what the checks need of each answered image.
async fn generate_until(
    url: String,
    key: String,
    first_seed: u64,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
) -> Vec<Acked> {
    let images = serve::generate_until(url, key, first_seed, stop, answered).await;
    acked(&json!({ "images": images }))
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// The bucket as seen by a client of its own, not through the service.
fn bucket(s3: &s3::S3Server) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_bucket_name(&s3.bucket)
        .with_region(s3::REGION)
        .with_endpoint(&s3.endpoint)
        .with_allow_http(true)
        .with_access_key_id(s3::ACCESS_KEY_ID)
        .with_secret_access_key(s3::SECRET_ACCESS_KEY)
        .build()
        .unwrap()
}

async fn object(bucket: &AmazonS3, name: &str) -> Option<Vec<u8>> {
    match bucket.get(&ObjectPath::from(name)).await {
        Ok(result) => Some(result.bytes().await.unwrap().to_vec()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(error) => panic!("{name}: {error}"),
    }
}

fn blob_name(sha256: &[u8]) -> String {
    let hex = hex::encode(sha256);
    format!("sha256/{}/{}/{hex}", &hex[..2], &hex[2..4])
}

async fn names(bucket: &AmazonS3, prefix: &str) -> Vec<String> {
    bucket
        .list(Some(&ObjectPath::from(prefix)))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

/// Files under `dir`, recursively.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_postgres_and_s3_and_survive_a_sigkill() {
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let s3 = s3::S3Server::start(work.path(), "hallmark-replicas").await;
    let db = serve::TestDb::new();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut env_a = serve::Env::new(&db.url, dir_a.path());
    for (name, value) in s3.settings() {
        env_a.set(name, &value);
    }
    // Small, frequent integrations: the kill lands between, or inside, several of them.
    env_a.set("HALLMARK__TRANSPARENCY_LOG__CHECKPOINT_INTERVAL_MS", "100");
    env_a.set("HALLMARK__TRANSPARENCY_LOG__BATCH_SIZE", "4");
    env_a.ok(&["init"]);
    // The second machine gets a copy of the keys, as a deployment would hand them out; nothing
    // else of the first's data directory.
    let keys_b = dir_b.path().join("keys");
    std::fs::create_dir_all(&keys_b).unwrap();
    for entry in std::fs::read_dir(dir_a.path().join("keys")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, keys_b.join(path.file_name().unwrap())).unwrap();
    }
    let env_b = env_a.replica(dir_b.path());
    let generator = env_a.key("generator", "replicas");
    let moderator = env_a.key("moderator", "moderator");
    let vkey = env_a.ok(&["log", "key"]).trim().to_owned();
    let pool = PgPool::connect(&db.url).await.unwrap();
    let (mut a, b) = tokio::join!(env_a.serve(), env_b.serve());
    let ready = started.elapsed();

    // Each way round.
    let mut answered = vec![
        made_here_found_there(&a, &b, &generator, &moderator, 11).await,
        made_here_found_there(&b, &a, &generator, &moderator, 12).await,
    ];
    let crossed = started.elapsed();

    // Load on both, then SIGKILL A once both have answered, the log has integrated and more
    // entries wait for the sequencer.
    let stop = Arc::new(AtomicBool::new(false));
    let (count_a, count_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load_a = tokio::spawn(generate_until(
        a.url("/v1/generations"),
        generator.clone(),
        1_000,
        Arc::clone(&stop),
        Arc::clone(&count_a),
    ));
    let load_b = tokio::spawn(generate_until(
        b.url("/v1/generations"),
        generator.clone(),
        1_000_000,
        Arc::clone(&stop),
        Arc::clone(&count_b),
    ));
    let wait_started = Instant::now();
    loop {
        let integrated = count(&pool, "SELECT count(*) FROM log_entries").await;
        let pending = count(&pool, "SELECT count(*) FROM log_pending").await;
        let answered = count_a
            .load(Ordering::SeqCst)
            .min(count_b.load(Ordering::SeqCst));
        if answered >= 3 && integrated >= 8 && pending > 0 {
            break;
        }
        assert!(
            wait_started.elapsed() < LIMIT,
            "no load on both replicas{}{}",
            env_a.log_tail(),
            env_b.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill();
    let killed_at = (
        count_a.load(Ordering::SeqCst),
        count_b.load(Ordering::SeqCst),
    );
    let (size_at_kill, pending_at_kill) = (
        count(&pool, "SELECT count(*) FROM log_entries").await,
        count(&pool, "SELECT count(*) FROM log_pending").await,
    );
    // The survivor keeps answering.
    let wait_started = Instant::now();
    while count_b.load(Ordering::SeqCst) < killed_at.1 + 4 {
        assert!(
            wait_started.elapsed() < LIMIT,
            "the survivor stopped answering{}",
            env_b.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let (from_a, from_b) = (load_a.await.unwrap(), load_b.await.unwrap());
    assert!(!from_a.is_empty() && !from_b.is_empty());
    answered.extend(from_a.iter().cloned());
    answered.extend(from_b.iter().cloned());
    let loaded = started.elapsed();

    // The survivor integrates what the killed one left pending, and publishes it.
    let bucket = bucket(&s3);
    let wait_started = Instant::now();
    let (size, note) = loop {
        let pending = count(&pool, "SELECT count(*) FROM log_pending").await;
        let latest: Option<(i64, String)> =
            sqlx::query_as("SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1")
                .fetch_optional(&pool)
                .await
                .unwrap();
        let published = object(&bucket, "log/checkpoint").await;
        if let Some(latest) =
            latest.filter(|(_, note)| pending == 0 && published.as_deref() == Some(note.as_bytes()))
        {
            break latest;
        }
        assert!(
            wait_started.elapsed() < LIMIT,
            "the log never caught up on the survivor{}",
            env_b.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(size > size_at_kill, "the survivor's sequencer went on");
    let size = u64::try_from(size).unwrap();

    // Every answered image, wherever it was made: its record, its bytes and its manifest
    // store from the survivor.
    let http = client();
    for image in &answered {
        let record = get(&http, &b, None, &format!("/v1/records/{}", image.id)).await;
        assert_eq!(record.status(), StatusCode::OK, "{}", image.id);
        let record: Value = record.json().await.unwrap();
        assert_eq!(record["file_sha256"], image.sha256.as_str());
        let served = get(
            &http,
            &b,
            Some(&generator),
            &format!("/v1/images/{}", image.id),
        )
        .await;
        assert_eq!(served.status(), StatusCode::OK, "{}", image.id);
        assert_eq!(sha256_hex(&served.bytes().await.unwrap()), image.sha256);
        let path = format!("/c2pa/v1/manifests/{}", image.manifest_id);
        assert_eq!(get(&http, &b, None, &path).await.status(), StatusCode::OK);
    }
    let checkpoint = get(&http, &b, None, "/log/checkpoint").await;
    assert_eq!(checkpoint.text().await.unwrap(), note);

    // The log: every committed record (answered or cut off by the kill) once, no gap, every
    // answered one among them; the audit and the monitor (tiles over HTTP, from the bucket)
    // agree.
    let records = count(&pool, "SELECT count(*) FROM records").await;
    assert_eq!(u64::try_from(records).unwrap(), size);
    let indices: Vec<i64> = sqlx::query_scalar("SELECT idx FROM log_entries ORDER BY idx")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(indices, (0..records).collect::<Vec<i64>>(), "no gap");
    let logged: HashSet<String> =
        sqlx::query_scalar::<_, Uuid>("SELECT record_id FROM log_entries")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect();
    assert_eq!(logged.len(), indices.len(), "one entry a record");
    assert!(answered.iter().all(|image| logged.contains(&image.id)));
    let verified = env_b.ok(&["log", "verify", "--key", &vkey]);
    assert!(verified.ends_with("OK\n"), "{verified}");
    let mut monitor = vec![
        "log", "monitor", &b.address, "--key", &vkey, "--once", "--state",
    ];
    let state = work.path().join("monitor.state");
    let state = state.to_str().unwrap();
    monitor.push(state);
    for image in &answered {
        monitor.extend(["--record", image.id.as_str()]);
    }
    env_b.ok(&monitor);

    // The bucket itself: both blobs of every committed record; every tile the one PostgreSQL
    // makes (an S3 put is whole or absent: a kill leaves no partial object), the latest tree's
    // all there; no blob on either replica's disk.
    let stored: Vec<(Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT file_sha256, manifest_sha256 FROM records")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut referenced = HashSet::new();
    for (file, manifest) in &stored {
        for sha in [file, manifest] {
            let name = blob_name(sha);
            let bytes = object(&bucket, &name)
                .await
                .unwrap_or_else(|| panic!("{name} missing from the bucket"));
            assert_eq!(
                hallmark::fingerprint::sha256(&bytes).as_slice(),
                sha.as_slice()
            );
            referenced.insert(name);
        }
    }
    let mut settings = Settings::load(None).unwrap();
    settings.storage.data_dir = dir_a.path().to_path_buf();
    let signer = LogSigner::new(
        &settings.transparency_log.origin,
        load_log_key(&settings).unwrap(),
    )
    .unwrap();
    let rebuilt = tempfile::tempdir().unwrap();
    settings.storage.data_dir = rebuilt.path().to_path_buf();
    let from_postgres = Log::new(
        pool.clone(),
        Blobs::from_settings(&settings.storage).unwrap(),
        signer,
        &settings.transparency_log,
    );
    let tiles = names(&bucket, "log/tile").await;
    for name in &tiles {
        let tile = TilePath::parse(name.strip_prefix("log/").unwrap())
            .unwrap_or_else(|e| panic!("{name} is no tile: {e}"));
        let expected = from_postgres.tile(tile).await.unwrap().unwrap();
        assert_eq!(
            object(&bucket, name).await.unwrap(),
            expected.as_ref(),
            "{name}"
        );
    }
    for tile in hallmark::tlog::tiles::new_tiles(0, size) {
        let name = format!("log/{}", tile.path());
        assert!(tiles.contains(&name), "{name} missing from the bucket");
    }
    for dir in [dir_a.path(), dir_b.path()] {
        assert!(
            !dir.join("blobs").exists(),
            "no local blob directory in {}",
            dir.display()
        );
    }

    // Orphans (blobs of a generation the kill cut off before its commit, and one put here) go
    // with `hallmark gc` over S3; every referenced blob stays.
    let orphan = blob_name(&hallmark::fingerprint::sha256(b"an orphan"));
    bucket
        .put(
            &ObjectPath::from(orphan.as_str()),
            b"an orphan".to_vec().into(),
        )
        .await
        .unwrap();
    let before_gc = names(&bucket, "sha256").await.len();
    let gc = env_b.ok(&["gc", "--grace-minutes", "0"]);
    let after_gc: HashSet<String> = names(&bucket, "sha256").await.into_iter().collect();
    assert_eq!(after_gc, referenced, "{gc}");
    assert!(before_gc > after_gc.len() && !after_gc.contains(&orphan));

    println!(
        "replicas: ready in {ready:.1?}, crossed in {:.1?}, load and kill in {:.1?}, \
         checked in {:.1?}; A killed after {} answers (B {}), with {size_at_kill} log entries \
         integrated and {pending_at_kill} pending; {} images answered ({} on A, {} on B, 2 crossing), {records} records, \
         log of {size} entries in {} tiles, {} orphan blobs collected (one put by the test)",
        crossed - ready,
        loaded - crossed,
        started.elapsed() - loaded,
        killed_at.0,
        killed_at.1,
        answered.len(),
        from_a.len(),
        from_b.len(),
        tiles.len(),
        before_gc - after_gc.len(),
    );
    drop((a, b));
}
