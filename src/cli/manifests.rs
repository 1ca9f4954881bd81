//! Durable Content Credentials on the command line: `hallmark backfill` puts the manifest store
//! of records made before the manifest repository into it, and the ISCC code of records made
//! before `record_iscc` into that; `hallmark resolve FILE` is the Soft Binding Resolution API's
//! client (ours by default, any other by URL).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::config::Settings;
use crate::fingerprint::iscc::ImageCode;
use crate::fingerprint::Fingerprinter;
use crate::provenance::{
    extract_manifest_store, iscc_soft_binding_value, soft_binding_value, ProvenanceVerifier,
    ISCC_SOFT_BINDING_ALG, SOFT_BINDING_ALG,
};
use crate::store::{self, record_iscc, records};

/// `hallmark backfill`.
///
/// # Errors
/// When the database or the blob store cannot be reached.
pub async fn backfill(settings: &Settings) -> anyhow::Result<()> {
    let pool = store::lazy_pool(&settings.database)?;
    let blobs = store::blobs::Blobs::from_settings(&settings.storage)?;
    let (mut done, mut failed) = (0usize, 0usize);
    let mut after = None;
    loop {
        let batch = records::without_manifest(&pool, after, 200).await?;
        let Some(last) = batch.last() else { break };
        after = Some((last.fields.created_at, last.fields.id));
        for record in batch {
            let id = record.fields.id;
            let Some(image) = blobs.get(&record.fields.file_sha256).await? else {
                tracing::error!(%id, "record without its image: no manifest store to extract");
                failed += 1;
                continue;
            };
            let extracted = tokio::task::spawn_blocking(move || extract_manifest_store(&image))
                .await
                .context("extraction panicked")?;
            match extracted {
                Ok(manifest) => {
                    let sha = crate::fingerprint::sha256(&manifest);
                    blobs.put(&sha, manifest.into()).await?;
                    records::set_manifest_sha256(&pool, id, &sha).await?;
                    done += 1;
                }
                Err(error) => {
                    tracing::error!(%id, %error, "cannot extract the manifest store");
                    failed += 1;
                }
            }
        }
    }
    println!("manifest repository: {done} stores added, {failed} records without one");
    backfill_iscc(&pool, &blobs).await
}

/// The ISCC Content-Code Image of every record without one in `record_iscc`, computed from its
/// stored signed image (whose pixels are those of the image signed).
async fn backfill_iscc(pool: &sqlx::PgPool, blobs: &store::blobs::Blobs) -> anyhow::Result<()> {
    let (mut done, mut failed) = (0usize, 0usize);
    let mut after = None;
    loop {
        let batch = record_iscc::missing(pool, after, 200).await?;
        let Some(last) = batch.last() else { break };
        after = Some((last.1, last.0));
        let mut codes = Vec::with_capacity(batch.len());
        for (id, _, file_sha256) in batch {
            let Some(image) = blobs.get(&file_sha256).await? else {
                tracing::error!(%id, "record without its image: no ISCC code to compute");
                failed += 1;
                continue;
            };
            let code = crate::blocking::run(move || ImageCode::of_file(&image))
                .await
                .context("the ISCC code panicked")?;
            match code {
                Ok(code) => codes.push((id, code)),
                Err(error) => {
                    tracing::error!(%id, %error, "cannot compute the ISCC code");
                    failed += 1;
                }
            }
        }
        record_iscc::upsert(pool, &codes).await?;
        done += codes.len();
    }
    println!("ISCC codes ({ISCC_SOFT_BINDING_ALG}): {done} added, {failed} records without one");
    Ok(())
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The image whose Content Credentials to recover (stripped, re-encoded, resized, cropped).
    pub file: PathBuf,
    /// The Soft Binding Resolution API, e.g. `https://hallmark.example.org/c2pa/v1`; default:
    /// this configuration's own service.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// `content`: send the image (`byContent`); `binding`: send only a soft binding of it,
    /// computed here (`byBinding`, the algorithm `--alg` names).
    #[arg(long, default_value = "content")]
    pub by: String,
    /// The soft binding `--by binding` sends: `io.iscc.v0`, the ISCC Content-Code Image (ISO
    /// 24138), listed by the C2PA and so understood by any resolver of that algorithm; or
    /// `org.hallmark.fingerprint.1`, Hallmark's own fingerprint, which only Hallmark resolves
    /// (there it also finds cropped copies).
    #[arg(long, default_value = ISCC_SOFT_BINDING_ALG)]
    pub alg: String,
    /// The signed original, when you have it: the recovered manifest store is validated against
    /// it (else against FILE, whose data hash cannot match if it was changed).
    #[arg(long)]
    pub original: Option<PathBuf>,
    /// Most manifests to fetch.
    #[arg(long, default_value_t = 3)]
    pub max_results: u32,
}

/// `hallmark resolve FILE`: the standard flow (query, fetch the manifest store, validate, print).
///
/// # Errors
/// When the file cannot be read, the endpoint cannot be reached or answers an error.
pub async fn resolve(settings: &Settings, args: &ResolveArgs) -> anyhow::Result<()> {
    let endpoint = args.endpoint.clone().unwrap_or_else(|| {
        format!(
            "http://{}{}",
            settings.server.address(),
            settings.c2pa_api.prefix.trim_end_matches('/')
        )
    });
    let endpoint = endpoint.trim_end_matches('/').to_owned();
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()?;
    let request = match args.by.as_str() {
        "content" => client
            .post(format!("{endpoint}/matches/byContent"))
            .query(&[("maxResults", args.max_results.to_string())])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.clone()),
        "binding" => {
            let (alg, value) = match args.alg.trim() {
                ISCC_SOFT_BINDING_ALG => {
                    let code = ImageCode::of_file(&bytes)
                        .with_context(|| format!("{} does not decode", args.file.display()))?;
                    println!("ISCC Content-Code Image ({ISCC_SOFT_BINDING_ALG}): {code}");
                    (ISCC_SOFT_BINDING_ALG, iscc_soft_binding_value(&code))
                }
                SOFT_BINDING_ALG => {
                    let image = image::load_from_memory(&bytes)
                        .with_context(|| format!("{} does not decode", args.file.display()))?;
                    let value = soft_binding_value(Fingerprinter::new().phash(&image));
                    println!("fingerprint ({SOFT_BINDING_ALG}): {value}");
                    (SOFT_BINDING_ALG, value)
                }
                other => anyhow::bail!(
                    "--alg is {ISCC_SOFT_BINDING_ALG} or {SOFT_BINDING_ALG}, not {other:?}"
                ),
            };
            client.get(format!("{endpoint}/matches/byBinding")).query(&[
                ("alg", alg.to_owned()),
                ("value", value),
                ("maxResults", args.max_results.to_string()),
            ])
        }
        other => anyhow::bail!("--by is content or binding, not {other:?}"),
    };
    let answer = request
        .send()
        .await
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let status = answer.status();
    let body = answer.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "{endpoint}: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let result: serde_json::Value = serde_json::from_slice(&body).context("not JSON")?;
    let matches = result["matches"].as_array().cloned().unwrap_or_default();
    if matches.is_empty() {
        println!("no manifest matches {}", args.file.display());
        return Ok(());
    }
    let verifier = ProvenanceVerifier::from_settings(settings)?;
    let asset = match &args.original {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => bytes,
    };
    for found in matches.iter().take(args.max_results as usize) {
        let Some(id) = found["manifestId"].as_str() else {
            continue;
        };
        let base = found["endpoint"].as_str().unwrap_or(&endpoint);
        println!(
            "match: {id} (similarity {})",
            found["similarityScore"]
                .as_u64()
                .map_or("?".into(), |s| s.to_string())
        );
        let store = client
            .get(format!("{}/manifests/{}", base.trim_end_matches('/'), id))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        println!("manifest store: {} bytes", store.len());
        let report = verifier.verify_with_manifest(&store, &asset);
        print!("{}", report.to_text());
        if args.original.is_none()
            && report
                .failures
                .iter()
                .any(|c| c == "assertion.dataHash.mismatch")
        {
            println!(
                "note: the data hash binds the manifest to the signed original; FILE differs from \
                 it (pass --original to validate against the original)"
            );
        }
    }
    Ok(())
}
