//! Regression tests for denial-of-service and integrity defects: each request here once stalled
//! the service, held its memory, grew its metrics without bound, or was misreported. The client
//! timeouts are generous limits on a hang, not measurements.

use std::io::Cursor;
use std::time::Duration;

use hallmark::store::api_keys::Role;
use image::{DynamicImage, GrayImage};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{crc32, error_code, spawn_app, spawn_app_with, TestApp};

/// Longest a refused request may take to be answered before the test calls it a hang.
const HANG: Duration = Duration::from_secs(20);

/// A PNG at the best compression, as an attacker would make it (a 16-megapixel strip of zeros
/// is then 16 KB).
fn png(image: &DynamicImage) -> Vec<u8> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut out = Cursor::new(Vec::new());
    let encoder =
        PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::NoFilter);
    image.write_with_encoder(encoder).unwrap();
    out.into_inner()
}

async fn lookup(app: &TestApp, bytes: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url("/v1/lookup"))
        .timeout(HANG)
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// Sends `head` (request line and headers, no blank line) and `body` on a raw connection, then
/// reads until the server answers (or closes); the status code and the whole answer.
async fn raw(app: &TestApp, head: &str, body: &[u8]) -> (u16, String) {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("{head}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(HANG, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    // Enough once the headers and a short JSON body are in.
                    let text = String::from_utf8_lossy(&answer);
                    if let Some((_, rest)) = text.split_once("\r\n\r\n") {
                        if rest.contains('}') {
                            break;
                        }
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to {head:?}: the request hung");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

#[sqlx::test]
async fn strips_are_refused_and_large_images_are_checked_on_a_bounded_copy(pool: PgPool) {
    // 16777216x1 and 1x16777216: small files that once took 12-43 s each in the hash stage.
    // (Encoded before the app starts: encoding takes a while, and an idle connection would be
    // closed meanwhile.)
    let strips: Vec<(u32, u32, Vec<u8>)> = [(16_777_216, 1), (1, 16_777_216)]
        .into_iter()
        .map(|(w, h)| (w, h, png(&DynamicImage::ImageLuma8(GrayImage::new(w, h)))))
        .collect();
    let big = png(&DynamicImage::ImageLuma8(GrayImage::from_fn(
        4096,
        4096,
        |x, y| image::Luma([((x / 16 + y / 32) % 256) as u8]),
    )));
    let app = spawn_app(pool).await;
    for (w, h, strip) in strips {
        assert!(strip.len() < 200_000, "{}", strip.len());
        let response = lookup(&app, strip).await;
        assert_eq!(response.status(), 422, "{w}x{h}");
        assert_eq!(error_code(response).await, "aspect_ratio_too_large");
    }
    // A 4096x4096 picture is within the limits and is checked.
    let response = lookup(&app, big).await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(
        (report["width"].as_u64(), report["height"].as_u64()),
        (Some(4096), Some(4096))
    );
    assert_eq!(report["verdict"], "no_evidence", "{report}");
}

#[sqlx::test]
async fn bodies_that_never_arrive_are_cut_off_and_hold_no_budget(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.limits.body_timeout_s = 1;
        s.limits.upload_memory_bytes = 25_000;
    })
    .await;
    // 10 GB announced: refused from the header, never read.
    let moderator = app.key(Role::Moderator).await;
    for (path, auth) in [
        ("/v1/lookup", String::new()),
        (
            "/v1/verify",
            format!("\r\nAuthorization: Bearer {moderator}"),
        ),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 10000000000{auth}"
        );
        let (status, text) = raw(&app, &head, b"").await;
        assert_eq!(status, 413, "{path}: {text}");
        assert!(text.contains("payload_too_large"), "{text}");
    }
    // Without a key, the moderators' route asks for one before anything is read.
    let head = "POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000";
    assert_eq!(raw(&app, head, b"").await.0, 401);
    // A body that stops halfway: 408 once the deadline passes.
    let head =
        "POST /v1/lookup HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 10000";
    let (status, text) = raw(&app, head, &[0x89, b'P', b'N', b'G']).await;
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("body_timeout"), "{text}");

    // Two stalled uploads of 10 kB hold 20 of the 25 kB budget; a third is turned away at once.
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(
                b"POST /v1/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n\x89PNG",
            )
            .await
            .unwrap();
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, text) = raw(
        &app,
        "POST /v1/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 10000",
        b"",
    )
    .await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("server_busy"), "{text}");
    // Their deadline passes, the budget comes back and a real upload is served.
    let mut stalled_status = Vec::new();
    for mut stream in stalled {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(HANG, stream.read(&mut buf))
            .await
            .expect("a stalled upload is answered")
            .unwrap();
        stalled_status.push(String::from_utf8_lossy(&buf[..n]).contains(" 408 "));
    }
    assert_eq!(stalled_status, [true, true]);
    let picture = DynamicImage::ImageLuma8(GrayImage::from_fn(32, 32, |x, y| {
        image::Luma([((x * 5 + y * 9) % 256) as u8])
    }));
    assert_eq!(lookup(&app, png(&picture)).await.status(), 200);
}

#[sqlx::test]
async fn made_up_methods_do_not_grow_the_metrics(pool: PgPool) {
    let app = spawn_app(pool).await;
    for n in 0..40 {
        let method = reqwest::Method::from_bytes(format!("ZQX{n}").as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
    }
    let metrics = app.metrics().await;
    assert!(!metrics.contains("ZQX"), "made-up methods became labels");
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
}

#[sqlx::test]
async fn the_rate_limit_believes_forwarded_addresses_only_from_trusted_proxies(pool: PgPool) {
    let id = uuid::Uuid::now_v7();
    let record_from = |app: &TestApp, client: &'static str| {
        app.client
            .get(app.url(&format!("/v1/records/{id}")))
            .header("X-Forwarded-For", client)
            .send()
    };
    // Behind a trusted proxy (the test's own address): each client has its own quota.
    let proxied = spawn_app_with(pool.clone(), |s| {
        s.api.public_rate_per_s = 1;
        s.api.public_burst = 1;
        s.api.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    assert_eq!(
        record_from(&proxied, "203.0.113.1").await.unwrap().status(),
        404
    );
    assert_eq!(
        record_from(&proxied, "203.0.113.2").await.unwrap().status(),
        404
    );
    assert_eq!(
        record_from(&proxied, "203.0.113.1").await.unwrap().status(),
        429
    );
    // Without it, the header is ignored: every request is the peer's.
    let direct = spawn_app_with(pool, |s| {
        s.api.public_rate_per_s = 1;
        s.api.public_burst = 1;
    })
    .await;
    assert_eq!(
        record_from(&direct, "203.0.113.1").await.unwrap().status(),
        404
    );
    let second = record_from(&direct, "203.0.113.2").await.unwrap();
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
}

#[sqlx::test]
async fn hostile_bodies_are_refused_quickly(pool: PgPool) {
    let app = spawn_app(pool).await;
    // A multipart body of 10^4 tiny fields.
    let mut form = Form::new();
    for n in 0..10_000 {
        form = form.text(format!("f{n}"), "x");
    }
    let response = app
        .client
        .post(app.url("/v1/lookup"))
        .timeout(HANG)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "too_many_parts");
    // A deeply nested JSON body.
    let key = app.key(Role::Generator).await;
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let response = app
        .client
        .post(app.url("/v1/generations"))
        .bearer_auth(&key)
        .timeout(HANG)
        .header("Content-Type", "application/json")
        .body(nested)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(["malformed_json", "invalid_body"].contains(&error_code(response).await.as_str()));
    // And the files limit still holds for the batch route.
    let file = || Part::bytes(vec![0u8; 8]).file_name("a.png");
    let mut form = Form::new();
    for _ in 0..=app.settings.verify.max_files {
        form = form.part("file", file());
    }
    let moderator = app.key(Role::Moderator).await;
    let response = app
        .client
        .post(app.url("/v1/verify"))
        .bearer_auth(&moderator)
        .timeout(HANG)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "too_many_files");
}

/// `png` with the data of every chunk of type `kind` overwritten by garbage (CRC kept valid).
fn garble_chunk(png: &[u8], kind: &[u8; 4]) -> (Vec<u8>, usize) {
    let mut out = png.to_vec();
    let mut at = 8;
    let mut garbled = 0;
    while at + 12 <= out.len() {
        let length = u32::from_be_bytes(out[at..at + 4].try_into().unwrap()) as usize;
        let (data, end) = (at + 8, at + 8 + length);
        if &out[at + 4..at + 8] == kind {
            for (i, byte) in out[data..end].iter_mut().enumerate() {
                *byte = (i as u8).wrapping_mul(37).wrapping_add(11);
            }
            let crc = crc32(&out[at + 4..end]);
            out[end..end + 4].copy_from_slice(&crc.to_be_bytes());
            garbled += 1;
        }
        at = end + 4;
    }
    (out, garbled)
}

#[sqlx::test]
async fn a_manifest_replaced_by_garbage_is_reported_tampered(pool: PgPool) {
    let app = spawn_app(pool).await;
    let key = app.key(Role::Generator).await;
    let (body, signed) = app.generate_one(&key, 5).await;
    // The C2PA manifest store of a PNG lives in its caBX chunk.
    let (garbled, chunks) = garble_chunk(&signed, b"caBX");
    assert_eq!(chunks, 1);
    let response = lookup(&app, garbled).await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["tampered"], true, "{report}");
    assert_eq!(report["provenance"]["damaged"], true, "{report}");
    assert_eq!(
        report["verdict"], "hallmark_generated",
        "the pixels are still ours"
    );
    assert_eq!(report["registry"]["record"]["id"], body["images"][0]["id"]);
    // The untouched file is not.
    let response = lookup(&app, signed).await;
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["tampered"], false, "{report}");
}

#[sqlx::test]
async fn orphan_blobs_are_collected_after_their_grace_and_records_keep_theirs(pool: PgPool) {
    use hallmark::store::blobs::{collect_garbage, Blobs};
    let app = spawn_app(pool).await;
    let key = app.key(Role::Generator).await;
    let response = app
        .generate(&key, serde_json::json!({ "count": 2, "seed": 8 }))
        .await;
    assert_eq!(response.status(), 201);
    let blobs = Blobs::from_settings(&app.settings.storage).unwrap();
    // What a crash between the blob and its record leaves behind.
    let orphan = bytes::Bytes::from_static(b"bytes whose record never committed");
    let orphan_sha = hallmark::fingerprint::sha256(&orphan);
    blobs.put(&orphan_sha, orphan).await.unwrap();
    // And what a crash in the middle of a write leaves: the local store's staging file.
    let hex = "cd".repeat(32);
    let staging_dir = app.settings.storage.blobs_dir().join("sha256/cd/cd");
    std::fs::create_dir_all(&staging_dir).unwrap();
    std::fs::write(staging_dir.join(format!("{hex}#3")), b"half a file").unwrap();
    // Two images and their two manifest stores, the orphan, the staging file.
    assert_eq!(app.blob_count(), 6);

    let young = collect_garbage(&app.pool, &blobs, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        (young.blobs, young.referenced, young.young, young.removed),
        (5, 4, 1, 0)
    );
    assert_eq!(young.staging_removed, 0);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let old = collect_garbage(&app.pool, &blobs, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        (old.referenced, old.removed, old.staging_removed),
        (4, 1, 1)
    );
    assert_eq!(app.blob_count(), 4);
    assert_eq!(blobs.get(&orphan_sha).await.unwrap(), None);
    // Every record still has its bytes.
    let body: Value = response.json().await.unwrap();
    for image in body["images"].as_array().unwrap() {
        let served = app
            .client
            .get(app.url(image["image_url"].as_str().unwrap()))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(served.status(), 200);
    }
}

#[sqlx::test]
async fn public_records_commit_to_the_key_instead_of_naming_it(pool: PgPool) {
    use hallmark::store::api_keys;
    use secrecy::ExposeSecret;
    let app = spawn_app(pool).await;
    let key = api_keys::create(&app.pool, "customer", Role::Generator)
        .await
        .unwrap();
    let secret = key.secret.expose_secret().to_owned();
    let (body, image) = app.generate_one(&secret, 3).await;
    let id = body["images"][0]["id"].as_str().unwrap().to_owned();

    let record = app.get_json(&format!("/v1/records/{id}")).await;
    assert!(
        record.get("api_key_id").is_none(),
        "public record names its key: {record}"
    );
    assert_eq!(record["encoding"], "hallmark-record-v2");
    assert_eq!(record["signature_valid"], true);
    assert_eq!(
        record["api_key_commitment"].as_str().map(str::len),
        Some(64)
    );
    // The public look-up's record hides it too; a moderator's check shows it.
    let public: Value = lookup(&app, image.clone()).await.json().await.unwrap();
    assert_eq!(public["registry"]["record"]["id"], id.as_str());
    assert!(
        public["registry"]["record"].get("api_key_id").is_none(),
        "{public}"
    );
    let moderator = app.key(Role::Moderator).await;
    let checked: Value = app
        .client
        .post(app.url("/v1/verify"))
        .bearer_auth(&moderator)
        .body(image)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        checked["registry"]["record"]["api_key_id"],
        key.info.id.to_string()
    );

    // Checked offline from the documented encoding by an implementation that shares no code
    // with the service (pure-Python Ed25519), with and without the key's holder's claim.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/independent/verify_record.py"
    );
    let run = |extra: &[String], input: &Value| {
        let mut child = std::process::Command::new(crate::helpers::python())
            .arg(script)
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python runs (HALLMARK_PYTHON)");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(run(&[], &record), "OK");
    assert_eq!(
        run(&["--api-key-id".into(), key.info.id.to_string()], &record),
        "OK"
    );
    let other = uuid::Uuid::now_v7().to_string();
    assert!(run(&["--api-key-id".into(), other], &record).starts_with("FAIL"));
    let mut edited = record.clone();
    edited["seed"] = serde_json::json!(record["seed"].as_u64().unwrap() + 1);
    assert!(
        run(&[], &edited).starts_with("FAIL"),
        "an edited record passes"
    );
}

#[sqlx::test]
async fn slow_header_connections_do_not_stop_other_clients(pool: PgPool) {
    let app = spawn_app(pool).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    // 500 connections that start a request and never finish its headers (slowloris).
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    // A normal client is still served, several times over, while they hang on.
    for _ in 0..5 {
        let response = app
            .client
            .get(app.url("/healthz"))
            .timeout(HANG)
            .send()
            .await
            .expect("served despite 500 slow connections");
        assert_eq!(response.status(), 200);
    }
    for stream in &mut slow {
        stream.write_all(b"1\r\n").await.unwrap();
    }
    drop(slow);
}
