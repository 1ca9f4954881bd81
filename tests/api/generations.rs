use std::collections::HashSet;
use std::time::Duration;

use hallmark::fingerprint::sha256;
use hallmark::provenance::{verify_record, ProvenanceVerifier, Record, ValidationState};
use hallmark::store::api_keys::{self, Role};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::helpers::{
    error_code, spawn_app, spawn_app_with, spawn_with, test_settings, DbProxy, TestApp,
};

/// Every image of a JSON answer: fetched with `key`, its bytes hashed, its manifest read with our
/// CA as the anchor, and its public record's signature checked against the published key.
async fn check_images(app: &TestApp, key: &str, answer: &Value) -> Vec<Vec<u8>> {
    let verifier = ProvenanceVerifier::from_settings(&app.settings).unwrap();
    let mut all = Vec::new();
    for image in answer["images"].as_array().unwrap() {
        let id = image["id"].as_str().unwrap();
        let bytes = app
            .client
            .get(app.url(&format!("/v1/images/{id}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(bytes.status(), StatusCode::OK);
        let etag = bytes.headers()["etag"].to_str().unwrap().to_owned();
        let bytes = bytes.bytes().await.unwrap().to_vec();
        let sha = hex::encode(sha256(&bytes));
        assert_eq!(image["sha256"], sha, "served bytes are the registered ones");
        assert_eq!(etag, format!("\"{sha}\""));

        let report = verifier.verify(&bytes);
        assert_eq!(report.state, ValidationState::Trusted, "{report:?}");
        assert_eq!(report.hallmark.as_ref().unwrap().record_id.to_string(), id);

        let record: Value = app.get_json(&format!("/v1/records/{id}")).await;
        assert_eq!(record["signature_valid"], true);
        assert_eq!(record["file_sha256"], sha);
        // Check it offline too, from the published key alone.
        let public = hallmark::provenance::PublicKey::from_bytes(
            record["signing_key"]["algorithm"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            &hex::decode(record["signing_key"]["public_key"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        let stored: Record = sqlx::query_as(&format!(
            "SELECT {} FROM records WHERE id = $1",
            hallmark::provenance::record::RECORD_COLUMNS
        ))
        .bind(uuid::Uuid::parse_str(id).unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
        verify_record(&stored, &public).unwrap();
        all.push(bytes);
    }
    all
}

#[sqlx::test]
async fn one_png_is_signed_registered_and_served(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Generator).await;
    let response = app.generate(&key, json!({"count": 1, "seed": 7})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["seed"], 7);
    assert_eq!(answer["model"], "fashion-dcgan32-ema");
    let images = check_images(&app, &key, &answer).await;
    assert!(images[0].starts_with(b"\x89PNG"));
    // The image and its manifest store (the manifest repository).
    assert_eq!(app.blob_count(), 2);
}

/// An operator's own chain (made by Python's `cryptography`, `scripts/test_tsa.py`) whose leaf is
/// ECDSA: images are signed ES256 or ES384 and trusted through the operator's root, records carry
/// the same key's signature (96 bytes for ES384), and two readers written elsewhere agree:
/// c2pa-python validates the images against that root, and the pure-Python record verifier
/// (`tests/independent/verify_record.py`) checks the records from the published key.
#[sqlx::test]
async fn an_operator_chain_with_an_ecdsa_leaf_signs_images_and_records(pool: PgPool) {
    let python = crate::helpers::python();
    let root = env!("CARGO_MANIFEST_DIR");
    for (algorithm, signature_bytes) in [("es256", 64), ("es384", 96)] {
        let pki = tempfile::tempdir().unwrap();
        for args in [
            vec!["pki"],
            vec!["signer", "--seconds", "86400", "--key", algorithm],
        ] {
            let status = std::process::Command::new(&python)
                .arg(format!("{root}/scripts/test_tsa.py"))
                .arg(args[0])
                .arg(pki.path())
                .args(&args[1..])
                .status()
                .expect("python runs (HALLMARK_PYTHON)");
            assert!(status.success(), "test_tsa.py {args:?}");
        }
        let chain = pki.path().join("signer-chain.pem");
        let private_key = pki.path().join("signer-key.pem");
        let app = spawn_app_with(pool.clone(), |settings| {
            settings.provenance.cert_chain = Some(chain.clone());
            settings.provenance.private_key = Some(private_key.clone());
        })
        .await;
        let key = app.key(Role::Generator).await;
        let response = app
            .generate(&key, json!({"count": 2, "format": "jpeg", "seed": 5}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{algorithm}");
        let answer: Value = response.json().await.unwrap();
        // Trusted through the operator's root, recognised as ours, records valid.
        let images = check_images(&app, &key, &answer).await;
        let id = answer["images"][0]["id"].as_str().unwrap();
        let record: Value = app.get_json(&format!("/v1/records/{id}")).await;
        assert_eq!(
            record["signing_key"]["algorithm"],
            algorithm.to_uppercase(),
            "{record:#}"
        );
        assert_eq!(
            hex::decode(record["signature"].as_str().unwrap())
                .unwrap()
                .len(),
            signature_bytes
        );
        // The chain file ends in the operator's root; the manifests carry the leaf alone.
        let published = record["signing_key"]["cert_chain_pem"].as_str().unwrap();
        assert_eq!(published.matches("BEGIN CERTIFICATE").count(), 1);
        let file_chain = std::fs::read_to_string(&chain).unwrap();
        assert_eq!(file_chain.matches("BEGIN CERTIFICATE").count(), 2);
        // The pure-Python verifier on the record as published: (exit status, what it printed).
        let independent = |record: &Value| {
            use std::io::Write as _;
            let mut verifier = std::process::Command::new(&python)
                .arg(format!("{root}/tests/independent/verify_record.py"))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = verifier.stdin.take().unwrap();
            stdin.write_all(record.to_string().as_bytes()).unwrap();
            drop(stdin);
            let out = verifier.wait_with_output().unwrap();
            let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            (out.status.success(), said)
        };
        assert_eq!(independent(&record), (true, "OK".to_owned()), "{algorithm}");
        let mut tampered = record.clone();
        tampered["seed"] = json!(record["seed"].as_u64().unwrap() + 1);
        assert!(
            !independent(&tampered).0,
            "{algorithm}: a changed seed must fail"
        );

        let file = pki.path().join("image.jpg");
        std::fs::write(&file, &images[0]).unwrap();
        let output = std::process::Command::new(&python)
            .arg(format!("{root}/scripts/c2pa_check.py"))
            .arg(&file)
            .arg("--anchors")
            .arg(pki.path().join("signer-root.pem"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let reference: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(reference["validation_state"], "Trusted", "{reference:#}");
    }
}

#[sqlx::test]
async fn sixty_four_jpegs_in_one_request(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Generator).await;
    let response = app
        .generate(&key, json!({"count": 64, "format": "jpeg", "quality": 85}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let answer: Value = response.json().await.unwrap();
    let images = check_images(&app, &key, &answer).await;
    assert_eq!(images.len(), 64);
    assert!(images.iter().all(|b| b.starts_with(&[0xFF, 0xD8, 0xFF])));
    let distinct: HashSet<_> = images.iter().map(|b| sha256(b)).collect();
    assert_eq!(distinct.len(), 64);
    assert_eq!(app.blob_count(), 128, "each image and its manifest store");
}

#[sqlx::test]
async fn image_bytes_directly_with_accept(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Generator).await;
    let response = app
        .client
        .post(app.url("/v1/generations"))
        .bearer_auth(&key)
        .header("accept", "image/png")
        .json(&json!({"count": 1, "seed": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    let id = response.headers()["x-hallmark-record-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = response.bytes().await.unwrap();
    let found: Value = app
        .get_json(&format!(
            "/v1/records?sha256={}",
            hex::encode(sha256(&bytes))
        ))
        .await;
    assert_eq!(found["records"][0]["id"], id);

    let many = app
        .client
        .post(app.url("/v1/generations"))
        .bearer_auth(&key)
        .header("accept", "image/png")
        .json(&json!({"count": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(many.status(), StatusCode::NOT_ACCEPTABLE);
    assert_eq!(error_code(many).await, "not_acceptable");
}

#[sqlx::test]
async fn same_seed_gives_same_pixels(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Generator).await;
    let mut pixels = Vec::new();
    for _ in 0..2 {
        let answer: Value = app
            .generate(&key, json!({"count": 3, "seed": 1234}))
            .await
            .json()
            .await
            .unwrap();
        let ids: Vec<_> = answer["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["pixel_sha256"].clone())
            .collect();
        pixels.push(ids);
    }
    assert_eq!(pixels[0], pixels[1]);
    let other: Value = app
        .generate(&key, json!({"count": 3, "seed": 1235}))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(other["images"][0]["pixel_sha256"], pixels[0][0]);
    // Image i does not depend on the count asked for alongside it.
    let single: Value = app
        .generate(&key, json!({"count": 1, "seed": 1234}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(single["images"][0]["pixel_sha256"], pixels[0][0]);
}

#[sqlx::test]
async fn concurrent_requests_share_forward_passes(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.limits.batch_delay_ms = 100).await;
    let key = app.key(Role::Generator).await;
    let requests = (0..12).map(|seed| app.generate(&key, json!({"count": 2, "seed": seed})));
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let metrics = app.metrics().await;
    let largest: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("hallmark_largest_batch "))
        .expect("largest batch gauge")
        .trim()
        .parse()
        .unwrap();
    assert!(
        largest > 2.0,
        "requests were batched together: largest batch {largest}"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM records")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 24);
}

#[sqlx::test]
async fn a_full_queue_answers_429_at_once(pool: PgPool) {
    // The first request holds the whole queue while the batcher waits for company.
    let app = spawn_app_with(pool, |s| {
        s.limits.queue_depth = 4;
        s.limits.batch_delay_ms = 1500;
    })
    .await;
    let key = app.key(Role::Generator).await;
    let first = app.generate(&key, json!({"count": 4}));
    let second = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        app.generate(&key, json!({"count": 1})).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(second.headers().contains_key("retry-after"));
    assert_eq!(error_code(second).await, "queue_full");
    assert_eq!(first.status(), StatusCode::CREATED);
    // Once the queue drains, requests are admitted again.
    assert_eq!(
        app.generate(&key, json!({"count": 1})).await.status(),
        StatusCode::CREATED
    );
}

#[sqlx::test]
async fn invalid_bodies_get_400_with_codes(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Generator).await;
    for (body, status, code) in [
        (
            json!({"count": 0}),
            StatusCode::BAD_REQUEST,
            "invalid_count",
        ),
        (
            json!({"count": 65}),
            StatusCode::BAD_REQUEST,
            "invalid_count",
        ),
        (
            json!({"count": 1, "format": "gif"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"count": 1, "quality": 80}),
            StatusCode::BAD_REQUEST,
            "invalid_quality",
        ),
        (
            json!({"count": 1, "format": "jpeg", "quality": 0}),
            StatusCode::BAD_REQUEST,
            "invalid_quality",
        ),
        (
            json!({"count": -1}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"count": 1, "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (json!({}), StatusCode::BAD_REQUEST, "invalid_body"),
        (
            json!({"count": 1, "model": "no-such-model"}),
            StatusCode::NOT_FOUND,
            "unknown_model",
        ),
    ] {
        let response = app.generate(&key, body.clone()).await;
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(error_code(response).await, code, "{body}");
    }
    let malformed = app
        .client
        .post(app.url("/v1/generations"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{\"count\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(malformed).await, "malformed_json");
    let no_json = app
        .client
        .post(app.url("/v1/generations"))
        .bearer_auth(&key)
        .body("count=1")
        .send()
        .await
        .unwrap();
    assert_eq!(no_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM records")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing was stored for bad requests");
}

#[sqlx::test]
async fn auth_matrix_for_every_route(pool: PgPool) {
    let app = spawn_app(pool).await;
    let generator = app.key(Role::Generator).await;
    let other_generator = app.key(Role::Generator).await;
    let moderator = app.key(Role::Moderator).await;
    let admin = app.key(Role::Admin).await;
    let revoked = api_keys::create(&app.pool, "gone", Role::Admin)
        .await
        .unwrap();
    assert!(api_keys::revoke(&app.pool, &revoked.info.id.to_string())
        .await
        .unwrap());
    let revoked = secrecy::ExposeSecret::expose_secret(&revoked.secret).to_owned();

    let answer: Value = app
        .generate(&generator, json!({"count": 1}))
        .await
        .json()
        .await
        .unwrap();
    let id = answer["images"][0]["id"].as_str().unwrap().to_owned();
    let sha = answer["images"][0]["sha256"].as_str().unwrap().to_owned();

    // (who, key) → expected status for: generate, own image, record by id, record by hash.
    let unknown = format!("hm_{}", "0".repeat(64));
    let cases: [(&str, Option<&str>, [u16; 4]); 7] = [
        ("no key", None, [401, 401, 200, 200]),
        ("unknown key", Some(unknown.as_str()), [401, 401, 200, 200]),
        ("not a key", Some("Basic abc"), [401, 401, 200, 200]),
        ("revoked", Some(revoked.as_str()), [401, 401, 200, 200]),
        (
            "generator (owner)",
            Some(generator.as_str()),
            [201, 200, 200, 200],
        ),
        (
            "other generator",
            Some(other_generator.as_str()),
            [201, 404, 200, 200],
        ),
        // Moderators see originals (to compare an upload with the record it matched).
        ("moderator", Some(moderator.as_str()), [403, 200, 200, 200]),
    ];
    for (who, key, expected) in
        cases
            .into_iter()
            .chain([("admin", Some(admin.as_str()), [201, 200, 200, 200])])
    {
        let with_key = |builder: reqwest::RequestBuilder| match key {
            Some(k) if k.starts_with("Basic") => builder.header("authorization", k),
            Some(k) => builder.bearer_auth(k),
            None => builder,
        };
        let responses = [
            with_key(
                app.client
                    .post(app.url("/v1/generations"))
                    .json(&json!({"count": 1})),
            )
            .send()
            .await
            .unwrap(),
            with_key(app.client.get(app.url(&format!("/v1/images/{id}"))))
                .send()
                .await
                .unwrap(),
            with_key(app.client.get(app.url(&format!("/v1/records/{id}"))))
                .send()
                .await
                .unwrap(),
            with_key(
                app.client
                    .get(app.url(&format!("/v1/records?sha256={sha}"))),
            )
            .send()
            .await
            .unwrap(),
        ];
        for (route, (response, want)) in responses.into_iter().zip(expected).enumerate() {
            assert_eq!(response.status().as_u16(), want, "{who}, route {route}");
            if want >= 400 {
                let code = error_code(response).await;
                let expected_code = match want {
                    401 => [
                        "missing_api_key",
                        "invalid_api_key",
                        "malformed_authorization",
                    ]
                    .contains(&code.as_str()),
                    403 => code == "forbidden",
                    404 => code == "image_not_found",
                    _ => false,
                };
                assert!(expected_code, "{who}, route {route}: code {code}");
            }
        }
    }
}

#[sqlx::test]
async fn record_lookups_validate_their_input(pool: PgPool) {
    let app = spawn_app(pool).await;
    for (path, status, code) in [
        ("/v1/records/not-a-uuid", 400, "invalid_id"),
        (
            "/v1/records/00000000-0000-0000-0000-000000000000",
            404,
            "record_not_found",
        ),
        ("/v1/records?sha256=xyz", 400, "invalid_sha256"),
        ("/v1/records", 400, "invalid_sha256"),
        (
            format!("/v1/records?sha256={}", "ab".repeat(31)).as_str(),
            400,
            "invalid_sha256",
        ),
        (
            format!("/v1/records?sha256={}", "ab".repeat(33)).as_str(),
            400,
            "invalid_sha256",
        ),
        (
            format!("/v1/records?sha256=0x{}", "ab".repeat(31)).as_str(),
            400,
            "invalid_sha256",
        ),
        (
            format!("/v1/thumbnails/{}", "zz".repeat(32)).as_str(),
            400,
            "invalid_sha256",
        ),
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_eq!(error_code(response).await, code, "{path}");
    }
    for sha in ["ab".repeat(32), "AB".repeat(32)] {
        let none: Value = app.get_json(&format!("/v1/records?sha256={sha}")).await;
        assert_eq!(none["records"], json!([]), "{sha}");
    }
}

#[sqlx::test]
async fn public_lookups_are_rate_limited_per_address(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.api.public_rate_per_s = 1;
        s.api.public_burst = 3;
    })
    .await;
    let url = app.url("/v1/records/00000000-0000-0000-0000-000000000000");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.client.get(&url).send().await.unwrap().status().as_u16());
    }
    assert_eq!(&statuses[..3], &[404, 404, 404]);
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// Every rate-limited public route shares the caller's quota and answers 429 `rate_limited`
/// once it is spent, before reading anything else (the body of a look-up included).
#[sqlx::test]
async fn every_limited_public_route_answers_429_once_the_quota_is_spent(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.api.public_rate_per_s = 1;
        s.api.public_burst = 1;
    })
    .await;
    let nil = "00000000-0000-0000-0000-000000000000";
    let routes = [
        ("GET", format!("/v1/records/{nil}")),
        ("GET", "/v1/records?limit=1".to_owned()),
        ("GET", format!("/v1/records/{nil}/proof")),
        ("POST", "/v1/lookup".to_owned()),
        ("GET", format!("/v1/thumbnails/{}", "0".repeat(64))),
        ("GET", "/log/checkpoint".to_owned()),
        ("GET", "/log/tile/0/000".to_owned()),
    ];
    for (method, path) in &routes {
        // At one request a second, three in a row cannot all pass.
        let mut codes = Vec::new();
        for _ in 0..3 {
            let request = match *method {
                "POST" => app.client.post(app.url(path)).body(b"not read".to_vec()),
                _ => app.client.get(app.url(path)),
            };
            let response = request.send().await.unwrap();
            if response.status() == 429 {
                codes.push(error_code(response).await);
            }
        }
        assert!(
            codes.iter().any(|code| code == "rate_limited"),
            "{method} {path}: {codes:?}"
        );
    }
}

#[sqlx::test]
async fn database_outage_gives_503_and_leaves_nothing_behind(pool: PgPool) {
    let target = "127.0.0.1:5432".parse().unwrap();
    let proxy = DbProxy::start(target).await;
    let options = (*pool.connect_options())
        .clone()
        .host("127.0.0.1")
        .port(proxy.addr.port());
    let via_proxy = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(options);
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(data_dir.path());
    // Requests wait in the batcher long enough for the outage to start mid-request.
    settings.limits.batch_delay_ms = 800;
    let identity = hallmark::provenance::SigningIdentity::load(&settings).unwrap();
    hallmark::store::signing_keys::register(&pool, &identity)
        .await
        .unwrap();
    let app = spawn_with(settings, via_proxy, data_dir);
    let key = crate::helpers::TestApp::key(&app, Role::Generator).await;

    assert_eq!(
        app.generate(&key, json!({"count": 2})).await.status(),
        StatusCode::CREATED
    );

    // The key is checked, the request waits for the model, then the database goes away before
    // the records are committed.
    let request = app.generate(&key, json!({"count": 3}));
    let outage = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.cut();
    };
    let (response, ()) = tokio::join!(request, outage);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(response).await, "database_unavailable");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    // Checked on the direct pool: only the first request's records and blobs exist.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM records")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 2);
    assert_eq!(app.blob_count(), 4, "no orphaned blob (2 images, 2 stores)");

    let mut recovered = false;
    for _ in 0..20 {
        if app.generate(&key, json!({"count": 1})).await.status() == StatusCode::CREATED {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "the service recovers when the database is back");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM records")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 3);
}

/// The seventeen pHashes registered for each image (the whole image's, then its windows') are
/// those `variant_phashes` gives for its pixels, in order.
#[sqlx::test]
async fn registered_variant_hashes_are_the_images_own(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Generator).await;
    let fingerprinter = hallmark::fingerprint::Fingerprinter::new();
    for id in app.generate_records(&key, 3, 11).await {
        let bytes = app.bytes_with_key(&key, &format!("/v1/images/{id}")).await;
        let id: uuid::Uuid = id.parse().unwrap();
        let pixels = image::load_from_memory(&bytes).unwrap();
        let stored: Vec<i64> = sqlx::query_scalar(
            "SELECT phash FROM record_hashes WHERE record_id = $1 ORDER BY variant",
        )
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        let expected: Vec<i64> =
            hallmark::fingerprint::align::variant_phashes(&fingerprinter, &pixels)
                .into_iter()
                .map(hallmark::fingerprint::phash_to_db)
                .collect();
        assert_eq!(expected.len(), 17);
        assert_eq!(stored, expected, "record {id}");
    }
}
