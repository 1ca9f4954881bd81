//! `record_hashes`: every record's registered 64-bit pHashes (the whole image and its crop
//! windows), with their four 16-bit chunks as indexed generated columns for multi-index hashing
//! (see the `registry` module).

use futures_util::TryStreamExt;
use sqlx::PgPool;
use uuid::Uuid;

/// The records with a hash among the rows `filter` keeps (all when empty) within `$2` bits of
/// one of the query hashes (`$1`, a BIGINT array), nearest first (by their nearest hash, then id),
/// at most `$3`: `(record_id, distance)`.
fn near_sql(filter: &str) -> String {
    format!(
        "SELECT record_id, min(distance)::int4 AS distance FROM (
             SELECT h.record_id,
                    (SELECT min(bit_count((h.phash # q)::bit(64))) FROM unnest($1::int8[]) q)
                        AS distance
             FROM record_hashes h {filter}) near
         WHERE distance <= $2
         GROUP BY record_id ORDER BY distance, record_id LIMIT $3"
    )
}

/// Records with a hash within `max_distance` bits of one of `queries` among the rows where some
/// chunk `phash_c{i}` is in `chunks[i]`, nearest first, at most `limit`: `(record, distance)`.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn near_by_chunks(
    pool: &PgPool,
    queries: &[i64],
    max_distance: u32,
    limit: i64,
    chunks: [Vec<i32>; 4],
) -> Result<Vec<(Uuid, i32)>, sqlx::Error> {
    let [c0, c1, c2, c3] = chunks;
    // Enough memory for an exact bitmap of the probed rows: a lossy one rechecks every row of
    // each touched page (measured 2.7x more rows at 10^7 hashes).
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL work_mem = '64MB'")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query_as(&near_sql(
        "WHERE h.phash_c0 = ANY($4) OR h.phash_c1 = ANY($5) \
         OR h.phash_c2 = ANY($6) OR h.phash_c3 = ANY($7)",
    ))
    .bind(queries)
    .bind(i64::from(max_distance))
    .bind(limit)
    .bind(c0)
    .bind(c1)
    .bind(c2)
    .bind(c3)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// The same search over every row (a full scan).
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn near_by_scan(
    pool: &PgPool,
    queries: &[i64],
    max_distance: u32,
    limit: i64,
) -> Result<Vec<(Uuid, i32)>, sqlx::Error> {
    sqlx::query_as(&near_sql(""))
        .bind(queries)
        .bind(i64::from(max_distance))
        .bind(limit)
        .fetch_all(pool)
        .await
}

/// Every registered hash, streamed in batches of up to 4096 rows to `each`.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn for_each_batch(
    pool: &PgPool,
    mut each: impl FnMut(&mut Vec<(Uuid, i64)>),
) -> Result<(), sqlx::Error> {
    let mut rows =
        sqlx::query_as::<_, (Uuid, i64)>("SELECT record_id, phash FROM record_hashes").fetch(pool);
    let mut batch = Vec::with_capacity(4096);
    while let Some(row) = rows.try_next().await? {
        batch.push(row);
        if batch.len() == batch.capacity() {
            each(&mut batch);
            batch.clear();
        }
    }
    each(&mut batch);
    Ok(())
}

/// The hashes of `records`, grouped by record (variant order within each).
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn of_records(pool: &PgPool, records: &[Uuid]) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT record_id, phash FROM record_hashes WHERE record_id = ANY($1)
         ORDER BY record_id, variant",
    )
    .bind(records)
    .fetch_all(pool)
    .await
}
