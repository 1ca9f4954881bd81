//! The registry of generated images.

use sqlx::PgPool;
use uuid::Uuid;

use crate::fingerprint::iscc::ImageCode;
use crate::provenance::record::RECORD_COLUMNS;
use crate::provenance::Record;
use crate::store::signing_keys::StoredKey;

/// Inserts generated records with their variant pHashes and their transparency-log entries in one
/// statement: one round trip and one implicit transaction (all or nothing), whatever their number.
/// `manifest_sha256[i]` is the SHA-256 of `records[i]`'s manifest store; `hashes` are each
/// record's variant pHashes (whole image first); `iscc` their ISCC Content-Code Images
/// (`record_iscc`); `log_entries` are handed to the sequencer
/// (`log_pending`) in the order given; `journal` holds the bytes of blobs written without a
/// sync (`blob_journal`, see `store::blob_journal`), each with the record it belongs to.
///
/// The statement is also the generation's key check: a record made with an API key is inserted
/// only while that key is live (not revoked) when the statement runs, and with it its hashes,
/// ISCC, log entry and journal rows; the records of revoked keys are left out. Returns the ids
/// of the records inserted.
///
/// # Errors
/// When the database fails (nothing is inserted then).
#[tracing::instrument(skip_all, fields(records = records.len()))]
pub async fn insert_generated(
    pool: &PgPool,
    records: &[Record],
    manifest_sha256: &[Vec<u8>],
    hashes: &[(Uuid, Vec<u64>)],
    iscc: &[(Uuid, ImageCode)],
    log_entries: &[(Uuid, Vec<u8>)],
    journal: &[(Uuid, Vec<u8>, bytes::Bytes)],
) -> Result<Vec<Uuid>, sqlx::Error> {
    debug_assert_eq!(records.len(), manifest_sha256.len());
    if records.is_empty() {
        return Ok(Vec::new());
    }
    // One array per column, in the table's order.
    macro_rules! column {
        ($field:ident) => {
            records
                .iter()
                .map(|r| r.fields.$field.clone())
                .collect::<Vec<_>>()
        };
    }
    let (hash_ids, variants, phashes) = hash_columns(hashes);
    let (iscc_ids, [iscc_w0, iscc_w1, iscc_w2, iscc_w3]) = super::record_iscc::columns(iscc);
    let (log_ids, log_bytes): (Vec<Uuid>, Vec<Vec<u8>>) = log_entries.iter().cloned().unzip();
    let journal_records: Vec<Uuid> = journal.iter().map(|(id, _, _)| *id).collect();
    let journal_hashes: Vec<&[u8]> = journal.iter().map(|(_, sha, _)| sha.as_slice()).collect();
    let journal_bytes: Vec<&[u8]> = journal.iter().map(|(_, _, bytes)| bytes.as_ref()).collect();
    // Data-modifying CTEs run as one statement: the foreign keys of `record_hashes` and
    // `record_iscc` are checked at its end, when the records are there. The other CTEs see the
    // records inserted through `new_records`' RETURNING. WITH ORDINALITY keeps the entries' order
    // in `log_pending`'s sequence numbers.
    sqlx::query_scalar(
        "WITH live_keys AS (
            SELECT id FROM api_keys WHERE id = ANY($14::uuid[]) AND revoked_at IS NULL
         ), new_records AS (
            INSERT INTO records (id, created_at, model, model_version, seed, format, width, height,
                file_sha256, pixel_sha256, phash, manifest_id, signing_key_id, api_key_id, encoding,
                signature, manifest_sha256, parent_sha256, operation)
            SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::int8[],
                $6::text[], $7::int4[], $8::int4[], $9::bytea[], $10::bytea[], $11::int8[],
                $12::text[], $13::text[], $14::uuid[], $15::int2[], $16::bytea[], $17::bytea[],
                $31::bytea[], $32::text[])
                AS r(id, created_at, model, model_version, seed, format, width, height,
                     file_sha256, pixel_sha256, phash, manifest_id, signing_key_id, api_key_id,
                     encoding, signature, manifest_sha256, parent_sha256, operation)
            WHERE r.api_key_id IS NULL OR r.api_key_id IN (SELECT id FROM live_keys)
            RETURNING id
         ), new_hashes AS (
            INSERT INTO record_hashes (record_id, variant, phash)
            SELECT * FROM UNNEST($18::uuid[], $19::int2[], $20::int8[]) AS h(record_id, variant, phash)
            WHERE h.record_id IN (SELECT id FROM new_records)
         ), new_iscc AS (
            INSERT INTO record_iscc (record_id, w0, w1, w2, w3)
            SELECT * FROM UNNEST($25::uuid[], $26::int8[], $27::int8[], $28::int8[], $29::int8[])
                AS c(record_id, w0, w1, w2, w3)
            WHERE c.record_id IN (SELECT id FROM new_records)
         ), journaled AS (
            INSERT INTO blob_journal (sha256, bytes)
            SELECT j.sha256, j.bytes FROM UNNEST($30::uuid[], $23::bytea[], $24::bytea[])
                AS j(record_id, sha256, bytes)
            WHERE j.record_id IN (SELECT id FROM new_records)
            ON CONFLICT (sha256) DO NOTHING
         ), logged AS (
            INSERT INTO log_pending (record_id, entry)
            SELECT t.record_id, t.entry FROM UNNEST($21::uuid[], $22::bytea[])
                WITH ORDINALITY AS t(record_id, entry, n)
            WHERE t.record_id IN (SELECT id FROM new_records)
            ORDER BY t.n
         )
         SELECT id FROM new_records",
    )
    .bind(column!(id))
    .bind(column!(created_at))
    .bind(column!(model))
    .bind(column!(model_version))
    .bind(column!(seed))
    .bind(column!(format))
    .bind(column!(width))
    .bind(column!(height))
    .bind(column!(file_sha256))
    .bind(column!(pixel_sha256))
    .bind(column!(phash))
    .bind(column!(manifest_id))
    .bind(column!(signing_key_id))
    .bind(column!(api_key_id))
    .bind(column!(encoding))
    .bind(
        records
            .iter()
            .map(|r| r.signature.clone())
            .collect::<Vec<_>>(),
    )
    .bind(manifest_sha256)
    .bind(&hash_ids)
    .bind(&variants)
    .bind(&phashes)
    .bind(&log_ids)
    .bind(&log_bytes)
    .bind(&journal_hashes)
    .bind(&journal_bytes)
    .bind(&iscc_ids)
    .bind(&iscc_w0)
    .bind(&iscc_w1)
    .bind(&iscc_w2)
    .bind(&iscc_w3)
    .bind(&journal_records)
    .bind(column!(parent_sha256))
    .bind(column!(operation))
    .fetch_all(pool)
    .await
}

/// The `record_hashes` columns: a row per registered variant (record id, variant, pHash).
fn hash_columns(hashes: &[(Uuid, Vec<u64>)]) -> (Vec<Uuid>, Vec<i16>, Vec<i64>) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for (id, list) in hashes {
        for (variant, &phash) in list.iter().enumerate() {
            columns.0.push(*id);
            columns.1.push(i16::try_from(variant).unwrap_or(i16::MAX));
            columns.2.push(crate::fingerprint::phash_to_db(phash));
        }
    }
    columns
}

/// The earliest record whose decoded pixels have this SHA-256.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn by_pixel_sha256(pool: &PgPool, sha: &[u8; 32]) -> Result<Option<Record>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE pixel_sha256 = $1 ORDER BY created_at LIMIT 1"
    ))
    .bind(&sha[..])
    .fetch_optional(pool)
    .await
}

/// A page of records in (created_at, id) order after `after` (from the start when `None`), at
/// most `limit`: keyset paging, so a large registry is never held in memory at once.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn page_after(
    pool: &PgPool,
    after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Record>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM records \
         WHERE $1::timestamptz IS NULL OR (created_at, id) > ($1, $2) \
         ORDER BY created_at, id LIMIT $3"
    ))
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Which of `hashes` (the blob store's names) some record references, as its file or as its
/// manifest store.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn existing_file_hashes(
    pool: &PgPool,
    hashes: &[Vec<u8>],
) -> Result<std::collections::HashSet<Vec<u8>>, sqlx::Error> {
    let rows: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT file_sha256 FROM records WHERE file_sha256 = ANY($1)
         UNION
         SELECT manifest_sha256 FROM records WHERE manifest_sha256 = ANY($1)",
    )
    .bind(hashes)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// For the record whose manifest id is `manifest_id` (its `urn:c2pa:...` label): the SHA-256 of
/// its manifest store, `None` inside until `hallmark backfill` has extracted it. `None` outside
/// when no record has that manifest id.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn manifest_sha256_by_manifest_id(
    pool: &PgPool,
    manifest_id: &str,
) -> Result<Option<Option<Vec<u8>>>, sqlx::Error> {
    sqlx::query_scalar("SELECT manifest_sha256 FROM records WHERE manifest_id = $1 LIMIT 1")
        .bind(manifest_id)
        .fetch_optional(pool)
        .await
}

/// The SHA-256 of a record's manifest store, when it is in the repository.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn manifest_sha256(pool: &PgPool, id: Uuid) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let row: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT manifest_sha256 FROM records WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.flatten())
}

/// Records whose manifest store is not in the repository yet, in (created_at, id) order after
/// `after` (from the start when `None`), at most `limit`.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn without_manifest(
    pool: &PgPool,
    after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Record>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM records
         WHERE manifest_sha256 IS NULL
           AND ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2))
         ORDER BY created_at, id LIMIT $3"
    ))
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Links a record to its manifest store (`hallmark backfill`).
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn set_manifest_sha256(pool: &PgPool, id: Uuid, sha: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE records SET manifest_sha256 = $2 WHERE id = $1")
        .bind(id)
        .bind(sha)
        .execute(pool)
        .await?;
    Ok(())
}

/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<Record>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The records with these ids, in no particular order (one round trip).
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn by_ids(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Record>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Records whose signed file has this SHA-256 (normally one).
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn by_file_sha256(pool: &PgPool, sha256: &[u8]) -> Result<Vec<Record>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE file_sha256 = $1 ORDER BY created_at"
    ))
    .bind(sha256)
    .fetch_all(pool)
    .await
}

/// The signing key and its certificate chain, to check a record offline.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn signing_key(
    pool: &PgPool,
    key_id: &str,
) -> Result<Option<(StoredKey, String)>, sqlx::Error> {
    let row: Option<(String, String, Vec<u8>, String)> = sqlx::query_as(
        "SELECT id, algorithm, public_key, cert_chain_pem FROM signing_keys WHERE id = $1",
    )
    .bind(key_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, algorithm, public_key, cert_chain_pem)| {
        (
            StoredKey {
                id,
                algorithm,
                public_key,
            },
            cert_chain_pem,
        )
    }))
}
