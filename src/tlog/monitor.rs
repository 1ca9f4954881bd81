//! A monitor of a log served over HTTP (`hallmark log monitor URL --key VKEY`): it trusts only
//! the pinned verifier key. Each round it fetches the records' proofs, then the checkpoint
//! (so the checkpoint is at least as new as every proof), checks the checkpoint's signature,
//! checks it is consistent with the last checkpoint it saw (kept in a state file) through an
//! RFC 6962 consistency proof built from hash tiles fetched over HTTP and authenticated against
//! the new root, and checks each record's inclusion both by the offline proof the log served
//! and by a proof built from the tiles, against the entry the entry bundle holds.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, ensure, Context as _};
use tlog_tiles::{
    check_record, check_tree, prove_record, prove_tree, record_hash, Error, Tile, TileHashReader,
    TileReader,
};
use uuid::Uuid;

use super::note::{verify_checkpoint, VerifiedCheckpoint};
use super::proof::InclusionProof;
use super::tiles::{parse_entry_bundle, TileKind, TilePath, TILE_HEIGHT, TILE_WIDTH};

/// Most rounds of tile fetching one computation may need (each round fetches every tile the
/// last attempt missed; one is the rule).
const FETCH_ROUNDS: usize = 8;

/// What one monitor round checks.
#[derive(Debug, Clone)]
pub struct Monitor {
    /// The log's base URL, e.g. `https://hallmark.example.org` (`/log/...` is appended).
    pub base: String,
    /// The pinned C2SP verifier key; its name is the checkpoint origin.
    pub verifier_key: String,
    /// Where the last checkpoint seen is kept, when anywhere.
    pub state: Option<PathBuf>,
    /// Records whose inclusion to check.
    pub records: Vec<Uuid>,
}

impl Monitor {
    /// One round; a line per check, for the operator.
    ///
    /// # Errors
    /// On any inconsistency (bad signature, a checkpoint inconsistent with the last one seen, a
    /// record not included), and when the log cannot be reached.
    pub async fn round(&self, client: &reqwest::Client) -> anyhow::Result<Vec<String>> {
        let origin = self
            .verifier_key
            .split('+')
            .next()
            .filter(|name| !name.is_empty())
            .context("the verifier key has no name")?
            .to_owned();
        let mut lines = Vec::new();
        let mut proofs = Vec::new();
        for &id in &self.records {
            let url = format!("{}/v1/records/{id}/proof", self.base);
            let response = client.get(&url).send().await?;
            ensure!(
                response.status() == reqwest::StatusCode::OK,
                "record {id}: the log answers {} for its proof",
                response.status()
            );
            let proof = InclusionProof::parse(&response.text().await?)
                .with_context(|| format!("record {id}: its proof"))?;
            proofs.push((id, proof));
        }

        let note = get_text(client, &format!("{}/log/checkpoint", self.base)).await?;
        let checkpoint = verify_checkpoint(&note, &self.verifier_key, &origin)
            .context("the checkpoint does not verify with the pinned key")?;
        lines.push(format!(
            "checkpoint {origin} {}: signature OK",
            checkpoint.size
        ));
        let tiles = HttpTiles::new(client, &self.base);

        if let Some(state) = &self.state {
            if let Ok(old_note) = tokio::fs::read_to_string(state).await {
                let old = verify_checkpoint(&old_note, &self.verifier_key, &origin)
                    .context("the state file's checkpoint does not verify")?;
                check_consistent(&tiles, &old, &checkpoint).await?;
                lines.push(format!(
                    "checkpoint {} -> {}: consistent",
                    old.size, checkpoint.size
                ));
            }
        }

        for (id, proof) in proofs {
            ensure!(
                proof.index < checkpoint.size,
                "record {id}: index {} is beyond the checkpoint's {} entries",
                proof.index,
                checkpoint.size
            );
            let entry = tiles.entry(proof.index, checkpoint.size).await?;
            ensure!(
                super::entry_record_id(&entry) == Some(id),
                "record {id}: entry {} names another record",
                proof.index
            );
            proof
                .check(&entry, &self.verifier_key, &origin)
                .with_context(|| format!("record {id}: the served proof does not verify"))?;
            let path = tiles
                .compute(&checkpoint, |reader| {
                    prove_record(checkpoint.size, proof.index, reader)
                })
                .await?;
            check_record(
                &path,
                checkpoint.size,
                checkpoint.root,
                proof.index,
                record_hash(&entry),
            )
            .map_err(|_| {
                anyhow::anyhow!("record {id}: not included at {} by the tiles", proof.index)
            })?;
            lines.push(format!("record {id}: included at index {}", proof.index));
        }

        if let Some(state) = &self.state {
            // Written whole then renamed: a crash leaves the old state or the new one.
            let partial = state.with_extension("partial");
            tokio::fs::write(&partial, &note).await?;
            tokio::fs::rename(&partial, state).await?;
        }
        Ok(lines)
    }
}

/// Checks that `new` extends `old`: the same tree when the sizes are equal, an RFC 6962
/// consistency proof from authenticated tiles otherwise.
async fn check_consistent(
    tiles: &HttpTiles<'_>,
    old: &VerifiedCheckpoint,
    new: &VerifiedCheckpoint,
) -> anyhow::Result<()> {
    if new.size < old.size {
        bail!(
            "the log shrank: {} entries after {} (a rollback or a fork)",
            new.size,
            old.size
        );
    }
    if new.size == old.size {
        ensure!(
            new.root == old.root,
            "two checkpoints of {} entries with different roots: a fork",
            new.size
        );
        return Ok(());
    }
    if old.size == 0 {
        return Ok(());
    }
    let proof = tiles
        .compute(new, |reader| prove_tree(new.size, old.size, reader))
        .await?;
    check_tree(&proof, new.size, new.root, old.size, old.root).map_err(|_| {
        anyhow::anyhow!(
            "checkpoint {} is not consistent with checkpoint {} seen before: a fork",
            new.size,
            old.size
        )
    })
}

async fn get_text(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let response = client.get(url).send().await?;
    ensure!(
        response.status() == reqwest::StatusCode::OK,
        "{url}: {}",
        response.status()
    );
    Ok(response.text().await?)
}

/// Hash tiles fetched over HTTP as the tree computations ask for them.
struct HttpTiles<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    fetched: RefCell<HashMap<Tile, Vec<u8>>>,
}

impl<'a> HttpTiles<'a> {
    fn new(client: &'a reqwest::Client, base: &'a str) -> Self {
        Self {
            client,
            base,
            fetched: RefCell::new(HashMap::new()),
        }
    }

    /// Runs `compute` over the hashes of `checkpoint`'s tree (every tile authenticated against
    /// its root by [`TileHashReader`]), fetching the tiles an attempt misses and trying again.
    async fn compute<T>(
        &self,
        checkpoint: &VerifiedCheckpoint,
        compute: impl Fn(&TileHashReader<'_>) -> Result<T, Error>,
    ) -> anyhow::Result<T> {
        for _ in 0..FETCH_ROUNDS {
            let missing = RefCell::new(Vec::new());
            let reader = Prefetched {
                fetched: &self.fetched,
                missing: &missing,
            };
            let result = compute(&TileHashReader::new(
                checkpoint.size,
                checkpoint.root,
                &reader,
            ));
            let missing = missing.into_inner();
            if missing.is_empty() {
                return result.map_err(|error| {
                    anyhow::anyhow!(
                        "the log's tiles do not match checkpoint {}: {error}",
                        checkpoint.size
                    )
                });
            }
            for tile in missing {
                let path = TilePath {
                    kind: TileKind::Hashes {
                        level: tile.level(),
                    },
                    n: tile.level_index(),
                    width: tile.width(),
                };
                let bytes = self.get(path).await?;
                self.fetched.borrow_mut().insert(tile, bytes);
            }
        }
        bail!("the log's tiles kept missing")
    }

    /// Entry `index` of a tree of `size` entries, from its entry bundle (not authenticated by
    /// itself: its hash is checked against the root afterwards).
    async fn entry(&self, index: u64, size: u64) -> anyhow::Result<Vec<u8>> {
        let n = index / u64::from(TILE_WIDTH);
        let width = (size - n * u64::from(TILE_WIDTH)).min(u64::from(TILE_WIDTH));
        let path = TilePath {
            kind: TileKind::Entries,
            n,
            width: u32::try_from(width).unwrap_or(TILE_WIDTH),
        };
        let bundle = parse_entry_bundle(&self.get(path).await?)
            .with_context(|| format!("{} is not an entry bundle", path.path()))?;
        let at = usize::try_from(index % u64::from(TILE_WIDTH)).unwrap_or(usize::MAX);
        bundle
            .get(at)
            .cloned()
            .with_context(|| format!("{} has no entry {index}", path.path()))
    }

    async fn get(&self, tile: TilePath) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}/log/{}", self.base, tile.path());
        let response = self.client.get(&url).send().await?;
        ensure!(
            response.status() == reqwest::StatusCode::OK,
            "{url}: {}",
            response.status()
        );
        Ok(response.bytes().await?.to_vec())
    }
}

/// A [`TileReader`] over the tiles fetched so far; it notes the others and fails.
struct Prefetched<'a> {
    fetched: &'a RefCell<HashMap<Tile, Vec<u8>>>,
    missing: &'a RefCell<Vec<Tile>>,
}

impl TileReader for Prefetched<'_> {
    fn height(&self) -> u8 {
        TILE_HEIGHT
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, Error> {
        let fetched = self.fetched.borrow();
        let mut out = Vec::with_capacity(tiles.len());
        for tile in tiles {
            match fetched.get(tile) {
                Some(bytes) => out.push(bytes.clone()),
                None => self.missing.borrow_mut().push(*tile),
            }
        }
        if out.len() == tiles.len() {
            Ok(out)
        } else {
            Err(Error::IndexesNotInTree)
        }
    }

    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}
