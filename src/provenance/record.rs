//! Registry records and their signatures.
//!
//! Every row of `records` carries a signature by the service's signing key over the canonical
//! encoding of its fields, so that an edited row is caught (`hallmark verify-record`).
//!
//! # Canonical encoding (versions 1 and 2)
//!
//! The bytes signed are a domain-separation prefix — `hallmark-record-v2\0` (19 bytes) for
//! records made since version 2, `hallmark-record-v1\0` before — then each field below in this
//! fixed order, each as a 4-byte big-endian length followed by that many bytes:
//!
//! | # | field | bytes |
//! |---|---|---|
//! | 1 | `id` | the 16 bytes of the UUID |
//! | 2 | `created_at` | microseconds since the Unix epoch, i64 big-endian (8) |
//! | 3 | `model` | UTF-8 |
//! | 4 | `model_version` | UTF-8 |
//! | 5 | `seed` | i64 big-endian (8) |
//! | 6 | `format` | UTF-8 (`png`, `jpeg`, `webp`) |
//! | 7 | `width` | i32 big-endian (4) |
//! | 8 | `height` | i32 big-endian (4) |
//! | 9 | `file_sha256` | raw bytes (32) |
//! | 10 | `pixel_sha256` | raw bytes (32) |
//! | 11 | `phash` | i64 big-endian (8) |
//! | 12 | `manifest_id` | UTF-8 |
//! | 13 | `signing_key_id` | UTF-8 (32 hex digits) |
//! | 14 | v2: `api_key_commitment`; v1: `api_key_id` | empty (length 0) when no API key made the record; else v2: the 32-byte commitment below, v1: the 16 bytes of the key's UUID |
//!
//! # Version 3: edits
//!
//! An enhancement's record (an edit of an upload, `src/enhance/`) is signed with version 3:
//! the prefix `hallmark-record-v3\0`, fields 1-14 as version 2, then
//!
//! | # | field | bytes |
//! |---|---|---|
//! | 15 | `parent_sha256` | the SHA-256 of the upload's bytes (32) |
//! | 16 | `operation` | UTF-8 (`restore`, `inpaint`, `upscale`) |
//!
//! The commitment is SHA-256(`hallmark-key-commitment-v1\0` ‖ record id (16 bytes) ‖ API key
//! id (16 bytes)). Public answers show it instead of the key id: a record no longer names (or
//! dates, as a UUIDv7 would) the customer key that made it, nor links records made by one key,
//! yet anyone can check the signature, and the key's holder (or an admin) can show that the
//! record is theirs. Version 1 records sign the key id itself: their public answers omit it, so
//! only a holder of the key id checks them offline; the server's `signature_valid` covers both.
//!
//! PostgreSQL keeps timestamps to the microsecond, so `created_at` must have no finer part when
//! signed ([`now_micros`] gives such a time); [`sign_record`] refuses one that has.
//! The signature of those bytes is by the key that signs the images' C2PA claims, in its
//! fixed-size form ([`super::keys`]): 64 bytes for Ed25519 (RFC 8032; verified with
//! `verify_strict`) and ES256 (`r ‖ s` over SHA-256), 96 for ES384 (`r ‖ s` over SHA-384).
//! `signing_keys.algorithm` says which.

use chrono::{DateTime, SubsecRound, Utc};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::{PrivateKey, PublicKey, SignatureError};

/// Domain separation for version 1 of the encoding.
pub const RECORD_DOMAIN: &[u8] = b"hallmark-record-v1\0";
/// Domain separation for version 2, which signs [`api_key_commitment`] instead of the key id.
pub const RECORD_DOMAIN_V2: &[u8] = b"hallmark-record-v2\0";
/// Domain separation for version 3, which adds the edited upload and the operation.
pub const RECORD_DOMAIN_V3: &[u8] = b"hallmark-record-v3\0";
/// The encoding new records of generated images are signed with.
pub const CURRENT_ENCODING: i16 = 2;
/// The encoding records of edits (enhancements) are signed with.
pub const EDIT_ENCODING: i16 = 3;
const KEY_COMMITMENT_DOMAIN: &[u8] = b"hallmark-key-commitment-v1\0";

/// SHA-256 commitment to the API key that made record `record_id` (see the module docs).
#[must_use]
pub fn api_key_commitment(record_id: Uuid, api_key_id: Uuid) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(KEY_COMMITMENT_DOMAIN);
    hasher.update(record_id.as_bytes());
    hasher.update(api_key_id.as_bytes());
    hasher.finalize().into()
}

/// The name of an encoding version, as the API shows it.
#[must_use]
pub fn encoding_name(encoding: i16) -> &'static str {
    match encoding {
        3 => "hallmark-record-v3",
        2 => "hallmark-record-v2",
        _ => "hallmark-record-v1",
    }
}

/// The signed fields of a `records` row (everything but the signature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct RecordFields {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub model: String,
    pub model_version: String,
    pub seed: i64,
    pub format: String,
    pub width: i32,
    pub height: i32,
    pub file_sha256: Vec<u8>,
    pub pixel_sha256: Vec<u8>,
    pub phash: i64,
    pub manifest_id: String,
    pub signing_key_id: String,
    pub api_key_id: Option<Uuid>,
    /// The canonical encoding version the signature covers (1, 2, or 3 for an edit).
    pub encoding: i16,
    /// For an edit: the SHA-256 of the upload it was made from (encoding 3).
    pub parent_sha256: Option<Vec<u8>>,
    /// For an edit: `restore`, `inpaint` or `upscale` (encoding 3).
    pub operation: Option<String>,
}

/// A `records` row: its fields and their signature. Reads with
/// `SELECT id, created_at, model, model_version, seed, format, width, height, file_sha256,
/// pixel_sha256, phash, manifest_id, signing_key_id, api_key_id, encoding, parent_sha256,
/// operation, signature FROM records`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Record {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub fields: RecordFields,
    pub signature: Vec<u8>,
}

/// The columns of a [`Record`], in the order of a `SELECT`.
pub const RECORD_COLUMNS: &str = "id, created_at, model, model_version, seed, format, width, \
     height, file_sha256, pixel_sha256, phash, manifest_id, signing_key_id, api_key_id, encoding, \
     parent_sha256, operation, signature";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("created_at has a part finer than a microsecond, which PostgreSQL would not keep")]
    SubMicrosecondTime,
    #[error("the record names signing key {record}, not the given key {given}")]
    KeyMismatch { record: String, given: String },
    #[error("the signature is not {expected} bytes")]
    MalformedSignature { expected: usize },
    #[error("the signature does not match the record's fields")]
    BadSignature,
}

/// The current time, truncated to the microsecond (what PostgreSQL stores).
#[must_use]
pub fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The canonical encoding described in the module documentation.
#[must_use]
pub fn canonical_bytes(fields: &RecordFields) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, bytes: &[u8]) {
        // Fields are far below 4 GiB; saturate rather than wrap just in case.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut out = Vec::with_capacity(256 + fields.model.len() + fields.manifest_id.len());
    // Version 3 is version 2 with the edit's two fields after the others.
    let v2 = fields.encoding >= 2;
    out.extend_from_slice(match fields.encoding {
        3 => RECORD_DOMAIN_V3,
        2 => RECORD_DOMAIN_V2,
        _ => RECORD_DOMAIN,
    });
    put(&mut out, fields.id.as_bytes());
    put(
        &mut out,
        &fields.created_at.timestamp_micros().to_be_bytes(),
    );
    put(&mut out, fields.model.as_bytes());
    put(&mut out, fields.model_version.as_bytes());
    put(&mut out, &fields.seed.to_be_bytes());
    put(&mut out, fields.format.as_bytes());
    put(&mut out, &fields.width.to_be_bytes());
    put(&mut out, &fields.height.to_be_bytes());
    put(&mut out, &fields.file_sha256);
    put(&mut out, &fields.pixel_sha256);
    put(&mut out, &fields.phash.to_be_bytes());
    put(&mut out, fields.manifest_id.as_bytes());
    put(&mut out, fields.signing_key_id.as_bytes());
    match (fields.api_key_id, v2) {
        (None, _) => put(&mut out, &[]),
        (Some(key), true) => put(&mut out, &api_key_commitment(fields.id, key)),
        (Some(key), false) => put(&mut out, key.as_bytes()),
    }
    if fields.encoding == 3 {
        put(
            &mut out,
            fields.parent_sha256.as_deref().unwrap_or_default(),
        );
        put(
            &mut out,
            fields.operation.as_deref().unwrap_or_default().as_bytes(),
        );
    }
    out
}

/// Signs the record's canonical encoding; returns the signature for `records.signature`.
///
/// # Errors
/// When `created_at` has a sub-microsecond part, or `signing_key_id` does not name `key`.
pub fn sign_record(fields: &RecordFields, key: &PrivateKey) -> Result<Vec<u8>, RecordError> {
    if !fields
        .created_at
        .timestamp_subsec_nanos()
        .is_multiple_of(1000)
    {
        return Err(RecordError::SubMicrosecondTime);
    }
    let given = key.public().id();
    if fields.signing_key_id != given {
        return Err(RecordError::KeyMismatch {
            record: fields.signing_key_id.clone(),
            given,
        });
    }
    Ok(key.sign(&canonical_bytes(fields)))
}

/// Checks a record's signature with `key`, which must be the key its `signing_key_id` names.
///
/// # Errors
/// When the key is not the one named, or the signature is malformed or does not match.
pub fn verify_record(record: &Record, key: &PublicKey) -> Result<(), RecordError> {
    let given = key.id();
    if record.fields.signing_key_id != given {
        return Err(RecordError::KeyMismatch {
            record: record.fields.signing_key_id.clone(),
            given,
        });
    }
    key.verify(&canonical_bytes(&record.fields), &record.signature)
        .map_err(|error| match error {
            SignatureError::Malformed { expected } => RecordError::MalformedSignature { expected },
            SignatureError::Mismatch => RecordError::BadSignature,
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use rand_core::OsRng;

    /// Signed fields of a made-up record, for tests here and in other modules.
    pub(crate) fn fields(key: &PrivateKey) -> RecordFields {
        RecordFields {
            id: Uuid::new_v4(),
            created_at: now_micros(),
            model: "fashion-dcgan32".into(),
            model_version: "1".into(),
            seed: 42,
            format: "png".into(),
            width: 32,
            height: 32,
            file_sha256: vec![1; 32],
            pixel_sha256: vec![2; 32],
            phash: -5,
            manifest_id: "urn:c2pa:00000000-0000-4000-8000-000000000000".into(),
            signing_key_id: key.public().id(),
            api_key_id: Some(Uuid::now_v7()),
            encoding: CURRENT_ENCODING,
            parent_sha256: None,
            operation: None,
        }
    }

    /// An edit's record is signed with version 3, which covers the upload and the operation;
    /// the fields 1-14 are version 2's.
    #[test]
    fn an_edit_record_signs_its_upload_and_operation() {
        let key = PrivateKey::from(SigningKey::generate(&mut OsRng));
        let mut f = fields(&key);
        let v2 = canonical_bytes(&f);
        f.encoding = EDIT_ENCODING;
        f.parent_sha256 = Some(vec![7; 32]);
        f.operation = Some("inpaint".into());
        let v3 = canonical_bytes(&f);
        assert_eq!(&v3[..RECORD_DOMAIN_V3.len()], RECORD_DOMAIN_V3);
        assert_eq!(
            &v3[RECORD_DOMAIN_V3.len()..v2.len()],
            &v2[RECORD_DOMAIN_V2.len()..],
            "fields 1-14 as in version 2"
        );
        let mut tail = vec![0, 0, 0, 32];
        tail.extend([7; 32]);
        tail.extend([0, 0, 0, 7]);
        tail.extend(b"inpaint");
        assert_eq!(&v3[v2.len()..], &tail[..]);
        assert_eq!(encoding_name(EDIT_ENCODING), "hallmark-record-v3");
        let record = Record {
            signature: sign_record(&f, &key).unwrap(),
            fields: f,
        };
        verify_record(&record, &key.public()).unwrap();
        type Edit = fn(&mut RecordFields);
        let edits: [(&str, Edit); 4] = [
            ("parent_sha256", |f| f.parent_sha256 = Some(vec![8; 32])),
            ("parent removed", |f| f.parent_sha256 = None),
            ("operation", |f| f.operation = Some("restore".into())),
            ("encoding", |f| f.encoding = 2),
        ];
        for (name, edit) in edits {
            let mut tampered = record.clone();
            edit(&mut tampered.fields);
            assert!(
                verify_record(&tampered, &key.public()).is_err(),
                "changing {name} went unnoticed"
            );
        }
    }

    #[test]
    fn a_signed_record_verifies_and_fails_after_any_field_changes() {
        let key = PrivateKey::from(SigningKey::generate(&mut OsRng));
        let f = fields(&key);
        let record = Record {
            signature: sign_record(&f, &key).unwrap(),
            fields: f,
        };
        verify_record(&record, &key.public()).unwrap();

        type Edit = fn(&mut RecordFields);
        let edits: [(&str, Edit); 16] = [
            ("id", |f| f.id = Uuid::new_v4()),
            ("created_at", |f| {
                f.created_at += chrono::Duration::microseconds(1);
            }),
            ("model", |f| f.model.push('x')),
            ("model_version", |f| f.model_version = "2".into()),
            ("seed", |f| f.seed += 1),
            ("format", |f| f.format = "jpeg".into()),
            ("width", |f| f.width += 1),
            ("height", |f| f.height -= 1),
            ("file_sha256", |f| f.file_sha256[31] ^= 1),
            ("pixel_sha256", |f| f.pixel_sha256[0] ^= 0x80),
            ("phash", |f| f.phash ^= 1 << 40),
            ("manifest_id", |f| f.manifest_id.push('0')),
            ("signing_key_id", |f| f.signing_key_id = "0".repeat(32)),
            ("api_key_id", |f| f.api_key_id = Some(Uuid::nil())),
            ("api_key_id removed", |f| f.api_key_id = None),
            ("encoding", |f| f.encoding = 1),
        ];
        for (name, edit) in edits {
            let mut tampered = record.clone();
            edit(&mut tampered.fields);
            assert_ne!(tampered, record, "{name}");
            assert!(
                verify_record(&tampered, &key.public()).is_err(),
                "changing {name} went unnoticed"
            );
        }
        let mut bad = record.clone();
        bad.signature[0] ^= 1;
        assert_eq!(
            verify_record(&bad, &key.public()),
            Err(RecordError::BadSignature)
        );
        bad.signature.pop();
        assert_eq!(
            verify_record(&bad, &key.public()),
            Err(RecordError::MalformedSignature { expected: 64 })
        );
        let other = PrivateKey::from(SigningKey::generate(&mut OsRng));
        assert!(matches!(
            verify_record(&record, &other.public()),
            Err(RecordError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn ecdsa_keys_sign_records_of_their_own_signature_size() {
        let keys = [
            (
                PrivateKey::Es256(p256::ecdsa::SigningKey::random(&mut OsRng)),
                64,
            ),
            (
                PrivateKey::Es384(p384::ecdsa::SigningKey::random(&mut OsRng)),
                96,
            ),
        ];
        for (key, size) in keys {
            let f = fields(&key);
            let record = Record {
                signature: sign_record(&f, &key).unwrap(),
                fields: f,
            };
            assert_eq!(record.signature.len(), size);
            verify_record(&record, &key.public()).unwrap();
            let mut tampered = record.clone();
            tampered.fields.seed += 1;
            assert_eq!(
                verify_record(&tampered, &key.public()),
                Err(RecordError::BadSignature)
            );
            let mut short = record.clone();
            short.signature.truncate(64);
            if size == 96 {
                assert_eq!(
                    verify_record(&short, &key.public()),
                    Err(RecordError::MalformedSignature { expected: 96 })
                );
            }
        }
    }

    #[test]
    fn sub_microsecond_times_and_foreign_key_ids_are_refused() {
        let key = PrivateKey::from(SigningKey::generate(&mut OsRng));
        let mut f = fields(&key);
        f.created_at += chrono::Duration::nanoseconds(1);
        assert_eq!(sign_record(&f, &key), Err(RecordError::SubMicrosecondTime));
        let mut f = fields(&key);
        f.signing_key_id = "ab".repeat(16);
        assert!(matches!(
            sign_record(&f, &key),
            Err(RecordError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn version_2_signs_a_commitment_and_version_1_the_key_itself() {
        let key = PrivateKey::from(SigningKey::generate(&mut OsRng));
        let mut f = fields(&key);
        let api_key = f.api_key_id.unwrap();
        let v2 = canonical_bytes(&f);
        assert!(v2.starts_with(RECORD_DOMAIN_V2));
        let commitment = api_key_commitment(f.id, api_key);
        assert!(v2.ends_with(&commitment));
        assert!(!v2.windows(16).any(|w| w == api_key.as_bytes()));
        // One key's records are not linkable by their commitments.
        assert_ne!(commitment, api_key_commitment(Uuid::now_v7(), api_key));
        f.encoding = 1;
        let v1 = canonical_bytes(&f);
        assert!(v1.starts_with(RECORD_DOMAIN) && v1.ends_with(api_key.as_bytes()));
        // Version 1 records keep verifying.
        let record = Record {
            signature: sign_record(&f, &key).unwrap(),
            fields: f,
        };
        verify_record(&record, &key.public()).unwrap();
    }

    #[test]
    fn the_encoding_separates_fields() {
        let key = PrivateKey::from(SigningKey::generate(&mut OsRng));
        let mut a = fields(&key);
        let mut b = a.clone();
        a.model = "ab".into();
        a.model_version = "c".into();
        b.model = "a".into();
        b.model_version = "bc".into();
        assert_ne!(canonical_bytes(&a), canonical_bytes(&b));
        assert!(canonical_bytes(&a).starts_with(RECORD_DOMAIN_V2));
    }
}
