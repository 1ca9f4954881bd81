//! The registry-match evaluation of `hallmark evaluate --registry` / `--detector`: the service's
//! two-stage near-duplicate match ([`crate::fingerprint::align`]) run in memory over held-out
//! images, to measure recall under each transform and false matches among real images, and to
//! choose the confirmation threshold from data.

use std::fmt::Write as _;

use image::DynamicImage;

use crate::config::VerifySettings;
use crate::fingerprint::align::{similarity, variant_phashes};
use crate::fingerprint::{hamming, Fingerprinter};
use crate::gan::detector_eval::EvalImages;

/// Per image: the similarity of its own original (None when the original was not among the
/// candidates) and the best similarity of any other candidate.
#[derive(Debug, Clone, Copy)]
pub struct OwnScore {
    pub own: Option<f64>,
    pub rival: f64,
}

#[derive(Debug, Clone)]
pub struct MatchStudy {
    pub transforms: Vec<String>,
    pub registered: usize,
    pub candidate_distance: u32,
    pub max_candidates: usize,
    /// `own[t][i]`: generated image `i` under transform `t`.
    pub own: Vec<Vec<OwnScore>>,
    /// `real[t][i]`: best similarity of any candidate for real image `i` under `t` (0: none).
    pub real: Vec<Vec<f64>>,
}

/// The candidates the registry would return for `query`: records whose nearest variant hash is
/// within `max_distance`, nearest first, at most `limit`.
fn candidates(query: u64, variants: &[Vec<u64>], max_distance: u32, limit: usize) -> Vec<usize> {
    let mut found: Vec<(u32, usize)> = variants
        .iter()
        .enumerate()
        .filter_map(|(record, hashes)| {
            let d = hashes.iter().map(|&h| hamming(h, query)).min()?;
            (d <= max_distance).then_some((d, record))
        })
        .collect();
    found.sort_unstable();
    found.truncate(limit);
    found.into_iter().map(|(_, record)| record).collect()
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

/// Runs the study: every generated original registered (its ten variant hashes), then each
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
            };
            for c in candidates(fp.phash(image), &variants, d, k) {
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
            candidates(fp.phash(image), &variants, d, k)
                .into_iter()
                .map(|c| similarity(image, &originals[c]))
                .fold(0.0, f64::max)
        }));
    }
    MatchStudy {
        transforms: images.transforms.iter().map(|t| t.name()).collect(),
        registered: originals.len(),
        candidate_distance: d,
        max_candidates: k,
        own,
        real,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

impl MatchStudy {
    /// Share of generated images under transform `t` matched to their own original at `tau`.
    #[must_use]
    pub fn recall(&self, t: usize, tau: f64) -> f64 {
        let hits = self.own[t]
            .iter()
            .filter(|s| s.own.is_some_and(|own| own >= tau && own >= s.rival))
            .count();
        hits as f64 / self.own[t].len().max(1) as f64
    }

    /// Real images (counted once over all transforms) matched to any registered image at `tau`.
    #[must_use]
    pub fn false_matches(&self, tau: f64) -> usize {
        let n = self.real.first().map_or(0, Vec::len);
        (0..n)
            .filter(|&i| self.real.iter().any(|v| v[i] >= tau))
            .count()
    }

    /// Share of generated images whose original was among the candidates, per transform.
    #[must_use]
    pub fn candidate_recall(&self, t: usize) -> f64 {
        let hits = self.own[t].iter().filter(|s| s.own.is_some()).count();
        hits as f64 / self.own[t].len().max(1) as f64
    }

    /// The smallest threshold on a 0.001 grid with no false match.
    #[must_use]
    pub fn recommended(&self) -> f64 {
        let top = self.real.iter().flatten().copied().fold(0.0, f64::max);
        ((top * 1000.0).floor() + 1.0) / 1000.0
    }

    #[must_use]
    pub fn report(&self, min_similarity: f64) -> String {
        let mut s = String::new();
        let n_real = self.real.first().map_or(0, Vec::len);
        let _ = writeln!(
            s,
            "registry match (two stages): {} generated images registered (10 pHashes each: whole + nine 90% windows); \
             candidates: nearest variant within {} bits, at most {}; confirmation: best aligned normalised cross-correlation",
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
            let mut v = self.real[t].clone();
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
        let _ = writeln!(s, "\nrecall and false matches by confirmation threshold:");
        let mut header = format!("  {:>7}", "tau");
        for name in &self.transforms {
            let _ = write!(header, " {name:>10}");
        }
        let _ = writeln!(s, "{header} {:>14}", "false matches");
        let mut taus: Vec<f64> = (80..100).map(|x| f64::from(x) / 100.0).collect();
        taus.extend([0.995, min_similarity, self.recommended()]);
        taus.sort_by(f64::total_cmp);
        taus.dedup();
        for tau in taus {
            let mut line = format!("  {tau:>7.3}");
            for t in 0..self.own.len() {
                let _ = write!(line, " {:>9.2}%", self.recall(t, tau) * 100.0);
            }
            let marker = if (tau - min_similarity).abs() < 1e-9 {
                "  <- configured"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "{line} {:>8} / {n_real}{marker}",
                self.false_matches(tau)
            );
        }
        let _ = writeln!(
            s,
            "\nsmallest threshold with no false match among {n_real} real images: {:.3}",
            self.recommended()
        );
        s
    }
}
