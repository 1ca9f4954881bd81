//! What long commands show while they work and what they summarise: one progress-bar style for
//! every long loop (training, detector training, evaluation) and the percentile their reports
//! and the benchmarks quote.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `what` (hidden when `show` is false, e.g. in tests), with
/// position, the caller's message, elapsed time and an estimate of what is left.
#[must_use]
pub fn bar(len: u64, what: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ({{elapsed}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// The `p`-quantile (0 to 1) of an ascending slice by the nearest rank; the default value for
/// an empty one.
#[must_use]
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let index = ((sorted.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let values = [1u32, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(percentile(&values, 0.0), 1);
        assert_eq!(percentile(&values, 0.5), 6);
        assert_eq!(percentile(&values, 1.0), 10);
        assert_eq!(percentile::<f64>(&[], 0.5), 0.0);
    }
}
