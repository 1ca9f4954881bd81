//! C2SP tlog-tiles paths and entry bundles.
//!
//! Tiles have height 8 (256 hashes); the path leaves the height out:
//! `tile/<L>/<N>[.p/<W>]` for hash tiles at level `L` (0-63) and `tile/entries/<N>[.p/<W>]` for
//! entry bundles, `N` written in 3-digit groups, all but the last prefixed `x` (1234067 is
//! `x001/x234/067`), `.p/<W>` (1-255) only on partial tiles. Only the one canonical spelling of
//! a tile parses, so a tile has one address (and one cache entry).
//!
//! An entry bundle is each entry as a big-endian uint16 length then its bytes.

use std::fmt::Write as _;

use super::LogError;

/// Hashes in a full tile (tile height 8).
pub const TILE_WIDTH: u32 = 256;
/// Tile height: a tile spans 8 levels of the tree.
pub const TILE_HEIGHT: u8 = 8;
/// Highest tile level the spec allows.
const MAX_LEVEL: u8 = 63;
/// Longest path worth parsing: `entries`, seven 4-character groups for any u64, `.p/255`.
const MAX_PATH_LEN: usize = 64;

/// Whether a tile holds Merkle hashes at a level, or entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileKind {
    Hashes { level: u8 },
    Entries,
}

/// One tile or entry bundle: tile `n` of its level, `width` hashes or entries wide (1-256; 256
/// is a full tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TilePath {
    pub kind: TileKind,
    pub n: u64,
    pub width: u32,
}

/// A tile path that is not the canonical spelling of a tile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path:?} is not a tile path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]): {reason}")]
pub struct TilePathError {
    pub path: String,
    pub reason: &'static str,
}

impl TilePath {
    /// The path relative to the log's prefix, e.g. `tile/0/x001/234.p/5`.
    #[must_use]
    pub fn path(&self) -> String {
        let mut out = String::from("tile/");
        match self.kind {
            TileKind::Hashes { level } => {
                let _ = write!(out, "{level}/");
            }
            TileKind::Entries => out.push_str("entries/"),
        }
        let mut groups = Vec::new();
        let mut n = self.n;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        for (i, group) in groups.iter().rev().enumerate() {
            if i + 1 < groups.len() {
                let _ = write!(out, "x{group:03}/");
            } else {
                let _ = write!(out, "{group:03}");
            }
        }
        if self.width < TILE_WIDTH {
            let _ = write!(out, ".p/{}", self.width);
        }
        out
    }

    /// Parses a path relative to the log's prefix (`tile/...`).
    ///
    /// # Errors
    /// When it is not the canonical path of a tile.
    pub fn parse(path: &str) -> Result<Self, TilePathError> {
        let fail = |reason| TilePathError {
            path: path.chars().take(MAX_PATH_LEN + 8).collect(),
            reason,
        };
        if path.len() > MAX_PATH_LEN {
            return Err(fail("too long"));
        }
        let mut parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 3 || parts[0] != "tile" {
            return Err(fail("must start with tile/ and name a tile"));
        }
        let kind = if parts[1] == "entries" {
            TileKind::Entries
        } else {
            let level = decimal(parts[1])
                .and_then(|l| u8::try_from(l).ok())
                .filter(|&l| l <= MAX_LEVEL)
                .ok_or_else(|| fail("the level must be 0 to 63 without leading zeroes"))?;
            TileKind::Hashes { level }
        };
        let mut width = TILE_WIDTH;
        let last = parts.len() - 1;
        if parts.len() >= 4 && parts[last - 1].ends_with(".p") {
            width = decimal(parts[last])
                .and_then(|w| u32::try_from(w).ok())
                .filter(|w| (1..TILE_WIDTH).contains(w))
                .ok_or_else(|| fail("a partial width must be 1 to 255 without leading zeroes"))?;
            parts[last - 1] = &parts[last - 1][..parts[last - 1].len() - 2];
            parts.pop();
        }
        let groups = &parts[2..];
        let mut n: u64 = 0;
        for (i, group) in groups.iter().enumerate() {
            let digits = if i + 1 < groups.len() {
                group.strip_prefix('x').ok_or_else(|| {
                    fail("every group of the index but the last must start with x")
                })?
            } else {
                group
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail("the index must be written in groups of 3 digits"));
            }
            let value: u64 = digits.parse().map_err(|_| fail("not a number"))?;
            n = n
                .checked_mul(1000)
                .and_then(|n| n.checked_add(value))
                .ok_or_else(|| fail("the index is too large"))?;
        }
        let tile = Self { kind, n, width };
        // One spelling per tile: no leading x000 groups.
        if tile.path() != path {
            return Err(fail("not the canonical spelling of the index"));
        }
        Ok(tile)
    }

    /// The smallest tree size that has this tile (at this width), `None` when no tree could.
    #[must_use]
    pub fn min_tree_size(&self) -> Option<u64> {
        let level = match self.kind {
            TileKind::Hashes { level } => level,
            TileKind::Entries => 0,
        };
        let hashes = self
            .n
            .checked_mul(u64::from(TILE_WIDTH))?
            .checked_add(u64::from(self.width))?;
        let span = 1u64.checked_shl(u32::from(level) * u32::from(TILE_HEIGHT))?;
        hashes.checked_mul(span)
    }

    /// The `tlog_tiles` tile with these coordinates (hash tiles only).
    #[must_use]
    pub fn hash_tile(&self) -> Option<tlog_tiles::Tile> {
        match self.kind {
            TileKind::Hashes { level } => Some(tlog_tiles::Tile::new(
                TILE_HEIGHT,
                level,
                self.n,
                self.width,
                false,
            )),
            TileKind::Entries => None,
        }
    }

    /// The entries an entry bundle holds: `start..end` log indices.
    #[must_use]
    pub fn entry_range(&self) -> (u64, u64) {
        let start = self.n.saturating_mul(u64::from(TILE_WIDTH));
        (start, start.saturating_add(u64::from(self.width)))
    }
}

/// A decimal with no leading zeroes ("0" itself is fine).
fn decimal(text: &str) -> Option<u64> {
    if text.is_empty()
        || text.len() > 20
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

/// The hash tiles and entry bundles to publish when the tree grows from `old` to `new` entries:
/// every tile that changed, full and partial.
#[must_use]
pub fn new_tiles(old: u64, new: u64) -> Vec<TilePath> {
    let mut out = Vec::new();
    for tile in tlog_tiles::Tile::new_tiles(TILE_HEIGHT, old, new) {
        let path = TilePath {
            kind: TileKind::Hashes {
                level: tile.level(),
            },
            n: tile.level_index(),
            width: tile.width(),
        };
        if tile.level() == 0 {
            out.push(TilePath {
                kind: TileKind::Entries,
                ..path
            });
        }
        out.push(path);
    }
    out
}

/// An entry bundle: each entry as a big-endian uint16 length, then its bytes.
///
/// # Errors
/// When an entry is longer than 65,535 bytes.
pub fn entry_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.as_ref().len() + 2).sum());
    for entry in entries {
        let entry = entry.as_ref();
        let len = u16::try_from(entry.len()).map_err(|_| LogError::EntryTooLarge(entry.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// The entries of an entry bundle; `None` when the lengths do not add up to the bytes.
#[must_use]
pub fn parse_entry_bundle(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        entries.push(rest.get(..len)?.to_vec());
        bytes = &rest[len..];
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(level: u8, n: u64, width: u32) -> TilePath {
        TilePath {
            kind: TileKind::Hashes { level },
            n,
            width,
        }
    }

    #[test]
    fn paths_follow_the_spec_examples_and_round_trip() {
        let entries = |n, width| TilePath {
            kind: TileKind::Entries,
            n,
            width,
        };
        for (tile, path) in [
            (hashes(0, 0, 256), "tile/0/000"),
            (hashes(0, 0, 5), "tile/0/000.p/5"),
            (hashes(1, 1_234_067, 256), "tile/1/x001/x234/067"),
            (hashes(63, 1_234_067, 255), "tile/63/x001/x234/067.p/255"),
            (hashes(2, 1000, 1), "tile/2/x001/000.p/1"),
            (entries(0, 256), "tile/entries/000"),
            (entries(272, 112), "tile/entries/272.p/112"),
            (
                entries(u64::MAX, 256),
                "tile/entries/x018/x446/x744/x073/x709/x551/615",
            ),
        ] {
            assert_eq!(tile.path(), path);
            assert_eq!(TilePath::parse(path), Ok(tile), "{path}");
        }
    }

    #[test]
    fn malformed_or_non_canonical_paths_are_refused() {
        for path in [
            "",
            "tile",
            "tile/0",
            "tiles/0/000",
            "tile/8/0/000",
            "tile/00/000",
            "tile/01/000",
            "tile/64/000",
            "tile/-1/000",
            "tile/0/0",
            "tile/0/0000",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/x001",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/05",
            "tile/0/000.p/",
            "tile/0/000.p",
            "tile/0/000/",
            "tile/0/+01",
            "tile/entries/x018/x446/x744/x073/x709/x551/616",
            "tile/data/000",
            "tile/0/00a",
            "tile/0/٠٠٠",
        ] {
            assert!(TilePath::parse(path).is_err(), "{path:?} parsed");
        }
        assert!(TilePath::parse(&"tile/0/".repeat(100)).is_err());
    }

    #[test]
    fn a_tile_exists_once_the_tree_reaches_its_last_hash() {
        assert_eq!(hashes(0, 0, 5).min_tree_size(), Some(5));
        assert_eq!(hashes(0, 1, 256).min_tree_size(), Some(512));
        assert_eq!(hashes(1, 0, 1).min_tree_size(), Some(256));
        assert_eq!(hashes(2, 0, 1).min_tree_size(), Some(65536));
        assert_eq!(hashes(8, 0, 1).min_tree_size(), None);
        assert_eq!(hashes(0, u64::MAX, 256).min_tree_size(), None);
    }

    #[test]
    fn growing_the_tree_publishes_the_spec_s_tiles() {
        // The spec's example: a tree of 70,000 entries.
        let tiles = new_tiles(0, 70_000);
        let count = |kind| tiles.iter().filter(|t| t.kind == kind).count();
        assert_eq!(count(TileKind::Hashes { level: 0 }), 274);
        assert_eq!(count(TileKind::Entries), 274);
        assert!(tiles.contains(&hashes(0, 273, 112)));
        assert!(tiles.contains(&hashes(1, 0, 256)));
        assert!(tiles.contains(&hashes(1, 1, 17)));
        assert!(tiles.contains(&hashes(2, 0, 1)));
        // 256 entries: one full level-0 tile and a level-1 tile of width 1.
        assert_eq!(
            new_tiles(255, 256),
            vec![
                TilePath {
                    kind: TileKind::Entries,
                    n: 0,
                    width: 256
                },
                hashes(0, 0, 256),
                hashes(1, 0, 1)
            ]
        );
        assert!(new_tiles(7, 7).is_empty());
    }

    #[test]
    fn entry_bundles_are_uint16_length_prefixed() {
        let bundle = entry_bundle(&[b"ab".to_vec(), Vec::new(), vec![7; 300]]).unwrap();
        assert_eq!(&bundle[..4], &[0, 2, b'a', b'b']);
        assert_eq!(&bundle[4..8], &[0, 0, 1, 44]);
        assert_eq!(bundle.len(), 4 + 2 + 302);
        assert_eq!(
            parse_entry_bundle(&bundle).unwrap(),
            vec![b"ab".to_vec(), Vec::new(), vec![7; 300]]
        );
        assert!(parse_entry_bundle(&bundle[..bundle.len() - 1]).is_none());
        assert!(parse_entry_bundle(&[0]).is_none());
        assert!(matches!(
            entry_bundle(&[vec![0; 65_536]]),
            Err(LogError::EntryTooLarge(65_536))
        ));
    }
}
