//! Embedding signed C2PA manifests in generated images.
//!
//! Build one [`ProvenanceSigner`] at start-up, share it (`Arc`), and call
//! [`ProvenanceSigner::sign_image`] from a blocking thread for each image. The manifest holds:
//! the claim generator `hallmark/<version>`; a `c2pa.actions` assertion with one `c2pa.created`
//! action whose `digitalSourceType` is IPTC `trainedAlgorithmicMedia` and whose software agent is
//! the model (name and version); Hallmark's own assertion [`HALLMARK_ASSERTION`] with the record
//! id, model, seed and perceptual hash; two soft bindings, Hallmark's perceptual hash
//! ([`super::SOFT_BINDING_ALG`]) and the listed ISCC Content-Code Image
//! ([`super::ISCC_SOFT_BINDING_ALG`], computed here from the bytes handed in); and a title. The COSE signature is Ed25519 over
//! ed25519-dalek, with the certificate chain (leaf and our CA) in its header. With
//! `provenance.tsa_url` set, an RFC 3161 time-stamp is requested over plain HTTP.

use std::io::{Cursor, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use c2pa::crypto::raw_signature::SigningAlg;
use c2pa::http::http::{Request, Response};
use c2pa::http::{HttpResolverError, SyncHttpResolver};
use c2pa::{Builder, Context};
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::pki::SigningIdentity;
use super::record::{self, RecordFields};
use super::{ImageFormat, ProvenanceError, HALLMARK_ASSERTION, TRAINED_ALGORITHMIC_MEDIA};
use crate::config::Settings;
use crate::fingerprint::iscc::ImageCode;

/// The C2PA specification version Hallmark's manifests follow (`specVersion` in
/// `claim_generator_info`): the Conformance Program's rubric for it,
/// `third_party/c2pa-conformance/asset-rubric-conformance0.2-spec2.2.yml`, finds no failed trait
/// (`tests/provenance.rs`).
pub const C2PA_SPEC_VERSION: &str = "2.2";

/// What the manifest says about one generated image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageClaim {
    pub record_id: Uuid,
    pub model: String,
    pub model_version: String,
    /// The generation seed (same bits as `records.seed`).
    pub seed: i64,
    /// 64-bit perceptual hash of the pixels.
    pub phash: u64,
    pub title: String,
    /// Must match the encoded bytes' magic bytes.
    pub format: ImageFormat,
}

/// An image with its manifest embedded.
#[derive(Debug, Clone)]
pub struct SignedImage {
    pub bytes: Vec<u8>,
    /// The manifest label, `urn:c2pa:<uuid>` (stored in `records.manifest_id`).
    pub manifest_id: String,
    /// The embedded manifest store (JUMBF, `application/c2pa`), as the manifest repository
    /// keeps it.
    pub manifest: Vec<u8>,
    /// The ISCC Content-Code Image of the bytes signed, the value of the manifest's `io.iscc.v0`
    /// soft binding.
    pub iscc: ImageCode,
}

/// The `io.iscc.v0` soft-binding assertion (C2PA `soft-binding-map`; IEP-0020): one block over the
/// whole image whose value is a CBOR byte string, the ISCC-SEQ of the Content-Code Image; `pad`
/// empty, as c2pa-rs writes it; no `alg-params`.
#[derive(Serialize)]
struct IsccSoftBinding<'a> {
    alg: &'static str,
    blocks: [IsccBlock<'a>; 1],
    name: &'static str,
    pad: ByteString<'a>,
}

#[derive(Serialize)]
struct IsccBlock<'a> {
    /// Empty: the whole image.
    scope: WholeAsset,
    value: ByteString<'a>,
}

#[derive(Serialize)]
struct WholeAsset {}

/// Bytes serialised as a CBOR byte string (major type 2), not an array of integers.
struct ByteString<'a>(&'a [u8]);

impl Serialize for ByteString<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Hallmark's assertion as stored in the manifest (label [`HALLMARK_ASSERTION`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationAssertion {
    pub record_id: Uuid,
    pub model: String,
    pub model_version: String,
    pub seed: i64,
    /// The perceptual hash, 16 lower-case hex digits.
    pub phash: String,
}

/// Signs images with the service's identity. Build once and share; `Send + Sync`.
pub struct ProvenanceSigner {
    context: Arc<Context>,
    signer: Ed25519Signer,
    identity: SigningIdentity,
}

impl std::fmt::Debug for ProvenanceSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvenanceSigner")
            .field("key_id", &self.identity.key_id())
            .field("tsa_url", &self.signer.tsa_url)
            .finish_non_exhaustive()
    }
}

impl ProvenanceSigner {
    /// The signer the settings describe: [`SigningIdentity::load`] plus `provenance.tsa_url`.
    ///
    /// # Errors
    /// When the identity cannot be loaded or the TSA URL is not plain `http://`.
    pub fn from_settings(settings: &Settings) -> Result<Self, ProvenanceError> {
        let tsa = settings
            .provenance
            .tsa_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned);
        Self::new(SigningIdentity::load(settings)?, tsa)
    }

    /// # Errors
    /// When the TSA URL is not plain `http://` or the C2PA context cannot be built.
    pub fn new(
        identity: SigningIdentity,
        tsa_url: Option<String>,
    ) -> Result<Self, ProvenanceError> {
        if let Some(url) = &tsa_url {
            parse_http_url(url).map_err(|e| ProvenanceError::Config(format!("tsa_url: {e}")))?;
        }
        let context = Context::new()
            .with_settings(serde_json::json!({
                "verify": { "verify_after_sign": false },
                "builder": { "thumbnail": { "enabled": false } },
            }))?
            .with_resolver(PlainHttpResolver)
            .into_shared();
        let certs = identity.cert_chain_der().to_vec();
        let certs_len: usize = certs.iter().map(Vec::len).sum();
        // The COSE_Sign1 box: chain + 64-byte signature + headers; a time-stamp token adds
        // several kilobytes.
        let reserve_size = certs_len + 512 + if tsa_url.is_some() { 12_000 } else { 0 };
        let signer = Ed25519Signer {
            key: identity.signing_key().clone(),
            certs,
            reserve_size,
            tsa_url,
            context: Arc::clone(&context),
        };
        Ok(Self {
            context,
            signer,
            identity,
        })
    }

    /// The id of the signing key (`signing_keys.id`, `records.signing_key_id`).
    #[must_use]
    pub fn key_id(&self) -> &str {
        self.identity.key_id()
    }

    #[must_use]
    pub fn identity(&self) -> &SigningIdentity {
        &self.identity
    }

    /// Signs a record's canonical encoding with the same key ([`record::sign_record`]).
    ///
    /// # Errors
    /// As [`record::sign_record`].
    pub fn sign_record(&self, fields: &RecordFields) -> Result<Vec<u8>, record::RecordError> {
        record::sign_record(fields, self.identity.signing_key())
    }

    /// Embeds a signed manifest describing `claim` in the encoded image.
    ///
    /// # Errors
    /// When the bytes are not of `claim.format`, or C2PA cannot parse or sign them.
    pub fn sign_image(
        &self,
        claim: &ImageClaim,
        encoded: &[u8],
    ) -> Result<SignedImage, ProvenanceError> {
        match ImageFormat::sniff(encoded) {
            Some(found) if found == claim.format => {}
            found => {
                return Err(ProvenanceError::Format(format!(
                    "claimed {}, bytes are {}",
                    claim.format,
                    found.map_or("of no accepted format", ImageFormat::as_str)
                )))
            }
        }
        // IEP-0020: the units of the source, the file as handed to the signer.
        let iscc = ImageCode::of_file(encoded).map_err(|error| {
            ProvenanceError::Format(format!("the image does not decode: {error}"))
        })?;
        let manifest_id = format!("urn:c2pa:{}", Uuid::new_v4());
        let assertion = GenerationAssertion {
            record_id: claim.record_id,
            model: claim.model.clone(),
            model_version: claim.model_version.clone(),
            seed: claim.seed,
            phash: format!("{:016x}", claim.phash),
        };
        let definition = serde_json::json!({
            "label": manifest_id,
            "title": claim.title,
            "format": claim.format.mime(),
            "claim_generator_info": [{
                "name": "hallmark",
                "version": env!("CARGO_PKG_VERSION"),
                "specVersion": C2PA_SPEC_VERSION,
            }],
            // Every assertion is the signer's own statement (`created`, claim v2's
            // created_assertions); the actions assertion comes first, its first action the
            // inception, and it says it lists every action (`allActionsIncluded`): the
            // Conformance Program's rubric asks for all three.
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "created": true,
                    "data": {
                        "allActionsIncluded": true,
                        "actions": [{
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": { "name": claim.model, "version": claim.model_version },
                        }],
                    },
                },
                { "label": HALLMARK_ASSERTION, "created": true, "data": assertion },
                {
                    "label": "c2pa.soft-binding",
                    "created": true,
                    "data": {
                        "alg": super::SOFT_BINDING_ALG,
                        "name": "Hallmark perceptual hash of the whole image (docs/soft-binding.md)",
                        "blocks": [{ "scope": {}, "value": super::soft_binding_value(claim.phash) }],
                    },
                },
            ],
        });
        let mut builder =
            Builder::from_shared_context(&self.context).with_definition(definition.to_string())?;
        // After Hallmark's own: `c2pa.soft-binding__1` in the manifest.
        let unit = iscc.unit();
        builder.add_assertion(
            "c2pa.soft-binding",
            &IsccSoftBinding {
                alg: super::ISCC_SOFT_BINDING_ALG,
                blocks: [IsccBlock {
                    scope: WholeAsset {},
                    value: ByteString(&unit),
                }],
                name: "ISCC Content-Code Image of the whole image (ISO 24138, IEP-0020)",
                pad: ByteString(&[]),
            },
        )?;
        // The signer's own too (`add_assertion` files it as gathered).
        if let Some(iscc_assertion) = builder.definition.assertions.last_mut() {
            iscc_assertion.created = true;
        }
        let mut source = Cursor::new(encoded);
        let mut dest = Cursor::new(Vec::with_capacity(encoded.len() + 4096));
        let manifest = builder.sign(&self.signer, claim.format.mime(), &mut source, &mut dest)?;
        Ok(SignedImage {
            bytes: dest.into_inner(),
            manifest_id,
            manifest,
            iscc,
        })
    }
}

/// The C2PA signer: Ed25519 over ed25519-dalek, a reserve sized to the chain, optional TSA.
struct Ed25519Signer {
    key: ed25519_dalek::SigningKey,
    certs: Vec<Vec<u8>>,
    reserve_size: usize,
    tsa_url: Option<String>,
    context: Arc<Context>,
}

impl c2pa::Signer for Ed25519Signer {
    fn sign(&self, data: &[u8]) -> c2pa::Result<Vec<u8>> {
        Ok(self.key.sign(data).to_bytes().to_vec())
    }

    fn alg(&self) -> SigningAlg {
        SigningAlg::Ed25519
    }

    fn certs(&self) -> c2pa::Result<Vec<Vec<u8>>> {
        Ok(self.certs.clone())
    }

    fn reserve_size(&self) -> usize {
        self.reserve_size
    }

    fn time_authority_url(&self) -> Option<String> {
        self.tsa_url.clone()
    }

    fn send_timestamp_request(&self, message: &[u8]) -> Option<c2pa::Result<Vec<u8>>> {
        let url = self.tsa_url.as_deref()?;
        let body = match self.timestamp_request_body(message) {
            Ok(body) => body,
            Err(error) => return Some(Err(error)),
        };
        Some(
            c2pa::crypto::time_stamp::default_rfc3161_request(
                url,
                None,
                &body,
                message,
                &self.context,
            )
            .map_err(Into::into),
        )
    }
}

/// The only network access Hallmark's C2PA code has: a plain-HTTP POST to the configured TSA
/// (RFC 3161 replies are themselves signed, so TSAs commonly serve plain HTTP). GETs (remote
/// manifests, OCSP) are refused.
struct PlainHttpResolver;

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_MAX_REPLY: u64 = 1 << 20;

impl SyncHttpResolver for PlainHttpResolver {
    fn http_resolve(
        &self,
        request: Request<Vec<u8>>,
    ) -> Result<Response<Box<dyn Read>>, HttpResolverError> {
        let other = |msg: String| HttpResolverError::Other(msg.into());
        if request.method() != c2pa::http::http::Method::POST {
            return Err(other(
                "Hallmark makes no HTTP requests but the TSA's".into(),
            ));
        }
        let (host, port, path) = parse_http_url(&request.uri().to_string()).map_err(other)?;
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| other(e.to_string()))?
            .next()
            .ok_or_else(|| other(format!("cannot resolve {host}")))?;
        let mut stream =
            TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| other(e.to_string()))?;
        stream.set_read_timeout(Some(HTTP_TIMEOUT)).ok();
        stream.set_write_timeout(Some(HTTP_TIMEOUT)).ok();
        let mut head = format!(
            "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n",
            request.body().len()
        );
        for (name, value) in request.headers() {
            if let Ok(value) = value.to_str() {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(request.body()))
            .map_err(|e| other(e.to_string()))?;
        let mut reply = Vec::new();
        stream
            .take(HTTP_MAX_REPLY)
            .read_to_end(&mut reply)
            .map_err(|e| other(e.to_string()))?;
        let split = reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| other("malformed HTTP reply".into()))?;
        let head = String::from_utf8_lossy(&reply[..split]).into_owned();
        let body = reply[split + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| other("malformed HTTP status line".into()))?;
        let mut response = Response::builder().status(status);
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                response = response.header(name.trim(), value.trim());
            }
        }
        response
            .body(Box::new(Cursor::new(body)) as Box<dyn Read>)
            .map_err(HttpResolverError::Http)
    }
}

/// `http://host[:port][/path]` into its parts.
fn parse_http_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only plain http:// URLs are supported, not {url:?}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse().map_err(|_| format!("bad port in {url:?}"))?,
        ),
        None => (authority, 80),
    };
    if host.is_empty() || authority.contains('@') {
        return Err(format!("bad host in {url:?}"));
    }
    Ok((host.to_owned(), port, path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsa_urls_must_be_plain_http() {
        assert_eq!(
            parse_http_url("http://timestamp.digicert.com").unwrap(),
            ("timestamp.digicert.com".into(), 80, "/".into())
        );
        assert_eq!(
            parse_http_url("http://127.0.0.1:3180/tsa?x=1").unwrap(),
            ("127.0.0.1".into(), 3180, "/tsa?x=1".into())
        );
        assert!(parse_http_url("https://tsa.example").is_err());
        assert!(parse_http_url("http://user@host/").is_err());
        assert!(parse_http_url("http://:80/").is_err());
    }

    #[test]
    fn the_resolver_refuses_gets() {
        let request = Request::get("http://127.0.0.1:1/manifest")
            .body(Vec::new())
            .unwrap();
        assert!(PlainHttpResolver.http_resolve(request).is_err());
    }
}
