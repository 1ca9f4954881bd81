//! `hallmark zoo train` and `hallmark zoo list`: the generator zoo the detector is trained and
//! evaluated against ([`crate::gan::zoo`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::gan::{device, FASHION_MNIST_DIR};
use crate::config::Settings;
use crate::gan::data::Dataset;
use crate::gan::zoo::{self, Family, ZooTrainConfig};

/// The zoo's default directory under the models directory.
pub const ZOO_DIR: &str = "zoo";

#[derive(Debug, Subcommand)]
pub enum ZooCommand {
    /// Train small generators of several families (two checkpoints each) on the real training
    /// split, into <models dir>/zoo.
    Train(ZooTrainArgs),
    /// List the zoo's members and their cards.
    List {
        /// Zoo directory; default: <models dir>/zoo.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ZooTrainArgs {
    /// Zoo directory; default: <models dir>/zoo.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Fashion-MNIST IDX directory (its train split is used) or a folder of images.
    #[arg(long, default_value = FASHION_MNIST_DIR)]
    pub dataset: PathBuf,
    /// Families to train (comma-separated); default: all of tconv, nearest, pixelshuffle,
    /// vae, mlp.
    #[arg(long, value_delimiter = ',')]
    pub families: Vec<String>,
    /// Steps per family; the early checkpoint is at a quarter of them.
    #[arg(long, default_value_t = 1600)]
    pub steps: u64,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Channels of each generator's narrowest convolution.
    #[arg(long, default_value_t = 16)]
    pub width: u32,
    #[arg(long, default_value_t = 64)]
    pub latent_dim: u32,
    /// Image size (a power of two); Fashion-MNIST is padded to it.
    #[arg(long, default_value_t = 32)]
    pub image_size: u32,
    #[arg(long, default_value_t = 1)]
    pub channels: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Name the members `<family>-<TAG>-early|late|ema` (lowercase letters and digits), so a run
    /// with other settings (e.g. a wider, longer-trained tier) adds members beside the default
    /// ones instead of replacing them.
    #[arg(long)]
    pub tag: Option<String>,
    /// Also save the exponential moving average of each GAN generator's weights with this decay
    /// as member `<family>[-<tag>]-ema` (the served model is such an average; e.g. 0.999).
    #[arg(long)]
    pub ema: Option<f64>,
    #[arg(long)]
    pub device: Option<String>,
    /// CPU threads for torch; default: torch's choice.
    #[arg(long)]
    pub threads: Option<i32>,
    /// Hide the progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The zoo directory: `--dir`, or `<models dir>/zoo`.
#[must_use]
pub fn zoo_dir(settings: &Settings, dir: Option<&PathBuf>) -> PathBuf {
    dir.cloned()
        .unwrap_or_else(|| settings.model.dir.join(ZOO_DIR))
}

/// `hallmark zoo ...`.
///
/// # Errors
/// Bad arguments, unreadable data, file errors, torch failures.
pub fn run(settings: &Settings, command: ZooCommand) -> anyhow::Result<()> {
    match command {
        ZooCommand::Train(args) => train(settings, &args),
        ZooCommand::List { dir } => {
            let dir = zoo_dir(settings, dir.as_ref());
            for member in zoo::member_dirs(&dir)? {
                let card = zoo::MemberCard::load(&member.join(zoo::MEMBER_CARD))?;
                println!(
                    "{:<20} {:<13} {:>5} steps {:>7.1} s  {}",
                    card.name, card.family, card.steps, card.training_time_s, card.how
                );
            }
            Ok(())
        }
    }
}

fn train(settings: &Settings, args: &ZooTrainArgs) -> anyhow::Result<()> {
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    let device = device(settings, args.device.as_deref())?;
    let families = if args.families.is_empty() {
        Family::ALL.to_vec()
    } else {
        args.families
            .iter()
            .map(|f| Family::parse(f.trim()))
            .collect::<Result<Vec<_>, _>>()?
    };
    // An IDX directory gives its train split, never the test split.
    let dataset = Dataset::open(&args.dataset, args.image_size, args.channels)?;
    let dir = zoo_dir(settings, args.dir.as_ref());
    let config = ZooTrainConfig {
        families,
        steps: args.steps,
        batch_size: args.batch_size,
        width: args.width,
        latent_dim: args.latent_dim,
        seed: args.seed,
        tag: args.tag.clone(),
        ema_decay: args.ema,
        progress: !args.quiet,
    };
    eprintln!(
        "training {} zoo families for {} steps each on {} ({} images) into {}",
        config.families.len(),
        config.steps,
        dataset.description,
        dataset.len(),
        dir.display()
    );
    for card in zoo::train_zoo(&dataset, &dir, &config, device)? {
        println!(
            "{:<20} {:>5} steps {:>7.1} s  sha256 {}",
            card.name, card.steps, card.training_time_s, card.weights_sha256
        );
    }
    println!("overview: {}", dir.join(zoo::ZOO_GRID).display());
    Ok(())
}
