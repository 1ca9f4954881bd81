//! The service's signing PKI.
//!
//! `hallmark init` calls [`init_pki`], which creates in the keys directory (`<data_dir>/keys/`):
//!
//! | file | what |
//! |---|---|
//! | `ca.key.pem` | the root CA's P-384 private key, PKCS#8 (encrypted when a passphrase is set), mode 0600 |
//! | `ca.cert.pem` | the self-signed root CA certificate (20 years, pathLen 1), the trust anchor for verification; never in a manifest |
//! | `issuing-ca.key.pem` | the claim-signing issuing CA's P-384 key, as above |
//! | `issuing-ca.cert.pem` | the issuing CA's certificate from the root (5 years, pathLen 0, the C2PA certificate policy) |
//! | `signing.key.pem` | the Ed25519 signing key, PKCS#8 (encrypted when a passphrase is set), mode 0600 |
//! | `signing.cert.pem` | the claim-signing certificate from the issuing CA (at most 366 days): digitalSignature and nonRepudiation, EKUs C2PA claim signing and emailProtection, the C2PA certificate policy and assurance level 1 |
//! | `retired/<key id>.cert.pem` | signing certificates replaced by [`rotate_signing_key`]; their public keys still verify |
//! | `log.key.pem` | the transparency log's Ed25519 checkpoint key, PKCS#8 (encrypted when a passphrase is set), mode 0600 ([`init_log_key`]; no certificate: verifiers pin its C2SP verifier key) |
//!
//! Private keys are written encrypted when a passphrase is configured ([`keyfile`]); a file is
//! read by its PEM label, so plaintext keys made earlier keep loading until [`encrypt_keys`]
//! (`hallmark init --encrypt-key`) rewrites them. Existing files are kept, so `init` is
//! idempotent. An operator may bring their own chain and its leaf's key instead
//! (`provenance.cert_chain` and `provenance.private_key`): an Ed25519, P-256 (ES256) or P-384
//! (ES384) leaf ([`super::keys`]), the chain leaf first; a self-signed root at its end is the
//! operator's trust anchor and stays out of the manifests' `x5chain`.
//!
//! The certificates follow the C2PA Certificate Policy's profiles (root CA, claim-signing issuing
//! CA, claim-signing leaf at assurance level 1; `scripts/cert_profile_check.py` checks each field
//! with Python's `cryptography`) except what needs a service Hallmark does not run (an OCSP
//! responder for Authority Information Access) or an entry only the Conformance Program assigns
//! (the CPL record id). A manifest's `x5chain` is the leaf and the issuing CA, never the root. A
//! keys directory made before (an Ed25519 root that signed the leaf directly) keeps working, and
//! its root keeps issuing on rotation; a new directory gets the profile.
//!
//! A key's id ([`PublicKey::id`]) is the hex of the first 16 bytes of SHA-256 of its raw public
//! key, the primary key of the `signing_keys` table (`store::signing_keys::register`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::{Signer as _, SigningKey};
use p384::pkcs8::EncodePrivateKey as _;
use rand_core::{OsRng, RngCore};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, SerialNumber,
};
use sha2::Digest as _;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::keyfile::{self, Passphrase, Protection};
use super::keys::{PrivateKey, PublicKey};
use super::ProvenanceError;
use crate::config::Settings;

pub const CA_KEY_FILE: &str = "ca.key.pem";
pub const CA_CERT_FILE: &str = "ca.cert.pem";
pub const SIGNING_KEY_FILE: &str = "signing.key.pem";
pub const SIGNING_CERT_FILE: &str = "signing.cert.pem";
pub const ISSUING_CA_KEY_FILE: &str = "issuing-ca.key.pem";
pub const ISSUING_CA_CERT_FILE: &str = "issuing-ca.cert.pem";
pub const RETIRED_DIR: &str = "retired";
pub const LOG_KEY_FILE: &str = "log.key.pem";

/// Days a new signing certificate is valid when the setting is 0, and at most: the C2PA
/// Certificate Policy's limit for a claim-signing leaf at assurance level 1.
pub const DEFAULT_SIGNING_CERT_DAYS: u32 = 366;
const ROOT_VALIDITY_DAYS: i64 = 7305;
/// At most 1827 for a claim-signing issuing CA.
const ISSUING_CA_VALIDITY_DAYS: i64 = 1826;
/// ISO 3166's user-assigned code: the subject names no country of its own (the policy asks for a
/// C attribute; an operator whose product is on the Conforming Products List brings that
/// subject with its own chain).
const COUNTRY: &str = "ZZ";
const ORGANIZATION: &str = "Hallmark";
const CA_COMMON_NAME: &str = "Hallmark Root CA";
const ISSUING_CA_COMMON_NAME: &str = "Hallmark Claim Signing CA";
const SIGNER_COMMON_NAME: &str = "Hallmark Content Credentials Signer";
/// id-kp C2PA claim signing, 1.3.6.1.4.1.62558.2.1.
const C2PA_CLAIM_SIGNING_EKU: [u64; 9] = [1, 3, 6, 1, 4, 1, 62558, 2, 1];
/// The C2PA certificate policy, 1.3.6.1.4.1.62558.1.1.
const C2PA_CERTIFICATE_POLICY: [u64; 9] = [1, 3, 6, 1, 4, 1, 62558, 1, 1];
/// id-c2pa-al, the assurance level extension, and its value for level 1.
const C2PA_ASSURANCE_LEVEL: [u64; 8] = [1, 3, 6, 1, 4, 1, 62558, 3];
const C2PA_ASSURANCE_LEVEL_1: [u64; 9] = [1, 3, 6, 1, 4, 1, 62558, 3, 10];
/// id-ce-certificatePolicies.
const CERTIFICATE_POLICIES: [u64; 4] = [2, 5, 29, 32];
const ED25519_OID: &str = "1.3.101.112";
const EC_PUBLIC_KEY_OID: &str = "1.2.840.10045.2.1";

/// The id of an Ed25519 key made here ([`PublicKey::id`]).
fn ed25519_key_id(key: &SigningKey) -> String {
    PublicKey::from(key.verifying_key()).id()
}

/// The key and certificate chain the service signs with. `Debug` shows only the key id.
#[derive(Clone)]
pub struct SigningIdentity {
    key: PrivateKey,
    public: PublicKey,
    chain_der: Vec<Vec<u8>>,
    chain_pem: String,
    key_id: String,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("key_id", &self.key_id)
            .field("certificates", &self.chain_der.len())
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// The identity the settings name: the operator's chain and key when both
    /// `provenance.cert_chain` and `provenance.private_key` are set, else the files `hallmark
    /// init` made in the keys directory.
    ///
    /// # Errors
    /// When only one of the two settings is set, a file is missing or unreadable, the key is not
    /// an Ed25519, P-256 or P-384 PKCS#8 key (or is encrypted and the passphrase is missing or
    /// wrong), or it does not match the leaf certificate.
    pub fn load(settings: &Settings) -> Result<Self, ProvenanceError> {
        let passphrase = Passphrase::from_settings(settings)?;
        let passphrase = passphrase.as_ref();
        match custom_identity_paths(settings)? {
            Some((chain, key)) => Self::from_files(&chain, &key, passphrase),
            None => {
                let dir = settings.storage.keys_dir();
                let key = dir.join(SIGNING_KEY_FILE);
                if !key.exists() {
                    return Err(ProvenanceError::Config(format!(
                        "no signing key at {}: run `hallmark init` first",
                        key.display()
                    )));
                }
                // The leaf and the CA that issued it; the root is the verifier's anchor, never
                // in the chain (a directory from before the issuing CA has the leaf alone).
                let mut chain = read_to_string(&dir.join(SIGNING_CERT_FILE))?;
                let issuing = dir.join(ISSUING_CA_CERT_FILE);
                if issuing.exists() {
                    push_pem(&mut chain, &read_to_string(&issuing)?);
                }
                Self::new(&chain, keyfile::read_private(&key, passphrase)?)
            }
        }
    }

    /// Loads a PEM chain (leaf first) and the leaf's PKCS#8 PEM key (Ed25519, P-256 or P-384),
    /// plaintext or encrypted, from files.
    ///
    /// # Errors
    /// As [`SigningIdentity::from_pem`], or when a file cannot be read.
    pub fn from_files(
        chain: &Path,
        key: &Path,
        passphrase: Option<&Passphrase>,
    ) -> Result<Self, ProvenanceError> {
        Self::new(
            &read_to_string(chain)?,
            keyfile::read_private(key, passphrase)?,
        )
    }

    /// Builds an identity from a PEM chain (leaf first) and the leaf's PKCS#8 PEM private key
    /// (Ed25519, P-256 or P-384; plaintext, or encrypted under `passphrase`). A self-signed root
    /// ending a longer chain is left out of it: verifiers hold it as their anchor, and the C2PA
    /// specification keeps it out of `x5chain`.
    ///
    /// # Errors
    /// When the chain holds no certificate, the key is of none of the three kinds or cannot be
    /// decrypted, or the key does not match the leaf certificate.
    pub fn from_pem(
        chain_pem: &str,
        key_pem: &str,
        passphrase: Option<&Passphrase>,
    ) -> Result<Self, ProvenanceError> {
        Self::new(
            chain_pem,
            keyfile::decode_private(key_pem, passphrase, "the private key")?,
        )
    }

    fn new(chain_pem: &str, key: impl Into<PrivateKey>) -> Result<Self, ProvenanceError> {
        let key = key.into();
        let mut chain_der = parse_pem_certificates(chain_pem.as_bytes())?;
        let leaf = chain_der
            .first()
            .ok_or_else(|| ProvenanceError::Key("the certificate chain is empty".into()))?;
        let public = key.public();
        if PublicKey::from_certificate(leaf)? != public {
            return Err(ProvenanceError::Key(
                "the private key does not match the leaf certificate".into(),
            ));
        }
        let chain_pem = if chain_der.len() > 1 && chain_der.last().is_some_and(|c| self_signed(c)) {
            chain_der.pop();
            chain_der.iter().fold(String::new(), |mut pem, der| {
                push_pem(&mut pem, &der_to_pem(der));
                pem
            })
        } else {
            chain_pem.to_owned()
        };
        Ok(Self {
            key_id: public.id(),
            key,
            public,
            chain_der,
            chain_pem,
        })
    }

    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    #[must_use]
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The chain, leaf first, DER: the manifests' `x5chain`.
    #[must_use]
    pub fn cert_chain_der(&self) -> &[Vec<u8>] {
        &self.chain_der
    }

    /// The chain, leaf first, PEM (as stored in `signing_keys.cert_chain_pem`); as
    /// [`Self::cert_chain_der`].
    #[must_use]
    pub fn cert_chain_pem(&self) -> &str {
        &self.chain_pem
    }
}

/// What [`init_pki`] did.
#[derive(Debug, Clone)]
pub struct PkiInit {
    pub created_ca: bool,
    pub created_signing_key: bool,
    pub created_log_key: bool,
    pub key_id: String,
    pub keys_dir: PathBuf,
}

/// Creates the root CA, the issuing CA, the signing certificate and the log key in `keys_dir`
/// unless they exist already; new private keys are encrypted under `passphrase` when one is
/// given.
///
/// # Errors
/// When the directory cannot be written, only half of a key pair's files exist, or the CA key
/// is encrypted and cannot be decrypted.
pub fn init_pki(
    keys_dir: &Path,
    signing_cert_days: u32,
    passphrase: Option<&Passphrase>,
) -> Result<PkiInit, ProvenanceError> {
    create_private_dir(keys_dir)?;
    let created_ca = if load_pair(keys_dir, CA_KEY_FILE, CA_CERT_FILE, passphrase)?.is_some() {
        false
    } else {
        let key = CaKey::generate();
        let cert = self_signed_root(&key)?;
        key.write(&keys_dir.join(CA_KEY_FILE), passphrase)?;
        write_public(&keys_dir.join(CA_CERT_FILE), cert.as_bytes())?;
        true
    };
    let key_path = keys_dir.join(SIGNING_KEY_FILE);
    let cert_path = keys_dir.join(SIGNING_CERT_FILE);
    let created_signing_key = match (key_path.exists(), cert_path.exists()) {
        (true, true) => false,
        (false, false) => {
            let (ca_key, ca_cert_pem) = leaf_issuer(keys_dir, passphrase)?;
            let key = SigningKey::generate(&mut OsRng);
            let cert = issue_signing_cert(&ca_key, &ca_cert_pem, &key, signing_cert_days)?;
            write_private_key(&key_path, &key, passphrase)?;
            write_public(&cert_path, cert.as_bytes())?;
            true
        }
        _ => {
            return Err(ProvenanceError::Config(format!(
                "only one of {} and {} exists: restore the other or remove both",
                key_path.display(),
                cert_path.display()
            )))
        }
    };
    let created_log_key = init_log_key(keys_dir, passphrase)?;
    let leaf = parse_pem_certificates(read_to_string(&cert_path)?.as_bytes())?;
    let leaf = leaf.first().ok_or_else(|| {
        ProvenanceError::Key(format!("no certificate in {}", cert_path.display()))
    })?;
    Ok(PkiInit {
        created_ca,
        created_signing_key,
        created_log_key,
        key_id: PublicKey::from_certificate(leaf)?.id(),
        keys_dir: keys_dir.to_owned(),
    })
}

/// Creates the transparency log's checkpoint key (`log.key.pem`, mode 0600, encrypted under
/// `passphrase` when one is given) in `keys_dir` unless it exists; `true` when it was created.
/// Kept apart from the signing key: it is never rotated with it, since verifiers pin it.
///
/// # Errors
/// When the directory or the file cannot be written.
pub fn init_log_key(
    keys_dir: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<bool, ProvenanceError> {
    create_private_dir(keys_dir)?;
    let path = keys_dir.join(LOG_KEY_FILE);
    if path.exists() {
        return Ok(false);
    }
    write_private_key(&path, &SigningKey::generate(&mut OsRng), passphrase)?;
    Ok(true)
}

/// The transparency log's checkpoint key from the keys directory the settings name, decrypted
/// with their passphrase when it is encrypted.
///
/// # Errors
/// When the file is missing (run `hallmark init`), is not an Ed25519 PKCS#8 key, or cannot be
/// decrypted.
pub fn load_log_key(settings: &Settings) -> Result<SigningKey, ProvenanceError> {
    let path = settings.storage.keys_dir().join(LOG_KEY_FILE);
    if !path.exists() {
        return Err(ProvenanceError::Config(format!(
            "the transparency log key {} is missing: run `hallmark init`",
            path.display()
        )));
    }
    keyfile::read(&path, Passphrase::from_settings(settings)?.as_ref())
}

/// An Ed25519 key from a PKCS#8 PEM file, created (mode 0600, encrypted under `passphrase` when
/// one is given) when missing, and whether it was created: a witness's cosigning key (`hallmark
/// log witness --key`).
///
/// # Errors
/// When the file cannot be read or written, is not an Ed25519 PKCS#8 key, or cannot be
/// decrypted.
pub fn load_or_create_key(
    path: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<(SigningKey, bool), ProvenanceError> {
    if !path.exists() {
        let key = SigningKey::generate(&mut OsRng);
        write_private_key(path, &key, passphrase)?;
        return Ok((key, true));
    }
    Ok((keyfile::read(path, passphrase)?, false))
}

/// The private key files `hallmark init` makes in the keys directory.
pub const PRIVATE_KEY_FILES: [&str; 4] = [
    CA_KEY_FILE,
    ISSUING_CA_KEY_FILE,
    SIGNING_KEY_FILE,
    LOG_KEY_FILE,
];

/// Rewrites every plaintext private key of `keys_dir` (the CAs', the signing key, the log key)
/// encrypted under `passphrase`, each file replaced atomically; the keys themselves do not
/// change. Returns the files rewritten; those already encrypted are left alone, so it is
/// idempotent.
///
/// # Errors
/// When a key file cannot be read, decoded or written.
pub fn encrypt_keys(
    keys_dir: &Path,
    passphrase: &Passphrase,
) -> Result<Vec<PathBuf>, ProvenanceError> {
    let mut rewritten = Vec::new();
    for file in PRIVATE_KEY_FILES {
        let path = keys_dir.join(file);
        if !path.exists() || keyfile::protection(&path)? == Protection::Encrypted {
            continue;
        }
        let der = keyfile::read_der(&path, None)?;
        write_private(
            &path,
            keyfile::encode_der(&der, Some(passphrase))?.as_bytes(),
        )?;
        rewritten.push(path);
    }
    Ok(rewritten)
}

/// What [`rotate_signing_key`] did.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub old_key_id: Option<String>,
    pub new_key_id: String,
}

/// Issues a new signing key and certificate from the issuing CA in `keys_dir` (made from the
/// root when missing; a root from before the issuing CA issues itself), the new key encrypted
/// under `passphrase` when one is given. The old certificate moves
/// to `retired/<key id>.cert.pem` (its public key keeps verifying older images and records); the
/// old private key is overwritten. A running service picks the new key up when restarted.
///
/// # Errors
/// When the CA is missing (an operator-supplied identity is rotated by the operator) or the
/// files cannot be written.
pub fn rotate_signing_key(
    keys_dir: &Path,
    signing_cert_days: u32,
    passphrase: Option<&Passphrase>,
) -> Result<Rotation, ProvenanceError> {
    let (ca_key, ca_cert_pem) = leaf_issuer(keys_dir, passphrase)?;
    let cert_path = keys_dir.join(SIGNING_CERT_FILE);
    let old_key_id = if cert_path.exists() {
        let old_pem = read_to_string(&cert_path)?;
        let old = parse_pem_certificates(old_pem.as_bytes())?;
        let old = old.first().ok_or_else(|| {
            ProvenanceError::Key(format!("no certificate in {}", cert_path.display()))
        })?;
        let id = PublicKey::from_certificate(old)?.id();
        let retired = keys_dir.join(RETIRED_DIR);
        create_private_dir(&retired)?;
        write_public(&retired.join(format!("{id}.cert.pem")), old_pem.as_bytes())?;
        Some(id)
    } else {
        None
    };
    let key = SigningKey::generate(&mut OsRng);
    let cert = issue_signing_cert(&ca_key, &ca_cert_pem, &key, signing_cert_days)?;
    write_private_key(&keys_dir.join(SIGNING_KEY_FILE), &key, passphrase)?;
    write_public(&cert_path, cert.as_bytes())?;
    Ok(Rotation {
        old_key_id,
        new_key_id: ed25519_key_id(&key),
    })
}

/// Every public key of this service the settings know, current first: the current signing
/// certificate and the retired ones in the keys directory (or the operator's leaf). Reads no
/// private key. Missing files are skipped.
///
/// # Errors
/// When a certificate file exists but cannot be read or parsed.
pub fn service_public_keys(settings: &Settings) -> Result<Vec<PublicKey>, ProvenanceError> {
    let dir = settings.storage.keys_dir();
    let mut keys = Vec::new();
    let current = match custom_identity_paths(settings)? {
        Some((chain, _)) => chain,
        None => dir.join(SIGNING_CERT_FILE),
    };
    if current.exists() {
        if let Some(leaf) = parse_pem_certificates(read_to_string(&current)?.as_bytes())?.first() {
            keys.push(PublicKey::from_certificate(leaf)?);
        }
    }
    let retired = dir.join(RETIRED_DIR);
    if retired.is_dir() {
        let entries = fs::read_dir(&retired)
            .map_err(|e| ProvenanceError::io(retired.display().to_string(), e))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.to_string_lossy().ends_with(".cert.pem"))
            .collect();
        paths.sort();
        for path in paths {
            if let Some(leaf) = parse_pem_certificates(read_to_string(&path)?.as_bytes())?.first() {
                let key = PublicKey::from_certificate(leaf)?;
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
    }
    Ok(keys)
}

/// The PEM bundle of trust anchors for verification: our own ([`own_anchors_pem`]) and the
/// operator's ([`operator_anchors_pem`]).
///
/// # Errors
/// When a configured file cannot be read or holds no certificate.
pub fn trust_anchors_pem(settings: &Settings) -> Result<String, ProvenanceError> {
    let mut bundle = own_anchors_pem(settings)?;
    if let Some(pem) = operator_anchors_pem(settings)? {
        push_pem(&mut bundle, &pem);
    }
    Ok(bundle)
}

/// Our root CA (when present) and the root of an operator-supplied signing chain: the anchors of
/// the built-in `hallmark` trust list.
///
/// # Errors
/// When a file cannot be read.
pub fn own_anchors_pem(settings: &Settings) -> Result<String, ProvenanceError> {
    let mut bundle = String::new();
    let ca = settings.storage.keys_dir().join(CA_CERT_FILE);
    if ca.exists() {
        push_pem(&mut bundle, &read_to_string(&ca)?);
    }
    if let Some((chain, _)) = custom_identity_paths(settings)? {
        let pem = read_to_string(&chain)?;
        let certs = parse_pem_certificates(pem.as_bytes())?;
        if let Some(root) = certs.get(1..).and_then(<[Vec<u8>]>::last) {
            push_pem(&mut bundle, &der_to_pem(root));
        }
    }
    Ok(bundle)
}

/// The bundle at `provenance.trust_anchors` (the built-in `operator` trust list), when set.
///
/// # Errors
/// When it cannot be read or holds no certificate.
pub fn operator_anchors_pem(settings: &Settings) -> Result<Option<String>, ProvenanceError> {
    let Some(path) = non_empty(settings.provenance.trust_anchors.as_deref()) else {
        return Ok(None);
    };
    let pem = read_to_string(path)?;
    if parse_pem_certificates(pem.as_bytes())?.is_empty() {
        return Err(ProvenanceError::Config(format!(
            "no certificate in the trust anchors at {}",
            path.display()
        )));
    }
    Ok(Some(pem))
}

/// Days for a new signing certificate, from the settings.
#[must_use]
pub fn signing_cert_days(settings: &Settings) -> u32 {
    match settings.provenance.signing_cert_days {
        0 => DEFAULT_SIGNING_CERT_DAYS,
        days => days,
    }
}

/// Whether a DER certificate names itself as its issuer (a root).
fn self_signed(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der)
        .is_ok_and(|(_, cert)| cert.issuer().as_raw() == cert.subject().as_raw())
}

/// The DER certificates of a PEM bundle, in order (other PEM blocks are skipped).
///
/// # Errors
/// When a PEM block is malformed.
pub fn parse_pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, ProvenanceError> {
    let mut certs = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|_| ProvenanceError::Key("malformed PEM".into()))?;
        if block.label == "CERTIFICATE" {
            certs.push(block.contents);
        }
    }
    Ok(certs)
}

fn custom_identity_paths(
    settings: &Settings,
) -> Result<Option<(PathBuf, PathBuf)>, ProvenanceError> {
    let p = &settings.provenance;
    match (
        non_empty(p.cert_chain.as_deref()),
        non_empty(p.private_key.as_deref()),
    ) {
        (Some(chain), Some(key)) => Ok(Some((chain.to_owned(), key.to_owned()))),
        (None, None) => Ok(None),
        _ => Err(ProvenanceError::Config(
            "set both provenance.cert_chain and provenance.private_key, or neither".into(),
        )),
    }
}

fn non_empty(path: Option<&Path>) -> Option<&Path> {
    path.filter(|p| !p.as_os_str().is_empty())
}

/// A certificate authority's key: P-384 for the CAs `init` makes (the C2PA Certificate Policy
/// allows RSA of 3072 bits or more, P-384 and P-521 for CAs), Ed25519 for a root made before.
enum CaKey {
    P384(p384::ecdsa::SigningKey),
    Ed25519(SigningKey),
}

impl CaKey {
    fn generate() -> Self {
        Self::P384(p384::ecdsa::SigningKey::random(&mut OsRng))
    }

    /// The key file at `path`: PKCS#8, P-384 or Ed25519, plaintext or encrypted.
    fn read(path: &Path, passphrase: Option<&Passphrase>) -> Result<Self, ProvenanceError> {
        let der = keyfile::read_der(path, passphrase)?;
        let what = || path.display().to_string();
        let algorithm = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
            .map_err(|_| ProvenanceError::Key(format!("{} is not a PKCS#8 key", what())))?
            .algorithm
            .oid
            .to_string();
        match algorithm.as_str() {
            ED25519_OID => SigningKey::from_pkcs8_der(&der)
                .map(Self::Ed25519)
                .map_err(|_| ProvenanceError::Key(format!("{}: a bad Ed25519 key", what()))),
            EC_PUBLIC_KEY_OID => p384::ecdsa::SigningKey::from_pkcs8_der(&der)
                .map(Self::P384)
                .map_err(|_| ProvenanceError::Key(format!("{}: not a P-384 key", what()))),
            other => Err(ProvenanceError::Key(format!(
                "{}: a CA key must be P-384 or Ed25519, not {other}",
                what()
            ))),
        }
    }

    /// Writes the key as PKCS#8 PEM (encrypted under `passphrase` when one is given), mode 0600.
    fn write(&self, path: &Path, passphrase: Option<&Passphrase>) -> Result<(), ProvenanceError> {
        let der = match self {
            Self::Ed25519(key) => keyfile::ed25519_der(key)?,
            Self::P384(key) => Zeroizing::new(
                key.to_pkcs8_der()
                    .map_err(|_| ProvenanceError::Key("cannot encode the CA key".into()))?
                    .as_bytes()
                    .to_vec(),
            ),
        };
        write_private(path, keyfile::encode_der(&der, passphrase)?.as_bytes())
    }

    fn rcgen(&self) -> RcgenKey<'_> {
        match self {
            Self::P384(key) => RcgenKey::p384(key),
            Self::Ed25519(key) => RcgenKey::ed25519(key),
        }
    }
}

/// rcgen signing over our own keys (ed25519-dalek, RustCrypto's p384; no ring or aws-lc), with
/// the subjectPublicKey's bytes: the Ed25519 key, or the uncompressed P-384 point.
enum RcgenKey<'a> {
    Ed25519(&'a SigningKey, [u8; 32]),
    P384(&'a p384::ecdsa::SigningKey, Vec<u8>),
}

impl<'a> RcgenKey<'a> {
    fn ed25519(key: &'a SigningKey) -> Self {
        Self::Ed25519(key, key.verifying_key().to_bytes())
    }

    fn p384(key: &'a p384::ecdsa::SigningKey) -> Self {
        let point = key.verifying_key().to_encoded_point(false);
        Self::P384(key, point.as_bytes().to_vec())
    }

    fn public(&self) -> &[u8] {
        match self {
            Self::Ed25519(_, public) => public,
            Self::P384(_, public) => public,
        }
    }

    /// The RFC 5280 method-1 key identifier the Certificate Policy asks for: SHA-1 of the
    /// subjectPublicKey's bytes.
    fn key_identifier(&self) -> KeyIdMethod {
        KeyIdMethod::PreSpecified(sha1::Sha1::digest(self.public()).to_vec())
    }
}

impl rcgen::PublicKeyData for RcgenKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.public()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::Ed25519(..) => &rcgen::PKCS_ED25519,
            Self::P384(..) => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }
}

impl rcgen::SigningKey for RcgenKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(match self {
            Self::Ed25519(key, _) => key.sign(msg).to_bytes().to_vec(),
            // ECDSA with SHA-384, DER-encoded (Ecdsa-Sig-Value) as X.509 wants it.
            Self::P384(key, _) => {
                let signature: p384::ecdsa::DerSignature = key.sign(msg);
                signature.as_bytes().to_vec()
            }
        })
    }
}

fn rcgen_error(error: rcgen::Error) -> ProvenanceError {
    ProvenanceError::Key(format!("certificate generation: {error}"))
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    // Positive, and no leading zero byte to strip.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// C, O and CN, as the Certificate Policy's profiles ask.
fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, COUNTRY);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A DER tag-length-value.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A DER OBJECT IDENTIFIER.
fn der_oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, &arc) in arcs.iter().enumerate().skip(1) {
        let arc = if i == 1 { arcs[0] * 40 + arc } else { arc };
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            groups.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        body.extend(groups.into_iter().rev());
    }
    der(0x06, &body)
}

/// certificatePolicies naming the C2PA certificate policy, without qualifiers.
fn c2pa_policy() -> CustomExtension {
    let policy_information = der(0x30, &der_oid(&C2PA_CERTIFICATE_POLICY));
    CustomExtension::from_oid_content(&CERTIFICATE_POLICIES, der(0x30, &policy_information))
}

/// id-c2pa-al: assurance level 1 (its value an OBJECT IDENTIFIER).
fn assurance_level_1() -> CustomExtension {
    CustomExtension::from_oid_content(&C2PA_ASSURANCE_LEVEL, der_oid(&C2PA_ASSURANCE_LEVEL_1))
}

/// The self-signed root: P-384, C/O/CN, pathLen 1, keyCertSign and cRLSign, 20 years.
fn self_signed_root(key: &CaKey) -> Result<String, ProvenanceError> {
    let key = key.rcgen();
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = name(CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = key.key_identifier();
    params.not_before = now - Duration::hours(1);
    params.not_after = params.not_before + Duration::days(ROOT_VALIDITY_DAYS);
    params.serial_number = Some(random_serial());
    Ok(params.self_signed(&key).map_err(rcgen_error)?.pem())
}

/// The claim-signing issuing CA, from the root: P-384, pathLen 0, keyCertSign and cRLSign, the
/// claim-signing EKUs and the C2PA policy, at most five years and never past the root.
fn issue_ca(root: &CaKey, root_pem: &str, key: &CaKey) -> Result<String, ProvenanceError> {
    let (issuer, root_not_after) = ca_issuer(root, root_pem)?;
    let key = key.rcgen();
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = name(ISSUING_CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::Other(C2PA_CLAIM_SIGNING_EKU.to_vec()),
        ExtendedKeyUsagePurpose::EmailProtection,
    ];
    params.custom_extensions = vec![c2pa_policy()];
    params.key_identifier_method = key.key_identifier();
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    params.not_after =
        (params.not_before + Duration::days(ISSUING_CA_VALIDITY_DAYS)).min(root_not_after);
    params.serial_number = Some(random_serial());
    Ok(params.signed_by(&key, &issuer).map_err(rcgen_error)?.pem())
}

/// The claim-signing leaf: Ed25519, digitalSignature and nonRepudiation, the claim-signing EKUs,
/// the C2PA policy and assurance level 1, at most 366 days and never past its CA.
fn issue_signing_cert(
    ca_key: &CaKey,
    ca_cert_pem: &str,
    key: &SigningKey,
    days: u32,
) -> Result<String, ProvenanceError> {
    let (issuer, ca_not_after) = ca_issuer(ca_key, ca_cert_pem)?;
    let key = RcgenKey::ed25519(key);
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = name(SIGNER_COMMON_NAME);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::Other(C2PA_CLAIM_SIGNING_EKU.to_vec()),
        ExtendedKeyUsagePurpose::EmailProtection,
    ];
    params.custom_extensions = vec![c2pa_policy(), assurance_level_1()];
    params.key_identifier_method = key.key_identifier();
    params.use_authority_key_identifier_extension = true;
    // Backdated an hour for clocks that lag; the whole span, from notBefore, within the limit.
    let days = days.clamp(1, DEFAULT_SIGNING_CERT_DAYS);
    params.not_before = now - Duration::hours(1);
    params.not_after = (params.not_before + Duration::days(i64::from(days))).min(ca_not_after);
    params.serial_number = Some(random_serial());
    Ok(params.signed_by(&key, &issuer).map_err(rcgen_error)?.pem())
}

/// The issuer for certificates signed by `key`, its name and key identifier read from its own
/// certificate (so a leaf's issuer and authority key identifier match it byte for byte), and the
/// end of that certificate's validity, which no certificate it issues outlasts.
fn ca_issuer<'a>(
    key: &'a CaKey,
    cert_pem: &str,
) -> Result<(Issuer<'static, RcgenKey<'a>>, OffsetDateTime), ProvenanceError> {
    let der = parse_pem_certificates(cert_pem.as_bytes())?;
    let der = der
        .first()
        .ok_or_else(|| ProvenanceError::Key("no certificate in the CA file".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| ProvenanceError::Key("cannot parse the CA certificate".into()))?;
    let signer = key.rcgen();
    if cert.public_key().subject_public_key.data.as_ref() != signer.public() {
        return Err(ProvenanceError::Key(
            "the CA key does not match the CA certificate".into(),
        ));
    }
    let not_after = cert.validity().not_after.to_datetime();
    let issuer = Issuer::from_ca_cert_der(&der.clone().into(), signer).map_err(rcgen_error)?;
    Ok((issuer, not_after))
}

/// The subjectPublicKey's bytes of a DER certificate.
#[cfg(test)]
fn subject_public_key(der: &[u8]) -> Result<Vec<u8>, ProvenanceError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| ProvenanceError::Key("cannot parse the certificate".into()))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

/// A CA's key and certificate from `keys_dir`, when both files exist.
fn load_pair(
    keys_dir: &Path,
    key_file: &str,
    cert_file: &str,
    passphrase: Option<&Passphrase>,
) -> Result<Option<(CaKey, String)>, ProvenanceError> {
    let key_path = keys_dir.join(key_file);
    let cert_path = keys_dir.join(cert_file);
    match (key_path.exists(), cert_path.exists()) {
        (false, false) => Ok(None),
        (true, true) => Ok(Some((
            CaKey::read(&key_path, passphrase)?,
            read_to_string(&cert_path)?,
        ))),
        _ => Err(ProvenanceError::Config(format!(
            "only one of {} and {} exists: restore the other or remove both",
            key_path.display(),
            cert_path.display()
        ))),
    }
}

/// The CA that issues signing certificates: the issuing CA, made from the root when it is
/// missing; a root from before the issuing CA (Ed25519, which the policy allows only for leaves)
/// issues them itself.
fn leaf_issuer(
    keys_dir: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<(CaKey, String), ProvenanceError> {
    if let Some(pair) = load_pair(
        keys_dir,
        ISSUING_CA_KEY_FILE,
        ISSUING_CA_CERT_FILE,
        passphrase,
    )? {
        return Ok(pair);
    }
    let (root, root_pem) =
        load_pair(keys_dir, CA_KEY_FILE, CA_CERT_FILE, passphrase)?.ok_or_else(|| {
            ProvenanceError::Config(format!(
                "no CA in {}: run `hallmark init` first",
                keys_dir.display()
            ))
        })?;
    if matches!(root, CaKey::Ed25519(_)) {
        return Ok((root, root_pem));
    }
    let key = CaKey::generate();
    let cert = issue_ca(&root, &root_pem, &key)?;
    key.write(&keys_dir.join(ISSUING_CA_KEY_FILE), passphrase)?;
    write_public(&keys_dir.join(ISSUING_CA_CERT_FILE), cert.as_bytes())?;
    Ok((key, cert))
}

/// Writes `key` as PKCS#8 PEM (encrypted under `passphrase` when one is given), mode 0600; the
/// encoded copy is zeroed when dropped.
fn write_private_key(
    path: &Path,
    key: &SigningKey,
    passphrase: Option<&Passphrase>,
) -> Result<(), ProvenanceError> {
    write_private(path, keyfile::encode(key, passphrase)?.as_bytes())
}

fn der_to_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

fn push_pem(bundle: &mut String, pem: &str) {
    bundle.push_str(pem.trim_end());
    bundle.push('\n');
}

fn read_to_string(path: &Path) -> Result<String, ProvenanceError> {
    fs::read_to_string(path)
        .map_err(|e| ProvenanceError::io(format!("cannot read {}", path.display()), e))
}

fn create_private_dir(dir: &Path) -> Result<(), ProvenanceError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| ProvenanceError::io(format!("cannot create {}", dir.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| ProvenanceError::io(format!("cannot restrict {}", dir.display()), e))?;
    }
    Ok(())
}

/// Writes a file readable only by its owner, atomically (temporary file, then rename).
fn write_private(path: &Path, contents: &[u8]) -> Result<(), ProvenanceError> {
    write_atomically(path, contents, 0o600)
}

fn write_public(path: &Path, contents: &[u8]) -> Result<(), ProvenanceError> {
    write_atomically(path, contents, 0o644)
}

fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), ProvenanceError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let err = |e| ProvenanceError::io(format!("cannot write {}", path.display()), e);
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_keys_once_with_private_modes_and_rotation_keeps_old_keys() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let first = init_pki(&keys, 30, None).unwrap();
        assert!(first.created_ca && first.created_signing_key && first.created_log_key);
        #[cfg(unix)]
        for file in PRIVATE_KEY_FILES {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(keys.join(file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let second = init_pki(&keys, 30, None).unwrap();
        assert!(!second.created_ca && !second.created_signing_key && !second.created_log_key);
        assert_eq!(first.key_id, second.key_id, "a second init keeps the keys");

        let chain = read_to_string(&keys.join(SIGNING_CERT_FILE)).unwrap()
            + &read_to_string(&keys.join(CA_CERT_FILE)).unwrap();
        let identity = SigningIdentity::from_pem(
            &chain,
            &read_to_string(&keys.join(SIGNING_KEY_FILE)).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(identity.key_id(), first.key_id);
        assert_eq!(identity.key_id().len(), 32);
        assert!(!format!("{identity:?}").contains("PRIVATE"));

        let rotation = rotate_signing_key(&keys, 30, None).unwrap();
        assert_eq!(rotation.old_key_id.as_deref(), Some(first.key_id.as_str()));
        assert_ne!(rotation.new_key_id, first.key_id);
        assert!(keys
            .join(RETIRED_DIR)
            .join(format!("{}.cert.pem", first.key_id))
            .exists());
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        init_pki(a.path(), 30, None).unwrap();
        init_pki(b.path(), 30, None).unwrap();
        let chain = read_to_string(&a.path().join(SIGNING_CERT_FILE)).unwrap();
        let key = read_to_string(&b.path().join(SIGNING_KEY_FILE)).unwrap();
        assert!(matches!(
            SigningIdentity::from_pem(&chain, &key, None),
            Err(ProvenanceError::Key(_))
        ));
        assert!(SigningIdentity::from_pem("", &key, None).is_err());
        assert!(SigningIdentity::from_pem(&chain, "garbage", None).is_err());
    }

    fn parsed(pem: &str) -> Vec<Vec<u8>> {
        parse_pem_certificates(pem.as_bytes()).unwrap()
    }

    fn key_ids(der: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        use x509_parser::extensions::ParsedExtension;
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        let (mut ski, mut aki) = (None, None);
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => ski = Some(id.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(id) => {
                    aki = id.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
                _ => {}
            }
        }
        (ski, aki)
    }

    #[test]
    fn the_chain_is_leaf_and_issuing_ca_with_method_one_key_identifiers() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        init_pki(&keys, 30, None).unwrap();
        let root = parsed(&read_to_string(&keys.join(CA_CERT_FILE)).unwrap());
        let issuing = parsed(&read_to_string(&keys.join(ISSUING_CA_CERT_FILE)).unwrap());
        let mut settings = Settings::load(None).unwrap();
        settings.storage.data_dir = dir.path().to_owned();
        let identity = SigningIdentity::load(&settings).unwrap();
        let chain = identity.cert_chain_der();
        assert_eq!(chain.len(), 2, "leaf and issuing CA");
        assert_eq!(chain[1], issuing[0]);
        assert!(!chain.contains(&root[0]), "the root is never in the chain");
        // Each authority key identifier is its issuer's subject key identifier: SHA-1 of the
        // issuer's public key (RFC 5280 method 1).
        let (root_ski, _) = key_ids(&root[0]);
        let (issuing_ski, issuing_aki) = key_ids(&issuing[0]);
        let (leaf_ski, leaf_aki) = key_ids(&chain[0]);
        assert_eq!(issuing_aki, root_ski);
        assert_eq!(leaf_aki, issuing_ski);
        let leaf_public = identity.public_key().to_bytes();
        assert_eq!(leaf_ski.unwrap(), sha1::Sha1::digest(leaf_public).to_vec());
        assert_eq!(
            root_ski.unwrap(),
            sha1::Sha1::digest(subject_public_key(&root[0]).unwrap()).to_vec()
        );
        // A rotation issues from the same issuing CA.
        rotate_signing_key(&keys, 30, None).unwrap();
        let rotated = SigningIdentity::load(&settings).unwrap();
        assert_eq!(rotated.cert_chain_der()[1], issuing[0]);
        assert_eq!(key_ids(&rotated.cert_chain_der()[0]).1, issuing_ski);
    }

    #[test]
    fn a_directory_with_an_ed25519_root_keeps_issuing_from_it() {
        // The layout `init` made before the issuing CA: an Ed25519 root that signs the leaf.
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        create_private_dir(&keys).unwrap();
        let root = CaKey::Ed25519(SigningKey::generate(&mut OsRng));
        let root_pem = self_signed_root(&root).unwrap();
        root.write(&keys.join(CA_KEY_FILE), None).unwrap();
        write_public(&keys.join(CA_CERT_FILE), root_pem.as_bytes()).unwrap();
        let made = init_pki(&keys, 30, None).unwrap();
        assert!(!made.created_ca && made.created_signing_key);
        assert!(!keys.join(ISSUING_CA_CERT_FILE).exists());
        let mut settings = Settings::load(None).unwrap();
        settings.storage.data_dir = dir.path().to_owned();
        let identity = SigningIdentity::load(&settings).unwrap();
        assert_eq!(identity.cert_chain_der().len(), 1, "the leaf alone");
        rotate_signing_key(&keys, 30, None).unwrap();
        assert!(!keys.join(ISSUING_CA_CERT_FILE).exists());
    }

    #[test]
    fn with_a_passphrase_every_key_is_encrypted_and_still_serves() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let passphrase = Passphrase::new(b"a passphrase for tests".to_vec()).unwrap();
        let made = init_pki(&keys, 30, Some(&passphrase)).unwrap();
        for file in PRIVATE_KEY_FILES {
            assert_eq!(
                keyfile::protection(&keys.join(file)).unwrap(),
                Protection::Encrypted,
                "{file}"
            );
        }
        // Without the passphrase the CA cannot issue and the signing key cannot load.
        assert!(matches!(
            rotate_signing_key(&keys, 30, None),
            Err(ProvenanceError::Config(_))
        ));
        let chain = read_to_string(&keys.join(SIGNING_CERT_FILE)).unwrap();
        let key = read_to_string(&keys.join(SIGNING_KEY_FILE)).unwrap();
        assert!(SigningIdentity::from_pem(&chain, &key, None).is_err());
        let identity = SigningIdentity::from_pem(&chain, &key, Some(&passphrase)).unwrap();
        assert_eq!(identity.key_id(), made.key_id);
        // A second init with the passphrase keeps the keys; rotation keeps the new key encrypted.
        let again = init_pki(&keys, 30, Some(&passphrase)).unwrap();
        assert_eq!(again.key_id, made.key_id);
        rotate_signing_key(&keys, 30, Some(&passphrase)).unwrap();
        assert_eq!(
            keyfile::protection(&keys.join(SIGNING_KEY_FILE)).unwrap(),
            Protection::Encrypted
        );
    }

    #[test]
    fn encrypt_keys_rewrites_plaintext_keys_once_and_keeps_them_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let made = init_pki(&keys, 30, None).unwrap();
        let log_before = keyfile::read(&keys.join(LOG_KEY_FILE), None).unwrap();
        let passphrase = Passphrase::new(b"a passphrase for tests".to_vec()).unwrap();
        let rewritten = encrypt_keys(&keys, &passphrase).unwrap();
        assert_eq!(rewritten.len(), PRIVATE_KEY_FILES.len());
        assert!(
            encrypt_keys(&keys, &passphrase).unwrap().is_empty(),
            "idempotent"
        );
        #[cfg(unix)]
        for file in PRIVATE_KEY_FILES {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(keys.join(file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let log_after = keyfile::read(&keys.join(LOG_KEY_FILE), Some(&passphrase)).unwrap();
        assert_eq!(log_after.to_bytes(), log_before.to_bytes());
        let again = init_pki(&keys, 30, Some(&passphrase)).unwrap();
        assert_eq!(
            again.key_id, made.key_id,
            "the same signing key, now encrypted"
        );
    }
}
