//! PNG pictures: sample grids and the loss curve (plotters, bitmap backend, DejaVu Sans when
//! installed; without a font the curve is drawn without text).

use std::path::Path;
use std::sync::OnceLock;

use image::{DynamicImage, Rgb, RgbImage};
use plotters::prelude::*;

use super::GanError;

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a font for plotters once; false when none could be found.
fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        FONT_PATHS.iter().any(|path| {
            std::fs::read(path).ok().is_some_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

/// Lays images out in a grid, `cols` wide, each scaled by `scale`, 2 px gaps.
#[must_use]
pub fn grid(images: &[DynamicImage], cols: u32, scale: u32) -> RgbImage {
    let (w, h) = images
        .first()
        .map_or((1, 1), |i| (i.width() * scale, i.height() * scale));
    let cols = cols.max(1);
    let rows = (images.len() as u32).div_ceil(cols).max(1);
    let gap = 2;
    let mut out = RgbImage::from_pixel(
        cols * (w + gap) + gap,
        rows * (h + gap) + gap,
        Rgb([48, 48, 48]),
    );
    for (i, image) in images.iter().enumerate() {
        let i = i as u32;
        let tile = image
            .resize_exact(w, h, image::imageops::FilterType::Nearest)
            .to_rgb8();
        let x = gap + (i % cols) * (w + gap);
        let y = gap + (i / cols) * (h + gap);
        image::imageops::replace(&mut out, &tile, i64::from(x), i64::from(y));
    }
    out
}

pub fn save_png(image: &RgbImage, path: &Path) -> Result<(), GanError> {
    image.save(path).map_err(|source| GanError::Image {
        path: path.to_owned(),
        source,
    })
}

fn smooth(values: &[f32]) -> Vec<(f64, f64)> {
    let alpha = (20.0 / values.len().max(1) as f64).clamp(0.005, 1.0);
    let stride = (values.len() / 1500).max(1);
    let mut ema = f64::from(values.first().copied().unwrap_or(0.0));
    let mut out = Vec::new();
    for (i, &v) in values.iter().enumerate() {
        ema += alpha * (f64::from(v) - ema);
        if i % stride == 0 || i + 1 == values.len() {
            out.push(((i + 1) as f64, ema));
        }
    }
    out
}

/// Draws the smoothed discriminator and generator losses per step.
///
/// # Errors
/// When drawing or writing fails.
pub fn loss_curve(losses: &[(f32, f32)], path: &Path) -> Result<(), GanError> {
    let (width, height) = (900u32, 500u32);
    let mut buf = vec![255u8; (width * height * 3) as usize];
    let d: Vec<f32> = losses.iter().map(|l| l.0).collect();
    let g: Vec<f32> = losses.iter().map(|l| l.1).collect();
    let (d, g) = (smooth(&d), smooth(&g));
    let text = font_available();
    let mut draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let x_max = (losses.len().max(2)) as f64;
        let values = d.iter().chain(g.iter()).map(|p| p.1);
        let y_max = values.clone().fold(f64::MIN, f64::max).max(0.1) * 1.1;
        let y_min = values.fold(f64::MAX, f64::min).min(0.0);
        let mut builder = ChartBuilder::on(&root);
        builder.margin(20);
        if text {
            builder
                .caption("GAN losses (smoothed)", ("sans-serif", 22))
                .x_label_area_size(40)
                .y_label_area_size(55);
        }
        let mut chart = builder.build_cartesian_2d(1.0..x_max, y_min..y_max)?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("step").y_desc("loss");
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw()?;
        let series = chart.draw_series(LineSeries::new(d.iter().copied(), BLUE.stroke_width(2)))?;
        if text {
            series
                .label("discriminator")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
        }
        let series = chart.draw_series(LineSeries::new(g.iter().copied(), RED.stroke_width(2)))?;
        if text {
            series
                .label("generator")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| GanError::Plot {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let image = RgbImage::from_raw(width, height, buf)
        .ok_or_else(|| GanError::Shape("plot buffer size mismatch".into()))?;
    save_png(&image, path)
}

/// One line of a [`line_chart`].
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
}

/// Colours for successive series.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

/// A chart of lines with a legend (text only when a font is installed).
///
/// # Errors
/// When drawing or writing fails.
pub fn line_chart(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    x_range: std::ops::Range<f64>,
    y_range: std::ops::Range<f64>,
    series: &[Series],
) -> Result<(), GanError> {
    let (width, height) = (900u32, 600u32);
    let mut buf = vec![255u8; (width * height * 3) as usize];
    let text = font_available();
    let mut draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(20);
        if text {
            builder
                .caption(title, ("sans-serif", 22))
                .x_label_area_size(40)
                .y_label_area_size(55);
        }
        let mut chart = builder.build_cartesian_2d(x_range.clone(), y_range.clone())?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc(x_desc).y_desc(y_desc);
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw()?;
        for s in series {
            let color = s.color;
            let drawn = chart.draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?;
            if text {
                drawn
                    .label(s.label.as_str())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
            }
        }
        if text && !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| GanError::Plot {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let image = RgbImage::from_raw(width, height, buf)
        .ok_or_else(|| GanError::Shape("plot buffer size mismatch".into()))?;
    save_png(&image, path)
}

/// An exponential moving average of `values`, thinned to at most ~1500 points, as (step, value).
#[must_use]
pub fn smoothed(values: &[f32]) -> Vec<(f64, f64)> {
    smooth(values)
}
