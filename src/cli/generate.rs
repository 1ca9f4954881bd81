//! `hallmark generate`: the service's own pipeline from the command line, so every file it
//! writes is signed and registered exactly like an image served over HTTP.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::Settings;
use crate::generation::{GenerationService, GenerationSpec, OutputFormat, MAX_COUNT};
use crate::store;
use crate::store::signing_keys::register as register_signing_key;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Png,
    Jpeg,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Model name; default: settings model.name.
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, default_value_t = 16)]
    pub count: u64,
    /// Image i is made from the latent of (seed, i): the same seed gives the same pixels.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory to write the signed images to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "png")]
    pub format: FormatArg,
    /// JPEG quality, 1 to 100.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
    /// Torch device (auto, cpu, cuda, cuda:N); default: settings model.device.
    #[arg(long)]
    pub device: Option<String>,
}

/// Generates, signs (C2PA) and registers images, then writes them as files named
/// `<model>-<seed>-<index>.<ext>`. Needs `hallmark init` (keys) and the database.
///
/// # Errors
/// Unknown model, missing keys, unreachable database, or an unwritable directory.
pub async fn generate(settings: &Settings, args: GenerateArgs) -> anyhow::Result<()> {
    let mut settings = settings.clone();
    if let Some(model) = args.model {
        settings.model.name = model;
    }
    if let Some(device) = args.device {
        settings.model.device = device;
    }
    settings.limits.batch_delay_ms = 0;
    let pool = store::lazy_pool(&settings.database)?;
    let service = GenerationService::from_settings(&settings, pool.clone())?;
    register_signing_key(&pool, service.signer.identity())
        .await
        .context("cannot register the signing key: is the database up and `hallmark init` done?")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    let (format, extension) = match args.format {
        FormatArg::Png => (OutputFormat::Png, "png"),
        FormatArg::Jpeg => (OutputFormat::Jpeg, "jpg"),
    };
    let name = service.inference.info().name.clone();
    let mut first_index = 0;
    while first_index < args.count {
        let count = (args.count - first_index).min(u64::from(MAX_COUNT));
        let spec = GenerationSpec {
            count: usize::try_from(count)?,
            seed: args.seed,
            first_index,
            format,
            jpeg_quality: args.quality,
        };
        let (images, _) = service.generate(spec, None).await?;
        for (offset, image) in (0u64..).zip(&images) {
            let index = first_index + offset;
            let path = args
                .out
                .join(format!("{name}-{}-{index:06}.{extension}", args.seed));
            std::fs::write(&path, &image.bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("{}\trecord {}", path.display(), image.record.fields.id);
        }
        first_index += count;
    }
    // The blobs are journaled until a checkpoint: take one now rather than leave them to the
    // next `hallmark serve`'s recovery.
    service
        .journal
        .checkpoint()
        .await
        .context("cannot sync the blob store")?;
    eprintln!(
        "wrote {} signed image(s) to {}",
        args.count,
        args.out.display()
    );
    Ok(())
}
