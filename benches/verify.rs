//! Verification speed: `POST /v1/verify` end to end, and the registry's near-duplicate search as
//! the registry grows.
//!
//! 1. Verify requests/s and p50/p99 at 8 concurrent clients for a signed 32x32 PNG (ours, found
//!    by file hash) and a 512x512 JPEG (no manifest, no match, out of the detector's domain), with
//!    the per-stage cost from `Server-Timing`; baseline in the same run: `GET /healthz`.
//! 2. Near-duplicate candidate search latency (p50/p99) over 10^4, 10^5 and 10^6 records (seventeen
//!    synthetic random pHashes each, as registered; five query hashes, as an upload's): the service's in-memory index
//!    (`registry::index::HashIndex`, loaded from the table as at start-up) and PostgreSQL's
//!    multi-index probe (`registry::candidates`, used by the command line and as the fallback),
//!    both against a full scan of the same table (`registry::candidates_by_scan`), half the
//!    queries planted 8 bits from a stored hash.
//!
//! 3. The C2PA Soft Binding Resolution API at 10^4 and 10^6 records (the synthetic registry of
//!    part 2 plus one real generated image): `POST /c2pa/v1/matches/byContent` and
//!    `GET /c2pa/v1/matches/byBinding` requests/s and p50/p99 at 8 clients, next to
//!    `POST /v1/lookup` with the same upload (a stripped copy of the generated image).
//!
//! 4. Stage 2 of a look-up (the registry's confirmation of its candidates), per upload, both ways
//!    in the same run on the same candidates: the alignment search alone (the confirmation before
//!    re-enactment) and the shipped two tiers (re-enacted, then aligned above `verify.align_from`).
//!    5,000 Fashion-MNIST training images stand in for registered originals (their seventeen
//!    variant hashes in the service's index); uploads are copies of registered ones (JPEG 75, 0.5x
//!    bicubic + JPEG 75: found) and real test images (clean, JPEG 75, 0.5x: look-alike candidates,
//!    no match).
//!
//! Run: `make bench` or `cargo bench --bench verify [-- service|index|c2pa|confirm]` (DATABASE_URL names the server to use; the
//! bench makes its own database `hallmark_bench_verify`).

mod common;

use std::io::Cursor;
use std::time::{Duration, Instant};

use common::{fresh_database, get_per_s, load, ms, percentile};

use hallmark::config::Settings;
use hallmark::provenance::SigningIdentity;
use hallmark::registry;
use hallmark::registry::index::HashIndex;
use hallmark::store::api_keys::{self, Role};
use hallmark::store::signing_keys::register as register_signing_key;
use hallmark::Application;
use rand::{Rng, SeedableRng};
use secrecy::ExposeSecret;
use sqlx::migrate::MigrateDatabase;
use sqlx::PgPool;

/// Candidates per search, as `verify.max_candidates`.
const K: usize = 24;

const STAGES: [&str; 5] = ["decode", "provenance", "hash", "registry", "detect"];

/// A 512x512 photo-like JPEG (smooth colour gradients with texture), quality 90.
fn big_jpeg() -> Vec<u8> {
    let image = image::RgbImage::from_fn(512, 512, |x, y| {
        let t = ((x * 31 + y * 17) % 97) as u8;
        image::Rgb([(x / 2) as u8, (y / 2) as u8, t.wrapping_mul(2)])
    });
    let mut out = Cursor::new(Vec::new());
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
    image.write_with_encoder(encoder).unwrap();
    out.into_inner()
}

/// One generated image through the API: the generation's answer and the signed bytes.
async fn generate_one(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    seed: u64,
) -> (serde_json::Value, Vec<u8>) {
    let made: serde_json::Value = client
        .post(format!("{base}/v1/generations"))
        .bearer_auth(key)
        .json(&serde_json::json!({"count": 1, "seed": seed}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("{base}{}", made["images"][0]["image_url"].as_str().unwrap());
    let bytes = client
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    (made, bytes)
}

async fn service_bench(settings: &Settings, pool: &PgPool) {
    let generator = api_keys::create(pool, "bench-gen", Role::Generator)
        .await
        .unwrap();
    let generator = generator.secret.expose_secret().to_owned();
    let moderator = api_keys::create(pool, "bench-mod", Role::Moderator)
        .await
        .unwrap();
    let moderator = moderator.secret.expose_secret().to_owned();
    let app = Application::build_with_pool(settings.clone(), pool.clone()).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let (_, png) = generate_one(&client, &base, &generator, 3).await;
    let jpeg = big_jpeg();
    let url = format!("{base}/v1/verify");
    let run = |body: &[u8], requests| {
        let (url, key, body) = (url.clone(), moderator.clone(), body.to_vec());
        load(8, requests, 200, &STAGES, move |client, _, _| {
            client.post(&url).bearer_auth(&key).body(body.clone())
        })
    };
    run(&png, 64).await; // warm-up
    let health = get_per_s(&format!("{base}/healthz"), 8, 4000).await;

    println!("## POST /v1/verify, 8 clients (stored checks, detector on)");
    println!();
    println!("| upload | verifies/s | vs /healthz | p50 ms | p99 ms | decode | provenance | hash | registry | detect (ms per request) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, body, requests) in [
        ("signed 32x32 PNG (ours)", &png, 800),
        ("512x512 JPEG (no manifest)", &jpeg, 400),
    ] {
        let r = run(body, requests).await;
        println!(
            "| {name}, {} B | {:.0} | {:.1}% | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            body.len(),
            r.per_s,
            100.0 * r.per_s / health,
            ms(r.p50),
            ms(r.p99),
            r.stages_ms[0],
            r.stages_ms[1],
            r.stages_ms[2],
            r.stages_ms[3],
            r.stages_ms[4],
        );
    }
    println!();
    println!("baseline: GET /healthz {health:.0} req/s (8 clients)");
    println!();
}

/// Grows `records` to `target` rows of random pHashes (and everything else a record needs).
async fn grow(pool: &PgPool, from: i64, target: i64) {
    let mut start = from;
    while start < target {
        let end = (start + 100_000).min(target);
        sqlx::query(
            "INSERT INTO records (id, created_at, model, model_version, seed, format, width, height,
                file_sha256, pixel_sha256, phash, manifest_id, signing_key_id, signature)
             SELECT gen_random_uuid(), now(), 'bench', 'x', i, 'png', 32, 32,
                sha256(int8send(i)), sha256(int8send(-i)),
                ('x' || substr(md5(i::text), 1, 16))::bit(64)::bigint,
                'urn:bench', 'bench', decode(repeat('00', 64), 'hex')
             FROM generate_series($1::bigint, $2::bigint - 1) AS i",
        )
        .bind(start)
        .bind(end)
        .execute(pool)
        .await
        .unwrap();
        // Seventeen variant hashes per record, as the generation pipeline registers them.
        sqlx::query(
            "INSERT INTO record_hashes (record_id, variant, phash)
             SELECT r.id, v, ('x' || substr(md5(r.seed::text || '/' || v::text), 1, 16))::bit(64)::bigint
             FROM records r, generate_series(0, 16) AS v
             WHERE r.seed >= $1 AND r.seed < $2",
        )
        .bind(start)
        .bind(end)
        .execute(pool)
        .await
        .unwrap();
        start = end;
    }
    sqlx::query("ANALYZE records").execute(pool).await.unwrap();
    sqlx::query("ANALYZE record_hashes")
        .execute(pool)
        .await
        .unwrap();
}

/// Each query is five hashes, as an upload's whole image and four crop windows: one planted 8
/// bits away from a stored hash (first half of the queries) or random (second half), and four
/// random.
async fn queries(pool: &PgPool, n: usize, rng: &mut rand::rngs::StdRng) -> Vec<Vec<u64>> {
    let stored: Vec<i64> =
        sqlx::query_scalar("SELECT phash FROM record_hashes ORDER BY random() LIMIT $1")
            .bind(n as i64 / 2)
            .fetch_all(pool)
            .await
            .unwrap();
    let mut out = Vec::new();
    for phash in stored {
        let mut q = hallmark::fingerprint::phash_from_db(phash);
        let mut flipped = 0;
        while flipped < 8 {
            let bit = 1u64 << rng.gen_range(0..64);
            if q & bit == hallmark::fingerprint::phash_from_db(phash) & bit {
                q ^= bit;
                flipped += 1;
            }
        }
        out.push(q);
    }
    while out.len() < n {
        out.push(rng.gen());
    }
    out.into_iter()
        .map(|q| {
            let mut hashes = vec![q];
            hashes.extend((0..4).map(|_| rng.gen::<u64>()));
            hashes
        })
        .collect()
}

async fn index_bench(pool: &PgPool, max_distance: u32) {
    sqlx::query(
        "INSERT INTO signing_keys (id, public_key, cert_chain_pem) VALUES ('bench', decode(repeat('01', 32), 'hex'), '')",
    )
    .execute(pool)
    .await
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    println!(
        "## Near-duplicate search (pHash within {max_distance} bits), synthetic random hashes"
    );
    println!();
    println!("| records | hashes | memory index p50 ms | p99 ms | index load s | PG multi-index p50 ms | p99 ms | PG full scan p50 ms | p99 ms | scan / memory | scan / multi-index | planted found | random queries with candidates |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut have = 0;
    for size in [10_000_i64, 100_000, 1_000_000] {
        let started = Instant::now();
        grow(pool, have, size).await;
        have = size;
        eprintln!(
            "registry grown to {size} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        // Every query on the memory index; fewer on PostgreSQL at 10^6 records, where each
        // search takes seconds.
        let n = 200;
        let qs = queries(pool, n, &mut rng).await;
        let pg = if size >= 1_000_000 { 10 } else { 60 };
        let pg_queries: Vec<&Vec<u64>> = qs
            .iter()
            .take(pg / 2)
            .chain(qs.iter().skip(n / 2).take(pg / 2))
            .collect();

        // The in-memory index, loaded as a starting service loads it.
        let index = HashIndex::new();
        let started = Instant::now();
        let sync = index.spawn_sync(pool.clone());
        assert!(index.wait_in_step(Duration::from_secs(600)).await);
        let load = started.elapsed();
        let mut memory = Vec::new();
        let mut by_memory = Vec::new();
        let (mut found, mut random_hits) = (0, 0);
        for (i, q) in qs.iter().enumerate() {
            let t = Instant::now();
            let hits = index.search(q, max_distance, K).unwrap();
            memory.push(t.elapsed());
            if i < n / 2 {
                found += usize::from(!hits.is_empty());
            } else {
                random_hits += usize::from(!hits.is_empty());
            }
            by_memory.push(hits);
        }
        sync.abort();
        drop(index);
        let memory_answers: Vec<&Vec<(uuid::Uuid, u32)>> = by_memory
            .iter()
            .take(pg / 2)
            .chain(by_memory.iter().skip(n / 2).take(pg / 2))
            .collect();

        let mut mih = Vec::new();
        let mut scan = Vec::new();
        for (q, memory_answer) in pg_queries.iter().zip(memory_answers) {
            let t = Instant::now();
            let by_index = registry::candidates(pool, q, max_distance, K)
                .await
                .unwrap();
            mih.push(t.elapsed());
            let t = Instant::now();
            let by_scan = registry::candidates_by_scan(pool, q, max_distance, K)
                .await
                .unwrap();
            scan.push(t.elapsed());
            assert_eq!(
                &by_index, &by_scan,
                "the multi-index probe and the scan disagree"
            );
            assert_eq!(
                memory_answer, &by_scan,
                "the memory index and the scan disagree"
            );
        }

        mih.sort();
        scan.sort();
        memory.sort();
        let (m50, s50, x50) = (
            percentile(&mih, 0.5),
            percentile(&scan, 0.5),
            percentile(&memory, 0.5),
        );
        println!(
            "| {size} | {} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1} | {:.0}x | {:.0}x | {found}/{} | {random_hits}/{} |",
            size * 17,
            ms(x50),
            ms(percentile(&memory, 0.99)),
            load.as_secs_f64(),
            ms(m50),
            ms(percentile(&mih, 0.99)),
            ms(s50),
            ms(percentile(&scan, 0.99)),
            s50.as_secs_f64() / x50.as_secs_f64(),
            s50.as_secs_f64() / m50.as_secs_f64(),
            n / 2,
            n / 2,
        );
    }
    println!();
}

/// Part 3: the resolution API against a registry of `size` records, next to `/v1/lookup`.
async fn c2pa_bench(settings: &Settings, pool: &PgPool) {
    sqlx::query(
        "INSERT INTO signing_keys (id, public_key, cert_chain_pem) VALUES ('bench', decode(repeat('01', 32), 'hex'), '')
         ON CONFLICT DO NOTHING",
    )
    .execute(pool)
    .await
    .unwrap();
    let identity = SigningIdentity::load(settings).unwrap();
    register_signing_key(pool, &identity).await.unwrap();
    let generator = api_keys::create(pool, "bench-gen", Role::Generator)
        .await
        .unwrap();
    let generator = generator.secret.expose_secret().to_owned();
    println!("## C2PA Soft Binding Resolution API, 8 clients");
    println!();
    println!("| records | request | req/s | vs /v1/lookup | p50 ms | p99 ms |");
    println!("|---:|---|---:|---:|---:|---:|");
    let mut have = 0;
    for size in [10_000_i64, 1_000_000] {
        grow(pool, have, size).await;
        have = size;
        // The app gets its own pool: stopping it closes that pool, not the one growing the table.
        let app = Application::build(settings.clone()).unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let server = tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::new();
        // The memory index loads in the background; wait for it, as a warm service has.
        for _ in 0..600 {
            let ready: serde_json::Value = client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if ready["index"]["in_step"] == true {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A seed outside the synthetic records' range (`grow` selects hashes by seed).
        let seed = 1_000_000_000_000 + size.unsigned_abs();
        let (made, png) = generate_one(&client, &base, &generator, seed).await;
        // A stripped copy: no manifest, found by its pixels.
        let mut stripped = Cursor::new(Vec::new());
        image::load_from_memory(&png)
            .unwrap()
            .write_to(&mut stripped, image::ImageFormat::Png)
            .unwrap();
        let stripped = stripped.into_inner();
        let value = hallmark::provenance::soft_binding_value(
            u64::from_str_radix(made["images"][0]["phash"].as_str().unwrap(), 16).unwrap(),
        );
        let post = |path: &'static str| {
            let (url, body) = (format!("{base}{path}"), stripped.clone());
            move |client: &reqwest::Client, _: usize, _: usize| {
                client
                    .post(&url)
                    .header("Content-Type", "image/png")
                    .body(body.clone())
            }
        };
        let by_binding = {
            let url = format!("{base}/c2pa/v1/matches/byBinding");
            let value = value.clone();
            move |client: &reqwest::Client, _: usize, _: usize| {
                client.get(&url).query(&[
                    ("alg", hallmark::provenance::SOFT_BINDING_ALG),
                    ("value", value.as_str()),
                ])
            }
        };
        load(8, 40, 200, &[], post("/v1/lookup")).await; // warm-up
        let lookup = load(8, 400, 200, &[], post("/v1/lookup")).await;
        let content = load(8, 400, 200, &[], post("/c2pa/v1/matches/byContent")).await;
        let binding = load(8, 2000, 200, &[], by_binding).await;
        for (name, r) in [
            ("POST /v1/lookup (baseline)", &lookup),
            ("POST /c2pa/v1/matches/byContent", &content),
            ("GET /c2pa/v1/matches/byBinding", &binding),
        ] {
            println!(
                "| {size} | {name} | {:.0} | {:.2}x | {:.1} | {:.1} |",
                r.per_s,
                r.per_s / lookup.per_s,
                ms(r.p50),
                ms(r.p99)
            );
        }
        server.abort();
    }
    println!();
}

/// Part 4: the cost of confirming an upload's candidates, old rule against the shipped one.
fn confirm_bench(settings: &Settings) {
    use hallmark::fingerprint::align::{query_phashes, similarity, variant_phashes};
    use hallmark::fingerprint::Fingerprinter;
    use hallmark::gan::data::{Dataset, Split};
    use hallmark::registry::confirm::{score, Thresholds, UploadProbe};
    use image::{DynamicImage, GrayImage};

    let dir = std::path::Path::new("/usr/share/datasets/fashion-mnist");
    let image_of = |data: &Dataset, i: usize| {
        DynamicImage::ImageLuma8(GrayImage::from_raw(32, 32, data.image_bytes(i).to_vec()).unwrap())
    };
    let train = Dataset::idx_split(dir, Split::Train, 32, 1).unwrap();
    let test = Dataset::idx_split(dir, Split::Test, 32, 1).unwrap();
    let originals: Vec<DynamicImage> = (0..5000).map(|i| image_of(&train, i)).collect();
    let fp = Fingerprinter::new();
    let hashes: Vec<Vec<u64>> = originals.iter().map(|o| variant_phashes(&fp, o)).collect();
    let index = HashIndex::standalone(
        hashes
            .iter()
            .enumerate()
            .map(|(i, h)| (uuid::Uuid::from_u128(i as u128), h.as_slice())),
    );
    let file = |image: &DynamicImage, quality: Option<u8>| {
        let mut bytes = Vec::new();
        match quality {
            Some(q) => image
                .to_luma8()
                .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
                    &mut bytes, q,
                ))
                .unwrap(),
            None => image
                .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
                .unwrap(),
        }
        let decoded = image::load_from_memory(&bytes).unwrap();
        (bytes, decoded)
    };
    // A lossy WebP copy as libwebp's default preset writes it (Pillow, cwebp).
    let webp = |image: &DynamicImage, quality: u8| {
        let bytes = hallmark::fingerprint::webp::write_lossy(image, quality).unwrap();
        let decoded = image::load_from_memory(&bytes).unwrap();
        (bytes, decoded)
    };
    let half =
        |image: &DynamicImage| image.resize_exact(16, 16, image::imageops::FilterType::CatmullRom);
    let thresholds = Thresholds::of(&settings.verify);
    let (d, k) = (
        settings.verify.phash_max_distance,
        settings.verify.max_candidates,
    );
    type Make<'a> = Box<dyn Fn(usize) -> (Vec<u8>, DynamicImage) + 'a>;
    let kinds: [(&str, Make<'_>); 7] = [
        (
            "registered, JPEG 75",
            Box::new(|i| file(&originals[i], Some(75))),
        ),
        ("registered, WebP 75", Box::new(|i| webp(&originals[i], 75))),
        (
            "registered, 0.5x bicubic + JPEG 75",
            Box::new(|i| file(&half(&originals[i]), Some(75))),
        ),
        (
            "real test image, PNG",
            Box::new(|i| file(&image_of(&test, i), None)),
        ),
        (
            "real test image, JPEG 75",
            Box::new(|i| file(&image_of(&test, i), Some(75))),
        ),
        (
            "real test image, 0.5x bicubic",
            Box::new(|i| file(&half(&image_of(&test, i)), None)),
        ),
        (
            "real test image, WebP 75",
            Box::new(|i| webp(&image_of(&test, i), 75)),
        ),
    ];
    println!("## Stage 2 of a look-up: confirming the candidates (one core, {k} candidates at most, {d} bits)");
    println!();
    println!("| upload | uploads | candidates per upload | aligned only µs | re-enacted, then aligned µs | ratio | aligned per upload | matched (old / shipped) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, make) in &kinds {
        let uploads: Vec<(UploadProbe, Vec<DynamicImage>)> = (0..300)
            .map(|i| {
                let (bytes, image) = make(i);
                let probe = UploadProbe::new(&image, &bytes, image.width().max(image.height()));
                let found = index
                    .search(&query_phashes(&fp, &image), d, k)
                    .unwrap_or_default();
                let candidates = found
                    .iter()
                    .map(|(id, _)| originals[id.as_u128() as usize].clone())
                    .collect();
                (probe, candidates)
            })
            .collect();
        let candidates: usize = uploads.iter().map(|(_, c)| c.len()).sum();
        let started = Instant::now();
        let mut old_matches = 0;
        for (probe, candidates) in &uploads {
            let best = candidates
                .iter()
                .map(|c| similarity(&probe.comparison, c))
                .fold(0.0, f64::max);
            let downscaled = hallmark::fingerprint::align::is_downscaled(probe.side, 32);
            old_matches += usize::from(best >= thresholds.aligned_for(downscaled));
        }
        let old = started.elapsed();
        let started = Instant::now();
        let (mut aligned, mut new_matches) = (0, 0);
        for (probe, candidates) in &uploads {
            let mut found = false;
            for c in candidates {
                let scores = score(probe, c, |r, down| thresholds.aligns(r, down));
                aligned += usize::from(scores.aligned.is_some());
                found |= scores.confirmed(&thresholds).is_some();
            }
            new_matches += usize::from(found);
        }
        let new = started.elapsed();
        let n = uploads.len() as f64;
        println!(
            "| {name} | {} | {:.1} | {:.0} | {:.0} | {:.2} | {:.2} | {old_matches} / {new_matches} |",
            uploads.len(),
            candidates as f64 / n,
            old.as_secs_f64() * 1e6 / n,
            new.as_secs_f64() * 1e6 / n,
            new.as_secs_f64() / old.as_secs_f64(),
            aligned as f64 / n,
        );
    }
    println!();
    println!(
        "(old: `fingerprint::align::similarity` on every candidate at min_similarity {} / {} \
         downscaled, as before re-enactment; shipped: `registry::confirm::score` with the \
         configured thresholds)",
        thresholds.aligned, thresholds.aligned_downscaled
    );
    println!();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_data_dir, settings, pool) = common::signing_service("hallmark_bench_verify").await;
        // `cargo bench --bench verify -- service` (or `-- index`) runs one part.
        let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        let runs = |part: &str| only.as_deref().is_none_or(|o| o == part);
        println!("# Verification (CPU, model {})", settings.model.name);
        println!();
        if runs("service") {
            service_bench(&settings, &pool).await;
        }
        if runs("confirm") {
            confirm_bench(&settings);
        }
        if runs("c2pa") {
            let mut c2pa_settings = settings.clone();
            // One load client is one address: the public routes' per-client limit is lifted.
            c2pa_settings.api.public_rate_per_s = 1_000_000;
            c2pa_settings.api.public_burst = 1_000_000;
            let c2pa_pool = fresh_database(&mut c2pa_settings, "hallmark_bench_c2pa").await;
            c2pa_bench(&c2pa_settings, &c2pa_pool).await;
            c2pa_pool.close().await;
            // The stopped apps' pools may still hold connections: best effort, with force.
            let url = c2pa_settings.database.url.expose_secret().to_owned();
            if let Err(error) = sqlx::Postgres::force_drop_database(&url).await {
                eprintln!("could not drop hallmark_bench_c2pa: {error}");
            }
        }
        if !runs("index") {
            return;
        }
        let mut index_settings = settings.clone();
        let index_pool = fresh_database(&mut index_settings, "hallmark_bench_index").await;
        index_bench(&index_pool, settings.verify.phash_max_distance).await;
        index_pool.close().await;
        let url = index_settings.database.url.expose_secret().to_owned();
        sqlx::Postgres::drop_database(&url).await.unwrap();
    });
}
