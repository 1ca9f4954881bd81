//! Training data: Fashion-MNIST style IDX files, or any folder of PNG/JPEG/WebP images.
//! Everything is held in memory as bytes (CHW, model size) and turned into [-1, 1] floats
//! one batch at a time.

use std::io::Read;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage};
use tch::{Device, Tensor};

use super::model::{fit_square, to_chw_u8};
use super::GanError;

/// Which half of an IDX dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "t10k",
        }
    }
}

/// Images at the model's size and channel count.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `count * channels * size * size` bytes, CHW per image.
    pixels: Vec<u8>,
    count: usize,
    channels: u32,
    size: u32,
    /// Class labels, for IDX datasets that have a labels file.
    pub labels: Option<Vec<u8>>,
    /// Files in an image folder that could not be decoded.
    pub skipped: usize,
    /// What was loaded, for the model card.
    pub description: String,
}

impl Dataset {
    /// Opens `path`: a directory with `train-images-idx3-ubyte[.gz]` (Fashion-MNIST layout, the
    /// train split), an IDX images file, or else a folder of images searched recursively.
    ///
    /// # Errors
    /// When nothing usable is there; the message names the path.
    pub fn open(path: &Path, size: u32, channels: u32) -> Result<Self, GanError> {
        if path.is_dir() && find_idx(path, Split::Train, "images").is_some() {
            Self::idx_split(path, Split::Train, size, channels)
        } else if path.is_file() {
            Self::idx(path, None, size, channels)
        } else {
            Self::image_folder(path, size, channels)
        }
    }

    /// One split of a dataset: of an IDX directory, its train or test files; of a folder of
    /// images, every tenth image in path order (the 10th, 20th, ...) is the test split and the
    /// others the train split.
    ///
    /// # Errors
    /// When nothing usable is there, or a folder has too few images for a test split.
    pub fn split(path: &Path, split: Split, size: u32, channels: u32) -> Result<Self, GanError> {
        let idx = path.is_dir()
            && (find_idx(path, Split::Train, "images").is_some()
                || find_idx(path, Split::Test, "images").is_some());
        if idx || !path.is_dir() {
            return Self::idx_split(path, split, size, channels);
        }
        let all = Self::image_folder(path, size, channels)?;
        let keep: Vec<usize> = (0..all.count)
            .filter(|i| (i % 10 == 9) == (split == Split::Test))
            .collect();
        if keep.is_empty() {
            return Err(GanError::Dataset {
                path: path.to_owned(),
                message: format!(
                    "{} images: a folder needs at least 10 for a test split (every tenth image)",
                    all.count
                ),
            });
        }
        let mut pixels = Vec::with_capacity(keep.len() * all.image_bytes(0).len());
        for &i in &keep {
            pixels.extend_from_slice(all.image_bytes(i));
        }
        Ok(Self {
            pixels,
            count: keep.len(),
            description: format!(
                "{} ({} split: {})",
                all.description,
                split.prefix(),
                if split == Split::Test {
                    "every tenth image"
                } else {
                    "all but every tenth image"
                }
            ),
            ..all
        })
    }

    /// One split (with labels when present) of an IDX dataset directory.
    ///
    /// # Errors
    /// When the files are missing or malformed.
    pub fn idx_split(dir: &Path, split: Split, size: u32, channels: u32) -> Result<Self, GanError> {
        let images = find_idx(dir, split, "images").ok_or_else(|| GanError::Dataset {
            path: dir.to_owned(),
            message: format!("no {}-images-idx3-ubyte[.gz] file here", split.prefix()),
        })?;
        let labels = find_idx(dir, split, "labels");
        Self::idx(&images, labels.as_deref(), size, channels)
    }

    /// An IDX images file (28x28 images are padded to 32x32 first, then resized to `size`).
    ///
    /// # Errors
    /// When a file is unreadable or malformed.
    pub fn idx(
        images_path: &Path,
        labels_path: Option<&Path>,
        size: u32,
        channels: u32,
    ) -> Result<Self, GanError> {
        let bad = |path: &Path, message: String| GanError::Dataset {
            path: path.to_owned(),
            message,
        };
        let bytes = read_maybe_gz(images_path)?;
        let header = |i: usize| -> Option<usize> {
            let b = bytes.get(i * 4..i * 4 + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        if header(0) != Some(0x0803) {
            return Err(bad(
                images_path,
                "not an IDX file of 8-bit images (magic 0x803)".into(),
            ));
        }
        let (Some(n), Some(rows), Some(cols)) = (header(1), header(2), header(3)) else {
            return Err(bad(images_path, "truncated IDX header".into()));
        };
        let plane = rows * cols;
        if n == 0 || plane == 0 || bytes.len() != 16 + n * plane {
            return Err(bad(
                images_path,
                format!(
                    "IDX header says {n} images of {rows}x{cols} but the file has {} bytes",
                    bytes.len()
                ),
            ));
        }
        let labels = match labels_path {
            Some(path) => {
                let l = read_maybe_gz(path)?;
                let magic = l
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                if magic != Some(0x0801) || l.len() != 8 + n {
                    return Err(bad(path, format!("not an IDX labels file for {n} images")));
                }
                Some(l[8..].to_vec())
            }
            None => None,
        };
        let per = (channels * size * size) as usize;
        let mut pixels = Vec::with_capacity(n * per);
        for i in 0..n {
            let raw = bytes[16 + i * plane..16 + (i + 1) * plane].to_vec();
            let image = GrayImage::from_raw(cols as u32, rows as u32, raw)
                .ok_or_else(|| bad(images_path, "image buffer size mismatch".into()))?;
            let image = if rows == 28 && cols == 28 {
                let mut padded = GrayImage::new(32, 32);
                image::imageops::replace(&mut padded, &image, 2, 2);
                padded
            } else {
                image
            };
            let image = DynamicImage::ImageLuma8(image);
            pixels.extend(to_chw_u8(&fit_square(&image, size), channels));
        }
        Ok(Self {
            pixels,
            count: n,
            channels,
            size,
            labels,
            skipped: 0,
            description: format!("idx:{}", images_path.display()),
        })
    }

    /// Every PNG, JPEG and WebP file under `dir` (recursively, in path order), resized and
    /// centre-cropped. Undecodable files are skipped and counted.
    ///
    /// # Errors
    /// When the folder cannot be read, or holds no decodable image.
    pub fn image_folder(dir: &Path, size: u32, channels: u32) -> Result<Self, GanError> {
        let mut files = Vec::new();
        collect_images(dir, &mut files)?;
        files.sort();
        let per = (channels * size * size) as usize;
        let mut pixels = Vec::with_capacity(files.len() * per);
        let mut skipped = 0;
        let mut count = 0;
        for file in &files {
            let decoded = image::ImageReader::open(file)
                .map_err(|e| e.to_string())
                .and_then(|r| r.with_guessed_format().map_err(|e| e.to_string()))
                .and_then(|r| r.decode().map_err(|e| e.to_string()));
            match decoded {
                Ok(image) => {
                    pixels.extend(to_chw_u8(&fit_square(&image, size), channels));
                    count += 1;
                }
                Err(error) => {
                    tracing::warn!(file = %file.display(), %error, "skipping unreadable image");
                    skipped += 1;
                }
            }
        }
        if count == 0 {
            return Err(GanError::Dataset {
                path: dir.to_owned(),
                message: format!(
                    "no readable PNG, JPEG or WebP images ({} found, {skipped} unreadable)",
                    files.len()
                ),
            });
        }
        Ok(Self {
            pixels,
            count,
            channels,
            size,
            labels: None,
            skipped,
            description: format!("images:{}", dir.display()),
        })
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    #[must_use]
    pub fn image_size(&self) -> u32 {
        self.size
    }

    #[must_use]
    pub fn channels(&self) -> u32 {
        self.channels
    }

    /// The bytes of image `index` (CHW).
    #[must_use]
    pub fn image_bytes(&self, index: usize) -> &[u8] {
        let per = (self.channels * self.size * self.size) as usize;
        &self.pixels[index * per..(index + 1) * per]
    }

    /// Images `indices` as a float batch `[N, C, S, S]` in [-1, 1] on `device`.
    ///
    /// # Errors
    /// When an index is out of range, or torch fails.
    pub fn batch(&self, indices: &[usize], device: Device) -> Result<Tensor, GanError> {
        let per = (self.channels * self.size * self.size) as usize;
        let mut floats = Vec::with_capacity(indices.len() * per);
        for &i in indices {
            if i >= self.count {
                return Err(GanError::Shape(format!(
                    "image {i} of a dataset of {}",
                    self.count
                )));
            }
            floats.extend(
                self.image_bytes(i)
                    .iter()
                    .map(|&b| f32::from(b) / 127.5 - 1.0),
            );
        }
        let s = i64::from(self.size);
        Ok(Tensor::f_from_slice(&floats)?
            .f_view([indices.len() as i64, i64::from(self.channels), s, s])?
            .f_to_device(device)?)
    }
}

fn find_idx(dir: &Path, split: Split, what: &str) -> Option<PathBuf> {
    let ndim = if what == "images" { 3 } else { 1 };
    let base = format!("{}-{what}-idx{ndim}-ubyte", split.prefix());
    let dotted = format!("{}-{what}.idx{ndim}-ubyte", split.prefix());
    [
        base.clone(),
        format!("{base}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ]
    .into_iter()
    .map(|name| dir.join(name))
    .find(|p| p.is_file())
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, GanError> {
    let raw = std::fs::read(path).map_err(|e| GanError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| GanError::Dataset {
                path: path.to_owned(),
                message: format!("corrupt gzip data: {e}"),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), GanError> {
    let entries = std::fs::read_dir(dir).map_err(|e| GanError::Dataset {
        path: dir.to_owned(),
        message: format!("cannot read the folder: {e}"),
    })?;
    for entry in entries {
        let entry = entry.map_err(|e| GanError::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| GanError::io(&path, e))?;
        if kind.is_dir() {
            collect_images(&path, out)?;
        } else {
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg" | "webp")) {
                out.push(path);
            }
        }
    }
    Ok(())
}
