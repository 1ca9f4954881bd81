//! Private keys at rest: PKCS#8 PEM files, plaintext (`PRIVATE KEY`) or encrypted with a
//! passphrase (`ENCRYPTED PRIVATE KEY`: an `EncryptedPrivateKeyInfo` under PBES2 with scrypt
//! (N = 2^14, r = 8, p = 1: OpenSSL's own `-scrypt` parameters, within its default 32 MiB memory
//! limit) and AES-256-CBC; RFC 5958, RFC 8018, RFC 7914). Keys are written as version-1
//! `PrivateKeyInfo` (the seed alone, as OpenSSL writes them): OpenSSL 3.0 and Python's
//! `cryptography` refuse the version-2 form with the public key that ed25519-dalek writes by
//! default. So OpenSSL reads every key Hallmark writes:
//! `openssl pkey -in signing.key.pem -passin env:HALLMARK_KEY_PASSPHRASE`. Both versions are read.
//!
//! The passphrase comes from the file `provenance.key_passphrase_file` (a mounted secret; one
//! trailing newline is dropped) or, when that is unset, from the environment variable
//! [`PASSPHRASE_ENV`]. It is never a setting itself, so it cannot leak through a printed
//! configuration. A file is read encrypted or plaintext by its PEM label, whatever is configured:
//! keys made before a passphrase was set keep loading (`hallmark init --encrypt-key` rewrites
//! them encrypted).

use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::SigningKey;
use pkcs8::pkcs5::{pbes2, scrypt};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use super::keys::PrivateKey;
use super::ProvenanceError;
use crate::config::Settings;

/// The environment variable a passphrase is read from when `provenance.key_passphrase_file` is
/// unset.
pub const PASSPHRASE_ENV: &str = "HALLMARK_KEY_PASSPHRASE";

const PLAIN_LABEL: &str = "-----BEGIN PRIVATE KEY-----";
const ENCRYPTED_LABEL: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
/// Shorter passphrases are refused: scrypt slows guessing, it does not make a short secret long.
pub const MIN_PASSPHRASE_BYTES: usize = 12;

/// The passphrase protecting the key files. Zeroed when dropped; `Debug` does not show it.
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

impl Passphrase {
    /// A passphrase from its bytes.
    ///
    /// # Errors
    /// When it is shorter than [`MIN_PASSPHRASE_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Result<Self, ProvenanceError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < MIN_PASSPHRASE_BYTES {
            return Err(ProvenanceError::Config(format!(
                "the key passphrase must be at least {MIN_PASSPHRASE_BYTES} bytes"
            )));
        }
        Ok(Self(bytes))
    }

    /// The passphrase the settings and the environment give, if any: the file
    /// `provenance.key_passphrase_file` when set, else [`PASSPHRASE_ENV`] when set and not empty.
    ///
    /// # Errors
    /// When the file cannot be read, or the passphrase is too short.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, ProvenanceError> {
        let file = settings
            .provenance
            .key_passphrase_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty());
        if let Some(path) = file {
            let mut bytes = std::fs::read(path).map_err(|e| {
                ProvenanceError::io(
                    format!("cannot read the key passphrase file {}", path.display()),
                    e,
                )
            })?;
            if bytes.ends_with(b"\n") {
                bytes.pop();
                if bytes.ends_with(b"\r") {
                    bytes.pop();
                }
            }
            return Self::new(bytes).map(Some);
        }
        match std::env::var_os(PASSPHRASE_ENV) {
            Some(value) if !value.is_empty() => Self::new(value.into_encoded_bytes()).map(Some),
            _ => Ok(None),
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// How a key file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    Plaintext,
    Encrypted,
}

/// How the PEM text stores its key, by its label.
///
/// # Errors
/// When it holds no PKCS#8 private key block.
pub fn protection_of(pem: &str) -> Result<Protection, ProvenanceError> {
    if pem.contains(ENCRYPTED_LABEL) {
        Ok(Protection::Encrypted)
    } else if pem.contains(PLAIN_LABEL) {
        Ok(Protection::Plaintext)
    } else {
        Err(ProvenanceError::Key(
            "not a PKCS#8 PEM private key (PRIVATE KEY or ENCRYPTED PRIVATE KEY)".into(),
        ))
    }
}

/// The PKCS#8 `PrivateKeyInfo` (DER) in a PEM text, decrypted when it is encrypted: any key type.
/// `what` names the key in errors (usually its path). Zeroed when dropped.
///
/// # Errors
/// When the text holds no PKCS#8 key, or it is encrypted and no passphrase is given or the
/// passphrase is wrong.
pub fn decode_der(
    pem: &str,
    passphrase: Option<&Passphrase>,
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, ProvenanceError> {
    let (label, document) = pkcs8::SecretDocument::from_pem(pem.trim()).map_err(|_| {
        ProvenanceError::Key(format!(
            "{what}: not a PKCS#8 PEM private key (PRIVATE KEY or ENCRYPTED PRIVATE KEY)"
        ))
    })?;
    match label {
        "PRIVATE KEY" => Ok(Zeroizing::new(document.as_bytes().to_vec())),
        "ENCRYPTED PRIVATE KEY" => {
            let passphrase = passphrase.ok_or_else(|| {
                ProvenanceError::Config(format!(
                    "{what} is encrypted: set provenance.key_passphrase_file or {PASSPHRASE_ENV}"
                ))
            })?;
            let decrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
                .and_then(|info| info.decrypt(passphrase.bytes()))
                .map_err(|_| {
                    ProvenanceError::Key(format!(
                        "{what}: cannot decrypt it with the passphrase given (wrong passphrase?)"
                    ))
                })?;
            Ok(Zeroizing::new(decrypted.as_bytes().to_vec()))
        }
        _ => Err(ProvenanceError::Key(format!(
            "{what}: one PKCS#8 private key block expected first, found {label:?}"
        ))),
    }
}

/// A PKCS#8 `PrivateKeyInfo` (DER, any key type) as PEM: encrypted under `passphrase` when one
/// is given. Zeroed when dropped.
///
/// # Errors
/// When `der` is not a `PrivateKeyInfo`, or encryption fails.
pub fn encode_der(
    der: &[u8],
    passphrase: Option<&Passphrase>,
) -> Result<Zeroizing<String>, ProvenanceError> {
    let failed = |_| ProvenanceError::Key("cannot encode the private key".into());
    let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(failed)?;
    let Some(passphrase) = passphrase else {
        return pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, der)
            .map(Zeroizing::new)
            .map_err(|_| ProvenanceError::Key("cannot encode the private key".into()));
    };
    let (mut salt, mut iv) = ([0u8; 16], [0u8; 16]);
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut iv);
    let cost = scrypt::Params::new(14, 8, 1, 32)
        .map_err(|_| ProvenanceError::Key("bad scrypt parameters".into()))?;
    let parameters = pbes2::Parameters::scrypt_aes256cbc(cost, &salt, &iv)
        .map_err(|_| ProvenanceError::Key("bad PBES2 parameters".into()))?;
    info.encrypt_with_params(parameters, passphrase.bytes())
        .map_err(failed)?
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map_err(|_| ProvenanceError::Key("cannot encode the private key".into()))
}

/// The Ed25519 key in a PKCS#8 PEM text (version 1 or 2), decrypting it when it is encrypted.
/// `what` names the key in errors (usually its path).
///
/// # Errors
/// As [`decode_der`], or when the key is not Ed25519.
pub fn decode(
    pem: &str,
    passphrase: Option<&Passphrase>,
    what: &str,
) -> Result<SigningKey, ProvenanceError> {
    let der = decode_der(pem, passphrase, what)?;
    SigningKey::from_pkcs8_der(&der)
        .map_err(|_| ProvenanceError::Key(format!("{what} is not an Ed25519 PKCS#8 key")))
}

/// The claim-signing key in a PKCS#8 PEM text: Ed25519, P-256 or P-384, decrypted when it is
/// encrypted. `what` names the key in errors.
///
/// # Errors
/// As [`decode_der`], or when the key is of none of the three kinds.
pub fn decode_private(
    pem: &str,
    passphrase: Option<&Passphrase>,
    what: &str,
) -> Result<PrivateKey, ProvenanceError> {
    PrivateKey::from_pkcs8_der(&decode_der(pem, passphrase, what)?, what)
}

/// `key` as a version-1 PKCS#8 `PrivateKeyInfo` (DER): the seed alone.
///
/// # Errors
/// When encoding fails (it does not for Ed25519 keys).
pub fn ed25519_der(key: &SigningKey) -> Result<Zeroizing<Vec<u8>>, ProvenanceError> {
    let seed_only = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let der = seed_only
        .to_pkcs8_der()
        .map_err(|_| ProvenanceError::Key("cannot encode the private key".into()))?;
    Ok(Zeroizing::new(der.as_bytes().to_vec()))
}

/// `key` as a version-1 PKCS#8 PEM: encrypted under `passphrase` when one is given. Zeroed when
/// dropped.
///
/// # Errors
/// When encoding or encryption fails (it does not for Ed25519 keys).
pub fn encode(
    key: &SigningKey,
    passphrase: Option<&Passphrase>,
) -> Result<Zeroizing<String>, ProvenanceError> {
    encode_der(&ed25519_der(key)?, passphrase)
}

fn read_pem(path: &Path) -> Result<Zeroizing<String>, ProvenanceError> {
    Ok(Zeroizing::new(std::fs::read_to_string(path).map_err(
        |e| ProvenanceError::io(format!("cannot read {}", path.display()), e),
    )?))
}

/// Reads the Ed25519 key file at `path`.
///
/// # Errors
/// As [`decode`], or when the file cannot be read.
pub fn read(path: &Path, passphrase: Option<&Passphrase>) -> Result<SigningKey, ProvenanceError> {
    decode(&read_pem(path)?, passphrase, &path.display().to_string())
}

/// Reads the claim-signing key file at `path` (Ed25519, P-256 or P-384).
///
/// # Errors
/// As [`decode_private`], or when the file cannot be read.
pub fn read_private(
    path: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<PrivateKey, ProvenanceError> {
    decode_private(&read_pem(path)?, passphrase, &path.display().to_string())
}

/// Reads the key file at `path` as a PKCS#8 `PrivateKeyInfo` (DER, any key type).
///
/// # Errors
/// As [`decode_der`], or when the file cannot be read.
pub fn read_der(
    path: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<Zeroizing<Vec<u8>>, ProvenanceError> {
    decode_der(&read_pem(path)?, passphrase, &path.display().to_string())
}

/// How the key file at `path` is stored.
///
/// # Errors
/// When it cannot be read or holds no PKCS#8 key.
pub fn protection(path: &Path) -> Result<Protection, ProvenanceError> {
    protection_of(&read_pem(path)?)
        .map_err(|e| ProvenanceError::Key(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passphrase(text: &str) -> Passphrase {
        Passphrase::new(text.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn an_encrypted_key_round_trips_only_with_its_passphrase() {
        let key = SigningKey::generate(&mut OsRng);
        let right = passphrase("correct horse battery staple");
        let pem = encode(&key, Some(&right)).unwrap();
        assert!(pem.starts_with(ENCRYPTED_LABEL));
        assert_eq!(protection_of(&pem).unwrap(), Protection::Encrypted);
        // Nothing of the key in the clear: neither the seed nor its public half.
        let der = ::pem::parse(pem.as_bytes()).unwrap();
        for secret in [
            key.to_bytes().to_vec(),
            key.verifying_key().to_bytes().to_vec(),
        ] {
            assert!(!der.contents().windows(32).any(|w| w == secret));
        }
        let back = decode(&pem, Some(&right), "test key").unwrap();
        assert_eq!(back.to_bytes(), key.to_bytes());

        let wrong = passphrase("incorrect horse battery staple");
        assert!(matches!(
            decode(&pem, Some(&wrong), "test key"),
            Err(ProvenanceError::Key(_))
        ));
        let missing = decode(&pem, None, "test key").unwrap_err();
        assert!(
            matches!(&missing, ProvenanceError::Config(m) if m.contains(PASSPHRASE_ENV)),
            "{missing}"
        );
    }

    #[test]
    fn plaintext_keys_still_load_with_or_without_a_passphrase() {
        let key = SigningKey::generate(&mut OsRng);
        let pem = encode(&key, None).unwrap();
        assert_eq!(protection_of(&pem).unwrap(), Protection::Plaintext);
        // Version 1, the seed alone: what OpenSSL 3.0 and Python's cryptography read.
        let der = ::pem::parse(pem.as_bytes()).unwrap();
        let info = pkcs8::PrivateKeyInfo::try_from(der.contents()).unwrap();
        assert!(info.public_key.is_none());
        assert_eq!(info.version(), pkcs8::Version::V1);
        let with = decode(&pem, Some(&passphrase("an unused passphrase")), "k").unwrap();
        assert_eq!(with.to_bytes(), key.to_bytes());
        assert_eq!(decode(&pem, None, "k").unwrap().to_bytes(), key.to_bytes());
        assert!(decode("garbage", None, "k").is_err());
    }

    #[test]
    fn short_passphrases_are_refused_and_never_printed() {
        assert!(Passphrase::new(b"short".to_vec()).is_err());
        let long = passphrase("a long enough passphrase");
        assert!(!format!("{long:?}").contains("long enough"));
    }
}
