//! A 64x64 colour model grown progressively on a folder of images, end to end on a tiny
//! budget: `hallmark train --progressive` through every fade-in (4x4 → 64x64), a detector
//! trained and evaluated on it, then the real service: generate (batched on the model thread), sign, register,
//! fetch, and verify as served and stripped of its credentials.
//!
//! The images are made here: 48 colour scenes (a gradient sky, a disc and a bar of seeded
//! colours, sizes and places), the kind of small set a user brings.

#[allow(dead_code)]
#[path = "support/serve.rs"]
mod serve;

use std::path::Path;

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn write_scenes(dir: &Path, n: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(64);
    for i in 0..n {
        let sky: [f32; 3] = [rng.gen(), rng.gen(), rng.gen()];
        let ground: [f32; 3] = [rng.gen(), rng.gen(), rng.gen()];
        let disc: [u8; 3] = [rng.gen(), rng.gen(), rng.gen()];
        let bar: [u8; 3] = [rng.gen(), rng.gen(), rng.gen()];
        let (cx, cy, r) = (
            rng.gen_range(12.0..52.0_f32),
            rng.gen_range(12.0..52.0_f32),
            rng.gen_range(5.0..16.0_f32),
        );
        let (bx, bw) = (rng.gen_range(0..48u32), rng.gen_range(6..16u32));
        let image = RgbImage::from_fn(64, 64, |x, y| {
            let (fx, fy) = (x as f32, y as f32);
            if (fx - cx).powi(2) + (fy - cy).powi(2) < r * r {
                return Rgb(disc);
            }
            if x >= bx && x < bx + bw && y > 40 {
                return Rgb(bar);
            }
            let t = fy / 63.0;
            Rgb(std::array::from_fn(|c| {
                ((sky[c] * (1.0 - t) + ground[c] * t) * 255.0) as u8
            }))
        });
        image.save(dir.join(format!("scene-{i:02}.png"))).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64x64_colour_progressive_model_trains_serves_signs_and_verifies() {
    let work = tempfile::tempdir().unwrap();
    let images = work.path().join("scenes");
    write_scenes(&images, 48);
    let models = work.path().join("models");
    let db = serve::TestDb::new();
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut env = serve::Env::new(&db.url, &data);
    env.set("HALLMARK__MODEL__DIR", models.to_str().unwrap());
    env.set("HALLMARK__MODEL__NAME", "scenes64");
    let scenes = images.to_str().unwrap();

    // 5 resolutions and 4 fade-ins of 2 steps each, then 2 more at 64x64.
    let trained = env.ok(&[
        "train",
        "--progressive",
        "--model",
        "scenes64",
        "--size",
        "64",
        "--channels",
        "3",
        "--latent-dim",
        "16",
        "--g-width",
        "4",
        "--d-width",
        "4",
        "--batch-size",
        "8",
        "--steps",
        "20",
        "--stage-steps",
        "2",
        "--fade-steps",
        "2",
        "--checkpoint-every",
        "100",
        "--device",
        "cpu",
        "--quiet",
        "--dataset",
        scenes,
    ]);
    assert!(trained.contains("grown to 64x64"), "{trained}");
    let dir = models.join("scenes64");
    for r in [4, 8, 16, 32, 64] {
        let grid = dir.join(format!("samples/stage-{r:03}x{r:03}.png"));
        assert!(grid.is_file(), "{} missing", grid.display());
    }
    let card = hallmark::gan::ModelCard::load(&dir.join("model.toml")).unwrap();
    assert_eq!(
        card.architecture.family,
        hallmark::gan::ArchFamily::Progressive
    );
    assert_eq!(
        (card.architecture.image_size, card.architecture.channels),
        (64, 3)
    );

    env.ok(&[
        "train-detector",
        "--model",
        "scenes64",
        "--dataset",
        scenes,
        "--no-zoo",
        "--steps",
        "6",
        "--batch-size",
        "8",
        "--validation",
        "16",
        "--eval-every",
        "3",
        "--device",
        "cpu",
        "--quiet",
    ]);
    let card = hallmark::gan::ModelCard::load(&dir.join("model.toml")).unwrap();
    assert!(card.detector.is_some(), "the detector section was written");
    // Evaluated like any model: the detector and the registry match on the folder's test split
    // (every tenth image) against fresh generated images, under the standard transforms.
    let evaluated = env.ok(&[
        "evaluate",
        "--detector",
        "--model",
        "scenes64",
        "--dataset",
        scenes,
        "--generated",
        "8",
        "--device",
        "cpu",
        "--quiet",
        "--write-card",
    ]);
    assert!(evaluated.contains("4 real test images"), "{evaluated}");
    for transform in ["clean", "jpeg75", "resize0.5x", "crop10%"] {
        assert!(evaluated.contains(transform), "{evaluated}");
    }
    let card = hallmark::gan::ModelCard::load(&dir.join("model.toml")).unwrap();
    assert!(
        card.detector.as_ref().unwrap().evaluation.is_some(),
        "the evaluation was written to the card"
    );

    env.ok(&["init"]);
    let generator = env.key("generator", "scenes");
    let moderator = env.key("moderator", "moderator");
    let server = env.serve().await;
    let http = reqwest::Client::new();
    // Three requests at once: batched together on the model thread.
    let requests = (0..3u64).map(|seed| {
        http.post(server.url("/v1/generations"))
            .bearer_auth(&generator)
            .json(&json!({ "count": 2, "seed": seed }))
            .send()
    });
    let mut ids = Vec::new();
    for response in futures_util::future::join_all(requests).await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{}", env.log_tail());
        let body: Value = response.json().await.unwrap();
        for image in body["images"].as_array().unwrap() {
            ids.push(image["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids.len(), 6);
    let served = http
        .get(server.url(&format!("/v1/images/{}", ids[0])))
        .bearer_auth(&generator)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    let bytes = served.bytes().await.unwrap().to_vec();
    let decoded = image::load_from_memory(&bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (64, 64));
    assert!(
        matches!(decoded, image::DynamicImage::ImageRgb8(_)),
        "{:?}",
        decoded.color()
    );

    let report = server.verify(&moderator, bytes.clone()).await;
    assert_eq!(report["verdict"], "hallmark_generated", "{report}");
    assert_eq!(report["provenance"]["state"], "trusted", "{report}");
    assert_eq!(report["registry"]["match"], "file_sha256", "{report}");
    assert_eq!(report["registry"]["record"]["id"], ids[0].as_str());
    assert!(report["detector"].is_object(), "{report}");

    let report = server.verify(&moderator, serve::stripped(&bytes)).await;
    assert_eq!(report["registry"]["match"], "pixel_sha256", "{report}");
    assert_eq!(report["verdict"], "hallmark_generated", "{report}");
    assert_eq!(
        report["recovered"]["provenance"]["state"], "trusted",
        "{report}"
    );
}
