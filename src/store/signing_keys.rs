//! `signing_keys`: every Ed25519 key that has signed records, with its certificate chain.

use sqlx::PgPool;

use crate::provenance::pki::SigningIdentity;

/// Records `identity`'s public key and chain in `signing_keys` (once) and marks every other key
/// as retired, so the table lists every key that ever signed and which one is current.
///
/// # Errors
/// When the database is unreachable.
#[tracing::instrument(skip_all)]
pub async fn register(pool: &PgPool, identity: &SigningIdentity) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO signing_keys (id, public_key, cert_chain_pem) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(identity.key_id())
    .bind(identity.verifying_key().as_bytes().as_slice())
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

/// Every registered key: `(id, raw 32-byte public key)`.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn all(pool: &PgPool) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT id, public_key FROM signing_keys")
        .fetch_all(pool)
        .await
}
