//! CPU-heavy work (encoding, hashing, signing) goes to tokio's blocking pool, keeping the caller's
//! tracing span so its logs stay attached to the request.

use crate::error::ApiError;

/// Runs `work` on the blocking pool.
///
/// # Errors
/// When the work panicked (as a 500 with the panic logged).
pub async fn run<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|error| ApiError::internal(&error))
}
