//! The registry as a moderator meets it, checked with an image library other than ours: our
//! images and real Fashion-MNIST test images, each edited with Pillow (`scripts/pillow_edits.py`:
//! JPEG 90/75/50, WebP 75, resizes by every Pillow filter, resize + JPEG, crop + JPEG, a
//! one-pixel shift, a 2x upscale), sent to the public `POST /v1/lookup`. Our copies must be found
//! as their own record; no real garment may be.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{spawn_app, TestApp};
use crate::verify::{our_images, real_test_image};

/// `POST /v1/lookup` of `bytes` as the raw body; the report.
pub(crate) async fn lookup(app: &TestApp, bytes: Vec<u8>) -> Value {
    let response = app
        .client
        .post(app.url("/v1/lookup"))
        .header("Content-Type", "application/octet-stream")
        .timeout(Duration::from_secs(30))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Every Pillow edit of each file in `files`: (input index, edit name, bytes).
fn pillow_edits(files: &[Vec<u8>]) -> Vec<(usize, String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir(&input).unwrap();
    for (i, bytes) in files.iter().enumerate() {
        std::fs::write(input.join(format!("{i:03}.png")), bytes).unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pillow_edits.py");
    let status = Command::new(crate::helpers::python())
        .arg(&script)
        .arg(&input)
        .arg(&output)
        .status()
        .expect("python runs (HALLMARK_PYTHON)");
    assert!(status.success(), "{script:?} failed");
    let mut edits = Vec::new();
    for entry in std::fs::read_dir(&output).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // <index>.<edit>.<extension>; edit names hold dots ("0.5x-box").
        let (index, rest) = name.split_once('.').unwrap();
        let edit = rest.rsplit_once('.').unwrap().0.to_owned();
        edits.push((index.parse().unwrap(), edit, std::fs::read(&path).unwrap()));
    }
    edits.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    edits
}

#[sqlx::test]
async fn copies_edited_with_pillow_are_found_and_real_garments_are_not(pool: PgPool) {
    let app = spawn_app(pool).await;
    // 64 registered images, so real garments meet look-alike candidates; six are edited.
    let registered = our_images(&app, 64).await;
    let ours = &registered[..6];
    let mut ids = Vec::new();
    for bytes in ours {
        let found = lookup(&app, bytes.clone()).await;
        assert_eq!(found["registry"]["match"], "file_sha256");
        ids.push(found["registry"]["record"]["id"].clone());
    }
    let edits = pillow_edits(ours);
    assert_eq!(edits.len(), ours.len() * 18, "every edit of every image");
    let mut missed: BTreeMap<String, usize> = BTreeMap::new();
    let mut tiers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, edit, bytes) in edits {
        let r = lookup(&app, bytes).await;
        let registry = &r["registry"];
        if registry["record"]["id"] == ids[i] {
            assert_eq!(registry["match"], "phash", "image {i} {edit}: {registry}");
            let tier = registry["confirmation"].as_str().unwrap();
            assert!(["reenacted", "aligned"].contains(&tier), "{registry}");
            tiers.entry(edit.clone()).or_default().push(tier.to_owned());
            let similarity = registry["similarity"].as_f64().unwrap();
            assert!(similarity >= registry["min_similarity"].as_f64().unwrap());
            assert_eq!(r["verdict"], "hallmark_generated", "image {i} {edit}");
        } else {
            assert!(
                registry["record"].is_null(),
                "image {i} {edit} matched another record: {registry}"
            );
            *missed.entry(edit).or_default() += 1;
        }
    }
    // The study's targets are 99% (95% for JPEG 50 and resize + JPEG); on six images that is
    // every copy. Pillow's lossy WebP (libwebp 1.6) is re-enacted by Hallmark's libwebp 1.3.1
    // at the upload's own quantiser (src/fingerprint/webp.rs).
    assert!(missed.is_empty(), "copies not found: {missed:?}");
    assert_eq!(tiers["webp75"], vec!["reenacted"; ours.len()], "{tiers:?}");

    let real: Vec<Vec<u8>> = (0..24).map(real_test_image).collect();
    for (i, edit, bytes) in pillow_edits(&real) {
        let r = lookup(&app, bytes).await;
        assert!(
            r["registry"]["record"].is_null(),
            "real test image {i} ({edit}) matched: {}",
            r["registry"]
        );
    }
}
