//! `hallmark verify FILE...` and `hallmark detect FILE...`: the service's checks, offline.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::config::Settings;
use crate::detect::detector::Detection;
use crate::device::DeviceChoice;
use crate::inference::Inference;
use crate::inference::ServedModel;
use crate::registry::Registry;
use crate::store::blobs::Blobs;
use crate::verify::{CheckKind, VerifyReport, VerifyService};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Image files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print a JSON array of `{file, report}` (or `{file, error}`) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Skip the registry even when the configured database is reachable.
    #[arg(long)]
    pub offline: bool,
    /// Skip the detector (no model is loaded).
    #[arg(long)]
    pub no_detector: bool,
    /// Print the one FILE's C2PA manifest store as crJSON (c2pa-rs's, validated with the
    /// configured trust lists), the validator output the C2PA Conformance Program's asset rubrics
    /// judge; no registry or detector.
    #[arg(long, conflicts_with_all = ["json", "offline", "no_detector"])]
    pub crjson: bool,
}

#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// Image files to score.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print a JSON array of `{file, detection}` (or `{file, error}`) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The configured database, if it answers within a few seconds.
async fn registry_pool(settings: &Settings) -> Option<PgPool> {
    let options = settings.database.connect_options().ok()?;
    match PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options)
        .await
    {
        Ok(pool) => Some(pool),
        Err(error) => {
            tracing::warn!(%error, "database not reachable: checking without the registry");
            None
        }
    }
}

fn start_model(settings: &Settings) -> anyhow::Result<Inference> {
    let device = settings.model.device.parse::<DeviceChoice>()?.resolve()?;
    let (dir, name) = (settings.model.dir.clone(), settings.model.name.clone());
    Inference::start(&settings.model, device, &settings.limits, move || {
        ServedModel::load(&dir, &name, device)
    })
    .with_context(|| format!("cannot load model {:?}", settings.model.name))
}

fn report_text(report: &VerifyReport) -> String {
    let mut text = format!(
        "verdict: {}{}\n",
        report.verdict.as_str(),
        if report.tampered { " (tampered)" } else { "" }
    );
    for line in &report.explanation {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&report.provenance.to_text());
    text
}

/// Runs the full check on each file. Fails when a file cannot be read or checked, or carries
/// tampered credentials.
///
/// # Errors
/// As above, or when the verifier or the model cannot be loaded.
pub async fn verify(settings: &Settings, args: &VerifyArgs) -> anyhow::Result<()> {
    if args.crjson {
        return print_crjson(settings, args).await;
    }
    let registry = if args.offline {
        None
    } else {
        match registry_pool(settings).await {
            // One-shot: the candidates come from PostgreSQL's multi-index search, not from an
            // in-memory index that would first load every hash.
            Some(pool) => Some(Registry {
                pool,
                blobs: Blobs::from_settings(&settings.storage)
                    .context("cannot open the blob store")?,
                index: None,
            }),
            None => None,
        }
    };
    let inference = if args.no_detector {
        None
    } else {
        Some(start_model(settings)?)
    };
    let service = VerifyService::from_settings(settings, registry, inference)?;
    // Trust lists at URLs are fetched once for this run.
    service.trust().reload_all().await;
    let mut out = std::io::stdout().lock();
    let mut results = Vec::new();
    let mut failed = 0;
    for path in &args.files {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        match service.check(bytes, name, CheckKind::Full).await {
            Ok((report, _)) => {
                if report.tampered {
                    failed += 1;
                }
                if !args.json {
                    // writeln!, not println!: a closed pipe (`| head`) is an error, not a panic.
                    writeln!(out, "== {}\n{}", path.display(), report_text(&report))?;
                }
                results.push(serde_json::json!({ "file": path, "report": report }));
            }
            Err(error) => {
                failed += 1;
                // The same stable codes the HTTP API answers with.
                let error = crate::api::error::ApiError::from(error);
                if !args.json {
                    writeln!(out, "== {}\nrefused: {error}\n", path.display())?;
                }
                results.push(serde_json::json!({
                    "file": path,
                    "error": { "code": error.code(), "message": error.message() },
                }));
            }
        }
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&results)?)?;
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} files were refused or carry tampered credentials",
        args.files.len()
    );
    Ok(())
}

/// `verify --crjson FILE`.
async fn print_crjson(settings: &Settings, args: &VerifyArgs) -> anyhow::Result<()> {
    let [path] = args.files.as_slice() else {
        anyhow::bail!("--crjson takes one file");
    };
    let service = VerifyService::from_settings(settings, None, None)?;
    service.trust().reload_all().await;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let document = service.crjson(bytes).await.map_err(|error| {
        anyhow::anyhow!(
            "{}: {}",
            path.display(),
            crate::api::error::ApiError::from(error)
        )
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
    Ok(())
}

/// Scores each file with the served model's calibrated detector.
///
/// # Errors
/// When a file cannot be read or decoded, or the model has no detector.
pub async fn detect(settings: &Settings, args: &DetectArgs) -> anyhow::Result<()> {
    let inference = start_model(settings)?;
    anyhow::ensure!(
        inference.info().has_detector,
        "model {:?} has no calibrated detector; run `hallmark train-detector` first",
        inference.info().name
    );
    let mut out = std::io::stdout().lock();
    let mut results = Vec::new();
    let mut failed = 0;
    for path in &args.files {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let limits = settings.limits.clone();
        let upload =
            tokio::task::spawn_blocking(move || crate::verify::upload::inspect(&bytes, &limits))
                .await?;
        let outcome: Result<Detection, String> = match upload {
            Ok(upload) => inference
                .detect(vec![upload.image])
                .await
                .map_err(|e| e.to_string())
                .and_then(|mut d| d.pop().ok_or_else(|| "no score".to_owned())),
            Err(error) => Err(error.to_string()),
        };
        match outcome {
            Ok(detection) => {
                if !args.json {
                    let verdict = match (detection.out_of_domain, detection.probability) {
                        (true, _) => format!(
                            "out of domain: {}",
                            detection.out_of_domain_reason.as_deref().unwrap_or("-")
                        ),
                        (false, Some(p)) => format!(
                            "P(synthetic) = {p:.4} (threshold {:.4}): {}",
                            detection.threshold,
                            if detection.likely_synthetic {
                                "likely synthetic"
                            } else {
                                "not flagged"
                            }
                        ),
                        (false, None) => "no score".to_owned(),
                    };
                    writeln!(out, "{}: {verdict}", path.display())?;
                }
                results.push(serde_json::json!({ "file": path, "detection": detection }));
            }
            Err(error) => {
                failed += 1;
                if !args.json {
                    writeln!(out, "{}: refused: {error}", path.display())?;
                }
                results.push(serde_json::json!({ "file": path, "error": error }));
            }
        }
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&results)?)?;
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} files could not be scored",
        args.files.len()
    );
    Ok(())
}
