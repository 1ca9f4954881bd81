//! The tree's stored hashes as the `tlog_tiles` functions read them.
//!
//! Those functions take a synchronous [`HashReader`] and ask for every hash they need in one
//! call, whose indices depend only on the tree sizes, never on hash values. So a computation
//! runs twice: once against a reader that only notes the indices (answering placeholder
//! hashes), then, once those hashes are fetched from PostgreSQL in one query, for real.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use tlog_tiles::{Hash, HashReader, EMPTY_HASH};

/// Stored hashes by stored-hash index, or a recorder of the indices asked for.
#[derive(Debug)]
pub enum StoredHashes {
    Recording(RefCell<BTreeSet<u64>>),
    Known(HashMap<u64, Hash>),
}

impl StoredHashes {
    #[must_use]
    pub fn recording() -> Self {
        Self::Recording(RefCell::new(BTreeSet::new()))
    }

    /// The indices asked for so far (a recorder's), in increasing order.
    #[must_use]
    pub fn recorded(&self) -> Vec<u64> {
        match self {
            Self::Recording(asked) => asked.borrow().iter().copied().collect(),
            Self::Known(_) => Vec::new(),
        }
    }

    /// Adds hashes (a known set's); a recorder ignores them.
    pub fn insert(&mut self, index: u64, hash: Hash) {
        if let Self::Known(map) = self {
            map.insert(index, hash);
        }
    }
}

impl HashReader for StoredHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        match self {
            Self::Recording(asked) => {
                asked.borrow_mut().extend(indexes);
                Ok(vec![EMPTY_HASH; indexes.len()])
            }
            Self::Known(map) => indexes
                .iter()
                .map(|i| {
                    map.get(i)
                        .copied()
                        .ok_or(tlog_tiles::Error::IndexesNotInTree)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tlog_tiles::{prove_record, record_hash, stored_hash_index, stored_hashes, tree_hash};

    #[test]
    fn a_recorded_run_asks_for_what_the_real_run_reads() {
        let mut known = StoredHashes::Known(HashMap::new());
        for n in 0..37u64 {
            let new = stored_hashes(n, &n.to_be_bytes(), &known).unwrap();
            for (i, hash) in new.into_iter().enumerate() {
                known.insert(stored_hash_index(0, n) + i as u64, hash);
            }
        }
        let recorder = StoredHashes::recording();
        prove_record(37, 5, &recorder).unwrap();
        let StoredHashes::Known(all) = &known else {
            unreachable!()
        };
        let subset = StoredHashes::Known(
            recorder
                .recorded()
                .into_iter()
                .map(|i| (i, all[&i]))
                .collect(),
        );
        assert_eq!(
            prove_record(37, 5, &subset).unwrap(),
            prove_record(37, 5, &known).unwrap()
        );
        let root = tree_hash(37, &known).unwrap();
        tlog_tiles::check_record(
            &prove_record(37, 5, &subset).unwrap(),
            37,
            root,
            5,
            record_hash(&5u64.to_be_bytes()),
        )
        .unwrap();
        assert!(StoredHashes::Known(HashMap::new())
            .read_hashes(&[0])
            .is_err());
    }
}
