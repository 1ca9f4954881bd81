//! The transparency log's tools: `log verify`, `log proof`, `log key`, `log backfill`, and
//! `log monitor` (of any log served over HTTP; it needs neither the database nor the keys).

use anyhow::Context as _;
use uuid::Uuid;

use crate::config::Settings;
use crate::store;
use crate::tlog::monitor::Monitor;
use crate::tlog::{audit, Log, ProofState};

#[derive(Debug, clap::Subcommand)]
pub enum LogCommand {
    /// Rebuild the tree from the stored entries; check every stored hash, every checkpoint's
    /// signature and root, each checkpoint's consistency with the one before, and every entry
    /// against its record row (a deleted or edited record is reported). Exit 1 on any problem.
    Verify {
        /// The C2SP verifier key to check checkpoints with (`origin+keyid+base64`); by default
        /// the key in the keys directory. Pin the published one to audit the operator too.
        #[arg(long)]
        key: Option<String>,
    },
    /// Print a record's offline inclusion proof (c2sp.org/tlog-proof@v1).
    Proof {
        /// The record's id.
        record_id: Uuid,
    },
    /// Print the log's C2SP verifier key.
    Key,
    /// Hand the records made before the log to it (they join at its end, in creation order,
    /// with the next checkpoints). Safe to run again, and with the service running.
    Backfill,
    /// Watch a log served over HTTP: check its checkpoint's signature with the pinned key, its
    /// consistency (through hash tiles it fetches) with the last checkpoint seen (kept in
    /// `--state`), and each `--record`'s inclusion. Exit 1 on any inconsistency.
    Monitor {
        /// The service's base URL, e.g. `https://hallmark.example.org`.
        url: String,
        /// The log's C2SP verifier key (`origin+keyid+base64`), pinned out of band.
        #[arg(long)]
        key: String,
        /// A file holding the last checkpoint seen (created when missing).
        #[arg(long)]
        state: Option<std::path::PathBuf>,
        /// A record whose inclusion to check (repeatable).
        #[arg(long = "record")]
        records: Vec<Uuid>,
        /// One round, then exit; otherwise a round every `--interval-s` seconds until a problem.
        #[arg(long)]
        once: bool,
        #[arg(long, default_value_t = 60)]
        interval_s: u64,
    },
    /// Run a witness (c2sp.org/tlog-witness): answer `POST /add-checkpoint` for the logs named
    /// by `--log`, cosigning (c2sp.org/tlog-cosignature) each checkpoint that is signed by the
    /// log and consistent with the last one cosigned. Prints its verifier key, then serves.
    Witness {
        /// The witness's name, its cosignatures' key name (e.g. `witness.example.org/w1`).
        #[arg(long)]
        name: String,
        /// Its Ed25519 key (PKCS#8 PEM), created when missing.
        #[arg(long)]
        key: std::path::PathBuf,
        /// A log to witness: its C2SP verifier key (repeatable).
        #[arg(long = "log", required = true)]
        logs: Vec<String>,
        /// The file that keeps the latest tree head cosigned for each log.
        #[arg(long)]
        state: std::path::PathBuf,
        /// The address to listen on (port 0: any free port; the chosen one is printed).
        #[arg(long, default_value = "127.0.0.1:7380")]
        listen: String,
    },
}

/// `hallmark log ...`.
///
/// # Errors
/// When the database or the keys cannot be read, the audit finds a problem, or the record has
/// no proof yet.
pub async fn run(settings: &Settings, command: LogCommand) -> anyhow::Result<()> {
    // The monitor needs neither the database nor the keys: it may run anywhere.
    let open = || -> anyhow::Result<(sqlx::PgPool, Log)> {
        let pool = store::lazy_pool(&settings.database)?;
        let blobs = store::blobs::Blobs::from_settings(&settings.storage)?;
        let log = Log::from_settings(settings, pool.clone(), blobs)?;
        Ok((pool, log))
    };
    match command {
        LogCommand::Monitor {
            url,
            key,
            state,
            records,
            once,
            interval_s,
        } => {
            let monitor = Monitor {
                base: url.trim_end_matches('/').to_owned(),
                verifier_key: key,
                state,
                records,
            };
            watch(&monitor, once, interval_s).await
        }
        LogCommand::Witness {
            name,
            key,
            logs,
            state,
            listen,
        } => {
            let (key, created) = crate::provenance::pki::load_or_create_key(
                &key,
                crate::provenance::keyfile::Passphrase::from_settings(settings)?.as_ref(),
            )?;
            let signer = crate::tlog::witness::CosignatureSigner::new(&name, key)?;
            let witness = crate::tlog::witness::Witness::new(signer, &logs, &state)?;
            let listener = std::net::TcpListener::bind(&listen)
                .with_context(|| format!("cannot listen on {listen}"))?;
            println!("witness {}", witness.verifier_key());
            if created {
                println!("created a new witness key");
            }
            println!("listening on http://{}", listener.local_addr()?);
            std::io::Write::flush(&mut std::io::stdout())?;
            crate::api::witness::serve(std::sync::Arc::new(witness), listener).await?;
            Ok(())
        }
        LogCommand::Verify { key } => {
            let (pool, log) = open()?;
            let key = key.unwrap_or_else(|| log.signer().verifier_key());
            let report = audit::audit(&pool, &key, &settings.transparency_log.origin).await?;
            for problem in &report.problems {
                println!("PROBLEM {problem}");
            }
            println!(
                "{} entries, {} checkpoints, {} problems",
                report.entries,
                report.checkpoints,
                report.problems.len()
            );
            anyhow::ensure!(
                report.is_clean(),
                "the transparency log does not verify: {} problems",
                report.problems.len()
            );
            println!("OK");
            Ok(())
        }
        LogCommand::Proof { record_id } => match open()?.1.proof(record_id).await? {
            ProofState::Integrated(proof, _) => {
                print!("{}", proof.to_text());
                Ok(())
            }
            ProofState::Pending => {
                anyhow::bail!("record {record_id} waits for the next checkpoint: try again")
            }
            ProofState::NotLogged => anyhow::bail!("record {record_id} is not in the log"),
        },
        LogCommand::Backfill => {
            let (_, log) = open()?;
            let mut total = 0;
            loop {
                match log.backfill_once().await? {
                    Some(0) => break,
                    Some(count) => total += count,
                    // A running service is integrating: its lock is held only for a moment.
                    None => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            }
            println!("{total} records handed to the transparency log");
            Ok(())
        }
        LogCommand::Key => {
            println!("{}", open()?.1.signer().verifier_key());
            Ok(())
        }
    }
}

/// Runs monitor rounds: one with `once`, else one every `interval_s` seconds until one fails.
async fn watch(monitor: &Monitor, once: bool, interval_s: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    loop {
        for line in monitor.round(&client).await? {
            println!("{line}");
        }
        println!("OK");
        if once {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(interval_s.max(1))).await;
    }
}
