//! Near-duplicate matching in two stages, because a 64-bit perceptual hash alone cannot tell our
//! images from look-alikes (see `docs/phash-study.txt`: on Fashion-MNIST-like images real test
//! images have exact pHash twins among generated ones, and a 10% crop moves a hash ~19 bits).
//!
//! 1. **Candidates**: each registered image is hashed whole and as a 4x4 grid of windows 13/16 of
//!    its side, one sixteenth of the side apart ([`variant_phashes`]: 26-pixel windows every 2
//!    pixels of a 32-pixel image). An upload is hashed whole and, taken as a crop at the
//!    original's scale, as the same-sized windows at every offset below the grid step
//!    ([`query_phashes`]: 4 windows for a 28-pixel crop of a 32-pixel image). One of those is the
//!    very window of the original that the grid holds, whatever the crop's offset, for any crop
//!    down to 27/32 of the side: its hash is the same but for re-encoding noise. (A pHash moves
//!    5-9 bits for a 1-pixel shift of these images, and with ~10^4 look-alikes registered, a
//!    near-but-shifted window ranked the original outside the candidates for 4% of crops; the
//!    exact window ranks it first.) The registry returns the records whose nearest variant is
//!    within a loose distance of any query hash.
//! 2. **Confirmation**: each candidate's original pixels are aligned to the upload — every crop
//!    window from [`MIN_WINDOW`] of the side to the whole image, at every whole-pixel offset, each
//!    resampled to the upload's size — and compared by normalised cross-correlation of shape and
//!    texture ([`similarity`]). Only a candidate whose best alignment reaches the confirmation
//!    threshold is a match.

use image::{DynamicImage, GrayImage};

use super::Fingerprinter;

/// Side of each registered crop window, in sixteenths of the original's side.
pub const WINDOW_SIXTEENTHS: u32 = 13;
/// Registered window offsets along each axis, in sixteenths of the side: 0, 1, 2, 3.
pub const GRID: u32 = 16 - WINDOW_SIXTEENTHS;
/// The grid step, in pixels, beyond which query windows are not tried (originals up to 64 px).
const MAX_QUERY_STEP: u32 = 4;
/// Smallest crop (fraction of each side) the alignment search tries.
pub const MIN_WINDOW: f64 = 0.85;
/// The resampling filters a downscaled copy is commonly made with (bilinear/triangle, bicubic,
/// Lanczos).
const RESIZE_FILTERS: [image::imageops::FilterType; 3] = [
    image::imageops::FilterType::Triangle,
    image::imageops::FilterType::CatmullRom,
    image::imageops::FilterType::Lanczos3,
];
/// Largest side, in pixels, at which images are compared (larger ones are downscaled first).
pub const COMPARE_SIDE: u32 = 32;

/// Whether an upload whose longer side is `upload` pixels is a downscaled copy of an original
/// whose longer side is `original` (below 3/4 of it): such copies carry less detail, so they are
/// held to `verify.min_similarity_downscaled`.
#[must_use]
pub fn is_downscaled(upload: u32, original: u32) -> bool {
    u64::from(upload) * 4 < u64::from(original) * 3
}

/// Window side and grid step, in pixels, for an original of side `side`.
fn window_geometry(side: u32) -> (u32, u32) {
    let step = (side / 16).max(1);
    (side - GRID * step, step)
}

/// The pHashes registered for an image (square, as generated): the whole image first, then the
/// 4x4 grid of windows (row by row; none for an image under 16 pixels a side).
#[must_use]
pub fn variant_phashes(fingerprinter: &Fingerprinter, image: &DynamicImage) -> Vec<u64> {
    let (w, h) = (image.width(), image.height());
    let mut windows = vec![(0, 0, w, h)];
    let side = w.min(h);
    if side >= 16 {
        let (window, step) = window_geometry(side);
        windows.extend(
            (0..=GRID)
                .flat_map(|gy| (0..=GRID).map(move |gx| (gx * step, gy * step, window, window))),
        );
    }
    fingerprinter.window_phashes(image, &windows)
}

/// The pHashes an upload is looked up by: the whole image first, then, taking it for a crop of
/// an original whose side is the next power of two (every model's images are), the windows of
/// the registered size at each offset below the grid step, so one of them lies exactly on a
/// registered window.
#[must_use]
pub fn query_phashes(fingerprinter: &Fingerprinter, image: &DynamicImage) -> Vec<u64> {
    let (w, h) = (image.width(), image.height());
    let mut windows = vec![(0, 0, w, h)];
    let original = w.max(h).next_power_of_two();
    if original >= 16 {
        let (window, step) = window_geometry(original);
        // Only a crop that still holds a full grid step around the window can be aligned.
        if step <= MAX_QUERY_STEP && w + 1 >= window + step && h + 1 >= window + step {
            windows.extend((0..step).flat_map(|y| (0..step).map(move |x| (x, y, window, window))));
        }
    }
    fingerprinter.window_phashes(image, &windows)
}

/// The image shrunk (aspect kept) to at most [`COMPARE_SIDE`] on its longer side, as
/// [`similarity`] would: keep this instead of a large upload while candidates are fetched.
#[must_use]
pub fn comparison_image(image: &DynamicImage) -> DynamicImage {
    if image.width().max(image.height()) <= COMPARE_SIDE {
        return image.clone();
    }
    DynamicImage::ImageLuma8(shrink(&image.to_luma8()))
}

fn shrink(grey: &GrayImage) -> GrayImage {
    let (w, h) = grey.dimensions();
    let longest = w.max(h).max(1);
    if longest <= COMPARE_SIDE {
        return grey.clone();
    }
    let scale = f64::from(COMPARE_SIDE) / f64::from(longest);
    let nw = ((f64::from(w) * scale).round() as u32).max(1);
    let nh = ((f64::from(h) * scale).round() as u32).max(1);
    image::imageops::resize(grey, nw, nh, image::imageops::FilterType::Triangle)
}

/// A grey image as `f32`, at most [`COMPARE_SIDE`] on its longer side.
struct Plane {
    width: usize,
    height: usize,
    pixels: Vec<f32>,
}

impl Plane {
    fn new(image: &DynamicImage) -> Self {
        Self::from_grey(&shrink(&image.to_luma8()))
    }

    fn from_grey(grey: &GrayImage) -> Self {
        Self {
            width: grey.width() as usize,
            height: grey.height() as usize,
            pixels: grey.as_raw().iter().map(|&b| f32::from(b)).collect(),
        }
    }

    /// Bilinear sample at (x, y) in pixel-centre coordinates, clamped at the edges.
    fn sample(&self, x: f32, y: f32) -> f32 {
        let x = x.clamp(0.0, (self.width - 1) as f32);
        let y = y.clamp(0.0, (self.height - 1) as f32);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let row0 = &self.pixels[y0 * self.width..];
        let row1 = &self.pixels[y1 * self.width..];
        let top = row0[x0] + (row0[x1] - row0[x0]) * fx;
        let bottom = row1[x0] + (row1[x1] - row1[x0]) * fx;
        top + (bottom - top) * fy
    }
}

/// The image minus its 3x3 local mean: the fine detail (texture, edges) that look-alike images
/// do not share, unlike their silhouette. The mean is over the neighbours inside the image, summed
/// row-wise then column-wise (the box filter is separable).
pub(crate) fn detail(values: &[f32], width: usize) -> Vec<f32> {
    if width == 0 || values.is_empty() {
        return Vec::new();
    }
    let height = values.len() / width;
    // Each pixel's sum over its row neighbours, and how many there are.
    let mut across = vec![0f32; values.len()];
    for (row, out) in values.chunks(width).zip(across.chunks_mut(width)) {
        for (x, slot) in out.iter_mut().enumerate() {
            let (from, to) = (x.saturating_sub(1), (x + 1).min(width - 1));
            *slot = row[from..=to].iter().sum();
        }
    }
    let count = |i: usize, side: usize| (i.min(1) + 1 + usize::from(i + 1 < side)) as f32;
    let mut out = vec![0f32; values.len()];
    for y in 0..height {
        let (from, to) = (y.saturating_sub(1), (y + 1).min(height - 1));
        for x in 0..width {
            let sum: f32 = (from..=to).map(|yy| across[yy * width + x]).sum();
            let n = count(x, width) * count(y, height);
            out[y * width + x] = values[y * width + x] - sum / n;
        }
    }
    out
}

/// Zero-mean, unit-norm copy (None for a flat image, which matches nothing).
fn normalised(values: &[f32]) -> Option<Vec<f32>> {
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    let centred: Vec<f32> = values.iter().map(|v| v - mean).collect();
    let norm = centred.iter().map(|v| v * v).sum::<f32>().sqrt();
    (norm > 1e-3).then(|| centred.iter().map(|v| v / norm).collect())
}

/// The dot product of `normalised(values)` with `reference`, without building the copy (None
/// for flat values, as there).
fn correlation(values: &[f32], reference: &[f32]) -> Option<f32> {
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    let (mut dot, mut squares) = (0f32, 0f32);
    for (v, r) in values.iter().zip(reference) {
        let centred = v - mean;
        dot += centred * r;
        squares += centred * centred;
    }
    let norm = squares.sqrt();
    (norm > 1e-3).then(|| dot / norm)
}

/// How well `query` is explained as a crop (down to [`MIN_WINDOW`] of each side) of `original`,
/// resized and re-encoded: the best score over every window size and whole-pixel offset, each
/// window resampled to the query's size. The score is the mean of two normalised
/// cross-correlations, of the intensities (the shape) and of the 3x3 detail (the texture, which
/// look-alike garments do not share); 1 means identical up to brightness and contrast.
///
/// A downscaled upload is also compared with the original resized to its size by each of the
/// usual resampling filters ([`RESIZE_FILTERS`]), and scores the better of the two: a plain
/// resize then matches the filter's own output, not the bilinear point samples of the window
/// search, which blur differently.
#[must_use]
pub fn similarity(query: &DynamicImage, original: &DynamicImage) -> f64 {
    let q = Plane::new(query);
    let o = Plane::new(original);
    let (Some(shape), Some(texture)) = (
        normalised(&q.pixels),
        normalised(&detail(&q.pixels, q.width)),
    ) else {
        return 0.0;
    };
    let aligned = aligned(&q, &o, &shape, &texture);
    if !is_downscaled(
        query.width().max(query.height()),
        original.width().max(original.height()),
    ) {
        return aligned;
    }
    let grey = original.to_luma8();
    RESIZE_FILTERS
        .iter()
        .map(|&filter| {
            let resized = image::imageops::resize(&grey, q.width as u32, q.height as u32, filter);
            let plane = Plane::from_grey(&resized);
            score(&plane.pixels, q.width, &shape, &texture)
                .map_or(0.0, |s| f64::from(s.clamp(-1.0, 1.0)))
        })
        .fold(aligned, f64::max)
}

/// The mean of the shape and texture correlations of `candidate` (a query-sized plane) with the
/// query's normalised `shape` and `texture`; `None` for a flat candidate.
fn score(candidate: &[f32], width: usize, shape: &[f32], texture: &[f32]) -> Option<f32> {
    let a = correlation(candidate, shape)?;
    let b = correlation(&detail(candidate, width), texture)?;
    Some(0.5 * (a + b))
}

/// The best [`score`] over every crop window of `o` and whole-pixel offset.
fn aligned(q: &Plane, o: &Plane, shape: &[f32], texture: &[f32]) -> f64 {
    let aspect = q.height as f64 / q.width as f64;
    let fit = (o.width as f64).min(o.height as f64 / aspect);
    let largest = fit.floor() as usize;
    let smallest = ((fit * MIN_WINDOW).floor() as usize).clamp(1, largest.max(1));
    let mut scratch = vec![0f32; q.pixels.len()];
    let mut best = f32::MIN;
    for w in smallest..=largest {
        let h = ((w as f64 * aspect).round() as usize).clamp(1, o.height);
        let (sx, sy) = (w as f32 / q.width as f32, h as f32 / q.height as f32);
        for y0 in 0..=(o.height - h) {
            for x0 in 0..=(o.width - w) {
                // Each query pixel's centre, mapped into the window.
                for (j, row) in scratch.chunks_mut(q.width).enumerate() {
                    let y = y0 as f32 + (j as f32 + 0.5) * sy - 0.5;
                    for (i, slot) in row.iter_mut().enumerate() {
                        *slot = o.sample(x0 as f32 + (i as f32 + 0.5) * sx - 0.5, y);
                    }
                }
                if let Some(s) = score(&scratch, q.width, shape, texture) {
                    best = best.max(s);
                }
            }
        }
    }
    if best == f32::MIN {
        0.0
    } else {
        f64::from(best.clamp(-1.0, 1.0))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::Luma;

    /// A garment-like picture: a textured blob on black (also [`super::super::reenact`]'s).
    pub(crate) fn picture(seed: u32) -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_fn(32, 32, |x, y| {
            let dx = x as i32 - 16;
            let dy = y as i32 - 15;
            if dx * dx / 2 + dy * dy < 150 {
                let t = (x * 7 + y * 13 + seed * 31) % 23;
                Luma([(110 + 5 * t + 2 * y) as u8])
            } else {
                Luma([0])
            }
        }))
    }

    /// The separable box filter and the allocation-free correlation compute what their
    /// definitions say: the 3x3 mean over the neighbours inside the image, and the dot product of
    /// the zero-mean unit-norm copy with the reference.
    #[test]
    fn detail_and_correlation_match_their_definitions() {
        let mut state = 0x2545_f491_u32;
        for (width, height) in [(1, 1), (1, 5), (5, 1), (2, 3), (7, 4), (32, 32)] {
            let values: Vec<f32> = (0..width * height)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state % 256) as f32
                })
                .collect();
            let fast = detail(&values, width);
            for y in 0..height {
                for x in 0..width {
                    let (mut sum, mut n) = (0f32, 0f32);
                    for yy in y.saturating_sub(1)..=(y + 1).min(height - 1) {
                        for xx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                            sum += values[yy * width + xx];
                            n += 1.0;
                        }
                    }
                    let expected = values[y * width + x] - sum / n;
                    assert!(
                        (fast[y * width + x] - expected).abs() < 1e-3,
                        "{width}x{height} at ({x}, {y})"
                    );
                }
            }
            let reference: Vec<f32> = values.iter().rev().map(|v| v * 0.5 + 3.0).collect();
            let direct = normalised(&values)
                .map(|a| a.iter().zip(&reference).map(|(p, q)| p * q).sum::<f32>());
            let quick = correlation(&values, &reference);
            match (direct, quick) {
                (Some(d), Some(q)) => {
                    assert!((d - q).abs() < 1e-3 * d.abs().max(1.0), "{d} vs {q}")
                }
                (d, q) => assert_eq!(d.is_some(), q.is_some()),
            }
        }
        assert_eq!(
            correlation(&[7.0; 9], &[1.0; 9]),
            None,
            "a flat window matches nothing"
        );
    }

    #[test]
    fn every_crop_down_to_27_pixels_holds_a_registered_window_exactly() {
        let fp = Fingerprinter::new();
        let image = picture(1);
        let registered = variant_phashes(&fp, &image);
        assert_eq!(registered.len(), 17, "the whole image and a 4x4 grid");
        for side in 27..=32 {
            for y in 0..=(32 - side) {
                for x in 0..=(32 - side) {
                    let crop = image.crop_imm(x, y, side, side);
                    let queries = query_phashes(&fp, &crop);
                    assert_eq!(queries.len(), 5, "whole + 4 windows for a {side}px crop");
                    assert!(
                        queries.iter().any(|q| registered[1..].contains(q)),
                        "{side}px crop at ({x}, {y}) missed every registered window"
                    );
                }
            }
        }
    }

    #[test]
    fn small_or_stretched_uploads_are_hashed_whole() {
        let fp = Fingerprinter::new();
        let small = picture(1).resize_exact(19, 19, image::imageops::FilterType::Triangle);
        assert_eq!(
            query_phashes(&fp, &small).len(),
            1,
            "a 26px window does not fit"
        );
        let strip = picture(1).crop_imm(0, 0, 32, 20);
        assert_eq!(query_phashes(&fp, &strip).len(), 1);
        let tiny = DynamicImage::ImageLuma8(GrayImage::new(3, 3));
        assert_eq!(query_phashes(&fp, &tiny).len(), 1);
        assert_eq!(variant_phashes(&fp, &tiny).len(), 1);
        let big = picture(1).resize_exact(500, 500, image::imageops::FilterType::Triangle);
        assert_eq!(
            query_phashes(&fp, &big).len(),
            1,
            "steps above 4 px are not tried"
        );
        assert_eq!(variant_phashes(&fp, &big).len(), 17);
    }

    #[test]
    fn crops_and_resizes_of_the_original_align_almost_perfectly() {
        let original = picture(2);
        let crop = original.crop_imm(2, 1, 29, 29);
        let half = original.resize_exact(16, 16, image::imageops::FilterType::Triangle);
        assert!(similarity(&original, &original) > 0.999);
        assert!(
            similarity(&crop, &original) > 0.99,
            "{}",
            similarity(&crop, &original)
        );
        // Halving loses the finest texture: lower, but still near.
        assert!(
            similarity(&half, &original) > 0.9,
            "{}",
            similarity(&half, &original)
        );
        // A different picture of the same kind does not.
        let other = picture(9);
        assert!(similarity(&other, &original) < similarity(&crop, &original));
    }

    #[test]
    fn a_plain_downscale_matches_its_filters_output() {
        use image::imageops::FilterType;
        let original = picture(5);
        for filter in [
            FilterType::Triangle,
            FilterType::CatmullRom,
            FilterType::Lanczos3,
        ] {
            let half = original.resize_exact(16, 16, filter);
            let s = similarity(&half, &original);
            assert!(s > 0.999, "{filter:?}: {s}");
            let other = picture(6);
            assert!(similarity(&half, &other) < s - 0.01, "{filter:?}");
        }
    }

    #[test]
    fn flat_images_match_nothing() {
        let flat = DynamicImage::ImageLuma8(GrayImage::from_pixel(32, 32, Luma([7])));
        assert_eq!(similarity(&flat, &picture(3)), 0.0);
        assert_eq!(similarity(&picture(3), &flat), 0.0);
    }

    #[test]
    fn odd_shapes_do_not_panic() {
        let tall =
            DynamicImage::ImageLuma8(GrayImage::from_fn(3, 40, |x, y| Luma([(x * 50 + y) as u8])));
        let tiny = DynamicImage::ImageLuma8(GrayImage::from_fn(1, 1, |_, _| Luma([9])));
        let big = picture(4).resize_exact(300, 200, image::imageops::FilterType::Nearest);
        for (a, b) in [
            (&tall, &big),
            (&big, &tall),
            (&tiny, &big),
            (&big, &tiny),
            (&big, &picture(4)),
        ] {
            let s = similarity(a, b);
            assert!((-1.0..=1.0001).contains(&s), "{s}");
        }
    }
}
