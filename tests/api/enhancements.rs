//! `POST /v1/enhancements`: an upload enhanced by the served model, signed as an edit of the
//! upload, registered and logged; hostile forms refused with coded 4xx and nothing stored.

use hallmark::fingerprint::sha256;

use hallmark::store::api_keys::Role;
use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage};
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{error_code, spawn_app_with, TestApp};
use crate::registry::lookup;
use crate::verify::{encode, our_images, real_test_image, stripped};

/// A quick inversion: the tests check behaviour, not quality (docs/enhancement.md measures it).
async fn app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, |s| {
        s.enhancement.starts = 4;
        s.enhancement.steps = 8;
    })
    .await
}

fn png(image: &DynamicImage) -> Vec<u8> {
    encode(image, image::ImageFormat::Png)
}

async fn post(app: &TestApp, key: &str, form: Form) -> reqwest::Response {
    app.client
        .post(app.url("/v1/enhancements"))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

fn form(image: &[u8], fields: &[(&str, &str)]) -> Form {
    let mut form = Form::new().part("image", Part::bytes(image.to_vec()).file_name("in.png"));
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    form
}

/// An enhancement of one of our own images: signed as an edit whose parent is the upload (its
/// manifest carried along), registered with record encoding 3 (the upload's SHA-256 and the
/// operation signed), explained by a check, and found again once stripped; the same upload,
/// operation and seed give the same pixels.
#[sqlx::test]
async fn an_enhancement_is_signed_as_an_edit_registered_and_found_when_stripped(pool: PgPool) {
    let app = app(pool).await;
    let key = app.key(Role::Generator).await;
    let upload = our_images(&app, 1).await.remove(0);
    let fields = [("op", "inpaint"), ("rect", "10,12,12,12"), ("seed", "3")];
    let response = post(&app, &key, form(&upload, &fields)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["operation"], "inpaint");
    assert_eq!(answer["description"], "region 10,12 12x12 inpainted");
    assert_eq!(answer["seed"], 3);
    assert_eq!(answer["parent_sha256"], hex::encode(sha256(&upload)));
    let id = answer["image"]["id"].as_str().unwrap().to_owned();
    let bytes = app
        .bytes_with_key(&key, answer["image"]["image_url"].as_str().unwrap())
        .await;
    assert_eq!(answer["image"]["sha256"], hex::encode(sha256(&bytes)));

    let record = app.get_json(&format!("/v1/records/{id}")).await;
    assert_eq!(record["encoding"], "hallmark-record-v3");
    assert_eq!(record["operation"], "inpaint");
    assert_eq!(record["parent_sha256"], answer["parent_sha256"]);
    assert_eq!(record["signature_valid"], true);
    // The pure-Python verifier, written from the documented encoding, agrees; and notices a
    // changed operation or parent.
    let independent = |record: &Value| {
        use std::io::Write as _;
        let mut verifier = std::process::Command::new(crate::helpers::python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/independent/verify_record.py"
            ))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = verifier.stdin.take().unwrap();
        stdin.write_all(record.to_string().as_bytes()).unwrap();
        drop(stdin);
        verifier.wait_with_output().unwrap().status.success()
    };
    assert!(independent(&record));
    let mut tampered = record.clone();
    tampered["operation"] = "restore".into();
    assert!(!independent(&tampered));
    tampered = record.clone();
    tampered["parent_sha256"] = hex::encode([0u8; 32]).into();
    assert!(!independent(&tampered));

    // A check of the signed result: our manifest, its history, the edit in words.
    let moderator = app.key(Role::Moderator).await;
    let report: Value = app
        .client
        .post(app.url("/v1/verify"))
        .bearer_auth(&moderator)
        .body(bytes.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["verdict"], "hallmark_generated", "{report}");
    assert_eq!(report["provenance"]["state"], "trusted");
    assert_eq!(report["provenance"]["hallmark"]["operation"], "inpaint");
    let explanation = report["explanation"].to_string();
    for words in [
        "enhanced by Hallmark's model fashion-dcgan32-ema (version",
        "): region 10,12 12x12 inpainted.",
    ] {
        assert!(explanation.contains(words), "{explanation}");
    }
    assert_eq!(report["provenance"]["history"]["manifests"], 2, "{report}");

    // Stripped of its credentials, the registry still finds it and names the upload.
    let found = lookup(&app, stripped(&bytes)).await;
    assert_eq!(found["registry"]["match"], "pixel_sha256");
    assert_eq!(found["registry"]["record"]["id"], id.as_str());
    let explanation = found["explanation"].to_string();
    assert!(
        explanation.contains(&format!(
            "an enhancement (inpaint) by Hallmark's model fashion-dcgan32-ema of an upload with SHA-256 {}",
            answer["parent_sha256"].as_str().unwrap()
        )),
        "{explanation}"
    );
    // The upload is itself found by that SHA-256: both links.
    let parent = app
        .get_json(&format!(
            "/v1/records?sha256={}",
            answer["parent_sha256"].as_str().unwrap()
        ))
        .await;
    assert_eq!(parent["records"].as_array().unwrap().len(), 1);

    // Deterministic for a seed.
    let again: Value = post(&app, &key, form(&upload, &fields))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["image"]["pixel_sha256"],
        answer["image"]["pixel_sha256"]
    );
    assert_ne!(again["image"]["id"], answer["image"]["id"]);

    // The other operations; the signed PNG itself with Accept: image/png.
    let small = DynamicImage::ImageLuma8(image::imageops::resize(
        &image::load_from_memory(&upload).unwrap().to_luma8(),
        8,
        8,
        image::imageops::FilterType::Triangle,
    ));
    let response = app
        .client
        .post(app.url("/v1/enhancements"))
        .bearer_auth(&key)
        .header("Accept", "image/png")
        .multipart(form(&png(&small), &[("op", "upscale"), ("factor", "4")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let record_id = response.headers()["x-hallmark-record-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let upscaled = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((upscaled.width(), upscaled.height()), (32, 32));
    let record = app.get_json(&format!("/v1/records/{record_id}")).await;
    assert_eq!(record["operation"], "upscale");
    let restored = post(&app, &key, form(&real_test_image(4), &[("op", "restore")])).await;
    assert_eq!(restored.status(), StatusCode::CREATED);
    let mut mask = GrayImage::new(32, 32);
    for y in 0..8 {
        for x in 0..16 {
            mask.put_pixel(x + 4, y + 20, Luma([255]));
        }
    }
    let masked = form(&real_test_image(5), &[("op", "inpaint")]).part(
        "mask",
        Part::bytes(png(&DynamicImage::ImageLuma8(mask))).file_name("mask.png"),
    );
    let masked: Value = post(&app, &key, masked).await.json().await.unwrap();
    assert_eq!(masked["description"], "128 masked pixels inpainted");
}

/// Every malformed or hostile form gets its coded 4xx, and nothing is stored.
#[sqlx::test]
async fn hostile_enhancement_forms_get_coded_4xx_and_store_nothing(pool: PgPool) {
    let app = app(pool).await;
    let key = app.key(Role::Generator).await;
    let grey = real_test_image(1);
    let mut colour = RgbImage::new(32, 32);
    colour.put_pixel(3, 3, Rgb([250, 20, 20]));
    let colour = png(&DynamicImage::ImageRgb8(colour));
    let big = png(&DynamicImage::ImageLuma8(GrayImage::new(64, 64)));
    let mask = |side: u32, value: u8| {
        png(&DynamicImage::ImageLuma8(GrayImage::from_pixel(
            side,
            side,
            Luma([value]),
        )))
    };
    let with_mask = |bytes: Vec<u8>| {
        form(&grey, &[("op", "inpaint")]).part("mask", Part::bytes(bytes).file_name("m.png"))
    };
    let cases: Vec<(&str, Form, StatusCode, &str)> = vec![
        (
            "no op",
            form(&grey, &[]),
            StatusCode::BAD_REQUEST,
            "invalid_operation",
        ),
        (
            "unknown op",
            form(&grey, &[("op", "sharpen")]),
            StatusCode::BAD_REQUEST,
            "invalid_operation",
        ),
        (
            "no image",
            Form::new().text("op", "restore"),
            StatusCode::BAD_REQUEST,
            "no_files",
        ),
        (
            "unknown field",
            form(&grey, &[("op", "restore"), ("colour", "red")]),
            StatusCode::BAD_REQUEST,
            "invalid_operation",
        ),
        (
            "field twice",
            form(&grey, &[("op", "restore"), ("op", "restore")]),
            StatusCode::BAD_REQUEST,
            "invalid_operation",
        ),
        (
            "long field",
            form(&grey, &[("op", &"x".repeat(300))]),
            StatusCode::BAD_REQUEST,
            "invalid_operation",
        ),
        (
            "bad seed",
            form(&grey, &[("op", "restore"), ("seed", "-1")]),
            StatusCode::BAD_REQUEST,
            "invalid_operation",
        ),
        (
            "rect for restore",
            form(&grey, &[("op", "restore"), ("rect", "1,1,4,4")]),
            StatusCode::BAD_REQUEST,
            "invalid_operation",
        ),
        (
            "inpaint without region",
            form(&grey, &[("op", "inpaint")]),
            StatusCode::BAD_REQUEST,
            "invalid_operation",
        ),
        (
            "malformed rect",
            form(&grey, &[("op", "inpaint"), ("rect", "1,2,3")]),
            StatusCode::BAD_REQUEST,
            "invalid_region",
        ),
        (
            "rect outside",
            form(&grey, &[("op", "inpaint"), ("rect", "30,30,8,8")]),
            StatusCode::BAD_REQUEST,
            "invalid_region",
        ),
        (
            "huge rect",
            form(
                &grey,
                &[("op", "inpaint"), ("rect", "0,0,4294967295,4294967295")],
            ),
            StatusCode::BAD_REQUEST,
            "invalid_region",
        ),
        (
            "whole picture",
            form(&grey, &[("op", "inpaint"), ("rect", "0,0,32,32")]),
            StatusCode::BAD_REQUEST,
            "invalid_region",
        ),
        (
            "empty mask",
            with_mask(mask(32, 0)),
            StatusCode::BAD_REQUEST,
            "invalid_region",
        ),
        (
            "full mask",
            with_mask(mask(32, 255)),
            StatusCode::BAD_REQUEST,
            "invalid_region",
        ),
        (
            "mask of another size",
            with_mask(mask(16, 255)),
            StatusCode::BAD_REQUEST,
            "invalid_region",
        ),
        (
            "mask that is no image",
            with_mask(b"not an image at all".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "factor 0",
            form(&grey, &[("op", "upscale"), ("factor", "0")]),
            StatusCode::BAD_REQUEST,
            "invalid_factor",
        ),
        (
            "factor 3",
            form(&grey, &[("op", "upscale"), ("factor", "3")]),
            StatusCode::BAD_REQUEST,
            "invalid_factor",
        ),
        (
            "factor 1000",
            form(&grey, &[("op", "upscale"), ("factor", "1000")]),
            StatusCode::BAD_REQUEST,
            "invalid_factor",
        ),
        (
            "factor text",
            form(&grey, &[("op", "upscale"), ("factor", "two")]),
            StatusCode::BAD_REQUEST,
            "invalid_factor",
        ),
        (
            "a full-size picture to upscale",
            form(&grey, &[("op", "upscale"), ("factor", "2")]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_domain",
        ),
        (
            "colour for a grey model",
            form(&colour, &[("op", "restore")]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_domain",
        ),
        (
            "another size",
            form(&big, &[("op", "restore")]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_domain",
        ),
        (
            "not an image",
            form(b"GIF89a not really", &[("op", "restore")]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for (name, form, status, code) in cases {
        let response = post(&app, &key, form).await;
        assert_eq!(response.status(), status, "{name}");
        assert_eq!(error_code(response).await, code, "{name}");
    }
    // Not multipart; the wrong role; no key.
    let json = app
        .client
        .post(app.url("/v1/enhancements"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"op": "restore"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::BAD_REQUEST);
    let moderator = app.key(Role::Moderator).await;
    let refused = post(&app, &moderator, form(&grey, &[("op", "restore")])).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let anonymous = app
        .client
        .post(app.url("/v1/enhancements"))
        .multipart(form(&grey, &[("op", "restore")]))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM records")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    assert_eq!(app.blob_count(), 0);
}
