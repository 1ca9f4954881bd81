//! Request bodies at the edge: every body must arrive within `limits.body_timeout_s` of its
//! headers ([`deadline`]), and uploads are read against a size limit and a memory budget shared by
//! all requests ([`UploadBudget`]), so neither a client that announces 10 GB and sends nothing
//! nor a hundred clients each trickling 10 MB can hold a worker or memory for long.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_multipart::{Multipart, MultipartError};
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::error::{code, ApiError, ErrorCode};

/// How long a body may take, shared with the [`deadline`] middleware as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// The message a timed-out body stream ends with; [`payload_error`] recognises it.
const TIMED_OUT: &str = "request body deadline passed";

/// A body stream that ends with an error once its deadline has passed.
struct Deadline<S> {
    inner: S,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl<S> Stream for Deadline<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = self.inner.poll_next_unpin(cx) {
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                TIMED_OUT,
            )))));
        }
        Poll::Pending
    }
}

/// Middleware: a request that carries a body gets it through a stream that fails once
/// [`BodyTimeout`] has passed since its headers arrived.
pub async fn deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let has_body = req.headers().contains_key(header::CONTENT_LENGTH)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if let (true, Some(timeout)) = (has_body, req.app_data::<BodyTimeout>().copied()) {
        let inner = req.take_payload();
        let stream = Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(timeout.0)),
            expired: false,
        };
        req.set_payload(Payload::Stream {
            payload: Box::pin(stream),
        });
    }
    next.call(req).await
}

/// The coded error for a failed body read: 408 `body_timeout` past the deadline, else 400 with
/// `code`.
#[must_use]
pub fn payload_error(error: &PayloadError, fallback: ErrorCode) -> ApiError {
    match error {
        PayloadError::Io(io) if io.kind() == io::ErrorKind::TimedOut => ApiError::new(
            code::BODY_TIMEOUT,
            "the request body did not arrive in time",
        ),
        other => ApiError::new(fallback, other.to_string()),
    }
}

fn multipart_error(error: &MultipartError) -> ApiError {
    match error {
        MultipartError::Payload(payload) => payload_error(payload, code::MALFORMED_MULTIPART),
        other => ApiError::new(code::MALFORMED_MULTIPART, other.to_string()),
    }
}

#[must_use]
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        code::PAYLOAD_TOO_LARGE,
        format!("the upload is larger than the limit of {limit} bytes"),
    )
}

/// Memory for request bodies, shared by every upload: a request reserves its `Content-Length`
/// (or the whole size limit when it announces none) before reading, and gives it back when it is
/// answered.
#[derive(Clone)]
pub struct UploadBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// A reservation; the memory returns to the budget when it is dropped.
pub struct Reservation {
    _permit: Option<OwnedSemaphorePermit>,
}

impl UploadBudget {
    #[must_use]
    pub fn new(total: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Bytes not reserved now.
    #[must_use]
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// Reserves room for a body of `headers`' announced length, refusing one longer than `limit`
    /// at once (it is never read).
    ///
    /// # Errors
    /// 413 `payload_too_large` past `limit`; 503 `server_busy` when the budget is spent.
    pub fn reserve(&self, headers: &HeaderMap, limit: usize) -> Result<Reservation, ApiError> {
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let want = announced.map_or(limit, |n| n as usize).min(self.total);
        if want == 0 {
            return Ok(Reservation { _permit: None });
        }
        let permits = u32::try_from(want).unwrap_or(u32::MAX);
        match Arc::clone(&self.bytes).try_acquire_many_owned(permits) {
            Ok(permit) => Ok(Reservation {
                _permit: Some(permit),
            }),
            Err(_) => {
                metrics::counter!("hallmark_uploads_refused_total", "reason" => "memory_budget")
                    .increment(1);
                Err(ApiError::new(
                    code::SERVER_BUSY,
                    "too many uploads are in progress; try again shortly",
                )
                .retry_after(1))
            }
        }
    }
}

pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// The whole body of a raw upload, refused past `limit` bytes without reading further.
///
/// # Errors
/// 413 past `limit`, 408 past the body deadline, 400 for a broken body.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| payload_error(&e, code::MALFORMED_BODY))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One uploaded file of a multipart request.
pub struct Part {
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
}

/// A file name fit to store and show: the last path component, no control characters, at most
/// 200 characters.
#[must_use]
pub fn clean_name(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let name: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let name = name.trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// Form fields besides the files that a multipart body may carry.
const MAX_OTHER_FIELDS: usize = 16;

/// The `file` parts of a multipart body. The byte limit applies to the whole body; more than
/// `max_files` files, or more than a few other fields, is refused.
///
/// # Errors
/// 400 `too_many_files` / `too_many_parts` / `malformed_multipart` / `no_files`, 413 past
/// `limit`, 408 past the body deadline.
pub async fn read_parts(
    headers: &HeaderMap,
    payload: impl Stream<Item = Result<Bytes, PayloadError>> + 'static,
    limit: usize,
    max_files: usize,
) -> Result<Vec<Part>, ApiError> {
    let mut multipart = Multipart::new(headers, payload);
    let mut parts = Vec::new();
    let mut others = 0usize;
    let mut total = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| multipart_error(&e))?;
        let is_file = field.name() == Some("file");
        if is_file && parts.len() == max_files {
            return Err(ApiError::new(
                code::TOO_MANY_FILES,
                format!("at most {max_files} files per request"),
            ));
        }
        if !is_file {
            others += 1;
            if others > MAX_OTHER_FIELDS {
                return Err(ApiError::new(
                    code::TOO_MANY_PARTS,
                    format!(
                        "at most {MAX_OTHER_FIELDS} form fields besides the files named \"file\""
                    ),
                ));
            }
        }
        let file_name = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .and_then(clean_name);
        let bytes = field
            .bytes(limit.saturating_sub(total))
            .await
            .map_err(|_| too_large(limit))?
            .map_err(|e| multipart_error(&e))?;
        total += bytes.len();
        if is_file {
            parts.push(Part {
                file_name,
                bytes: bytes.to_vec(),
            });
        }
        // Other form fields carry nothing we use: read within the same limit and dropped.
    }
    if parts.is_empty() {
        return Err(ApiError::new(
            code::NO_FILES,
            "send the image as the request body, or as multipart/form-data parts named \"file\"",
        ));
    }
    Ok(parts)
}

/// A multipart form of named parts: files and short text fields, each name at most once.
#[derive(Default)]
pub struct Form {
    pub files: std::collections::HashMap<String, Part>,
    pub fields: std::collections::HashMap<String, String>,
}

/// Longest text field of a [`Form`], in bytes.
const MAX_FIELD_BYTES: usize = 256;

/// Reads a multipart form whose part names are among `files` (read as bytes) and `fields`
/// (UTF-8 text of at most 256 bytes). The byte limit applies to the whole body.
///
/// # Errors
/// 400 `invalid_operation` for an unknown, repeated, unnamed or too long part,
/// `malformed_multipart`, 413 past `limit`, 408 past the body deadline.
pub async fn read_form(
    headers: &HeaderMap,
    payload: impl Stream<Item = Result<Bytes, PayloadError>> + 'static,
    limit: usize,
    files: &[&str],
    fields: &[&str],
) -> Result<Form, ApiError> {
    let mut multipart = Multipart::new(headers, payload);
    let mut form = Form::default();
    let mut total = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| multipart_error(&e))?;
        let name = field.name().unwrap_or_default().to_owned();
        let is_file = files.contains(&name.as_str());
        if !is_file && !fields.contains(&name.as_str()) {
            return Err(ApiError::new(
                code::INVALID_OPERATION,
                format!(
                    "unknown form field {:?}: the fields are {}",
                    name.chars().take(64).collect::<String>(),
                    files
                        .iter()
                        .chain(fields)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if form.files.contains_key(&name) || form.fields.contains_key(&name) {
            return Err(ApiError::new(
                code::INVALID_OPERATION,
                format!("form field {name:?} given twice"),
            ));
        }
        let cap = if is_file {
            limit.saturating_sub(total)
        } else {
            MAX_FIELD_BYTES.min(limit.saturating_sub(total))
        };
        let bytes = field
            .bytes(cap)
            .await
            .map_err(|_| {
                if is_file {
                    too_large(limit)
                } else {
                    ApiError::new(
                        code::INVALID_OPERATION,
                        format!("form field {name:?} is over {MAX_FIELD_BYTES} bytes"),
                    )
                }
            })?
            .map_err(|e| multipart_error(&e))?;
        total += bytes.len();
        if is_file {
            let file_name = field
                .content_disposition()
                .and_then(|cd| cd.get_filename())
                .and_then(clean_name);
            form.files.insert(
                name,
                Part {
                    file_name,
                    bytes: bytes.to_vec(),
                },
            );
        } else {
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                ApiError::new(
                    code::INVALID_OPERATION,
                    format!("form field {name:?} is not UTF-8 text"),
                )
            })?;
            form.fields.insert(name, text.trim().to_owned());
        }
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn with_length(length: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from_str(length).unwrap(),
        );
        headers
    }

    #[test]
    fn file_names_are_cleaned() {
        assert_eq!(clean_name("a.png").as_deref(), Some("a.png"));
        assert_eq!(clean_name("C:\\x\\..\\b.jpg").as_deref(), Some("b.jpg"));
        assert_eq!(clean_name("/etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(clean_name("a\u{0}\nb.png").as_deref(), Some("ab.png"));
        assert_eq!(clean_name("  "), None);
        assert_eq!(clean_name(&"x".repeat(500)).map(|n| n.len()), Some(200));
    }

    #[test]
    fn the_budget_is_reserved_and_given_back() {
        let budget = UploadBudget::new(1000);
        let a = budget.reserve(&with_length("600"), 800).unwrap();
        assert_eq!(budget.available(), 400);
        let refused = budget.reserve(&with_length("500"), 800).err().unwrap();
        assert_eq!(
            (refused.status().as_u16(), refused.code()),
            (503, "server_busy")
        );
        drop(a);
        assert_eq!(budget.available(), 1000);
        // No Content-Length: the whole limit is reserved.
        let b = budget.reserve(&HeaderMap::new(), 800).unwrap();
        assert_eq!(budget.available(), 200);
        drop(b);
    }

    #[test]
    fn an_announced_body_past_the_limit_is_refused_unread() {
        let budget = UploadBudget::new(1000);
        let error = budget
            .reserve(&with_length("10000000000"), 800)
            .err()
            .unwrap();
        assert_eq!(error.code(), "payload_too_large");
        assert_eq!(budget.available(), 1000);
    }

    #[tokio::test]
    async fn a_body_that_stalls_ends_with_a_timeout() {
        let stalled = futures_util::stream::pending::<Result<Bytes, PayloadError>>();
        let mut stream = Deadline {
            inner: stalled,
            sleep: Box::pin(tokio::time::sleep(Duration::from_millis(10))),
            expired: false,
        };
        let error = stream.next().await.unwrap().unwrap_err();
        let api = payload_error(&error, code::MALFORMED_BODY);
        assert_eq!((api.status().as_u16(), api.code()), (408, "body_timeout"));
        assert!(stream.next().await.is_none());
    }
}
