//! Hallmark's image registry: finding an upload among the images Hallmark made — the exact
//! file, then the exact pixels, then a near duplicate (re-encoded, resized, cropped) in two
//! stages — with the in-memory candidate index ([`index`]) and the study that measures the match
//! ([`study`]). The check that uses it (gate, evidence, verdict) is `verify` (`src/verify/`).
//!
//! The upload is looked up by several pHashes (whole, and crop windows,
//! [`crate::fingerprint::align::query_phashes`]); a record's distance is that of its nearest
//! variant to the nearest query hash.
//!
//! Stage 1 (candidates) runs in memory in the service ([`index::HashIndex`], a popcount
//! scan of every registered hash kept in step with the database) and, where no index is in step
//! (the command line, start-up, a lost connection), as multi-index hashing in PostgreSQL.
//! `record_hashes` holds seventeen 64-bit pHashes per record (the whole image and a 4x4 grid of
//! crop windows, [`variant_phashes`]; ten for records made before migration 3) and, as generated
//! columns, their four 16-bit chunks, each with a B-tree index. If two hashes differ in
//! at most `d` bits, then by pigeonhole at least one of the four chunks differs in at most
//! `r = d / 4` bits. So the candidates are the rows where some chunk equals one of the chunk
//! values within Hamming distance `r` of a query's chunk (`1 + 16 + 120` values per query for
//! `r = 2`, which covers `d ≤ 11`; 697 for `r = 3`, `d ≤ 15`), found by four indexed `= ANY(...)`
//! probes;
//! PostgreSQL keeps those within `d` and returns the nearest records. The search is exact (no
//! hash within `d` is missed), stays a few index probes as the registry grows, and the database
//! stays the one source of truth, so every replica and the command line see the same registry.
//!
//! Stage 2 (confirmation): a pHash is too coarse to tell our image from a look-alike, so each
//! candidate's original is fetched from the blob store and compared with the upload ([`confirm`]:
//! first re-enacted, the upload's edits applied to the original; else aligned over crops and
//! scales); the best confirmed one is the match.
//!
//! [`variant_phashes`]: crate::fingerprint::align::variant_phashes

pub mod confirm;
pub mod index;
pub mod study;
pub mod view;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::blocking::BlockingError;
use crate::config::VerifySettings;
use crate::fingerprint::iscc::ImageCode;
use crate::fingerprint::{phash_to_db, Fingerprint};
use crate::provenance::Record;
use crate::registry::confirm::{Confirmed, Thresholds, UploadProbe};
use crate::registry::index::HashIndex;
use crate::store::blobs::{BlobError, Blobs};
use crate::store::{record_hashes, record_iscc, records};

/// Beyond this per-chunk radius (d ≥ 16) the probe lists grow past a few thousand values and a
/// scan is the better plan.
const MAX_PROBE_RADIUS: u32 = 3;

/// How an upload matched a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The very file Hallmark served (SHA-256 of the bytes).
    FileSha256,
    /// The same pixels in a different file (metadata stripped, re-saved losslessly).
    PixelSha256,
    /// A near duplicate (re-encoded, resized, cropped): a pHash candidate confirmed by aligning
    /// the original's pixels.
    Phash,
}

/// A registry hit.
#[derive(Debug, Clone)]
pub struct RegistryMatch {
    pub kind: MatchKind,
    pub record: Record,
    /// Hamming distance between the upload's pHash and the record's nearest variant (0 for the
    /// exact matches).
    pub distance: u32,
    /// How a near duplicate was confirmed: the tier, its similarity and the threshold it
    /// reached (near duplicates only).
    pub confirmed: Option<Confirmed>,
}

/// The outcome of a search: the match, if any, and how many candidates were compared.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub found: Option<RegistryMatch>,
    pub compared: usize,
}

/// Where uploads are looked up: the records and their hashes (PostgreSQL), the originals (blob
/// store) and, in the service, the in-memory candidate index.
#[derive(Clone)]
pub struct Registry {
    pub pool: PgPool,
    pub blobs: Blobs,
    pub index: Option<HashIndex>,
}

impl Registry {
    /// Exact file, then exact pixels, then the best confirmed near duplicate. `queries` are the
    /// upload's pHashes ([`crate::fingerprint::align::query_phashes`]); `probe` is what stage 2
    /// keeps of the upload ([`UploadProbe`]).
    ///
    /// # Errors
    /// When the database or the blob store fails.
    pub async fn find(
        &self,
        file_sha256: &[u8; 32],
        fingerprint: &Fingerprint,
        queries: &[u64],
        probe: UploadProbe,
        settings: &VerifySettings,
    ) -> Result<Search, RegistryError> {
        let Self { pool, blobs, index } = self;
        let exact = |kind, record| Search {
            found: Some(RegistryMatch {
                kind,
                record,
                distance: 0,
                confirmed: None,
            }),
            compared: 0,
        };
        if let Some(record) = records::by_file_sha256(pool, file_sha256)
            .await?
            .into_iter()
            .next()
        {
            return Ok(exact(MatchKind::FileSha256, record));
        }
        if let Some(record) = records::by_pixel_sha256(pool, &fingerprint.pixel_sha256).await? {
            return Ok(exact(MatchKind::PixelSha256, record));
        }
        let near = nearest(
            pool,
            index.as_ref(),
            queries,
            settings.phash_max_distance,
            settings.max_candidates,
        )
        .await?;
        let ids: Vec<Uuid> = near.iter().map(|&(id, _)| id).collect();
        let mut found_records = records::by_ids(pool, &ids).await?;
        let mut originals = Vec::with_capacity(near.len());
        for &(id, distance) in &near {
            let Some(at) = found_records.iter().position(|r| r.fields.id == id) else {
                continue;
            };
            let record = found_records.swap_remove(at);
            let bytes = blobs.get(&record.fields.file_sha256).await?;
            match bytes {
                Some(bytes) => originals.push((record, distance, bytes)),
                None => tracing::error!(%id, "record without its blob: skipped as a candidate"),
            }
        }
        let compared = originals.len();
        let thresholds = Thresholds::of(settings);
        let found = crate::blocking::run(move || {
            let mut best: Option<RegistryMatch> = None;
            for (record, distance, bytes) in originals {
                // Our own files, written by the generation pipeline; a broken one is skipped.
                let Ok(original) = image::load_from_memory(&bytes) else {
                    tracing::error!(id = %record.fields.id, "stored image does not decode");
                    continue;
                };
                let scores =
                    confirm::score(&probe, &original, |r, down| thresholds.aligns(r, down));
                let Some(confirmed) = scores.confirmed(&thresholds) else {
                    continue;
                };
                let better = best
                    .as_ref()
                    .and_then(|b| b.confirmed.as_ref())
                    .is_none_or(|b| confirmed.beats(b));
                if better {
                    best = Some(RegistryMatch {
                        kind: MatchKind::Phash,
                        record,
                        distance,
                        confirmed: Some(confirmed),
                    });
                }
            }
            best
        })
        .await?;
        Ok(Search { found, compared })
    }
}

impl Registry {
    /// The records with a registered pHash (whole image or crop window) within `max_distance`
    /// bits of `phash`, nearest first, at most `limit`: the Soft Binding Resolution API's
    /// `byBinding`, which has a fingerprint and no pixels to confirm with.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn by_binding(
        &self,
        phash: u64,
        max_distance: u32,
        limit: usize,
    ) -> Result<Vec<(Record, u32)>, RegistryError> {
        let near = nearest(
            &self.pool,
            self.index.as_ref(),
            &[phash],
            max_distance,
            limit,
        )
        .await?;
        Ok(in_order(&self.pool, near).await?)
    }
}

/// The records whose ISCC Content-Code Image is within `max_distance` bits of one of `codes`,
/// nearest first, at most `limit`: the Soft Binding Resolution API with `alg=io.iscc.v0`.
///
/// # Errors
/// When the database fails.
pub async fn by_iscc(
    pool: &PgPool,
    codes: &[ImageCode],
    max_distance: u32,
    limit: usize,
) -> Result<Vec<(Record, u32)>, sqlx::Error> {
    let near = record_iscc::near(pool, codes, max_distance, limit).await?;
    in_order(pool, near).await
}

/// The records of `near` (id, distance) in its order, each with its distance; ids whose record
/// is gone are skipped.
async fn in_order(
    pool: &PgPool,
    near: Vec<(Uuid, u32)>,
) -> Result<Vec<(Record, u32)>, sqlx::Error> {
    let ids: Vec<Uuid> = near.iter().map(|&(id, _)| id).collect();
    let mut found = records::by_ids(pool, &ids).await?;
    Ok(near
        .into_iter()
        .filter_map(|(id, distance)| {
            let at = found.iter().position(|r| r.fields.id == id)?;
            Some((found.swap_remove(at), distance))
        })
        .collect())
}

/// Why a registry search failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("cannot read an original from the image store: {0}")]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Blocking(#[from] BlockingError),
}

/// Stage 1 from the in-memory index when it is in step, else from PostgreSQL.
async fn nearest(
    pool: &PgPool,
    index: Option<&HashIndex>,
    queries: &[u64],
    max_distance: u32,
    limit: usize,
) -> Result<Vec<(Uuid, u32)>, RegistryError> {
    if let Some(index) = index.cloned() {
        let owned = queries.to_vec();
        let found = crate::blocking::run(move || index.search(&owned, max_distance, limit)).await?;
        if let Some(found) = found {
            return Ok(found);
        }
    }
    Ok(candidates(pool, queries, max_distance, limit).await?)
}

/// Stage 1: the records with a registered hash within `max_distance` bits of any of `queries`,
/// nearest first (by their nearest variant, then by id), at most `limit`: four index probes
/// ([`probe_lists`]) or, for wide distances, a scan.
///
/// # Errors
/// When the database fails.
pub async fn candidates(
    pool: &PgPool,
    queries: &[u64],
    max_distance: u32,
    limit: usize,
) -> Result<Vec<(Uuid, u32)>, sqlx::Error> {
    let Some(chunks) = probe_lists(queries, max_distance) else {
        return candidates_by_scan(pool, queries, max_distance, limit).await;
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let db: Vec<i64> = queries.iter().map(|&q| phash_to_db(q)).collect();
    Ok(unsigned(
        record_hashes::near_by_chunks(pool, &db, max_distance, limit, chunks).await?,
    ))
}

/// The same search as a full scan, for the benchmark's baseline and the tests' cross-check.
///
/// # Errors
/// When the database fails.
pub async fn candidates_by_scan(
    pool: &PgPool,
    queries: &[u64],
    max_distance: u32,
    limit: usize,
) -> Result<Vec<(Uuid, u32)>, sqlx::Error> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let db: Vec<i64> = queries.iter().map(|&q| phash_to_db(q)).collect();
    Ok(unsigned(
        record_hashes::near_by_scan(pool, &db, max_distance, limit).await?,
    ))
}

fn unsigned(rows: Vec<(Uuid, i32)>) -> Vec<(Uuid, u32)> {
    rows.into_iter()
        .map(|(id, d)| (id, d.unsigned_abs()))
        .collect()
}

/// For each of the four 16-bit chunks (most significant first, as the table's `phash_c0..c3`),
/// every chunk value within `max_distance / 4` bits of some query's chunk; `None` when a scan is
/// the better plan.
#[must_use]
pub fn probe_lists(queries: &[u64], max_distance: u32) -> Option<[Vec<i32>; 4]> {
    let radius = max_distance / 4;
    if radius > MAX_PROBE_RADIUS {
        return None;
    }
    Some(std::array::from_fn(|i| {
        let mut values: Vec<i32> = queries
            .iter()
            .flat_map(|&q| {
                crate::fingerprint::neighbours(((q >> (48 - 16 * i)) & 0xffff) as u16, radius)
            })
            .map(i32::from)
            .collect();
        values.sort_unstable();
        values.dedup();
        values
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::hamming;

    #[test]
    fn neighbours_are_exactly_the_ball() {
        for radius in 0..=3 {
            let mut got = crate::fingerprint::neighbours(0xa5c3, radius);
            got.sort_unstable();
            got.dedup();
            let want: Vec<u16> = (0..=u16::MAX)
                .filter(|&v| (v ^ 0xa5c3).count_ones() <= radius)
                .collect();
            assert_eq!(got, want, "radius {radius}");
        }
        assert_eq!(crate::fingerprint::neighbours(7, 2).len(), 1 + 16 + 120);
    }

    #[test]
    fn some_probe_list_holds_every_hash_within_the_distance() {
        // The pigeonhole argument, checked on hashes at every distance up to 11.
        let query = 0x0123_4567_89ab_cdef_u64;
        let lists = probe_lists(&[query], 11).unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for distance in 0..=11u32 {
            for _ in 0..200 {
                let mut other = query;
                while hamming(query, other) < distance {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    other ^= 1 << (state >> 58);
                }
                let hit = (0..4).any(|i| {
                    let chunk = ((other >> (48 - 16 * i)) & 0xffff) as i32;
                    lists[i].contains(&chunk)
                });
                assert!(
                    hit,
                    "{other:016x} at distance {distance} escaped the probes"
                );
            }
        }
    }

    #[test]
    fn chunks_match_the_tables_generated_columns() {
        // phash_c0 = (phash >> 48) & 65535 on the signed BIGINT: the same bits as here.
        let phash = 0xfedc_ba98_7654_3210_u64;
        let lists = probe_lists(&[phash], 0).unwrap();
        let db = phash_to_db(phash);
        assert_eq!(lists[0], vec![((db >> 48) & 65535) as i32]);
        assert_eq!(lists[3], vec![(db & 65535) as i32]);
    }

    #[test]
    fn wide_distances_fall_back_to_a_scan() {
        assert!(probe_lists(&[1], 15).is_some());
        assert!(probe_lists(&[1], 16).is_none());
        // Several queries: the union of their balls, each value once.
        let [c0, ..] = probe_lists(&[0, 1 << 48, 0], 0).unwrap();
        assert_eq!(c0, vec![0, 1]);
    }
}
