//! Enhancement of a picture by the served GAN: `restore` (a noisy or degraded picture),
//! `inpaint` (a missing region) and `upscale` (2x or 4x), by inversion of the generator
//! ([`invert`]); the measures and simple methods it is judged against ([`quality`]); the study on
//! held-out images ([`study`]).
//!
//! A picture is enhanced only inside the model's domain: its size (the model's, or the model's
//! divided by the factor for an upscale) and its colours (a grey model takes grey pictures).
//! Anything else is refused with the reason, never enhanced into nonsense.

pub mod invert;
pub mod quality;
pub mod study;

use image::DynamicImage;

pub use invert::{InversionSettings, Inverted, Known};

/// Largest share of a picture an inpaint may leave missing: with less known, the answer would be
/// a generation, not an enhancement.
pub const MAX_MISSING_SHARE: f64 = 0.75;

/// Upscale factors served.
pub const FACTORS: [u32; 2] = [2, 4];

/// What to do to a picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Restore,
    Inpaint(Region),
    Upscale { factor: u32 },
}

/// The missing region of an inpaint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Region {
    /// A rectangle, top-left corner and size in pixels.
    Rect { x: u32, y: u32, w: u32, h: u32 },
    /// One flag per pixel of the picture, row by row; true = missing.
    Mask(Vec<bool>),
}

/// Why a picture or an operation cannot be enhanced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnhanceError {
    /// The picture is not one the model can enhance (size, colour).
    #[error("{0}")]
    OutOfDomain(String),
    /// The region is empty, outside the picture, too large, or of another size.
    #[error("{0}")]
    InvalidRegion(String),
    /// An upscale factor other than those served.
    #[error("upscale factor {0}: the factors served are 2 and 4")]
    InvalidFactor(u32),
}

impl Operation {
    /// `restore`, `inpaint` or `upscale`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Restore => "restore",
            Self::Inpaint(_) => "inpaint",
            Self::Upscale { .. } => "upscale",
        }
    }

    /// What was done, in words for a report: "region 10,12 12x12 inpainted".
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Restore => "restored".to_owned(),
            Self::Inpaint(Region::Rect { x, y, w, h }) => {
                format!("region {x},{y} {w}x{h} inpainted")
            }
            Self::Inpaint(Region::Mask(mask)) => format!(
                "{} masked pixels inpainted",
                mask.iter().filter(|&&m| m).count()
            ),
            Self::Upscale { factor } => format!("upscaled {factor}x"),
        }
    }

    /// The operation and its region or factor, as an edit's manifest and record state them
    /// (a mask as the number of its pixels).
    #[must_use]
    pub fn parameters(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert("operation".into(), self.name().into());
        match self {
            Self::Restore => {}
            Self::Inpaint(Region::Rect { x, y, w, h }) => {
                map.insert(
                    "region".into(),
                    serde_json::json!({ "x": x, "y": y, "w": w, "h": h }),
                );
            }
            Self::Inpaint(Region::Mask(mask)) => {
                let pixels = mask.iter().filter(|&&m| m).count();
                map.insert("mask_pixels".into(), pixels.into());
            }
            Self::Upscale { factor } => {
                map.insert("factor".into(), (*factor).into());
            }
        }
        map
    }

    /// The size of the picture this operation takes for a model of `size` pixels.
    #[must_use]
    pub fn input_size(&self, size: u32) -> u32 {
        match self {
            Self::Upscale { factor } if *factor > 0 => size / factor,
            _ => size,
        }
    }

    /// What is known of `image` for a model of `size` pixels and `channels` channels, in the
    /// model's pixel space.
    ///
    /// # Errors
    /// [`EnhanceError::OutOfDomain`] for a picture of another size or a colour picture for a
    /// grey model; [`EnhanceError::InvalidRegion`] and [`EnhanceError::InvalidFactor`] for
    /// operations that cannot apply.
    pub fn known(
        &self,
        image: &DynamicImage,
        size: u32,
        channels: u32,
    ) -> Result<Known, EnhanceError> {
        if let Self::Upscale { factor } = self {
            if !FACTORS.contains(factor) || !size.is_multiple_of(*factor) {
                return Err(EnhanceError::InvalidFactor(*factor));
            }
        }
        let expected = self.input_size(size);
        if image.width() != expected || image.height() != expected {
            return Err(EnhanceError::OutOfDomain(format!(
                "the picture is {}x{}; {} takes {expected}x{expected} pictures for this model",
                image.width(),
                image.height(),
                self.name()
            )));
        }
        if channels == 1 && is_colour(image) {
            return Err(EnhanceError::OutOfDomain(
                "a colour picture: this model makes grey pictures".into(),
            ));
        }
        let pixels = model_pixels(image, channels);
        Ok(match self {
            Self::Restore => Known::All { pixels },
            Self::Upscale { factor } => Known::Downscaled {
                pixels,
                factor: *factor,
            },
            Self::Inpaint(region) => Known::Masked {
                pixels,
                mask: region.known(size)?,
            },
        })
    }
}

impl Region {
    /// One flag per pixel of a `size` square picture: true = known.
    ///
    /// # Errors
    /// [`EnhanceError::InvalidRegion`] when the region is empty, leaves the picture, is of
    /// another size, or leaves less than a quarter of the picture known.
    pub fn known(&self, size: u32) -> Result<Vec<bool>, EnhanceError> {
        let s = size as usize;
        let known: Vec<bool> = match self {
            Self::Rect { x, y, w, h } => {
                let fits = *w > 0
                    && *h > 0
                    && x.checked_add(*w).is_some_and(|r| r <= size)
                    && y.checked_add(*h).is_some_and(|b| b <= size);
                if !fits {
                    return Err(EnhanceError::InvalidRegion(format!(
                        "the rectangle {x},{y} {w}x{h} is empty or leaves the {size}x{size} picture"
                    )));
                }
                let (x, y, w, h) = (*x as usize, *y as usize, *w as usize, *h as usize);
                (0..s * s)
                    .map(|i| !((y..y + h).contains(&(i / s)) && (x..x + w).contains(&(i % s))))
                    .collect()
            }
            Self::Mask(mask) => {
                if mask.len() != s * s {
                    return Err(EnhanceError::InvalidRegion(format!(
                        "the mask has {} pixels; the picture has {size}x{size}",
                        mask.len()
                    )));
                }
                mask.iter().map(|&missing| !missing).collect()
            }
        };
        let missing = known.iter().filter(|&&k| !k).count();
        if missing == 0 {
            return Err(EnhanceError::InvalidRegion(
                "the region is empty: nothing to inpaint".into(),
            ));
        }
        if missing as f64 > MAX_MISSING_SHARE * (s * s) as f64 {
            return Err(EnhanceError::InvalidRegion(format!(
                "{missing} of {} pixels missing: at most {:.0}% of a picture may be inpainted",
                s * s,
                MAX_MISSING_SHARE * 100.0
            )));
        }
        Ok(known)
    }

    /// A rectangle written `x,y,w,h` (pixels).
    ///
    /// # Errors
    /// [`EnhanceError::InvalidRegion`] when the text is not four whole numbers.
    pub fn parse_rect(text: &str) -> Result<Self, EnhanceError> {
        let bad = || EnhanceError::InvalidRegion("rect is x,y,w,h in pixels".into());
        let numbers: Vec<u32> = text
            .split(',')
            .map(|n| n.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        match numbers[..] {
            [x, y, w, h] => Ok(Self::Rect { x, y, w, h }),
            _ => Err(bad()),
        }
    }

    /// A mask picture of `size` square: pixels brighter than mid-grey are missing.
    ///
    /// # Errors
    /// [`EnhanceError::InvalidRegion`] when the mask is not `size` square.
    pub fn from_mask_image(mask: &DynamicImage, size: u32) -> Result<Self, EnhanceError> {
        if mask.width() != size || mask.height() != size {
            return Err(EnhanceError::InvalidRegion(format!(
                "the mask is {}x{}; the picture is {size}x{size}",
                mask.width(),
                mask.height()
            )));
        }
        Ok(Self::Mask(
            mask.to_luma8()
                .into_raw()
                .into_iter()
                .map(|v| v > 127)
                .collect(),
        ))
    }
}

/// Whether any pixel's channels differ by more than a rounding step (a grey picture saved as
/// RGB is grey).
#[must_use]
pub fn is_colour(image: &DynamicImage) -> bool {
    if !image.color().has_color() {
        return false;
    }
    image
        .to_rgb8()
        .pixels()
        .any(|p| p[0].abs_diff(p[1]) > 2 || p[1].abs_diff(p[2]) > 2)
}

/// The picture as the model's values: channels first, `byte / 127.5 − 1`.
#[must_use]
pub fn model_pixels(image: &DynamicImage, channels: u32) -> Vec<f32> {
    crate::gan::model::to_chw_u8(image, channels)
        .into_iter()
        .map(|b| f32::from(b) / 127.5 - 1.0)
        .collect()
}

/// Model values (`[C, S, S]` in [-1, 1]) → an 8-bit picture.
#[must_use]
pub fn to_image(pixels: &[f32], size: u32, channels: u32) -> DynamicImage {
    quality::Planes {
        channels: channels as usize,
        size: size as usize,
        data: pixels.iter().map(|v| (v + 1.0) / 2.0).collect(),
    }
    .to_image()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Rgb, RgbImage};

    #[test]
    fn pictures_outside_the_domain_and_bad_regions_are_refused_with_the_reason() {
        let grey = DynamicImage::ImageLuma8(GrayImage::new(32, 32));
        let mut colour = RgbImage::new(32, 32);
        colour.put_pixel(3, 3, Rgb([200, 10, 10]));
        let colour = DynamicImage::ImageRgb8(colour);
        let small = DynamicImage::ImageLuma8(GrayImage::new(8, 8));
        let restore = Operation::Restore;
        assert!(restore.known(&grey, 32, 1).is_ok());
        assert!(matches!(
            restore.known(&colour, 32, 1),
            Err(EnhanceError::OutOfDomain(_))
        ));
        assert!(matches!(
            restore.known(&small, 32, 1),
            Err(EnhanceError::OutOfDomain(_))
        ));
        // A grey picture saved as RGB is grey.
        let grey_rgb = DynamicImage::ImageRgb8(grey.to_rgb8());
        assert!(restore.known(&grey_rgb, 32, 1).is_ok());
        for factor in [0, 1, 3, 1000] {
            assert_eq!(
                Operation::Upscale { factor }.known(&small, 32, 1),
                Err(EnhanceError::InvalidFactor(factor))
            );
        }
        assert!(Operation::Upscale { factor: 4 }
            .known(&small, 32, 1)
            .is_ok());
        assert!(matches!(
            Operation::Upscale { factor: 2 }.known(&small, 32, 1),
            Err(EnhanceError::OutOfDomain(_))
        ));
        let bad_regions = [
            Region::Rect {
                x: 0,
                y: 0,
                w: 0,
                h: 4,
            },
            Region::Rect {
                x: 30,
                y: 0,
                w: 4,
                h: 4,
            },
            Region::Rect {
                x: u32::MAX,
                y: 0,
                w: 4,
                h: 4,
            },
            Region::Rect {
                x: 0,
                y: 0,
                w: 32,
                h: 32,
            },
            Region::Mask(vec![false; 32 * 32]),
            Region::Mask(vec![true; 32 * 32]),
            Region::Mask(vec![true; 16]),
        ];
        for region in bad_regions {
            assert!(
                matches!(
                    Operation::Inpaint(region.clone()).known(&grey, 32, 1),
                    Err(EnhanceError::InvalidRegion(_))
                ),
                "{region:?}"
            );
        }
        let known = Region::Rect {
            x: 10,
            y: 12,
            w: 12,
            h: 12,
        }
        .known(32)
        .unwrap();
        assert_eq!(known.iter().filter(|&&k| !k).count(), 144);
        assert!(!known[12 * 32 + 10] && known[11 * 32 + 10] && known[12 * 32 + 22]);
        assert!(matches!(
            Region::from_mask_image(&small, 32),
            Err(EnhanceError::InvalidRegion(_))
        ));
    }

    #[test]
    fn model_values_round_trip_to_the_same_bytes() {
        let raw: Vec<u8> = (0..=255).cycle().take(32 * 32).collect();
        let image = DynamicImage::ImageLuma8(GrayImage::from_raw(32, 32, raw.clone()).unwrap());
        let back = to_image(&model_pixels(&image, 1), 32, 1);
        assert_eq!(back.to_luma8().into_raw(), raw);
    }
}
