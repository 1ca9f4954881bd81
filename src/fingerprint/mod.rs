//! Fingerprints of pixels: an exact one (SHA-256 of the decoded pixels, which survives stripping
//! metadata from a lossless file) and a perceptual one (a 64-bit DCT hash, which survives
//! re-encoding and resizing, compared by Hamming distance); and the ISCC Content-Code Image
//! ([`iscc`]), the listed soft binding of Hallmark's manifests.

pub mod align;
pub mod digest;
pub mod iscc;
pub mod phash;
pub mod reenact;
pub mod webp;

use std::borrow::Cow;

use image::{DynamicImage, GrayImage};
use sha2::{Digest, Sha256};

pub use digest::Sha256Digest;
use phash::{PHasher, Window};

/// Domain-separation prefix of the pixel hash, so it can never collide with a file hash.
const PIXEL_HASH_DOMAIN: &[u8] = b"hallmark-pixels-v1\0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub pixel_sha256: [u8; 32],
    pub phash: u64,
}

/// Computes perceptual hashes (the exact fingerprint is [`pixel_sha256`]); build one
/// [`Fingerprinter`] and reuse it.
pub struct Fingerprinter {
    hasher: PHasher,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprinter {
    #[must_use]
    pub fn new() -> Self {
        // The classic pHash: grey, downscaled, a DCT, and the sign of the 64 lowest-frequency
        // coefficients against their mean (see `phash`).
        Self {
            hasher: PHasher::new(),
        }
    }

    #[must_use]
    pub fn phash(&self, image: &DynamicImage) -> u64 {
        self.hasher.hash(&grey(image))
    }

    /// The pHashes of windows of one image, each as [`Fingerprinter::phash`] of the window
    /// cropped out; the grey conversion and the resize weights are shared.
    #[must_use]
    pub fn window_phashes(&self, image: &DynamicImage, windows: &[Window]) -> Vec<u64> {
        self.hasher.hash_windows(&grey(image), windows)
    }
}

/// The image in 8-bit grey, as the hash reads it (per pixel, so a crop's grey is the grey's crop).
fn grey(image: &DynamicImage) -> Cow<'_, GrayImage> {
    image
        .as_luma8()
        .map_or_else(|| Cow::Owned(image.to_luma8()), Cow::Borrowed)
}

/// SHA-256 over the image's size and its pixels as 8-bit RGBA, so the same picture hashes the
/// same whether it was decoded from a grey, RGB or RGBA file.
#[must_use]
pub fn pixel_sha256(image: &DynamicImage) -> [u8; 32] {
    let rgba = image.to_rgba8();
    let mut hasher = Sha256::new();
    hasher.update(PIXEL_HASH_DOMAIN);
    hasher.update(rgba.width().to_be_bytes());
    hasher.update(rgba.height().to_be_bytes());
    hasher.update(rgba.as_raw());
    hasher.finalize().into()
}

/// Longest side of the copy that perceptual hashing and comparison work on: hashes and the
/// 32-pixel comparison image come out the same from it as from the full image, at a cost that no
/// longer grows with the upload's size.
pub const WORK_SIDE: u32 = 512;

/// `image` itself when its longer side is at most [`WORK_SIDE`], else a copy shrunk to it
/// (aspect kept) with the fast box-filter thumbnail, so work after the gate is bounded whatever
/// the upload's size.
#[must_use]
pub fn working_copy(image: &image::DynamicImage) -> std::borrow::Cow<'_, image::DynamicImage> {
    if image.width().max(image.height()) <= WORK_SIDE {
        std::borrow::Cow::Borrowed(image)
    } else {
        std::borrow::Cow::Owned(image.thumbnail(WORK_SIDE, WORK_SIDE))
    }
}

/// SHA-256 of bytes, e.g. a whole file.
#[must_use]
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Number of differing bits.
#[must_use]
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// The 64 hash bits as the signed integer PostgreSQL stores (same bits).
#[must_use]
pub fn phash_to_db(phash: u64) -> i64 {
    i64::from_ne_bytes(phash.to_ne_bytes())
}

#[must_use]
pub fn phash_from_db(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

/// `value` and every 16-bit value within `radius` bit flips of it: the probes of multi-index
/// hashing over 16-bit chunks (the registry's pHashes, `record_iscc`'s ISCC codes).
#[must_use]
pub fn neighbours(value: u16, radius: u32) -> Vec<u16> {
    let mut out = vec![value];
    let mut frontier = vec![(value, 0u32)];
    for _ in 0..radius {
        let mut next = Vec::new();
        for &(v, lowest) in &frontier {
            // Flip only bits above the last flipped one, so each set is generated once.
            for bit in lowest..16 {
                let flipped = v ^ (1 << bit);
                out.push(flipped);
                next.push((flipped, bit + 1));
            }
        }
        frontier = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_working_copy_is_bounded() {
        let small = image::DynamicImage::new_luma8(40, 30);
        assert!(matches!(
            working_copy(&small),
            std::borrow::Cow::Borrowed(_)
        ));
        let big = image::DynamicImage::new_luma8(4096, 1024);
        let copy = working_copy(&big);
        assert_eq!((copy.width(), copy.height()), (WORK_SIDE, WORK_SIDE / 4));
    }

    use image::{GrayImage, Luma};
    use std::io::Cursor;

    /// A garment-like test picture: a bright blob with a gradient on black.
    fn picture(shift: u32) -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_fn(32, 32, |x, y| {
            let dx = x as i32 - 16 - shift as i32;
            let dy = y as i32 - 14;
            if dx * dx / 2 + dy * dy < 120 {
                Luma([(120 + 4 * y) as u8])
            } else {
                Luma([0])
            }
        }))
    }

    fn reencode_jpeg(image: &DynamicImage, quality: u8) -> DynamicImage {
        let mut bytes = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality);
        image.to_rgb8().write_with_encoder(encoder).unwrap();
        image::load(Cursor::new(bytes), image::ImageFormat::Jpeg).unwrap()
    }

    #[test]
    fn pixel_hash_ignores_the_colour_layout() {
        let grey = picture(0);
        let rgb = DynamicImage::ImageRgb8(grey.to_rgb8());
        assert_eq!(pixel_sha256(&grey), pixel_sha256(&rgb));
        assert_ne!(pixel_sha256(&grey), pixel_sha256(&picture(3)));
    }

    #[test]
    fn phash_is_stable_under_reencoding_and_resizing() {
        let fp = Fingerprinter::new();
        let original = fp.phash(&picture(0));
        let jpeg = fp.phash(&reencode_jpeg(&picture(0), 75));
        let half = fp.phash(&picture(0).resize(16, 16, image::imageops::FilterType::Triangle));
        assert!(
            hamming(original, jpeg) <= 4,
            "jpeg distance {}",
            hamming(original, jpeg)
        );
        assert!(
            hamming(original, half) <= 6,
            "resize distance {}",
            hamming(original, half)
        );
    }

    #[test]
    fn phash_tells_different_pictures_apart() {
        let fp = Fingerprinter::new();
        let blob = fp.phash(&picture(0));
        let stripes = fp.phash(&DynamicImage::ImageLuma8(GrayImage::from_fn(
            32,
            32,
            |x, _| Luma([if (x / 4) % 2 == 0 { 255 } else { 0 }]),
        )));
        assert!(hamming(blob, stripes) > 16);
    }

    #[test]
    fn db_round_trip_keeps_every_bit() {
        for value in [0, 1, u64::MAX, 1 << 63, 0x0123_4567_89ab_cdef] {
            assert_eq!(phash_from_db(phash_to_db(value)), value);
        }
    }
}
