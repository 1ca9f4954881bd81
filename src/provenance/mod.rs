//! Provenance: the service's signing PKI, C2PA Content Credentials on every generated image, the
//! reading and validation of credentials on any uploaded image, and Ed25519 signatures over the
//! registry's records.
//!
//! - [`pki`]: `hallmark init` creates an Ed25519 root CA and a signing certificate issued by it in
//!   `<data_dir>/keys/` (private keys 0600, never logged); `hallmark rotate-key` issues a new
//!   signing certificate and keeps the old public certificate so older images and records still
//!   verify. An operator may bring their own chain and key instead (`[provenance]` settings).
//! - [`sign`]: [`ProvenanceSigner`], built once and shared, embeds a signed manifest in PNG, JPEG
//!   or WebP bytes.
//! - [`verify`]: [`ProvenanceVerifier`], built once and shared, reads and validates a manifest
//!   into a [`ProvenanceReport`]. Only PNG, JPEG and WebP reach the C2PA parser (checked by magic
//!   bytes), and remote manifests are never fetched.
//! - [`history`]: the whole manifest store as a tree (actions, ingredients with their own
//!   validation, CAWG identities, thumbnails), bounded in depth, size and thumbnails.
//! - [`trust`]: named trust lists (ours, the operator's, C2PA-style lists from files or URLs)
//!   reloaded in the background, and which list trusted a signer.
//! - [`record`]: the canonical encoding of a registry record and its Ed25519 signature.
//!
//! Signing and verification are synchronous and CPU-bound: call them from a blocking thread.

pub mod history;
pub mod pki;
pub mod record;
pub mod sign;
pub mod trust;
pub mod verify;

pub use pki::{key_id, SigningIdentity};
pub use record::{sign_record, verify_record, Record, RecordFields};
pub use sign::{ImageClaim, ProvenanceSigner, SignedImage};
pub use trust::{TrustList, TrustStore};
pub use verify::{ProvenanceReport, ProvenanceVerifier, ValidationState};

use serde::{Deserialize, Serialize};

/// Label of Hallmark's own assertion in the manifests it signs.
pub const HALLMARK_ASSERTION: &str = "org.hallmark.generation";
/// IPTC digital source type of images made by a trained model.
pub const TRAINED_ALGORITHMIC_MEDIA: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

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
