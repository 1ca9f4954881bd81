//! Claim-signing keys: Ed25519, or ECDSA on P-256 (ES256) or P-384 (ES384).
//!
//! `hallmark init` makes an Ed25519 leaf; an operator's own chain (`provenance.cert_chain` and
//! `provenance.private_key`) may end in any of the three, the algorithms the C2PA Certificate
//! Policy and the C2PA specification's COSE profile share for a claim-signing leaf. One key
//! signs both an image's C2PA claim and its registry record (`record::sign_record`), so a record
//! and the image it describes name the same key id.
//!
//! Signatures are in their fixed-size COSE form (RFC 8152 section 8.1 for ECDSA: `r ‖ s`, each
//! as long as the curve's order; RFC 8032 for Ed25519): 64 bytes for Ed25519 and ES256, 96 for
//! ES384. ECDSA signs with RFC 6979's deterministic nonces and hashes with SHA-256 (P-256) or
//! SHA-384 (P-384). A public key is stored and shown as its raw bytes ([`PublicKey::to_bytes`]):
//! the 32-byte Ed25519 key, or the uncompressed SEC1 point (65 or 97 bytes); its id
//! ([`PublicKey::id`]) is the hex of the first 16 bytes of SHA-256 of those bytes.
//!
//! The curve arithmetic is RustCrypto's (`ed25519-dalek`, `p256`, `p384`), already in the tree
//! through `c2pa`'s `rust_native_crypto`.

use std::fmt;
use std::str::FromStr;

use c2pa::crypto::raw_signature::SigningAlg;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use ed25519_dalek::Signer as _;
use p256::ecdsa::signature::Verifier as _;
use sha2::{Digest, Sha256};

use super::ProvenanceError;

/// A claim-signing algorithm, named as COSE and JOSE name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Ed25519,
    Es256,
    Es384,
}

impl Algorithm {
    /// `Ed25519`, `ES256` or `ES384` (`signing_keys.algorithm`, the API's `algorithm`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "Ed25519",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
        }
    }

    /// Bytes of a signature in its fixed-size form.
    #[must_use]
    pub const fn signature_len(self) -> usize {
        match self {
            Self::Ed25519 | Self::Es256 => 64,
            Self::Es384 => 96,
        }
    }

    /// c2pa's name for it.
    #[must_use]
    pub const fn c2pa(self) -> SigningAlg {
        match self {
            Self::Ed25519 => SigningAlg::Ed25519,
            Self::Es256 => SigningAlg::Es256,
            Self::Es384 => SigningAlg::Es384,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = ProvenanceError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Self::Ed25519, Self::Es256, Self::Es384]
            .into_iter()
            .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| ProvenanceError::Key(format!("unknown signing algorithm {name:?}")))
    }
}

/// A signature did not verify, or was not of the algorithm's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is not {expected} bytes")]
    Malformed { expected: usize },
    #[error("the signature does not match")]
    Mismatch,
}

/// A claim-signing public key.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    Es256(p256::ecdsa::VerifyingKey),
    Es384(p384::ecdsa::VerifyingKey),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.algorithm(), self.id())
    }
}

impl From<ed25519_dalek::VerifyingKey> for PublicKey {
    fn from(key: ed25519_dalek::VerifyingKey) -> Self {
        Self::Ed25519(key)
    }
}

impl PublicKey {
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        match self {
            Self::Ed25519(_) => Algorithm::Ed25519,
            Self::Es256(_) => Algorithm::Es256,
            Self::Es384(_) => Algorithm::Es384,
        }
    }

    /// The raw key: 32 bytes for Ed25519, the uncompressed SEC1 point for ECDSA.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(key) => key.as_bytes().to_vec(),
            Self::Es256(key) => key.to_encoded_point(false).as_bytes().to_vec(),
            Self::Es384(key) => key.to_encoded_point(false).as_bytes().to_vec(),
        }
    }

    /// The key [`Self::to_bytes`] wrote for `algorithm`.
    ///
    /// # Errors
    /// When the bytes are not a valid key of that algorithm.
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Result<Self, ProvenanceError> {
        let bad = || ProvenanceError::Key(format!("not a valid {algorithm} public key"));
        match algorithm {
            Algorithm::Ed25519 => <[u8; 32]>::try_from(bytes)
                .ok()
                .and_then(|raw| ed25519_dalek::VerifyingKey::from_bytes(&raw).ok())
                .map(Self::Ed25519)
                .ok_or_else(bad),
            Algorithm::Es256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                .map(Self::Es256)
                .map_err(|_| bad()),
            Algorithm::Es384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                .map(Self::Es384)
                .map_err(|_| bad()),
        }
    }

    /// The key a `SubjectPublicKeyInfo` (DER) holds.
    ///
    /// # Errors
    /// When it is not an Ed25519, P-256 or P-384 key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, ProvenanceError> {
        if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(Self::Ed25519(key));
        }
        if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(Self::Es256(key));
        }
        p384::ecdsa::VerifyingKey::from_public_key_der(der)
            .map(Self::Es384)
            .map_err(|_| {
                ProvenanceError::Key(
                    "the certificate's key is not Ed25519, P-256 or P-384 (the claim-signing \
                     algorithms Hallmark signs with)"
                        .into(),
                )
            })
    }

    /// The public key in a DER certificate.
    ///
    /// # Errors
    /// When the certificate cannot be parsed or its key is of none of the three kinds.
    pub fn from_certificate(der: &[u8]) -> Result<Self, ProvenanceError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|_| ProvenanceError::Key("cannot parse the certificate".into()))?;
        Self::from_spki_der(cert.public_key().raw)
    }

    /// Hex of the first 16 bytes of SHA-256 of [`Self::to_bytes`] (`signing_keys.id`).
    #[must_use]
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.to_bytes())[..16])
    }

    /// Checks a fixed-size signature of `message` (Ed25519 under `verify_strict`).
    ///
    /// # Errors
    /// When the signature is not the algorithm's size or does not match.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let expected = self.algorithm().signature_len();
        let malformed = SignatureError::Malformed { expected };
        if signature.len() != expected {
            return Err(malformed);
        }
        let verified = match self {
            Self::Ed25519(key) => {
                let signature =
                    ed25519_dalek::Signature::from_slice(signature).map_err(|_| malformed)?;
                key.verify_strict(message, &signature).is_ok()
            }
            Self::Es256(key) => {
                let signature =
                    p256::ecdsa::Signature::from_slice(signature).map_err(|_| malformed)?;
                key.verify(message, &signature).is_ok()
            }
            Self::Es384(key) => {
                let signature =
                    p384::ecdsa::Signature::from_slice(signature).map_err(|_| malformed)?;
                key.verify(message, &signature).is_ok()
            }
        };
        if verified {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

/// A claim-signing private key. `Debug` shows only its algorithm and id.
#[derive(Clone)]
pub enum PrivateKey {
    Ed25519(ed25519_dalek::SigningKey),
    Es256(p256::ecdsa::SigningKey),
    Es384(p384::ecdsa::SigningKey),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({} {})", self.algorithm(), self.public().id())
    }
}

impl From<ed25519_dalek::SigningKey> for PrivateKey {
    fn from(key: ed25519_dalek::SigningKey) -> Self {
        Self::Ed25519(key)
    }
}

impl PrivateKey {
    /// The key in a PKCS#8 `PrivateKeyInfo` (DER; version 1 or 2 for Ed25519). `what` names it
    /// in errors.
    ///
    /// # Errors
    /// When it is not an Ed25519, P-256 or P-384 key.
    pub fn from_pkcs8_der(der: &[u8], what: &str) -> Result<Self, ProvenanceError> {
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return Ok(Self::Ed25519(key));
        }
        if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(Self::Es256(key));
        }
        p384::ecdsa::SigningKey::from_pkcs8_der(der)
            .map(Self::Es384)
            .map_err(|_| {
                ProvenanceError::Key(format!(
                    "{what} is not an Ed25519, P-256 or P-384 PKCS#8 key"
                ))
            })
    }

    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.public().algorithm()
    }

    #[must_use]
    pub fn public(&self) -> PublicKey {
        match self {
            Self::Ed25519(key) => PublicKey::Ed25519(key.verifying_key()),
            Self::Es256(key) => PublicKey::Es256(*key.verifying_key()),
            Self::Es384(key) => PublicKey::Es384(*key.verifying_key()),
        }
    }

    /// The fixed-size signature of `message` (see the module docs).
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            Self::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_bytes().to_vec()
            }
            Self::Es384(key) => {
                let signature: p384::ecdsa::Signature = key.sign(message);
                signature.to_bytes().to_vec()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    use rand_core::OsRng;

    fn keys() -> [PrivateKey; 3] {
        [
            PrivateKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng)),
            PrivateKey::Es256(p256::ecdsa::SigningKey::random(&mut OsRng)),
            PrivateKey::Es384(p384::ecdsa::SigningKey::random(&mut OsRng)),
        ]
    }

    #[test]
    fn each_algorithm_signs_verifies_and_refuses_a_changed_message_or_signature() {
        for key in keys() {
            let public = key.public();
            let signature = key.sign(b"record bytes");
            assert_eq!(signature.len(), key.algorithm().signature_len());
            public.verify(b"record bytes", &signature).unwrap();
            assert_eq!(
                public.verify(b"record bytez", &signature),
                Err(SignatureError::Mismatch)
            );
            let mut flipped = signature.clone();
            flipped[7] ^= 1;
            assert!(public.verify(b"record bytes", &flipped).is_err());
            assert!(matches!(
                public.verify(b"record bytes", &signature[1..]),
                Err(SignatureError::Malformed { .. })
            ));
            let other = match key.algorithm() {
                Algorithm::Ed25519 => keys()[0].public(),
                Algorithm::Es256 => keys()[1].public(),
                Algorithm::Es384 => keys()[2].public(),
            };
            assert_eq!(
                other.verify(b"record bytes", &signature),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn raw_bytes_and_pkcs8_round_trip_and_name_the_algorithm() {
        for key in keys() {
            let public = key.public();
            let raw = public.to_bytes();
            let expected_len = match key.algorithm() {
                Algorithm::Ed25519 => 32,
                Algorithm::Es256 => 65,
                Algorithm::Es384 => 97,
            };
            assert_eq!(raw.len(), expected_len);
            assert_eq!(
                PublicKey::from_bytes(public.algorithm(), &raw).unwrap(),
                public
            );
            let name = public.algorithm().as_str();
            assert_eq!(name.parse::<Algorithm>().unwrap(), public.algorithm());
            let der = match &key {
                PrivateKey::Ed25519(k) => k.to_pkcs8_der().unwrap().as_bytes().to_vec(),
                PrivateKey::Es256(k) => k.to_pkcs8_der().unwrap().as_bytes().to_vec(),
                PrivateKey::Es384(k) => k.to_pkcs8_der().unwrap().as_bytes().to_vec(),
            };
            let read = PrivateKey::from_pkcs8_der(&der, "the key").unwrap();
            assert_eq!(read.public(), public);
        }
        // A P-256 point is not a P-384 key, nor an Ed25519 one.
        let p256_raw = keys()[1].public().to_bytes();
        assert!(PublicKey::from_bytes(Algorithm::Es384, &p256_raw).is_err());
        assert!(PublicKey::from_bytes(Algorithm::Ed25519, &p256_raw).is_err());
        assert!("RS256".parse::<Algorithm>().is_err());
    }

    #[test]
    fn an_ed25519_key_keeps_the_id_it_had() {
        // Ids of keys registered before ECDSA leaves: SHA-256 of the 32-byte key.
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let expected = hex::encode(&Sha256::digest(key.verifying_key().as_bytes())[..16]);
        assert_eq!(PublicKey::from(key.verifying_key()).id(), expected);
    }
}
