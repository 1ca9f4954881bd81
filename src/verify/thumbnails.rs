//! The thumbnails found in checked files' Content Credentials, kept in memory by their SHA-256 so
//! the pages can show them without ever receiving a manifest store: a bounded cache (oldest out
//! first past its byte budget), so anonymous uploads cannot grow it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::provenance::history::ThumbnailBytes;
use crate::provenance::ImageFormat;

/// One cached thumbnail.
#[derive(Debug, Clone)]
pub struct CachedThumbnail {
    pub format: ImageFormat,
    pub bytes: Arc<[u8]>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, CachedThumbnail>,
    order: VecDeque<String>,
    bytes: usize,
}

/// Thumbnails by SHA-256 (hex), within a byte budget.
#[derive(Debug, Clone)]
pub struct ThumbnailCache {
    inner: Arc<Mutex<Inner>>,
    budget: usize,
}

impl ThumbnailCache {
    #[must_use]
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            budget,
        }
    }

    /// Keeps `thumbnails` under the SHA-256 the history computed from their bytes, dropping the
    /// oldest past the budget.
    pub fn insert(&self, thumbnails: Vec<ThumbnailBytes>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for thumbnail in thumbnails {
            let sha256 = thumbnail.sha256;
            let size = thumbnail.bytes.len();
            if size > self.budget || inner.entries.contains_key(&sha256) {
                continue;
            }
            while inner.bytes + size > self.budget {
                let Some(oldest) = inner.order.pop_front() else {
                    break;
                };
                if let Some(gone) = inner.entries.remove(&oldest) {
                    inner.bytes -= gone.bytes.len();
                }
            }
            inner.bytes += size;
            inner.order.push_back(sha256.clone());
            inner.entries.insert(
                sha256,
                CachedThumbnail {
                    format: thumbnail.format,
                    bytes: thumbnail.bytes.into(),
                },
            );
        }
    }

    #[must_use]
    pub fn get(&self, sha256: &str) -> Option<CachedThumbnail> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.get(sha256).cloned()
    }

    /// Bytes held.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thumb(fill: u8, len: usize) -> ThumbnailBytes {
        let bytes = vec![fill; len];
        ThumbnailBytes {
            sha256: hex::encode(crate::fingerprint::sha256(&bytes)),
            format: ImageFormat::Png,
            bytes,
        }
    }

    #[test]
    fn the_oldest_go_first_past_the_budget() {
        let cache = ThumbnailCache::new(100);
        cache.insert(vec![thumb(1, 40), thumb(2, 40)]);
        let first = hex::encode(crate::fingerprint::sha256(&[1; 40]));
        assert!(cache.get(&first).is_some());
        cache.insert(vec![thumb(3, 40)]);
        assert!(cache.get(&first).is_none(), "evicted");
        assert_eq!(cache.bytes(), 80);
        cache.insert(vec![thumb(4, 101)]);
        assert_eq!(
            cache.bytes(),
            80,
            "larger than the whole budget: never kept"
        );
        let third = hex::encode(crate::fingerprint::sha256(&[3; 40]));
        assert_eq!(&*cache.get(&third).unwrap().bytes, &[3u8; 40][..]);
    }
}
