//! The transparency log end to end: the real app on port 0 against a fresh database per test,
//! checked by an independent verifier written in Python from the specifications
//! (`tests/independent/verify_tlog.py`), the pending → integrated answers, `hallmark log
//! verify` catching a deleted and an edited record, and two sequencers on one database.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

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

/// Generates `count` images; their record ids.
async fn generate(app: &TestApp, key: &str, count: u32, seed: u64) -> Vec<String> {
    let response = app
        .generate(key, json!({ "count": count, "seed": seed }))
        .await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["id"].as_str().unwrap().to_owned())
        .collect()
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
    let mut ids = generate(&app, &key, 3, 11).await;
    wait_for_proofs(&app, &ids).await;

    let (status, _, old) = text(&app, "/log/checkpoint").await;
    assert_eq!(status, 200);
    let old_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(old_file.path(), &old).unwrap();
    ids.extend(generate(&app, &key, 2, 12).await);
    wait_for_proofs(&app, &ids).await;

    // The verifier key is pinned from the key file, not taken from the log.
    let signer = LogSigner::new(
        &app.settings.transparency_log.origin,
        load_log_key(&app.settings.storage.keys_dir()).unwrap(),
    )
    .unwrap();
    let vkey = signer.verifier_key();
    let (status, _, served) = text(&app, "/log/key").await;
    assert_eq!((status, served.trim()), (StatusCode::OK, vkey.as_str()));

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/verify_tlog.py");
    let mut command = Command::new(python());
    command
        .arg(script)
        .arg(&app.address)
        .arg(&vkey)
        .arg("--old-checkpoint")
        .arg(old_file.path());
    for id in &ids {
        command.arg("--record").arg(id);
    }
    let output = run_off_the_runtime(command).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "independent verifier: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
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
    let mut command = Command::new(python());
    command
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/independent/verify_tlog.py"),
        )
        .arg(&app.address)
        .arg(other.verifier_key());
    let output = run_off_the_runtime(command).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("no signature by the pinned key"));
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
    let ids = generate(&app, &key, 1, 5).await;
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
    let older = generate(&app, &key, 1, 6).await.remove(0);
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
    let ids = generate(&app, &key, 3, 21).await;
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
    init_log_key(&settings.storage.keys_dir()).unwrap();
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
