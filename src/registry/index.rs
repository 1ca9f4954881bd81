//! The near-duplicate candidate search held in memory: every registered variant pHash in one
//! flat array, searched by a linear popcount scan.
//!
//! Why a scan and not a smarter structure: at 10^6 records (10^7 hashes) the scan touches 80 MB
//! sequentially and takes ~3 ms with the `popcnt` instruction, while multi-index hashing over the
//! same hashes (in memory) touched ~430k entries at random and took ~12 ms, and in PostgreSQL
//! ~0.8 s (`docs/benchmarks.md`). The scan is exact for any distance, so the radius can be chosen
//! for recall alone.
//!
//! PostgreSQL stays the source of truth. [`HashIndex::spawn_sync`] `LISTEN`s on
//! [`CHANNEL`] (a trigger on `records` notifies each new record's id when its transaction
//! commits, migration 3), then loads every hash, then applies the notified records; a lost
//! connection triggers a fresh load. The generation pipeline of this process also inserts its
//! records right after committing, so a client that generated an image can verify a copy of it at
//! once. While the index is not in step with the database (loading, or reconnecting) it answers
//! `None` and the caller asks PostgreSQL ([`super::candidates`]), so no record is ever
//! missed.
//!
//! Memory: 8 bytes per hash, 4 per hash for its owner, and ~40 bytes per record: ~170 MB at 10^6
//! records.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use uuid::Uuid;

use crate::fingerprint::phash_from_db;
use crate::store::record_hashes;

/// The notification channel the `records` insert trigger uses (migration 3).
pub const CHANNEL: &str = "hallmark_records";

/// Longest wait between two attempts to reach the database.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a notification waits before the index looks it up. A record this process generated
/// is notified at its commit and added to the index by its own request a moment later: without
/// the pause the listener usually wins that race and fetches the hashes it is about to be given
/// (a query per request under load).
const NOTIFY_SETTLE: Duration = Duration::from_millis(5);

/// Every registered variant hash, with the record it belongs to.
#[derive(Debug, Default)]
struct Entries {
    hashes: Vec<u64>,
    /// `owners[i]`: the slot in `records` of `hashes[i]`.
    owners: Vec<u32>,
    records: Vec<Uuid>,
    slots: HashMap<Uuid, u32>,
}

impl Entries {
    /// The record's slot, given one if it has none.
    fn slot(&mut self, record: Uuid) -> u32 {
        *self.slots.entry(record).or_insert_with(|| {
            self.records.push(record);
            u32::try_from(self.records.len() - 1).expect("fewer than 2^32 records in memory")
        })
    }

    /// Adds a record's hashes unless the record is already held. Returns whether it was new.
    fn insert(&mut self, record: Uuid, hashes: &[u64]) -> bool {
        if hashes.is_empty() || self.slots.contains_key(&record) {
            return false;
        }
        self.extend_rows(hashes.iter().map(|&hash| (record, hash)));
        true
    }

    /// Appends rows of `(record, hash)`; rows of one record need not be adjacent.
    fn extend_rows(&mut self, rows: impl IntoIterator<Item = (Uuid, u64)>) {
        for (record, hash) in rows {
            let slot = self.slot(record);
            self.hashes.push(hash);
            self.owners.push(slot);
        }
    }

    fn search(&self, queries: &[u64], max_distance: u32, limit: usize) -> Vec<(Uuid, u32)> {
        let mut best: HashMap<u32, u32> = HashMap::new();
        scan(&self.hashes, queries, max_distance, |at, distance| {
            let owner = self.owners[at];
            best.entry(owner)
                .and_modify(|d| *d = (*d).min(distance))
                .or_insert(distance);
        });
        let mut found: Vec<(u32, Uuid)> = best
            .into_iter()
            .map(|(slot, distance)| (distance, self.records[slot as usize]))
            .collect();
        // The same order as the database's `ORDER BY distance, record_id`.
        found.sort_unstable();
        found.truncate(limit);
        found.into_iter().map(|(d, id)| (id, d)).collect()
    }
}

/// Query hashes compared in one pass over the hashes: a fixed count lets the compiler unroll the
/// comparison (5 queries in one pass cost ~2.5x one query; a loop over a slice cost ~40x).
const GROUP: usize = 5;

/// Calls `hit(i, distance)` for every `hashes[i]` within `max_distance` bits of the nearest of
/// `queries` (an index may be reported once per group of [`GROUP`] queries; callers keep the
/// least distance).
fn scan(hashes: &[u64], queries: &[u64], max_distance: u32, mut hit: impl FnMut(usize, u32)) {
    for group in queries.chunks(GROUP) {
        if let [query] = group {
            scan_group(hashes, &[*query], max_distance, &mut hit);
        } else {
            // Short groups repeat their first query, which changes no minimum.
            let mut padded = [group[0]; GROUP];
            padded[..group.len()].copy_from_slice(group);
            scan_group(hashes, &padded, max_distance, &mut hit);
        }
    }
}

fn scan_group<const N: usize>(
    hashes: &[u64],
    queries: &[u64; N],
    max_distance: u32,
    hit: &mut impl FnMut(usize, u32),
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has just been seen to support `popcnt`.
            unsafe { scan_popcnt(hashes, queries, max_distance, hit) };
            return;
        }
    }
    scan_portable(hashes, queries, max_distance, hit);
}

#[inline(always)]
fn scan_portable<const N: usize>(
    hashes: &[u64],
    queries: &[u64; N],
    max_distance: u32,
    hit: &mut impl FnMut(usize, u32),
) {
    for (i, &hash) in hashes.iter().enumerate() {
        let mut distance = u32::MAX;
        for query in queries {
            distance = distance.min((hash ^ query).count_ones());
        }
        if distance <= max_distance {
            hit(i, distance);
        }
    }
}

/// The same loop compiled with the `popcnt` instruction (4x faster than the portable bit count
/// the default x86-64 target uses).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn scan_popcnt<const N: usize>(
    hashes: &[u64],
    queries: &[u64; N],
    max_distance: u32,
    hit: &mut impl FnMut(usize, u32),
) {
    scan_portable(hashes, queries, max_distance, hit);
}

#[derive(Debug, Default)]
struct State {
    entries: Entries,
    /// The entries hold every committed record: loaded and listening.
    in_step: bool,
    /// Loads completed (1 after start-up; more after reconnects).
    loads: u64,
}

/// What the index holds, for `/readyz` and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IndexStatus {
    pub in_step: bool,
    pub records: usize,
    pub hashes: usize,
    pub loads: u64,
}

/// The shared in-memory index (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct HashIndex {
    state: Arc<RwLock<State>>,
}

impl HashIndex {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the entries half-written in a way a scan
        // could misread (pushes only), so a poisoned lock is still usable.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// An index of the given records that follows no database (studies and tests): in step
    /// from the start.
    #[must_use]
    pub fn standalone<'a>(records: impl IntoIterator<Item = (Uuid, &'a [u64])>) -> Self {
        let index = Self::new();
        {
            let mut state = index.write();
            for (record, hashes) in records {
                state.entries.insert(record, hashes);
            }
            state.in_step = true;
        }
        index
    }

    #[must_use]
    pub fn status(&self) -> IndexStatus {
        let state = self.read();
        IndexStatus {
            in_step: state.in_step,
            records: state.entries.records.len(),
            hashes: state.entries.hashes.len(),
            loads: state.loads,
        }
    }

    /// The records with a hash within `max_distance` bits of any of `queries`, nearest first
    /// (then by id), at most `limit`; `None` while the index is not in step with the database.
    /// CPU-bound (milliseconds per 10^7 hashes): call it from a blocking thread.
    #[must_use]
    pub fn search(
        &self,
        queries: &[u64],
        max_distance: u32,
        limit: usize,
    ) -> Option<Vec<(Uuid, u32)>> {
        let state = self.read();
        state
            .in_step
            .then(|| state.entries.search(queries, max_distance, limit))
    }

    /// Adds a committed record's variant hashes (a record already held is left as it is).
    pub fn insert(&self, record: Uuid, hashes: &[u64]) {
        if self.write().entries.insert(record, hashes) {
            self.publish_size();
        }
    }

    fn publish_size(&self) {
        let status = self.status();
        metrics::gauge!("hallmark_registry_index_hashes").set(status.hashes as f64);
    }

    /// Reads every registered hash from the database.
    async fn load(pool: &PgPool) -> Result<Entries, sqlx::Error> {
        let mut entries = Entries::default();
        record_hashes::for_each_batch(pool, |batch| {
            entries.extend_rows(batch.drain(..).map(|(id, h)| (id, phash_from_db(h))));
        })
        .await?;
        Ok(entries)
    }

    /// Adds the hashes of notified records not yet held.
    async fn apply(&self, pool: &PgPool, mut ids: Vec<Uuid>) -> Result<(), sqlx::Error> {
        tokio::time::sleep(NOTIFY_SETTLE).await;
        {
            let state = self.read();
            ids.retain(|id| !state.entries.slots.contains_key(id));
        }
        if ids.is_empty() {
            return Ok(());
        }
        let rows = record_hashes::of_records(pool, &ids).await?;
        let mut state = self.write();
        for group in rows.chunk_by(|a, b| a.0 == b.0) {
            let hashes: Vec<u64> = group.iter().map(|&(_, h)| phash_from_db(h)).collect();
            state.entries.insert(group[0].0, &hashes);
        }
        drop(state);
        self.publish_size();
        Ok(())
    }

    fn set_in_step(&self, in_step: bool) {
        self.write().in_step = in_step;
    }

    /// Keeps the index in step with the database until the pool is closed: listen, load, apply
    /// notifications; after a lost connection, listen and load again. Runs on the current tokio
    /// runtime.
    pub fn spawn_sync(&self, pool: PgPool) -> tokio::task::JoinHandle<()> {
        let index = self.clone();
        tokio::spawn(async move { index.sync(pool).await })
    }

    async fn sync(self, pool: PgPool) {
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.sync_once(&pool).await {
                Ok(()) => backoff = Duration::from_millis(250),
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    tracing::warn!(error = %error, retry_in = ?backoff,
                        "near-duplicate index: database unavailable, searching PostgreSQL meanwhile");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            self.set_in_step(false);
        }
    }

    /// One connection's life: returns `Ok` when the listener lost its connection (notifications
    /// may have been missed, so the caller loads again).
    async fn sync_once(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        // Listen first, then load: a record committed in between is both loaded and notified,
        // and inserted once.
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        let started = Instant::now();
        let entries = Self::load(pool).await?;
        {
            let mut state = self.write();
            // Records this process inserted while the load ran are in the database, and so in
            // `entries`, or notified below.
            state.entries = entries;
            state.in_step = true;
            state.loads += 1;
        }
        let status = self.status();
        self.publish_size();
        tracing::info!(records = status.records, hashes = status.hashes,
            elapsed = ?started.elapsed(), "near-duplicate index loaded");
        loop {
            let Some(first) = listener.try_recv().await? else {
                tracing::warn!("near-duplicate index: notification connection lost; reloading");
                return Ok(());
            };
            let mut ids = Vec::new();
            for notification in
                std::iter::once(first).chain(std::iter::from_fn(|| listener.next_buffered()))
            {
                match notification.payload().parse::<Uuid>() {
                    Ok(id) => ids.push(id),
                    Err(_) => tracing::warn!(
                        payload = notification.payload(),
                        "near-duplicate index: ignored a malformed notification"
                    ),
                }
            }
            self.apply(pool, ids).await?;
        }
    }

    /// Waits until the index is in step (tests and benchmarks).
    pub async fn wait_in_step(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.read().in_step {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::hamming;

    fn pseudo_random(n: usize, mut state: u64) -> Vec<u64> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            })
            .collect()
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// The index's answer against a brute force over the same records.
    #[test]
    fn search_matches_brute_force() {
        let hashes = pseudo_random(3_000, 0x9e37_79b9_7f4a_7c15);
        let mut entries = Entries::default();
        let records: Vec<(Uuid, &[u64])> = hashes
            .chunks(10)
            .enumerate()
            .map(|(i, chunk)| (id(i as u128 + 1), chunk))
            .collect();
        for (record, list) in &records {
            assert!(entries.insert(*record, list));
        }
        for (q, &base) in hashes.iter().step_by(97).enumerate() {
            // Queries near a stored hash and far from every one.
            let query = if q % 2 == 0 {
                base ^ 0x0101_0000_0300_0000
            } else {
                !base
            };
            for max_distance in [0, 6, 14, 24] {
                let queries = [query, query ^ 0xffff_0000];
                let mut want: Vec<(u32, Uuid)> = records
                    .iter()
                    .filter_map(|(record, list)| {
                        let d = list
                            .iter()
                            .flat_map(|&h| queries.iter().map(move |&q| hamming(h, q)))
                            .min()?;
                        (d <= max_distance).then_some((d, *record))
                    })
                    .collect();
                want.sort_unstable();
                want.truncate(24);
                let want: Vec<(Uuid, u32)> = want.into_iter().map(|(d, r)| (r, d)).collect();
                assert_eq!(entries.search(&queries, max_distance, 24), want);
            }
        }
    }

    #[test]
    fn portable_and_popcnt_scans_agree() {
        let hashes = pseudo_random(5_000, 42);
        let queries = [hashes[17] ^ 0xff, hashes[40] ^ 0x1];
        let mut portable = Vec::new();
        scan_portable(&hashes, &queries, 30, &mut |i, d| portable.push((i, d)));
        let mut dispatched = Vec::new();
        scan(&hashes, &queries, 30, |i, d| dispatched.push((i, d)));
        assert_eq!(portable, dispatched);
        // Seven queries take two groups; every hit of the portable scan is found, at its least
        // distance.
        let seven = [1, 2, 3, 4, 5, 6, hashes[99]];
        let mut want = Vec::new();
        scan_portable(&hashes, &seven, 28, &mut |i, d| want.push((i, d)));
        let mut best = HashMap::new();
        scan(&hashes, &seven, 28, |i, d| {
            best.entry(i)
                .and_modify(|b: &mut u32| *b = (*b).min(d))
                .or_insert(d);
        });
        let mut got: Vec<(usize, u32)> = best.into_iter().collect();
        got.sort_unstable();
        assert_eq!(got, want);
        assert!(want.contains(&(99, 0)));
        assert!(portable.contains(&(17, 8)));
        assert!(portable.contains(&(40, 1)));
    }

    #[test]
    fn a_record_is_held_once_and_rows_group_by_record() {
        let mut entries = Entries::default();
        assert!(entries.insert(id(1), &[1, 2, 3]));
        assert!(
            !entries.insert(id(1), &[4, 5]),
            "a second insert is ignored"
        );
        assert!(
            !entries.insert(id(2), &[]),
            "a record without hashes is not held"
        );
        entries.extend_rows([(id(3), 7), (id(1), 9), (id(3), 8)]);
        assert_eq!(entries.records, vec![id(1), id(3)]);
        assert_eq!(entries.owners, vec![0, 0, 0, 1, 0, 1]);
        // Record 1's nearest hash to 9 is 9 itself (distance 0); record 3's is 8 (distance 1).
        assert_eq!(entries.search(&[9], 1, 10), vec![(id(1), 0), (id(3), 1)]);
        assert_eq!(entries.search(&[9], 1, 1), vec![(id(1), 0)]);
    }

    #[test]
    fn an_index_not_in_step_defers_to_the_database() {
        let index = HashIndex::new();
        index.insert(id(1), &[5]);
        assert_eq!(index.search(&[5], 0, 10), None);
        index.set_in_step(true);
        assert_eq!(index.search(&[5], 0, 10), Some(vec![(id(1), 0)]));
        assert_eq!(
            index.status(),
            IndexStatus {
                in_step: true,
                records: 1,
                hashes: 1,
                loads: 0
            }
        );
    }
}
