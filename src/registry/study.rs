//! The registry-match evaluation of `hallmark evaluate --registry` / `--detector`: the service's
//! two-stage near-duplicate match ([`crate::fingerprint::align`]) run in memory over held-out
//! images, to measure recall under each transform and false matches among real images, and to
//! choose the confirmation threshold from data.

use std::fmt::Write as _;

use image::DynamicImage;

use crate::config::VerifySettings;
use crate::detect::eval::EvalImages;
use crate::fingerprint::align::{query_phashes, similarity, variant_phashes};
use crate::fingerprint::Fingerprinter;
use crate::gan::card::{ConfirmedMatch, TransformRate};
use crate::progress::percentile;
use crate::registry::index::HashIndex;
use uuid::Uuid;

/// Per image: the similarity of its own original (None when the original was not among the
/// candidates) and the best similarity of any other candidate.
#[derive(Debug, Clone, Copy)]
pub struct OwnScore {
    pub own: Option<f64>,
    pub rival: f64,
    /// The query is downscaled against the originals (held to the stricter threshold).
    pub downscaled: bool,
}

/// A real image's best similarity to any candidate (0: none), and whether it was compared as a
/// downscaled copy.
#[derive(Debug, Clone, Copy)]
pub struct RealScore {
    pub best: f64,
    pub downscaled: bool,
}

#[derive(Debug, Clone)]
pub struct MatchStudy {
    pub transforms: Vec<String>,
    pub registered: usize,
    pub candidate_distance: u32,
    pub max_candidates: usize,
    /// `own[t][i]`: generated image `i` under transform `t`.
    pub own: Vec<Vec<OwnScore>>,
    /// `real[t][i]`: real image `i` under `t`.
    pub real: Vec<Vec<RealScore>>,
    /// The configured thresholds: (full size, downscaled).
    pub thresholds: (f64, f64),
}

/// The candidates the service's index returns for an upload hashed as `queries`, as indices into
/// the registered originals.
fn candidates(index: &HashIndex, queries: &[u64], max_distance: u32, limit: usize) -> Vec<usize> {
    index
        .search(queries, max_distance, limit)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, _)| usize::try_from(id.as_u128()).unwrap_or(usize::MAX))
        .collect()
}

/// Runs `f` over `items` on every core, keeping the order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("study worker panicked"))
            .collect()
    })
}

/// Runs the study: every generated original registered (its seventeen variant hashes), then each
/// transformed generated image and each real image (clean and transformed) matched as the
/// service would.
#[must_use]
pub fn match_study(
    images: &EvalImages,
    settings: &VerifySettings,
    bar: &indicatif::ProgressBar,
) -> MatchStudy {
    let fp = Fingerprinter::new();
    let originals = &images.generated_original;
    let variants: Vec<Vec<u64>> = par_map(originals, |i| variant_phashes(&fp, i));
    // The service's own index, with each original's position as its record id.
    let index = HashIndex::standalone(
        variants
            .iter()
            .enumerate()
            .map(|(i, hashes)| (Uuid::from_u128(i as u128), hashes.as_slice())),
    );
    let (d, k) = (settings.phash_max_distance, settings.max_candidates);
    let mut own = Vec::new();
    let mut real = Vec::new();
    for t in 0..images.transforms.len() {
        let indexed: Vec<(usize, &DynamicImage)> = images.generated[t].iter().enumerate().collect();
        own.push(par_map(&indexed, |&(i, image)| {
            bar.inc(1);
            let mut score = OwnScore {
                own: None,
                rival: 0.0,
                downscaled: is_downscaled(image, &originals[i]),
            };
            for c in candidates(&index, &query_phashes(&fp, image), d, k) {
                let s = similarity(image, &originals[c]);
                if c == i {
                    score.own = Some(s);
                } else {
                    score.rival = score.rival.max(s);
                }
            }
            score
        }));
        real.push(par_map(&images.real[t], |image| {
            bar.inc(1);
            let found = candidates(&index, &query_phashes(&fp, image), d, k);
            RealScore {
                best: found
                    .iter()
                    .map(|&c| similarity(image, &originals[c]))
                    .fold(0.0, f64::max),
                downscaled: found
                    .first()
                    .is_some_and(|&c| is_downscaled(image, &originals[c])),
            }
        }));
    }
    MatchStudy {
        transforms: images.transforms.iter().map(|t| t.name()).collect(),
        registered: originals.len(),
        candidate_distance: d,
        max_candidates: k,
        own,
        real,
        thresholds: (settings.min_similarity, settings.min_similarity_downscaled),
    }
}

fn is_downscaled(query: &DynamicImage, original: &DynamicImage) -> bool {
    crate::fingerprint::align::is_downscaled(
        query.width().max(query.height()),
        original.width().max(original.height()),
    )
}

impl MatchStudy {
    /// Share of generated images under transform `t` matched to their own original at the
    /// thresholds (full size, downscaled).
    #[must_use]
    pub fn recall(&self, t: usize, (full, down): (f64, f64)) -> f64 {
        let hits = self.own[t]
            .iter()
            .filter(|s| {
                let tau = if s.downscaled { down } else { full };
                s.own.is_some_and(|own| own >= tau && own >= s.rival)
            })
            .count();
        hits as f64 / self.own[t].len().max(1) as f64
    }

    /// Real images (counted once over all transforms) matched to any registered image at the
    /// thresholds (full size, downscaled).
    #[must_use]
    pub fn false_matches(&self, (full, down): (f64, f64)) -> usize {
        let n = self.real.first().map_or(0, Vec::len);
        (0..n)
            .filter(|&i| {
                self.real.iter().any(|v| {
                    let tau = if v[i].downscaled { down } else { full };
                    v[i].best >= tau
                })
            })
            .count()
    }

    /// Share of generated images whose original was among the candidates, per transform.
    #[must_use]
    pub fn candidate_recall(&self, t: usize) -> f64 {
        let hits = self.own[t].iter().filter(|s| s.own.is_some()).count();
        hits as f64 / self.own[t].len().max(1) as f64
    }

    /// The smallest thresholds (full size, downscaled) on a 0.001 grid with no false match.
    #[must_use]
    pub fn recommended(&self) -> (f64, f64) {
        let top = |down: bool| {
            let best = self
                .real
                .iter()
                .flatten()
                .filter(|r| r.downscaled == down)
                .map(|r| r.best)
                .fold(0.0, f64::max);
            ((best * 1000.0).floor() + 1.0) / 1000.0
        };
        (top(false), top(true))
    }

    /// The card's summary at the configured thresholds.
    #[must_use]
    pub fn confirmed(&self) -> ConfirmedMatch {
        let tau = self.thresholds;
        let rates = |f: &dyn Fn(usize) -> f64| {
            self.transforms
                .iter()
                .enumerate()
                .map(|(t, name)| TransformRate {
                    transform: name.clone(),
                    rate: (f(t) * 1e5).round() / 1e5,
                })
                .collect()
        };
        ConfirmedMatch {
            max_candidates: self.max_candidates as u64,
            min_similarity: tau.0,
            min_similarity_downscaled: tau.1,
            recall: rates(&|t| self.recall(t, tau)),
            candidate_recall: rates(&|t| self.candidate_recall(t)),
            false_matches: self.false_matches(tau) as u64,
            recommended_min_similarity: self.recommended().0,
            recommended_min_similarity_downscaled: self.recommended().1,
        }
    }

    #[must_use]
    pub fn report(&self) -> String {
        let mut s = String::new();
        let n_real = self.real.first().map_or(0, Vec::len);
        let _ = writeln!(
            s,
            "registry match (two stages): {} generated images registered (17 pHashes each: whole + a 4x4 grid of 13/16 windows; uploads looked up by whole + 4 windows); \
             candidates: nearest variant within {} bits, at most {}; confirmation: best aligned similarity \
             (mean of shape and texture normalised cross-correlation)",
            self.registered, self.candidate_distance, self.max_candidates
        );
        let _ = writeln!(
            s,
            "\nown original among the candidates, and its similarity:"
        );
        let _ = writeln!(
            s,
            "  {:<10} {:>10} {:>7} {:>7} {:>7} {:>7}",
            "transform", "candidate", "min", "p0.1", "p1", "p50"
        );
        for (t, name) in self.transforms.iter().enumerate() {
            let mut v: Vec<f64> = self.own[t].iter().filter_map(|s| s.own).collect();
            v.sort_by(f64::total_cmp);
            let _ = writeln!(
                s,
                "  {name:<10} {:>9.2}% {:>7.4} {:>7.4} {:>7.4} {:>7.4}",
                self.candidate_recall(t) * 100.0,
                v.first().copied().unwrap_or(0.0),
                percentile(&v, 0.001),
                percentile(&v, 0.01),
                percentile(&v, 0.5)
            );
        }
        let _ = writeln!(
            s,
            "\nbest similarity of a real test image to any candidate:"
        );
        let _ = writeln!(
            s,
            "  {:<10} {:>7} {:>7} {:>7} {:>7}",
            "transform", "max", "p99.9", "p99", "p50"
        );
        for (t, name) in self.transforms.iter().enumerate() {
            let mut v: Vec<f64> = self.real[t].iter().map(|r| r.best).collect();
            v.sort_by(f64::total_cmp);
            let _ = writeln!(
                s,
                "  {name:<10} {:>7.4} {:>7.4} {:>7.4} {:>7.4}",
                v.last().copied().unwrap_or(0.0),
                percentile(&v, 0.999),
                percentile(&v, 0.99),
                percentile(&v, 0.5)
            );
        }
        let _ = writeln!(
            s,
            "\nrecall and false matches by threshold (one threshold for full-size and downscaled uploads alike):"
        );
        let mut header = format!("  {:>7}", "tau");
        for name in &self.transforms {
            let _ = write!(header, " {name:>10}");
        }
        let _ = writeln!(s, "{header} {:>14}", "false matches");
        let line = |label: String, tau: (f64, f64)| {
            let mut line = label;
            for t in 0..self.own.len() {
                let _ = write!(line, " {:>9.2}%", self.recall(t, tau) * 100.0);
            }
            format!("{line} {:>8} / {n_real}", self.false_matches(tau))
        };
        for tau in (80..100).map(|x| f64::from(x) / 100.0) {
            let _ = writeln!(s, "{}", line(format!("  {tau:>7.3}"), (tau, tau)));
        }
        let (full, down) = self.thresholds;
        let _ = writeln!(
            s,
            "\nconfigured: {full:.3} for full-size uploads, {down:.3} for uploads downscaled below 3/4 of the original's side:"
        );
        let _ = writeln!(s, "{header} {:>14}", "false matches");
        let _ = writeln!(s, "{}", line("         ".into(), self.thresholds));
        let (rf, rd) = self.recommended();
        let _ = writeln!(
            s,
            "\nsmallest thresholds with no false match among {n_real} real images: {rf:.3} full size, {rd:.3} downscaled"
        );
        s
    }
}
