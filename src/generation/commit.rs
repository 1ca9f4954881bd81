//! Group commit: the records of requests that finish close together are committed in one
//! PostgreSQL transaction, so one fsync'd commit answers many requests (as the model thread runs
//! one forward pass for many).
//!
//! Each request writes its own blobs first (concurrently, as before), then hands its rows — its
//! records, their variant pHashes and their transparency-log entries — to the committer through a
//! bounded queue, with a one-shot channel for the answer. The committer takes what is queued (the
//! first request and whatever arrived while the previous transaction was committing, up to
//! `generation.max_group` records; with `generation.commit_linger_us` it also waits that long for
//! company), inserts every row in one statement (data-modifying CTEs over `UNNEST`ed arrays: one
//! round trip, its own transaction), and answers every member: a request hears `Ok` only once its
//! records are durable.
//!
//! The statement is also the request's API-key check: records made with a key revoked by the time
//! it runs are left out, and their request hears [`CommitError::KeyRevoked`]. A key revoked before
//! a request's commit therefore never gets an image, however the request was authenticated
//! (`api::auth::CachedKey`).
//!
//! Failures:
//! - a full queue refuses the request at once (the caller answers 429 `queue_full`), so a slow
//!   database costs bounded memory;
//! - a connection failure (I/O, pool time-out, PostgreSQL's connection-exception, shutdown and
//!   too-many-connections codes) fails the whole group: every member gets the error, nothing is
//!   retried (each retry would wait for the same dead database);
//! - any other error PostgreSQL reports for a statement (a unique or foreign-key violation, a
//!   check, a trigger, a serialization failure, a statement time-out) may be one row's fault: the
//!   transaction is rolled back and the group's members are committed again one by one, each in
//!   its own transaction, so one bad record fails only its own request;
//! - the caller removes the blobs of a request that failed (see `GenerationService::generate`).

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

use crate::config::GenerationSettings;
use crate::fingerprint::iscc::ImageCode;
use crate::provenance::Record;
use crate::store::records;

/// One request's rows, ready to insert.
#[derive(Debug, Clone)]
pub struct Rows {
    pub records: Vec<Record>,
    /// `manifest_sha256[i]` for `records[i]`.
    pub manifest_sha256: Vec<Vec<u8>>,
    /// Each record's variant pHashes (whole image first).
    pub variant_phashes: Vec<(Uuid, Vec<u64>)>,
    /// Each record's ISCC Content-Code Image (`record_iscc`).
    pub iscc: Vec<(Uuid, ImageCode)>,
    /// Each record's transparency-log entry, in the records' order.
    pub log_entries: Vec<(Uuid, Vec<u8>)>,
    /// Blobs written without a sync, journaled in the same statement (record id, hash, bytes;
    /// empty on S3): `store::blob_journal`.
    pub journal: Vec<(Uuid, Vec<u8>, bytes::Bytes)>,
}

impl Rows {
    /// Records in these rows: a request's share of a group.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Appends `other`'s rows, keeping their order.
    fn extend(&mut self, other: &Rows) {
        self.records.extend_from_slice(&other.records);
        self.manifest_sha256
            .extend_from_slice(&other.manifest_sha256);
        self.variant_phashes
            .extend_from_slice(&other.variant_phashes);
        self.iscc.extend_from_slice(&other.iscc);
        self.log_entries.extend_from_slice(&other.log_entries);
        self.journal.extend_from_slice(&other.journal);
    }
}

/// Why a request's rows were not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the commit queue is full ({queued} requests waiting); retry shortly")]
    QueueFull { queued: usize },
    #[error("the committer has stopped")]
    Stopped,
    /// The request's API key was revoked before its records could commit: nothing was stored.
    #[error("the API key was revoked before the images could be registered")]
    KeyRevoked,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Counters the metrics endpoint and the tests read, per service.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Groups taken from the queue.
    pub groups: AtomicU64,
    /// Requests in those groups.
    pub requests: AtomicU64,
    /// Transactions committed (a group retried member by member commits several).
    pub transactions: AtomicU64,
    /// Records committed.
    pub records: AtomicU64,
    /// Most records in one group.
    pub largest_group: AtomicU64,
    /// Groups whose transaction failed and whose members were committed one by one.
    pub retried_groups: AtomicU64,
}

impl CommitStats {
    fn record_group(&self, requests: usize, records: usize) {
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(requests as u64, Ordering::Relaxed);
        self.largest_group
            .fetch_max(records as u64, Ordering::Relaxed);
        metrics::histogram!("hallmark_commit_group_size").record(records as f64);
    }

    fn record_commit(&self, records: usize) {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(records as u64, Ordering::Relaxed);
    }
}

/// A request waiting for its group's transaction.
struct Waiting {
    rows: Rows,
    /// `Ok(true)`: committed; `Ok(false)`: left out, its key is revoked.
    reply: oneshot::Sender<Result<bool, sqlx::Error>>,
}

impl Waiting {
    /// Whether this request's records are among those `inserted` (a request's records share one
    /// key, so they are all in or all out).
    fn committed_in(&self, inserted: &HashSet<Uuid>) -> bool {
        self.rows
            .records
            .first()
            .is_none_or(|record| inserted.contains(&record.fields.id))
    }
}

/// A cheap, cloneable handle to the committer task.
#[derive(Clone)]
pub struct Committer {
    sender: mpsc::Sender<Waiting>,
    depth: usize,
    stats: Arc<CommitStats>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("depth", &self.depth)
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// Starts the committer on the current tokio runtime; it ends once every handle is dropped
    /// (after answering what is queued).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    #[must_use]
    pub fn start(pool: PgPool, settings: &GenerationSettings) -> Self {
        let depth = settings.commit_queue_depth.max(1);
        let (sender, receiver) = mpsc::channel(depth);
        let stats = Arc::new(CommitStats::default());
        let task = Task {
            pool,
            max_group: settings.max_group.max(1),
            linger: Duration::from_micros(settings.commit_linger_us),
            slots: Arc::new(Semaphore::new(settings.committers.max(1))),
            stats: Arc::clone(&stats),
        };
        tokio::spawn(task.run(receiver));
        Self {
            sender,
            depth,
            stats,
        }
    }

    #[must_use]
    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }

    /// Requests waiting for a transaction now.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.depth - self.sender.capacity()
    }

    /// Commits `rows` in the next group's transaction; returns once they are durable.
    ///
    /// # Errors
    /// [`CommitError::QueueFull`] at once when the queue is full, [`CommitError::KeyRevoked`] when
    /// the records' API key is revoked by the time the transaction runs (nothing is stored),
    /// [`CommitError::Database`] when the transaction (the group's, or this request's own after a
    /// failed group) fails.
    pub async fn commit(&self, rows: Rows) -> Result<(), CommitError> {
        if rows.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.sender
            .try_send(Waiting { rows, reply })
            .map_err(|error| match error {
                TrySendError::Full(_) => CommitError::QueueFull {
                    queued: self.queued(),
                },
                TrySendError::Closed(_) => CommitError::Stopped,
            })?;
        match answer.await.map_err(|_| CommitError::Stopped)? {
            Ok(true) => Ok(()),
            Ok(false) => Err(CommitError::KeyRevoked),
            Err(error) => Err(CommitError::Database(error)),
        }
    }
}

/// The committer itself.
struct Task {
    pool: PgPool,
    max_group: usize,
    linger: Duration,
    /// Group transactions in flight at most (`generation.committers`).
    slots: Arc<Semaphore>,
    stats: Arc<CommitStats>,
}

impl Task {
    async fn run(self, mut receiver: mpsc::Receiver<Waiting>) {
        let this = Arc::new(self);
        let mut carried: Option<Waiting> = None;
        loop {
            // While every slot commits, requests pile up in the queue and form the next group.
            let Ok(slot) = Arc::clone(&this.slots).acquire_owned().await else {
                return;
            };
            let first = match carried.take() {
                Some(waiting) => waiting,
                None => match receiver.recv().await {
                    Some(waiting) => waiting,
                    None => return, // every handle dropped
                },
            };
            let (group, next) = gather(first, &mut receiver, this.max_group, this.linger).await;
            carried = next;
            let task = Arc::clone(&this);
            tokio::spawn(async move {
                task.commit_group(group).await;
                drop(slot);
            });
        }
    }

    async fn commit_group(&self, group: Vec<Waiting>) {
        let count: usize = group.iter().map(|w| w.rows.len()).sum();
        self.stats.record_group(group.len(), count);
        let result = if let [only] = group.as_slice() {
            insert(&self.pool, &only.rows).await
        } else {
            let mut all = Rows {
                records: Vec::with_capacity(count),
                manifest_sha256: Vec::with_capacity(count),
                variant_phashes: Vec::with_capacity(count),
                iscc: Vec::with_capacity(count),
                log_entries: Vec::with_capacity(count),
                journal: Vec::with_capacity(2 * count),
            };
            for waiting in &group {
                all.extend(&waiting.rows);
            }
            insert(&self.pool, &all).await
        };
        match result {
            Ok(inserted) => {
                self.stats.record_commit(inserted.len());
                let inserted: HashSet<Uuid> = inserted.into_iter().collect();
                for waiting in group {
                    let committed = waiting.committed_in(&inserted);
                    let _ = waiting.reply.send(Ok(committed));
                }
            }
            Err(error) if group.len() > 1 && may_be_one_rows_fault(&error) => {
                tracing::warn!(
                    error = %error,
                    requests = group.len(),
                    "a group commit failed; committing its requests one by one"
                );
                self.stats.retried_groups.fetch_add(1, Ordering::Relaxed);
                for waiting in group {
                    let result = insert(&self.pool, &waiting.rows).await.map(|inserted| {
                        self.stats.record_commit(inserted.len());
                        waiting.committed_in(&inserted.into_iter().collect())
                    });
                    let _ = waiting.reply.send(result);
                }
            }
            Err(error) => {
                let mut group = group.into_iter();
                let last = group.next_back();
                for waiting in group {
                    let _ = waiting.reply.send(Err(duplicate(&error)));
                }
                if let Some(waiting) = last {
                    let _ = waiting.reply.send(Err(error));
                }
            }
        }
    }
}

/// Takes queued requests into the group after `first` until it holds `max_group` records, the
/// queue is empty and `linger` has passed since the start. A request that would overflow the
/// group is carried into the next one (a single request larger than `max_group` goes alone).
async fn gather(
    first: Waiting,
    receiver: &mut mpsc::Receiver<Waiting>,
    max_group: usize,
    linger: Duration,
) -> (Vec<Waiting>, Option<Waiting>) {
    let until = tokio::time::Instant::now() + linger;
    let mut size = first.rows.len();
    let mut group = vec![first];
    while size < max_group {
        let next = match receiver.try_recv() {
            Ok(waiting) => waiting,
            Err(TryRecvError::Empty) if !linger.is_zero() => {
                match tokio::time::timeout_at(until, receiver.recv()).await {
                    Ok(Some(waiting)) => waiting,
                    Ok(None) | Err(_) => break,
                }
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        };
        if size + next.rows.len() > max_group {
            return (group, Some(next));
        }
        size += next.rows.len();
        group.push(next);
    }
    (group, None)
}

/// Inserts the rows in one statement (its own transaction). Each record's transparency-log entry
/// is handed to the sequencer in the record's own transaction: no record without its entry, no
/// entry without its record. Returns the ids of the records inserted (those of live keys).
async fn insert(pool: &PgPool, rows: &Rows) -> Result<Vec<Uuid>, sqlx::Error> {
    records::insert_generated(
        pool,
        &rows.records,
        &rows.manifest_sha256,
        &rows.variant_phashes,
        &rows.iscc,
        &rows.log_entries,
        &rows.journal,
    )
    .await
}

/// Errors that mean "no working connection": the same for every member of a group, so there is
/// no point retrying them one by one.
fn connection_failure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P0") || code == "53300"
        }),
        _ => true,
    }
}

/// Whether a failed group should be retried member by member: PostgreSQL rejected a statement
/// (the error may be one row's), and the connection is not the problem.
fn may_be_one_rows_fault(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(_)) && !connection_failure(error)
}

/// A copy of `error` for another member of a failed group (`sqlx::Error` is not `Clone`): the
/// same variant where the HTTP layer tells them apart (connection trouble is 503, the rest 500),
/// the same SQLSTATE, kind and message.
fn duplicate(error: &sqlx::Error) -> sqlx::Error {
    match error {
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        sqlx::Error::Tls(tls) => sqlx::Error::Tls(tls.to_string().into()),
        sqlx::Error::Protocol(message) => sqlx::Error::Protocol(message.clone()),
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::WorkerCrashed => sqlx::Error::WorkerCrashed,
        sqlx::Error::Database(db) => sqlx::Error::Database(Box::new(SharedDatabaseError {
            message: db.message().to_owned(),
            code: db.code().map(Cow::into_owned),
            constraint: db.constraint().map(str::to_owned),
            table: db.table().map(str::to_owned),
            kind: db.kind(),
        })),
        other => sqlx::Error::Configuration(other.to_string().into()),
    }
}

/// A database error as another group member saw it.
#[derive(Debug)]
struct SharedDatabaseError {
    message: String,
    code: Option<String>,
    constraint: Option<String>,
    table: Option<String>,
    kind: sqlx::error::ErrorKind,
}

impl std::fmt::Display for SharedDatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SharedDatabaseError {}

impl sqlx::error::DatabaseError for SharedDatabaseError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.as_deref().map(Cow::Borrowed)
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn constraint(&self) -> Option<&str> {
        self.constraint.as_deref()
    }

    fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        match self.kind {
            sqlx::error::ErrorKind::UniqueViolation => sqlx::error::ErrorKind::UniqueViolation,
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                sqlx::error::ErrorKind::ForeignKeyViolation
            }
            sqlx::error::ErrorKind::NotNullViolation => sqlx::error::ErrorKind::NotNullViolation,
            sqlx::error::ErrorKind::CheckViolation => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(count: usize) -> Rows {
        Rows {
            records: Vec::new(),
            manifest_sha256: vec![Vec::new(); count],
            variant_phashes: Vec::new(),
            iscc: Vec::new(),
            log_entries: Vec::new(),
            journal: Vec::new(),
        }
    }

    /// A waiting request of `count` records (only the length matters to `gather`).
    fn waiting(count: usize) -> (Waiting, oneshot::Receiver<Result<bool, sqlx::Error>>) {
        let (reply, answer) = oneshot::channel();
        let mut rows = rows(count);
        rows.records = (0..count).map(|_| fake_record()).collect();
        (Waiting { rows, reply }, answer)
    }

    fn fake_record() -> Record {
        let key =
            crate::provenance::PrivateKey::from(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
        Record {
            fields: crate::provenance::record::tests::fields(&key),
            signature: vec![0; 64],
        }
    }

    fn sizes(group: &[Waiting]) -> Vec<usize> {
        group.iter().map(|w| w.rows.len()).collect()
    }

    #[tokio::test]
    async fn a_group_takes_what_is_queued_up_to_the_limit_and_carries_the_rest() {
        let (sender, mut receiver) = mpsc::channel(16);
        let mut answers = Vec::new();
        for count in [2, 3, 4, 1] {
            let (w, a) = waiting(count);
            answers.push(a);
            assert!(sender.try_send(w).is_ok());
        }
        let (first, a) = waiting(1);
        answers.push(a);
        // 1 + 2 + 3 = 6 fit in 8; the 4 would overflow and waits for the next group.
        let (group, carried) = gather(first, &mut receiver, 8, Duration::ZERO).await;
        assert_eq!(sizes(&group), [1, 2, 3]);
        let carried = carried.expect("the overflowing request is carried");
        assert_eq!(carried.rows.len(), 4);
        let (group, carried) = gather(carried, &mut receiver, 8, Duration::ZERO).await;
        assert_eq!(sizes(&group), [4, 1]);
        assert!(carried.is_none());
    }

    #[tokio::test]
    async fn without_linger_a_group_does_not_wait_and_max_group_one_commits_alone() {
        let (sender, mut receiver) = mpsc::channel(16);
        let (first, _a) = waiting(1);
        let (group, carried) = gather(first, &mut receiver, 256, Duration::ZERO).await;
        assert_eq!(
            sizes(&group),
            [1],
            "nothing queued: the group is the first request"
        );
        assert!(carried.is_none());

        let (queued, _b) = waiting(1);
        assert!(sender.try_send(queued).is_ok());
        let (first, _c) = waiting(1);
        let (group, carried) = gather(first, &mut receiver, 1, Duration::ZERO).await;
        assert_eq!(
            sizes(&group),
            [1],
            "max_group 1: one request per transaction"
        );
        assert!(carried.is_none());

        // A request larger than the limit still goes, alone.
        let (big, _d) = waiting(64);
        let (group, carried) = gather(big, &mut receiver, 8, Duration::ZERO).await;
        assert_eq!(sizes(&group), [64]);
        assert!(carried.is_none());
        assert!(
            receiver.try_recv().is_ok(),
            "the queued request waits for a group of its own"
        );
    }

    #[tokio::test]
    async fn linger_waits_for_company_and_ends_when_it_runs_out() {
        let (sender, mut receiver) = mpsc::channel(16);
        let late = tokio::spawn(async move {
            tokio::task::yield_now().await;
            let (w, _a) = waiting(2);
            assert!(sender.try_send(w).is_ok(), "queued");
            sender
        });
        // Nothing is queued when the group starts: only the linger lets the late request in (the
        // group then ends by being full, long before the linger would run out).
        let (first, _b) = waiting(1);
        let (group, carried) = gather(first, &mut receiver, 3, Duration::from_secs(600)).await;
        assert_eq!(
            sizes(&group),
            [1, 2],
            "the request within the linger joined"
        );
        assert!(carried.is_none());
        let _sender = late.await.unwrap();
        // With the queue open and empty, a group still ends once the linger is over.
        let (first, _c) = waiting(1);
        let (group, _) = gather(first, &mut receiver, 256, Duration::from_millis(1)).await;
        assert_eq!(sizes(&group), [1]);
    }

    #[test]
    fn connection_failures_fail_the_group_and_statement_errors_are_retried() {
        let unique = SharedDatabaseError {
            message: "duplicate key".into(),
            code: Some("23505".into()),
            constraint: Some("records_pkey".into()),
            table: Some("records".into()),
            kind: sqlx::error::ErrorKind::UniqueViolation,
        };
        let unique = sqlx::Error::Database(Box::new(unique));
        assert!(may_be_one_rows_fault(&unique));
        let gone = sqlx::Error::Database(Box::new(SharedDatabaseError {
            message: "terminating connection".into(),
            code: Some("57P01".into()),
            constraint: None,
            table: None,
            kind: sqlx::error::ErrorKind::Other,
        }));
        assert!(!may_be_one_rows_fault(&gone));
        for error in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            sqlx::Error::Protocol("eof".into()),
        ] {
            assert!(connection_failure(&error), "{error}");
            assert!(!may_be_one_rows_fault(&error), "{error}");
        }
    }

    #[test]
    fn a_duplicated_error_keeps_what_the_api_maps_on() {
        let original = sqlx::Error::Database(Box::new(SharedDatabaseError {
            message: "duplicate key value violates unique constraint".into(),
            code: Some("23505".into()),
            constraint: Some("records_pkey".into()),
            table: Some("records".into()),
            kind: sqlx::error::ErrorKind::UniqueViolation,
        }));
        let copy = duplicate(&original);
        let db = copy.as_database_error().expect("still a database error");
        assert_eq!(db.code().as_deref(), Some("23505"));
        assert!(db.is_unique_violation());
        assert_eq!(db.constraint(), Some("records_pkey"));
        assert_eq!(copy.to_string(), original.to_string());

        let io = duplicate(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(
            matches!(&io, sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
        );
        assert!(matches!(
            duplicate(&sqlx::Error::PoolTimedOut),
            sqlx::Error::PoolTimedOut
        ));
        assert!(matches!(
            duplicate(&sqlx::Error::RowNotFound),
            sqlx::Error::Configuration(_)
        ));
    }
}
