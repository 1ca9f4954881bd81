//! The gate in front of every parser: size limit, format sniffed from the content (never the
//! name), the pixel count read from the header before any decoding (decompression bombs), then a
//! decode under an allocation limit. Anything else — TIFF included, whose parser in c2pa 0.90
//! burns minutes on hostile files — is refused by its magic bytes before a parser sees it.

use std::io::Cursor;

use image::{DynamicImage, ImageReader};

use crate::config::LimitSettings;
use crate::provenance::ImageFormat;

/// An upload that passed the gate: its format, size and decoded pixels.
#[derive(Debug)]
pub struct Upload {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub image: DynamicImage,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UploadError {
    #[error("the upload is empty")]
    Empty,
    #[error("the upload is {bytes} bytes; the limit is {limit}")]
    TooLarge { bytes: usize, limit: usize },
    #[error("not a PNG, JPEG or WebP image (judged by its content)")]
    Unsupported,
    #[error("the image is {width}x{height} pixels; the limit is {limit} pixels")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("the image is {width}x{height} pixels; sides may differ by at most {limit}:1")]
    AspectRatio { width: u32, height: u32, limit: u32 },
    #[error("the {format} image cannot be decoded: {reason}")]
    Corrupt { format: ImageFormat, reason: String },
}

fn codec(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Webp => image::ImageFormat::WebP,
    }
}

/// Runs one decoder step. A panic in it is a decoder bug on a hostile file (png 0.18.1 panics
/// on a PLTE chunk whose length is not a multiple of 3, image-rs/image-png#694, found by
/// `tests/fuzz.rs`): the file is corrupt, not a 500.
fn guarded<T>(
    format: ImageFormat,
    step: impl FnOnce() -> image::ImageResult<T>,
) -> Result<T, UploadError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(result) => result.map_err(|error| UploadError::Corrupt {
            format,
            reason: error.to_string(),
        }),
        Err(_) => Err(UploadError::Corrupt {
            format,
            reason: "the decoder failed on this file".into(),
        }),
    }
}

/// Runs the gate. CPU-bound (it decodes): call it on the blocking pool.
///
/// # Errors
/// Each refusal as an [`UploadError`], which maps to a coded 4xx.
pub fn inspect(bytes: &[u8], limits: &LimitSettings) -> Result<Upload, UploadError> {
    if bytes.is_empty() {
        return Err(UploadError::Empty);
    }
    if bytes.len() > limits.max_request_bytes {
        return Err(UploadError::TooLarge {
            bytes: bytes.len(),
            limit: limits.max_request_bytes,
        });
    }
    let format = ImageFormat::sniff(bytes).ok_or(UploadError::Unsupported)?;
    // The header alone, unlimited: our own pixel limit below is the one that decides.
    let mut header = ImageReader::with_format(Cursor::new(bytes), codec(format));
    header.no_limits();
    let (width, height) = guarded(format, || header.into_dimensions())?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_image_pixels {
        return Err(UploadError::TooManyPixels {
            width,
            height,
            limit: limits.max_image_pixels,
        });
    }
    // A 16777216x1 strip is within the pixel limit but no picture; resampling code handles such
    // shapes badly (every output row touches the whole input), so they never get that far.
    let (short, long) = (width.min(height), width.max(height));
    if short == 0 || u64::from(long) > u64::from(short) * u64::from(limits.max_aspect_ratio) {
        return Err(UploadError::AspectRatio {
            width,
            height,
            limit: limits.max_aspect_ratio,
        });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), codec(format));
    let mut decode_limits = image::Limits::default();
    decode_limits.max_image_width = Some(width);
    decode_limits.max_image_height = Some(height);
    // Room for the widest layout the decoders produce (16-bit RGBA) and nothing more.
    decode_limits.max_alloc = Some(pixels.saturating_mul(8).max(1 << 20));
    reader.limits(decode_limits);
    let image = guarded(format, || reader.decode())?;
    Ok(Upload {
        format,
        width,
        height,
        image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn limits() -> LimitSettings {
        Settings::load(None).unwrap().limits
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = DynamicImage::ImageLuma8(image::GrayImage::from_fn(width, height, |x, y| {
            image::Luma([((x * 7 + y * 3) % 256) as u8])
        }));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// A PNG whose header claims `width` x `height` (valid CRC) with no pixel data at all.
    fn png_header_only(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(width.to_be_bytes());
        ihdr.extend(height.to_be_bytes());
        ihdr.extend([8, 0, 0, 0, 0]); // 8-bit grey, no interlace
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        for chunk in [ihdr, b"IDAT".to_vec(), b"IEND".to_vec()] {
            out.extend(u32::try_from(chunk.len() - 4).unwrap().to_be_bytes());
            out.extend(&chunk);
            out.extend(crc32(&chunk).to_be_bytes());
        }
        out
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_good_png_passes() {
        let upload = inspect(&png(32, 24), &limits()).unwrap();
        assert_eq!(
            (upload.format, upload.width, upload.height),
            (ImageFormat::Png, 32, 24)
        );
        assert_eq!(upload.image.width(), 32);
    }

    #[test]
    fn non_images_and_tiffs_are_refused_by_content() {
        assert_eq!(
            inspect(b"hello, world", &limits()).unwrap_err(),
            UploadError::Unsupported
        );
        // A little-endian TIFF header pointing at an IFD with many entries: the shape of the
        // hostile files c2pa 0.90 spends minutes on, refused here by its first bytes.
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend(0xffffu16.to_le_bytes());
        tiff.extend(std::iter::repeat_n(0u8, 12 * 64));
        assert_eq!(
            inspect(&tiff, &limits()).unwrap_err(),
            UploadError::Unsupported
        );
        assert_eq!(inspect(b"", &limits()).unwrap_err(), UploadError::Empty);
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        let bomb = png_header_only(100_000, 100_000);
        let error = inspect(&bomb, &limits()).unwrap_err();
        assert!(
            matches!(error, UploadError::TooManyPixels { width: 100_000, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn strips_are_refused_from_their_header() {
        for (w, h) in [(16_777_216, 1), (1, 16_777_216), (3300, 100)] {
            let error = inspect(&png_header_only(w, h), &limits()).unwrap_err();
            assert!(
                matches!(error, UploadError::AspectRatio { width, height, .. } if (width, height) == (w, h)),
                "{w}x{h}: {error:?}"
            );
        }
        // A wide panorama within the ratio passes.
        let upload = inspect(&png(320, 20), &limits()).unwrap();
        assert_eq!((upload.width, upload.height), (320, 20));
    }

    #[test]
    fn a_truncated_png_is_corrupt() {
        let whole = png(64, 64);
        let error = inspect(&whole[..whole.len() / 2], &limits()).unwrap_err();
        assert!(
            matches!(
                error,
                UploadError::Corrupt {
                    format: ImageFormat::Png,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn oversized_uploads_are_refused_before_parsing() {
        let mut small = limits();
        small.max_request_bytes = 100;
        let error = inspect(&png(64, 64), &small).unwrap_err();
        assert!(matches!(error, UploadError::TooLarge { .. }));
    }
}
