//! `POST /v1/verify`, `POST /v1/lookup` and `GET /v1/checks` against the real app: our images
//! as served, stripped, re-encoded, resized and cropped; other producers' files; real photos of
//! the training domain; hostile and broken uploads.

use std::io::Cursor;
use std::path::PathBuf;
use std::time::Duration;

use hallmark::gan::data::{Dataset, Split};
use hallmark::provenance::pki::init_pki;
use hallmark::provenance::{ImageClaim, ProvenanceSigner, SigningIdentity};
use hallmark::registry::index::HashIndex;
use hallmark::store::api_keys::Role;
use image::{DynamicImage, GrayImage, ImageFormat};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{crc32, error_code, spawn_app, TestApp};

/// Another producer's file made by c2pa-python (`tests/fixtures`): `valid.jpg` (AI-declared, by
/// a CA this service does not trust), `tampered.jpg`, `ingredient.jpg`, `untrusted.jpg`.
fn made(name: &str) -> Vec<u8> {
    crate::fixtures::made_by_c2pa_python().bytes(name)
}

pub(crate) fn decode(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).unwrap()
}

pub(crate) fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    match format {
        ImageFormat::Jpeg => {
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 75);
            image.to_rgb8().write_with_encoder(encoder).unwrap();
        }
        other => image.write_to(&mut out, other).unwrap(),
    }
    out.into_inner()
}

/// The pixels again, in a fresh PNG: every byte of metadata (the manifest) gone.
pub(crate) fn stripped(bytes: &[u8]) -> Vec<u8> {
    encode(&decode(bytes), ImageFormat::Png)
}

pub(crate) fn half_size(bytes: &[u8]) -> Vec<u8> {
    let image = decode(bytes);
    let (w, h) = (image.width() / 2, image.height() / 2);
    encode(
        &image.resize_exact(w, h, image::imageops::FilterType::Triangle),
        ImageFormat::Png,
    )
}

/// A 90% x 90% window from the top-left corner: 10% of each side cut away.
pub(crate) fn cropped(bytes: &[u8]) -> Vec<u8> {
    let image = decode(bytes);
    let (w, h) = (image.width() * 9 / 10, image.height() * 9 / 10);
    encode(&image.crop_imm(0, 0, w, h), ImageFormat::Png)
}

/// A real Fashion-MNIST test image (28x28 grey, as distributed), as a PNG.
pub(crate) fn real_test_image(index: usize) -> Vec<u8> {
    let dir = PathBuf::from("/usr/share/datasets/fashion-mnist");
    let data = Dataset::idx_split(&dir, Split::Test, 32, 1).unwrap();
    let image = GrayImage::from_raw(32, 32, data.image_bytes(index).to_vec()).unwrap();
    encode(&DynamicImage::ImageLuma8(image), ImageFormat::Png)
}

/// Generated images (PNG, signed, registered) as served.
pub(crate) async fn our_images(app: &TestApp, count: u32) -> Vec<Vec<u8>> {
    let key = app.key(Role::Generator).await;
    let response = app
        .generate(&key, serde_json::json!({ "count": count, "seed": 11 }))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let mut images = Vec::new();
    for image in body["images"].as_array().unwrap() {
        images.push(
            app.bytes_with_key(&key, image["image_url"].as_str().unwrap())
                .await,
        );
    }
    images
}

async fn verify_raw(app: &TestApp, key: &str, bytes: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url("/v1/verify"))
        .bearer_auth(key)
        .header("Content-Type", "application/octet-stream")
        .timeout(Duration::from_secs(20))
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn report(app: &TestApp, key: &str, bytes: Vec<u8>) -> Value {
    let response = verify_raw(app, key, bytes).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("server-timing"));
    response.json().await.unwrap()
}

#[sqlx::test]
async fn our_image_is_found_as_served_stripped_reencoded_resized_and_cropped(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Moderator).await;
    let ours = our_images(&app, 4).await;

    let signed = report(&app, &key, ours[0].clone()).await;
    assert_eq!(signed["verdict"], "hallmark_generated", "{signed}");
    assert_eq!(signed["provenance"]["state"], "trusted");
    assert_eq!(signed["registry"]["match"], "file_sha256");
    let record_id = signed["registry"]["record"]["id"].clone();
    assert_eq!(signed["provenance"]["hallmark"]["record_id"], record_id);
    assert_eq!(signed["registry"]["record"]["signature_valid"], true);
    assert_eq!(signed["tampered"], false);
    assert!(signed["check_id"].is_string());

    let bare = report(&app, &key, stripped(&ours[0])).await;
    assert_eq!(bare["verdict"], "hallmark_generated", "{bare}");
    assert_eq!(bare["provenance"]["state"], "no_manifest");
    assert_eq!(bare["registry"]["match"], "pixel_sha256");
    assert_eq!(bare["registry"]["record"]["id"], record_id);

    // Each transform on every image: found, by perceptual hash, as its own original.
    for (i, original) in ours.iter().enumerate() {
        let id = report(&app, &key, original.clone()).await["registry"]["record"]["id"].clone();
        for (name, bytes) in [
            (
                "jpeg75",
                encode(&decode(&stripped(original)), ImageFormat::Jpeg),
            ),
            ("half", half_size(original)),
            ("crop10", cropped(original)),
        ] {
            let r = report(&app, &key, bytes).await;
            assert_eq!(r["verdict"], "hallmark_generated", "image {i} {name}: {r}");
            assert_eq!(r["registry"]["match"], "phash", "image {i} {name}");
            assert_eq!(r["registry"]["record"]["id"], id, "image {i} {name}");
            let distance = r["registry"]["distance"].as_u64().unwrap();
            assert!(distance <= r["registry"]["max_distance"].as_u64().unwrap());
        }
    }
}

#[sqlx::test]
async fn other_producers_real_images_and_tampering(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Moderator).await;
    our_images(&app, 2).await;

    // Another producer's valid manifest (its signer is not ours, nor trusted here).
    let other = report(&app, &key, made("valid.jpg")).await;
    assert_eq!(other["provenance"]["state"], "valid_untrusted", "{other}");
    assert!(other["provenance"]["hallmark"].is_null());
    assert!(other["registry"]["match"].is_null());
    assert_ne!(other["verdict"], "hallmark_generated");
    assert_eq!(other["tampered"], false);

    let tampered = report(&app, &key, made("tampered.jpg")).await;
    assert_eq!(tampered["tampered"], true, "{tampered}");
    assert_eq!(tampered["provenance"]["state"], "invalid");
    assert!(tampered["provenance"]["failures"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "assertion.dataHash.mismatch"));

    // A real photograph of the model's own domain: not ours, and the detector does not flag it.
    let real = report(&app, &key, real_test_image(0)).await;
    assert_eq!(real["verdict"], "no_evidence", "{real}");
    assert!(real["registry"]["match"].is_null());
    let detector = &real["detector"];
    assert_eq!(detector["out_of_domain"], false, "{detector}");
    assert!(detector["probability"].as_f64().unwrap() < detector["threshold"].as_f64().unwrap());
    assert!(real["explanation"].as_array().unwrap().len() >= 3);
}

/// An untrusted producer's declaration counts only where the operator accepts untrusted
/// declarations (`verify.accept_untrusted_declarations`; by default it is shown but does not count,
/// see `other_producers_histories_and_trust_lists`).
#[sqlx::test]
async fn another_producers_ai_declaration_is_reported(pool: PgPool) {
    let app = crate::helpers::spawn_app_with(pool, |settings| {
        settings.verify.accept_untrusted_declarations = true;
    })
    .await;
    let key = app.key(Role::Moderator).await;
    // A different organisation's identity signs an image that we never registered.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut settings = app.settings.clone();
    settings.storage.data_dir = elsewhere.path().to_owned();
    init_pki(&settings.storage.keys_dir(), 30, None).unwrap();
    let signer = ProvenanceSigner::new(SigningIdentity::load(&settings).unwrap(), None).unwrap();
    let picture = DynamicImage::ImageLuma8(GrayImage::from_fn(32, 32, |x, y| {
        image::Luma([((x * 7 + y * 3) % 256) as u8])
    }));
    let claim = ImageClaim {
        record_id: uuid::Uuid::now_v7(),
        model: "elsewhere".into(),
        model_version: "1".into(),
        seed: 1,
        phash: 0,
        title: "elsewhere.png".into(),
        format: hallmark::provenance::ImageFormat::Png,
        device: "cpu".into(),
    };
    let signed = signer
        .sign_image(&claim, &encode(&picture, ImageFormat::Png))
        .unwrap();

    let r = report(&app, &key, signed.bytes).await;
    assert_eq!(r["provenance"]["state"], "valid_untrusted", "{r}");
    assert!(r["provenance"]["hallmark"].is_null(), "not our key: {r}");
    assert_eq!(r["verdict"], "ai_generated_declared", "{r}");
}

#[sqlx::test]
async fn bad_uploads_get_coded_4xx_and_the_server_stays_up(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Moderator).await;
    let png = stripped(&real_test_image(1));
    let mut huge_header = png.clone();
    // IHDR width and height (bytes 16..24) claim 100000 x 100000, with a correct chunk CRC.
    huge_header[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge_header[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&huge_header[12..29]);
    huge_header[29..33].copy_from_slice(&crc.to_be_bytes());
    let cases = [
        (
            "text",
            b"hello, not an image".to_vec(),
            415,
            "unsupported_media_type",
        ),
        ("empty", Vec::new(), 400, "empty_upload"),
        (
            "truncated",
            png[..png.len() / 2].to_vec(),
            422,
            "corrupt_image",
        ),
        ("bomb", huge_header, 422, "image_too_large"),
        (
            "tiff",
            crate::fixtures::many_ifd_tiff(20_000),
            415,
            "unsupported_media_type",
        ),
    ];
    for (name, bytes, status, code) in cases {
        let response = verify_raw(&app, &key, bytes.clone()).await;
        assert_eq!(response.status(), status, "{name}");
        assert_eq!(error_code(response).await, code, "{name}");
        // The public look-up refuses the same way.
        let response = app
            .client
            .post(app.url("/v1/lookup"))
            .timeout(Duration::from_secs(20))
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "lookup {name}");
    }
    let too_big = vec![0u8; app.settings.limits.max_request_bytes + 1];
    let response = verify_raw(&app, &key, too_big).await;
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "payload_too_large");
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM checks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "refused uploads are not checks");
}

#[sqlx::test]
async fn a_batch_answers_every_file_even_with_a_bad_one(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Moderator).await;
    let ours = our_images(&app, 1).await;
    let form = Form::new()
        .part("file", Part::bytes(ours[0].clone()).file_name("ours.png"))
        .part("file", Part::bytes(b"junk".to_vec()).file_name("notes.txt"))
        .part(
            "file",
            Part::bytes(made("valid.jpg")).file_name("../../C.jpg"),
        );
    let response = app
        .client
        .post(app.url("/v1/verify"))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["file_name"], "ours.png");
    assert_eq!(results[0]["report"]["verdict"], "hallmark_generated");
    assert_eq!(results[1]["error"]["code"], "unsupported_media_type");
    assert_eq!(results[1]["error"]["status"], 415);
    assert_eq!(results[2]["file_name"], "C.jpg", "path parts are dropped");
    assert_eq!(
        results[2]["report"]["provenance"]["state"],
        "valid_untrusted"
    );

    let form = Form::new().text("note", "no files here");
    let response = app
        .client
        .post(app.url("/v1/verify"))
        .bearer_auth(&key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "no_files");
}

#[sqlx::test]
async fn checks_are_stored_listed_paged_and_filtered(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Moderator).await;
    let ours = our_images(&app, 2).await;
    for bytes in [
        ours[0].clone(),
        ours[1].clone(),
        real_test_image(2),
        made("valid.jpg"),
    ] {
        report(&app, &key, bytes).await;
    }
    let get = |path: String| {
        let request = app.client.get(app.url(&path)).bearer_auth(&key);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    let first = get("/v1/checks?limit=3".into()).await;
    let page = first["checks"].as_array().unwrap();
    assert_eq!(page.len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get(format!("/v1/checks?limit=3&cursor={cursor}")).await;
    assert_eq!(second["checks"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
    // Newest first; the oldest is the first upload, stored with its file's SHA-256.
    assert_eq!(second["checks"][0]["verdict"], "hallmark_generated");
    assert_eq!(
        second["checks"][0]["file_sha256"],
        hex::encode(hallmark::fingerprint::sha256(&ours[0]))
    );
    assert_eq!(page[0]["key_name"], "test");

    let ours_only = get("/v1/checks?verdict=hallmark_generated".into()).await;
    assert_eq!(ours_only["checks"].as_array().unwrap().len(), 2);
    let id = ours_only["checks"][0]["id"].as_str().unwrap();
    let one = get(format!("/v1/checks/{id}")).await;
    assert_eq!(one["report"]["check_id"], id);
    assert_eq!(one["report"]["verdict"], "hallmark_generated");

    for bad in ["limit=0", "limit=101", "cursor=nope", "verdict=maybe"] {
        let response = app
            .client
            .get(app.url(&format!("/v1/checks?{bad}")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }
}

#[sqlx::test]
async fn lookup_is_public_answers_provenance_and_registry_and_stores_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    let ours = our_images(&app, 1).await;
    let response = app
        .client
        .post(app.url("/v1/lookup"))
        .multipart(Form::new().part("file", Part::bytes(stripped(&ours[0])).file_name("x.png")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let r: Value = response.json().await.unwrap();
    assert_eq!(r["verdict"], "hallmark_generated");
    assert_eq!(r["registry"]["match"], "pixel_sha256");
    assert!(r["detector"].is_null());
    assert!(r["check_id"].is_null());
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM checks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[sqlx::test]
async fn every_verification_route_checks_the_key(pool: PgPool) {
    let app = spawn_app(pool).await;
    let generator = app.key(Role::Generator).await;
    let moderator = app.key(Role::Moderator).await;
    let admin = app.key(Role::Admin).await;
    let image = real_test_image(3);
    let check_id = report(&app, &moderator, image.clone()).await["check_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let routes = [
        ("POST", "/v1/verify".to_owned()),
        ("GET", "/v1/checks".to_owned()),
        ("GET", format!("/v1/checks/{check_id}")),
    ];
    for (method, path) in &routes {
        let request = |key: Option<&str>| {
            let mut request = match *method {
                "POST" => app.client.post(app.url(path)).body(image.clone()),
                _ => app.client.get(app.url(path)),
            };
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            request.send()
        };
        let none = request(None).await.unwrap();
        assert_eq!(none.status(), 401, "{method} {path}");
        assert_eq!(error_code(none).await, "missing_api_key");
        let wrong = request(Some("hm_not_a_key")).await.unwrap();
        assert_eq!(wrong.status(), 401, "{method} {path}");
        assert_eq!(error_code(wrong).await, "invalid_api_key");
        let generator = request(Some(&generator)).await.unwrap();
        assert_eq!(generator.status(), 403, "{method} {path}");
        assert_eq!(error_code(generator).await, "forbidden");
        assert_eq!(
            request(Some(&admin)).await.unwrap().status(),
            200,
            "{method} {path}"
        );
    }
}

/// For each registered hash (there must be `expected`), a query as an upload is looked up: the
/// hash with 0, 1, ... `spread - 1` bits flipped (cycling), and a second, unrelated hash.
async fn queries_near_stored_hashes(
    pool: &PgPool,
    expected: usize,
    spread: usize,
) -> Vec<[u64; 2]> {
    let stored: Vec<i64> = sqlx::query_scalar("SELECT phash FROM record_hashes ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), expected, "seventeen variant hashes per image");
    let mut flips = 0x2545_f491_4f6c_dd1d_u64;
    stored
        .iter()
        .enumerate()
        .map(|(i, &phash)| {
            let mut query = hallmark::fingerprint::phash_from_db(phash);
            for _ in 0..(i % spread) {
                flips ^= flips << 13;
                flips ^= flips >> 7;
                flips ^= flips << 17;
                query ^= 1 << (flips % 64);
            }
            [query, query.rotate_left(9)]
        })
        .collect()
}

#[sqlx::test]
async fn the_multi_index_search_finds_what_a_full_scan_finds(pool: PgPool) {
    use hallmark::registry::{candidates, candidates_by_scan};
    let app = spawn_app(pool).await;
    our_images(&app, 6).await;
    let queries = queries_near_stored_hashes(&app.pool, 102, 16).await;
    for queries in queries {
        let query = queries[0];
        for max_distance in [4, 10, 14] {
            let by_index = candidates(&app.pool, &queries, max_distance, 100)
                .await
                .unwrap();
            let by_scan = candidates_by_scan(&app.pool, &queries, max_distance, 100)
                .await
                .unwrap();
            assert_eq!(
                by_index, by_scan,
                "query {query:016x} within {max_distance}"
            );
        }
    }
}

async fn wait_for_records(index: &HashIndex, records: usize) {
    for _ in 0..500 {
        if index.status().in_step && index.status().records == records {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("index never held {records} records: {:?}", index.status());
}

/// A second replica's in-memory index: loads what is registered, follows new records through
/// PostgreSQL's notifications, reloads after losing its connection, and answers exactly what the
/// database's full scan answers.
#[sqlx::test]
async fn the_memory_index_follows_the_database_and_agrees_with_a_scan(pool: PgPool) {
    use hallmark::registry::candidates_by_scan;
    let app = spawn_app(pool).await;
    let key = app.key(Role::Generator).await;
    app.generate_records(&key, 3, 5).await;

    let replica = HashIndex::new();
    let sync = replica.spawn_sync(app.pool.clone());
    wait_for_records(&replica, 3).await;
    assert_eq!(
        replica.status().hashes,
        51,
        "seventeen variant hashes per record"
    );
    assert_eq!(replica.status().loads, 1);

    // Made by the other process after the load: reaches the replica by notification.
    let later = app.generate_records(&key, 2, 6).await;
    wait_for_records(&replica, 5).await;

    // The listening connection dies: the replica loads everything again and keeps following.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the replica's listener was found");
    for _ in 0..500 {
        if replica.status().loads >= 2 && replica.status().in_step {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(replica.status().loads >= 2, "{:?}", replica.status());
    app.generate_records(&key, 1, 7).await;
    wait_for_records(&replica, 6).await;

    // The service's own index has every record as well, and /readyz says so.
    let ready: Value = app.get_json("/readyz").await;
    assert_eq!(ready["index"]["records"], 6, "{ready}");
    assert_eq!(ready["index"]["in_step"], true);

    for queries in queries_near_stored_hashes(&app.pool, 102, 20).await {
        let query = queries[0];
        for max_distance in [4, 14, 20] {
            let by_scan = candidates_by_scan(&app.pool, &queries, max_distance, 100)
                .await
                .unwrap();
            assert_eq!(
                replica.search(&queries, max_distance, 100),
                Some(by_scan),
                "query {query:016x} within {max_distance}"
            );
        }
    }
    let everything = replica.search(&[0], 64, 100).unwrap();
    assert!(later
        .iter()
        .all(|id| everything.iter().any(|(r, _)| r.to_string() == *id)));
    sync.abort();
}

/// Another producer's multi-step history through the public look-up: the tree, the declaration
/// that does not count from an untrusted signer, the thumbnails served by hash (and nothing else
/// served by that route); then the same file trusted through a named list, which the report
/// names, and a list that cannot load shown in `/readyz`.
#[sqlx::test]
async fn other_producers_histories_and_trust_lists(pool: PgPool) {
    use hallmark::config::{TrustListKind, TrustListSettings};
    let set = crate::fixtures::made_by_c2pa_python();
    let producer_ca = set.producer_ca.to_string_lossy().into_owned();
    let app = crate::helpers::spawn_app_with(pool, |settings| {
        settings.provenance.trust_lists = vec![
            TrustListSettings {
                name: "c2pa-trust-list".into(),
                source: producer_ca,
                refresh_s: 3600,
                kind: TrustListKind::Signer,
            },
            TrustListSettings {
                name: "unreachable".into(),
                source: "http://127.0.0.1:1/list.pem".into(),
                refresh_s: 3600,
                kind: TrustListKind::Signer,
            },
        ];
    })
    .await;
    let lookup = |bytes: Vec<u8>| {
        let request = app
            .client
            .post(app.url("/v1/lookup"))
            .header("Content-Type", "application/octet-stream")
            .body(bytes);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };

    // history.jpg: published by the stranger (no list trusts it) over the producer's edit.
    let report = lookup(made("history.jpg")).await;
    let provenance = &report["provenance"];
    assert_eq!(provenance["state"], "valid_untrusted", "{report}");
    assert!(provenance["trusted_by"].is_null());
    let history = &provenance["history"];
    assert_eq!(history["manifests"], 4, "{history}");
    let parent = &history["manifest"]["ingredients"][0];
    assert_eq!(parent["state"], "trusted");
    assert_eq!(parent["manifest"]["actions"][1]["action"], "c2pa.cropped");
    assert_eq!(
        report["verdict"], "no_evidence",
        "an untrusted declaration does not count"
    );
    let text = report["explanation"].to_string();
    assert!(text.contains("does not count"), "{text}");

    // Thumbnails by hash, with their own type; nothing else under that route.
    let thumbnail = parent["thumbnail"]["url"]
        .as_str()
        .or_else(|| history["manifest"]["ingredients"][1]["thumbnail"]["url"].as_str())
        .expect("the C2PA SDK made ingredient thumbnails");
    let response = app.client.get(app.url(thumbnail)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("image/"));
    let sha = thumbnail.rsplit('/').next().unwrap();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(hex::encode(hallmark::fingerprint::sha256(&bytes)), sha);
    let missing = app
        .client
        .get(app.url(&format!("/v1/thumbnails/{}", "0".repeat(64))))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(error_code(missing).await, "thumbnail_not_found");
    let bad = app
        .client
        .get(app.url("/v1/thumbnails/..%2F..%2Fetc%2Fpasswd"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // ingredient.jpg: the producer, trusted through the named list; its parent declares AI.
    let report = lookup(made("ingredient.jpg")).await;
    assert_eq!(report["provenance"]["state"], "trusted", "{report}");
    assert_eq!(report["provenance"]["trusted_by"], "c2pa-trust-list");
    assert_eq!(report["verdict"], "ai_generated_declared");
    let text = report["explanation"].to_string();
    assert!(
        text.contains("the ingredient \\\"valid.jpg\\\"") && text.contains("c2pa-trust-list"),
        "{text}"
    );

    // The list that cannot load is in /readyz with its error; the service is ready regardless.
    let ready: Value = app.get_json("/readyz").await;
    let lists = ready["trust_lists"].as_array().unwrap();
    let named = |name: &str| lists.iter().find(|l| l["name"] == name).unwrap().clone();
    assert_eq!(named("hallmark")["source"], "built-in");
    assert!(named("c2pa-trust-list")["anchors"].as_u64().unwrap() >= 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while named_error(&app).await.is_none() {
        assert!(std::time::Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn named_error(app: &TestApp) -> Option<String> {
    let ready: Value = app.get_json("/readyz").await;
    ready["trust_lists"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == "unreachable")?["error"]
        .as_str()
        .map(str::to_owned)
}

/// Another producer's edit of an image Hallmark made: still ours, "edited after generation by".
#[sqlx::test]
async fn our_image_edited_by_another_producer_is_recognised(pool: PgPool) {
    let set = crate::fixtures::made_by_c2pa_python();
    let hallmark_settings = set.hallmark.clone();
    let app = crate::helpers::spawn_app_with(pool, move |settings| {
        // The keys that signed the Hallmark image inside the edit are this service's.
        settings.storage.data_dir = hallmark_settings.storage.data_dir.clone();
    })
    .await;
    let key = app.key(Role::Moderator).await;
    let report = report(&app, &key, made("hallmark-edited.png")).await;
    assert_eq!(report["verdict"], "hallmark_generated", "{report}");
    assert!(report["provenance"]["hallmark"].is_null());
    let text = report["explanation"].to_string();
    assert!(
        text.contains(&set.hallmark_record.to_string())
            && text.contains("edited after generation by fixture-maker/1.0"),
        "{text}"
    );
}

#[sqlx::test]
async fn format_crjson_answers_the_manifest_store_as_crjson_and_stores_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    let ours = our_images(&app, 1).await;
    let key = app.key(Role::Moderator).await;
    let crjson = |format: &'static str, bytes: Vec<u8>| {
        app.client
            .post(app.url(&format!("/v1/verify?format={format}")))
            .bearer_auth(&key)
            .header("Content-Type", "application/octet-stream")
            .timeout(Duration::from_secs(20))
            .body(bytes)
            .send()
    };
    let response = crjson("crjson", ours[0].clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    // c2pa-rs's crJSON: the manifests, with the validation results of a trusted signer (the
    // service's own root is on its `hallmark` list).
    let text = document.to_string();
    assert!(text.contains("signingCredential.trusted"), "{document:#}");
    assert!(text.contains("org.hallmark.generation"), "{document:#}");
    assert!(text.contains("io.iscc.v0"), "{document:#}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM checks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "a crJSON read is not a check");
    // What has no crJSON says why, with a stable code.
    let cases = [
        ("crjson", stripped(&ours[0]), 422, "no_manifest"),
        (
            "crjson",
            b"GIF89a not ours".to_vec(),
            415,
            "unsupported_media_type",
        ),
        ("crjson", Vec::new(), 400, "empty_upload"),
        ("yaml", ours[0].clone(), 400, "invalid_format"),
    ];
    for (format, bytes, status, code) in cases {
        let response = crjson(format, bytes).await.unwrap();
        assert_eq!(response.status(), status, "{format} {code}");
        assert_eq!(error_code(response).await, code);
    }
    // The default is still the stored report.
    let response = crjson("report", ours[0].clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["verdict"], "hallmark_generated");
    assert!(report["check_id"].is_string());
}
