//! The local blob store's write-ahead copy: what makes a generated image's blobs durable without
//! an fsync per file.
//!
//! A generation writes its blobs (the signed image and its manifest store) to the local store
//! without syncing them ([`Blobs::put_unsynced`]) and commits their bytes to `blob_journal` in
//! the same statement as its records (`store::records::insert_generated`). The commit's one WAL
//! flush, which every request pays anyway (and which a group of requests shares), is then all
//! that stands between a generation and its answer: before, each image cost four fsyncs (the
//! file and its directory, for the image and for its manifest store) ahead of the commit, and
//! the file creations and syncs were a third of the service's CPU samples (`perf`, 8
//! connections; `docs/benchmarks.md`).
//!
//! A checkpoint every `storage.blob_sync_interval_ms` (one task per service) takes the hashes of
//! the blobs committed since the last one, syncs the blob directory's file system once
//! ([`Blobs::sync_all`]: file data, new names and new directories) and deletes their journal
//! rows. [`recover`] runs before `hallmark serve` answers: it rewrites every blob still in the
//! journal (a crash or a power cut between a commit and its checkpoint may have lost or
//! truncated the file), syncs, and deletes the rows.
//!
//! Invariant: a blob's journal row is deleted only after a sync that began after the blob was
//! written, so every committed blob is at all times durable in the journal, in the file, or in
//! both. On S3 ([`Blobs::needs_journal`] is false) a put is durable when acknowledged and
//! nothing is journaled. The local backend serves one machine: replicas share an S3 bucket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sqlx::PgPool;

use super::blobs::{BlobError, Blobs};

/// Journal rows rewritten per round of [`recover`].
const RECOVERY_PAGE: i64 = 256;

/// Why a checkpoint or a recovery failed (its rows stay, for the next one).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the blob store failed: {0}")]
    Blobs(#[from] BlobError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Hashes of the blobs committed since the last checkpoint, shared by the requests that commit
/// them and the checkpoint task; cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobJournal {
    pool: PgPool,
    blobs: Blobs,
    pending: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl BlobJournal {
    /// The journal of this store. Its checkpoints run once [`BlobJournal::spawn`] is called.
    #[must_use]
    pub fn new(pool: PgPool, blobs: Blobs) -> Self {
        Self {
            pool,
            blobs,
            pending: Arc::default(),
        }
    }

    /// Whether writes to this store must be journaled (the local backend).
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.blobs.needs_journal()
    }

    /// Notes blobs whose journal rows have just committed; the next checkpoint syncs them and
    /// deletes the rows. Nothing to note when the store needs no journal.
    pub fn committed(&self, hashes: impl IntoIterator<Item = Vec<u8>>) {
        if !self.enabled() {
            return;
        }
        if let Ok(mut pending) = self.pending.lock() {
            pending.extend(hashes);
        }
    }

    /// Blobs committed and not yet covered by a checkpoint.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending.lock().map_or(0, |pending| pending.len())
    }

    /// Syncs the blob store and deletes the journal rows of every blob noted before the sync
    /// began; returns how many. On failure they stay noted for the next checkpoint.
    ///
    /// # Errors
    /// When the sync or the delete fails.
    pub async fn checkpoint(&self) -> Result<usize, JournalError> {
        let taken = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return Ok(0),
        };
        if taken.is_empty() {
            return Ok(0);
        }
        let result = async {
            self.blobs.sync_all().await?;
            delete(&self.pool, &taken).await?;
            Ok(taken.len())
        }
        .await;
        if result.is_err() {
            if let Ok(mut pending) = self.pending.lock() {
                pending.extend(taken);
            }
        }
        result
    }

    /// Runs a checkpoint every `interval` on the current tokio runtime until the pool closes.
    pub fn spawn(&self, interval: Duration) {
        if !self.enabled() {
            return;
        }
        let journal = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !journal.pool.is_closed() {
                ticks.tick().await;
                metrics::gauge!("hallmark_blob_journal_pending").set(journal.pending() as f64);
                match journal.checkpoint().await {
                    Ok(0) => {}
                    Ok(synced) => {
                        metrics::counter!("hallmark_blob_journal_synced_total")
                            .increment(synced as u64);
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, pending = journal.pending(), "blob journal checkpoint failed; retrying");
                    }
                }
            }
        });
    }
}

/// Deletes the journal rows of these blobs.
async fn delete(pool: &PgPool, hashes: &[Vec<u8>]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM blob_journal WHERE sha256 = ANY($1)")
        .bind(hashes)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Rewrites every blob left in the journal (by a crash or a power cut before its checkpoint)
/// from its journaled bytes, syncs, and deletes the rows; returns how many. Run before the
/// service answers (`hallmark serve`); a no-op on S3 and on an empty journal.
///
/// # Errors
/// When the store or the database fails; the rows not yet rewritten stay.
#[tracing::instrument(skip_all)]
pub async fn recover(pool: &PgPool, blobs: &Blobs) -> Result<usize, JournalError> {
    if !blobs.needs_journal() {
        return Ok(0);
    }
    let mut recovered = 0;
    let mut after: Vec<u8> = Vec::new();
    loop {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT sha256, bytes FROM blob_journal WHERE sha256 > $1 ORDER BY sha256 LIMIT $2",
        )
        .bind(&after)
        .bind(RECOVERY_PAGE)
        .fetch_all(pool)
        .await?;
        let Some((last, _)) = rows.last() else {
            break;
        };
        after.clone_from(last);
        let mut hashes = Vec::with_capacity(rows.len());
        for (sha256, bytes) in rows {
            blobs.put_unsynced(&sha256, Bytes::from(bytes)).await?;
            hashes.push(sha256);
        }
        blobs.sync_all().await?;
        delete(pool, &hashes).await?;
        recovered += hashes.len();
    }
    if recovered > 0 {
        tracing::warn!(
            blobs = recovered,
            "rewrote blobs a crash left only in the blob journal"
        );
    }
    Ok(recovered)
}
