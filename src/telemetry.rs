//! Tracing set-up: pretty or JSON lines, filtered by `log.level` or `RUST_LOG`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    // Logs go to stderr so that commands printing results (e.g. `verify --json`) keep stdout clean.
    // A log line that cannot be written (the reader of a log pipe went away) is dropped: by
    // default the subscriber reports the failure with `eprintln!`, which panics on that same
    // closed stderr and took the service down with exit 101.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
