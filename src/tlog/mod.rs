//! The public transparency log: every registry record appended to an append-only Merkle log
//! whose signed checkpoints anyone can audit, in the C2SP formats byte for byte —
//! [tlog-tiles](https://c2sp.org/tlog-tiles) (static tiles and entry bundles),
//! [tlog-checkpoint](https://c2sp.org/tlog-checkpoint) and
//! [signed-note](https://c2sp.org/signed-note) (Ed25519, C2SP key ids), and
//! [tlog-proof](https://c2sp.org/tlog-proof) (offline inclusion proofs). Merkle hashing is RFC
//! 6962's: leaf SHA-256(0x00 ‖ entry), node SHA-256(0x01 ‖ left ‖ right).
//!
//! The tree arithmetic (stored hashes, roots, inclusion and consistency proofs, which hashes a
//! tile holds) is the `tlog_tiles` crate's (cloudflare/azul, a port of Go's `sumdb/tlog` that
//! Go's checksum database has run for years); note signing and verification are `signed_note`'s
//! (same authors). What is ours: the entry, the C2SP tile paths (the crate's `Tile::path` is the
//! sumdb form with the height in it), entry bundles, the proof text, and where things are kept.
//!
//! # Entries
//!
//! One entry per record: the record's canonical signed encoding
//! ([`crate::provenance::record::canonical_bytes`]: `hallmark-record-v2\0` then the
//! length-prefixed fields) followed by its signature (64 bytes for Ed25519 and ES256, 96 for
//! ES384). A monitor rebuilds the
//! canonical encoding from the public record (`GET /v1/records/{id}` shows every signed field,
//! and `api_key_commitment` rather than the key id) and compares bytes, and checks the signature
//! with the published signing key; the record id is the 16 bytes after the 19-byte domain and
//! the 4-byte length ([`entry_record_id`]). Entries are far below the 65,535 bytes an entry
//! bundle's uint16 length allows (the tables refuse larger ones).
//!
//! # Sequencing and integration
//!
//! A record's entry is written to `log_pending` in the same transaction as the record, so no
//! record commits without its entry and no entry without its record. Every
//! `transparency_log.checkpoint_interval_ms`, each replica's [`Log`] tries to integrate: in one
//! transaction that first takes `pg_try_advisory_xact_lock` (so one replica at a time extends
//! the log; the others skip the round and leave their entries to it), pending rows get the next
//! indices in hand-over order, their Merkle hashes go to `log_hashes`, the new root is signed as
//! a checkpoint and everything commits at once: the log cannot fork or leave a gap. Only after
//! the commit are the new tiles, entry bundles and checkpoint written to the blob store under
//! `log/` (so the log can be served as static files from a bucket or a CDN); they are derived
//! data, rebuilt from PostgreSQL when the service starts or when one is missing. Records made
//! before the log are handed over (under the same lock) by `hallmark log backfill`.

pub mod audit;
pub mod hashes;
pub mod monitor;
pub mod note;
pub mod proof;
pub mod sequencer;
pub mod tiles;
pub mod witness;

pub use note::{verify_checkpoint, LogSigner, VerifiedCheckpoint};
pub use sequencer::{Integration, Log, ProofState};
pub use tiles::{TileKind, TilePath};

use uuid::Uuid;

use crate::provenance::record::{canonical_bytes, RECORD_DOMAIN_V2};
use crate::provenance::Record;

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("blob store: {0}")]
    Blobs(#[from] crate::store::blobs::BlobError),
    #[error("the log's stored hashes are incomplete or inconsistent: {0}")]
    Tree(#[from] tlog_tiles::Error),
    #[error("the transparency log key: {0}")]
    Key(String),
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(String),
    #[error("the checkpoint's signature does not verify: {0}")]
    BadSignature(String),
    #[error("malformed proof: {0}")]
    MalformedProof(String),
    #[error("the inclusion proof does not lead to the checkpoint's root")]
    BadProof,
    #[error("an entry of {0} bytes does not fit an entry bundle (at most 65535)")]
    EntryTooLarge(usize),
    #[error("witness: {0}")]
    Witness(String),
}

/// The log entry of a record: its canonical signed encoding, then its signature.
#[must_use]
pub fn entry(record: &Record) -> Vec<u8> {
    let mut bytes = canonical_bytes(&record.fields);
    bytes.extend_from_slice(&record.signature);
    bytes
}

/// The record id an entry names, when it is long enough to hold one.
#[must_use]
pub fn entry_record_id(entry: &[u8]) -> Option<Uuid> {
    let start = RECORD_DOMAIN_V2.len() + 4;
    let bytes = entry.get(start..start + 16)?;
    Uuid::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::record::sign_record;
    use crate::provenance::PrivateKey;
    use ed25519_dalek::SigningKey;
    use rand_core::OsRng;

    fn record() -> Record {
        let key = PrivateKey::from(SigningKey::generate(&mut OsRng));
        let fields = crate::provenance::record::tests::fields(&key);
        Record {
            signature: sign_record(&fields, &key).unwrap(),
            fields,
        }
    }

    #[test]
    fn an_entry_is_the_canonical_encoding_then_the_signature_and_names_its_record() {
        let record = record();
        let entry = entry(&record);
        assert!(entry.starts_with(&canonical_bytes(&record.fields)));
        assert!(entry.ends_with(&record.signature));
        assert_eq!(entry.len(), canonical_bytes(&record.fields).len() + 64);
        assert!(entry.len() < 1024);
        assert_eq!(entry_record_id(&entry), Some(record.fields.id));
        assert_eq!(entry_record_id(&entry[..30]), None);
    }
}
