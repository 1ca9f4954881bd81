//! `signing_keys`: every key that has signed records (Ed25519, ES256 or ES384), with its
//! certificate chain.

use sqlx::PgPool;

use crate::provenance::pki::SigningIdentity;
use crate::provenance::{Algorithm, PublicKey};

/// Records `identity`'s public key and chain in `signing_keys` (once) and marks every other key
/// as retired, so the table lists every key that ever signed and which one is current.
///
/// # Errors
/// When the database is unreachable.
#[tracing::instrument(skip_all)]
pub async fn register(pool: &PgPool, identity: &SigningIdentity) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO signing_keys (id, algorithm, public_key, cert_chain_pem) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
    )
    .bind(identity.key_id())
    .bind(identity.public_key().algorithm().as_str())
    .bind(identity.public_key().to_bytes())
    .bind(identity.cert_chain_pem())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    sqlx::query("UPDATE signing_keys SET retired_at = now() WHERE id <> $1 AND retired_at IS NULL")
        .bind(identity.key_id())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE signing_keys SET retired_at = NULL WHERE id = $1")
        .bind(identity.key_id())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(inserted)
}

/// A `signing_keys` row's key: its algorithm and raw public key, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredKey {
    pub id: String,
    pub algorithm: String,
    pub public_key: Vec<u8>,
}

impl StoredKey {
    /// The key the row holds, when it is well formed and its id is the hash of its key.
    #[must_use]
    pub fn key(&self) -> Option<PublicKey> {
        let algorithm: Algorithm = self.algorithm.parse().ok()?;
        PublicKey::from_bytes(algorithm, &self.public_key)
            .ok()
            .filter(|key| key.id() == self.id)
    }
}

/// Every registered key.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn all(pool: &PgPool) -> Result<Vec<StoredKey>, sqlx::Error> {
    sqlx::query_as("SELECT id, algorithm, public_key FROM signing_keys")
        .fetch_all(pool)
        .await
}
