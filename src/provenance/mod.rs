//! Provenance: the service's signing PKI, C2PA Content Credentials on every generated image, the
//! reading and validation of credentials on any uploaded image, and signatures over the
//! registry's records by the key that signs the images.
//!
//! - [`pki`]: `hallmark init` creates a P-384 root CA, a P-384 issuing CA and an Ed25519 signing
//!   certificate in `<data_dir>/keys/` (private keys 0600, never logged); `hallmark rotate-key`
//!   issues a new signing certificate and keeps the old public certificate so older images and
//!   records still verify. An operator may bring their own chain and key instead (`[provenance]`
//!   settings), with an Ed25519, ES256 or ES384 leaf ([`keys`]).
//! - [`sign`]: [`ProvenanceSigner`], built once and shared, embeds a signed manifest in PNG, JPEG
//!   or WebP bytes.
//! - [`verify`]: [`ProvenanceVerifier`], built once and shared, reads and validates a manifest
//!   into a [`ProvenanceReport`]. Only PNG, JPEG and WebP reach the C2PA parser (checked by magic
//!   bytes), and remote manifests are never fetched.
//! - [`history`]: the whole manifest store as a tree (actions, ingredients with their own
//!   validation, CAWG identities, thumbnails), bounded in depth, size and thumbnails.
//! - [`trust`]: named trust lists (ours, the operator's, C2PA-style lists from files or URLs)
//!   reloaded in the background, and which list trusted a signer.
//! - [`record`]: the canonical encoding of a registry record and its signature.
//!
//! Signing and verification are synchronous and CPU-bound: call them from a blocking thread.

pub mod history;
pub mod keyfile;
pub mod keys;
pub mod pki;
pub mod record;
pub mod sign;
pub mod trust;
pub mod tsa;
pub mod verify;

pub use keys::{Algorithm, PrivateKey, PublicKey};
pub use pki::SigningIdentity;
pub use record::{sign_record, verify_record, Record, RecordFields};
pub use sign::{EditClaim, ImageClaim, ProvenanceSigner, SignedImage};
pub use trust::{TrustList, TrustStore};
pub use verify::{ProvenanceReport, ProvenanceVerifier, ValidationState};

use serde::{Deserialize, Serialize};

use crate::fingerprint::iscc::{self, ImageCode};

/// Label of Hallmark's own assertion in the manifests it signs.
pub const HALLMARK_ASSERTION: &str = "org.hallmark.generation";
/// The soft-binding algorithm of every Hallmark manifest (`c2pa.soft-binding` assertion, and `alg`
/// in the Soft Binding Resolution API): the 64-bit perceptual hash of the whole image that the
/// registry searches on, as `docs/soft-binding.md` specifies. Not on the C2PA soft-binding
/// algorithm list: the manifest carries a listed one too, [`ISCC_SOFT_BINDING_ALG`].
pub const SOFT_BINDING_ALG: &str = "org.hallmark.fingerprint.1";

/// The listed soft-binding algorithm of every Hallmark manifest: entry 3 of the C2PA soft-binding
/// algorithm list, the ISCC (ISO 24138), here the 256-bit ISCC Content-Code Image of the signed
/// image ([`crate::fingerprint::iscc`]). Its value is as IEP-0020 specifies: an ISCC-SEQ (the
/// unit's header and body), a CBOR byte string in the assertion and standard base64 in the Soft
/// Binding Resolution API (docs/soft-binding.md).
pub const ISCC_SOFT_BINDING_ALG: &str = "io.iscc.v0";

/// The soft-binding value of a perceptual hash: standard base64 (with padding) of its 8 bytes,
/// most significant first.
#[must_use]
pub fn soft_binding_value(phash: u64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(phash.to_be_bytes())
}

/// The perceptual hash a soft-binding value names, when it is 8 bytes of base64 (standard or
/// URL-safe, padded or not).
#[must_use]
pub fn parse_soft_binding_value(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.len() > 24 {
        return None;
    }
    Some(u64::from_be_bytes(decode_base64(value)?.try_into().ok()?))
}

/// Base64 as clients send a soft-binding value: standard or URL-safe, padded or not.
fn decode_base64(value: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines.iter().find_map(|engine| engine.decode(value).ok())
}

/// The `io.iscc.v0` value of an ISCC Content-Code Image in the Soft Binding Resolution API:
/// standard base64 (with padding) of its ISCC-SEQ, the unit's 34 bytes (IEP-0020).
#[must_use]
pub fn iscc_soft_binding_value(code: &ImageCode) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(code.unit())
}

/// The 256-bit ISCC Content-Code Images of an `io.iscc.v0` value: base64 (standard or URL-safe,
/// padded or not, a `+` that became a space taken back) of an ISCC-SEQ, decoded strictly
/// (IEP-0020). Its other units (other MainTypes and SubTypes, shorter codes) are left out, as
/// IEP-0020 has resolvers ignore the units they do not match on.
///
/// # Errors
/// A sentence on why, when the value is not base64 of an ISCC-SEQ or holds no 256-bit Content-Code
/// Image.
pub fn parse_iscc_soft_binding_value(value: &str) -> Result<Vec<ImageCode>, String> {
    let value = value.trim().replace(' ', "+");
    let bytes = decode_base64(&value).ok_or("the value is not base64")?;
    let units = iscc::decode_seq(&bytes).map_err(|error| format!("not an ISCC-SEQ: {error}"))?;
    let codes: Vec<ImageCode> = units.iter().filter_map(iscc::Unit::image_code).collect();
    if codes.is_empty() {
        return Err(
            "the ISCC-SEQ holds no 256-bit ISCC Content-Code Image, the unit this service matches"
                .into(),
        );
    }
    Ok(codes)
}

/// The manifest store (JUMBF, `application/c2pa`) embedded in a PNG, JPEG or WebP file.
///
/// # Errors
/// When the bytes are of no accepted format or carry no manifest store.
pub fn extract_manifest_store(bytes: &[u8]) -> Result<Vec<u8>, ProvenanceError> {
    let format = ImageFormat::sniff(bytes)
        .ok_or_else(|| ProvenanceError::Format("not a PNG, JPEG or WebP file".into()))?;
    Ok(c2pa::jumbf_io::load_jumbf_from_stream(
        format.mime(),
        &mut std::io::Cursor::new(bytes),
    )?)
}

/// IPTC digital source type of images made by a trained model.
pub const TRAINED_ALGORITHMIC_MEDIA: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

/// IPTC digital source type of a picture edited with a trained model's output
/// (Hallmark's enhancements: the upload, completed or corrected by the generator).
pub const COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia";

/// Errors of the provenance module. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("key or certificate: {0}")]
    Key(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("C2PA: {0}")]
    C2pa(#[from] c2pa::Error),
    #[error("image format does not match the claim: {0}")]
    Format(String),
}

impl ProvenanceError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// The encoded image formats Hallmark signs and reads. Anything else is refused before a parser
/// sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Png,
    Jpeg,
    Webp,
}

impl ImageFormat {
    /// The format named by the file's magic bytes, if it is one we accept.
    #[must_use]
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }

    #[must_use]
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    /// The name stored in `records.format`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Webp => "webp",
        }
    }

    /// The format a `records.format` name stands for.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Png, Self::Jpeg, Self::Webp]
            .into_iter()
            .find(|format| format.as_str() == name)
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ImageFormat {
    type Err = ProvenanceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "png" | "image/png" => Ok(Self::Png),
            "jpeg" | "jpg" | "image/jpeg" => Ok(Self::Jpeg),
            "webp" | "image/webp" => Ok(Self::Webp),
            other => Err(ProvenanceError::Format(format!(
                "unsupported format {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_binding_values_round_trip_and_refuse_other_lengths() {
        let phash = 0xdead_beef_0123_4567;
        let value = soft_binding_value(phash);
        assert_eq!(value, "3q2+7wEjRWc=");
        assert_eq!(parse_soft_binding_value(&value), Some(phash));
        assert_eq!(parse_soft_binding_value("3q2-7wEjRWc"), Some(phash));
        for bad in ["", "AAAA", "not base64!", &"A".repeat(100_000)] {
            assert_eq!(parse_soft_binding_value(bad), None, "{bad:.20}");
        }
    }

    #[test]
    fn iscc_values_round_trip_and_refuse_what_holds_no_image_code() {
        use base64::Engine as _;
        let code = ImageCode(std::array::from_fn(|i| (i * 7) as u8));
        let value = iscc_soft_binding_value(&code);
        assert!(value.starts_with("IQc") && value.ends_with('='), "{value}");
        assert_eq!(parse_iscc_soft_binding_value(&value), Ok(vec![code]));
        let url_safe = value.replace('+', "-").replace('/', "_");
        assert_eq!(
            parse_iscc_soft_binding_value(url_safe.trim_end_matches('=')),
            Ok(vec![code])
        );
        assert_eq!(
            parse_iscc_soft_binding_value(&value.replace('+', " ")),
            Ok(vec![code])
        );
        // Beside a Data-Code, in any order.
        let mut seq = vec![0x30, 0x07];
        seq.extend_from_slice(&[9; 32]);
        seq.extend_from_slice(&code.unit());
        let both = base64::engine::general_purpose::STANDARD.encode(&seq);
        assert_eq!(parse_iscc_soft_binding_value(&both), Ok(vec![code]));
        // A 64-bit Content-Code Image, a lone Data-Code, a broken sequence, not base64.
        let short = base64::engine::general_purpose::STANDARD
            .encode([0x21_u8, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]);
        for bad in [short.as_str(), "MAcJCQkJCQkJ", "IQc=", "%%%", ""] {
            assert!(parse_iscc_soft_binding_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn magic_bytes_pick_the_format() {
        assert_eq!(
            ImageFormat::sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(ImageFormat::Png)
        );
        assert_eq!(
            ImageFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageFormat::Webp)
        );
        assert_eq!(ImageFormat::sniff(b"II*\0tiff"), None);
        assert_eq!(ImageFormat::sniff(b""), None);
        assert_eq!("JPG".parse::<ImageFormat>().unwrap(), ImageFormat::Jpeg);
    }
}
