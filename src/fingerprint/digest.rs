//! A SHA-256 digest as a type: parsed once where it enters (64 hex digits, or 32 bytes from the
//! database), shown as lowercase hex, never carried around as a `String` to be decoded again.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// 32 bytes of SHA-256. Serialises as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

/// Why text or bytes are not a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("a SHA-256 digest is 64 hex digits")]
    Text,
    #[error("a SHA-256 digest is 32 bytes, not {0}")]
    Length(usize),
}

impl Sha256Digest {
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Sha256Digest {
    type Err = DigestError;

    /// Exactly 64 hex digits, either case (no prefix, no spaces).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| DigestError::Text)?;
        Ok(Self(bytes))
    }
}

impl TryFrom<&[u8]> for Sha256Digest {
    type Error = DigestError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| DigestError::Length(bytes.len()))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_64_hex_digits_of_either_case_and_nothing_else() {
        let digest = Sha256Digest(crate::fingerprint::sha256(b"hallmark"));
        let hex = digest.to_string();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex.parse::<Sha256Digest>(), Ok(digest));
        assert_eq!(hex.to_uppercase().parse::<Sha256Digest>(), Ok(digest));
        for bad in [
            "",
            &hex[..63],
            &format!("{hex}0"),
            &format!("{hex}00"),
            &format!(" {hex}"),
            &format!("0x{}", &hex[2..]),
            &hex.replacen(&hex[..1], "g", 1),
        ] {
            assert_eq!(
                bad.parse::<Sha256Digest>(),
                Err(DigestError::Text),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bytes_must_be_32_long_and_serialise_as_hex() {
        let digest = Sha256Digest(crate::fingerprint::sha256(b"x"));
        assert_eq!(Sha256Digest::try_from(&digest.0[..]), Ok(digest));
        assert_eq!(
            Sha256Digest::try_from(&digest.0[..31]),
            Err(DigestError::Length(31))
        );
        assert_eq!(
            serde_json::to_string(&digest).unwrap(),
            format!("\"{digest}\"")
        );
    }
}
