//! Lossy WebP for re-enactment ([`super::reenact`]): what quantiser an upload was written with,
//! and a candidate original written the same way.
//!
//! A lossy WebP is a VP8 key frame (RFC 6386). Its frame header gives the quantiser indices the
//! encoder chose: the base index (`y_ac_qi`, 0-127), the per-segment indices and the deltas
//! ([`Quantiser`]). libwebp derives them from the quality setting (its `VP8SetSegmentParams`:
//! a base that falls strictly with quality almost everywhere, spread over the segments by the
//! image's own complexity), so the quality an uploader used is found again by encoding the
//! candidate original itself at qualities chosen by bisection until its header has the upload's
//! base index ([`reencode_like`]). Our own copy then comes back pixel for pixel: libwebp 1.3.1
//! (here, through the `webp` crate's bundled `libwebp-sys`) re-encoding a Fashion-MNIST image at
//! Pillow 13's quality 75 gives the very luma Pillow's libwebp 1.6.0 wrote (300 of 300 images
//! at score 1.0000; at quality 70 or 80 instead, 0.97-0.99, no better than the unedited
//! original), while a look-alike stays as far from the original as it was.
//!
//! Only the header is read from an upload, by the small parser here (a bounded boolean decoder
//! over at most the first partition); libwebp's C code only ever encodes and decodes planes
//! made here, never an uploader's bytes.

use super::reenact::Luma;

/// The quantiser indices of a VP8 key frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantiser {
    /// `y_ac_qi`: the base index, 0 (finest) to 127.
    pub base: u8,
    /// The segments' indices (absolute, or deltas from `base`), when segmentation updates them.
    pub segments: Option<[i8; 4]>,
    /// The deltas of y DC, y2 DC, y2 AC, uv DC and uv AC.
    pub deltas: [i8; 5],
}

/// RFC 6386 section 7's boolean entropy decoder over one partition. Past the end it reads
/// zeros, so a truncated header decodes to some value and never panics.
struct BoolDecoder<'a> {
    data: &'a [u8],
    next: usize,
    value: u32,
    range: u32,
    bit_count: u32,
}

impl<'a> BoolDecoder<'a> {
    fn new(data: &'a [u8]) -> Self {
        let byte = |i: usize| u32::from(data.get(i).copied().unwrap_or(0));
        Self {
            data,
            next: 2,
            value: (byte(0) << 8) | byte(1),
            range: 255,
            bit_count: 0,
        }
    }

    fn read_bool(&mut self, probability: u32) -> bool {
        let split = 1 + (((self.range - 1) * probability) >> 8);
        let big_split = split << 8;
        let bit = if self.value >= big_split {
            self.range -= split;
            self.value -= big_split;
            true
        } else {
            self.range = split;
            false
        };
        while self.range < 128 {
            self.value <<= 1;
            self.range <<= 1;
            self.bit_count += 1;
            if self.bit_count == 8 {
                self.bit_count = 0;
                self.value |= u32::from(self.data.get(self.next).copied().unwrap_or(0));
                self.next += 1;
            }
        }
        bit
    }

    /// An unsigned `bits`-bit literal, most significant bit first.
    fn literal(&mut self, bits: u32) -> u32 {
        (0..bits).fold(0, |value, _| (value << 1) | u32::from(self.read_bool(128)))
    }

    fn flag(&mut self) -> bool {
        self.read_bool(128)
    }

    /// A flag, then (when set) a `bits`-bit magnitude and its sign; 0 when the flag is clear.
    fn optional_signed(&mut self, bits: u32) -> i32 {
        if !self.flag() {
            return 0;
        }
        let magnitude = self.literal(bits) as i32;
        if self.flag() {
            -magnitude
        } else {
            magnitude
        }
    }
}

/// The payload of the `VP8 ` chunk of a RIFF WebP file (simple or extended), if it has one.
fn vp8_chunk(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WEBP" {
        return None;
    }
    let mut at = 12usize;
    while let Some(header) = bytes.get(at..at.checked_add(8)?) {
        let size = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
        let body_start = at + 8;
        let body = bytes.get(body_start..body_start.checked_add(size)?)?;
        if &header[0..4] == b"VP8 " {
            return Some(body);
        }
        at = body_start.checked_add(size)?.checked_add(size & 1)?;
    }
    None
}

/// The quantiser of a lossy WebP's key frame; `None` for anything else (lossless WebP, other
/// formats, a malformed or truncated header).
#[must_use]
pub fn lossy_quantiser(bytes: &[u8]) -> Option<Quantiser> {
    let frame = vp8_chunk(bytes)?;
    let tag = frame.get(0..3)?;
    let tag = u32::from(tag[0]) | (u32::from(tag[1]) << 8) | (u32::from(tag[2]) << 16);
    // Bit 0 clear: a key frame; then the start code and the 7 bytes of dimensions.
    if tag & 1 != 0 || frame.get(3..6)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let first_partition = (tag >> 5) as usize;
    let partition = frame.get(10..)?;
    let mut d = BoolDecoder::new(&partition[..first_partition.min(partition.len())]);
    // Section 9.2: colour space and clamping.
    d.literal(2);
    // Section 9.3: segmentation.
    let mut segments = None;
    if d.flag() {
        let update_map = d.flag();
        if d.flag() {
            let _absolute = d.flag();
            let mut quantisers = [0i8; 4];
            for q in &mut quantisers {
                *q = d.optional_signed(7) as i8;
            }
            segments = Some(quantisers);
            for _ in 0..4 {
                d.optional_signed(6);
            }
        }
        if update_map {
            for _ in 0..3 {
                if d.flag() {
                    d.literal(8);
                }
            }
        }
    }
    // Section 9.6: filter type, level and sharpness, then the loop filter's deltas.
    d.literal(1 + 6 + 3);
    if d.flag() && d.flag() {
        for _ in 0..8 {
            d.optional_signed(6);
        }
    }
    // Section 9.5: the DCT partitions; section 9.6: the quantiser indices.
    d.literal(2);
    let base = d.literal(7) as u8;
    let mut deltas = [0i8; 5];
    for delta in &mut deltas {
        *delta = d.optional_signed(4) as i8;
    }
    Some(Quantiser {
        base,
        segments,
        deltas,
    })
}

/// `plane` written as a lossy WebP (grey, as RGB) at `quality` by libwebp's default preset
/// (method 4, as Pillow and `cwebp` write); `None` when libwebp refuses.
fn encode(plane: &Luma, quality: u8) -> Option<Vec<u8>> {
    let (width, height) = (
        u32::try_from(plane.width).ok()?,
        u32::try_from(plane.height).ok()?,
    );
    let rgb: Vec<u8> = plane
        .grey()
        .as_raw()
        .iter()
        .flat_map(|&v| [v, v, v])
        .collect();
    let mut config = webp::WebPConfig::new().ok()?;
    config.quality = f32::from(quality);
    let encoded = webp::Encoder::from_rgb(&rgb, width, height)
        .encode_advanced(&config)
        .ok()?;
    Some(encoded.to_vec())
}

/// `image` (its luma) written as a lossy WebP at `quality` by libwebp's default preset: an
/// uploader's WebP copy, for the registry study and tests; `None` when libwebp refuses.
#[must_use]
pub fn write_lossy(image: &image::DynamicImage, quality: u8) -> Option<Vec<u8>> {
    encode(&Luma::of(image), quality)
}

/// The luma of a WebP this module wrote.
fn decode(bytes: &[u8]) -> Option<Luma> {
    let image = image::load_from_memory_with_format(bytes, image::ImageFormat::WebP).ok()?;
    Some(Luma::of(&image))
}

/// `plane` written as libwebp writes it at the quality whose base quantiser is the upload's,
/// then decoded; `None` when no quality gives that index for this plane (the upload was not
/// written by libwebp's default preset from it). Bisection over qualities 0-100 (the base index
/// falls as the quality rises), about 8 encodings of the plane; qualities that share the index
/// are each tried, the one whose whole quantiser matches first.
#[must_use]
pub fn reencode_like(plane: &Luma, upload: &Quantiser) -> Option<Luma> {
    // The lowest quality whose base index is at or below the upload's; the bisection keeps that
    // quality's encoding, so the scan below starts without writing it again.
    let (mut low, mut high) = (0u8, 100u8);
    let mut at_high = None;
    while low < high {
        let mid = low + (high - low) / 2;
        let bytes = encode(plane, mid)?;
        if lossy_quantiser(&bytes)?.base <= upload.base {
            high = mid;
            at_high = Some(bytes);
        } else {
            low = mid + 1;
        }
    }
    let mut fallback = None;
    for quality in low..=100 {
        let bytes = match at_high.take() {
            Some(bytes) if quality == low => bytes,
            _ => encode(plane, quality)?,
        };
        let found = lossy_quantiser(&bytes)?;
        if found.base != upload.base {
            break;
        }
        if found == *upload {
            return decode(&bytes);
        }
        fallback.get_or_insert(bytes);
    }
    fallback.and_then(|bytes| decode(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::align::tests::picture;

    fn plane(seed: u32) -> Luma {
        Luma::of(&picture(seed))
    }

    #[test]
    fn the_base_quantiser_falls_as_the_quality_rises_and_is_read_back() {
        let p = plane(3);
        let bases: Vec<u8> = (0..=100)
            .step_by(10)
            .map(|q| lossy_quantiser(&encode(&p, q).unwrap()).unwrap().base)
            .collect();
        assert!(bases.windows(2).all(|w| w[0] > w[1]), "{bases:?}");
        assert_eq!(bases.last(), Some(&0), "quality 100 is the finest");
    }

    #[test]
    fn a_plane_written_at_an_unknown_quality_is_written_again_the_same() {
        let p = plane(5);
        for quality in [50u8, 75, 80, 90] {
            let upload = encode(&p, quality).unwrap();
            let target = lossy_quantiser(&upload).unwrap();
            let again = reencode_like(&p, &target).unwrap();
            assert_eq!(
                again.grey(),
                decode(&upload).unwrap().grey(),
                "quality {quality}"
            );
        }
    }

    #[test]
    fn other_bytes_have_no_quantiser_and_do_not_panic() {
        assert_eq!(lossy_quantiser(b""), None);
        assert_eq!(lossy_quantiser(b"RIFF\0\0\0\0WEBP"), None);
        let lossless = {
            let mut out = std::io::Cursor::new(Vec::new());
            picture(1)
                .write_to(&mut out, image::ImageFormat::WebP)
                .unwrap();
            out.into_inner()
        };
        assert_eq!(lossy_quantiser(&lossless), None, "VP8L has no quantiser");
        let lossy = encode(&plane(1), 75).unwrap();
        // Every truncation, and a chunk size pointing past the end, fail or decode quietly.
        for cut in 0..lossy.len() {
            let _ = lossy_quantiser(&lossy[..cut]);
        }
        let mut huge = lossy.clone();
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(lossy_quantiser(&huge), None);
    }
}
