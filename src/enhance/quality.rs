//! How close an enhanced picture is to the original, and the simple methods an enhancement must
//! beat: PSNR and SSIM; a 3x3 median and a Gaussian blur (restore), a mean fill and a harmonic
//! fill (inpaint), bicubic and Lanczos-3 resampling (upscale).
//!
//! Pictures here are planes of `f32` in [0, 1], channels first (`[C, H, W]`), square.

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, RgbImage};

/// A square picture, channels first, values in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Planes {
    pub channels: usize,
    pub size: usize,
    pub data: Vec<f32>,
}

impl Planes {
    /// A grey or RGB picture (others are read as RGB), which must be square.
    #[must_use]
    pub fn from_image(image: &DynamicImage, channels: usize) -> Self {
        let size = image.width() as usize;
        let data: Vec<f32> = if channels == 1 {
            image
                .to_luma8()
                .into_raw()
                .into_iter()
                .map(|b| f32::from(b) / 255.0)
                .collect()
        } else {
            let rgb = image.to_rgb8();
            let plane = size * size;
            let mut out = vec![0.0; plane * 3];
            for (i, px) in rgb.as_raw().chunks_exact(3).enumerate() {
                for c in 0..3 {
                    out[c * plane + i] = f32::from(px[c]) / 255.0;
                }
            }
            out
        };
        Self {
            channels,
            size,
            data,
        }
    }

    /// The picture as 8-bit pixels (values rounded, clamped to [0, 1] first).
    #[must_use]
    pub fn to_image(&self) -> DynamicImage {
        let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        let s = self.size as u32;
        let plane = self.size * self.size;
        if self.channels == 1 {
            let raw = self.data.iter().map(|&v| byte(v)).collect();
            DynamicImage::ImageLuma8(GrayImage::from_raw(s, s, raw).unwrap_or_default())
        } else {
            let mut raw = vec![0u8; plane * 3];
            for i in 0..plane {
                for c in 0..3 {
                    raw[i * 3 + c] = byte(self.data[c * plane + i]);
                }
            }
            DynamicImage::ImageRgb8(RgbImage::from_raw(s, s, raw).unwrap_or_default())
        }
    }

    fn at(&self, c: usize, y: isize, x: isize) -> f32 {
        let clamp = |v: isize| v.clamp(0, self.size as isize - 1) as usize;
        self.data[c * self.size * self.size + clamp(y) * self.size + clamp(x)]
    }
}

/// Peak signal-to-noise ratio in dB (peak 1), at most [`PSNR_CAP`]: the pictures compared are
/// 8-bit, so an error below 8-bit rounding's own (variance 1/(12·255²)) is not measured, and
/// identical pictures still average with the rest.
#[must_use]
pub fn psnr(a: &Planes, b: &Planes) -> f64 {
    let mse = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        / a.data.len().max(1) as f64;
    10.0 * (1.0 / mse.max(ROUNDING_MSE)).log10()
}

/// The variance of 8-bit rounding error on a [0, 1] scale.
const ROUNDING_MSE: f64 = 1.0 / (12.0 * 255.0 * 255.0);

/// The highest PSNR [`psnr`] gives: that of 8-bit rounding noise, 58.92 dB.
pub const PSNR_CAP: f64 = 58.923;

/// The Gaussian window of SSIM: 11 taps, σ = 1.5, normalised.
fn ssim_window() -> [f64; 11] {
    let mut w = [0.0; 11];
    for (i, v) in w.iter_mut().enumerate() {
        let d = i as f64 - 5.0;
        *v = (-d * d / (2.0 * 1.5 * 1.5)).exp();
    }
    let sum: f64 = w.iter().sum();
    w.map(|v| v / sum)
}

/// Structural similarity (Wang et al. 2004) with the paper's settings: an 11x11 Gaussian window
/// of σ = 1.5, K1 = 0.01, K2 = 0.03, peak 1, averaged over the window positions that fit
/// entirely inside the picture ("valid", as the reference MATLAB code) and over channels.
#[must_use]
pub fn ssim(a: &Planes, b: &Planes) -> f64 {
    const C1: f64 = 0.01 * 0.01;
    const C2: f64 = 0.03 * 0.03;
    let w = ssim_window();
    let n = a.size;
    if n < 11 {
        return f64::NAN;
    }
    let mut total = 0.0;
    let mut count = 0usize;
    for c in 0..a.channels {
        let plane = &a.data[c * n * n..(c + 1) * n * n];
        let other = &b.data[c * n * n..(c + 1) * n * n];
        for y in 0..=n - 11 {
            for x in 0..=n - 11 {
                let (mut ma, mut mb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for (dy, wy) in w.iter().enumerate() {
                    for (dx, wx) in w.iter().enumerate() {
                        let k = wy * wx;
                        let p = f64::from(plane[(y + dy) * n + x + dx]);
                        let q = f64::from(other[(y + dy) * n + x + dx]);
                        ma += k * p;
                        mb += k * q;
                        saa += k * p * p;
                        sbb += k * q * q;
                        sab += k * p * q;
                    }
                }
                let (va, vb, cov) = (saa - ma * ma, sbb - mb * mb, sab - ma * mb);
                total += ((2.0 * ma * mb + C1) * (2.0 * cov + C2))
                    / ((ma * ma + mb * mb + C1) * (va + vb + C2));
                count += 1;
            }
        }
    }
    total / count as f64
}

/// Each pixel replaced by the median of its 3x3 neighbourhood (edges replicated).
#[must_use]
pub fn median3(p: &Planes) -> Planes {
    let mut out = p.clone();
    let n = p.size;
    for c in 0..p.channels {
        for y in 0..n {
            for x in 0..n {
                let mut v = [0.0_f32; 9];
                let mut k = 0;
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        v[k] = p.at(c, y as isize + dy, x as isize + dx);
                        k += 1;
                    }
                }
                v.sort_by(f32::total_cmp);
                out.data[c * n * n + y * n + x] = v[4];
            }
        }
    }
    out
}

/// A separable Gaussian blur of standard deviation `sigma` (taps to 3σ, edges replicated).
#[must_use]
pub fn gaussian_blur(p: &Planes, sigma: f64) -> Planes {
    let radius = (3.0 * sigma).ceil().max(1.0) as isize;
    let taps: Vec<f64> = (-radius..=radius)
        .map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = taps.iter().sum();
    let taps: Vec<f32> = taps.iter().map(|t| (t / sum) as f32).collect();
    let n = p.size;
    let pass = |src: &Planes, vertical: bool| {
        let mut out = src.clone();
        for c in 0..src.channels {
            for y in 0..n {
                for x in 0..n {
                    let mut acc = 0.0;
                    for (i, t) in taps.iter().enumerate() {
                        let d = i as isize - radius;
                        acc += t * if vertical {
                            src.at(c, y as isize + d, x as isize)
                        } else {
                            src.at(c, y as isize, x as isize + d)
                        };
                    }
                    out.data[c * n * n + y * n + x] = acc;
                }
            }
        }
        out
    };
    pass(&pass(p, false), true)
}

/// The hole (`known[i]` false) filled with the mean of the known pixels, per channel.
#[must_use]
pub fn mean_fill(p: &Planes, known: &[bool]) -> Planes {
    let mut out = p.clone();
    let plane = p.size * p.size;
    for c in 0..p.channels {
        let values = &p.data[c * plane..(c + 1) * plane];
        let (sum, count) = values
            .iter()
            .zip(known)
            .filter(|(_, &k)| k)
            .fold((0.0_f64, 0usize), |(s, n), (v, _)| {
                (s + f64::from(*v), n + 1)
            });
        let mean = (sum / count.max(1) as f64) as f32;
        for (i, &k) in known.iter().enumerate() {
            if !k {
                out.data[c * plane + i] = mean;
            }
        }
    }
    out
}

/// The hole filled by diffusion from its border: the harmonic function (Laplace's equation,
/// each missing pixel the mean of its four neighbours) that equals the known pixels around it,
/// solved by Gauss-Seidel sweeps from the mean fill until no pixel moves by 1e-5.
#[must_use]
pub fn harmonic_fill(p: &Planes, known: &[bool]) -> Planes {
    let mut out = mean_fill(p, known);
    let n = p.size;
    let plane = n * n;
    let holes: Vec<usize> = (0..plane).filter(|&i| !known[i]).collect();
    for c in 0..p.channels {
        for _ in 0..10_000 {
            let mut moved = 0.0_f32;
            for &i in &holes {
                let (y, x) = ((i / n) as isize, (i % n) as isize);
                let mut sum = 0.0;
                let mut count = 0.0;
                for (dy, dx) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
                    let (yy, xx) = (y + dy, x + dx);
                    if yy >= 0 && xx >= 0 && (yy as usize) < n && (xx as usize) < n {
                        sum += out.data[c * plane + yy as usize * n + xx as usize];
                        count += 1.0;
                    }
                }
                let v = sum / count;
                moved = moved.max((v - out.data[c * plane + i]).abs());
                out.data[c * plane + i] = v;
            }
            if moved < 1e-5 {
                break;
            }
        }
    }
    out
}

/// A small picture resampled to `size` with `filter` (bicubic: Catmull-Rom; Lanczos3).
#[must_use]
pub fn resample(small: &Planes, size: usize, filter: FilterType) -> Planes {
    let image = small.to_image();
    // Resampled from the 8-bit picture, as an upload would be.
    let big = image.resize_exact(size as u32, size as u32, filter);
    Planes::from_image(&big, small.channels)
}

/// The area (box) downscale by `factor`, in floating point.
#[must_use]
pub fn area_downscale(p: &Planes, factor: usize) -> Planes {
    let n = p.size / factor;
    let mut data = vec![0.0; p.channels * n * n];
    for c in 0..p.channels {
        for y in 0..n {
            for x in 0..n {
                let mut acc = 0.0;
                for dy in 0..factor {
                    for dx in 0..factor {
                        acc += p.data
                            [c * p.size * p.size + (y * factor + dy) * p.size + x * factor + dx];
                    }
                }
                data[c * n * n + y * n + x] = acc / (factor * factor) as f32;
            }
        }
    }
    Planes {
        channels: p.channels,
        size: n,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Planes {
        Planes {
            channels: 1,
            size: n,
            data: (0..n * n)
                .map(|i| ((i / n) as f32 * 0.7 + (i % n) as f32 * 0.3) / n as f32)
                .collect(),
        }
    }

    #[test]
    fn identical_pictures_score_perfectly_and_noise_lowers_both_scores() {
        let a = ramp(32);
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-9);
        assert!((psnr(&a, &a) - PSNR_CAP).abs() < 1e-3);
        let mut b = a.clone();
        for (i, v) in b.data.iter_mut().enumerate() {
            *v += if i % 2 == 0 { 0.05 } else { -0.05 };
        }
        // MSE 0.0025: PSNR exactly 26.02 dB.
        assert!((psnr(&a, &b) - 26.0206).abs() < 1e-3);
        assert!(ssim(&a, &b) < 0.9);
    }

    #[test]
    fn a_harmonic_fill_reproduces_a_linear_ramp() {
        // A linear function is harmonic: the fill must give it back inside the hole.
        let a = ramp(32);
        let known: Vec<bool> = (0..32 * 32)
            .map(|i| !((8..20).contains(&(i / 32)) && (10..22).contains(&(i % 32))))
            .collect();
        let mut holed = a.clone();
        for (i, &k) in known.iter().enumerate() {
            if !k {
                holed.data[i] = 0.0;
            }
        }
        let filled = harmonic_fill(&holed, &known);
        let worst = filled
            .data
            .iter()
            .zip(&a.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-3, "{worst}");
        let mean = mean_fill(&holed, &known);
        assert!(psnr(&mean, &a) < psnr(&filled, &a));
    }

    #[test]
    fn smoothing_keeps_flat_pictures_and_area_downscale_averages() {
        let flat = Planes {
            channels: 3,
            size: 16,
            data: vec![0.25; 3 * 256],
        };
        assert_eq!(median3(&flat), flat);
        for v in gaussian_blur(&flat, 1.2).data {
            assert!((v - 0.25).abs() < 1e-6);
        }
        let big = ramp(32);
        let small = area_downscale(&big, 4);
        assert_eq!(small.size, 8);
        let first_block: f32 = (0..4)
            .flat_map(|y| (0..4).map(move |x| y * 32 + x))
            .map(|i| big.data[i])
            .sum::<f32>()
            / 16.0;
        assert!((small.data[0] - first_block).abs() < 1e-6);
    }
}
