//! The time-stamp authority's HTTP exchange: the only network access of Hallmark's C2PA code.
//!
//! With `provenance.tsa_url` set, c2pa-rs asks the signer for an RFC 3161 time-stamp of each
//! claim signature, and [`TsaResolver`] POSTs the request there through reqwest (`http://` or
//! `https://`; the reply is itself signed, so many authorities serve plain HTTP). Any other
//! request the C2PA SDK could make (a GET for a remote manifest or an OCSP response) is refused.
//! Signing runs on the blocking pool, so the exchange blocks that thread, never the executor.

use std::io::{Cursor, Read};
use std::time::Duration;

use c2pa::http::http::{Method, Request, Response};
use c2pa::http::{HttpResolverError, SyncHttpResolver};

use super::ProvenanceError;

/// Connecting, and the whole exchange, each give up after this long.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Replies over this size are refused (a time-stamp token is a few kilobytes).
const MAX_REPLY: usize = 1 << 20;

/// A time-stamp authority's URL, checked: `http://` or `https://` with a host.
///
/// # Errors
/// When it is not such a URL.
pub fn parse_tsa_url(url: &str) -> Result<reqwest::Url, ProvenanceError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ProvenanceError::Config(format!("tsa_url {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none_or(str::is_empty)
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(ProvenanceError::Config(format!(
            "tsa_url {url:?}: an http:// or https:// URL with a host and no credentials"
        )));
    }
    Ok(parsed)
}

/// POSTs to the time-stamp authority; refuses everything else.
pub(super) struct TsaResolver {
    client: reqwest::Client,
}

impl TsaResolver {
    pub(super) fn new() -> Result<Self, ProvenanceError> {
        let client = reqwest::Client::builder()
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // Requests may run on different runtimes (the service's blocking pool, a CLI's, or a
            // runtime of their own): no connection outlives the request that opened it.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("hallmark/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProvenanceError::Config(format!("HTTP client for the TSA: {e}")))?;
        Ok(Self { client })
    }

    async fn post(
        &self,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Box<dyn Read>>, HttpResolverError> {
        let (parts, body) = request.into_parts();
        let mut outgoing = self.client.post(parts.uri.to_string()).body(body);
        for (name, value) in &parts.headers {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
        let mut reply = outgoing.send().await.map_err(other)?;
        let mut response = Response::builder().status(reply.status().as_u16());
        for (name, value) in reply.headers() {
            response = response.header(name.as_str(), value.as_bytes());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = reply.chunk().await.map_err(other)? {
            if bytes.len() + chunk.len() > MAX_REPLY {
                return Err(other(format!("the TSA's reply is over {MAX_REPLY} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        response
            .body(Box::new(Cursor::new(bytes)) as Box<dyn Read>)
            .map_err(HttpResolverError::Http)
    }
}

fn other(error: impl ToString) -> HttpResolverError {
    HttpResolverError::Other(error.to_string().into())
}

impl SyncHttpResolver for TsaResolver {
    fn http_resolve(
        &self,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Box<dyn Read>>, HttpResolverError> {
        if request.method() != Method::POST {
            return Err(other(
                "Hallmark makes no HTTP requests but the time-stamp authority's",
            ));
        }
        parse_tsa_url(&request.uri().to_string()).map_err(other)?;
        match tokio::runtime::Handle::try_current() {
            // A blocking-pool thread of the service's runtime: signing never runs on the
            // executor itself (`crate::blocking::run`).
            Ok(handle) => handle.block_on(self.post(request)),
            // No runtime (a synchronous caller): one for this request.
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(other)?
                .block_on(self.post(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsa_urls_are_http_or_https_with_a_host() {
        for good in [
            "http://timestamp.digicert.com",
            "http://127.0.0.1:3180/tsa?x=1",
            "https://freetsa.org/tsr",
        ] {
            assert!(parse_tsa_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://tsa.example",
            "http://user@host/",
            "http://user:pw@host/",
            "http://:80/",
            "timestamp.digicert.com",
            "",
        ] {
            assert!(parse_tsa_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_resolver_refuses_everything_but_a_post() {
        let resolver = TsaResolver::new().unwrap();
        let request = Request::get("http://127.0.0.1:1/manifest")
            .body(Vec::new())
            .unwrap();
        assert!(resolver.http_resolve(request).is_err());
        let request = Request::post("ftp://127.0.0.1/tsa")
            .body(Vec::new())
            .unwrap();
        assert!(resolver.http_resolve(request).is_err());
    }
}
