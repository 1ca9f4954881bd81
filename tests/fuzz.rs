//! Deterministic mutation fuzzing of everything an anonymous upload's bytes reach, on stable
//! Rust: no coverage feedback, no libFuzzer, only seeded `rand_chacha`, so a run is reproducible
//! from its seed.
//!
//! Targets (each input under `catch_unwind`, on a worker thread watched by a hang guard):
//! - `upload`: the gate, [`hallmark::verify::upload::inspect`] (sniff, header, decode under
//!   limits), then `fingerprint` on whatever it accepts:
//!   the service's hash stage (`verify::hashes`: fingerprint, query pHashes and comparison probe
//!   on a bounded working copy, the JPEG table read from the bytes) and both confirmation tiers
//!   ([`hallmark::registry::confirm::score`]: re-enacted and aligned) against a registry-sized
//!   original, as `VerifyService::check` runs them;
//! - `c2pa`: [`ProvenanceVerifier::verify`] (the C2PA reader; it catches the reader's panics
//!   itself, so a panic escaping it is a finding);
//! - `multipart`: `actix_multipart::Multipart` driven by the service's own `read_parts` and
//!   `read_form` (`src/api/body.rs`; the latter as `POST /v1/enhancements` reads its form), over mutated content types, boundaries, part headers, bodies and chunkings of
//!   the body stream, with the service's limits and with a small one.
//!
//! Seeds: other producers' credentials made by c2pa-python (`tests/fixtures`), every file in
//! `../shared/fixtures/c2pa/` when it is there, a TIFF with 20,000 directories and the hostile
//! `tiff_poc.tiff` (TIFFs only through the gate, which must refuse them by their magic bytes: in
//! c2pa they burn minutes), Hallmark's own signed
//! PNG, JPEG and WebP, and small images in many layouts. Mutators: generic (bit flips, interesting
//! bytes and words, insert/delete runs, truncation, duplication, splicing) and format-aware (PNG
//! chunks with their CRCs recomputed and re-deflated pixel data, JPEG segments, SOF dimensions and
//! APP11 JUMBF packets, WebP RIFF/chunk sizes and dimensions, JUMBF box lengths in any format).
//!
//! Budget: `HALLMARK_FUZZ_ITERS` inputs per target (default [`DEFAULT_ITERS`]; per target
//! `HALLMARK_FUZZ_ITERS_UPLOAD`, `_C2PA`, `_MULTIPART`), seed
//! `HALLMARK_FUZZ_SEED` (decimal or 0x-hex; default [`DEFAULT_SEED`]). A finding (panic, hang,
//! broken invariant) is saved as `target/fuzz-findings/<target>-<hash>.bin` and fails the test;
//! findings live on as reproducers in `tests/fuzz-regressions/` (its README says what each one
//! found), replayed on every run. `make fuzz` runs a large budget.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Cursor, Read as _, Write as _};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use bytes::Bytes;
use futures_util::StreamExt;
use hallmark::api::error::ApiError;
use hallmark::config::{LimitSettings, Settings};
use hallmark::fingerprint::Fingerprinter;
use hallmark::provenance::pki::init_pki;
use hallmark::provenance::{
    ImageClaim, ImageFormat, ProvenanceSigner, ProvenanceVerifier, SigningIdentity,
};
use hallmark::verify::upload;
use image::{DynamicImage, ImageBuffer};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Inputs per target when `HALLMARK_FUZZ_ITERS` is unset: the whole test stays under a minute in
/// a debug build on a busy 2-core machine.
const DEFAULT_ITERS: u64 = 250;
const DEFAULT_SEED: u64 = 0x4841_4c4c_4d41_524b; // "HALLMARK"
/// One input running longer than this is a hang (a hang detector, not a performance test).
const HANG_AFTER: Duration = Duration::from_secs(20);
/// Inputs slower than this are kept (`target/fuzz-findings/slow-<target>-<hash>.bin`) for study,
/// without failing the run: on a loaded 2-core machine wall time is no verdict, but the input is
/// what a bound on per-request CPU has to be tested against.
const SLOW_AFTER: Duration = Duration::from_secs(2);
/// The blocking pool's and actix workers' stack size (tokio's and std's default): a parser that
/// overflows it would take the server process down.
const WORKER_STACK: usize = 2 << 20;
/// Mutated inputs are cut to this size (the service's own limit is 10 MiB).
const MAX_INPUT: usize = 4 << 20;

#[path = "fixtures/mod.rs"]
mod fixtures;

const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-regressions");
/// Seeds that must never reach the C2PA reader directly: TIFFs.
fn is_hostile(name: &str) -> bool {
    name.ends_with(".tiff")
}

// ---------------------------------------------------------------------------------------------
// Configuration and seeds
// ---------------------------------------------------------------------------------------------

/// Inputs for `target`: `HALLMARK_FUZZ_ITERS_<TARGET>` (e.g. `HALLMARK_FUZZ_ITERS_C2PA`, for the
/// targets much cheaper per input than the gate), else `HALLMARK_FUZZ_ITERS`, else the default.
fn iterations(target: &str) -> u64 {
    let specific = format!("HALLMARK_FUZZ_ITERS_{}", target.to_ascii_uppercase());
    for name in [specific.as_str(), "HALLMARK_FUZZ_ITERS"] {
        if let Ok(value) = std::env::var(name) {
            return value
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}={value:?} is not a number"));
        }
    }
    DEFAULT_ITERS
}

fn base_seed() -> u64 {
    let Ok(value) = std::env::var("HALLMARK_FUZZ_SEED") else {
        return DEFAULT_SEED;
    };
    let value = value.trim();
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("HALLMARK_FUZZ_SEED={value:?} is not a number"))
}

/// The generator for input `index` of `target`: each input reproducible on its own.
fn rng_for(target: &str, index: u64) -> ChaCha8Rng {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&base_seed().to_le_bytes());
    seed[8..16].copy_from_slice(&index.to_le_bytes());
    for (slot, byte) in seed[16..].iter_mut().zip(target.bytes()) {
        *slot = byte;
    }
    ChaCha8Rng::from_seed(seed)
}

struct Seed {
    name: String,
    bytes: Vec<u8>,
}

struct Shared {
    /// Everything, the hostile TIFF included: what the gate and the multipart parser see.
    gate: Vec<Seed>,
    /// Everything but the hostile TIFF: what the C2PA reader sees.
    c2pa: Vec<Seed>,
    /// Hallmark's own signed images are read back as trusted with our claims.
    verifier: Arc<ProvenanceVerifier>,
    limits: LimitSettings,
    max_files: usize,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(build_shared)
}

fn build_shared() -> Shared {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::load(None).unwrap();
    settings.storage.data_dir = dir.path().to_owned();
    init_pki(&settings.storage.keys_dir(), 30, None).unwrap();
    // Trusting the other producers' roots too takes their manifests down the full chain check.
    let made = fixtures::made_by_c2pa_python();
    let mut anchors = std::fs::read_to_string(&made.producer_ca).unwrap();
    if let Some(extra) = fixtures::shared("test_cert_root_bundle.pem") {
        anchors.push_str(&String::from_utf8(extra).unwrap());
    }
    let anchors_path = dir.path().join("anchors.pem");
    std::fs::write(&anchors_path, anchors).unwrap();
    settings.provenance.trust_anchors = Some(anchors_path);
    let signer = ProvenanceSigner::new(SigningIdentity::load(&settings).unwrap(), None).unwrap();
    let verifier = Arc::new(ProvenanceVerifier::from_settings(&settings).unwrap());

    let mut gate = Vec::new();
    let mut files: Vec<PathBuf> = fixtures::MadeByC2paPython::NAMES
        .iter()
        .map(|name| made.path(name))
        .collect();
    if let Some(dir) = fixtures::shared_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        names.sort();
        files.extend(names);
    }
    for path in files {
        gate.push(Seed {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            bytes: std::fs::read(&path).unwrap(),
        });
    }
    gate.push(Seed {
        name: "many-ifd.tiff".into(),
        bytes: fixtures::many_ifd_tiff(20_000),
    });
    let picture = ImageBuffer::from_fn(48, 40, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 6) as u8, ((x * y) % 251) as u8])
    });
    for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Webp] {
        let claim = ImageClaim {
            record_id: uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            model: "fashion-dcgan32".into(),
            model_version: "3".into(),
            seed: -42,
            phash: 0x0123_4567_89ab_cdef,
            title: format!("fuzz.{format}"),
            format,
            device: "cpu".into(),
        };
        let plain = encode(&DynamicImage::ImageRgb8(picture.clone()), codec(format));
        let signed = signer.sign_image(&claim, &plain).unwrap();
        gate.push(Seed {
            name: format!("hallmark-signed.{format}"),
            bytes: signed.bytes,
        });
    }
    gate.extend(small_images());
    let c2pa = gate
        .iter()
        .filter(|seed| !is_hostile(&seed.name))
        .map(|seed| Seed {
            name: seed.name.clone(),
            bytes: seed.bytes.clone(),
        })
        .collect();
    Shared {
        gate,
        c2pa,
        verifier,
        limits: settings.limits.clone(),
        max_files: settings.verify.max_files,
    }
}

fn codec(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Webp => image::ImageFormat::WebP,
    }
}

fn encode(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// Small images in the layouts the decoders branch on.
fn small_images() -> Vec<Seed> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let original = registry_original();
    let rgb = ImageBuffer::from_fn(23, 17, |x, y| {
        image::Rgb([(x * 11) as u8, (y * 15) as u8, ((x ^ y) * 9) as u8])
    });
    let rgba = ImageBuffer::from_fn(19, 23, |x, y| {
        image::Rgba([(x * 13) as u8, (y * 11) as u8, 200, ((x + y) * 6) as u8])
    });
    let grey = ImageBuffer::from_fn(33, 20, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8]));
    let grey_alpha =
        ImageBuffer::from_fn(9, 14, |x, y| image::LumaA([(x * 20) as u8, (y * 18) as u8]));
    let rgba16 = ImageBuffer::from_fn(12, 10, |x, y| {
        image::Rgba([
            (x * 5000) as u16,
            (y * 6000) as u16,
            12345,
            65535 - (x * y) as u16,
        ])
    });
    let grey16 = ImageBuffer::from_fn(10, 7, |x, y| image::Luma([(x * 6000 + y * 300) as u16]));
    let mut seeds = vec![
        (
            "rgb8.png",
            encode(
                &DynamicImage::ImageRgb8(rgb.clone()),
                image::ImageFormat::Png,
            ),
        ),
        (
            "rgba8.png",
            encode(
                &DynamicImage::ImageRgba8(rgba.clone()),
                image::ImageFormat::Png,
            ),
        ),
        (
            "grey8.png",
            encode(
                &DynamicImage::ImageLuma8(grey.clone()),
                image::ImageFormat::Png,
            ),
        ),
        (
            "grey-alpha8.png",
            encode(
                &DynamicImage::ImageLumaA8(grey_alpha),
                image::ImageFormat::Png,
            ),
        ),
        (
            "rgba16.png",
            encode(&DynamicImage::ImageRgba16(rgba16), image::ImageFormat::Png),
        ),
        (
            "grey16.png",
            encode(&DynamicImage::ImageLuma16(grey16), image::ImageFormat::Png),
        ),
        (
            "rgb.jpg",
            encode(
                &DynamicImage::ImageRgb8(rgb.clone()),
                image::ImageFormat::Jpeg,
            ),
        ),
        (
            "grey.jpg",
            encode(&DynamicImage::ImageLuma8(grey), image::ImageFormat::Jpeg),
        ),
        (
            "rgb-lossless.webp",
            encode(&DynamicImage::ImageRgb8(rgb), image::ImageFormat::WebP),
        ),
        (
            "rgba-lossless.webp",
            encode(&DynamicImage::ImageRgba8(rgba), image::ImageFormat::WebP),
        ),
        ("palette4-trns.png", palette_png()),
        ("grey1.png", grey1_png()),
        ("interlaced-rgb8.png", interlaced_png()),
        ("lossy-vp8.webp", vp8_webp(&mut rng)),
        // A registry-sized original and crops of it, which take the query-window path.
        ("original32.png", encode(&original, image::ImageFormat::Png)),
        (
            "crop28.jpg",
            encode(&original.crop_imm(3, 1, 28, 28), image::ImageFormat::Jpeg),
        ),
        (
            "crop30x29.png",
            encode(&original.crop_imm(1, 2, 30, 29), image::ImageFormat::Png),
        ),
    ];
    let frame = &seeds[9].1;
    seeds.push(("animated.webp", animated_webp(frame)));
    seeds
        .into_iter()
        .map(|(name, bytes)| Seed {
            name: name.into(),
            bytes,
        })
        .collect()
}

fn crc32(bytes: &[u8]) -> u32 {
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (n, slot) in table.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        table
    });
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc = table[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

fn zlib(raw: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(raw).unwrap();
    encoder.finish().unwrap()
}

fn push_png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

/// A PNG from raw (filtered) scanlines.
fn raw_png(ihdr: [u32; 2], layout: [u8; 5], extra: &[(&[u8; 4], Vec<u8>)], raw: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend(ihdr[0].to_be_bytes());
    header.extend(ihdr[1].to_be_bytes());
    header.extend(layout);
    push_png_chunk(&mut out, b"IHDR", &header);
    for (kind, data) in extra {
        push_png_chunk(&mut out, kind, data);
    }
    push_png_chunk(&mut out, b"IDAT", &zlib(raw));
    push_png_chunk(&mut out, b"IEND", &[]);
    out
}

/// 13x9, 4-bit palette with transparency, every filter type.
fn palette_png() -> Vec<u8> {
    let palette: Vec<u8> = (0..16u8)
        .flat_map(|i| [i * 16, 255 - i * 16, i * 7])
        .collect();
    let alpha: Vec<u8> = (0..16u8).map(|i| i * 17).collect();
    let mut raw = Vec::new();
    for y in 0..9u8 {
        raw.push(y % 5);
        raw.extend((0..7u8).map(|x| ((x * 3 + y) << 4) | ((x + y * 5) & 0x0F)));
    }
    raw_png(
        [13, 9],
        [4, 3, 0, 0, 0],
        &[(b"PLTE", palette), (b"tRNS", alpha)],
        &raw,
    )
}

/// 17x5, 1-bit grey.
fn grey1_png() -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..5u8 {
        raw.push(0);
        raw.extend([0b1010_1010 ^ y, 0b1100_1100 << (y % 3), 0x80]);
    }
    raw_png(
        [17, 5],
        [1, 0, 0, 0, 0],
        &[(b"gAMA", vec![0, 0, 0xB1, 0x8F])],
        &raw,
    )
}

/// 11x13 RGB8, Adam7-interlaced.
fn interlaced_png() -> Vec<u8> {
    const PASSES: [(u32, u32, u32, u32); 7] = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    let (width, height) = (11u32, 13u32);
    let mut raw = Vec::new();
    for (x0, y0, dx, dy) in PASSES {
        if x0 >= width || y0 >= height {
            continue;
        }
        for y in (y0..height).step_by(dy as usize) {
            raw.push((y % 3) as u8);
            for x in (x0..width).step_by(dx as usize) {
                raw.extend([(x * 23) as u8, (y * 19) as u8, ((x + y) * 10) as u8]);
            }
        }
    }
    raw_png([width, height], [8, 2, 0, 0, 1], &[], &raw)
}

fn riff(chunks: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut body = b"WEBP".to_vec();
    for (kind, data) in chunks {
        body.extend(*kind);
        body.extend((data.len() as u32).to_le_bytes());
        body.extend(data);
        if data.len() % 2 == 1 {
            body.push(0);
        }
    }
    let mut out = b"RIFF".to_vec();
    out.extend((body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

/// A lossy (VP8) key frame: a valid frame header over seeded random partitions, so the boolean
/// decoder has something to chew on (the image crate only encodes lossless WebP).
fn vp8_webp(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let first_partition = 60u32;
    let tag = (1 << 4) | (first_partition << 5); // key frame, version 0, shown
    let mut frame = tag.to_le_bytes()[..3].to_vec();
    frame.extend([0x9D, 0x01, 0x2A]);
    frame.extend(16u16.to_le_bytes());
    frame.extend(16u16.to_le_bytes());
    frame.extend((0..first_partition + 120).map(|_| rng.gen::<u8>()));
    riff(&[(b"VP8 ", frame)])
}

/// A VP8X animation of two frames holding `lossless`'s VP8L bitstream.
fn animated_webp(lossless: &[u8]) -> Vec<u8> {
    let chunks = riff_chunks(lossless);
    let (pos, _, size) = chunks.iter().find(|c| &c.1 == b"VP8L").copied().unwrap();
    let bitstream = lossless[pos + 8..pos + 8 + size as usize].to_vec();
    let bits = u32::from_le_bytes(bitstream[1..5].try_into().unwrap());
    let (w, h) = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1);
    let u24 = |v: u32| v.to_le_bytes()[..3].to_vec();
    let mut vp8x = vec![0b0001_0010, 0, 0, 0]; // animation + alpha
    vp8x.extend(u24(w - 1));
    vp8x.extend(u24(h - 1));
    let mut anim = vec![0x10, 0x20, 0x30, 0xFF];
    anim.extend(0u16.to_le_bytes());
    let frame = |x: u32, flags: u8| {
        let mut anmf = u24(x / 2);
        anmf.extend(u24(0));
        anmf.extend(u24(w - 1));
        anmf.extend(u24(h - 1));
        anmf.extend(u24(100));
        anmf.push(flags);
        anmf.extend(b"VP8L");
        anmf.extend((bitstream.len() as u32).to_le_bytes());
        anmf.extend(&bitstream);
        if bitstream.len() % 2 == 1 {
            anmf.push(0);
        }
        anmf
    };
    riff(&[
        (b"VP8X", vp8x),
        (b"ANIM", anim),
        (b"ANMF", frame(0, 0)),
        (b"ANMF", frame(0, 0b11)),
    ])
}

// ---------------------------------------------------------------------------------------------
// Mutators
// ---------------------------------------------------------------------------------------------

const INTERESTING_8: [u8; 5] = [0x00, 0x01, 0x7F, 0x80, 0xFF];
const INTERESTING_16: [u16; 11] = [
    0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF,
];
const INTERESTING_32: [u32; 16] = [
    0,
    1,
    2,
    7,
    8,
    0xFF,
    0x100,
    4096,
    16384,
    0xFFFF,
    0x1_0000,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFF0,
    0xFFFF_FFFE,
    0xFFFF_FFFF,
];
const DIMENSIONS: [u32; 20] = [
    0,
    1,
    2,
    3,
    8,
    31,
    32,
    33,
    255,
    256,
    4095,
    4096,
    4097,
    16383,
    16384,
    65535,
    65536,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
];

fn dimension(rng: &mut ChaCha8Rng) -> u32 {
    if rng.gen_bool(0.25) {
        rng.gen_range(0..5000)
    } else {
        *DIMENSIONS.choose(rng).unwrap()
    }
}

fn interesting_u32(rng: &mut ChaCha8Rng, current: u32) -> u32 {
    match rng.gen_range(0..4) {
        0 => current.wrapping_add(rng.gen_range(1..=8)),
        1 => current.wrapping_sub(rng.gen_range(1..=8)),
        2 => rng.gen(),
        _ => *INTERESTING_32.choose(rng).unwrap(),
    }
}

fn interesting_u16(rng: &mut ChaCha8Rng, current: u16) -> u16 {
    match rng.gen_range(0..4) {
        0 => current.wrapping_add(rng.gen_range(1..=8)),
        1 => current.wrapping_sub(rng.gen_range(1..=8)),
        2 => rng.gen(),
        _ => *INTERESTING_16.choose(rng).unwrap(),
    }
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}

fn le32(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(d[at..at + 4].try_into().unwrap())
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(d[at..at + 2].try_into().unwrap())
}

fn put(d: &mut [u8], at: usize, bytes: &[u8]) {
    if at + bytes.len() <= d.len() {
        d[at..at + bytes.len()].copy_from_slice(bytes);
    }
}

/// A position to mutate: half the time in the file's headers (for a JPEG, everything before the
/// entropy-coded data), where the parsers are.
fn position(rng: &mut ChaCha8Rng, d: &[u8]) -> usize {
    if d.is_empty() {
        return 0;
    }
    if rng.gen_bool(0.5) && ImageFormat::sniff(d) == Some(ImageFormat::Jpeg) {
        if let Some(sos) = jpeg_segments(d).iter().find(|s| s.marker == 0xDA) {
            return rng.gen_range(0..sos.pos.clamp(1, d.len()));
        }
    }
    rng.gen_range(0..d.len())
}

fn random_run(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = if rng.gen_bool(0.8) {
        rng.gen_range(1..=16)
    } else {
        rng.gen_range(17..=1024)
    };
    if rng.gen_bool(0.5) {
        vec![*INTERESTING_8.choose(rng).unwrap(); len]
    } else {
        (0..len).map(|_| rng.gen()).collect()
    }
}

/// One format-blind mutation; returns its name.
fn mutate_generic(rng: &mut ChaCha8Rng, d: &mut Vec<u8>, corpus: &[Seed]) -> &'static str {
    if d.is_empty() {
        d.extend(random_run(rng));
        return "fill";
    }
    match rng.gen_range(0..10) {
        0 => {
            for _ in 0..rng.gen_range(1..=8) {
                let at = position(rng, d);
                d[at] ^= 1 << rng.gen_range(0..8);
            }
            "bit-flips"
        }
        1 => {
            let at = position(rng, d);
            d[at] = *INTERESTING_8.choose(rng).unwrap();
            "interesting-byte"
        }
        2 => {
            let at = position(rng, d);
            let word = if rng.gen_bool(0.5) {
                let v = interesting_u16(rng, 0);
                if rng.gen_bool(0.5) {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
                .to_vec()
            } else {
                let v = interesting_u32(rng, 0);
                if rng.gen_bool(0.5) {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
                .to_vec()
            };
            put(d, at, &word);
            "interesting-word"
        }
        3 => {
            for _ in 0..rng.gen_range(1..=4) {
                let at = position(rng, d);
                d[at] = rng.gen();
            }
            "random-bytes"
        }
        4 => {
            let at = position(rng, d);
            let run = random_run(rng);
            d.splice(at..at, run);
            "insert-run"
        }
        5 => {
            let at = position(rng, d);
            let len = rng.gen_range(1..=64.min(d.len() - at));
            d.drain(at..at + len);
            "delete-run"
        }
        6 => {
            let at = rng.gen_range(0..d.len());
            d.truncate(at);
            "truncate"
        }
        7 => {
            let from = position(rng, d);
            let len = rng.gen_range(1..=4096.min(d.len() - from));
            let slice = d[from..from + len].to_vec();
            let at = rng.gen_range(0..=d.len());
            d.splice(at..at, slice);
            "duplicate-slice"
        }
        8 => {
            let other = &corpus.choose(rng).unwrap().bytes;
            let keep = rng.gen_range(0..=d.len());
            let from = rng.gen_range(0..=other.len());
            d.truncate(keep);
            d.extend_from_slice(&other[from..]);
            "splice"
        }
        _ => {
            // Overwrite with a slice of another seed at the same offset (same-format splice).
            let other = &corpus.choose(rng).unwrap().bytes;
            let at = position(rng, d);
            if at < other.len() {
                let len = rng.gen_range(1..=256.min(other.len() - at));
                put(d, at, &other[at..at + len]);
            }
            "crossover"
        }
    }
}

/// (offset of the length field, data length) of each well-formed PNG chunk, in order.
fn png_chunks(d: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at + 12 <= d.len() && out.len() < 10_000 {
        let len = be32(d, at) as usize;
        if len > d.len() - at - 12 {
            break;
        }
        out.push((at, len));
        at += 12 + len;
    }
    out
}

fn fix_png_crc(d: &mut [u8], at: usize, len: usize) {
    if at + 12 + len <= d.len() {
        let crc = crc32(&d[at + 4..at + 8 + len]);
        d[at + 8 + len..at + 12 + len].copy_from_slice(&crc.to_be_bytes());
    }
}

fn fix_png_crcs(d: &mut [u8]) {
    for (at, len) in png_chunks(d) {
        fix_png_crc(d, at, len);
    }
}

const PNG_CHUNK_TYPES: [&[u8; 4]; 16] = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"caBX", b"iTXt", b"zTXt", b"tEXt", b"acTL",
    b"fcTL", b"fdAT", b"eXIf", b"iCCP", b"sBIT", b"gAMA",
];

fn mutate_png(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) -> Option<&'static str> {
    let chunks = png_chunks(d);
    let &(at, len) = chunks.choose(rng)?;
    let ihdr = chunks
        .iter()
        .copied()
        .find(|&(at, len)| &d[at + 4..at + 8] == b"IHDR" && len >= 13);
    Some(match rng.gen_range(0..8) {
        0 => {
            let (at, len) = ihdr?;
            let fields: &[usize] = match rng.gen_range(0..3) {
                0 => &[0],
                1 => &[4],
                _ => &[0, 4],
            };
            for &field in fields {
                put(d, at + 8 + field, &dimension(rng).to_be_bytes());
            }
            fix_png_crc(d, at, len);
            "png-ihdr-dimensions"
        }
        1 => {
            let (at, len) = ihdr?;
            let field = rng.gen_range(8..13);
            d[at + 8 + field] = *[0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 0xFF].choose(rng).unwrap();
            fix_png_crc(d, at, len);
            "png-ihdr-layout"
        }
        2 => {
            // A wrong length, with a CRC that is right for the extent it now claims.
            let new = interesting_u32(rng, len as u32);
            put(d, at, &new.to_be_bytes());
            fix_png_crc(d, at, new as usize);
            "png-chunk-length"
        }
        3 => {
            for _ in 0..rng.gen_range(1..=4) {
                if len == 0 {
                    break;
                }
                let i = at + 8 + rng.gen_range(0..len);
                d[i] = match rng.gen_range(0..3) {
                    0 => d[i] ^ (1 << rng.gen_range(0..8)),
                    1 => *INTERESTING_8.choose(rng).unwrap(),
                    _ => rng.gen(),
                };
            }
            fix_png_crc(d, at, len);
            "png-chunk-data"
        }
        4 => {
            // Grow or shrink a chunk, length and CRC kept consistent.
            let data_at = at + 8 + rng.gen_range(0..=len);
            let new_len = if rng.gen_bool(0.5) || len == 0 {
                let run = random_run(rng);
                let n = run.len();
                d.splice(data_at..data_at, run);
                len + n
            } else {
                let n = rng.gen_range(1..=len.min(64));
                let start = (at + 8 + len - n).min(data_at);
                d.drain(start..start + n);
                len - n
            };
            put(d, at, &(new_len as u32).to_be_bytes());
            fix_png_crc(d, at, new_len);
            "png-chunk-resize"
        }
        5 => {
            let chunk = d[at..at + 12 + len].to_vec();
            match rng.gen_range(0..3) {
                0 => {
                    d.drain(at..at + 12 + len);
                    "png-drop-chunk"
                }
                1 => {
                    d.splice(at..at, chunk);
                    "png-duplicate-chunk"
                }
                _ => {
                    d.drain(at..at + 12 + len);
                    let (to, _) = *png_chunks(d).choose(rng).unwrap_or(&(8, 0));
                    d.splice(to..to, chunk);
                    "png-move-chunk"
                }
            }
        }
        6 => {
            let kind = *PNG_CHUNK_TYPES.choose(rng).unwrap();
            let data: Vec<u8> = match kind {
                b"acTL" => [rng.gen_range(0..4u32), rng.gen_range(0..3u32)]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                b"fcTL" => {
                    let mut f: Vec<u8> = rng.gen_range(0..3u32).to_be_bytes().to_vec();
                    for _ in 0..4 {
                        f.extend(dimension(rng).min(64).to_be_bytes());
                    }
                    f.extend([0, 1, 0, 10, rng.gen_range(0..3), rng.gen_range(0..3)]);
                    f
                }
                b"caBX" => jumbf_box(rng),
                _ => random_run(rng),
            };
            let mut chunk = Vec::new();
            push_png_chunk(&mut chunk, kind, &data);
            let to = chunks
                .get(rng.gen_range(0..chunks.len()))
                .map_or(8, |c| c.0);
            d.splice(to..to, chunk);
            "png-insert-chunk"
        }
        _ => {
            // Mutate the inflated pixel data (filter bytes, samples) and deflate it again, so
            // the decoder gets past zlib's checksum too.
            let idats: Vec<(usize, usize)> = chunks
                .iter()
                .copied()
                .filter(|&(at, _)| &d[at + 4..at + 8] == b"IDAT")
                .collect();
            let &(first, _) = idats.first()?;
            let compressed: Vec<u8> = idats
                .iter()
                .flat_map(|&(at, len)| d[at + 8..at + 8 + len].to_vec())
                .collect();
            let mut raw = Vec::new();
            let _ = flate2::read::ZlibDecoder::new(&compressed[..])
                .take(64 << 20)
                .read_to_end(&mut raw);
            if raw.is_empty() {
                return None;
            }
            for _ in 0..rng.gen_range(1..=6) {
                match rng.gen_range(0..4) {
                    0 => {
                        let i = rng.gen_range(0..raw.len());
                        raw[i] = rng.gen_range(0..8);
                    }
                    1 => {
                        let i = rng.gen_range(0..raw.len());
                        raw[i] = *INTERESTING_8.choose(rng).unwrap();
                    }
                    2 => raw.truncate(rng.gen_range(0..raw.len())),
                    _ => raw.extend(random_run(rng)),
                }
                if raw.is_empty() {
                    break;
                }
            }
            let mut chunk = Vec::new();
            push_png_chunk(&mut chunk, b"IDAT", &zlib(&raw));
            for &(at, len) in idats.iter().rev() {
                d.drain(at..at + 12 + len);
            }
            d.splice(first..first, chunk);
            "png-reinflate-idat"
        }
    })
}

/// A JPEG marker segment: the offset of its 0xFF, its marker and its length field.
#[derive(Clone, Copy)]
struct Segment {
    pos: usize,
    marker: u8,
    len: usize,
}

fn jpeg_segments(d: &[u8]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut at = 2;
    while at + 4 <= d.len() && out.len() < 4096 {
        if d[at] != 0xFF {
            break;
        }
        let marker = d[at + 1];
        if marker == 0xFF {
            at += 1;
            continue;
        }
        if marker == 0xD8 || marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            at += 2;
            continue;
        }
        if marker == 0xD9 {
            break;
        }
        let len = usize::from(be16(d, at + 2));
        out.push(Segment {
            pos: at,
            marker,
            len,
        });
        if marker == 0xDA || len < 2 {
            break;
        }
        at += 2 + len;
    }
    out
}

fn is_sof(marker: u8) -> bool {
    (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

fn mutate_jpeg(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) -> Option<&'static str> {
    let segments = jpeg_segments(d);
    let app11: Vec<Segment> = segments
        .iter()
        .copied()
        .filter(|s| s.marker == 0xEB)
        .collect();
    let pick = |rng: &mut ChaCha8Rng, prefer_app11: bool| -> Option<Segment> {
        if prefer_app11 && !app11.is_empty() && rng.gen_bool(0.6) {
            app11.choose(rng).copied()
        } else {
            segments.choose(rng).copied()
        }
    };
    let sof = segments.iter().copied().find(|s| is_sof(s.marker));
    Some(match rng.gen_range(0..8) {
        0 => {
            let sof = sof?;
            let value = (dimension(rng) as u16).to_be_bytes();
            let field = if rng.gen_bool(0.5) { 5 } else { 7 };
            put(d, sof.pos + field, &value);
            if rng.gen_bool(0.3) {
                put(
                    d,
                    sof.pos + 12 - field,
                    &(dimension(rng) as u16).to_be_bytes(),
                );
            }
            "jpeg-sof-dimensions"
        }
        1 => {
            let sof = sof?;
            let components = usize::from(*d.get(sof.pos + 9)?);
            let field = match rng.gen_range(0..4) {
                0 => 4,                                            // precision
                1 => 9,                                            // component count
                2 => 11 + 3 * rng.gen_range(0..components.max(1)), // sampling factors
                _ => 12 + 3 * rng.gen_range(0..components.max(1)), // quantisation table
            };
            let value = *[
                0u8, 1, 2, 3, 4, 8, 12, 16, 0x11, 0x12, 0x21, 0x22, 0x44, 0x0F, 0xFF,
            ]
            .choose(rng)
            .unwrap();
            put(d, sof.pos + field, &[value]);
            "jpeg-sof-fields"
        }
        2 => {
            let s = pick(rng, true)?;
            let value = interesting_u16(rng, s.len as u16);
            put(d, s.pos + 2, &value.to_be_bytes());
            "jpeg-segment-length"
        }
        3 => {
            // APP11 JUMBF packet: CI "JP", En (box instance), Z (sequence), then the box's LBox
            // and TBox.
            let s = *app11.choose(rng)?;
            match rng.gen_range(0..4) {
                0 => {
                    let en = be16(d, (s.pos + 6).min(d.len().saturating_sub(2)));
                    put(d, s.pos + 6, &interesting_u16(rng, en).to_be_bytes());
                }
                1 => {
                    let z = be32(d, (s.pos + 8).min(d.len().saturating_sub(4)));
                    put(d, s.pos + 8, &interesting_u32(rng, z).to_be_bytes());
                }
                2 => {
                    let lbox = be32(d, (s.pos + 12).min(d.len().saturating_sub(4)));
                    put(d, s.pos + 12, &interesting_u32(rng, lbox).to_be_bytes());
                }
                _ => {
                    let tbox = *[b"jumb", b"jumd", b"JP\0\0", b"\0\0\0\0"]
                        .choose(rng)
                        .unwrap();
                    put(d, s.pos + 16, tbox);
                }
            }
            "jpeg-app11-jumbf-header"
        }
        4 => {
            let s = pick(rng, false)?;
            let payload = s.len.saturating_sub(2);
            if payload == 0 {
                return None;
            }
            for _ in 0..rng.gen_range(1..=4) {
                let i = s.pos + 4 + rng.gen_range(0..payload);
                if i < d.len() {
                    d[i] = match rng.gen_range(0..3) {
                        0 => d[i] ^ (1 << rng.gen_range(0..8)),
                        1 => *INTERESTING_8.choose(rng).unwrap(),
                        _ => rng.gen(),
                    };
                }
            }
            "jpeg-segment-data"
        }
        5 => {
            let s = pick(rng, true)?;
            let end = (s.pos + 2 + s.len).min(d.len());
            let segment = d[s.pos..end].to_vec();
            if rng.gen_bool(0.5) {
                d.drain(s.pos..end);
                "jpeg-drop-segment"
            } else {
                let to = pick(rng, false).map_or(2, |t| t.pos);
                d.splice(to..to, segment);
                "jpeg-duplicate-segment"
            }
        }
        6 => {
            // Grow or shrink a segment, its length field kept consistent.
            let s = pick(rng, true)?;
            let end = (s.pos + 2 + s.len).min(d.len());
            if end <= s.pos + 4 {
                return None;
            }
            let at = rng.gen_range(s.pos + 4..=end);
            let new_len = if rng.gen_bool(0.5) {
                let run = random_run(rng);
                let n = run.len().min(0xFFFF - s.len);
                d.splice(at..at, run[..n].to_vec());
                s.len + n
            } else {
                let n = rng.gen_range(0..=(end - at).min(64));
                d.drain(at..at + n);
                s.len - n
            };
            put(d, s.pos + 2, &(new_len as u16).to_be_bytes());
            "jpeg-segment-resize"
        }
        _ => {
            let sos = segments.iter().copied().find(|s| s.marker == 0xDA)?;
            if rng.gen_bool(0.5) {
                // Component count, spectral selection and approximation of the scan.
                let field = *[4usize, 6, 8, 10].choose(rng).unwrap();
                let at = (sos.pos + field).min(sos.pos + 1 + sos.len);
                put(d, at, &[rng.gen()]);
                "jpeg-sos-fields"
            } else {
                // A stray marker in the entropy-coded data.
                let data = sos.pos + 2 + sos.len;
                if data >= d.len() {
                    return None;
                }
                let at = rng.gen_range(data..d.len());
                let marker = *[0xD0u8, 0xD3, 0xD7, 0xD8, 0xD9, 0xDA, 0xC4, 0xDD, 0x00]
                    .choose(rng)
                    .unwrap();
                d.splice(at..at, [0xFF, marker]);
                "jpeg-stray-marker"
            }
        }
    })
}

/// (offset, fourcc, size) of each RIFF chunk after the `WEBP` form type.
fn riff_chunks(d: &[u8]) -> Vec<(usize, [u8; 4], u32)> {
    let mut out = Vec::new();
    let mut at = 12usize;
    while at + 8 <= d.len() && out.len() < 4096 {
        let size = le32(d, at + 4);
        out.push((at, d[at..at + 4].try_into().unwrap(), size));
        at = match at.checked_add(8 + size as usize + (size as usize & 1)) {
            Some(next) => next,
            None => break,
        };
    }
    out
}

fn fix_riff_size(d: &mut [u8]) {
    if d.len() >= 8 {
        let size = (d.len() - 8) as u32;
        d[4..8].copy_from_slice(&size.to_le_bytes());
    }
}

fn mutate_webp(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) -> Option<&'static str> {
    let chunks = riff_chunks(d);
    let u24 = |v: u32| v.to_le_bytes()[..3].to_vec();
    Some(match rng.gen_range(0..6) {
        0 => {
            let size = interesting_u32(rng, le32(d, 4));
            put(d, 4, &size.to_le_bytes());
            "webp-riff-size"
        }
        1 => {
            let &(at, _, size) = chunks.choose(rng)?;
            put(d, at + 4, &interesting_u32(rng, size).to_le_bytes());
            "webp-chunk-size"
        }
        2 => {
            let &(at, kind, _) = chunks.choose(rng)?;
            let (w, h) = (dimension(rng), dimension(rng));
            match &kind {
                b"VP8L" => {
                    let bits = (w.wrapping_sub(1) & 0x3FFF)
                        | (h.wrapping_sub(1) & 0x3FFF) << 14
                        | rng.gen_range(0..16u32) << 28;
                    put(d, at + 9, &bits.to_le_bytes());
                }
                b"VP8X" => {
                    put(d, at + 12, &u24(w.wrapping_sub(1)));
                    put(d, at + 15, &u24(h.wrapping_sub(1)));
                }
                b"VP8 " => {
                    put(d, at + 14, &(w as u16).to_le_bytes());
                    put(d, at + 16, &(h as u16).to_le_bytes());
                }
                b"ANMF" => {
                    put(d, at + 14, &u24(w.wrapping_sub(1)));
                    put(d, at + 17, &u24(h.wrapping_sub(1)));
                }
                _ => return None,
            }
            "webp-dimensions"
        }
        3 => {
            let &(at, _, size) = chunks.choose(rng)?;
            let size = (size as usize).min(d.len().saturating_sub(at + 8));
            if size == 0 {
                return None;
            }
            for _ in 0..rng.gen_range(1..=4) {
                let i = at + 8 + rng.gen_range(0..size);
                d[i] = match rng.gen_range(0..3) {
                    0 => d[i] ^ (1 << rng.gen_range(0..8)),
                    1 => *INTERESTING_8.choose(rng).unwrap(),
                    _ => rng.gen(),
                };
            }
            "webp-chunk-data"
        }
        4 => {
            let kind = *[
                b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP", b"EXIF", b"XMP ", b"C2PA",
            ]
            .choose(rng)
            .unwrap();
            let mut data = match kind {
                b"VP8X" => {
                    let mut x = vec![rng.gen(), 0, 0, 0];
                    x.extend(u24(dimension(rng).wrapping_sub(1)));
                    x.extend(u24(dimension(rng).wrapping_sub(1)));
                    x
                }
                b"C2PA" => jumbf_box(rng),
                _ => random_run(rng),
            };
            if data.len() % 2 == 1 {
                data.push(0);
            }
            let mut chunk = kind.to_vec();
            chunk.extend((data.len() as u32).to_le_bytes());
            chunk.extend(data);
            let to = chunks.choose(rng).map_or(12.min(d.len()), |c| c.0);
            d.splice(to..to, chunk);
            fix_riff_size(d);
            "webp-insert-chunk"
        }
        _ => {
            let &(at, _, size) = chunks.choose(rng)?;
            let end = (at + 8 + size as usize + (size as usize & 1)).min(d.len());
            if rng.gen_bool(0.5) {
                d.drain(at..end);
                fix_riff_size(d);
                "webp-drop-chunk"
            } else {
                let chunk = d[at..end].to_vec();
                d.splice(at..at, chunk);
                fix_riff_size(d);
                "webp-duplicate-chunk"
            }
        }
    })
}

const JUMBF_TYPES: [&[u8; 4]; 9] = [
    b"jumb", b"jumd", b"cbor", b"json", b"bfdb", b"bidb", b"uuid", b"embd", b"c2sh",
];

/// A small, plausible JUMBF superbox (a description box with the C2PA manifest store's UUID,
/// then a CBOR box), with seeded corruption of its lengths.
fn jumbf_box(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut jumd = b"jumd".to_vec();
    jumd.extend([
        0x63, 0x32, 0x70, 0x61, 0, 0x11, 0, 0x10, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71,
    ]);
    jumd.push(0x03);
    jumd.extend(b"c2pa\0");
    let mut cbor = b"cbor".to_vec();
    cbor.extend(random_run(rng));
    let mut inner = Vec::new();
    for b in [jumd, cbor] {
        inner.extend((b.len() as u32 + 4).to_be_bytes());
        inner.extend(b);
    }
    let mut out = (inner.len() as u32 + 8).to_be_bytes().to_vec();
    out.extend(b"jumb");
    out.extend(inner);
    if rng.gen_bool(0.5) {
        let at = *[0usize, 8, 38].choose(rng).unwrap();
        put(&mut out, at, &interesting_u32(rng, 0).to_be_bytes());
    }
    out
}

/// Corrupts the LBox of a JUMBF box found by its type, in any container.
fn mutate_jumbf(rng: &mut ChaCha8Rng, d: &mut [u8]) -> Option<&'static str> {
    let boxes: Vec<usize> = d
        .windows(4)
        .enumerate()
        .filter(|(at, w)| *at >= 4 && JUMBF_TYPES.iter().any(|t| t[..] == w[..]))
        .map(|(at, _)| at - 4)
        .collect();
    let &at = boxes.choose(rng)?;
    let lbox = be32(d, at);
    let value = match rng.gen_range(0..3) {
        0 => 1, // "an XLBox follows"
        1 => lbox.wrapping_add(rng.gen_range(1..=16)),
        _ => interesting_u32(rng, lbox),
    };
    put(d, at, &value.to_be_bytes());
    Some("jumbf-box-length")
}

fn mutate_format(rng: &mut ChaCha8Rng, d: &mut Vec<u8>) -> Option<&'static str> {
    if rng.gen_bool(0.2) {
        return mutate_jumbf(rng, d);
    }
    match ImageFormat::sniff(d)? {
        ImageFormat::Png => mutate_png(rng, d),
        ImageFormat::Jpeg => mutate_jpeg(rng, d),
        ImageFormat::Webp => mutate_webp(rng, d),
    }
}

/// A stack of 1 to 8 mutations of `input`; the names of those applied.
fn mutate(rng: &mut ChaCha8Rng, d: &mut Vec<u8>, corpus: &[Seed]) -> Vec<&'static str> {
    let mut applied = Vec::new();
    for _ in 0..1usize << rng.gen_range(0..4) {
        let format_aware = if rng.gen_bool(0.5) {
            mutate_format(rng, d)
        } else {
            None
        };
        applied.push(match format_aware {
            Some(name) => name,
            None => mutate_generic(rng, d, corpus),
        });
        d.truncate(MAX_INPUT);
    }
    if ImageFormat::sniff(d) == Some(ImageFormat::Png) && rng.gen_bool(0.5) {
        fix_png_crcs(d);
        applied.push("png-fix-crcs");
    }
    applied
}

/// Input `index` of a byte-level target: a seed as is for the first pass, then mutants.
fn byte_input(target: &str, index: u64, corpus: &[Seed]) -> (Vec<u8>, String) {
    if let Some(seed) = usize::try_from(index).ok().and_then(|i| corpus.get(i)) {
        return (seed.bytes.clone(), format!("seed {}", seed.name));
    }
    let mut rng = rng_for(target, index);
    let seed = corpus.choose(&mut rng).unwrap();
    let mut d = seed.bytes.clone();
    let applied = mutate(&mut rng, &mut d, corpus);
    (d, format!("{} <- {}", applied.join("+"), seed.name))
}

// ---------------------------------------------------------------------------------------------
// Multipart inputs: "<content-type>\n<chunk plan>\n<body>"
// ---------------------------------------------------------------------------------------------

struct MultipartInput {
    content_type: Vec<u8>,
    /// Sizes of the body's stream chunks, cycled (0 counts as 1); `e` is a transport error at
    /// that point.
    plan: String,
    body: Vec<u8>,
}

impl MultipartInput {
    fn parse(blob: &[u8]) -> Self {
        let mut lines = blob.splitn(3, |&b| b == b'\n');
        let content_type = lines.next().unwrap_or_default().to_vec();
        let plan = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        let body = lines.next().unwrap_or_default().to_vec();
        Self {
            content_type,
            plan,
            body,
        }
    }

    fn to_blob(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self
            .content_type
            .iter()
            .copied()
            .filter(|&b| b != b'\n')
            .collect();
        out.push(b'\n');
        out.extend(self.plan.bytes().filter(|&b| b != b'\n'));
        out.push(b'\n');
        out.extend(&self.body);
        out
    }

    /// The body as the stream of chunks the plan describes; `None` is a transport error.
    fn chunks(&self) -> Vec<Option<Bytes>> {
        let plan: Vec<Option<usize>> = self
            .plan
            .split(',')
            .filter_map(|t| match t.trim() {
                "e" => Some(None),
                t => t.parse::<usize>().ok().map(Some),
            })
            .take(64)
            .collect();
        let mut out = Vec::new();
        let mut at = 0;
        let mut step = 0;
        while at < self.body.len() && out.len() < self.body.len() + 64 {
            match plan.get(step % plan.len().max(1)).copied().flatten() {
                _ if plan.is_empty() => {
                    out.push(Some(Bytes::copy_from_slice(&self.body[at..])));
                    at = self.body.len();
                }
                None => {
                    out.push(None);
                    break;
                }
                Some(size) => {
                    // Never an empty chunk: actix-http's HTTP/1 decoder does not yield one (and
                    // 16 in a row hang actix-multipart 0.8.5, which is no concern of ours).
                    let end = (at + size.max(1)).min(self.body.len());
                    out.push(Some(Bytes::copy_from_slice(&self.body[at..end])));
                    at = end;
                }
            }
            step += 1;
        }
        out
    }
}

fn multipart_part(boundary: &str, headers: &str, content: &[u8]) -> Vec<u8> {
    let mut out = format!("--{boundary}\r\n{headers}\r\n\r\n").into_bytes();
    out.extend(content);
    out.extend(b"\r\n");
    out
}

fn multipart_seeds() -> Vec<Seed> {
    let images = &shared().gate;
    let image_named = |name: &str| &images.iter().find(|s| s.name == name).unwrap().bytes;
    let one = |boundary: &str, ct: &str, parts: Vec<Vec<u8>>, plan: &str| {
        let mut body: Vec<u8> = parts.concat();
        body.extend(format!("--{boundary}--\r\n").bytes());
        MultipartInput {
            content_type: ct.as_bytes().to_vec(),
            plan: plan.into(),
            body,
        }
        .to_blob()
    };
    let file = |b: &str, name: &str, mime: &str, content: &[u8]| {
        multipart_part(
            b,
            &format!(
                "Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {mime}"
            ),
            content,
        )
    };
    let field = |b: &str, name: &str, value: &[u8]| {
        multipart_part(
            b,
            &format!("Content-Disposition: form-data; name=\"{name}\""),
            value,
        )
    };
    let b1 = "----hallmark-fuzz-7MA4YWxkTrZu0gW";
    let b2 = "X";
    let b3 = "\"quoted boundary\"";
    let long = "b".repeat(70);
    let seeds = vec![
        (
            "one-png",
            one(
                b1,
                &format!("multipart/form-data; boundary={b1}"),
                vec![file(b1, "a.png", "image/png", image_named("rgb8.png"))],
                "",
            ),
        ),
        (
            "batch",
            one(
                b2,
                "multipart/form-data; boundary=X",
                vec![
                    field(b2, "note", b"hello"),
                    file(
                        b2,
                        "..\\..\\etc/pässwd .jpg",
                        "image/jpeg",
                        image_named("rgb.jpg"),
                    ),
                    file(
                        b2,
                        "c.webp",
                        "image/webp",
                        image_named("rgba-lossless.webp"),
                    ),
                    file(b2, "", "application/octet-stream", b""),
                ],
                "1,2,3,5,8,13,21",
            ),
        ),
        (
            "signed-jpeg-small-chunks",
            one(
                b1,
                &format!("multipart/form-data; charset=utf-8; boundary=\"{b1}\""),
                vec![file(
                    b1,
                    "s.jpg",
                    "image/jpeg",
                    image_named("hallmark-signed.jpeg"),
                )],
                "7,1,4096",
            ),
        ),
        (
            "quoted-boundary",
            one(
                "quoted boundary",
                &format!("Multipart/Form-Data; boundary={b3}"),
                vec![file(
                    "quoted boundary",
                    "g.png",
                    "image/png",
                    image_named("grey1.png"),
                )],
                "3",
            ),
        ),
        (
            "long-boundary-and-error",
            one(
                &long,
                &format!("multipart/form-data; boundary={long}"),
                vec![
                    file(
                        &long,
                        "p.png",
                        "image/png",
                        image_named("palette4-trns.png"),
                    ),
                    field(&long, "file", b"not an image"),
                ],
                "40,e",
            ),
        ),
        (
            "no-filename",
            one(
                b2,
                "multipart/form-data;boundary=X",
                vec![multipart_part(
                    b2,
                    "content-disposition: form-data; name=file",
                    image_named("grey8.png"),
                )],
                "64",
            ),
        ),
        (
            // Larger than the parser's internal buffer (64 KiB in actix-multipart 0.8), whole.
            "large-jpeg-one-chunk",
            one(
                b1,
                &format!("multipart/form-data; boundary={b1}"),
                vec![file(
                    b1,
                    "big.jpg",
                    "image/jpeg",
                    image_named("tampered.jpg"),
                )],
                "",
            ),
        ),
    ];
    seeds
        .into_iter()
        .map(|(name, bytes)| Seed {
            name: name.into(),
            bytes,
        })
        .collect()
}

const CONTENT_TYPES: [&str; 10] = [
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=\"\"",
    "multipart/form-data; boundary=\"unterminated",
    "multipart/mixed; boundary=X",
    "multipart/form-data; boundary=X; boundary=Y",
    "multipart/form-data; boundary=--",
    "multipart/form-data; boundary=\r",
    "image/png",
    "",
];

fn boundary_of(content_type: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(content_type);
    let at = text.to_ascii_lowercase().find("boundary=")?;
    let value = &text[at + 9..];
    let value = value.split(';').next().unwrap_or_default();
    Some(value.trim().trim_matches('"').to_owned())
}

fn mutate_multipart(
    rng: &mut ChaCha8Rng,
    blob: &[u8],
    corpus: &[Seed],
) -> (Vec<u8>, Vec<&'static str>) {
    let mut input = MultipartInput::parse(blob);
    let mut applied = Vec::new();
    for _ in 0..1usize << rng.gen_range(0..3) {
        let boundary = boundary_of(&input.content_type).unwrap_or_else(|| "X".into());
        applied.push(match rng.gen_range(0..12) {
            0 => {
                input.content_type = if rng.gen_bool(0.5) {
                    CONTENT_TYPES.choose(rng).unwrap().as_bytes().to_vec()
                } else {
                    let long = "z".repeat(*[71usize, 200, 5000].choose(rng).unwrap());
                    format!("multipart/form-data; boundary={long}").into_bytes()
                };
                "mp-content-type"
            }
            1 => {
                mutate_generic(rng, &mut input.content_type, corpus);
                "mp-content-type-bytes"
            }
            2 => {
                let parts: Vec<String> = (0..rng.gen_range(1..6))
                    .map(|_| match rng.gen_range(0..6) {
                        0 => "e".to_owned(),
                        1 => "0".to_owned(),
                        2 => "1".to_owned(),
                        _ => rng.gen_range(1..5000).to_string(),
                    })
                    .collect();
                input.plan = parts.join(",");
                "mp-chunk-plan"
            }
            3..=6 => {
                mutate_generic(rng, &mut input.body, corpus);
                "mp-body-bytes"
            }
            7 => {
                // Another part: a file (maybe a hostile one), a field, or an empty one.
                let seed = &shared().gate.choose(rng).unwrap().bytes;
                let content = &seed[..seed.len().min(1 << 16)];
                let headers = *[
                    "Content-Disposition: form-data; name=\"file\"; filename=\"x\"",
                    "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%e2%82%ac%ff.png",
                    "Content-Disposition: form-data; name=\"other\"",
                    "Content-Disposition: attachment; name=\"file\"",
                    "Content-Disposition: form-data",
                    "Content-Type: image/png",
                    "Content-Disposition: form-data; name=\"file\"\r\nContent-Transfer-Encoding: base64",
                    "Content-Disposition form-data name file",
                ]
                .choose(rng)
                .unwrap();
                let part = multipart_part(&boundary, headers, content);
                let at = rng.gen_range(0..=input.body.len());
                input.body.splice(at..at, part);
                "mp-insert-part"
            }
            8 => {
                // Boundary-like text where it does not belong.
                let half: String = boundary.chars().take(boundary.chars().count() / 2).collect();
                let text = [
                    format!("\r\n--{boundary}"),
                    format!("\r\n--{boundary}--"),
                    format!("--{boundary}\r\n\r\n"),
                    format!("\r\n--{boundary}x"),
                    format!("\n--{boundary}\n"),
                    format!("--{half}"),
                ]
                .choose(rng)
                .unwrap()
                .clone();
                let at = rng.gen_range(0..=input.body.len());
                input.body.splice(at..at, text.bytes());
                "mp-boundary-text"
            }
            9 => {
                // A very long or malformed part header.
                let header = match rng.gen_range(0..3) {
                    0 => format!("X-Long: {}\r\n", "h".repeat(rng.gen_range(1000..20_000))),
                    1 => "\r\n".repeat(rng.gen_range(1..200)),
                    _ => format!(
                        "Content-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n",
                        "\u{202e}é/\\".repeat(rng.gen_range(1..300))
                    ),
                };
                let needle = format!("--{boundary}\r\n");
                let at = find(&input.body, needle.as_bytes())
                    .map_or(0, |at| at + needle.len());
                input.body.splice(at..at, header.bytes());
                "mp-part-header"
            }
            10 => {
                let many = format!("--{boundary}\r\n\r\n\r\n").repeat(rng.gen_range(1..2000));
                let at = rng.gen_range(0..=input.body.len());
                input.body.splice(at..at, many.bytes());
                "mp-many-empty-parts"
            }
            _ => {
                let mut whole = input.to_blob();
                mutate_generic(rng, &mut whole, corpus);
                input = MultipartInput::parse(&whole);
                "mp-whole-blob"
            }
        });
        input.body.truncate(MAX_INPUT);
    }
    (input.to_blob(), applied)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------------

/// A registry original: the model's 32x32 grey images.
fn registry_original() -> DynamicImage {
    DynamicImage::ImageLuma8(ImageBuffer::from_fn(32, 32, |x, y| {
        let (dx, dy) = (x as i32 - 16, y as i32 - 14);
        image::Luma([if dx * dx / 2 + dy * dy < 120 {
            (120 + 4 * y) as u8
        } else {
            0
        }])
    }))
}

/// What one input did, stage by stage; `Err` is a broken invariant (a finding).
type Outcome = Result<Vec<(&'static str, String)>, String>;
type Exec = Box<dyn FnMut(&[u8]) -> Outcome>;

/// The gate, then the hashes on whatever it accepted (as `VerifyService::check` runs them).
fn upload_exec() -> Exec {
    let limits = shared().limits.clone();
    let fingerprinter = Fingerprinter::new();
    let original = registry_original();
    Box::new(move |bytes: &[u8]| {
        set_stage("upload");
        let upload = match upload::inspect(bytes, &limits) {
            Ok(upload) => upload,
            Err(error) => {
                let outcome = ApiError::from(error).code().to_owned();
                return Ok(vec![("upload", outcome)]);
            }
        };
        let mut stages = vec![("upload", format!("accepted {}", upload.format))];
        let (w, h) = (upload.image.width(), upload.image.height());
        if (w, h) != (upload.width, upload.height) {
            return Err(format!(
                "the header said {}x{} but {w}x{h} pixels were decoded",
                upload.width, upload.height
            ));
        }
        if u64::from(w) * u64::from(h) > limits.max_image_pixels {
            return Err(format!("{w}x{h} decoded past the pixel limit"));
        }
        set_stage("fingerprint");
        // The service's own hash stage (bounded working copy, as `VerifyService::check` does).
        let (fingerprint, queries, probe) =
            hallmark::verify::hashes(&fingerprinter, &upload.image, bytes);
        if queries.first() != Some(&fingerprint.phash) {
            return Err("query_phashes does not start with the whole image's pHash".into());
        }
        let small = &probe.comparison;
        if small.width().max(small.height()) > 32 {
            return Err(format!(
                "comparison image {}x{}",
                small.width(),
                small.height()
            ));
        }
        // Both confirmation tiers, as the registry runs them on a candidate.
        let scores = hallmark::registry::confirm::score(&probe, &original, |_, _| true);
        for score in [scores.reenacted, scores.aligned.unwrap_or(0.0)] {
            if !(-1.0001..=1.0001).contains(&score) {
                return Err(format!("similarity {score} for a {w}x{h} upload"));
            }
        }
        stages.push((
            "fingerprint",
            format!("hashed, {} query hashes", queries.len()),
        ));
        Ok(stages)
    })
}

fn c2pa_exec() -> Exec {
    let verifier = Arc::clone(&shared().verifier);
    Box::new(move |bytes: &[u8]| {
        set_stage("c2pa");
        let report = verifier.verify(bytes);
        let mut outcome = report.state.as_str().to_owned();
        if let Some(failure) = report.failures.first() {
            let _ = write!(outcome, " ({failure})");
        } else if let Some(error) = &report.error {
            // The reader's error kind, not its details (offsets, lengths).
            let kind: String = error
                .chars()
                .take_while(|c| !c.is_ascii_digit() && *c != ':' && *c != '(')
                .take(64)
                .collect();
            let _ = write!(outcome, " ({})", kind.trim());
        }
        if report.hallmark.is_some() {
            outcome.push_str(" [hallmark claims]");
        }
        Ok(vec![("c2pa", outcome)])
    })
}

/// The service's own `read_parts` (`src/api/body.rs`) over any byte stream: the `file` parts
/// and their names, or the error code the API answers with.
async fn read_parts(
    headers: &HeaderMap,
    payload: impl futures_util::Stream<Item = Result<Bytes, PayloadError>> + 'static,
    limit: usize,
    max_files: usize,
) -> Result<Vec<(Option<String>, Vec<u8>)>, &'static str> {
    hallmark::api::body::read_parts(headers, payload, limit, max_files)
        .await
        .map(|parts| parts.into_iter().map(|p| (p.file_name, p.bytes)).collect())
        .map_err(|error| error.code())
}

fn multipart_exec() -> Exec {
    let limit = shared().limits.max_request_bytes;
    let max_files = shared().max_files;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Box::new(move |blob: &[u8]| {
        set_stage("multipart");
        let input = MultipartInput::parse(blob);
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&input.content_type) {
            headers.insert(header::CONTENT_TYPE, value);
        }
        let chunks = input.chunks();
        let mut outcome = if hallmark::api::body::is_multipart(&headers) {
            String::new()
        } else {
            "raw body; parsed anyway: ".to_owned()
        };
        // The service's limits, then a small body limit and a single file (as `/v1/lookup`).
        for (limit, max_files, name) in [(limit, max_files, "full"), (300, 1, "small")] {
            let polled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counter = Arc::clone(&polled);
            let items = chunks
                .iter()
                .map(|chunk| chunk.clone().ok_or(PayloadError::Incomplete(None)));
            let stream = futures_util::stream::iter(items.collect::<Vec<_>>()).inspect(move |_| {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            });
            let result = runtime.block_on(read_parts(&headers, stream, limit, max_files));
            let polled = polled.load(std::sync::atomic::Ordering::Relaxed);
            if polled > chunks.len() {
                return Err(format!(
                    "{polled} chunks polled from a stream of {}",
                    chunks.len()
                ));
            }
            match result {
                Ok(parts) => {
                    let total: usize = parts.iter().map(|p| p.1.len()).sum();
                    if total > limit || total > input.body.len() || parts.len() > max_files {
                        return Err(format!(
                            "{} parts of {total} bytes from a {}-byte body under a {limit}-byte limit",
                            parts.len(),
                            input.body.len()
                        ));
                    }
                    if let Some(name) = parts.iter().filter_map(|p| p.0.as_deref()).find(|n| {
                        n.contains(['/', '\\'])
                            || n.chars().any(char::is_control)
                            || n.chars().count() > 200
                    }) {
                        return Err(format!("unclean file name {name:?}"));
                    }
                    let _ = write!(outcome, "{name}: {} file(s); ", parts.len().min(3));
                }
                Err(code) => {
                    let _ = write!(outcome, "{name}: {code}; ");
                }
            }
            // The same body as `POST /v1/enhancements` reads it: named files and short fields.
            let items = chunks
                .iter()
                .map(|chunk| chunk.clone().ok_or(PayloadError::Incomplete(None)));
            let stream = futures_util::stream::iter(items.collect::<Vec<_>>());
            let form = runtime.block_on(hallmark::api::body::read_form(
                &headers,
                stream,
                limit,
                &["image", "mask"],
                &["op", "rect", "factor", "seed"],
            ));
            match form {
                Ok(form) => {
                    let total: usize = form.files.values().map(|p| p.bytes.len()).sum::<usize>()
                        + form.fields.values().map(String::len).sum::<usize>();
                    let names_ok = form
                        .files
                        .keys()
                        .all(|k| ["image", "mask"].contains(&k.as_str()))
                        && form
                            .fields
                            .keys()
                            .all(|k| ["op", "rect", "factor", "seed"].contains(&k.as_str()));
                    if total > limit || total > input.body.len() || !names_ok {
                        return Err(format!(
                            "a form of {total} bytes (names {:?} {:?}) from a {}-byte body under a {limit}-byte limit",
                            form.files.keys().collect::<Vec<_>>(),
                            form.fields.keys().collect::<Vec<_>>(),
                            input.body.len()
                        ));
                    }
                    if let Some((name, value)) = form.fields.iter().find(|(_, v)| v.len() > 256) {
                        return Err(format!("field {name:?} of {} bytes", value.len()));
                    }
                    let _ = write!(
                        outcome,
                        "form {name}: {} file(s), {} field(s); ",
                        form.files.len(),
                        form.fields.len()
                    );
                }
                Err(error) => {
                    let _ = write!(outcome, "form {name}: {}; ", error.code());
                }
            }
        }
        Ok(vec![(
            "multipart",
            outcome.trim_end_matches("; ").to_owned(),
        )])
    })
}

// ---------------------------------------------------------------------------------------------
// Harness: worker threads, hang guard, panics, findings, summary
// ---------------------------------------------------------------------------------------------

thread_local! {
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
    static STAGE: Cell<&'static str> = const { Cell::new("") };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn set_stage(stage: &'static str) {
    STAGE.with(|s| s.set(stage));
}

/// Panics on fuzz workers are recorded (message and location), not printed; any other thread's
/// go to the default hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_WORKER.with(Cell::get) {
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
            } else {
                previous(info);
            }
        }));
    });
}

enum Reply {
    Done {
        stages: Vec<(&'static str, String)>,
        /// A panic that happened and was caught inside the code under test.
        caught: Option<String>,
    },
    Panicked {
        stage: &'static str,
        message: String,
    },
    Broken {
        stage: &'static str,
        message: String,
    },
}

struct Worker {
    jobs: mpsc::Sender<Vec<u8>>,
    replies: mpsc::Receiver<(Reply, Duration)>,
}

impl Worker {
    fn spawn(name: &str, make: fn() -> Exec) -> Self {
        install_panic_hook();
        let (jobs, job_rx) = mpsc::channel::<Vec<u8>>();
        let (reply_tx, replies) = mpsc::channel();
        thread::Builder::new()
            .name(format!("fuzz-{name}"))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                IN_WORKER.with(|w| w.set(true));
                let mut exec = make();
                for input in job_rx {
                    LAST_PANIC.with(|p| p.borrow_mut().take());
                    set_stage("?");
                    let started = Instant::now();
                    let result = catch_unwind(AssertUnwindSafe(|| exec(&input)));
                    let stage = STAGE.with(Cell::get);
                    let panic = LAST_PANIC.with(|p| p.borrow_mut().take());
                    let reply = match result {
                        Ok(Ok(stages)) => Reply::Done {
                            stages,
                            caught: panic,
                        },
                        Ok(Err(message)) => Reply::Broken { stage, message },
                        Err(_) => Reply::Panicked {
                            stage,
                            message: panic.unwrap_or_else(|| "a panic without a message".into()),
                        },
                    };
                    if reply_tx.send((reply, started.elapsed())).is_err() {
                        break;
                    }
                }
            })
            .unwrap();
        Self { jobs, replies }
    }

    /// The reply, or `None` when the input ran past [`HANG_AFTER`].
    fn run(&self, input: Vec<u8>) -> Option<(Reply, Duration)> {
        self.jobs.send(input).unwrap();
        match self.replies.recv_timeout(HANG_AFTER) {
            Ok(reply) => Some(reply),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("the fuzz worker died"),
        }
    }
}

fn target_dir() -> PathBuf {
    // The test binary lives in <target>/<profile>/deps/.
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn save_finding(stage: &str, input: &[u8]) -> PathBuf {
    let dir = target_dir().join("fuzz-findings");
    std::fs::create_dir_all(&dir).unwrap();
    let hash = hex::encode(&hallmark::fingerprint::sha256(input)[..8]);
    let path = dir.join(format!("{stage}-{hash}.bin"));
    std::fs::write(&path, input).unwrap();
    path
}

#[derive(Default)]
struct Stats {
    executions: BTreeMap<&'static str, u64>,
    outcomes: BTreeMap<&'static str, BTreeMap<String, u64>>,
    caught_inside: BTreeMap<String, u64>,
    findings: Vec<String>,
    /// Findings by cause: where it panicked, or what hung or broke.
    causes: BTreeMap<String, u64>,
    crashes: u64,
    hangs: u64,
    broken: u64,
    slowest: (Duration, String),
}

/// Runs `inputs` through a fresh worker running `make`'s target; findings are saved and listed.
fn campaign(
    name: &'static str,
    make: fn() -> Exec,
    inputs: &mut dyn Iterator<Item = (Vec<u8>, String)>,
) -> Stats {
    let mut stats = Stats::default();
    let mut worker = Worker::spawn(name, make);
    let in_flight = target_dir()
        .join("fuzz-findings")
        .join(format!(".in-flight-{name}.bin"));
    std::fs::create_dir_all(in_flight.parent().unwrap()).unwrap();
    for (input, how) in inputs {
        // Kept on disk while it runs: a stack overflow or abort takes the whole process down.
        std::fs::write(&in_flight, &input).unwrap();
        let Some((reply, took)) = worker.run(input.clone()) else {
            stats.hangs += 1;
            *stats.causes.entry(format!("hang in {name}")).or_default() += 1;
            let path = save_finding(name, &input);
            stats.findings.push(format!(
                "HANG (> {HANG_AFTER:?}) in {name}: {how}; saved {}",
                path.display()
            ));
            break; // the worker is stuck; nothing more can run on it
        };
        if took > stats.slowest.0 {
            stats.slowest = (took, how.clone());
        }
        if took > SLOW_AFTER {
            let path = save_finding(&format!("slow-{name}"), &input);
            eprintln!(
                "slow input ({:.2} s) in {name}: {how}; kept at {}",
                took.as_secs_f64(),
                path.display()
            );
        }
        match reply {
            Reply::Done { stages, caught } => {
                for (stage, outcome) in stages {
                    *stats.executions.entry(stage).or_default() += 1;
                    *stats
                        .outcomes
                        .entry(stage)
                        .or_default()
                        .entry(outcome)
                        .or_default() += 1;
                }
                if let Some(message) = caught {
                    let location = message.lines().next().unwrap_or_default().to_owned();
                    *stats.caught_inside.entry(location).or_default() += 1;
                }
            }
            Reply::Panicked { stage, message } => {
                stats.crashes += 1;
                *stats.executions.entry(stage).or_default() += 1;
                let location = message.lines().next().unwrap_or_default();
                let cause = format!("crash in {stage}: {location}");
                *stats.causes.entry(cause).or_default() += 1;
                let path = save_finding(stage, &input);
                stats.findings.push(format!(
                    "CRASH in {stage}: {}; input {how}; saved {}",
                    message.replace('\n', " "),
                    path.display()
                ));
                // The target's state may be poisoned: start afresh.
                worker = Worker::spawn(name, make);
            }
            Reply::Broken { stage, message } => {
                stats.broken += 1;
                *stats.executions.entry(stage).or_default() += 1;
                let kind: String = message
                    .chars()
                    .take_while(|c| !c.is_ascii_digit())
                    .collect();
                let cause = format!("broken invariant in {stage}: {kind}");
                *stats.causes.entry(cause).or_default() += 1;
                let path = save_finding(stage, &input);
                stats.findings.push(format!(
                    "BROKEN INVARIANT in {stage}: {message}; input {how}; saved {}",
                    path.display()
                ));
            }
        }
    }
    let _ = std::fs::remove_file(&in_flight);
    stats
}

fn report(title: &str, stats: &Stats, elapsed: Duration) -> String {
    let mut out = format!(
        "\n=== fuzz {title}: seed {:#x}, {:.1} s, slowest input {:.2} s ({}) ===\n",
        base_seed(),
        elapsed.as_secs_f64(),
        stats.slowest.0.as_secs_f64(),
        stats.slowest.1
    );
    for (stage, executions) in &stats.executions {
        let _ = writeln!(out, "  {stage}: {executions} executions");
        if let Some(outcomes) = stats.outcomes.get(stage) {
            let mut sorted: Vec<_> = outcomes.iter().collect();
            sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (outcome, count) in sorted.iter().take(14) {
                let _ = writeln!(out, "    {count:>7}  {outcome}");
            }
            if sorted.len() > 14 {
                let rest: u64 = sorted[14..].iter().map(|(_, c)| **c).sum();
                let _ = writeln!(out, "    {rest:>7}  ({} other outcomes)", sorted.len() - 14);
            }
        }
    }
    for (location, count) in &stats.caught_inside {
        let _ = writeln!(
            out,
            "  panics caught inside the code under test: {count} x {location}"
        );
    }
    let _ = writeln!(
        out,
        "  crashes {}, hangs {}, broken invariants {}",
        stats.crashes, stats.hangs, stats.broken
    );
    for (cause, count) in &stats.causes {
        let _ = writeln!(out, "  {count} x {cause}");
    }
    for finding in stats.findings.iter().take(10) {
        let _ = writeln!(out, "  {finding}");
    }
    if stats.findings.len() > 10 {
        let _ = writeln!(out, "  ... and {} more", stats.findings.len() - 10);
    }
    out
}

fn fuzz_bytes(name: &'static str, make: fn() -> Exec, corpus: &[Seed]) {
    let started = Instant::now();
    let total = iterations(name);
    let mut inputs = (0..total).map(|i| byte_input(name, i, corpus));
    let stats = campaign(name, make, &mut inputs);
    let text = report(
        &format!("{name} ({total} inputs)"),
        &stats,
        started.elapsed(),
    );
    println!("{text}");
    assert!(stats.findings.is_empty(), "fuzz findings:{text}");
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_upload_gate_and_fingerprints() {
    fuzz_bytes("upload", upload_exec, &shared().gate);
}

#[test]
fn fuzz_c2pa_reader() {
    fuzz_bytes("c2pa", c2pa_exec, &shared().c2pa);
}

#[test]
fn fuzz_multipart() {
    let started = Instant::now();
    let corpus = multipart_seeds();
    let total = iterations("multipart");
    let mut inputs = (0..total).map(|i| {
        if let Some(seed) = usize::try_from(i).ok().and_then(|i| corpus.get(i)) {
            return (seed.bytes.clone(), format!("seed {}", seed.name));
        }
        let mut rng = rng_for("multipart", i);
        let seed = corpus.choose(&mut rng).unwrap();
        let (blob, applied) = mutate_multipart(&mut rng, &seed.bytes, &corpus);
        (blob, format!("{} <- {}", applied.join("+"), seed.name))
    });
    let stats = campaign("multipart", multipart_exec, &mut inputs);
    let text = report(
        &format!("multipart ({total} inputs)"),
        &stats,
        started.elapsed(),
    );
    println!("{text}");
    assert!(stats.findings.is_empty(), "fuzz findings:{text}");
}

/// actix-multipart 0.7 kept a malformed body (part headers never ended, or no line break at all)
/// in memory whole, past the request limit, before failing: bounded work means bounded memory.
#[test]
fn the_multipart_parser_holds_a_bounded_part_of_a_malformed_body() {
    let shared = shared();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for head in [
        "--X\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Pad: ",
        "--X",
    ] {
        let pulled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&pulled);
        let body_size = shared.limits.max_request_bytes + (2 << 20);
        let chunks = std::iter::once(Bytes::from(head))
            .chain((0..body_size / (64 << 10)).map(|_| Bytes::from(vec![b'a'; 64 << 10])));
        let stream = futures_util::stream::iter(chunks.map(Ok)).inspect(move |chunk| {
            let len = chunk.as_ref().map_or(0, Bytes::len);
            counter.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        });
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=X"),
        );
        let result = runtime.block_on(read_parts(
            &headers,
            stream,
            shared.limits.max_request_bytes,
            shared.max_files,
        ));
        let pulled = pulled.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(result.unwrap_err(), "malformed_multipart", "{head:?}");
        assert!(
            pulled < 1 << 20,
            "{head:?}: {pulled} bytes read before refusing"
        );
    }
}

/// Every seed must read as its README says before mutants of it mean anything; and the hostile
/// TIFF is refused by the gate from its magic bytes, at once.
#[test]
fn seeds_behave_and_the_hostile_tiff_is_refused_at_the_gate() {
    let shared = shared();
    for tiff in shared.gate.iter().filter(|s| is_hostile(&s.name)) {
        let started = Instant::now();
        let refused = upload::inspect(&tiff.bytes, &shared.limits).unwrap_err();
        assert_eq!(refused, upload::UploadError::Unsupported, "{}", tiff.name);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{}: {:?}",
            tiff.name,
            started.elapsed()
        );
    }
    assert!(shared.c2pa.iter().all(|s| !is_hostile(&s.name)));
    for seed in shared
        .gate
        .iter()
        .filter(|s| s.name.starts_with("hallmark-signed"))
    {
        let report = shared.verifier.verify(&seed.bytes);
        assert!(report.hallmark.is_some(), "{}: {report:#?}", seed.name);
    }
    let mut decoded = 0;
    for seed in &shared.gate {
        if upload::inspect(&seed.bytes, &shared.limits).is_ok() {
            decoded += 1;
        } else {
            let image_name = [".png", ".jpg", ".jpeg", ".webp"]
                .iter()
                .any(|ext| seed.name.ends_with(ext));
            assert!(
                !image_name || seed.name == "lossy-vp8.webp",
                "seed {} does not decode",
                seed.name
            );
        }
    }
    assert!(decoded >= 20, "{decoded} seeds decode");
    let mut parse = multipart_exec();
    // All but the one whose stream ends in a transport error parse.
    for seed in multipart_seeds()
        .iter()
        .filter(|s| s.name != "long-boundary-and-error")
    {
        let outcome = parse(&seed.bytes).unwrap();
        assert!(
            outcome[0].1.starts_with("full: "),
            "{}: {outcome:?}",
            seed.name
        );
        assert!(
            !outcome[0].1.starts_with("full: malformed"),
            "{}: {outcome:?}",
            seed.name
        );
    }
}

/// Reproducers of past findings (`tests/fuzz-regressions/<target>-<hash>.bin`), on every run.
#[test]
fn fuzz_regressions_replay() {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(REGRESSIONS) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    files.retain(|p| p.extension().is_some_and(|e| e == "bin"));
    files.sort();
    let mut failures = String::new();
    for (prefixes, name, make) in [
        (
            &["upload", "fingerprint"][..],
            "upload",
            upload_exec as fn() -> Exec,
        ),
        (&["c2pa"][..], "c2pa", c2pa_exec),
        (&["multipart"][..], "multipart", multipart_exec),
    ] {
        let mut inputs = files
            .iter()
            .filter(|p| {
                let file = p.file_name().unwrap().to_string_lossy();
                prefixes
                    .iter()
                    .any(|prefix| file.starts_with(&format!("{prefix}-")))
            })
            .map(|p| (std::fs::read(p).unwrap(), p.display().to_string()))
            .collect::<Vec<_>>()
            .into_iter();
        let count = inputs.len();
        let stats = campaign(name, make, &mut inputs);
        println!("replayed {count} {name} regression input(s)");
        for (location, times) in &stats.caught_inside {
            println!("  a panic caught inside the code under test: {times} x {location}");
        }
        for finding in &stats.findings {
            let _ = writeln!(failures, "{finding}");
        }
    }
    assert!(failures.is_empty(), "regressions:\n{failures}");
}
