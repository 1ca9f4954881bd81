//! `record_iscc`: each record's ISCC Content-Code Image (256 bits, the value of its manifest's
//! `io.iscc.v0` soft binding), searched by Hamming distance for the Soft Binding Resolution API.
//!
//! Multi-index hashing over the body's sixteen 16-bit chunks: a code within `d` bits of a query
//! has, at some position, a chunk within `d / 16` bits of the query's (else it would differ in at
//! least `16 · (d / 16 + 1) > d` bits). The table keeps the chunks tagged with their position in
//! one GIN-indexed array, so a search is one index probe for every tagged value within that radius
//! of the query's chunks, then the exact distance on the rows found.

use sqlx::PgPool;
use uuid::Uuid;

use crate::fingerprint::iscc::ImageCode;
use crate::fingerprint::phash_to_db;

/// Chunk radii above this are searched by a scan: 16 positions × 697 values at radius 3 would
/// probe more than a scan reads on small tables, and a radius-3 search (48 bits of 256) is wider
/// than any match the API makes.
const MAX_PROBE_RADIUS: u32 = 2;

/// The four word columns of `codes` as PostgreSQL stores them (same bits), for `UNNEST`.
fn word_columns<'a>(codes: impl ExactSizeIterator<Item = &'a ImageCode>) -> [Vec<i64>; 4] {
    let mut columns: [Vec<i64>; 4] = std::array::from_fn(|_| Vec::with_capacity(codes.len()));
    for code in codes {
        for (column, word) in columns.iter_mut().zip(code.words()) {
            column.push(phash_to_db(word));
        }
    }
    columns
}

/// Adds (or replaces) records' codes: `codes` are `(record, code)`.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all, fields(codes = codes.len()))]
pub async fn upsert(pool: &PgPool, codes: &[(Uuid, ImageCode)]) -> Result<(), sqlx::Error> {
    let (ids, words) = columns(codes);
    let [w0, w1, w2, w3] = words;
    sqlx::query(
        "INSERT INTO record_iscc (record_id, w0, w1, w2, w3)
         SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::int8[])
         ON CONFLICT (record_id) DO UPDATE
             SET w0 = EXCLUDED.w0, w1 = EXCLUDED.w1, w2 = EXCLUDED.w2, w3 = EXCLUDED.w3",
    )
    .bind(&ids)
    .bind(&w0)
    .bind(&w1)
    .bind(&w2)
    .bind(&w3)
    .execute(pool)
    .await?;
    Ok(())
}

/// The ids and the four word columns of `codes`, for an `UNNEST` insert.
#[must_use]
pub fn columns(codes: &[(Uuid, ImageCode)]) -> (Vec<Uuid>, [Vec<i64>; 4]) {
    let ids = codes.iter().map(|(id, _)| *id).collect();
    (ids, word_columns(codes.iter().map(|(_, code)| code)))
}

/// The records with a code within `max_distance` bits of one of `queries`, nearest first (then by
/// id), at most `limit`: `(record, distance)`.
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn near(
    pool: &PgPool,
    queries: &[ImageCode],
    max_distance: u32,
    limit: usize,
) -> Result<Vec<(Uuid, u32)>, sqlx::Error> {
    let [q0, q1, q2, q3] = word_columns(queries.iter());
    let probes = probes(queries, max_distance);
    // The same SQL either way but for the filter: the chunks probed, or every row.
    let filter = if probes.is_some() {
        "WHERE i.chunks && $7::int4[]"
    } else {
        ""
    };
    let sql = format!(
        "SELECT record_id, distance::int4 FROM (
             SELECT i.record_id,
                    (SELECT min(bit_count((i.w0 # q.w0)::bit(64)) + bit_count((i.w1 # q.w1)::bit(64))
                              + bit_count((i.w2 # q.w2)::bit(64)) + bit_count((i.w3 # q.w3)::bit(64)))
                     FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[]) AS q(w0, w1, w2, w3))
                        AS distance
             FROM record_iscc i {filter}) near
         WHERE distance <= $5
         ORDER BY distance, record_id LIMIT $6"
    );
    let mut query = sqlx::query_as::<_, (Uuid, i32)>(&sql)
        .bind(&q0)
        .bind(&q1)
        .bind(&q2)
        .bind(&q3)
        .bind(i64::from(max_distance))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    if let Some(probes) = probes {
        query = query.bind(probes);
    }
    let rows = query.fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(id, distance)| (id, distance.unsigned_abs()))
        .collect())
}

/// Every tagged chunk value (`position * 65536 + chunk`) within `max_distance / 16` bits of a
/// query's chunk at the same position; `None` when a scan is the better plan.
#[must_use]
pub fn probes(queries: &[ImageCode], max_distance: u32) -> Option<Vec<i32>> {
    let radius = max_distance / 16;
    if radius > MAX_PROBE_RADIUS {
        return None;
    }
    let mut out: Vec<i32> = queries
        .iter()
        .flat_map(|query| {
            query
                .0
                .chunks_exact(2)
                .enumerate()
                .flat_map(move |(position, chunk)| {
                    let chunk = u16::from_be_bytes([chunk[0], chunk[1]]);
                    // Position < 16: at most 15 · 65536 + 65535, well inside an i32.
                    crate::fingerprint::neighbours(chunk, radius)
                        .into_iter()
                        .map(move |value| position as i32 * 65536 + i32::from(value))
                })
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// A record without a code: its id, when it was made (the backfill's cursor) and its image's hash.
pub type Missing = (Uuid, chrono::DateTime<chrono::Utc>, Vec<u8>);

/// Records with no code yet, `(id, created_at, file_sha256)` in (created_at, id) order after `after` (from the
/// start when `None`), at most `limit` (`hallmark backfill`).
///
/// # Errors
/// When the database fails.
#[tracing::instrument(skip_all)]
pub async fn missing(
    pool: &PgPool,
    after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Missing>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, r.created_at, r.file_sha256 FROM records r
         WHERE NOT EXISTS (SELECT 1 FROM record_iscc i WHERE i.record_id = r.id)
           AND ($1::timestamptz IS NULL OR (r.created_at, r.id) > ($1, $2))
         ORDER BY r.created_at, r.id LIMIT $3",
    )
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(seed: u64) -> ImageCode {
        let mut state = seed;
        ImageCode(std::array::from_fn(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        }))
    }

    #[test]
    fn some_probe_holds_every_code_within_the_distance() {
        // The pigeonhole argument, checked on codes at every distance up to 47.
        let query = code(1);
        let mut state = 7u64;
        for max_distance in [0, 15, 16, 31, 32, 47] {
            let probes = probes(&[query], max_distance).unwrap();
            for distance in 0..=max_distance {
                for _ in 0..50 {
                    let mut other = query;
                    while other.distance(&query) < distance {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1);
                        let bit = (state >> 56) as usize;
                        other.0[bit / 8] ^= 0x80 >> (bit % 8);
                    }
                    let hit = other.0.chunks_exact(2).enumerate().any(|(i, c)| {
                        let tagged = i as i32 * 65536 + i32::from(u16::from_be_bytes([c[0], c[1]]));
                        probes.binary_search(&tagged).is_ok()
                    });
                    assert!(hit, "{other} at {distance} of {max_distance} escaped");
                }
            }
        }
        assert!(probes(&[query], 48).is_none());
        // Radius 2: 1 + 16 + 120 values at each of 16 positions.
        assert_eq!(probes(&[query], 32).unwrap().len(), 16 * 137);
    }

    #[test]
    fn chunks_match_the_tables_generated_column() {
        // chunks[1] = 1 * 65536 + ((w0 >> 32) & 65535) on the signed BIGINT: the same bits.
        let query = ImageCode::from_words([0xfedc_ba98_7654_3210, 0, 0, 0]);
        let probes = probes(&[query], 0).unwrap();
        let w0 = word_columns(std::iter::once(&query))[0][0];
        assert!(probes.contains(&(65536 + ((w0 >> 32) & 65535) as i32)));
        assert!(probes.contains(&0xfedc));
        assert_eq!(probes.len(), 16);
    }
}
