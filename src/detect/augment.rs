//! Image transforms shared by detector training (random augmentation, applied to real and
//! generated images alike) and `hallmark evaluate --detector` (the fixed transforms an
//! uploader might apply: JPEG quality 75, 0.5x resize, 10% crop). Every transform ends in a
//! decoded image, as an upload would arrive.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat};
use rand::Rng;

/// Encodes as JPEG at `quality` and decodes again (grey stays grey, colour is stored as RGB).
#[must_use]
pub fn jpeg_roundtrip(image: &DynamicImage, quality: u8) -> DynamicImage {
    let mut buf = Vec::new();
    let encoded = if image.color().has_color() {
        let rgb = image.to_rgb8();
        JpegEncoder::new_with_quality(&mut buf, quality).encode_image(&rgb)
    } else {
        let grey = image.to_luma8();
        JpegEncoder::new_with_quality(&mut buf, quality).encode_image(&grey)
    };
    match encoded.and_then(|()| image::load_from_memory_with_format(&buf, ImageFormat::Jpeg)) {
        Ok(decoded) => decoded,
        Err(_) => image.clone(),
    }
}

/// Encodes as PNG and decodes again (lossless: the pixels come back as they were).
#[must_use]
pub fn png_roundtrip(image: &DynamicImage) -> DynamicImage {
    let mut buf = Cursor::new(Vec::new());
    match image
        .write_to(&mut buf, ImageFormat::Png)
        .and_then(|()| image::load_from_memory_with_format(buf.get_ref(), ImageFormat::Png))
    {
        Ok(decoded) => decoded,
        Err(_) => image.clone(),
    }
}

/// The transforms `evaluate --detector` measures. All results are PNG round-tripped except
/// JPEG, which is JPEG round-tripped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// The image as generated / as in the dataset, written as PNG and decoded.
    Clean,
    /// JPEG at this quality.
    Jpeg(u8),
    /// Both sides scaled by this factor (rounded, at least 1 px), triangle (bilinear) filter.
    Resize(f64),
    /// A window of `(1 - f)` of the width by `(1 - f)` of the height (rounded down) at a
    /// uniformly random offset drawn from the caller's seeded RNG.
    Crop(f64),
}

impl Transform {
    /// The four transforms of the targets.
    pub const STANDARD: [Self; 4] = [
        Self::Clean,
        Self::Jpeg(75),
        Self::Resize(0.5),
        Self::Crop(0.1),
    ];

    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Self::Clean => "clean".into(),
            Self::Jpeg(q) => format!("jpeg{q}"),
            Self::Resize(f) => format!("resize{f}x"),
            Self::Crop(f) => format!("crop{}%", (f * 100.0).round()),
        }
    }

    /// A sentence defining the transform precisely.
    #[must_use]
    pub fn definition(&self) -> String {
        match self {
            Self::Clean => "clean: written as PNG and decoded".into(),
            Self::Jpeg(q) => format!("jpeg{q}: JPEG at quality {q} and decoded"),
            Self::Resize(f) => {
                format!("resize{f}x: both sides x{f} (rounded), triangle filter, then PNG")
            }
            Self::Crop(f) => format!(
                "crop{}%: a window of {:.0}% width x {:.0}% height (rounded down) at a seeded \
                 uniformly random offset, then PNG",
                (f * 100.0).round(),
                (1.0 - f) * 100.0,
                (1.0 - f) * 100.0
            ),
        }
    }

    /// Applies the transform (`rng` is only used by crops).
    pub fn apply(&self, image: &DynamicImage, rng: &mut impl Rng) -> DynamicImage {
        match *self {
            Self::Clean => png_roundtrip(image),
            Self::Jpeg(q) => jpeg_roundtrip(image, q),
            Self::Resize(f) => png_roundtrip(&resize(image, f, FilterType::Triangle)),
            Self::Crop(f) => png_roundtrip(&crop(image, f, f, rng)),
        }
    }
}

/// Scales both sides by `factor` (rounded, at least 1 px).
#[must_use]
pub fn resize(image: &DynamicImage, factor: f64, filter: FilterType) -> DynamicImage {
    let w = ((f64::from(image.width()) * factor).round() as u32).max(1);
    let h = ((f64::from(image.height()) * factor).round() as u32).max(1);
    image.resize_exact(w, h, filter)
}

/// Removes `fw` of the width and `fh` of the height (window rounded down, at least 1 px) at a
/// uniformly random offset.
pub fn crop(image: &DynamicImage, fw: f64, fh: f64, rng: &mut impl Rng) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    let cw = ((f64::from(w) * (1.0 - fw)).floor() as u32).clamp(1, w);
    let ch = ((f64::from(h) * (1.0 - fh)).floor() as u32).clamp(1, h);
    let x = rng.gen_range(0..=w - cw);
    let y = rng.gen_range(0..=h - ch);
    image.crop_imm(x, y, cw, ch)
}

/// The training augmentation, drawn independently per image and applied to real and generated
/// images alike: with probability 0.6 a crop removing 0-15% of each side at a random offset;
/// 1/4 a Gaussian blur (sigma 0.3-1.2); 1/2 a downscale by 0.4-1.0 with a random filter
/// (nearest, triangle, Catmull-Rom, Lanczos3); 1/2 JPEG at quality 50-95. About 1 image in 13
/// stays clean.
pub fn random_augment(image: &DynamicImage, rng: &mut impl Rng) -> DynamicImage {
    let mut out = image.clone();
    if rng.gen_bool(0.6) {
        let (fw, fh) = (rng.gen_range(0.0..0.15), rng.gen_range(0.0..0.15));
        out = crop(&out, fw, fh, rng);
    }
    if rng.gen_bool(0.25) {
        out = out.blur(rng.gen_range(0.3..1.2));
    }
    if rng.gen_bool(0.5) {
        let filter = [
            FilterType::Nearest,
            FilterType::Triangle,
            FilterType::CatmullRom,
            FilterType::Lanczos3,
        ][rng.gen_range(0..4)];
        out = resize(&out, rng.gen_range(0.4..1.0), filter);
    }
    if rng.gen_bool(0.5) {
        out = jpeg_roundtrip(&out, rng.gen_range(50..=95));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn img() -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_fn(32, 32, |x, y| {
            Luma([((x * 7 + y * 3) % 256) as u8])
        }))
    }

    #[test]
    fn transforms_have_the_defined_sizes() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let i = img();
        assert_eq!(Transform::Clean.apply(&i, &mut rng), i);
        let j = Transform::Jpeg(75).apply(&i, &mut rng);
        assert_eq!((j.width(), j.height()), (32, 32));
        assert!(!j.color().has_color());
        let r = Transform::Resize(0.5).apply(&i, &mut rng);
        assert_eq!((r.width(), r.height()), (16, 16));
        let c = Transform::Crop(0.1).apply(&i, &mut rng);
        assert_eq!((c.width(), c.height()), (28, 28));
        for _ in 0..50 {
            let a = random_augment(&i, &mut rng);
            assert!(a.width() >= 10 && a.width() <= 32, "{}", a.width());
        }
    }
}
