//! Confirmation by re-enactment: instead of asking "does the upload look like this original?"
//! (which a real look-alike garment can answer yes to, see [`super::align`]), ask "would the usual
//! edits of this original have produced *these* pixels?" Each candidate's original is put through
//! the edits an uploader's software makes — a whole-pixel shift or crop, a resize to the upload's
//! size by each of the common filters, and, when the upload is a JPEG, the JPEG quantisation of its
//! own luma table — and the result is compared with the upload by normalised cross-correlation.
//!
//! Our own copy is then reproduced almost exactly (what remains is rounding and the codec's DCT
//! precision: a correlation of ~0.999 and above), where a look-alike stays as far from the
//! original as it always was: re-encoding our copy no longer costs it the texture that told it
//! apart. Only the upload's luma at its own size is compared, as JPEG quantises it (BT.601 Y).
//!
//! The edits re-enacted: shifts of up to [`MAX_SHIFT`] pixels and crops at scale 1 (the crop's
//! offset is the one the plain correlation prefers), resizes of the whole image by nearest,
//! bilinear (triangle), bicubic (Catmull-Rom, Pillow's "bicubic"), Lanczos-3, area averaging
//! (OpenCV's `INTER_AREA`, what browsers and phones mostly do when shrinking), Pillow's box (the
//! unweighted mean of the pixels whose centres fall in each output pixel: the same as area
//! averaging at 0.5x, not at 0.75x) and the `image` crate's whole-pixel thumbnail sampling, and JPEG quantisation after either. Each
//! comparison is the mean of two correlations, of the intensities and of the 3x3 detail, as in
//! [`super::align`]: a reproduced copy agrees in both, a look-alike's silhouette only in the
//! first (at 16 px a look-alike's intensities alone correlate at 0.99). A lossy WebP upload is
//! re-enacted by writing the best renderings again with libwebp at the upload's own quantiser
//! ([`super::webp`]). What is not re-enacted — a crop that is also resized, an unusual filter,
//! an encoder other than libwebp's default — is left to the alignment search and its lower
//! threshold.

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage};

use super::align::detail;
use super::webp::{lossy_quantiser, reencode_like, Quantiser};

/// Uploads larger than this on either side are not re-enacted (the comparison is at the upload's
/// own size, and a copy so much larger than our images is no longer an edit re-enactment models).
pub const MAX_SIDE: u32 = 128;
/// Shifts (with padding) of up to this many pixels are tried for a same-sized upload.
pub const MAX_SHIFT: i32 = 2;
/// Crops at scale 1 are tried while the upload keeps at least this share of each side.
const MIN_CROP: f64 = 0.8;
/// How many of the best-ranked placements are scored in full.
const TOP_PLACEMENTS: usize = 2;
/// A lossy WebP upload is re-encoded from this many of a candidate's renderings (the best by
/// their plain score), and only when one of them already scores at least [`WEBP_FROM`]: each
/// re-encoding is about eight libwebp encodings of the plane.
const WEBP_RENDERINGS: usize = 2;
/// The plain score below which a candidate is not re-encoded as WebP (our WebP 75 copies score
/// at least 0.968 unencoded; a look-alike re-encoded stays as far as it was).
const WEBP_FROM: f64 = 0.9;
/// Aspect ratios within this share of each other are resizes of the whole image.
const ASPECT_TOLERANCE: f64 = 0.02;

/// A luma plane (BT.601 Y, as JPEG stores it) in `f32`.
#[derive(Debug, Clone)]
pub struct Luma {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<f32>,
}

impl Luma {
    /// BT.601 luma of any image (grey images are their own luma).
    #[must_use]
    pub fn of(image: &DynamicImage) -> Self {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let pixels = if image.color().has_color() {
            image
                .to_rgb8()
                .pixels()
                .map(|p| {
                    0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
                })
                .collect()
        } else {
            image
                .to_luma8()
                .as_raw()
                .iter()
                .map(|&v| f32::from(v))
                .collect()
        };
        Self {
            width,
            height,
            pixels,
        }
    }

    /// The plane rounded to 8-bit grey.
    #[must_use]
    pub fn grey(&self) -> GrayImage {
        GrayImage::from_fn(self.width as u32, self.height as u32, |x, y| {
            image::Luma([quantise(self.pixels[y as usize * self.width + x as usize])])
        })
    }

    #[must_use]
    pub fn from_grey(grey: &GrayImage) -> Self {
        Self {
            width: grey.width() as usize,
            height: grey.height() as usize,
            pixels: grey.as_raw().iter().map(|&v| f32::from(v)).collect(),
        }
    }
}

fn quantise(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// What re-enactment needs of an upload: its luma at its own size with its detail (computed once
/// per upload, not per candidate) and, for a JPEG, the luma quantisation table it was written
/// with, for a lossy WebP its quantiser.
#[derive(Debug, Clone)]
pub struct Probe {
    upload: Option<Pair>,
    jpeg: Option<Jpeg>,
    webp: Option<Quantiser>,
}

impl Probe {
    /// `jpeg_table` from [`jpeg_luma_table`] of the upload's bytes. An upload larger than
    /// [`MAX_SIDE`] keeps nothing and is not re-enacted.
    #[must_use]
    pub fn new(image: &DynamicImage, jpeg_table: Option<[u16; 64]>) -> Self {
        let small = image.width().max(image.height()) <= MAX_SIDE;
        let luma = small.then(|| Luma::of(image));
        let jpeg = luma.as_ref().zip(jpeg_table).map(|(luma, table)| Jpeg {
            table,
            upload: dct_blocks(luma),
        });
        Self {
            upload: luma.map(Pair::new),
            jpeg,
            webp: None,
        }
    }

    /// The probe of an upload from its decoded image and its bytes: the JPEG luma table or the
    /// lossy WebP quantiser they carry.
    #[must_use]
    pub fn of_upload(image: &DynamicImage, bytes: &[u8]) -> Self {
        Self {
            webp: lossy_quantiser(bytes),
            ..Self::new(image, jpeg_luma_table(bytes))
        }
    }

    /// Whether the upload can be re-enacted at all.
    #[must_use]
    pub fn is_usable(&self) -> bool {
        self.upload.is_some()
    }
}

/// The luma (first component's) quantisation table of a baseline or progressive JPEG, in natural
/// (row-major) order; `None` for anything else or a malformed header. Reads only the marker
/// segments before the first scan.
#[must_use]
pub fn jpeg_luma_table(bytes: &[u8]) -> Option<[u16; 64]> {
    if bytes.get(..2)? != [0xff, 0xd8] {
        return None;
    }
    let mut tables: [Option<[u16; 64]>; 4] = [None; 4];
    let mut luma_table = None;
    let mut at = 2;
    loop {
        // Fill bytes (0xff runs) may precede a marker.
        while *bytes.get(at)? == 0xff && *bytes.get(at + 1)? == 0xff {
            at += 1;
        }
        if *bytes.get(at)? != 0xff {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        at += 2;
        if (0xd0..=0xd7).contains(&marker) || marker == 0x01 {
            continue;
        }
        if marker == 0xd9 {
            return None;
        }
        let length = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
        let segment = bytes.get(at + 2..at + length.max(2))?;
        match marker {
            0xdb => {
                let mut rest = segment;
                while let Some((&pq_tq, tail)) = rest.split_first() {
                    let (precision, id) = (pq_tq >> 4, usize::from(pq_tq & 0x0f));
                    let size = if precision == 0 { 64 } else { 128 };
                    let values = tail.get(..size)?;
                    let mut table = [0u16; 64];
                    for (k, &natural) in ZIGZAG.iter().enumerate() {
                        table[natural] = if precision == 0 {
                            u16::from(values[k])
                        } else {
                            u16::from_be_bytes([values[2 * k], values[2 * k + 1]])
                        };
                    }
                    if table.contains(&0) || id > 3 {
                        return None;
                    }
                    tables[id] = Some(table);
                    rest = &tail[size..];
                }
            }
            // Start of frame (every kind but DHT 0xc4, JPG 0xc8 and DAC 0xcc): the first
            // component is the luma, and names its table.
            0xc0..=0xcf if !matches!(marker, 0xc4 | 0xc8 | 0xcc) => {
                let id = *segment.get(8)?;
                luma_table = Some(usize::from(id & 0x0f));
            }
            0xda => return tables.get(luma_table?).copied().flatten(),
            _ => {}
        }
        at += length;
    }
}

/// Zig-zag order: the `k`-th stored coefficient's row-major position in the 8x8 block.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// The JPEG DCT basis: `BASIS[u][x] = C(u)/2 * cos((2x + 1) u π / 16)`, so the forward transform
/// of a row is `F(u) = Σ_x BASIS[u][x] f(x)` and the inverse `f(x) = Σ_u BASIS[u][x] F(u)`.
fn basis() -> [[f32; 8]; 8] {
    let mut b = [[0f32; 8]; 8];
    for (u, row) in b.iter_mut().enumerate() {
        let c = if u == 0 {
            std::f32::consts::FRAC_1_SQRT_2
        } else {
            1.0
        };
        for (x, v) in row.iter_mut().enumerate() {
            *v = c / 2.0 * ((2.0 * x as f32 + 1.0) * u as f32 * std::f32::consts::PI / 16.0).cos();
        }
    }
    b
}

/// Encoders compute the DCT differently (libjpeg's integer `islow`, the `image` crate's integer
/// transform that truncates before quantising, float ones): a coefficient within this many units
/// of a quantisation boundary may land on either side. See [`jpeg_luma`].
const ENCODER_SLACK: f32 = 1.5;

/// The level-shifted DCT coefficients of each 8x8 block of a plane, row of blocks by row of
/// blocks (the last ones padded by repeating the edge pixels, as libjpeg does), from the plane's
/// pixels rounded to 8 bits.
fn dct_blocks(plane: &Luma) -> Vec<[f32; 64]> {
    let b = basis();
    let (w, h) = (plane.width, plane.height);
    let mut blocks = Vec::with_capacity(w.div_ceil(8) * h.div_ceil(8));
    let mut block = [0f32; 64];
    let mut tmp = [0f32; 64];
    for by in (0..h).step_by(8) {
        for bx in (0..w).step_by(8) {
            for y in 0..8 {
                let sy = (by + y).min(h - 1);
                for x in 0..8 {
                    let sx = (bx + x).min(w - 1);
                    block[y * 8 + x] = f32::from(quantise(plane.pixels[sy * w + sx])) - 128.0;
                }
            }
            // Rows, then columns.
            for y in 0..8 {
                for u in 0..8 {
                    tmp[y * 8 + u] = (0..8).map(|x| b[u][x] * block[y * 8 + x]).sum();
                }
            }
            let mut coefficients = [0f32; 64];
            for v in 0..8 {
                for u in 0..8 {
                    coefficients[v * 8 + u] = (0..8).map(|y| b[v][y] * tmp[y * 8 + u]).sum();
                }
            }
            blocks.push(coefficients);
        }
    }
    blocks
}

/// The JPEG settings of an upload: its luma table and its own DCT coefficients (the quantised
/// values it was written with, but for the decoder's rounding).
#[derive(Debug, Clone)]
struct Jpeg {
    table: [u16; 64],
    upload: Vec<[f32; 64]>,
}

/// What JPEG at `table` does to a luma plane: DCT of each 8x8 block ([`dct_blocks`]), quantise,
/// dequantise, inverse DCT, round. Given the upload's own coefficients, a coefficient of the plane
/// within [`ENCODER_SLACK`] of the upload's quantisation cell takes the upload's value: that is
/// the upload's encoder rounding the same number the other way, not a different picture (a
/// look-alike's coefficients mostly lie cells away).
#[must_use]
fn jpeg_luma(plane: &Luma, table: &[u16; 64], upload: Option<&[[f32; 64]]>) -> Luma {
    let b = basis();
    let (w, h) = (plane.width, plane.height);
    let mut out = vec![0f32; w * h];
    let mut tmp = [0f32; 64];
    let bw = w.div_ceil(8);
    for (i, mut block) in dct_blocks(plane).into_iter().enumerate() {
        let (by, bx) = (i / bw * 8, i % bw * 8);
        let theirs = upload.and_then(|u| u.get(i));
        for (k, c) in block.iter_mut().enumerate() {
            let q = f32::from(table[k]);
            let mut level = (*c / q).round();
            if let Some(theirs) = theirs {
                let their_level = (theirs[k] / q).round();
                if their_level != level && (*c - their_level * q).abs() <= q / 2.0 + ENCODER_SLACK {
                    level = their_level;
                }
            }
            *c = level * q;
        }
        for v in 0..8 {
            for x in 0..8 {
                tmp[v * 8 + x] = (0..8).map(|u| b[u][x] * block[v * 8 + u]).sum();
            }
        }
        for y in 0..8.min(h - by) {
            for x in 0..8.min(w - bx) {
                let f: f32 = (0..8).map(|v| b[v][y] * tmp[v * 8 + x]).sum();
                out[(by + y) * w + bx + x] = f32::from(quantise(f + 128.0));
            }
        }
    }
    Luma {
        width: w,
        height: h,
        pixels: out,
    }
}

/// Running sums of a normalised cross-correlation.
#[derive(Default)]
struct Sums {
    n: f64,
    a: f64,
    b: f64,
    aa: f64,
    bb: f64,
    ab: f64,
}

impl Sums {
    /// Adds a row of pairs (summed in `f32` within the row, in `f64` across rows).
    fn add(&mut self, a: &[f32], b: &[f32]) {
        let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0f32, 0f32, 0f32, 0f32, 0f32);
        for (&x, &y) in a.iter().zip(b) {
            sa += x;
            sb += y;
            saa += x * x;
            sbb += y * y;
            sab += x * y;
        }
        self.n += a.len().min(b.len()) as f64;
        self.a += f64::from(sa);
        self.b += f64::from(sb);
        self.aa += f64::from(saa);
        self.bb += f64::from(sbb);
        self.ab += f64::from(sab);
    }

    /// The correlation (0 when either side is flat or there are fewer than two pairs).
    fn ncc(&self) -> f64 {
        if self.n < 2.0 {
            return 0.0;
        }
        let va = self.aa - self.a * self.a / self.n;
        let vb = self.bb - self.b * self.b / self.n;
        let cov = self.ab - self.a * self.b / self.n;
        if va < 1e-3 * self.n || vb < 1e-3 * self.n {
            return 0.0;
        }
        (cov / (va * vb).sqrt()).clamp(-1.0, 1.0)
    }
}

/// The correlation of two planes of the same size.
fn plane_ncc(a: &Luma, b: &Luma) -> f64 {
    let mut sums = Sums::default();
    for (ra, rb) in a
        .pixels
        .chunks(a.width.max(1))
        .zip(b.pixels.chunks(b.width.max(1)))
    {
        sums.add(ra, rb);
    }
    sums.ncc()
}

impl Luma {
    /// The plane minus its 3x3 local mean: the fine detail ([`super::align`]'s texture).
    fn detail(&self) -> Self {
        Self {
            width: self.width,
            height: self.height,
            pixels: detail(&self.pixels, self.width),
        }
    }
}

/// A plane and its detail, compared together.
#[derive(Debug, Clone)]
struct Pair {
    plane: Luma,
    detail: Luma,
}

impl Pair {
    fn new(plane: Luma) -> Self {
        let detail = plane.detail();
        Self { plane, detail }
    }

    /// The mean of the intensity (shape) and detail (texture) correlations with `other`, of the
    /// same size: 1 only when both agree, which a look-alike's silhouette alone does not make.
    fn score(&self, other: &Self) -> f64 {
        0.5 * (plane_ncc(&self.plane, &other.plane) + plane_ncc(&self.detail, &other.detail))
    }
}

/// The correlation over the overlap of `upload` and `original` placed so that upload pixel
/// (x, y) lies on original pixel (x + dx, y + dy).
fn overlap_ncc(upload: &Luma, original: &Luma, dx: i32, dy: i32) -> f64 {
    let xs = overlap(upload.width, original.width, dx);
    let ys = overlap(upload.height, original.height, dy);
    let mut sums = Sums::default();
    if xs.is_empty() {
        return 0.0;
    }
    for y in ys {
        let oy = (y as i64 + i64::from(dy)) as usize;
        let ox = (xs.start as i64 + i64::from(dx)) as usize;
        let row = &upload.pixels[y * upload.width + xs.start..y * upload.width + xs.end];
        let orow = &original.pixels[oy * original.width + ox..oy * original.width + ox + xs.len()];
        sums.add(row, orow);
    }
    sums.ncc()
}

/// Upload coordinates along one axis that land inside the original at offset `d`.
fn overlap(upload: usize, original: usize, d: i32) -> std::ops::Range<usize> {
    let from = (-i64::from(d)).max(0) as usize;
    let to = (original as i64 - i64::from(d)).clamp(0, upload as i64) as usize;
    from..to.max(from)
}

/// The upload-sized plane of a placement: the original's pixels where it covers the upload, the
/// upload's own elsewhere (the padding of a shift, which the comparison then cannot tell apart).
fn placed(upload: &Luma, original: &Luma, dx: i32, dy: i32) -> Luma {
    let mut out = upload.clone();
    for y in overlap(upload.height, original.height, dy) {
        for x in overlap(upload.width, original.width, dx) {
            let o = (y as i64 + i64::from(dy)) as usize * original.width
                + (x as i64 + i64::from(dx)) as usize;
            out.pixels[y * upload.width + x] = original.pixels[o];
        }
    }
    out
}

/// One output pixel's source pixels along an axis and their weights (summing to 1).
type Taps = Vec<(usize, f32)>;

/// Area averaging along an axis of `from` pixels shrunk to `to`: each output pixel the mean of the
/// input span it covers, fractional pixels weighted by coverage (OpenCV's `INTER_AREA`, browsers').
fn coverage_taps(from: usize, to: usize) -> Vec<Taps> {
    let scale = from as f64 / to as f64;
    (0..to)
        .map(|i| {
            let (lo, hi) = (i as f64 * scale, (i + 1) as f64 * scale);
            let mut taps = Vec::new();
            let mut j = lo.floor() as usize;
            while (j as f64) < hi && j < from {
                let cover = (hi.min(j as f64 + 1.0) - lo.max(j as f64)).max(0.0);
                if cover > 0.0 {
                    taps.push((j, (cover / scale) as f32));
                }
                j += 1;
            }
            taps
        })
        .collect()
}

/// Pillow's `Image.BOX` along an axis (`precompute_coeffs` in Pillow's `Resample.c` with its box
/// filter, support 1/2 scaled by the shrink): the *unweighted* mean of the input pixels whose
/// centres fall in the output pixel's window `(c - s/2, c + s/2]`. At 0.5x this is coverage
/// averaging; at 0.75x it is not (outputs take 1, 2, 1 of every 4 inputs, where coverage takes
/// 1⅓ each).
fn pillow_box_taps(from: usize, to: usize) -> Vec<Taps> {
    let scale = from as f64 / to as f64;
    let filterscale = scale.max(1.0);
    let support = 0.5 * filterscale;
    (0..to)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            // Pillow truncates `center ± support + 0.5` towards zero (both are positive here).
            let lo = ((center - support + 0.5).max(0.0) as usize).min(from);
            let hi = ((center + support + 0.5) as usize).min(from);
            let inside: Vec<usize> = (lo..hi)
                .filter(|&j| {
                    let x = (j as f64 - center + 0.5) / filterscale;
                    x > -0.5 && x <= 0.5
                })
                .collect();
            let n = inside.len().max(1) as f32;
            inside.into_iter().map(|j| (j, 1.0 / n)).collect()
        })
        .collect()
}

/// A separable resize to `w` x `h` by per-axis taps, across then down, rounded to 8 bits at the
/// end and, where `round_between`, also after the first pass (Pillow keeps an 8-bit image between
/// its two passes).
fn separable_resize(
    plane: &Luma,
    w: usize,
    h: usize,
    taps: fn(usize, usize) -> Vec<Taps>,
    round_between: bool,
) -> Luma {
    let (wx, wy) = (taps(plane.width, w), taps(plane.height, h));
    let mut across = vec![0f32; plane.height * w];
    for y in 0..plane.height {
        for (x, taps) in wx.iter().enumerate() {
            let v: f32 = taps
                .iter()
                .map(|&(j, wt)| wt * plane.pixels[y * plane.width + j])
                .sum();
            across[y * w + x] = if round_between {
                f32::from(quantise(v))
            } else {
                v
            };
        }
    }
    let mut pixels = vec![0f32; w * h];
    for (y, taps) in wy.iter().enumerate() {
        for x in 0..w {
            let v: f32 = taps.iter().map(|&(j, wt)| wt * across[j * w + x]).sum();
            pixels[y * w + x] = f32::from(quantise(v));
        }
    }
    Luma {
        width: w,
        height: h,
        pixels,
    }
}

/// Area averaging to `w` x `h`: each output pixel is the mean of the input area it covers
/// (fractional pixels weighted by coverage), as OpenCV's `INTER_AREA` and browsers shrink; rounded
/// to 8 bits, as a saved file is.
#[must_use]
pub fn area_resize(plane: &Luma, w: usize, h: usize) -> Luma {
    separable_resize(plane, w, h, coverage_taps, false)
}

/// Pillow's `Image.resize(size, Image.BOX)` to `w` x `h` ([`pillow_box_taps`]), 8-bit between its
/// horizontal and vertical passes as Pillow's is.
#[must_use]
pub fn pillow_box_resize(plane: &Luma, w: usize, h: usize) -> Luma {
    separable_resize(plane, w, h, pillow_box_taps, true)
}

/// The resizing filters re-enacted beside area averaging and the `image` crate's thumbnail
/// sampling (whole-pixel blocks, what Rust software using `image::imageops::thumbnail` makes).
const FILTERS: [FilterType; 4] = [
    FilterType::Nearest,
    FilterType::Triangle,
    FilterType::CatmullRom,
    FilterType::Lanczos3,
];

/// How well the usual edits of `original` reproduce the upload: the best score over the
/// re-enacted edits (see the module's documentation), each the mean of the intensity and detail
/// correlations at the upload's size; 0 when the upload cannot be re-enacted.
#[must_use]
pub fn reenacted_similarity(probe: &Probe, original: &DynamicImage) -> f64 {
    let Some(upload) = &probe.upload else {
        return 0.0;
    };
    let luma = &upload.plane;
    let original = Luma::of(original);
    let (w, h) = (luma.width, luma.height);
    let (ow, oh) = (original.width, original.height);
    let jpeg = |plane: &Luma| {
        probe.jpeg.as_ref().map_or(0.0, |j| {
            Pair::new(jpeg_luma(plane, &j.table, Some(&j.upload))).score(upload)
        })
    };
    let mut best = 0f64;
    // The renderings scored so far and their plain scores, for a WebP upload's re-encoding.
    let mut rendered: Vec<(f64, Luma)> = Vec::new();
    let mut keep = |score: f64, plane: &Luma| {
        if probe.webp.is_some() {
            rendered.push((score, plane.clone()));
        }
    };
    // Whole-pixel placements: shifts of a same-sized copy, crops at scale 1 of a smaller one.
    // The intensities' correlation over the overlap ranks them; the best few are then scored in
    // full on the upload-sized plane they make (the upload's own pixels where a shift uncovered
    // the border), as saved and, for a JPEG, as quantised.
    let fits = |up: usize, orig: usize| up <= orig && up as f64 >= MIN_CROP * orig as f64;
    if fits(w, ow) && fits(h, oh) {
        let (rx, ry) = ((ow - w) as i32, (oh - h) as i32);
        let mut placements: Vec<(f64, i32, i32)> = Vec::new();
        for dy in -MAX_SHIFT..=ry + MAX_SHIFT {
            for dx in -MAX_SHIFT..=rx + MAX_SHIFT {
                placements.push((overlap_ncc(luma, &original, dx, dy), dx, dy));
            }
        }
        placements.sort_by(|a, b| b.0.total_cmp(&a.0));
        for &(_, dx, dy) in placements.iter().take(TOP_PLACEMENTS) {
            let plane = placed(luma, &original, dx, dy);
            best = best.max(jpeg(&plane));
            let pair = Pair::new(plane);
            let plain = pair.score(upload);
            keep(plain, &pair.plane);
            best = best.max(plain);
        }
    }
    // Resizes of the whole image to the upload's size.
    let aspect = |a: usize, b: usize| a as f64 / b as f64;
    if (w, h) != (ow, oh) && (aspect(w, h) / aspect(ow, oh) - 1.0).abs() <= ASPECT_TOLERANCE {
        let grey = original.grey();
        let (nw, nh) = (w as u32, h as u32);
        let mut resized: Vec<Luma> = FILTERS
            .iter()
            .map(|&f| Luma::from_grey(&image::imageops::resize(&grey, nw, nh, f)))
            .collect();
        resized.push(area_resize(&original, w, h));
        resized.push(pillow_box_resize(&original, w, h));
        resized.push(Luma::from_grey(&image::imageops::thumbnail(&grey, nw, nh)));
        for plane in resized {
            best = best.max(jpeg(&plane));
            let pair = Pair::new(plane);
            let plain = pair.score(upload);
            keep(plain, &pair.plane);
            best = best.max(plain);
        }
    }
    if let Some(quantiser) = &probe.webp {
        rendered.sort_by(|a, b| b.0.total_cmp(&a.0));
        if rendered
            .first()
            .is_some_and(|(plain, _)| *plain >= WEBP_FROM)
        {
            for (_, plane) in rendered.iter().take(WEBP_RENDERINGS) {
                if let Some(again) = reencode_like(plane, quantiser) {
                    best = best.max(Pair::new(again).score(upload));
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::augment::jpeg_roundtrip;
    use crate::fingerprint::align::tests::picture;

    fn jpeg_bytes(image: &DynamicImage, quality: u8) -> Vec<u8> {
        let mut buf = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
            .encode_image(image)
            .unwrap();
        buf
    }

    /// The IJG table scaling (libjpeg's `jpeg_quality_scaling`) of the standard luminance table,
    /// which every common encoder uses for its quality setting.
    fn ijg_luma(quality: u32) -> [u16; 64] {
        const BASE: [u16; 64] = [
            16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57,
            69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55,
            64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100,
            103, 99,
        ];
        let scale = if quality < 50 {
            5000 / quality
        } else {
            200 - 2 * quality
        };
        BASE.map(|b| ((u32::from(b) * scale + 50) / 100).clamp(1, 255) as u16)
    }

    #[test]
    fn reads_the_luma_table_an_encoder_wrote() {
        for quality in [50, 75, 90] {
            let bytes = jpeg_bytes(&picture(1), quality);
            assert_eq!(jpeg_luma_table(&bytes), Some(ijg_luma(u32::from(quality))));
        }
        let colour = DynamicImage::ImageRgb8(picture(1).to_rgb8());
        assert_eq!(
            jpeg_luma_table(&jpeg_bytes(&colour, 75)),
            Some(ijg_luma(75)),
            "the first component's table, not the chroma one"
        );
    }

    #[test]
    fn other_bytes_have_no_table_and_do_not_panic() {
        let bytes = jpeg_bytes(&picture(1), 75);
        assert_eq!(jpeg_luma_table(b""), None);
        assert_eq!(jpeg_luma_table(b"\x89PNG\r\n\x1a\n"), None);
        for cut in 0..bytes.len().min(400) {
            let _ = jpeg_luma_table(&bytes[..cut]);
        }
        let mut state = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut broken = bytes.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let at = state as usize % broken.len().min(300);
                broken[at] = (state >> 8) as u8;
            }
            let _ = jpeg_luma_table(&broken);
        }
    }

    #[test]
    fn the_simulated_quantisation_reproduces_an_encoders_output() {
        for quality in [50, 75] {
            let original = picture(3);
            let bytes = jpeg_bytes(&original, quality);
            let decoded = image::load_from_memory(&bytes).unwrap();
            let table = jpeg_luma_table(&bytes).unwrap();
            let upload = Luma::of(&decoded);
            let simulated = jpeg_luma(&Luma::of(&original), &table, None);
            let guided = jpeg_luma(&Luma::of(&original), &table, Some(&dct_blocks(&upload)));
            let plain = plane_ncc(&Luma::of(&original), &upload);
            let reenacted = plane_ncc(&simulated, &upload);
            assert!(reenacted > 0.999, "quality {quality}: {reenacted}");
            assert!(
                reenacted > plain,
                "quality {quality}: {reenacted} vs {plain}"
            );
            // The encoder's own roundings taken over: closer still.
            let closer = plane_ncc(&guided, &upload);
            assert!(
                closer >= reenacted && closer > 0.9999,
                "quality {quality}: {closer}"
            );
            // A different picture is not pulled onto the upload.
            let other = jpeg_luma(&Luma::of(&picture(8)), &table, Some(&dct_blocks(&upload)));
            assert!(plane_ncc(&other, &upload) < 0.99);
        }
    }

    #[test]
    fn our_edited_copies_are_reproduced_and_look_alikes_are_not() {
        let original = picture(2);
        let other = picture(7);
        let half = original.resize_exact(16, 16, FilterType::CatmullRom);
        let cases: Vec<(&str, DynamicImage, Option<[u16; 64]>)> = vec![
            ("same", original.clone(), None),
            ("crop", original.crop_imm(2, 1, 28, 28), None),
            ("jpeg50", jpeg_roundtrip(&original, 50), Some(ijg_luma(50))),
            (
                "crop+jpeg75",
                jpeg_roundtrip(&original.crop_imm(3, 2, 29, 29), 75),
                Some(ijg_luma(75)),
            ),
            ("half", half.clone(), None),
            ("half+jpeg75", jpeg_roundtrip(&half, 75), Some(ijg_luma(75))),
            (
                "double",
                original.resize_exact(64, 64, FilterType::Triangle),
                None,
            ),
        ];
        for (name, upload, table) in cases {
            let probe = Probe::new(&upload, table);
            let own = reenacted_similarity(&probe, &original);
            let rival = reenacted_similarity(&probe, &other);
            assert!(own > 0.998, "{name}: {own}");
            assert!(rival < own - 0.01, "{name}: {rival} vs {own}");
        }
    }

    #[test]
    fn lossy_webp_copies_are_reproduced_at_their_own_quantiser_and_look_alikes_are_not() {
        let original = picture(2);
        let other = picture(7);
        // Written by libwebp's default preset as an uploader's tool would, at qualities the
        // re-enactment is not told.
        let webp = |image: &DynamicImage, quality: u8| {
            crate::fingerprint::webp::write_lossy(image, quality).unwrap()
        };
        let half = original.resize_exact(16, 16, FilterType::CatmullRom);
        for (name, bytes) in [
            ("webp75", webp(&original, 75)),
            ("webp90", webp(&original, 90)),
            ("crop+webp80", webp(&original.crop_imm(2, 2, 29, 29), 80)),
            ("half+webp75", webp(&half, 75)),
        ] {
            let upload = image::load_from_memory(&bytes).unwrap();
            let probe = Probe::of_upload(&upload, &bytes);
            let plain = reenacted_similarity(&Probe::new(&upload, None), &original);
            let own = reenacted_similarity(&probe, &original);
            let rival = reenacted_similarity(&probe, &other);
            assert!(own > 0.999, "{name}: {own} (unencoded {plain})");
            assert!(own > plain, "{name}: {own} vs {plain}");
            assert!(rival < own - 0.01, "{name}: {rival} vs {own}");
        }
    }

    #[test]
    fn a_shift_with_padding_is_found() {
        let original = picture(4);
        let g = original.to_luma8();
        let shifted = DynamicImage::ImageLuma8(GrayImage::from_fn(32, 32, |x, y| {
            if x == 0 {
                image::Luma([0])
            } else {
                *g.get_pixel(x - 1, y)
            }
        }));
        let s = reenacted_similarity(&Probe::new(&shifted, None), &original);
        assert!(s > 0.9999, "{s}");
    }

    #[test]
    fn area_averaging_halves_as_a_2x2_mean() {
        let plane = Luma::of(&picture(5));
        let half = area_resize(&plane, 16, 16);
        for y in 0..16 {
            for x in 0..16 {
                let at = |dx: usize, dy: usize| plane.pixels[(2 * y + dy) * 32 + 2 * x + dx];
                let mean = (at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1)) / 4.0;
                assert_eq!(half.pixels[y * 16 + x], mean.round());
            }
        }
        // Fractional coverage: a 3:2 shrink keeps a flat image flat.
        let flat = Luma {
            width: 6,
            height: 3,
            pixels: vec![90.0; 18],
        };
        assert!(area_resize(&flat, 4, 2).pixels.iter().all(|&v| v == 90.0));
    }

    #[test]
    fn pillows_box_takes_the_pixels_whose_centres_fall_in_the_window() {
        // 4 -> 3 along a row: Pillow's box takes pixel 0, the mean of 1 and 2, then pixel 3
        // (coverage averaging would weight 1 1/3 pixels each).
        let row = Luma {
            width: 4,
            height: 1,
            pixels: vec![0.0, 30.0, 60.0, 200.0],
        };
        assert_eq!(pillow_box_resize(&row, 3, 1).pixels, vec![0.0, 45.0, 200.0]);
        assert_eq!(area_resize(&row, 3, 1).pixels, vec![8.0, 45.0, 165.0]);
        // At 0.5x the two take the same pixels, equally weighted; Pillow rounds between its
        // passes, so they agree within one level.
        let plane = Luma::of(&picture(4));
        let (pillow, area) = (
            pillow_box_resize(&plane, 16, 16),
            area_resize(&plane, 16, 16),
        );
        assert!(pillow
            .pixels
            .iter()
            .zip(&area.pixels)
            .all(|(a, b)| (a - b).abs() <= 1.0));
        // A copy shrunk so is re-enacted.
        let original = picture(6);
        let small = pillow_box_resize(&Luma::of(&original), 24, 24).grey();
        let s = reenacted_similarity(
            &Probe::new(&DynamicImage::ImageLuma8(small), None),
            &original,
        );
        assert!(s > 0.9999, "{s}");
    }

    #[test]
    fn large_flat_or_odd_uploads_do_not_panic() {
        let big = picture(1).resize_exact(300, 300, FilterType::Nearest);
        assert!(!Probe::new(&big, None).is_usable());
        assert_eq!(
            reenacted_similarity(&Probe::new(&big, None), &picture(1)),
            0.0
        );
        let flat = DynamicImage::ImageLuma8(GrayImage::from_pixel(32, 32, image::Luma([7])));
        assert_eq!(
            reenacted_similarity(&Probe::new(&flat, Some(ijg_luma(75))), &picture(1)),
            0.0
        );
        let tiny = DynamicImage::ImageLuma8(GrayImage::from_pixel(1, 1, image::Luma([7])));
        let strip = picture(1).crop_imm(0, 0, 32, 3);
        for upload in [&tiny, &strip, &picture(1)] {
            for original in [&tiny, &strip, &picture(1)] {
                let s = reenacted_similarity(&Probe::new(upload, Some(ijg_luma(90))), original);
                assert!((-1.0..=1.0).contains(&s));
            }
        }
    }
}
