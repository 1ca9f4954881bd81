//! The log as the service runs it: integration of pending entries (one sequencer at a time,
//! elected by an advisory lock), publication of tiles to the blob store, and what the HTTP
//! layer serves (checkpoint, tiles, proofs).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sqlx::PgPool;
use tlog_tiles::{prove_record, stored_hash_index, stored_hashes, sub_tree_index, tree_hash, Hash};
use uuid::Uuid;

use super::hashes::StoredHashes;
use super::note::LogSigner;
use super::proof::InclusionProof;
use super::tiles::{entry_bundle, new_tiles, TilePath};
use super::witness::{Submission, WitnessClient};
use super::LogError;
use crate::config::{Settings, TransparencyLogSettings};
use crate::store::blobs::Blobs;
use crate::store::log::{self as store, StoredCheckpoint};

/// Where the log's static files go in the blob store.
const BLOB_PREFIX: &str = "log/";

/// What one integration round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integration {
    /// Another sequencer holds the lock: this round is its.
    Busy,
    /// Nothing was pending.
    Idle,
    /// The tree grew from `old` to `new` entries and a checkpoint was signed.
    Integrated { old: u64, new: u64 },
}

/// Where a record stands in the log.
#[derive(Debug, Clone, PartialEq)]
pub enum ProofState {
    /// The proof, and when its checkpoint was signed.
    Integrated(InclusionProof, chrono::DateTime<chrono::Utc>),
    /// Handed to the sequencer, not yet in a checkpoint.
    Pending,
    /// Not in the log: a record made before the log existed, until `hallmark log backfill`
    /// hands it over ([`Log::backfill_once`]).
    NotLogged,
}

/// The transparency log of one service (or command).
#[derive(Debug)]
pub struct Log {
    pool: PgPool,
    blobs: Blobs,
    signer: LogSigner,
    interval: Duration,
    batch_size: i64,
    /// Fired after each integration this log commits (see [`Log::wait_for_proofs`]).
    integrated: tokio::sync::Notify,
    /// Witnesses asked to cosign each new checkpoint.
    witnesses: Vec<WitnessClient>,
}

impl Log {
    /// The log with the key `hallmark init` made and the `[transparency_log]` settings.
    ///
    /// # Errors
    /// When the key is missing or unreadable, or the origin cannot name a key.
    pub fn from_settings(
        settings: &Settings,
        pool: PgPool,
        blobs: Blobs,
    ) -> Result<Self, LogError> {
        let key = crate::provenance::pki::load_log_key(settings)
            .map_err(|error| LogError::Key(error.to_string()))?;
        let signer = LogSigner::new(&settings.transparency_log.origin, key)?;
        let log = &settings.transparency_log;
        let timeout = Duration::from_millis(log.witness_timeout_ms.max(1));
        let witnesses = log
            .witnesses
            .iter()
            .map(|w| WitnessClient::new(&w.url, &w.key, timeout))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(pool, blobs, signer, log).with_witnesses(witnesses))
    }

    /// The same log, asking these witnesses to cosign its checkpoints.
    #[must_use]
    pub fn with_witnesses(mut self, witnesses: Vec<WitnessClient>) -> Self {
        self.witnesses = witnesses;
        self
    }

    #[must_use]
    pub fn new(
        pool: PgPool,
        blobs: Blobs,
        signer: LogSigner,
        settings: &TransparencyLogSettings,
    ) -> Self {
        Self {
            pool,
            blobs,
            signer,
            interval: Duration::from_millis(settings.checkpoint_interval_ms.max(1)),
            batch_size: i64::from(settings.batch_size.max(1)),
            integrated: tokio::sync::Notify::new(),
            witnesses: Vec::new(),
        }
    }

    #[must_use]
    pub fn signer(&self) -> &LogSigner {
        &self.signer
    }

    /// One integration round, in one transaction: under the sequencer's advisory lock, the
    /// oldest pending entries get the indices after the current tree, their hashes are stored
    /// and the new root is signed. The first round of an empty log signs the empty tree.
    ///
    /// # Errors
    /// When the database fails or the stored hashes are incomplete; nothing is written then.
    #[tracing::instrument(skip_all)]
    pub async fn integrate_once(&self) -> Result<Integration, LogError> {
        let mut tx = self.pool.begin().await?;
        if !store::try_lock_sequencer(&mut tx).await? {
            return Ok(Integration::Busy);
        }
        let latest = store::latest_checkpoint(&mut *tx).await?;
        let pending = store::pending(&mut tx, self.batch_size).await?;
        if pending.is_empty() && latest.is_some() {
            return Ok(Integration::Idle);
        }
        let old = latest.map_or(0, |c| u64::try_from(c.size).unwrap_or(0));
        // Appending needs only the roots of the tree's complete subtrees (its right edge).
        let edge = sub_tree_index(0, old, Vec::new());
        let mut known = known(store::hashes(&mut *tx, &edge).await?);
        let mut new_hashes = Vec::new();
        for (n, item) in (old..).zip(&pending) {
            let base = stored_hash_index(0, n);
            for (index, hash) in (base..).zip(stored_hashes(n, &item.entry, &known)?) {
                known.insert(index, hash);
                new_hashes.push((as_i64(index), hash.0.to_vec()));
            }
        }
        let new = old + pending.len() as u64;
        let root = tree_hash(new, &known)?;
        let checkpoint = StoredCheckpoint {
            size: as_i64(new),
            root: root.0.to_vec(),
            note: self.signer.sign_checkpoint(new, root)?,
            created_at: chrono::Utc::now(),
        };
        store::integrate(&mut tx, as_i64(old), &pending, &new_hashes, &checkpoint).await?;
        tx.commit().await?;
        self.integrated.notify_waiters();
        let delays = metrics::histogram!("hallmark_log_integration_delay_seconds");
        for entry in &pending {
            let delay = checkpoint.created_at - entry.created_at;
            delays.record(delay.to_std().unwrap_or_default().as_secs_f64());
        }
        metrics::counter!("hallmark_log_entries_integrated_total").increment(pending.len() as u64);
        Ok(Integration::Integrated { old, new })
    }

    /// Hands the sequencer the entries of records made before the log (one batch of at most
    /// `batch_size`; their number, `None` when another sequencer holds the lock). Under the
    /// sequencer's lock, so a record cannot be integrated between the look-up and the hand-over,
    /// and never gets two entries.
    ///
    /// # Errors
    /// When the database fails.
    #[tracing::instrument(skip_all)]
    pub async fn backfill_once(&self) -> Result<Option<usize>, LogError> {
        let mut tx = self.pool.begin().await?;
        if !store::try_lock_sequencer(&mut tx).await? {
            return Ok(None);
        }
        let records = store::unlogged_records(&mut tx, self.batch_size).await?;
        let entries: Vec<(Uuid, Vec<u8>)> = records
            .iter()
            .map(|record| (record.fields.id, super::entry(record)))
            .collect();
        store::append_pending(&mut tx, &entries).await?;
        tx.commit().await?;
        Ok(Some(entries.len()))
    }

    /// Writes the tiles and entry bundles that changed from `old` to `new` entries, and the
    /// latest checkpoint, to the blob store. Starts lower when the published checkpoint is
    /// older than `old`: a replica that died between its commit and its tiles leaves that round
    /// to whoever publishes next (the checkpoint is written after the tiles, so the tiles of the
    /// published one are always there).
    ///
    /// # Errors
    /// When the database or the blob store fails.
    #[tracing::instrument(skip_all, fields(old, new))]
    pub async fn publish(&self, old: u64, new: u64) -> Result<(), LogError> {
        let published = self.published_size().await?.unwrap_or(0);
        for tile in new_tiles(old.min(published), new) {
            let bytes = self.build_tile(tile).await?;
            self.blobs
                .put_named(&blob_name(tile), Bytes::from(bytes))
                .await?;
        }
        // Another replica may have signed a larger tree meanwhile: publish whatever is latest.
        self.publish_checkpoint().await
    }

    /// Publishes the latest checkpoint's tiles again from PostgreSQL (at start-up: a crash may
    /// have come between a commit and its tiles).
    ///
    /// # Errors
    /// When the database or the blob store fails.
    pub async fn republish_latest(&self) -> Result<(), LogError> {
        let Some(latest) = store::latest_checkpoint(&self.pool).await? else {
            return Ok(());
        };
        let before = store::checkpoint_size_before(&self.pool, latest.size)
            .await?
            .unwrap_or(0);
        self.publish(to_u64(before), to_u64(latest.size)).await
    }

    /// Integrates every `transparency_log.checkpoint_interval_ms` (at once again after a round
    /// that filled `batch_size`) and publishes what changed, in the background, until the pool
    /// is closed.
    pub fn spawn(self: Arc<Self>) {
        if !self.witnesses.is_empty() {
            tokio::spawn(Arc::clone(&self).cosign_forever());
        }
        tokio::spawn(async move {
            if let Err(error) = self.republish_latest().await {
                tracing::warn!(error = %error, "could not republish the log's latest tiles");
            }
            let mut ticker = tokio::time::interval(self.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            // A round that took a full batch leaves more pending: the next one starts at once
            // instead of after the interval, so a backlog drains at integration speed.
            let mut batch_filled = false;
            loop {
                if !batch_filled {
                    ticker.tick().await;
                }
                batch_filled = false;
                if self.pool.is_closed() {
                    break;
                }
                match self.integrate_once().await {
                    Ok(Integration::Integrated { old, new }) => {
                        tracing::debug!(old, new, "transparency log checkpoint signed");
                        if let Err(error) = self.publish(old, new).await {
                            tracing::warn!(error = %error, "could not publish the log's tiles");
                        }
                        batch_filled =
                            i64::try_from(new - old).unwrap_or(i64::MAX) >= self.batch_size;
                        failing = false;
                    }
                    Ok(_) => failing = false,
                    Err(error) => {
                        // Once per outage, not every round.
                        if !failing {
                            tracing::warn!(error = %error, "transparency log integration failed");
                        }
                        failing = true;
                    }
                }
            }
        });
    }

    /// Asks the witnesses for cosignatures of the latest checkpoint after each integration
    /// here, and every few intervals besides (another replica may have integrated), until the
    /// pool is closed. A witness that is down or refuses is logged and asked again next time.
    async fn cosign_forever(self: Arc<Self>) {
        let mut failing = false;
        loop {
            let notified = self.integrated.notified();
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(self.interval * 4) => {}
            }
            if self.pool.is_closed() {
                break;
            }
            match self.cosign_latest().await {
                Ok(_) => failing = false,
                Err(error) => {
                    if !failing {
                        tracing::warn!(error = %error, "could not add witness cosignatures");
                    }
                    failing = true;
                }
            }
        }
    }

    /// Submits the latest checkpoint to every witness whose cosignature it lacks, adds the
    /// cosignatures that verify with the witnesses' pinned keys to the stored checkpoint, and
    /// publishes it again; how many were added. A witness that fails is logged and skipped.
    ///
    /// # Errors
    /// When the database or the blob store fails.
    pub async fn cosign_latest(&self) -> Result<usize, LogError> {
        let Some(latest) = store::latest_checkpoint(&self.pool).await? else {
            return Ok(0);
        };
        let mut lines = String::new();
        let mut added = 0;
        for witness in &self.witnesses {
            if !witness.verifier.cosignatures(&latest.note).is_empty() {
                continue;
            }
            match self.submit(witness, &latest).await {
                Ok(cosignatures) => {
                    added += cosignatures.len();
                    lines.extend(cosignatures);
                }
                Err(error) => {
                    tracing::warn!(witness = %witness.url, error = %error, "a witness did not cosign");
                }
            }
        }
        if added > 0
            && store::add_cosignatures(&self.pool, latest.size, &latest.note, &lines).await?
        {
            self.publish_checkpoint().await?;
            metrics::counter!("hallmark_log_cosignatures_total").increment(added as u64);
        }
        Ok(added)
    }

    /// One witness's cosignature of `checkpoint`: submitted with a consistency proof from the
    /// tree the witness last saw (learnt from its 409 answer when not known here).
    async fn submit(
        &self,
        witness: &WitnessClient,
        checkpoint: &StoredCheckpoint,
    ) -> Result<Vec<String>, LogError> {
        let size = to_u64(checkpoint.size);
        let mut old = witness.last_size().unwrap_or(0);
        for _ in 0..3 {
            if old > size {
                return Err(LogError::Witness(format!(
                    "{} has seen a tree of {old} entries, larger than this log's {size}",
                    witness.url
                )));
            }
            let proof = if old == 0 || old == size {
                Vec::new()
            } else {
                self.with_hashes(|hashes| tlog_tiles::prove_tree(size, old, hashes))
                    .await?
            };
            match witness.submit(old, &proof, &checkpoint.note).await? {
                Submission::Cosigned(lines) => {
                    witness.set_last_size(size);
                    return Ok(lines);
                }
                Submission::Conflict(theirs) => {
                    witness.set_last_size(theirs);
                    old = theirs;
                }
            }
        }
        Err(LogError::Witness(format!(
            "{} keeps answering 409",
            witness.url
        )))
    }

    /// The tree size of the checkpoint in the blob store, if there is one that parses.
    async fn published_size(&self) -> Result<Option<u64>, LogError> {
        let Some(note) = self
            .blobs
            .get_named(&format!("{BLOB_PREFIX}checkpoint"))
            .await?
        else {
            return Ok(None);
        };
        Ok(std::str::from_utf8(&note)
            .ok()
            .and_then(|text| text.lines().nth(1))
            .and_then(|size| size.parse().ok()))
    }

    /// Writes the latest checkpoint (with its cosignatures) to the blob store.
    async fn publish_checkpoint(&self) -> Result<(), LogError> {
        if let Some(latest) = store::latest_checkpoint(&self.pool).await? {
            self.blobs
                .put_named(
                    &format!("{BLOB_PREFIX}checkpoint"),
                    Bytes::from(latest.note.into_bytes()),
                )
                .await?;
        }
        Ok(())
    }

    /// The latest signed checkpoint note; before the first integration, the empty tree's
    /// (Ed25519 is deterministic: the very note the first round stores).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn checkpoint(&self) -> Result<String, LogError> {
        match store::latest_checkpoint(&self.pool).await? {
            Some(checkpoint) => Ok(checkpoint.note),
            None => self.signer.sign_checkpoint(0, tlog_tiles::EMPTY_HASH),
        }
    }

    /// A tile or entry bundle of the current tree: from the blob store, or built from
    /// PostgreSQL (and stored) when missing there. `None` when the tree does not reach it.
    ///
    /// # Errors
    /// When the database or the blob store fails.
    pub async fn tile(&self, tile: TilePath) -> Result<Option<Bytes>, LogError> {
        let size = store::latest_checkpoint(&self.pool)
            .await?
            .map_or(0, |c| to_u64(c.size));
        if tile.min_tree_size().is_none_or(|needed| needed > size) {
            return Ok(None);
        }
        let name = blob_name(tile);
        if let Some(bytes) = self.blobs.get_named(&name).await? {
            return Ok(Some(bytes));
        }
        let bytes = Bytes::from(self.build_tile(tile).await?);
        if let Err(error) = self.blobs.put_named(&name, bytes.clone()).await {
            tracing::warn!(error = %error, tile = %name, "could not store a rebuilt tile");
        }
        Ok(Some(bytes))
    }

    /// A record's inclusion proof against the latest checkpoint, or where it stands.
    ///
    /// # Errors
    /// When the database fails or the stored hashes are incomplete.
    pub async fn proof(&self, record_id: Uuid) -> Result<ProofState, LogError> {
        let index = match store::position(&self.pool, record_id).await? {
            (Some(index), _) => index,
            (None, true) => return Ok(ProofState::Pending),
            (None, false) => return Ok(ProofState::NotLogged),
        };
        let checkpoint = store::latest_checkpoint(&self.pool)
            .await?
            .ok_or(LogError::Tree(tlog_tiles::Error::IndexesNotInTree))?;
        let (size, index) = (to_u64(checkpoint.size), to_u64(index));
        let path = self
            .with_hashes(|hashes| prove_record(size, index, hashes))
            .await?;
        Ok(ProofState::Integrated(
            InclusionProof {
                index,
                path,
                checkpoint: checkpoint.note,
            },
            checkpoint.created_at,
        ))
    }

    /// Waits until a checkpoint includes every record of `ids` (in order), then answers their
    /// inclusion proofs; `None` when `timeout` passes first. Wakes after each integration this
    /// log commits, and every `checkpoint_interval_ms` besides (another replica's sequencer may
    /// integrate them): no busy loop. A record never handed to the log waits out the timeout.
    ///
    /// # Errors
    /// When the database fails or the stored hashes are incomplete.
    pub async fn wait_for_proofs(
        &self,
        ids: &[Uuid],
        timeout: Duration,
    ) -> Result<Option<Vec<InclusionProof>>, LogError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut proofs = Vec::with_capacity(ids.len());
        loop {
            // Registered before looking, so an integration in between is not missed.
            let notified = self.integrated.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.prove_next(ids, &mut proofs).await? {
                return Ok(Some(proofs));
            }
            let wake = (tokio::time::Instant::now() + self.interval).min(deadline);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake) => {
                    if wake == deadline {
                        // One last look: the deadline may have met an integration.
                        let done = self.prove_next(ids, &mut proofs).await?;
                        return Ok(done.then_some(proofs));
                    }
                }
            }
        }
    }

    /// Adds to `proofs` those of the records of `ids` after it, in order, until one is not
    /// integrated yet; whether all are.
    async fn prove_next(
        &self,
        ids: &[Uuid],
        proofs: &mut Vec<InclusionProof>,
    ) -> Result<bool, LogError> {
        while let Some(&id) = ids.get(proofs.len()) {
            match self.proof(id).await? {
                ProofState::Integrated(proof, _) => proofs.push(proof),
                ProofState::Pending | ProofState::NotLogged => return Ok(false),
            }
        }
        Ok(true)
    }

    /// A tile's bytes from PostgreSQL.
    async fn build_tile(&self, tile: TilePath) -> Result<Vec<u8>, LogError> {
        if let Some(hash_tile) = tile.hash_tile() {
            return self.with_hashes(|hashes| hash_tile.read_data(hashes)).await;
        }
        let (start, end) = tile.entry_range();
        let rows = store::entries(&self.pool, as_i64(start), as_i64(end)).await?;
        if rows.len() as u64 != end - start {
            return Err(LogError::Tree(tlog_tiles::Error::IndexesNotInTree));
        }
        let entries: Vec<Vec<u8>> = rows.into_iter().map(|row| row.entry).collect();
        entry_bundle(&entries)
    }

    /// Runs `compute` on the stored hashes it reads (see [`super::hashes`]).
    async fn with_hashes<T>(
        &self,
        compute: impl Fn(&StoredHashes) -> Result<T, tlog_tiles::Error>,
    ) -> Result<T, LogError> {
        let recorder = StoredHashes::recording();
        compute(&recorder)?;
        let hashes = store::hashes(&self.pool, &recorder.recorded()).await?;
        Ok(compute(&known(hashes))?)
    }
}

fn known(hashes: std::collections::HashMap<u64, [u8; 32]>) -> StoredHashes {
    StoredHashes::Known(hashes.into_iter().map(|(i, h)| (i, Hash(h))).collect())
}

fn blob_name(tile: TilePath) -> String {
    format!("{BLOB_PREFIX}{}", tile.path())
}

/// Indices and sizes are below 2^63 by the tables' types.
fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
