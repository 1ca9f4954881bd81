//! Durable Content Credentials: the soft-binding assertion, the manifest repository, the C2PA Soft
//! Binding Resolution API (`/c2pa/v1`), recovery in verification, `hallmark backfill`.

use std::path::{Path, PathBuf};
use std::process::Command;

use hallmark::provenance::pki::CA_CERT_FILE;
use hallmark::store::api_keys::Role;
use image::{DynamicImage, ImageFormat};
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{error_code, spawn_app, TestApp};
use crate::verify::{cropped, decode, encode, half_size, stripped};

fn python() -> PathBuf {
    crate::fixtures::python()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

fn run_json(command: &mut Command) -> Value {
    let output = command.output().expect("python runs (HALLMARK_PYTHON)");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The ways a platform changes an image: metadata stripped, JPEG 75, half size, 10% cropped.
fn changed_copies(signed: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("stripped", stripped(signed)),
        ("jpeg75", encode(&decode(signed), ImageFormat::Jpeg)),
        ("half", half_size(signed)),
        ("crop10", cropped(signed)),
    ]
}

async fn post_content(app: &TestApp, bytes: Vec<u8>, query: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/c2pa/v1/matches/byContent{query}")))
        .header("Content-Type", "image/png")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// The matches of a query result, checked against the spec's `c2pa.softBindingQueryResult`:
/// `matches` an array of objects with a string `manifestId` and an integer `similarityScore`
/// from 0 to 100, and nothing else.
fn matches(body: &Value) -> Vec<(String, u64)> {
    let object = body.as_object().expect("an object");
    assert_eq!(object.keys().collect::<Vec<_>>(), ["matches"], "{body}");
    body["matches"]
        .as_array()
        .expect("matches is an array")
        .iter()
        .map(|m| {
            let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
            assert!(
                keys.iter()
                    .all(|k| ["manifestId", "similarityScore", "endpoint"].contains(&k.as_str())),
                "{m}"
            );
            let score = m["similarityScore"].as_u64().expect("an integer score");
            assert!(score <= 100);
            (
                m["manifestId"].as_str().expect("a string id").to_owned(),
                score,
            )
        })
        .collect()
}

/// A generated image stripped, re-encoded, resized and cropped is resolved by its content to
/// its manifest id; the manifest store fetched from the repository is validated by c2pa-python
/// against the original image (a sidecar): valid and trusted, signed by our key, declaring
/// `trainedAlgorithmicMedia`, with the soft-binding assertion. A fingerprint computed by an
/// independent implementation of docs/soft-binding.md resolves through `byBinding` too.
#[sqlx::test]
async fn changed_copies_resolve_to_a_store_that_c2pa_python_validates(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Generator).await;
    let (body, signed) = app.generate_one(&key, 21).await;
    let record_id = body["images"][0]["id"].as_str().unwrap().to_owned();
    let record: Value = app.get_json(&format!("/v1/records/{record_id}")).await;
    let manifest_id = record["manifest_id"].as_str().unwrap().to_owned();

    for (name, bytes) in changed_copies(&signed) {
        let response = post_content(&app, bytes, "?maxResults=5").await;
        assert_eq!(response.status(), 200, "{name}");
        let found = matches(&response.json().await.unwrap());
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert_eq!(found[0].0, manifest_id, "{name}");
        let floor = if name == "stripped" { 100 } else { 90 };
        assert!(found[0].1 >= floor, "{name}: score {}", found[0].1);
    }

    let response = app
        .client
        .get(app.url(&format!("/c2pa/v1/manifests/{manifest_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/c2pa");
    let store = response.bytes().await.unwrap();
    let active_only = app
        .client
        .get(app.url(&format!(
            "/c2pa/v1/manifests/{manifest_id}?returnActiveManifest=true"
        )))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(store, active_only);

    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.png");
    let sidecar = dir.path().join("manifest.c2pa");
    std::fs::write(&original, &signed).unwrap();
    std::fs::write(&sidecar, &store).unwrap();
    // The bare pixels (manifest stripped) validated against the sidecar: the hard binding of a
    // PNG covers the bytes around the manifest too, so the original file is the one to check.
    let anchors = app.settings.storage.keys_dir().join(CA_CERT_FILE);
    let reference = run_json(
        Command::new(python())
            .arg(script("c2pa_check.py"))
            .arg(&original)
            .arg("--anchors")
            .arg(&anchors)
            .arg("--manifest")
            .arg(&sidecar),
    );
    assert_eq!(reference["validation_state"], "Trusted", "{reference}");
    assert_eq!(reference["active_manifest"], manifest_id);
    assert_eq!(
        reference["digital_source_type"],
        hallmark::provenance::TRAINED_ALGORITHMIC_MEDIA
    );
    assert_eq!(reference["hallmark"]["record_id"], record_id);
    let binding = &reference["soft_binding"];
    assert_eq!(binding["alg"], "org.hallmark.fingerprint.1", "{reference}");
    let embedded = binding["blocks"][0]["value"].as_str().unwrap().to_owned();
    assert_eq!(
        hallmark::provenance::parse_soft_binding_value(&embedded),
        u64::from_str_radix(record["phash"].as_str().unwrap(), 16).ok(),
        "the soft-binding value is the record's pHash"
    );

    // A third party's fingerprint of the pixels, from the documentation alone.
    let stripped = dir.path().join("stripped.png");
    std::fs::write(&stripped, &changed_copies(&signed)[0].1).unwrap();
    resolves_by_iscc(&app, &reference, &signed, &stripped, &manifest_id).await;
    let theirs = run_json(
        Command::new(python())
            .arg(script("hallmark_fingerprint.py"))
            .arg(&stripped),
    );
    let value = theirs["value"].as_str().unwrap();
    let ours = hallmark::provenance::parse_soft_binding_value(&embedded).unwrap();
    let computed = hallmark::provenance::parse_soft_binding_value(value).unwrap();
    let distance = (ours ^ computed).count_ones();
    println!("independent fingerprint {value} vs embedded {embedded}: {distance} bits apart");
    assert!(distance <= 4, "{distance} bits apart");
    let response = app
        .client
        .get(app.url("/c2pa/v1/matches/byBinding"))
        .query(&[("alg", "org.hallmark.fingerprint.1"), ("value", value)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let found = matches(&response.json().await.unwrap());
    assert_eq!(
        found.first().map(|m| m.0.as_str()),
        Some(manifest_id.as_str())
    );
    assert_eq!(
        found[0].1,
        (100.0 * (64 - distance) as f64 / 64.0).round() as u64
    );
    // POST with the same query as JSON.
    let response = app
        .client
        .post(app.url("/c2pa/v1/matches/byBinding?maxResults=1"))
        .json(&serde_json::json!({"alg": "org.hallmark.fingerprint.1", "value": embedded}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let found = matches(&response.json().await.unwrap());
    assert_eq!(found, vec![(manifest_id.clone(), 100)]);

    // The verification report of a changed copy carries the recovered credentials.
    let moderator = app.key(Role::Moderator).await;
    let jpeg = changed_copies(&signed).remove(1).1;
    let report: Value = app
        .client
        .post(app.url("/v1/verify"))
        .bearer_auth(&moderator)
        .header("Content-Type", "application/octet-stream")
        .body(jpeg)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["provenance"]["state"], "no_manifest");
    let recovered = &report["recovered"];
    assert_eq!(recovered["manifest_id"], manifest_id, "{report}");
    assert_eq!(recovered["provenance"]["state"], "trusted");
    assert_eq!(recovered["provenance"]["hallmark"]["record_id"], record_id);
    assert!(recovered["upload_differs"]
        .as_str()
        .unwrap()
        .contains("re-encoded"));
    assert!(report["explanation"]
        .to_string()
        .contains("recovered from Hallmark's manifest repository"));
}

/// The listed soft binding (`io.iscc.v0`): the manifest's ISCC Content-Code Image is the
/// reference implementation's (iscc-core, `scripts/iscc_image_code.py`) for the stripped image, bit
/// for bit, and resolves to the manifest through `byBinding` (GET and POST); so do the codes
/// iscc-core computes for the re-encoded and the half-size copies, and `byContent` with
/// `alg=io.iscc.v0`.
async fn resolves_by_iscc(
    app: &TestApp,
    reference: &Value,
    signed: &[u8],
    stripped: &Path,
    manifest_id: &str,
) {
    use base64::Engine as _;
    let binding = reference["soft_bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["alg"] == "io.iscc.v0")
        .unwrap_or_else(|| panic!("no io.iscc.v0 soft binding: {reference}"));
    // The second soft-binding assertion, `c2pa.soft-binding__1`: c2pa-python names it by its
    // base label and instance 1, and shows the byte string as standard base64.
    assert_eq!(
        (&binding["label"], &binding["instance"]),
        (&Value::from("c2pa.soft-binding"), &Value::from(1))
    );
    assert_eq!(binding["pad"], serde_json::json!([]));
    let embedded = binding["blocks"][0]["value"]
        .as_str()
        .expect("base64 of the byte string")
        .to_owned();
    let unit = base64::engine::general_purpose::STANDARD
        .decode(&embedded)
        .unwrap();
    assert_eq!(unit.len(), 34);
    assert_eq!(unit[..2], [0x21, 0x07], "a 256-bit Content-Code Image unit");
    let theirs = run_json(
        Command::new(python())
            .arg(script("iscc_image_code.py"))
            .arg(stripped),
    );
    println!("io.iscc.v0: {} = {embedded}", theirs["iscc"]);
    assert_eq!(theirs["value"], embedded.as_str(), "the reference's code");
    let by_binding = |value: String| {
        let request = app
            .client
            .get(app.url("/c2pa/v1/matches/byBinding"))
            .query(&[("alg", "io.iscc.v0"), ("value", value.as_str())]);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            matches(&response.json().await.unwrap())
        }
    };
    assert_eq!(
        by_binding(embedded.clone()).await,
        vec![(manifest_id.to_owned(), 100)]
    );
    let response = app
        .client
        .post(app.url("/c2pa/v1/matches/byBinding"))
        .json(&serde_json::json!({"alg": "io.iscc.v0", "value": embedded}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        matches(&response.json().await.unwrap()),
        vec![(manifest_id.to_owned(), 100)]
    );
    let dir = stripped.parent().unwrap();
    for (name, bytes) in changed_copies(signed) {
        if !["jpeg75", "half"].contains(&name) {
            continue;
        }
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &bytes).unwrap();
        let theirs = run_json(
            Command::new(python())
                .arg(script("iscc_image_code.py"))
                .arg(&path),
        );
        let found = by_binding(theirs["value"].as_str().unwrap().to_owned()).await;
        println!("io.iscc.v0 of {name}: {} → {found:?}", theirs["iscc"]);
        assert_eq!(
            found.first().map(|m| m.0.as_str()),
            Some(manifest_id),
            "{name}"
        );
        let response = post_content(app, bytes, "?alg=io.iscc.v0").await;
        assert_eq!(response.status(), 200, "{name}");
        let by_content = matches(&response.json().await.unwrap());
        assert_eq!(
            by_content.first().map(|m| m.0.as_str()),
            Some(manifest_id),
            "{name}"
        );
    }
}

/// Hostile and wrong input gets the spec's statuses with stable codes; the service answers on.
#[sqlx::test]
async fn the_resolution_api_refuses_bad_input_with_coded_errors(pool: PgPool) {
    let app = spawn_app(pool).await;
    let get = |path: String| {
        let request = app.client.get(app.url(&path));
        async move { request.send().await.unwrap() }
    };
    let alg = "org.hallmark.fingerprint.1";
    let cases = [
        (
            format!("/c2pa/v1/matches/byBinding?alg={alg}&value=%%%%"),
            400,
            "invalid_binding_value",
        ),
        (
            format!("/c2pa/v1/matches/byBinding?alg={alg}&value=AAAA"),
            400,
            "invalid_binding_value",
        ),
        (
            format!("/c2pa/v1/matches/byBinding?alg={alg}"),
            400,
            "invalid_binding_value",
        ),
        (
            "/c2pa/v1/matches/byBinding?alg=com.adobe.trustmark.P&value=AAAAAAAAAAA%3D".to_owned(),
            400,
            "unknown_algorithm",
        ),
        // io.iscc.v0: not an ISCC-SEQ (a unit cut short); a well-formed one with a 64-bit
        // Content-Code Image only (IEP-0020 matches 256-bit units).
        (
            "/c2pa/v1/matches/byBinding?alg=io.iscc.v0&value=AAAAAAAAAAA%3D".to_owned(),
            400,
            "invalid_binding_value",
        ),
        (
            "/c2pa/v1/matches/byBinding?alg=io.iscc.v0&value=IQEBAgMEBQYHCA%3D%3D".to_owned(),
            400,
            "invalid_binding_value",
        ),
        (
            format!("/c2pa/v1/matches/byBinding?alg={alg}&value=AAAAAAAAAAA%3D&maxResults=0"),
            400,
            "invalid_max_results",
        ),
        (
            format!(
                "/c2pa/v1/matches/byBinding?alg={alg}&value={}",
                "A".repeat(2000)
            ),
            414,
            "binding_value_too_long",
        ),
        (
            "/c2pa/v1/manifests/not-a-urn".to_owned(),
            400,
            "invalid_manifest_id",
        ),
        (
            "/c2pa/v1/manifests/urn:c2pa:00000000-0000-4000-8000-000000000000".to_owned(),
            404,
            "manifest_not_found",
        ),
    ];
    for (path, status, code) in cases {
        let response = get(path.clone()).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(error_code(response).await, code, "{path}");
    }
    // maxResults 10^9 is capped, not refused.
    let response = get(format!(
        "/c2pa/v1/matches/byBinding?alg={alg}&value=AAAAAAAAAAA%3D&maxResults=1000000000"
    ))
    .await;
    assert_eq!(response.status(), 200);
    assert!(matches(&response.json().await.unwrap()).is_empty());
    // A 100 KB value in a POST body.
    let response = app
        .client
        .post(app.url("/c2pa/v1/matches/byBinding"))
        .json(&serde_json::json!({"alg": alg, "value": "A".repeat(100_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "invalid_binding_value");
    // Not an image.
    let response = post_content(&app, b"%PDF-1.7 not an image".to_vec(), "").await;
    assert_eq!(response.status(), 415);
    assert_eq!(error_code(response).await, "unsupported_media_type");
    let response = post_content(&app, Vec::new(), "?alg=x").await;
    assert_eq!(response.status(), 400);
    // An image that is not ours: no match, not an error.
    let other = encode(
        &DynamicImage::ImageLuma8(image::GrayImage::from_fn(40, 40, |x, y| {
            image::Luma([((x * y) % 256) as u8])
        })),
        ImageFormat::Png,
    );
    let response = post_content(&app, other, "").await;
    assert_eq!(response.status(), 200);
    assert!(matches(&response.json().await.unwrap()).is_empty());
    // The service's algorithms, in the spec's shape.
    let algorithms: Value = app.get_json("/c2pa/v1/services/supportedAlgorithms").await;
    assert_eq!(
        algorithms,
        serde_json::json!({
            "watermarks": [],
            "fingerprints": [{"alg": alg}, {"alg": "io.iscc.v0"}]
        })
    );
    // A well-formed 256-bit ISCC Content-Code Image that matches nothing: no match, not an error.
    let response = get(format!(
        "/c2pa/v1/matches/byBinding?alg=io.iscc.v0&value=IQc{}%3D%3D",
        "A".repeat(43)
    ))
    .await;
    assert_eq!(response.status(), 200);
    assert!(matches(&response.json().await.unwrap()).is_empty());
    // Published in the OpenAPI document.
    let spec: Value = app.get_json("/openapi.json").await;
    for path in [
        "/c2pa/v1/matches/byBinding",
        "/c2pa/v1/matches/byContent",
        "/c2pa/v1/manifests/{manifestId}",
        "/c2pa/v1/services/supportedAlgorithms",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} in /openapi.json");
    }
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// With `c2pa_api.require_key`, the API wants a live key (any role).
#[sqlx::test]
async fn the_resolution_api_can_require_a_key(pool: PgPool) {
    let app = crate::helpers::spawn_app_with(pool, |settings| {
        settings.c2pa_api.require_key = true;
    })
    .await;
    let path = "/c2pa/v1/matches/byBinding?alg=org.hallmark.fingerprint.1&value=AAAAAAAAAAA%3D";
    let response = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "missing_api_key");
    let key = app.key(Role::Generator).await;
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Records made before the repository get their stores from `hallmark backfill`, which reads
/// them out of the stored signed images, and their ISCC codes, computed from those images; `gc`
/// keeps the stores.
#[sqlx::test]
async fn backfill_puts_old_records_stores_into_the_repository(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let key = app.key(Role::Generator).await;
    let (body, _) = app.generate_one(&key, 33).await;
    let record_id = body["images"][0]["id"].as_str().unwrap().to_owned();
    let record: Value = app.get_json(&format!("/v1/records/{record_id}")).await;
    let manifest_id = record["manifest_id"].as_str().unwrap().to_owned();
    let url = format!("/c2pa/v1/manifests/{manifest_id}");
    let before = app.client.get(app.url(&url)).send().await.unwrap();
    assert_eq!(before.status(), 200);
    let before = before.bytes().await.unwrap();
    let code: (i64, i64, i64, i64) =
        sqlx::query_as("SELECT w0, w1, w2, w3 FROM record_iscc WHERE record_id = $1::uuid")
            .bind(&record_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    // As a record made before migration 5 (the repository) and before `record_iscc` would be.
    sqlx::query("UPDATE records SET manifest_sha256 = NULL")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM record_iscc")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        app.client.get(app.url(&url)).send().await.unwrap().status(),
        404
    );
    let database = pool.connect_options().get_database().unwrap().to_owned();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_hallmark"))
            .args(args)
            .env(
                "HALLMARK__DATABASE__URL",
                format!("postgres://postgres@127.0.0.1:5432/{database}"),
            )
            .env(
                "HALLMARK__STORAGE__DATA_DIR",
                &app.settings.storage.data_dir,
            )
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "hallmark {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let printed = run(&["backfill"]);
    assert!(printed.contains("1 stores added, 0 records"), "{printed}");
    assert!(
        printed.contains("1 added, 0 records without one"),
        "{printed}"
    );
    let backfilled: (i64, i64, i64, i64) =
        sqlx::query_as("SELECT w0, w1, w2, w3 FROM record_iscc WHERE record_id = $1::uuid")
            .bind(&record_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        backfilled, code,
        "the code of the stored image is the one signed"
    );
    let after = app.client.get(app.url(&url)).send().await.unwrap();
    assert_eq!(after.status(), 200);
    assert_eq!(
        after.bytes().await.unwrap(),
        before,
        "the very bytes embedded"
    );
    let printed = run(&["gc", "--grace-minutes", "0"]);
    assert!(printed.contains("0 removed"), "{printed}");
    let again = run(&["backfill"]);
    assert!(
        again.contains("0 stores added") && again.contains("0 added"),
        "{again}"
    );
}
