//! Group commit (`src/generation/commit.rs`): concurrent generations share PostgreSQL
//! transactions, a request is answered only once its records are durable, and a failed group
//! leaves nothing behind. Transactions are counted by PostgreSQL itself: every row carries the id
//! of the transaction that inserted it (`xmin`).

use futures_util::stream::{FuturesUnordered, StreamExt};
use hallmark::store::api_keys::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{error_code, spawn_app_with, TestApp};

/// Requests that reach the committer within this many microseconds of the first share its
/// transaction: long enough that concurrent requests meet, whatever the machine's speed.
const LINGER_US: u64 = 400_000;

/// `count` images each for `seeds`, all sent at once; each answer with its seed.
async fn generate_all(
    app: &TestApp,
    key: &str,
    seeds: &[u64],
    count: u32,
) -> Vec<(u64, reqwest::Response)> {
    let requests = seeds.iter().map(|&seed| async move {
        (
            seed,
            app.generate(key, json!({"count": count, "seed": seed}))
                .await,
        )
    });
    futures_util::future::join_all(requests).await
}

/// Transactions that inserted records (distinct `xmin`), and the records.
async fn transactions_and_records(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(DISTINCT xmin::text), count(*) FROM records")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The `hallmark_largest_commit_group` gauge of `GET /metrics`.
async fn largest_group(app: &TestApp) -> f64 {
    app.metrics()
        .await
        .lines()
        .find_map(|line| line.strip_prefix("hallmark_largest_commit_group "))
        .expect("largest commit group gauge")
        .trim()
        .parse()
        .unwrap()
}

/// Rows each table holds: records, their variant hashes, their log entries (pending or
/// integrated).
async fn row_counts(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM records),
                (SELECT count(DISTINCT record_id) FROM record_hashes),
                (SELECT count(*) FROM log_pending) + (SELECT count(*) FROM log_entries)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Makes every commit that inserted records sleep `seconds` (a deferred trigger runs at
/// COMMIT time), so that commits are slow and queue up.
async fn slow_commits(pool: &PgPool, seconds: f64) {
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$;
         CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON records
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();"
    ))
    .execute(pool)
    .await
    .unwrap();
}

async fn ids(response: reqwest::Response) -> Vec<uuid::Uuid> {
    let body: Value = response.json().await.unwrap();
    body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[sqlx::test]
async fn concurrent_generations_share_transactions(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.limits.batch_delay_ms = 100;
        s.generation.commit_linger_us = LINGER_US;
    })
    .await;
    let key = app.key(Role::Generator).await;
    let seeds: Vec<u64> = (1..=10).collect();
    for (seed, response) in generate_all(&app, &key, &seeds, 2).await {
        assert_eq!(response.status(), StatusCode::CREATED, "seed {seed}");
    }
    let (transactions, records) = transactions_and_records(&app.pool).await;
    assert_eq!(records, 20);
    assert!(
        transactions < seeds.len() as i64,
        "10 concurrent requests were committed in {transactions} transactions"
    );
    assert!(
        largest_group(&app).await >= 4.0,
        "a group of two requests or more"
    );
    // Every record's variant hashes were inserted in the record's own transaction.
    let apart: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM records r JOIN record_hashes h ON h.record_id = r.id
         WHERE h.xmin::text <> r.xmin::text",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(apart, 0);
    assert_eq!(row_counts(&app.pool).await, (20, 20, 20));
    assert_eq!(app.blob_count(), 40, "20 images and 20 manifest stores");
}

#[sqlx::test]
async fn max_group_one_commits_every_request_alone(pool: PgPool) {
    // The same load as above with grouping off: the count above is not an artefact.
    let app = spawn_app_with(pool, |s| {
        s.limits.batch_delay_ms = 100;
        s.generation.commit_linger_us = LINGER_US;
        s.generation.max_group = 1;
    })
    .await;
    let key = app.key(Role::Generator).await;
    let seeds: Vec<u64> = (1..=6).collect();
    for (seed, response) in generate_all(&app, &key, &seeds, 2).await {
        assert_eq!(response.status(), StatusCode::CREATED, "seed {seed}");
    }
    assert_eq!(transactions_and_records(&app.pool).await, (6, 12));
    assert_eq!(
        largest_group(&app).await,
        2.0,
        "one request (two images) per group"
    );
}

#[sqlx::test]
async fn a_request_is_answered_only_once_its_records_are_durable(pool: PgPool) {
    // Every commit takes a while (a deferred trigger sleeps at COMMIT time), so an answer sent
    // before the commit finished would find its records missing.
    slow_commits(&pool, 0.05).await;
    let app = spawn_app_with(pool, |s| {
        s.limits.batch_delay_ms = 50;
        s.generation.commit_linger_us = 50_000;
    })
    .await;
    let key = app.key(Role::Generator).await;
    let mut pending: FuturesUnordered<_> = (0..8_u64)
        .map(|seed| app.generate(&key, json!({"count": 1 + seed % 2, "seed": seed})))
        .collect();
    let mut answered = 0;
    // Each answer is checked as soon as it arrives, while the others are still in flight.
    while let Some(response) = pending.next().await {
        assert_eq!(response.status(), StatusCode::CREATED);
        for id in ids(response).await {
            let (record, hashes, entry): (i64, i64, i64) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM records WHERE id = $1),
                        (SELECT count(*) FROM record_hashes WHERE record_id = $1),
                        (SELECT count(*) FROM log_pending WHERE record_id = $1)
                          + (SELECT count(*) FROM log_entries WHERE record_id = $1)",
            )
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
            assert_eq!(record, 1, "record {id} is visible when its answer arrives");
            assert!(hashes >= 1, "its variant hashes too");
            assert_eq!(entry, 1, "and its transparency-log entry");
            answered += 1;
        }
    }
    assert_eq!(answered, 12);
}

#[sqlx::test]
async fn a_bad_record_fails_only_its_own_request(pool: PgPool) {
    // Inserting the record of seed 666 fails (as a unique violation would): its group's
    // transaction fails, and the others in it are committed one by one.
    sqlx::raw_sql(
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'poisoned record'; END $$;
         CREATE TRIGGER poison BEFORE INSERT ON records
             FOR EACH ROW WHEN (NEW.seed = 666) EXECUTE FUNCTION poison();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let app = spawn_app_with(pool, |s| {
        s.limits.batch_delay_ms = 100;
        s.generation.commit_linger_us = LINGER_US;
    })
    .await;
    let key = app.key(Role::Generator).await;
    let mut created = 0;
    for (seed, response) in generate_all(&app, &key, &[1, 2, 666, 3, 4, 5], 1).await {
        if seed == 666 {
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(error_code(response).await, "internal");
        } else {
            assert_eq!(response.status(), StatusCode::CREATED, "seed {seed}");
            created += 1;
        }
    }
    assert_eq!(created, 5);
    assert!(
        largest_group(&app).await >= 2.0,
        "the requests were grouped"
    );
    assert_eq!(row_counts(&app.pool).await, (5, 5, 5));
    assert_eq!(
        app.blob_count(),
        10,
        "the failed request's blobs are removed"
    );
}

#[sqlx::test]
async fn a_failing_group_fails_every_member_and_leaves_nothing(pool: PgPool) {
    // The group's transaction fails at its last statement with a connection-class error: the
    // whole group fails at once (no retries against a database that is going away), 503.
    sqlx::raw_sql(
        "CREATE FUNCTION cut_off() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'connection lost' USING ERRCODE = '08006'; END $$;
         CREATE TRIGGER cut_off BEFORE INSERT ON log_pending
             FOR EACH STATEMENT EXECUTE FUNCTION cut_off();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let app = spawn_app_with(pool, |s| {
        s.limits.batch_delay_ms = 100;
        s.generation.commit_linger_us = LINGER_US;
    })
    .await;
    let key = app.key(Role::Generator).await;
    let seeds: Vec<u64> = (1..=6).collect();
    for (seed, response) in generate_all(&app, &key, &seeds, 2).await {
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "seed {seed}"
        );
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(error_code(response).await, "database_unavailable");
    }
    assert!(
        largest_group(&app).await >= 4.0,
        "the requests were grouped"
    );
    assert_eq!(row_counts(&app.pool).await, (0, 0, 0));
    assert_eq!(app.blob_count(), 0, "no orphaned blob");
    let journaled: i64 = sqlx::query_scalar("SELECT count(*) FROM blob_journal")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(journaled, 0, "a failed commit journals no blob");

    // Any other error fails every member too when each fails on its own (after the retries).
    sqlx::raw_sql(
        "CREATE OR REPLACE FUNCTION cut_off() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'no'; END $$;",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    for (seed, response) in generate_all(&app, &key, &seeds, 1).await {
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "seed {seed}"
        );
    }
    assert_eq!(row_counts(&app.pool).await, (0, 0, 0));
    assert_eq!(app.blob_count(), 0, "no orphaned blob");

    // Once the database accepts the rows again, so does the service.
    sqlx::raw_sql("DROP TRIGGER cut_off ON log_pending")
        .execute(&app.pool)
        .await
        .unwrap();
    for (seed, response) in generate_all(&app, &key, &seeds, 1).await {
        assert_eq!(response.status(), StatusCode::CREATED, "seed {seed}");
    }
    assert_eq!(row_counts(&app.pool).await, (6, 6, 6));
    assert_eq!(app.blob_count(), 12);
}

#[sqlx::test]
async fn a_full_commit_queue_answers_429_and_leaves_nothing(pool: PgPool) {
    // Each commit sleeps, one transaction at a time, and one request may wait for the next: of
    // requests arriving together, the rest are refused at once.
    slow_commits(&pool, 0.5).await;
    let app = spawn_app_with(pool, |s| {
        s.limits.batch_delay_ms = 100;
        s.generation.commit_queue_depth = 1;
        s.generation.committers = 1;
        s.generation.max_group = 1;
    })
    .await;
    let key = app.key(Role::Generator).await;
    let seeds: Vec<u64> = (1..=8).collect();
    let (mut created, mut refused) = (0, 0);
    for (seed, response) in generate_all(&app, &key, &seeds, 1).await {
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(response.headers().contains_key("retry-after"));
                assert_eq!(error_code(response).await, "queue_full");
                refused += 1;
            }
            other => panic!("seed {seed}: {other}"),
        }
    }
    assert!(refused > 0, "a full commit queue refuses requests");
    assert!(created > 0);
    assert_eq!(row_counts(&app.pool).await, (created, created, created));
    assert_eq!(
        app.blob_count(),
        2 * created as usize,
        "no blob of a refused request"
    );
}

#[sqlx::test]
async fn a_key_revoked_before_its_commit_leaves_the_group_and_only_it_is_refused(pool: PgPool) {
    // The generation route may take a key from its cache of keys the database passed before
    // (`api::auth::CachedKey`); the commit's own statement checks the key again. Two keys, both
    // used once (so both cached), one of them revoked: their requests meet in one group, the
    // revoked key's are refused with 401 and leave nothing behind, the other's commit.
    let app = spawn_app_with(pool, |s| {
        s.limits.batch_delay_ms = 100;
        s.generation.commit_linger_us = LINGER_US;
    })
    .await;
    let (kept, revoked) = (
        app.key(Role::Generator).await,
        app.key(Role::Generator).await,
    );
    for key in [&kept, &revoked] {
        let made = app.generate(key, json!({"count": 1})).await;
        assert_eq!(made.status(), StatusCode::CREATED);
    }
    assert_eq!(row_counts(&app.pool).await, (2, 2, 2));
    let revoked_rows = sqlx::query(
        "UPDATE api_keys SET revoked_at = now() WHERE key_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind(&revoked)
    .execute(&app.pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(revoked_rows, 1);

    let app = &app;
    let requests = (1..=6u64).map(|seed| {
        let key = if seed % 2 == 0 { &kept } else { &revoked };
        async move {
            (
                seed,
                app.generate(key, json!({"count": 2, "seed": seed})).await,
            )
        }
    });
    let mut kept_ids = Vec::new();
    for (seed, response) in futures_util::future::join_all(requests).await {
        if seed % 2 == 0 {
            assert_eq!(response.status(), StatusCode::CREATED, "seed {seed}");
            kept_ids.extend(ids(response).await);
        } else {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "seed {seed}");
            assert_eq!(error_code(response).await, "invalid_api_key");
        }
    }
    assert!(
        largest_group(app).await >= 6.0,
        "requests of both keys shared a group"
    );
    assert_eq!(kept_ids.len(), 6);
    assert_eq!(
        row_counts(&app.pool).await,
        (8, 8, 8),
        "only the live key's records, hashes and log entries"
    );
    let journaled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM blob_journal j
         WHERE NOT EXISTS (SELECT 1 FROM records r
                           WHERE j.sha256 IN (r.file_sha256, r.manifest_sha256))",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(journaled, 0, "no journal row without its record");
    assert_eq!(
        app.blob_count(),
        16,
        "the refused requests' blobs are removed"
    );

    // Refused once, the key has left the cache: its next request is refused before any work.
    let again = app.generate(&revoked, json!({"count": 1})).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(row_counts(&app.pool).await, (8, 8, 8));
}
