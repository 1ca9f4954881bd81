//! The transparency log's tables (`src/tlog/`): entries waiting for integration, the log's
//! entries, its Merkle hashes and its checkpoints.

use std::collections::HashMap;

use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::provenance::record::RECORD_COLUMNS;

/// The advisory lock whose holder integrates: one sequencer at a time, whatever the replicas.
const SEQUENCER_LOCK: i64 = 0x686c_6d6b_746c_6f67; // "hlmktlog"

/// A checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredCheckpoint {
    pub size: i64,
    pub root: Vec<u8>,
    pub note: String,
    /// When the sequencer signed it.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// An entry waiting for the sequencer.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pending {
    pub seq: i64,
    pub record_id: Uuid,
    pub entry: Vec<u8>,
    /// When its record committed.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// An entry of the log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    pub idx: i64,
    pub record_id: Uuid,
    pub entry: Vec<u8>,
}

/// Hands entries to the sequencer inside the caller's transaction (the records' own).
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all, fields(entries = entries.len()))]
pub async fn append_pending(
    tx: &mut Transaction<'_, Postgres>,
    entries: &[(Uuid, Vec<u8>)],
) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = entries.iter().map(|(id, _)| *id).collect();
    let bytes: Vec<Vec<u8>> = entries.iter().map(|(_, e)| e.clone()).collect();
    // WITH ORDINALITY keeps the records' order in the sequence numbers.
    sqlx::query(
        "INSERT INTO log_pending (record_id, entry)
         SELECT record_id, entry FROM UNNEST($1::uuid[], $2::bytea[])
             WITH ORDINALITY AS t(record_id, entry, n) ORDER BY n",
    )
    .bind(&ids)
    .bind(&bytes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes the sequencer's lock for the rest of the transaction; `false` when another
/// transaction holds it.
///
/// # Errors
/// When the database fails.
pub async fn try_lock_sequencer(tx: &mut Transaction<'_, Postgres>) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SEQUENCER_LOCK)
        .fetch_one(&mut **tx)
        .await
}

/// The checkpoint of the largest tree.
///
/// # Errors
/// When the database fails.
pub async fn latest_checkpoint<'c>(
    db: impl PgExecutor<'c>,
) -> Result<Option<StoredCheckpoint>, sqlx::Error> {
    sqlx::query_as(
        "SELECT size, root, note, created_at FROM log_checkpoints ORDER BY size DESC LIMIT 1",
    )
    .fetch_optional(db)
    .await
}

/// The largest checkpointed tree size below `size`.
///
/// # Errors
/// When the database fails.
pub async fn checkpoint_size_before(pool: &PgPool, size: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(size) FROM log_checkpoints WHERE size < $1")
        .bind(size)
        .fetch_one(pool)
        .await
}

/// Every checkpoint, smallest tree first.
///
/// # Errors
/// When the database fails.
pub async fn checkpoints(pool: &PgPool) -> Result<Vec<StoredCheckpoint>, sqlx::Error> {
    sqlx::query_as("SELECT size, root, note, created_at FROM log_checkpoints ORDER BY size")
        .fetch_all(pool)
        .await
}

/// The oldest pending entries, at most `limit`.
///
/// # Errors
/// When the database fails.
pub async fn pending(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<Pending>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, record_id, entry, created_at FROM log_pending ORDER BY seq LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// The stored hashes at these indices (those that exist).
///
/// # Errors
/// When the database fails.
pub async fn hashes<'c>(
    db: impl PgExecutor<'c>,
    indices: &[u64],
) -> Result<HashMap<u64, [u8; 32]>, sqlx::Error> {
    let wanted: Vec<i64> = indices
        .iter()
        .filter_map(|&i| i64::try_from(i).ok())
        .collect();
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT idx, hash FROM log_hashes WHERE idx = ANY($1)")
            .bind(&wanted)
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(i, h)| Some((u64::try_from(i).ok()?, <[u8; 32]>::try_from(h).ok()?)))
        .collect())
}

/// Every stored hash, by index.
///
/// # Errors
/// When the database fails.
pub async fn all_hashes(pool: &PgPool) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT idx, hash FROM log_hashes ORDER BY idx")
        .fetch_all(pool)
        .await
}

/// Integrates: the new entries from index `first`, their hashes, the checkpoint; removes the
/// pending rows they came from. Inside the sequencer's transaction.
///
/// # Errors
/// When the database fails (a duplicate index or record means another sequencer: the
/// transaction must roll back).
#[tracing::instrument(skip_all, fields(entries = pending.len()))]
pub async fn integrate(
    tx: &mut Transaction<'_, Postgres>,
    first: i64,
    pending: &[Pending],
    new_hashes: &[(i64, Vec<u8>)],
    checkpoint: &StoredCheckpoint,
) -> Result<(), sqlx::Error> {
    let idx: Vec<i64> = (0..pending.len())
        .map(|i| first + i64::try_from(i).unwrap_or(i64::MAX))
        .collect();
    let ids: Vec<Uuid> = pending.iter().map(|p| p.record_id).collect();
    let entries: Vec<Vec<u8>> = pending.iter().map(|p| p.entry.clone()).collect();
    let seqs: Vec<i64> = pending.iter().map(|p| p.seq).collect();
    let queued: Vec<chrono::DateTime<chrono::Utc>> = pending.iter().map(|p| p.created_at).collect();
    sqlx::query(
        "INSERT INTO log_entries (idx, record_id, entry, queued_at)
         SELECT * FROM UNNEST($1::int8[], $2::uuid[], $3::bytea[], $4::timestamptz[])",
    )
    .bind(&idx)
    .bind(&ids)
    .bind(&entries)
    .bind(&queued)
    .execute(&mut **tx)
    .await?;
    let (hash_idx, hashes): (Vec<i64>, Vec<Vec<u8>>) = new_hashes.iter().cloned().unzip();
    sqlx::query("INSERT INTO log_hashes (idx, hash) SELECT * FROM UNNEST($1::int8[], $2::bytea[])")
        .bind(&hash_idx)
        .bind(&hashes)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM log_pending WHERE seq = ANY($1)")
        .bind(&seqs)
        .execute(&mut **tx)
        .await?;
    insert_checkpoint(tx, checkpoint).await
}

/// Appends witness cosignature lines to the stored checkpoint of `size`, unless its note is no
/// longer `note` (another replica added some meanwhile: the next round asks again); whether it
/// did.
///
/// # Errors
/// When the database fails.
pub async fn add_cosignatures(
    pool: &PgPool,
    size: i64,
    note: &str,
    lines: &str,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE log_checkpoints SET note = note || $3 WHERE size = $1 AND note = $2")
            .bind(size)
            .bind(note)
            .bind(lines)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores a checkpoint (the sequencer's, inside its transaction).
///
/// # Errors
/// When the database fails.
pub async fn insert_checkpoint(
    tx: &mut Transaction<'_, Postgres>,
    checkpoint: &StoredCheckpoint,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO log_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(checkpoint.size)
    .bind(&checkpoint.root)
    .bind(&checkpoint.note)
    .bind(checkpoint.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records with neither an entry nor a pending one (made before the log), oldest first, at most
/// `limit`. Inside the sequencer's transaction, so none can be integrated meanwhile.
///
/// # Errors
/// When the database fails.
pub async fn unlogged_records(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<crate::provenance::Record>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM records r
         WHERE NOT EXISTS (SELECT 1 FROM log_entries e WHERE e.record_id = r.id)
           AND NOT EXISTS (SELECT 1 FROM log_pending p WHERE p.record_id = r.id)
         ORDER BY created_at, id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Entries `start..end` of the log, in order.
///
/// # Errors
/// When the database fails.
pub async fn entries(pool: &PgPool, start: i64, end: i64) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT idx, record_id, entry FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
    )
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await
}

/// A record's index in the log, once integrated.
///
/// # Errors
/// When the database fails.
pub async fn index_of(pool: &PgPool, record_id: Uuid) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT idx FROM log_entries WHERE record_id = $1")
        .bind(record_id)
        .fetch_optional(pool)
        .await
}

/// A record's index in the log, and whether its entry waits for integration, read in one
/// snapshot (an integration moves an entry from pending to the log in one transaction, so two
/// separate reads could miss it in both places).
///
/// # Errors
/// When the database fails.
pub async fn position(pool: &PgPool, record_id: Uuid) -> Result<(Option<i64>, bool), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT idx FROM log_entries WHERE record_id = $1),
                EXISTS (SELECT 1 FROM log_pending WHERE record_id = $1)",
    )
    .bind(record_id)
    .fetch_one(pool)
    .await
}
