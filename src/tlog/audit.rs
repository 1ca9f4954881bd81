//! `hallmark log verify`: the whole log re-checked from PostgreSQL. The tree is rebuilt from the
//! entries alone and compared with every stored hash; every checkpoint's signature is checked
//! with the pinned verifier key and its root against the rebuilt tree (so all checkpoints are
//! heads of one append-only tree; each is also proved consistent with the one before it); and
//! every entry is compared with its record row, so a record deleted or edited after it was
//! logged is named.

use std::collections::HashMap;
use std::fmt;

use sqlx::PgPool;
use tlog_tiles::{
    check_tree, prove_tree, stored_hash_index, stored_hashes, tree_hash, Hash, EMPTY_HASH,
};
use uuid::Uuid;

use super::hashes::StoredHashes;
use super::note::verify_checkpoint;
use super::{entry, entry_record_id, LogError};
use crate::store::{log as store, records};

/// Entries read (and records compared) per round trip.
const PAGE: i64 = 1000;

/// Something wrong with the log or the registry it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Entry indices are not 0, 1, 2, ...
    Gap { expected: u64, found: u64 },
    /// A stored Merkle hash differs from the one rebuilt from the entries (or is missing).
    StoredHash { index: u64 },
    /// Stored hashes beyond the tree the entries make.
    ExtraHashes { count: usize },
    /// A checkpoint's note does not verify with the log key (or does not parse).
    CheckpointSignature { size: i64, error: String },
    /// A checkpoint's root is not the root of the first `size` entries.
    CheckpointRoot { size: i64 },
    /// Not consistent with the checkpoint before it.
    Inconsistent { old: i64, new: i64 },
    /// The entry names a different record than its row says.
    EntryRecordMismatch { index: u64, record_id: Uuid },
    /// The logged record's row is gone.
    RecordDeleted { index: u64, record_id: Uuid },
    /// The logged record's row no longer has the bytes that were logged.
    RecordEdited { index: u64, record_id: Uuid },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gap { expected, found } => {
                write!(f, "entry {found} where entry {expected} should be")
            }
            Self::StoredHash { index } => write!(
                f,
                "stored hash {index} is not the one the entries give (tiles built from it are wrong)"
            ),
            Self::ExtraHashes { count } => {
                write!(f, "{count} stored hashes beyond the tree the entries make")
            }
            Self::CheckpointSignature { size, error } => {
                write!(f, "checkpoint of size {size}: {error}")
            }
            Self::CheckpointRoot { size } => write!(
                f,
                "checkpoint of size {size}: its root is not the root of the first {size} entries"
            ),
            Self::Inconsistent { old, new } => write!(
                f,
                "checkpoint of size {new} is not consistent with the one of size {old}"
            ),
            Self::EntryRecordMismatch { index, record_id } => write!(
                f,
                "entry {index}: its bytes name another record than {record_id}"
            ),
            Self::RecordDeleted { index, record_id } => write!(
                f,
                "entry {index}: record {record_id} was logged but its row is gone (DELETED)"
            ),
            Self::RecordEdited { index, record_id } => write!(
                f,
                "entry {index}: record {record_id} no longer matches what was logged (EDITED)"
            ),
        }
    }
}

/// What [`audit`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub entries: u64,
    pub checkpoints: usize,
    pub problems: Vec<Problem>,
}

impl AuditReport {
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the whole log (see the module docs) against `verifier_key` and `origin`.
///
/// Holds the rebuilt tree's hashes in memory (about 80 bytes an entry): fine for millions of
/// entries.
///
/// # Errors
/// When the database fails; everything wrong with the data is a [`Problem`] in the report.
pub async fn audit(
    pool: &PgPool,
    verifier_key: &str,
    origin: &str,
) -> Result<AuditReport, LogError> {
    let mut report = AuditReport::default();
    let mut tree = StoredHashes::Known(HashMap::new());
    let mut expected: u64 = 0;
    loop {
        let rows = store::entries(
            pool,
            as_i64(expected),
            as_i64(expected).saturating_add(PAGE),
        )
        .await?;
        let rows = if rows.is_empty() {
            // A gap: carry on from the next entry there is, if any.
            store::entries(pool, as_i64(expected), i64::MAX)
                .await?
                .into_iter()
                .take(1)
                .collect()
        } else {
            rows
        };
        if rows.is_empty() {
            break;
        }
        let ids: Vec<Uuid> = rows.iter().map(|row| row.record_id).collect();
        let found: HashMap<Uuid, _> = records::by_ids(pool, &ids)
            .await?
            .into_iter()
            .map(|record| (record.fields.id, record))
            .collect();
        for row in &rows {
            let index = u64::try_from(row.idx).unwrap_or(0);
            if index != expected {
                report.problems.push(Problem::Gap {
                    expected,
                    found: index,
                });
                // The tree cannot be rebuilt past a gap.
                report.entries = expected;
                return finish(pool, report, &tree, verifier_key, origin, expected).await;
            }
            let base = stored_hash_index(0, index);
            for (i, hash) in (base..).zip(stored_hashes(index, &row.entry, &tree)?) {
                tree.insert(i, hash);
            }
            let record_id = row.record_id;
            if entry_record_id(&row.entry) != Some(record_id) {
                report
                    .problems
                    .push(Problem::EntryRecordMismatch { index, record_id });
            }
            match found.get(&record_id) {
                None => report
                    .problems
                    .push(Problem::RecordDeleted { index, record_id }),
                Some(record) if entry(record) != row.entry => report
                    .problems
                    .push(Problem::RecordEdited { index, record_id }),
                Some(_) => {}
            }
            expected += 1;
        }
    }
    report.entries = expected;
    finish(pool, report, &tree, verifier_key, origin, expected).await
}

/// The checks on the tree the entries made: stored hashes, checkpoints, consistency.
async fn finish(
    pool: &PgPool,
    mut report: AuditReport,
    tree: &StoredHashes,
    verifier_key: &str,
    origin: &str,
    size: u64,
) -> Result<AuditReport, LogError> {
    let StoredHashes::Known(rebuilt) = tree else {
        return Ok(report);
    };
    let stored = store::all_hashes(pool).await?;
    let mut extra = 0;
    let mut seen = 0;
    for (index, hash) in &stored {
        let index = u64::try_from(*index).unwrap_or(u64::MAX);
        match rebuilt.get(&index) {
            Some(want) => {
                seen += 1;
                if want.0.as_slice() != hash.as_slice() {
                    report.problems.push(Problem::StoredHash { index });
                }
            }
            None => extra += 1,
        }
    }
    if seen < rebuilt.len() {
        let stored: std::collections::HashSet<i64> = stored.iter().map(|(i, _)| *i).collect();
        if let Some(index) = rebuilt.keys().find(|i| !stored.contains(&as_i64(**i))) {
            report.problems.push(Problem::StoredHash { index: *index });
        }
    }
    if extra > 0 {
        report.problems.push(Problem::ExtraHashes { count: extra });
    }

    let checkpoints = store::checkpoints(pool).await?;
    report.checkpoints = checkpoints.len();
    let mut previous: Option<(i64, Hash)> = None;
    for checkpoint in checkpoints {
        let signed = match verify_checkpoint(&checkpoint.note, verifier_key, origin) {
            Ok(signed) => signed,
            Err(error) => {
                report.problems.push(Problem::CheckpointSignature {
                    size: checkpoint.size,
                    error: error.to_string(),
                });
                continue;
            }
        };
        let n = u64::try_from(checkpoint.size).unwrap_or(u64::MAX);
        let rebuilt_root = if n == 0 {
            Some(EMPTY_HASH)
        } else if n <= size {
            tree_hash(n, tree).ok()
        } else {
            None
        };
        if signed.size != n
            || rebuilt_root != Some(signed.root)
            || checkpoint.root.as_slice() != signed.root.0.as_slice()
        {
            report.problems.push(Problem::CheckpointRoot {
                size: checkpoint.size,
            });
            continue;
        }
        if let Some((old, old_root)) = previous {
            let old_n = u64::try_from(old).unwrap_or(0);
            let consistent = old_n == 0
                || prove_tree(n, old_n, tree)
                    .is_ok_and(|proof| check_tree(&proof, n, signed.root, old_n, old_root).is_ok());
            if !consistent {
                report.problems.push(Problem::Inconsistent {
                    old,
                    new: checkpoint.size,
                });
            }
        }
        previous = Some((checkpoint.size, signed.root));
    }
    Ok(report)
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
