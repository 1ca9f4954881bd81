//! Cost of Content Credentials per image: signing + embedding a manifest (32x32 PNG, 512x512
//! JPEG), reading + validating it, and the raw Ed25519 signature as the floor. Prints the
//! per-image times and the bytes the manifest adds. Then the registration's other per-image
//! cost, its seventeen pHashes (`fingerprint::align::variant_phashes`), against the same hashes
//! from the `image_hasher` crate each window is held to (baseline).
//!
//! Run: `cargo bench --bench provenance` (optionally `-- --iters N`).

use std::hint::black_box;
use std::io::Cursor;
use std::time::{Duration, Instant};

use hallmark::config::Settings;
use hallmark::provenance::pki::init_pki;
use hallmark::provenance::{
    ImageClaim, ImageFormat, ProvenanceSigner, ProvenanceVerifier, ValidationState,
};

fn image(format: image::ImageFormat, side: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// Median per-call time over `iters` calls, after a short warm-up.
fn time<T>(iters: usize, mut f: impl FnMut() -> T) -> Duration {
    for _ in 0..iters.min(20) {
        black_box(f());
    }
    let mut samples: Vec<Duration> = (0..iters)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let iters = std::env::args()
        .skip_while(|a| a != "--iters")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(300usize);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::load(None).expect("settings");
    settings.storage.data_dir = dir.path().to_owned();
    init_pki(&settings.storage.keys_dir(), 30, None).expect("pki");
    let signer = ProvenanceSigner::from_settings(&settings).expect("signer");
    let verifier = ProvenanceVerifier::from_settings(&settings).expect("verifier");

    let key = signer.identity().private_key().clone();
    let floor = time(iters * 10, || key.sign(b"a 32-byte claim digest, roughly."));
    println!("provenance bench, {iters} iterations per case, median per image");
    println!("raw Ed25519 sign (floor):           {}", us(floor));

    for (name, format, bytes) in [
        (
            "32x32 PNG",
            ImageFormat::Png,
            image(image::ImageFormat::Png, 32),
        ),
        (
            "512x512 JPEG",
            ImageFormat::Jpeg,
            image(image::ImageFormat::Jpeg, 512),
        ),
    ] {
        let claim = ImageClaim {
            record_id: uuid::Uuid::new_v4(),
            model: "fashion-dcgan32".into(),
            model_version: "1".into(),
            seed: 42,
            phash: 0x0123_4567_89ab_cdef,
            title: format!("bench.{format}"),
            format,
            device: "cpu".into(),
        };
        let signed = signer.sign_image(&claim, &bytes).expect("sign");
        let report = verifier.verify(&signed.bytes);
        assert_eq!(report.state, ValidationState::Trusted, "{report:#?}");
        let sign = time(iters, || signer.sign_image(&claim, &bytes).expect("sign"));
        let verify = time(iters, || verifier.verify(&signed.bytes));
        println!(
            "{name:<13} {:>7} B -> {:>7} B: +{} B (manifest store {} B); sign+embed {}, read+validate {}",
            bytes.len(),
            signed.bytes.len(),
            signed.bytes.len() - bytes.len(),
            signed.manifest.len(),
            us(sign),
            us(verify),
        );
    }

    // The seventeen registered pHashes of a generated-size image: the service's path against the
    // crate it reproduces bit for bit (each window cropped out and hashed alone).
    let generated = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(32, 32, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8])
    }));
    let fingerprinter = hallmark::fingerprint::Fingerprinter::new();
    let ours = hallmark::fingerprint::align::variant_phashes(&fingerprinter, &generated);
    let crate_hasher = image_hasher::HasherConfig::new()
        .hash_size(8, 8)
        .hash_alg(image_hasher::HashAlg::Mean)
        .preproc_dct()
        .to_hasher();
    let by_crate = || -> Vec<u64> {
        let mut windows = vec![(0, 0, 32, 32)];
        windows.extend((0..4).flat_map(|gy| (0..4).map(move |gx| (gx * 2, gy * 2, 26, 26))));
        windows
            .into_iter()
            .map(|(x, y, w, h)| {
                let hash = crate_hasher.hash_image(&generated.crop_imm(x, y, w, h));
                u64::from_be_bytes(hash.as_bytes().try_into().expect("8 bytes"))
            })
            .collect()
    };
    assert_eq!(ours, by_crate(), "the service's pHashes are the crate's");
    let fast = time(iters, || {
        hallmark::fingerprint::align::variant_phashes(&fingerprinter, &generated)
    });
    let reference = time(iters, by_crate);
    println!(
        "17 registered pHashes of a 32x32 image: {} (image_hasher, each window alone: {}; {:.1}x)",
        us(fast),
        us(reference),
        reference.as_secs_f64() / fast.as_secs_f64(),
    );
}
