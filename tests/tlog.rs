//! The transparency log end to end: the real app on port 0 against a fresh database per test,
//! checked by an independent verifier written in Python from the specifications
//! (`tests/independent/verify_tlog.py`), the pending → integrated answers, `hallmark log
//! verify` catching a deleted and an edited record, two sequencers on one database,
//! `wait_for_log`, `hallmark log monitor` over HTTP, and the real `hallmark serve` killed with
//! SIGKILL while it integrates.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "support/serve.rs"]
mod serve;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hallmark::config::Settings;
use hallmark::provenance::pki::{init_log_key, load_log_key};
use hallmark::store::api_keys::Role;
use hallmark::store::blobs::Blobs;
use hallmark::tlog::audit::{audit, Problem};
use hallmark::tlog::proof::InclusionProof;
use hallmark::tlog::{Integration, Log, LogSigner};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use helpers::{error_code, python, spawn_app_with, TestApp};

/// An app whose log integrates every 100 ms.
async fn fast_log_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, |s| s.transparency_log.checkpoint_interval_ms = 100).await
}

/// Waits until every record's proof is served (200); panics after 30 s.
async fn wait_for_proofs(app: &TestApp, ids: &[String]) {
    let started = Instant::now();
    for id in ids {
        loop {
            let response = app
                .client
                .get(app.url(&format!("/v1/records/{id}/proof")))
                .send()
                .await
                .unwrap();
            let status = response.status();
            if status == StatusCode::OK {
                break;
            }
            assert_eq!(
                status,
                StatusCode::ACCEPTED,
                "{id}: {}",
                response.text().await.unwrap_or_default()
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{id} never integrated"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Entries that look like records' (the id where a record's is) but have no record row.
fn synthetic_entry(id: Uuid) -> Vec<u8> {
    let mut entry = b"hallmark-record-v2\0".to_vec();
    entry.extend_from_slice(&16u32.to_be_bytes());
    entry.extend_from_slice(id.as_bytes());
    entry.extend_from_slice(b"synthetic");
    entry
}

async fn hand_over_synthetic(pool: &PgPool, count: usize) {
    let mut tx = pool.begin().await.unwrap();
    let entries: Vec<(Uuid, Vec<u8>)> = (0..count)
        .map(|_| {
            let id = Uuid::now_v7();
            (id, synthetic_entry(id))
        })
        .collect();
    hallmark::store::log::append_pending(&mut tx, &entries)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// `tests/independent/verify_tlog.py BASE VKEY ARGS... --record ID...`, off the runtime: whether it
/// passed, and what it printed.
async fn independent_verifier(
    base: &str,
    vkey: &str,
    args: &[&str],
    records: &[String],
) -> (bool, String) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/verify_tlog.py");
    let mut command = Command::new(python());
    command.arg(script).arg(base).arg(vkey).args(args);
    for id in records {
        command.arg("--record").arg(id);
    }
    let output = run_off_the_runtime(command).await;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// Runs a command on a blocking thread: the app it talks to shares this test's runtime (its
/// database pool), which must keep running meanwhile.
async fn run_off_the_runtime(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

async fn text(app: &TestApp, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

#[sqlx::test]
async fn an_independent_verifier_checks_tiles_roots_inclusion_and_consistency(pool: PgPool) {
    let app = fast_log_app(pool).await;
    // 300 entries first, so the tree has a full tile, a partial one and a level-1 tile.
    hand_over_synthetic(&app.pool, 300).await;
    let key = app.key(Role::Generator).await;
    let mut ids = app.generate_records(&key, 3, 11).await;
    wait_for_proofs(&app, &ids).await;

    let (status, _, old) = text(&app, "/log/checkpoint").await;
    assert_eq!(status, 200);
    let old_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(old_file.path(), &old).unwrap();
    ids.extend(app.generate_records(&key, 2, 12).await);
    wait_for_proofs(&app, &ids).await;

    // The verifier key is pinned from the key file, not taken from the log.
    let signer = LogSigner::new(
        &app.settings.transparency_log.origin,
        load_log_key(&app.settings).unwrap(),
    )
    .unwrap();
    let vkey = signer.verifier_key();
    let (status, _, served) = text(&app, "/log/key").await;
    assert_eq!((status, served.trim()), (StatusCode::OK, vkey.as_str()));

    let old_path = old_file.path().to_str().unwrap();
    let (passed, stdout) =
        independent_verifier(&app.address, &vkey, &["--old-checkpoint", old_path], &ids).await;
    assert!(passed, "independent verifier: {stdout}");
    assert!(stdout.contains("checkpoint hallmark.example.org/log 305: signature and root OK"));
    assert!(
        stdout.contains("checkpoint 303 -> 305: consistent"),
        "{stdout}"
    );

    // The verifier refuses a checkpoint signed by another key.
    let other = LogSigner::new(
        &app.settings.transparency_log.origin,
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
    .unwrap();
    let (passed, printed) =
        independent_verifier(&app.address, &other.verifier_key(), &[], &[]).await;
    assert!(!passed);
    assert!(
        printed.contains("no signature by the pinned key"),
        "{printed}"
    );
}

#[sqlx::test]
async fn a_record_is_pending_then_proved_and_bad_paths_get_their_codes(pool: PgPool) {
    // An hour between rounds: only the first round (the empty tree) happens on its own.
    let app = spawn_app_with(pool, |s| {
        s.transparency_log.checkpoint_interval_ms = 3_600_000;
    })
    .await;
    let (status, headers, note) = text(&app, "/log/checkpoint").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    assert!(note.starts_with(&format!(
        "hallmark.example.org/log\n0\n{}\n\n— hallmark.example.org/log ",
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    )));

    let key = app.key(Role::Generator).await;
    let ids = app.generate_records(&key, 1, 5).await;
    let id = &ids[0];
    let response = app
        .client
        .get(app.url(&format!("/v1/records/{id}/proof")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["retry-after"], "3600");
    let view = app.get_json(&format!("/v1/records/{id}")).await;
    assert!(view["log_index"].is_null(), "{view}");

    let missing = Uuid::now_v7();
    for (path, status, code) in [
        (
            format!("/v1/records/{missing}/proof"),
            404,
            "record_not_found",
        ),
        ("/v1/records/nope/proof".to_owned(), 400, "invalid_id"),
        ("/log/tile/0/000.p/1".to_owned(), 404, "tile_not_found"),
        (
            "/log/tile/entries/000.p/1".to_owned(),
            404,
            "tile_not_found",
        ),
        ("/log/tile/0/0001".to_owned(), 400, "invalid_tile_path"),
        (
            "/log/tile/entries/x000/001".to_owned(),
            400,
            "invalid_tile_path",
        ),
        ("/log/tile/8/000.p/256".to_owned(), 400, "invalid_tile_path"),
        ("/log/tile/".to_owned(), 400, "invalid_tile_path"),
        (
            format!("/log/tile/0/{}", "x999/".repeat(40)),
            400,
            "invalid_tile_path",
        ),
        (
            "/log/tile/63/x018/x446/x744/x073/x709/x551/615".to_owned(),
            404,
            "tile_not_found",
        ),
    ] {
        let response = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_eq!(error_code(response).await, code, "{path}");
    }

    // Another replica's sequencer integrates it.
    let blobs = Blobs::from_settings(&app.settings.storage).unwrap();
    let log = Log::from_settings(&app.settings, app.pool.clone(), blobs).unwrap();
    assert_eq!(
        log.integrate_once().await.unwrap(),
        Integration::Integrated { old: 0, new: 1 }
    );
    assert_eq!(log.integrate_once().await.unwrap(), Integration::Idle);

    let (status, headers, proof) = text(&app, &format!("/v1/records/{id}/proof")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    let proof = InclusionProof::parse(&proof).unwrap();
    assert_eq!((proof.index, proof.path.len()), (0, 0));
    let record = hallmark::store::records::by_id(&app.pool, id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let entry = hallmark::tlog::entry(&record);
    let checkpoint = proof
        .check(
            &entry,
            &log.signer().verifier_key(),
            "hallmark.example.org/log",
        )
        .unwrap();
    assert_eq!(checkpoint.size, 1);
    assert_eq!(
        app.get_json(&format!("/v1/records/{id}")).await["log_index"],
        0
    );

    // A record made before the log (no entry, none pending) is handed over by a backfill.
    let older = app.generate_records(&key, 1, 6).await.remove(0);
    sqlx::query("DELETE FROM log_pending")
        .execute(&app.pool)
        .await
        .unwrap();
    let response = app
        .client
        .get(app.url(&format!("/v1/records/{older}/proof")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(error_code(response).await, "not_in_log");
    assert_eq!(log.backfill_once().await.unwrap(), Some(1));
    assert_eq!(
        log.backfill_once().await.unwrap(),
        Some(0),
        "handed over once"
    );
    assert_eq!(
        log.integrate_once().await.unwrap(),
        Integration::Integrated { old: 1, new: 2 }
    );
    let (status, _, _) = text(&app, &format!("/v1/records/{older}/proof")).await;
    assert_eq!(status, 200);

    // What a restart publishes: the latest checkpoint's tiles, from PostgreSQL.
    log.republish_latest().await.unwrap();
    let published = app.settings.storage.blobs_dir().join("log");
    for file in ["checkpoint", "tile/0/000.p/2", "tile/entries/000.p/2"] {
        assert!(published.join(file).is_file(), "{file} not published");
    }
    std::fs::remove_dir_all(published.join("tile")).unwrap();

    // Missing from the blob store: built from PostgreSQL on demand.
    for path in ["/log/tile/0/000.p/1", "/log/tile/entries/000.p/1"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        let body = response.bytes().await.unwrap();
        if path.contains("entries") {
            assert_eq!(
                hallmark::tlog::tiles::parse_entry_bundle(&body).unwrap(),
                vec![entry.clone()]
            );
        } else {
            assert_eq!(body.as_ref(), tlog_tiles::record_hash(&entry).0);
        }
    }
}

async fn hallmark_cli(app: &TestApp, args: &[&str]) -> Output {
    let database = app
        .pool
        .connect_options()
        .get_database()
        .expect("test database name")
        .to_owned();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hallmark"));
    command
        .args(args)
        .env(
            "HALLMARK__DATABASE__URL",
            format!("postgres://postgres@127.0.0.1:5432/{database}"),
        )
        .env(
            "HALLMARK__STORAGE__DATA_DIR",
            &app.settings.storage.data_dir,
        );
    run_off_the_runtime(command).await
}

#[sqlx::test]
async fn log_verify_catches_a_deleted_and_an_edited_record(pool: PgPool) {
    let app = fast_log_app(pool).await;
    let key = app.key(Role::Generator).await;
    let ids = app.generate_records(&key, 3, 21).await;
    wait_for_proofs(&app, &ids).await;

    let clean = hallmark_cli(&app, &["log", "verify"]).await;
    let stdout = String::from_utf8_lossy(&clean.stdout).into_owned();
    assert!(
        clean.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(
        stdout.contains("3 entries") && stdout.ends_with("OK\n"),
        "{stdout}"
    );
    let backfill = hallmark_cli(&app, &["log", "backfill"]).await;
    assert_eq!(
        String::from_utf8_lossy(&backfill.stdout),
        "0 records handed to the transparency log\n",
        "every record is logged already"
    );
    let proof = hallmark_cli(&app, &["log", "proof", &ids[2]]).await;
    assert!(proof.status.success());
    assert!(String::from_utf8_lossy(&proof.stdout).starts_with("c2sp.org/tlog-proof@v1\nindex "));

    let (edited, deleted): (Uuid, Uuid) = (ids[0].parse().unwrap(), ids[1].parse().unwrap());
    sqlx::query("UPDATE records SET seed = seed + 1 WHERE id = $1")
        .bind(edited)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM records WHERE id = $1")
        .bind(deleted)
        .execute(&app.pool)
        .await
        .unwrap();

    let tampered = hallmark_cli(&app, &["log", "verify"]).await;
    let stdout = String::from_utf8_lossy(&tampered.stdout).into_owned();
    assert!(!tampered.status.success(), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("PROBLEM") && l.contains(&ids[0]) && l.contains("EDITED")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("PROBLEM") && l.contains(&ids[1]) && l.contains("DELETED")),
        "{stdout}"
    );
    assert!(stdout.contains("2 problems"), "{stdout}");
    assert!(!stdout.contains(&ids[2]), "{stdout}");
}

#[sqlx::test]
async fn two_sequencers_on_one_database_make_one_log(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::load(None).unwrap();
    settings.storage.data_dir = dir.path().to_path_buf();
    init_log_key(&settings.storage.keys_dir(), None).unwrap();
    let open = || {
        let blobs = Blobs::from_settings(&settings.storage).unwrap();
        std::sync::Arc::new(Log::from_settings(&settings, pool.clone(), blobs).unwrap())
    };
    let (a, b) = (open(), open());
    let sequencer = |log: std::sync::Arc<Log>| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut rounds = Vec::new();
            for _ in 0..40 {
                hand_over_synthetic(&pool, 3).await;
                rounds.push(log.integrate_once().await.unwrap());
            }
            rounds
        })
    };
    let (ra, rb) = tokio::join!(sequencer(a.clone()), sequencer(b.clone()));
    let rounds: Vec<Integration> = ra.unwrap().into_iter().chain(rb.unwrap()).collect();
    while a.integrate_once().await.unwrap() != Integration::Idle {}

    let indices: Vec<i64> = sqlx::query_scalar("SELECT idx FROM log_entries ORDER BY idx")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        indices,
        (0..240).collect::<Vec<i64>>(),
        "no gap, no duplicate"
    );
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM log_pending")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pending, 0);
    let integrated = rounds
        .iter()
        .filter(|r| matches!(r, Integration::Integrated { .. }))
        .count();
    assert!(integrated >= 2, "{rounds:?}");

    // One consistent log: every checkpoint signed, each a head of the tree the entries make;
    // the only problems are the synthetic entries' missing records.
    let report = audit(
        &pool,
        &a.signer().verifier_key(),
        &settings.transparency_log.origin,
    )
    .await
    .unwrap();
    assert_eq!(report.entries, 240);
    assert!(report.checkpoints >= integrated);
    assert!(
        report
            .problems
            .iter()
            .all(|p| matches!(p, Problem::RecordDeleted { .. })),
        "{:?}",
        report.problems
    );
    assert_eq!(report.problems.len(), 240);

    // A changed stored hash (tiles are cut from them) and a checkpoint whose note was altered
    // are caught too.
    sqlx::query("UPDATE log_hashes SET hash = sha256(hash) WHERE idx = 5")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE log_checkpoints SET note = replace(note, E'\\n' || size || E'\\n', E'\\n' || (size + 1) || E'\\n')
         WHERE size = (SELECT max(size) FROM log_checkpoints)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let report = audit(
        &pool,
        &a.signer().verifier_key(),
        &settings.transparency_log.origin,
    )
    .await
    .unwrap();
    assert!(report.problems.contains(&Problem::StoredHash { index: 5 }));
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, Problem::CheckpointSignature { size: 240, .. })),
        "{:?}",
        report.problems.iter().rev().take(3).collect::<Vec<_>>()
    );
}

#[sqlx::test]
async fn wait_for_log_answers_with_checked_proofs_or_log_timeout(pool: PgPool) {
    let app = fast_log_app(pool).await;
    let key = app.key(Role::Generator).await;
    let vkey = LogSigner::new(
        &app.settings.transparency_log.origin,
        load_log_key(&app.settings).unwrap(),
    )
    .unwrap()
    .verifier_key();
    let origin = app.settings.transparency_log.origin.clone();

    // By default the answer says nothing of the log.
    let response = app.generate(&key, json!({ "count": 1, "seed": 1 })).await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["images"][0].get("log_index").is_none(), "{body}");
    assert!(body["images"][0].get("log_proof").is_none(), "{body}");

    let response = app
        .generate(&key, json!({ "count": 3, "seed": 2, "wait_for_log": true }))
        .await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    let images = body["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    let mut indices = Vec::new();
    for image in images {
        let id: Uuid = image["id"].as_str().unwrap().parse().unwrap();
        let proof = InclusionProof::parse(image["log_proof"].as_str().unwrap()).unwrap();
        assert_eq!(image["log_index"].as_u64(), Some(proof.index), "{image}");
        let record = hallmark::store::records::by_id(&app.pool, id)
            .await
            .unwrap()
            .unwrap();
        let checkpoint = proof
            .check(&hallmark::tlog::entry(&record), &vkey, &origin)
            .unwrap();
        assert!(checkpoint.size > proof.index);
        assert_eq!(
            app.get_json(&format!("/v1/records/{id}")).await["log_index"],
            proof.index,
            "the proof names the record's index"
        );
        indices.push(proof.index);
    }
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), 3);

    // The image bytes answer carries the index in a header.
    let response = app
        .client
        .post(app.url("/v1/generations"))
        .bearer_auth(&key)
        .header("Accept", "image/png")
        .json(&json!({ "count": 1, "seed": 3, "wait_for_log": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-hallmark-record-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let index: u64 = response.headers()["x-hallmark-log-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        app.get_json(&format!("/v1/records/{id}")).await["log_index"],
        index
    );

    // A wrong type is refused like any other field's.
    let response = app
        .generate(&key, json!({ "count": 1, "wait_for_log": "yes" }))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "invalid_body");
}

#[sqlx::test]
async fn wait_for_log_times_out_with_503_and_the_record_committed(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.transparency_log.checkpoint_interval_ms = 3_600_000;
        s.transparency_log.wait_timeout_ms = 300;
    })
    .await;
    let key = app.key(Role::Generator).await;
    let started = Instant::now();
    let response = app
        .generate(&key, json!({ "count": 2, "seed": 4, "wait_for_log": true }))
        .await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "3600");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "log_timeout");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("committed"), "{message}");
    let records: i64 = sqlx::query_scalar("SELECT count(*) FROM records")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM log_pending")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        (records, pending),
        (2, 2),
        "committed and queued for the log"
    );
}

/// Generates single images with `wait_for_log` off until `stop` is set; the record ids answered
/// with success.
/// [`serve::generate_until`]'s record ids.
async fn generate_until(
    url: String,
    key: String,
    first_seed: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<String> {
    let answered = std::sync::Arc::default();
    serve::generate_until(url, key, first_seed, stop, answered)
        .await
        .iter()
        .map(|image| image["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_integrating_loses_and_duplicates_no_entry() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let db = serve::TestDb::new();
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = serve::Env::new(&db.url, data_dir.path());
    // Small, frequent integrations: the kill lands between, or inside, many of them.
    env.set("HALLMARK__TRANSPARENCY_LOG__CHECKPOINT_INTERVAL_MS", "50");
    env.set("HALLMARK__TRANSPARENCY_LOG__BATCH_SIZE", "3");
    env.ok(&["init"]);
    let key = env.ok(&["keys", "create", "--role", "generator", "--name", "tlog"]);
    let key = key.trim().to_owned();
    let vkey = env.ok(&["log", "key"]).trim().to_owned();
    let pool = PgPool::connect(&db.url).await.unwrap();

    let mut server = env.serve().await;
    let stop = Arc::new(AtomicBool::new(false));
    let client = tokio::spawn(generate_until(
        server.url("/v1/generations"),
        key.clone(),
        0,
        Arc::clone(&stop),
    ));
    // Kill once entries have been integrated and more wait for the sequencer.
    let started = Instant::now();
    loop {
        let integrated = count(&pool, "SELECT count(*) FROM log_entries").await;
        let pending = count(&pool, "SELECT count(*) FROM log_pending").await;
        if integrated >= 6 && pending > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no integration under load{}",
            env.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    let (old_size, old_root): (i64, Vec<u8>) =
        sqlx::query_as("SELECT size, root FROM log_checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();

    // The same database and data directory (on another port: the first client stops there).
    server = env.serve().await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = client.await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let client = tokio::spawn(generate_until(
        server.url("/v1/generations"),
        key.clone(),
        1_000_000,
        Arc::clone(&stop),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    acked.extend(client.await.unwrap());

    // Everything pending integrated, and published.
    let started = Instant::now();
    let latest = loop {
        let pending = count(&pool, "SELECT count(*) FROM log_pending").await;
        let latest: Option<(i64, String)> =
            sqlx::query_as("SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1")
                .fetch_optional(&pool)
                .await
                .unwrap();
        let published = std::fs::read_to_string(data_dir.path().join("blobs/log/checkpoint")).ok();
        if let Some(latest) =
            latest.filter(|(_, note)| pending == 0 && published.as_deref() == Some(note.as_str()))
        {
            break latest;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the log never caught up{}",
            env.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (size, _) = &latest;
    let size = u64::try_from(*size).unwrap();
    assert!(size > u64::try_from(old_size).unwrap(), "the log went on");
    println!(
        "tlog: killed with a checkpoint of {old_size} entries; {size} after the restart, {} answered",
        acked.len()
    );
    let response = reqwest::get(server.url("/log/checkpoint")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), latest.1);

    // Every committed record has exactly one entry, indices 0..n without a gap; every answered
    // record is among them.
    let records = count(&pool, "SELECT count(*) FROM records").await;
    assert_eq!(u64::try_from(records).unwrap(), size);
    let indices: Vec<i64> = sqlx::query_scalar("SELECT idx FROM log_entries ORDER BY idx")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(indices, (0..records).collect::<Vec<i64>>(), "no gap");
    let unlogged = count(
        &pool,
        "SELECT count(*) FROM records r WHERE NOT EXISTS
           (SELECT 1 FROM log_entries e WHERE e.record_id = r.id)",
    )
    .await;
    assert_eq!(
        unlogged, 0,
        "every record logged (entries' record ids are unique)"
    );
    let logged: std::collections::HashSet<String> =
        sqlx::query_scalar::<_, Uuid>("SELECT record_id FROM log_entries")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect();
    assert!(!acked.is_empty());
    assert!(acked.iter().all(|id| logged.contains(id)));

    // The checkpoint signed before the kill is a prefix of the new one.
    let hashes: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT idx, hash FROM log_hashes")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut known = hallmark::tlog::hashes::StoredHashes::Known(Default::default());
    for (index, hash) in hashes {
        known.insert(
            u64::try_from(index).unwrap(),
            tlog_tiles::Hash(hash.try_into().unwrap()),
        );
    }
    let old_size = u64::try_from(old_size).unwrap();
    let root = tlog_tiles::tree_hash(size, &known).unwrap();
    let proof = tlog_tiles::prove_tree(size, old_size, &known).unwrap();
    tlog_tiles::check_tree(
        &proof,
        size,
        root,
        old_size,
        tlog_tiles::Hash(old_root.try_into().unwrap()),
    )
    .expect("the checkpoint before the kill is consistent with the latest");
    let mut settings = Settings::load(None).unwrap();
    settings.storage.data_dir = data_dir.path().to_path_buf();
    let report = audit(&pool, &vkey, &settings.transparency_log.origin)
        .await
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.entries, size);
    let verify = env.ok(&["log", "verify", "--key", &vkey]);
    assert!(verify.ends_with("OK\n"), "{verify}");

    // Every published tile is the one PostgreSQL makes, and the latest tree's are all there.
    let mut fresh = settings.clone();
    let rebuilt = tempfile::tempdir().unwrap();
    fresh.storage.data_dir = rebuilt.path().to_path_buf();
    let signer = LogSigner::new(
        &settings.transparency_log.origin,
        load_log_key(&settings).unwrap(),
    )
    .unwrap();
    let from_postgres = Log::new(
        pool.clone(),
        Blobs::from_settings(&fresh.storage).unwrap(),
        signer,
        &settings.transparency_log,
    );
    let published_dir = data_dir.path().join("blobs/log");
    let mut files = vec![published_dir.join("tile")];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let relative = path.strip_prefix(&published_dir).unwrap().to_str().unwrap();
        // A write the kill interrupted leaves its staging file (`<name>#<n>`), which no tile
        // path names and `hallmark gc` removes; everything else must be a tile.
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(hallmark::store::blobs::is_staging_name)
        {
            continue;
        }
        let tile = hallmark::tlog::TilePath::parse(relative).unwrap();
        let expected = from_postgres.tile(tile).await.unwrap().unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            expected.as_ref(),
            "{relative}"
        );
        checked += 1;
    }
    for tile in hallmark::tlog::tiles::new_tiles(0, size) {
        assert!(
            published_dir.join(tile.path()).is_file(),
            "{} missing",
            tile.path()
        );
    }
    assert!(checked >= 2);
    drop(server);
}

/// `hallmark log monitor` against `app`, off the runtime.
async fn monitor(app: &TestApp, vkey: &str, state: &std::path::Path, records: &[String]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hallmark"));
    command
        .args([
            "log",
            "monitor",
            &app.address,
            "--key",
            vkey,
            "--once",
            "--state",
        ])
        .arg(state);
    for id in records {
        command.arg("--record").arg(id);
    }
    run_off_the_runtime(command).await
}

#[sqlx::test]
async fn log_monitor_checks_signature_consistency_and_inclusion_over_http(pool: PgPool) {
    let app = fast_log_app(pool).await;
    let key = app.key(Role::Generator).await;
    let signer = LogSigner::new(
        &app.settings.transparency_log.origin,
        load_log_key(&app.settings).unwrap(),
    )
    .unwrap();
    let vkey = signer.verifier_key();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("checkpoint");

    // 300 entries first, so proofs span a full tile, a partial one and a level-1 tile.
    hand_over_synthetic(&app.pool, 300).await;
    let first = app.generate_records(&key, 2, 31).await;
    wait_for_proofs(&app, &first).await;
    let output = monitor(&app, &vkey, &state, &first).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("checkpoint hallmark.example.org/log 302: signature OK"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("record {}: included at index 300", first[0])),
        "{stdout}"
    );
    assert!(stdout.ends_with("OK\n"), "{stdout}");
    let seen = std::fs::read_to_string(&state).unwrap();

    let second = app.generate_records(&key, 3, 32).await;
    wait_for_proofs(&app, &second).await;
    let output = monitor(&app, &vkey, &state, &second).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("checkpoint 302 -> 305: consistent"),
        "{stdout}"
    );

    // A checkpoint seen before that the log does not extend: a fork, or a rollback.
    assert!(
        seen.starts_with("hallmark.example.org/log\n302\n"),
        "{seen}"
    );
    for (size, what) in [
        (302, "not consistent"),
        (305, "different roots"),
        (400, "shrank"),
    ] {
        let note = signer
            .sign_checkpoint(size, tlog_tiles::Hash([7; 32]))
            .unwrap();
        std::fs::write(&state, note).unwrap();
        let output = monitor(&app, &vkey, &state, &[]).await;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "{size}");
        assert!(stderr.contains(what), "{size}: {stderr}");
    }

    // Another key's checkpoints, and a record the log does not have.
    std::fs::remove_file(&state).unwrap();
    let other = LogSigner::new(
        &app.settings.transparency_log.origin,
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
    .unwrap();
    let output = monitor(&app, &other.verifier_key(), &state, &[]).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not verify"));
    let output = monitor(&app, &vkey, &state, &[Uuid::now_v7().to_string()]).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("404"));
}

/// A running `hallmark log witness`, killed when dropped.
struct WitnessProcess {
    child: std::process::Child,
    vkey: String,
    url: String,
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_witness(env: &serve::Env, dir: &std::path::Path, log_vkey: &str) -> WitnessProcess {
    use std::io::BufRead as _;
    let mut child = env
        .command(&[
            "log",
            "witness",
            "--name",
            "witness.test/w1",
            "--key",
            dir.join("witness.key.pem").to_str().unwrap(),
            "--log",
            log_vkey,
            "--state",
            dir.join("witness-state.json").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut vkey = None;
    let url = loop {
        let line = lines
            .next()
            .expect("the witness prints its key and address")
            .unwrap();
        if let Some(key) = line.strip_prefix("witness ") {
            vkey = Some(key.to_owned());
        } else if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    WitnessProcess {
        child,
        vkey: vkey.expect("a witness key line"),
        url,
    }
}

/// The served checkpoint once its tree has at least `size` entries and, when `cosigned`, the
/// witness's line.
async fn checkpoint_with(server: &serve::Server, size: u64, cosigned: bool) -> String {
    let started = Instant::now();
    loop {
        let note = server.text("/log/checkpoint").await;
        let tree: u64 = note.lines().nth(1).unwrap().parse().unwrap();
        if tree >= size && (!cosigned || note.contains("\n— witness.test/w1 ")) {
            return note;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no checkpoint of {size} entries (cosigned: {cosigned}); the latest:\n{note}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_cosigns_each_checkpoint_and_an_independent_verifier_checks_it() {
    let db = serve::TestDb::new();
    let data_dir = tempfile::tempdir().unwrap();
    let witness_dir = tempfile::tempdir().unwrap();
    let mut env = serve::Env::new(&db.url, data_dir.path());
    env.set("HALLMARK__TRANSPARENCY_LOG__CHECKPOINT_INTERVAL_MS", "100");
    env.set("HALLMARK__TRANSPARENCY_LOG__WITNESS_TIMEOUT_MS", "2000");
    env.ok(&["init"]);
    let key = env.ok(&[
        "keys",
        "create",
        "--role",
        "generator",
        "--name",
        "witnessed",
    ]);
    let key = key.trim().to_owned();
    let vkey = env.ok(&["log", "key"]).trim().to_owned();

    // The witness runs as its own process, with its own key and state, pinning the log's key.
    let witness = start_witness(&env, witness_dir.path(), &vkey);
    assert!(
        witness.vkey.starts_with("witness.test/w1+"),
        "{}",
        witness.vkey
    );
    let config = witness_dir.path().join("hallmark.toml");
    std::fs::write(
        &config,
        format!(
            "[transparency_log]\nwitnesses = [{{ url = {:?}, key = {:?} }}]\n",
            witness.url, witness.vkey
        ),
    )
    .unwrap();
    env.set("HALLMARK_CONFIG", config.to_str().unwrap());
    let server = env.serve().await;

    // First contact (old size 0), then a later checkpoint cosigned through a consistency proof
    // from the tree the witness saw.
    let mut ids = server.generate_records(&key, 2, 1).await;
    let first = checkpoint_with(&server, 2, true).await;
    ids.extend(server.generate_records(&key, 2, 2).await);
    ids.extend(server.generate_records(&key, 2, 3).await);
    let second = checkpoint_with(&server, 6, true).await;
    let first_size: u64 = first.lines().nth(1).unwrap().parse().unwrap();
    let second_size: u64 = second.lines().nth(1).unwrap().parse().unwrap();
    assert!(second_size > first_size, "{first}{second}");
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(witness_dir.path().join("witness-state.json")).unwrap(),
    )
    .unwrap();
    let seen = state["hallmark.example.org/log"]["size"].as_u64().unwrap();
    assert!(seen >= second_size, "{state}");

    // Checked from the specifications alone: the log's signature, the tree, each record's
    // inclusion and the witness's cosignature/v1 over the served checkpoint.
    let (passed, stdout) =
        independent_verifier(&server.address, &vkey, &["--witness", &witness.vkey], &ids).await;
    assert!(passed, "independent verifier: {stdout}");
    assert!(stdout.contains("cosigned by witness.test/w1"), "{stdout}");
    // Proofs carry the cosigned checkpoint; the audit is untroubled by the extra lines.
    let proof = server.text(&format!("/v1/records/{}/proof", ids[0])).await;
    assert!(proof.contains("\n— witness.test/w1 "), "{proof}");
    let verify = env.ok(&["log", "verify", "--key", &vkey]);
    assert!(verify.ends_with("OK\n"), "{verify}");

    // A witness that is gone never holds the log up: checkpoints go on, uncosigned.
    drop(witness);
    let more = server.generate_records(&key, 2, 4).await;
    assert_eq!(more.len(), 2);
    let later = checkpoint_with(&server, second_size + 2, false).await;
    assert!(!later.contains("\n— witness.test/w1 "), "{later}");
    drop(server);
}

#[sqlx::test]
async fn tiles_of_a_round_its_sequencer_never_published_come_with_the_next(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::load(None).unwrap();
    settings.storage.data_dir = dir.path().to_path_buf();
    init_log_key(&settings.storage.keys_dir(), None).unwrap();
    let log = Log::from_settings(
        &settings,
        pool.clone(),
        Blobs::from_settings(&settings.storage).unwrap(),
    )
    .unwrap();
    // Published up to 10 entries; then a replica commits 10 -> 300 and dies before its tiles.
    hand_over_synthetic(&pool, 10).await;
    let Integration::Integrated { old, new } = log.integrate_once().await.unwrap() else {
        panic!("nothing integrated")
    };
    log.publish(old, new).await.unwrap();
    hand_over_synthetic(&pool, 290).await;
    assert!(matches!(
        log.integrate_once().await.unwrap(),
        Integration::Integrated { old: 10, new: 300 }
    ));
    // The survivor's next round, 300 -> 305, publishes what the lost round changed too.
    hand_over_synthetic(&pool, 5).await;
    let Integration::Integrated { old, new } = log.integrate_once().await.unwrap() else {
        panic!("nothing integrated")
    };
    assert_eq!((old, new), (300, 305));
    log.publish(old, new).await.unwrap();
    let published = dir.path().join("blobs/log");
    for tile in hallmark::tlog::tiles::new_tiles(0, 305) {
        assert!(
            published.join(tile.path()).is_file(),
            "{} missing",
            tile.path()
        );
    }
    // The full entry bundle and level-0 tile the lost round completed among them.
    assert!(published.join("tile/entries/000").is_file());
    assert!(published.join("tile/0/000").is_file());
}

#[sqlx::test]
async fn a_full_batch_is_followed_at_once_by_the_next_round(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::load(None).unwrap();
    settings.storage.data_dir = dir.path().to_path_buf();
    // An hour between rounds, three entries a round: only back-to-back rounds integrate ten.
    settings.transparency_log.checkpoint_interval_ms = 3_600_000;
    settings.transparency_log.batch_size = 3;
    init_log_key(&settings.storage.keys_dir(), None).unwrap();
    hand_over_synthetic(&pool, 10).await;
    let blobs = Blobs::from_settings(&settings.storage).unwrap();
    let log = std::sync::Arc::new(Log::from_settings(&settings, pool.clone(), blobs).unwrap());
    std::sync::Arc::clone(&log).spawn();
    let started = Instant::now();
    loop {
        let size: i64 = count(&pool, "SELECT COALESCE(max(size), 0) FROM log_checkpoints").await;
        if size == 10 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the backlog waited for the interval: {size} of 10 integrated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sizes: Vec<i64> = sqlx::query_scalar("SELECT size FROM log_checkpoints ORDER BY size")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(sizes, [3, 6, 9, 10]);
}
