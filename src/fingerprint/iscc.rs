//! The ISCC Content-Code Image (ISO 24138:2024, algorithm v0) of a picture: Hallmark's listed soft
//! binding, `io.iscc.v0` on the C2PA soft-binding algorithm list (docs/soft-binding.md).
//!
//! The code is computed as the reference implementation computes it, bit for bit
//! (tests/provenance.rs checks it against iscc-core from PyPI, `scripts/iscc_image_code.py`):
//!
//! 1. [`normalize`]: the image to 1024 grey pixels in the steps of iscc-sdk's `image_normalize`,
//!    each as Pillow does it: transparency over white, the uniform border trimmed (the colour of
//!    the top-left pixel), grey by ITU-R 601-2 luma in Pillow's fixed point, and 32 × 32 by
//!    Pillow's two-pass bicubic filter (`Image.resize`, 8-bit fixed point with rounding between
//!    the passes, in Pillow 13's order). EXIF orientation is applied when a file is decoded
//!    ([`ImageCode::of_file`]).
//! 2. [`soft_hash`]: iscc-core's `soft_hash_image_v0`: a 2-D DCT (Nayuki's recursive fast DCT,
//!    rows then columns, in iscc-core's exact floating-point order), then the four 8 × 8 squares of
//!    the upper-left 16 × 16 coefficients (top-left, top-right, bottom-left, bottom-right, as
//!    iscc-core 1.5 takes them), each row-major, one bit per coefficient: greater than its
//!    square's median.
//! 3. The ISCC-UNIT: the header (MainType CONTENT, SubType IMAGE, Version 0, Length 256 bits)
//!    and the 32-byte body; `ISCC:` and base32 (RFC 4648, no padding) for display.
//!
//! Hallmark makes 256-bit codes only: IEP-0020 (the ISCC format of `io.iscc.v0` soft-binding
//! values) admits no other length. [`decode_seq`] reads an ISCC-SEQ, the value format, strictly as
//! IEP-0020 specifies.
//!
//! The `iscc-lib` crate (the ISCC Foundation's Rust implementation) was not used: it has no image
//! normalisation (pixels in, as iscc-core), and its 256-bit Image-Code takes the squares at the
//! offsets iscc-core used before 1.5 (one pixel apart, not eight), so its 256-bit codes differ
//! from the reference's (the first 64 bits agree).

use std::f64::consts::PI;
use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, ImageDecoder as _, ImageReader, RgbImage};

/// Bits of every code Hallmark makes and matches.
pub const BITS: u32 = 256;
/// The ISCC-HEADER of a 256-bit Content-Code Image v0, one nibble per field: MainType CONTENT (2),
/// SubType IMAGE (1), Version 0, Length 7 (the body is 32 × (7 + 1) bits).
pub const HEADER: [u8; 2] = [0x21, 0x07];
/// Side of the normalised image.
const SIDE: usize = 32;

/// A 256-bit ISCC Content-Code Image: its body, the soft hash's 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageCode(pub [u8; 32]);

impl std::fmt::Debug for ImageCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.iscc())
    }
}

impl std::fmt::Display for ImageCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.iscc())
    }
}

impl ImageCode {
    /// The code of 1024 normalised grey pixels (32 rows of 32, see [`normalize`]).
    #[must_use]
    pub fn of_pixels(pixels: &[u8; SIDE * SIDE]) -> Self {
        Self(soft_hash(pixels))
    }

    /// The code of decoded pixels.
    #[must_use]
    pub fn of_image(image: &DynamicImage) -> Self {
        Self::of_pixels(&normalize(image))
    }

    /// The code of an encoded image file, turned upright by its EXIF orientation first.
    ///
    /// # Errors
    /// When the bytes are of no format the `image` crate reads, or do not decode.
    pub fn of_file(bytes: &[u8]) -> Result<Self, image::ImageError> {
        let mut decoder = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()?
            .into_decoder()?;
        let orientation = decoder.orientation()?;
        let mut image = DynamicImage::from_decoder(decoder)?;
        image.apply_orientation(orientation);
        Ok(Self::of_image(&image))
    }

    /// The code of pixels decoded from a file, turned upright by the file's EXIF orientation
    /// ([`orientation`]) first, as [`ImageCode::of_file`] does.
    #[must_use]
    pub fn of_decoded(mut image: DynamicImage, file: &[u8]) -> Self {
        image.apply_orientation(orientation(file));
        Self::of_image(&image)
    }

    /// The ISCC-UNIT's bytes: [`HEADER`] and the body (an ISCC-SEQ of this one unit).
    #[must_use]
    pub fn unit(&self) -> [u8; 34] {
        let mut out = [0; 34];
        out[..2].copy_from_slice(&HEADER);
        out[2..].copy_from_slice(&self.0);
        out
    }

    /// The canonical text form, `ISCC:` and base32 of the unit (e.g. `ISCC:EED…`).
    #[must_use]
    pub fn iscc(&self) -> String {
        format!("ISCC:{}", data_encoding::BASE32_NOPAD.encode(&self.unit()))
    }

    /// The body as four 64-bit words, most significant first.
    #[must_use]
    pub fn words(&self) -> [u64; 4] {
        std::array::from_fn(|i| {
            let mut word = [0; 8];
            word.copy_from_slice(&self.0[8 * i..8 * i + 8]);
            u64::from_be_bytes(word)
        })
    }

    /// The code whose body is these four words, most significant first.
    #[must_use]
    pub fn from_words(words: [u64; 4]) -> Self {
        let mut body = [0; 32];
        for (i, word) in words.iter().enumerate() {
            body[8 * i..8 * i + 8].copy_from_slice(&word.to_be_bytes());
        }
        Self(body)
    }

    /// Number of differing bits (0 to 256).
    #[must_use]
    pub fn distance(&self, other: &Self) -> u32 {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }
}

/// The EXIF orientation an image file declares (none when it declares none or does not parse).
#[must_use]
pub fn orientation(bytes: &[u8]) -> Orientation {
    ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()
        .and_then(|reader| reader.into_decoder().ok())
        .and_then(|mut decoder| decoder.orientation().ok())
        .unwrap_or(Orientation::NoTransforms)
}

/// One ISCC-UNIT of an ISCC-SEQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit<'a> {
    pub main_type: u16,
    pub sub_type: u16,
    pub version: u16,
    /// The Length field: the body is 32 × (length + 1) bits.
    pub length: u16,
    pub body: &'a [u8],
}

impl Unit<'_> {
    /// The unit as an [`ImageCode`], when it is a 256-bit Content-Code Image v0.
    #[must_use]
    pub fn image_code(&self) -> Option<ImageCode> {
        if (self.main_type, self.sub_type, self.version, self.length) != (2, 1, 0, 7) {
            return None;
        }
        Some(ImageCode(self.body.try_into().ok()?))
    }
}

/// Why bytes are not an ISCC-SEQ.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeqError {
    #[error("an empty ISCC-SEQ")]
    Empty,
    #[error("a malformed ISCC-HEADER at byte {0}")]
    Header(usize),
    #[error("a non-canonical ISCC-HEADER at byte {0}")]
    NonCanonical(usize),
    #[error("MainType {1} at byte {0} is not allowed in an ISCC-SEQ")]
    MainType(usize, u16),
    #[error("Length field {1} at byte {0} is over 7")]
    Length(usize, u16),
    #[error("the ISCC-UNIT at byte {0} is cut short")]
    Truncated(usize),
}

/// The ISCC-UNITs of an ISCC-SEQ (IEP-0020: ISCC-UNITs, each its header and body, concatenated),
/// in order. Strict as IEP-0020's decoding: a header that does not end in time, is not the
/// canonical encoding of its fields, has a MainType other than META, SEMANTIC, CONTENT, DATA or
/// INSTANCE (0-4) or a Length field over 7, or a body cut short rejects the whole value. Unknown
/// SubTypes and Versions are kept.
///
/// # Errors
/// As listed.
pub fn decode_seq(bytes: &[u8]) -> Result<Vec<Unit<'_>>, SeqError> {
    if bytes.is_empty() {
        return Err(SeqError::Empty);
    }
    let mut units = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let mut nibbles = Nibbles { bytes: rest, at: 0 };
        let mut fields = [0u16; 4];
        for field in &mut fields {
            *field = nibbles.varnibble().ok_or(SeqError::Header(at))?;
        }
        // Padded to whole bytes with one zero nibble.
        if nibbles.at % 2 == 1 && nibbles.nibble().ok_or(SeqError::Header(at))? != 0 {
            return Err(SeqError::NonCanonical(at));
        }
        let header_len = nibbles.at / 2;
        if encode_header(fields) != rest[..header_len] {
            return Err(SeqError::NonCanonical(at));
        }
        let [main_type, sub_type, version, length] = fields;
        if main_type > 4 {
            return Err(SeqError::MainType(at, main_type));
        }
        if length > 7 {
            return Err(SeqError::Length(at, length));
        }
        let body_len = 4 * (usize::from(length) + 1);
        let body = rest
            .get(header_len..header_len + body_len)
            .ok_or(SeqError::Truncated(at))?;
        units.push(Unit {
            main_type,
            sub_type,
            version,
            length,
            body,
        });
        at += header_len + body_len;
    }
    Ok(units)
}

/// The ISCC-HEADER of these fields (MainType, SubType, Version, Length), each a varnibble:
/// `0xxx` for 0-7, `10xxxxxx` for 8-71, `110xxxxxxxxx` for 72-583, `1110` and 12 bits for
/// 584-4679; a zero nibble pads an odd count.
fn encode_header(fields: [u16; 4]) -> Vec<u8> {
    let mut nibbles = Vec::new();
    for value in fields {
        let (prefix, width, offset): (u32, u32, u32) = match value {
            0..=7 => (0b0, 1, 0),
            8..=71 => (0b10, 2, 8),
            72..=583 => (0b110, 3, 72),
            _ => (0b1110, 4, 584),
        };
        let bits = (prefix << (3 * width)) | (u32::from(value) - offset);
        for i in (0..width).rev() {
            nibbles.push(((bits >> (4 * i)) & 0xf) as u8);
        }
    }
    if nibbles.len() % 2 == 1 {
        nibbles.push(0);
    }
    nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

/// A reader of 4-bit nibbles, most significant first.
struct Nibbles<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Nibbles<'_> {
    fn nibble(&mut self) -> Option<u16> {
        let byte = self.bytes.get(self.at / 2)?;
        let nibble = if self.at.is_multiple_of(2) {
            byte >> 4
        } else {
            byte & 0xf
        };
        self.at += 1;
        Some(u16::from(nibble))
    }

    /// One varnibble (see [`encode_header`]); `None` when the bytes end first or its prefix is
    /// `1111`.
    fn varnibble(&mut self) -> Option<u16> {
        let first = self.nibble()?;
        let (width, offset, data) = match first {
            0..=7 => return Some(first),
            8..=11 => (2, 8, first & 0b11),
            12..=13 => (3, 72, first & 0b1),
            14 => (4, 584, 0),
            _ => return None,
        };
        let mut value = data;
        for _ in 1..width {
            value = (value << 4) | self.nibble()?;
        }
        Some(value + offset)
    }
}

/// The 256-bit soft hash of 1024 normalised pixels (iscc-core `soft_hash_image_v0`, 256 bits).
#[must_use]
pub fn soft_hash(pixels: &[u8; SIDE * SIDE]) -> [u8; 32] {
    // Rows, then columns, as iscc-core: each column's input is the rows' coefficients.
    let rows: Vec<Vec<f64>> = pixels
        .chunks_exact(SIDE)
        .map(|row| dct(&row.iter().map(|&p| f64::from(p)).collect::<Vec<_>>()))
        .collect();
    // columns[x][y] is the coefficient of row y, column x.
    let columns: Vec<Vec<f64>> = (0..SIDE)
        .map(|x| dct(&rows.iter().map(|row| row[x]).collect::<Vec<_>>()))
        .collect();
    let mut body = [0u8; 32];
    for (square, (x0, y0)) in [(0, 0), (8, 0), (0, 8), (8, 8)].into_iter().enumerate() {
        // Row-major: rows y0..y0 + 8, each from column x0 to x0 + 8.
        let flat: Vec<f64> = (y0..y0 + 8)
            .flat_map(|y| columns[x0..x0 + 8].iter().map(move |column| column[y]))
            .collect();
        let median = median(&flat);
        for (i, &value) in flat.iter().enumerate() {
            if value > median {
                let bit = 64 * square + i;
                body[bit / 8] |= 0x80 >> (bit % 8);
            }
        }
    }
    body
}

/// Python's `statistics.median`: the middle value, or the mean of the two middle values.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// iscc-core's `alg_dct` (Nayuki's fast recursive DCT-II, unnormalised), operation for operation
/// so that the floating-point results are the same. `v.len()` is a power of two.
fn dct(v: &[f64]) -> Vec<f64> {
    let n = v.len();
    if n == 1 {
        return v.to_vec();
    }
    let half = n / 2;
    let alpha: Vec<f64> = (0..half).map(|i| v[i] + v[n - 1 - i]).collect();
    let beta: Vec<f64> = (0..half)
        .map(|i| (v[i] - v[n - 1 - i]) / (((i as f64 + 0.5) * PI / n as f64).cos() * 2.0))
        .collect();
    let alpha = dct(&alpha);
    let beta = dct(&beta);
    let mut out = Vec::with_capacity(n);
    for i in 0..half - 1 {
        out.push(alpha[i]);
        out.push(beta[i] + beta[i + 1]);
    }
    out.push(alpha[half - 1]);
    out.push(beta[half - 1]);
    out
}

/// The 1024 grey pixels (32 rows of 32) of iscc-sdk's `image_normalize`, each step as Pillow
/// computes it (see the module's documentation). Images of more than 8 bits per sample are first
/// reduced to 8 by the `image` crate, where Pillow keeps the high byte: such images may differ
/// from the reference by a rounding step (Hallmark makes and signs 8-bit images only).
#[must_use]
pub fn normalize(image: &DynamicImage) -> [u8; SIDE * SIDE] {
    let rgb = on_white(image);
    let rgb = trim_border(rgb);
    let grey = luma(&rgb);
    let small = resize_bicubic(&grey, SIDE as u32, SIDE as u32);
    let mut out = [0u8; SIDE * SIDE];
    out.copy_from_slice(small.as_raw());
    out
}

/// RGB with any transparency composited over white, as Pillow's `paste` with the alpha as mask
/// (`BLEND`: `(255 - a) · 255 + a · v`, divided by 255 with Pillow's rounding).
fn on_white(image: &DynamicImage) -> RgbImage {
    fn blend(alpha: u8, value: u8) -> u8 {
        let (a, v) = (u32::from(alpha), u32::from(value));
        // At most 255 · 255 + 128, so the quotient fits a byte.
        let tmp = 255 * (255 - a) + v * a + 128;
        (((tmp >> 8) + tmp) >> 8) as u8
    }
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb.clone(),
        DynamicImage::ImageLuma8(grey) => RgbImage::from_fn(grey.width(), grey.height(), |x, y| {
            let v = grey.get_pixel(x, y).0[0];
            image::Rgb([v, v, v])
        }),
        DynamicImage::ImageLumaA8(grey) => {
            RgbImage::from_fn(grey.width(), grey.height(), |x, y| {
                let [v, a] = grey.get_pixel(x, y).0;
                let v = blend(a, v);
                image::Rgb([v, v, v])
            })
        }
        other => {
            let rgba = other.to_rgba8();
            RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
                let [r, g, b, a] = rgba.get_pixel(x, y).0;
                image::Rgb([blend(a, r), blend(a, g), blend(a, b)])
            })
        }
    }
}

/// The image without its uniform border: cropped to the bounding box of the pixels whose colour
/// differs from the top-left pixel's (unchanged when none does, as Pillow's `crop(None)`).
fn trim_border(rgb: RgbImage) -> RgbImage {
    let (width, height) = rgb.dimensions();
    if width == 0 || height == 0 {
        return rgb;
    }
    let corner = *rgb.get_pixel(0, 0);
    let (mut left, mut top, mut right, mut bottom) = (width, height, 0, 0);
    for (x, y, pixel) in rgb.enumerate_pixels() {
        if *pixel != corner {
            left = left.min(x);
            top = top.min(y);
            right = right.max(x + 1);
            bottom = bottom.max(y + 1);
        }
    }
    if right == 0 || (left, top, right, bottom) == (0, 0, width, height) {
        return rgb;
    }
    image::imageops::crop_imm(&rgb, left, top, right - left, bottom - top).to_image()
}

/// Pillow's `convert("L")` of RGB: ITU-R 601-2 luma in 16-bit fixed point,
/// `(19595 R + 38470 G + 7471 B + 0x8000) >> 16`.
fn luma(rgb: &RgbImage) -> GrayImage {
    GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        // (255 · 65536 + 0x8000) >> 16 = 255 at most.
        let l = u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000;
        image::Luma([(l >> 16) as u8])
    })
}

/// Bits after the point of Pillow's fixed-point resampling coefficients (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bicubic filter (`a = -0.5`, support 2).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// For each output sample of a line of `in_size` resampled to `out_size`: the first input sample,
/// and the fixed-point weights of the inputs from there (Pillow's `precompute_coeffs` and
/// `normalize_coeffs_8bpc`).
fn coefficients(in_size: u32, out_size: u32) -> Vec<(usize, Vec<i64>)> {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let inverse = 1.0 / filterscale;
    let fixed = f64::from(1u32 << PRECISION_BITS);
    (0..out_size)
        .map(|out| {
            let center = (f64::from(out) + 0.5) * scale;
            // C's (int) casts: toward zero, then clipped to the line.
            let first = ((center - support + 0.5) as i64).max(0);
            let end = ((center + support + 0.5) as i64).min(i64::from(in_size));
            let mut weights: Vec<f64> = (first..end)
                .map(|i| bicubic((i as f64 - center + 0.5) * inverse))
                .collect();
            let total: f64 = weights.iter().sum();
            if total != 0.0 {
                for w in &mut weights {
                    *w /= total;
                }
            }
            let kernel: Vec<i64> = weights
                .iter()
                .map(|&w| {
                    // Pillow's (int)(±0.5 + w · 2^22): rounded half away from zero.
                    if w < 0.0 {
                        (-0.5 + w * fixed) as i64
                    } else {
                        (0.5 + w * fixed) as i64
                    }
                })
                .collect();
            (first as usize, kernel)
        })
        .collect()
}

/// One output sample: the weighted inputs with Pillow's rounding and clipping (`clip8`).
fn sample(inputs: impl Iterator<Item = u8>, weights: &[i64]) -> u8 {
    let mut sum: i64 = 1 << (PRECISION_BITS - 1);
    for (v, k) in inputs.zip(weights) {
        sum += i64::from(v) * k;
    }
    // Clamped to 0..=255 first, so the cast cannot truncate.
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

fn resize_horizontal(grey: &GrayImage, width: u32) -> GrayImage {
    let coefficients = coefficients(grey.width(), width);
    let row_len = grey.width() as usize;
    let raw = grey.as_raw();
    GrayImage::from_fn(width, grey.height(), |x, y| {
        let (first, weights) = &coefficients[x as usize];
        let row = &raw[y as usize * row_len..(y as usize + 1) * row_len];
        image::Luma([sample(row[*first..].iter().copied(), weights)])
    })
}

fn resize_vertical(grey: &GrayImage, height: u32) -> GrayImage {
    let coefficients = coefficients(grey.height(), height);
    GrayImage::from_fn(grey.width(), height, |x, y| {
        let (first, weights) = &coefficients[y as usize];
        let inputs = (*first..).map(|row| grey.get_pixel(x, row as u32).0[0]);
        image::Luma([sample(inputs.take(weights.len()), weights)])
    })
}

/// Pillow's `Image.resize((32, 32), BICUBIC)` of an 8-bit grey image: two passes, each rounded to
/// 8 bits, each only when that side changes. Pillow 13 (scripts/setup.sh pins 13.0.0) takes the
/// vertical pass first when the image shrinks in height and is over `2 · width − 32` pixels tall,
/// else the horizontal one; the order changes the rounding between the passes. (Its source was not
/// at hand: the rule was found by comparing both orders with Pillow 13.0.0 on some 400 sizes
/// from 1 to 400 pixels a side, and tests/provenance.rs keeps checking it.)
fn resize_bicubic(grey: &GrayImage, width: u32, height: u32) -> GrayImage {
    let (w, h) = grey.dimensions();
    let horizontal = |image: &GrayImage| {
        if image.width() == width {
            image.clone()
        } else {
            resize_horizontal(image, width)
        }
    };
    let vertical = |image: &GrayImage| {
        if image.height() == height {
            image.clone()
        } else {
            resize_vertical(image, height)
        }
    };
    let vertical_first = h > height && u64::from(h) + u64::from(width) > 2 * u64::from(w);
    if vertical_first {
        horizontal(&vertical(grey))
    } else {
        vertical(&horizontal(grey))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pixels of iscc-core's conformance vector `test_0003_img_256` (base64).
    const VECTOR_3: &[&str] = &[
            "FxENDxlPW1tpRG1jYl1LRTozM0eZn4JQXlBaTTITFxoSEAgJEERrcElPcGFqWkhMV0MrcK6hekphRDhIMhESFg8SCgcL",
            "QI1fRmBugHlGQ0RmgXymtqhnL1hHLD41ERIVDRELBwZwyK1lXXuAXkdLTXOFmrHOslQhRkctKjESERQNEQwHBmu81rhi",
            "WmVXVFBTbHmJsdW8NR8jMjEjKBQQExESDAcIWbnVz61PUlxZSV5wYFB+ta8tGyMZJSoqFhAUExINBwhFtN/QvpR0eGNH",
            "VXljanl1fj8WJB8cLjAYERQSFBAIBz2P3d/PsIGCWGJJYnp8goFaNRAgLB8vLBgSExIWEQgGNWHB3djImYJvY11nkIFp",
            "akYsFRknITMoFxMTExgTCQUrYrLX3byYm3tzZ22TkohqUTUWGhsjMyUXExQVGRQLBRxnocXPvrOpi4V3aYt8hHNYPRYk",
            "KyY3JBkYGBcZEw0GEFdwnry2qKaZgXuEf5+bd2pHGyMpLzsnHBobGBkTDggGS4Chq66Zp6mFXZp9cmBnU0ofICgySCof",
            "GxwaGBIQDQM2g6Sjub+2r6iAlYNAfYZSMSMhLjdIJhwaHBoXEhEQCR2Ap7TDr5LPtp2Ba4yAnGxXISEsODEgGxoeGhgS",
            "EhMTFmuuqKjLk8rfpn9LVIWRcVAhJzUrHB4hHyMaFRMXHBkTUJKG0qHHl+GvgFqJrWZROCY3PSEaJCcjIxoXGRohJhUg",
            "jc/CuIaW18qBRJB8aGJCOEY2JiYkJCUmGhoaGR8oJxtdz9Ohs8mf0oswY31zVktENycoIyMmJyobGx4bHiMqK0GJysKm",
            "r4jDnTpibnBaUDYUFyEoJyopKxobJB0dIiUrJmTG3tfQt7WtV26CfWxkMBkdIiksLSwtGhskHyEjHyImdurn8dTjtHeV",
            "io2SjoM8MDEqKi0vLi0eJCIpKywrNz1n8vr55u/fi8Sco6qwmC8pNzs5NC0tLiMtIiY0OT02P2jc/vHw8Nipsa3V0MOo",
            "Qyw5NC0wLS0wLzQmKC01PkpiaInRx7Xc17RtevHs1qM8OjA9NjEsLjI6NCklND5FYmBRR256aHl4XTJD2/nXf0I7Nik6",
            "NyktNUM9NiBDV1FcT0Y9ZlpSSkdGOShuu4RYUUQ4MDpALC00SUgzJFBXVVg/RktXUUtLSk5DMjZFMklPSzk+N0E3LTRN",
            "SCgzTkpbVTZOW0hTSUxJTEo6OEMxQko9OUQ/Nj01M0hGOEFETFhMOFFgRFBJSEtNQj89QTVBRTs7PUY1QDM3RkRAQ0JG",
            "T0RCUVZFTklJSU1BPkRCOkM+QDs9Pjc/LzRNREBFP0RFSElUTEhOTUpITUNDQEY7QEFCQTxBNT0xMw==",
    ];

    #[test]
    fn iscc_cores_conformance_vectors() {
        use base64::Engine as _;
        // iscc-core 1.5.0's data.json, gen_image_code_v0 (`test_0000_all_black_64` and
        // `test_0001_all_white_128` at 256 bits: the DC coefficient only, above its median for
        // white).
        assert_eq!(
            ImageCode::of_pixels(&[0; 1024]).iscc(),
            "ISCC:EEDQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(
            ImageCode::of_pixels(&[255; 1024]).iscc(),
            "ISCC:EEDYAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        );
        let pixels = base64::engine::general_purpose::STANDARD
            .decode(VECTOR_3.concat())
            .unwrap();
        assert_eq!(
            ImageCode::of_pixels(&pixels.try_into().unwrap()).iscc(),
            "ISCC:EED4GQZQTY6J5DTHNDQ7S7EGNENJNRTEGLGHFWXFGNDZHSMO4HEZGZI"
        );
    }

    #[test]
    fn the_unit_round_trips_through_an_iscc_seq() {
        let pixels: [u8; 1024] = std::array::from_fn(|i| ((i * 37) % 251) as u8);
        let code = ImageCode::of_pixels(&pixels);
        assert!(code.iscc().starts_with("ISCC:EED"), "{code}");
        let unit = code.unit();
        let units = decode_seq(&unit).unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].image_code(), Some(code));
        assert_eq!(ImageCode::from_words(code.words()), code);
        // Two units, one of them a 64-bit Content-Code Image and one a Data-Code.
        let mut seq = vec![0x21, 0x01];
        seq.extend_from_slice(&[0xab; 8]);
        seq.extend_from_slice(&unit);
        seq.extend_from_slice(&[0x30, 0x07]);
        seq.extend_from_slice(&[0; 32]);
        let units = decode_seq(&seq).unwrap();
        assert_eq!(units.len(), 3);
        assert_eq!(units[0].image_code(), None);
        assert_eq!(units[1].image_code(), Some(code));
        assert_eq!((units[2].main_type, units[2].length), (3, 7));
    }

    #[test]
    fn malformed_iscc_seqs_are_refused() {
        // IEP-0020's reject vectors.
        for (hex, why) in [
            ("", SeqError::Empty),
            ("28000100000000", SeqError::NonCanonical(0)),
            ("3000000000", SeqError::Truncated(0)),
            ("30000000000000", SeqError::Header(6)),
            ("60100000000000000000", SeqError::MainType(0, 6)),
        ] {
            let bytes = hex::decode(hex).unwrap();
            assert_eq!(decode_seq(&bytes), Err(why), "{hex}");
        }
        assert!(matches!(
            decode_seq(&hex::decode(format!("200800{}", "00".repeat(36))).unwrap()),
            Err(SeqError::Length(0, 8))
        ));
        // An ISCC-CODE (MainType 5) is not a unit.
        assert!(matches!(
            decode_seq(&hex::decode("5005578c7c8fbfbdb58fa88248c53a852c8d05b4").unwrap()),
            Err(SeqError::MainType(0, 5))
        ));
        // Unknown SubTypes are kept.
        let bytes = hex::decode("270000000000").unwrap();
        let units = decode_seq(&bytes).unwrap();
        assert_eq!((units[0].main_type, units[0].sub_type), (2, 7));
    }

    #[test]
    fn headers_encode_as_iscc_core_does() {
        assert_eq!(encode_header([2, 1, 0, 7]), HEADER);
        assert_eq!(encode_header([2, 1, 0, 1]), [0x21, 0x01]);
        // 8 takes two nibbles (10 000000): five in all, so a zero nibble pads; 72 takes three
        // (110 000000000): six, no pad (iscc-core 1.5.0 gives 080000 and 0c0000).
        assert_eq!(encode_header([0, 8, 0, 0]), [0x08, 0x00, 0x00]);
        assert_eq!(encode_header([0, 72, 0, 0]), [0x0c, 0x00, 0x00]);
        let mut nibbles = Nibbles {
            bytes: &[0x0c, 0x00, 0x00],
            at: 0,
        };
        let fields: Vec<u16> = (0..4).map(|_| nibbles.varnibble().unwrap()).collect();
        assert_eq!(fields, [0, 72, 0, 0]);
    }

    #[test]
    fn a_uniform_border_is_trimmed_and_transparency_is_white() {
        // A grey square on black, and the same on a wider black canvas: the same code.
        let square = |pad: u32| {
            DynamicImage::ImageLuma8(GrayImage::from_fn(20 + 2 * pad, 20 + pad, |x, y| {
                let (x, y) = (x as i64 - i64::from(pad), y as i64 - i64::from(pad / 2));
                if (0..20).contains(&x) && (0..20).contains(&y) {
                    image::Luma([(60 + 9 * x + 3 * y) as u8])
                } else {
                    image::Luma([0])
                }
            }))
        };
        assert_eq!(normalize(&square(0)), normalize(&square(7)));
        // Fully transparent black is white.
        let clear =
            DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(5, 5, image::Rgba([0; 4])));
        assert_eq!(normalize(&clear), [255; 1024]);
        // A uniform image is not trimmed away.
        let flat = DynamicImage::ImageLuma8(GrayImage::from_pixel(3, 3, image::Luma([77])));
        assert_eq!(normalize(&flat), [77; 1024]);
    }

    #[test]
    fn pillows_bicubic_keeps_a_constant_and_a_same_size_image() {
        let flat = GrayImage::from_pixel(97, 13, image::Luma([200]));
        assert!(resize_bicubic(&flat, 32, 32)
            .pixels()
            .all(|p| p.0[0] == 200));
        let picture = GrayImage::from_fn(32, 32, |x, y| image::Luma([((x * 8) ^ (y * 3)) as u8]));
        assert_eq!(resize_bicubic(&picture, 32, 32), picture);
        // Weights sum to one in fixed point (give or take the rounding of each).
        for (in_size, out_size) in [(28, 32), (100, 32), (5000, 32), (3, 32)] {
            for (_, weights) in coefficients(in_size, out_size) {
                let sum: i64 = weights.iter().sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() < 16, "{in_size}: {sum}");
            }
        }
    }

    #[test]
    fn re_encoding_moves_few_bits_and_other_pictures_many() {
        // Smooth pictures (three soft blobs on a gradient, placed by `k`): a JPEG keeps their
        // low frequencies, which the code is made of.
        let picture = |k: u32| {
            let blobs: Vec<(f64, f64)> = (0..3)
                .map(|i| {
                    let t = f64::from(k * 3 + i) * 2.4;
                    (32.0 + 22.0 * t.cos(), 24.0 + 16.0 * t.sin())
                })
                .collect();
            DynamicImage::ImageRgb8(RgbImage::from_fn(64, 48, |x, y| {
                let (x, y) = (f64::from(x), f64::from(y));
                let blob: f64 = blobs
                    .iter()
                    .map(|(cx, cy)| (-((x - cx).powi(2) + (y - cy).powi(2)) / 60.0).exp())
                    .sum();
                let v = (40.0 + x * 1.5 + 180.0 * blob).min(255.0) as u8;
                image::Rgb([v, v / 2 + 60, 255 - v / 2])
            }))
        };
        let original = ImageCode::of_image(&picture(0));
        let mut jpeg = Vec::new();
        picture(0)
            .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .unwrap();
        let reencoded = ImageCode::of_file(&jpeg).unwrap();
        let other = ImageCode::of_image(&picture(3));
        // The first 64 bits (the lowest frequencies: the 64-bit Image-Code) barely move; the
        // later squares hold higher frequencies, near zero in a smooth picture, so they flip more,
        // yet the copy stays far nearer than another picture.
        let first = |code: &ImageCode| code.words()[0];
        let (copy, apart) = (original.distance(&reencoded), original.distance(&other));
        assert!(
            (first(&original) ^ first(&reencoded)).count_ones() <= 6,
            "{original} {reencoded}"
        );
        assert!(
            (first(&original) ^ first(&other)).count_ones() > 16,
            "{original} {other}"
        );
        assert!(copy * 2 < apart, "copy {copy} bits, other picture {apart}");
    }
}
