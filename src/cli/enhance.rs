//! `hallmark enhance`: the service's enhancement pipeline from the command line, so the file it
//! writes is signed as an edit of its input and registered exactly as `POST /v1/enhancements`
//! does it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::Settings;
use crate::enhance::{Operation, Region};
use crate::generation::{EnhancementSpec, GenerationService};
use crate::store;
use crate::store::signing_keys::register as register_signing_key;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OpArg {
    Restore,
    Inpaint,
    Upscale,
}

#[derive(Debug, Args)]
pub struct EnhanceArgs {
    /// The picture to enhance (PNG, JPEG or WebP in the model's domain).
    pub file: PathBuf,
    #[arg(long, value_enum)]
    pub op: OpArg,
    /// Inpaint: an image of the picture's size, white where pixels are missing.
    #[arg(long, conflicts_with = "rect")]
    pub mask: Option<PathBuf>,
    /// Inpaint: the missing rectangle, x,y,w,h in pixels.
    #[arg(long, value_parser = |text: &str| Region::parse_rect(text).map_err(|e| e.to_string()))]
    pub rect: Option<Region>,
    /// Upscale: 2 or 4.
    #[arg(long, default_value_t = 2)]
    pub factor: u32,
    /// Seed of the inversion's starts: the same file, operation and seed give the same pixels.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write the signed PNG; default: <file stem>-<op>.png beside the input.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Torch device (auto, cpu, cuda, cuda:N); default: settings model.device.
    #[arg(long)]
    pub device: Option<String>,
}

/// Enhances the file, signs the result as an edit of it and registers it. Needs `hallmark
/// init` (keys) and the database.
///
/// # Errors
/// An unreadable or out-of-domain file, a bad region or factor, missing keys, an unreachable
/// database, an unwritable output.
pub async fn enhance(settings: &Settings, args: EnhanceArgs) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    if let Some(device) = args.device.clone() {
        settings.model.device = device;
    }
    settings.limits.batch_delay_ms = 0;
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let limits = settings.limits.clone();
    let image = crate::verify::upload::inspect(&bytes, &limits)
        .with_context(|| format!("{} is not an image Hallmark can read", args.file.display()))?
        .image;
    let pool = store::lazy_pool(&settings.database)?;
    let service = GenerationService::from_settings(&settings, pool.clone())?;
    register_signing_key(&pool, service.signer.identity())
        .await
        .context("cannot register the signing key: is the database up and `hallmark init` done?")?;
    let size = service.inference.info().image_size;
    let operation = match args.op {
        OpArg::Restore => Operation::Restore,
        OpArg::Upscale => Operation::Upscale {
            factor: args.factor,
        },
        OpArg::Inpaint => Operation::Inpaint(match (&args.mask, args.rect.clone()) {
            (Some(path), _) => {
                let mask = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let mask = crate::verify::upload::inspect(&mask, &limits)
                    .with_context(|| format!("{} is not a mask image", path.display()))?;
                Region::from_mask_image(&mask.image, size)?
            }
            (None, Some(rect)) => rect,
            (None, None) => anyhow::bail!("inpaint needs --mask FILE or --rect x,y,w,h"),
        }),
    };
    let spec = EnhancementSpec {
        upload: bytes.into(),
        image,
        operation,
        seed: args.seed,
        settings: settings.enhancement,
    };
    let (enhanced, _) = service.enhance(spec, None).await?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .file
            .file_stem()
            .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
        args.file.with_file_name(format!(
            "{stem}-{}.png",
            enhanced
                .record
                .fields
                .operation
                .as_deref()
                .unwrap_or("enhanced")
        ))
    });
    std::fs::write(&out, &enhanced.bytes)
        .with_context(|| format!("cannot write {}", out.display()))?;
    service
        .journal
        .checkpoint()
        .await
        .context("cannot sync the blob store")?;
    println!("{}\trecord {}", out.display(), enhanced.record.fields.id);
    Ok(())
}
