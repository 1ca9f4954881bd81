//! CPU-heavy work (encoding, hashing, signing) goes to tokio's blocking pool, keeping the caller's
//! tracing span so its logs stay attached to the request.

/// Work on the blocking pool that did not finish: it panicked (or the runtime is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("background work failed: {0}")]
pub struct BlockingError(#[from] tokio::task::JoinError);

/// Runs `work` on the blocking pool.
///
/// # Errors
/// When the work panicked.
pub async fn run<T, F>(work: F) -> Result<T, BlockingError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    Ok(tokio::task::spawn_blocking(move || span.in_scope(work)).await?)
}
