//! The provenance subcommands: `verify`, `verify-record`, `rotate-key`, and the PKI part of
//! `init`.

use std::collections::HashMap;

use anyhow::Context as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Settings;
use crate::provenance::keyfile::{self, Passphrase, Protection};
use crate::provenance::pki::{self, SigningIdentity};
use crate::provenance::record::{verify_record, Record};
use crate::provenance::PublicKey;
use crate::store;

#[derive(Debug, clap::Args)]
pub struct VerifyRecordArgs {
    /// Id of the record to check.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<Uuid>,
    /// Check every record.
    #[arg(long)]
    pub all: bool,
}

/// The PKI part of `hallmark init`: creates the CA and signing key unless an operator-supplied
/// identity is configured, and the transparency log's key in any case (encrypted when a key
/// passphrase is configured); with `encrypt_keys`, first rewrites the plaintext keys of the keys
/// directory encrypted. Then checks the identity loads, and returns it.
///
/// # Errors
/// When the keys cannot be created or loaded, or `encrypt_keys` is asked without a passphrase.
pub fn init_keys(settings: &Settings, encrypt_keys: bool) -> anyhow::Result<SigningIdentity> {
    let passphrase = Passphrase::from_settings(settings)?;
    let keys_dir = settings.storage.keys_dir();
    if encrypt_keys {
        let Some(passphrase) = passphrase.as_ref() else {
            anyhow::bail!(
                "--encrypt-key needs a passphrase: set provenance.key_passphrase_file or {}",
                keyfile::PASSPHRASE_ENV
            );
        };
        for path in pki::encrypt_keys(&keys_dir, passphrase)? {
            println!("provenance: encrypted {}", path.display());
        }
    }
    let custom = settings
        .provenance
        .cert_chain
        .as_ref()
        .is_some_and(|p| !p.as_os_str().is_empty());
    if custom {
        println!("provenance: using the configured certificate chain and key");
        let created = pki::init_log_key(&keys_dir, passphrase.as_ref())?;
        println!(
            "transparency log: {} key in {}",
            if created { "created" } else { "kept" },
            settings.storage.keys_dir().display()
        );
    } else {
        let outcome = pki::init_pki(
            &keys_dir,
            pki::signing_cert_days(settings),
            passphrase.as_ref(),
        )?;
        println!(
            "provenance: {} CA, {} signing key {} in {}",
            if outcome.created_ca {
                "created"
            } else {
                "kept"
            },
            if outcome.created_signing_key {
                "created"
            } else {
                "kept"
            },
            outcome.key_id,
            outcome.keys_dir.display()
        );
    }
    for path in plaintext_keys(settings)? {
        println!(
            "provenance: {} is not encrypted{}",
            path.display(),
            if passphrase.is_some() {
                " (`hallmark init --encrypt-key` encrypts it)"
            } else {
                " (set a key passphrase and run `hallmark init --encrypt-key`)"
            }
        );
    }
    Ok(SigningIdentity::load(settings)?)
}

/// The private key files of ours that are stored in plaintext: the keys directory's and the
/// operator's signing key.
///
/// # Errors
/// When a key file exists but cannot be read or holds no PKCS#8 key.
pub fn plaintext_keys(settings: &Settings) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let dir = settings.storage.keys_dir();
    let mut files: Vec<std::path::PathBuf> = pki::PRIVATE_KEY_FILES
        .iter()
        .map(|file| dir.join(file))
        .collect();
    files.extend(
        settings
            .provenance
            .private_key
            .clone()
            .filter(|p| !p.as_os_str().is_empty()),
    );
    let mut plain = Vec::new();
    for path in files {
        if path.exists() && keyfile::protection(&path)? == Protection::Plaintext {
            plain.push(path);
        }
    }
    Ok(plain)
}

/// At `serve`: a warning for each plaintext key while a passphrase is configured (the operator
/// meant them encrypted; `hallmark init --encrypt-key` does it).
///
/// # Errors
/// As [`plaintext_keys`], or when the passphrase cannot be read.
pub fn warn_of_plaintext_keys(settings: &Settings) -> anyhow::Result<()> {
    if Passphrase::from_settings(settings)?.is_some() {
        for path in plaintext_keys(settings)? {
            tracing::warn!(
                key = %path.display(),
                "a key passphrase is configured but this key is not encrypted: run `hallmark init --encrypt-key`"
            );
        }
    }
    Ok(())
}

/// Records the identity's public key in `signing_keys` (the last step of `init`).
///
/// # Errors
/// When the database is unreachable.
pub async fn register_key(pool: &PgPool, identity: &SigningIdentity) -> anyhow::Result<()> {
    crate::store::signing_keys::register(pool, identity)
        .await
        .context("cannot record the signing key in signing_keys")?;
    Ok(())
}

/// `hallmark rotate-key`: a new signing key and certificate from our CA; the old certificate is
/// kept under `keys/retired/` and in `signing_keys`, so older images and records still verify.
///
/// # Errors
/// When the keys cannot be written or the database is unreachable.
pub async fn rotate_key(settings: &Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings
            .provenance
            .cert_chain
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty()),
        "the signing identity is operator-supplied (provenance.cert_chain): rotate it at its CA"
    );
    let pool = store::lazy_pool(&settings.database)?;
    // The old key must be in signing_keys before it is retired, so its records keep verifying.
    if let Ok(old) = SigningIdentity::load(settings) {
        register_key(&pool, &old).await?;
    }
    let rotation = pki::rotate_signing_key(
        &settings.storage.keys_dir(),
        pki::signing_cert_days(settings),
        Passphrase::from_settings(settings)?.as_ref(),
    )?;
    let identity = SigningIdentity::load(settings)?;
    register_key(&pool, &identity).await?;
    println!(
        "signing key rotated: {} -> {} (restart `hallmark serve` to use it)",
        rotation.old_key_id.as_deref().unwrap_or("none"),
        rotation.new_key_id
    );
    Ok(())
}

/// `hallmark verify-record ID|--all`: checks each record's signature with the key its
/// `signing_key_id` names, and prints `OK` or `TAMPERED` per record. Fails when any is tampered.
///
/// Keys come from the keys directory (current and retired) and from `signing_keys`; a key row
/// whose id is not the hash of its public key is ignored, and one unknown to the keys directory
/// is reported.
///
/// # Errors
/// When the database is unreachable, or a record is tampered with.
pub async fn verify_records(settings: &Settings, args: &VerifyRecordArgs) -> anyhow::Result<()> {
    let mut keys: HashMap<String, PublicKey> = pki::service_public_keys(settings)?
        .into_iter()
        .map(|key| (key.id(), key))
        .collect();
    let local = keys.len();
    let pool = store::lazy_pool(&settings.database)?;
    let rows = store::signing_keys::all(&pool)
        .await
        .context("cannot read signing_keys")?;
    for row in rows {
        let id = &row.id;
        match row.key() {
            Some(key) => {
                if keys.insert(id.clone(), key).is_none() && local > 0 {
                    eprintln!(
                        "warning: signing key {id} is in the database but not in {}",
                        settings.storage.keys_dir().display()
                    );
                }
            }
            None => {
                eprintln!("warning: signing_keys row {id} does not match its public key; ignored")
            }
        }
    }
    let (mut ok, mut tampered) = (0u64, 0u64);
    let mut check = |record: &Record| {
        let verdict = match keys.get(&record.fields.signing_key_id) {
            Some(key) => verify_record(record, key).map_err(|e| e.to_string()),
            None => Err(format!(
                "unknown signing key {:?}",
                record.fields.signing_key_id
            )),
        };
        match verdict {
            Ok(()) => {
                ok += 1;
                println!("OK {}", record.fields.id);
            }
            Err(why) => {
                tampered += 1;
                println!("TAMPERED {}: {why}", record.fields.id);
            }
        }
    };
    if let Some(id) = args.id {
        let record = store::records::by_id(&pool, id)
            .await?
            .with_context(|| format!("no record {id}"))?;
        check(&record);
    } else {
        // Keyset pages, so a large registry is neither held in memory nor in one long query.
        let mut after = None;
        loop {
            let page = store::records::page_after(&pool, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.fields.created_at, last.fields.id));
            page.iter().for_each(&mut check);
        }
    }
    eprintln!("{ok} OK, {tampered} TAMPERED");
    anyhow::ensure!(tampered == 0, "{tampered} records failed verification");
    Ok(())
}
