//! The 64-bit DCT pHash of a grey image or of a window of one, bit for bit the hash of
//! `image_hasher` 3 configured as `HasherConfig::new().hash_size(8, 8).hash_alg(Mean)
//! .preproc_dct()` (the registry's hash since the first record), computed without its per-call
//! costs.
//!
//! That configuration: the grey image resized to 16x16 by `image` 0.25's
//! `imageops::resize(.., Lanczos3)` (a vertical then a horizontal pass, f32 sums, rounded to u8);
//! a 2-D DCT-II (rustdct's 16-point plan over rows, then over columns); the 8x8 lowest
//! frequencies; each bit whether its coefficient reaches their mean, least significant bit first
//! in each byte. `imageops::resize` computes its Lanczos weights (two `sin` a tap) for every call,
//! and a registered image is hashed 17 times (whole and 16 windows of one size): that was a tenth
//! of the service's CPU under load (`docs/benchmarks.md`). Here the weights of each axis are
//! computed once per source length with the same f32 operations in the same order, and every
//! sum adds the same products in the same order, so the hashes are the same bits:
//! `tests::matches_image_hasher_bit_for_bit` holds it to the crate on images of every shape the
//! service sees, and `scripts/hallmark_fingerprint.py` (independent) recomputes registered hashes
//! in the API tests.

use std::sync::Arc;

use image::GrayImage;
use rustdct::{DctPlanner, TransformType2And3};

/// Side of the resized image the DCT runs on (twice the 8x8 hash).
const SIDE: usize = 16;
/// The hash's side: its 64 bits are the 8x8 lowest frequencies.
const HASH_SIDE: usize = 8;
/// Lanczos3's support, in source pixels at scale 1.
const SUPPORT: f32 = 3.0;

/// `image`'s `sinc`.
fn sinc(t: f32) -> f32 {
    let a = t * std::f32::consts::PI;
    if t == 0.0 {
        1.0
    } else {
        a.sin() / a
    }
}

/// `image`'s `lanczos3_kernel`.
fn lanczos3(x: f32) -> f32 {
    if x.abs() < SUPPORT {
        sinc(x) * sinc(x / SUPPORT)
    } else {
        0.0
    }
}

/// The weights of one axis of `imageops::resize(.., Lanczos3)` from `source` pixels to [`SIDE`]:
/// for each output pixel, the first source pixel it reads and the normalised weights of it and
/// the following ones (`image`'s `vertical_sample` / `horizontal_sample`, which compute them
/// alike).
struct Axis {
    taps: Vec<(usize, Vec<f32>)>,
}

impl Axis {
    fn new(source: u32) -> Self {
        if source == 0 {
            // An empty image is not resampled (see `resized`).
            return Self { taps: Vec::new() };
        }
        let output = SIDE as u32;
        #[allow(clippy::cast_precision_loss)] // image sides are far below 2^24
        let ratio = source as f32 / output as f32;
        let sratio = if ratio < 1.0 { 1.0 } else { ratio };
        let src_support = SUPPORT * sratio;
        let taps = (0..output)
            .map(|out| {
                #[allow(clippy::cast_precision_loss)]
                let input = (out as f32 + 0.5) * ratio;
                #[allow(clippy::cast_possible_truncation)]
                let left = ((input - src_support).floor() as i64).clamp(0, i64::from(source) - 1);
                #[allow(clippy::cast_possible_truncation)]
                let right = ((input + src_support).ceil() as i64)
                    .max(left + 1)
                    .min(i64::from(source));
                let input = input - 0.5;
                let mut weights = Vec::new();
                let mut sum = 0.0;
                for i in left..right {
                    #[allow(clippy::cast_precision_loss)]
                    let w = lanczos3((i as f32 - input) / sratio);
                    weights.push(w);
                    sum += w;
                }
                for w in &mut weights {
                    *w /= sum;
                }
                #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
                (left as usize, weights)
            })
            .collect();
        Self { taps }
    }
}

/// Hashes grey images and windows of them; build one and reuse it.
pub struct PHasher {
    dct: Arc<dyn TransformType2And3<f32>>,
}

impl Default for PHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// A rectangle of a grey image: left, top, width, height.
pub type Window = (u32, u32, u32, u32);

impl PHasher {
    #[must_use]
    pub fn new() -> Self {
        Self {
            dct: DctPlanner::new().plan_dct2(SIDE),
        }
    }

    /// The pHash of the whole grey image.
    #[must_use]
    pub fn hash(&self, grey: &GrayImage) -> u64 {
        self.hash_windows(grey, &[(0, 0, grey.width(), grey.height())])[0]
    }

    /// The pHash of each window of `grey` (each must lie inside it), as if each were cropped out
    /// and hashed alone; windows of one size share their resize weights.
    ///
    /// # Panics
    /// When a window reaches outside the image.
    #[must_use]
    pub fn hash_windows(&self, grey: &GrayImage, windows: &[Window]) -> Vec<u64> {
        let mut axes: Vec<(u32, Axis)> = Vec::new();
        let mut axis_of = |len: u32| -> usize {
            if let Some(i) = axes.iter().position(|(l, _)| *l == len) {
                return i;
            }
            axes.push((len, Axis::new(len)));
            axes.len() - 1
        };
        let plan: Vec<(usize, usize)> = windows
            .iter()
            .map(|&(_, _, w, h)| (axis_of(w), axis_of(h)))
            .collect();
        let mut buffers = Buffers {
            tall: Vec::new(),
            row: Vec::new(),
            scratch: vec![0.0; self.dct.get_scratch_len()],
        };
        windows
            .iter()
            .zip(plan)
            .map(|(&window, (x_axis, y_axis))| {
                let (x, y, w, h) = window;
                assert!(
                    u64::from(x) + u64::from(w) <= u64::from(grey.width())
                        && u64::from(y) + u64::from(h) <= u64::from(grey.height()),
                    "window {window:?} outside a {}x{} image",
                    grey.width(),
                    grey.height()
                );
                let small = resized(grey, window, &axes[x_axis].1, &axes[y_axis].1, &mut buffers);
                self.hash_of_resized(&small, &mut buffers.scratch)
            })
            .collect()
    }

    /// DCT, 8x8 lowest frequencies, bits against their mean (`image_hasher`'s `dct_2d`,
    /// `crop_2d` and `mean_hash_f32`; its transposes only move values, so each column is taken
    /// directly, and only the eight columns the hash keeps are transformed).
    fn hash_of_resized(&self, small: &[u8; SIDE * SIDE], scratch: &mut [f32]) -> u64 {
        let mut rows = [0.0_f32; SIDE * SIDE];
        for (value, &byte) in rows.iter_mut().zip(small) {
            *value = f32::from(byte);
        }
        for row in rows.chunks_mut(SIDE) {
            self.dct.process_dct2_with_scratch(row, scratch);
        }
        let mut low = [0.0_f32; HASH_SIDE * HASH_SIDE];
        let mut column = [0.0_f32; SIDE];
        for c in 0..HASH_SIDE {
            for (r, value) in column.iter_mut().enumerate() {
                *value = rows[r * SIDE + c];
            }
            self.dct.process_dct2_with_scratch(&mut column, scratch);
            for r in 0..HASH_SIDE {
                low[r * HASH_SIDE + c] = column[r];
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let mean = low.iter().sum::<f32>() / low.len() as f32;
        let mut bytes = [0_u8; 8];
        for (i, &value) in low.iter().enumerate() {
            if value >= mean {
                bytes[i / 8] |= 1 << (i % 8);
            }
        }
        u64::from_be_bytes(bytes)
    }
}

/// Working memory reused across the windows of one call.
struct Buffers {
    /// The vertical pass's output, transposed: the window's columns, [`SIDE`] values each.
    tall: Vec<f32>,
    /// One output row of the vertical pass.
    row: Vec<f32>,
    scratch: Vec<f32>,
}

/// `imageops::resize(window, 16, 16, Lanczos3)`: a 16x16 window is copied as it is; an empty one
/// gives zeros. Each output value is the same sum of the same products, added in the same order,
/// as in `image`; only the loops run in an order the compiler can vectorise.
fn resized(
    grey: &GrayImage,
    window: Window,
    x_axis: &Axis,
    y_axis: &Axis,
    buffers: &mut Buffers,
) -> [u8; SIDE * SIDE] {
    let (x0, y0, w, h) = window;
    let mut out = [0_u8; SIDE * SIDE];
    if w == 0 || h == 0 {
        return out;
    }
    let stride = grey.width() as usize;
    let pixels = grey.as_raw();
    let (x0, y0, w) = (x0 as usize, y0 as usize, w as usize);
    if (w, h as usize) == (SIDE, SIDE) {
        for (r, row) in out.chunks_mut(SIDE).enumerate() {
            let start = (y0 + r) * stride + x0;
            row.copy_from_slice(&pixels[start..start + SIDE]);
        }
        return out;
    }
    // Vertical pass: each output row accumulates its taps' source rows, tap by tap.
    let Buffers { tall, row, .. } = buffers;
    tall.clear();
    tall.resize(w * SIDE, 0.0);
    row.clear();
    row.resize(w, 0.0);
    for (out_y, (top, weights)) in y_axis.taps.iter().enumerate() {
        row.fill(0.0);
        for (i, &weight) in weights.iter().enumerate() {
            let start = (y0 + top + i) * stride + x0;
            for (t, &p) in row.iter_mut().zip(&pixels[start..start + w]) {
                *t += f32::from(p) * weight;
            }
        }
        for (x, &value) in row.iter().enumerate() {
            tall[x * SIDE + out_y] = value;
        }
    }
    // Horizontal pass: each output column accumulates its taps' columns, then is rounded to u8
    // as `image` does (clamp to 0..=255, round half away from zero).
    for (out_x, (left, weights)) in x_axis.taps.iter().enumerate() {
        let mut column = [0.0_f32; SIDE];
        for (i, &weight) in weights.iter().enumerate() {
            let source = &tall[(left + i) * SIDE..(left + i + 1) * SIDE];
            for (t, &v) in column.iter_mut().zip(source) {
                *t += v * weight;
            }
        }
        for (y, &t) in column.iter().enumerate() {
            out[y * SIDE + out_x] = round_to_u8(t);
        }
    }
    out
}

/// `t.clamp(0.0, 255.0).round() as u8` without a call to `roundf`: for a value in 0..=255 the
/// fraction past its integer part is exact, and rounding half away from zero takes the next
/// integer when it is at least one half.
fn round_to_u8(t: f32) -> u8 {
    let t = t.clamp(0.0, 255.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = t as u8;
    if t - f32::from(whole) >= 0.5 {
        whole + 1
    } else {
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, Luma, Rgb, RgbImage};
    use image_hasher::{HashAlg, HasherConfig};
    use rand::{Rng, SeedableRng};

    /// The reference: the crate's hash of the window cropped out, as bits in a u64.
    fn reference(image: &DynamicImage, (x, y, w, h): Window) -> u64 {
        let hasher = HasherConfig::new()
            .hash_size(8, 8)
            .hash_alg(HashAlg::Mean)
            .preproc_dct()
            .to_hasher();
        let hash = hasher.hash_image(&image.crop_imm(x, y, w, h));
        u64::from_be_bytes(hash.as_bytes().try_into().unwrap())
    }

    /// Noise, smooth gradients, flat areas and hard edges, so every rounding case shows up; in
    /// each pixel layout an upload may decode to.
    fn picture(rng: &mut rand::rngs::StdRng, w: u32, h: u32) -> DynamicImage {
        let rgb = rgb_picture(rng, w, h);
        match rng.gen_range(0..4) {
            0 => rgb,
            1 => DynamicImage::ImageRgba8(rgb.to_rgba8()),
            2 => DynamicImage::ImageLuma8(rgb.to_luma8()),
            _ => DynamicImage::ImageRgb16(rgb.to_rgb16()),
        }
    }

    fn rgb_picture(rng: &mut rand::rngs::StdRng, w: u32, h: u32) -> DynamicImage {
        let kind = rng.gen_range(0..4);
        let (a, b) = (rng.gen_range(0.0..6.0_f32), rng.gen_range(0.0..6.0_f32));
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            let v = |c: u32| -> u8 {
                match kind {
                    0 => rng_byte(x, y, c, a),
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    1 => ((x as f32 * a + y as f32 * b + c as f32 * 20.0) % 256.0) as u8,
                    2 => {
                        if (x / 3 + y / 5 + c).is_multiple_of(2) {
                            255
                        } else {
                            0
                        }
                    }
                    _ => {
                        if x * x + y * y < w * h / 3 {
                            (120 + y * 3 + c) as u8
                        } else {
                            7
                        }
                    }
                }
            };
            Rgb([v(0), v(1), v(2)])
        }))
    }

    fn rng_byte(x: u32, y: u32, c: u32, a: f32) -> u8 {
        let mut h =
            (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663) ^ c.wrapping_mul(83_492_791))
                .wrapping_add(a.to_bits());
        h ^= h >> 13;
        h = h.wrapping_mul(0x5bd1_e995);
        (h >> 24) as u8
    }

    #[test]
    fn matches_image_hasher_bit_for_bit() {
        let hasher = crate::fingerprint::Fingerprinter::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        let mut checked = 0;
        // Generated sizes (every window of the grid and of the query offsets), small uploads,
        // the identity size, upscales, odd and large shapes.
        let shapes = [
            (32, 32),
            (64, 64),
            (28, 28),
            (16, 16),
            (15, 15),
            (1, 1),
            (2, 7),
            (17, 16),
            (31, 33),
            (100, 37),
            (300, 200),
            (1000, 3),
        ];
        for _ in 0..12 {
            for &(w, h) in &shapes {
                let image = picture(&mut rng, w, h);
                let mut windows = vec![(0, 0, w, h)];
                for _ in 0..8 {
                    let ww = rng.gen_range(1..=w);
                    let wh = rng.gen_range(1..=h);
                    windows.push((rng.gen_range(0..=w - ww), rng.gen_range(0..=h - wh), ww, wh));
                }
                for (window, got) in windows.iter().zip(hasher.window_phashes(&image, &windows)) {
                    assert_eq!(
                        got,
                        reference(&image, *window),
                        "{w}x{h} image, window {window:?}"
                    );
                    checked += 1;
                }
            }
        }
        // Every registered window of generated-size images.
        for side in [32_u32, 64] {
            let image = picture(&mut rng, side, side);
            let step = side / 16;
            let window = side - 3 * step;
            for gy in 0..4 {
                for gx in 0..4 {
                    let win = (gx * step, gy * step, window, window);
                    assert_eq!(
                        hasher.window_phashes(&image, &[win])[0],
                        reference(&image, win)
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn rounding_is_image_s() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let edges = (0..=256).flat_map(|i| {
            let x = i as f32 - 0.5;
            [
                x,
                f32::from_bits(x.to_bits() - 1),
                f32::from_bits(x.to_bits() + 1),
                x + 0.5,
            ]
        });
        for t in edges
            .chain((0..100_000).map(|_| rng.gen_range(-10.0..270.0_f32)))
            .chain([-0.0, f32::MIN_POSITIVE, 254.5, 255.0, 1e9, -1e9])
        {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let expected = t.clamp(0.0, 255.0).round() as u8;
            assert_eq!(round_to_u8(t), expected, "{t}");
        }
    }

    #[test]
    fn empty_images_hash_as_the_crate_hashes_them() {
        let hasher = crate::fingerprint::Fingerprinter::new();
        for (w, h) in [(0, 0), (0, 5), (7, 0)] {
            let image = DynamicImage::new_rgb8(w, h);
            assert_eq!(hasher.phash(&image), reference(&image, (0, 0, w, h)));
        }
    }

    #[test]
    fn a_grey_image_hashes_as_itself() {
        let grey = GrayImage::from_fn(32, 32, |x, y| Luma([((x * 7 + y * 3) % 256) as u8]));
        let image = DynamicImage::ImageLuma8(grey.clone());
        assert_eq!(
            PHasher::new().hash(&grey),
            reference(&image, (0, 0, 32, 32))
        );
    }
}
