//! The service's signing PKI.
//!
//! `hallmark init` calls [`init_pki`], which creates in the keys directory (`<data_dir>/keys/`):
//!
//! | file | what |
//! |---|---|
//! | `ca.key.pem` | the root CA's Ed25519 private key, PKCS#8 (encrypted when a passphrase is set), mode 0600 |
//! | `ca.cert.pem` | the self-signed root CA certificate (10 years), a trust anchor for verification |
//! | `signing.key.pem` | the signing key, PKCS#8 (encrypted when a passphrase is set), mode 0600 |
//! | `signing.cert.pem` | the signing certificate issued by the CA: digitalSignature, EKUs emailProtection and C2PA claim signing |
//! | `retired/<key id>.cert.pem` | signing certificates replaced by [`rotate_signing_key`]; their public keys still verify |
//! | `log.key.pem` | the transparency log's Ed25519 checkpoint key, PKCS#8 (encrypted when a passphrase is set), mode 0600 ([`init_log_key`]; no certificate: verifiers pin its C2SP verifier key) |
//!
//! Private keys are written encrypted when a passphrase is configured ([`keyfile`]); a file is
//! read by its PEM label, so plaintext keys made earlier keep loading until [`encrypt_keys`]
//! (`hallmark init --encrypt-key`) rewrites them. Existing files are kept, so `init` is
//! idempotent. An operator may bring their own Ed25519
//! chain and key instead (`provenance.cert_chain` and `provenance.private_key`).
//!
//! A key's id ([`key_id`]) is the hex of the first 16 bytes of SHA-256 of its 32-byte public
//! key, the primary key of the `signing_keys` table ([`crate::store::signing_keys::register`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::keyfile::{self, Passphrase, Protection};
use super::ProvenanceError;
use crate::config::Settings;

pub const CA_KEY_FILE: &str = "ca.key.pem";
pub const CA_CERT_FILE: &str = "ca.cert.pem";
pub const SIGNING_KEY_FILE: &str = "signing.key.pem";
pub const SIGNING_CERT_FILE: &str = "signing.cert.pem";
pub const RETIRED_DIR: &str = "retired";
pub const LOG_KEY_FILE: &str = "log.key.pem";

/// Days a new signing certificate is valid when the setting is 0.
pub const DEFAULT_SIGNING_CERT_DAYS: u32 = 397;
const CA_VALIDITY_DAYS: i64 = 3650;
const ORGANIZATION: &str = "Hallmark";
const CA_COMMON_NAME: &str = "Hallmark Root CA";
const SIGNER_COMMON_NAME: &str = "Hallmark Content Credentials Signer";
/// id-kp C2PA claim signing, 1.3.6.1.4.1.62558.2.1.
const C2PA_CLAIM_SIGNING_EKU: [u64; 9] = [1, 3, 6, 1, 4, 1, 62558, 2, 1];
const ED25519_OID: &str = "1.3.101.112";

/// Hex of the first 16 bytes of SHA-256 of the 32-byte public key.
#[must_use]
pub fn key_id(public: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..16])
}

/// The key and certificate chain the service signs with. `Debug` shows only the key id.
#[derive(Clone)]
pub struct SigningIdentity {
    key: SigningKey,
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
    /// Ed25519 PKCS#8 (or is encrypted and the passphrase is missing or wrong), or it does not
    /// match the leaf certificate.
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
                let mut chain = read_to_string(&dir.join(SIGNING_CERT_FILE))?;
                let ca = dir.join(CA_CERT_FILE);
                if ca.exists() {
                    chain.push_str(&read_to_string(&ca)?);
                }
                Self::new(&chain, keyfile::read(&key, passphrase)?)
            }
        }
    }

    /// Loads a PEM chain (leaf first) and a PKCS#8 PEM Ed25519 key, plaintext or encrypted, from
    /// files.
    ///
    /// # Errors
    /// As [`SigningIdentity::from_pem`], or when a file cannot be read.
    pub fn from_files(
        chain: &Path,
        key: &Path,
        passphrase: Option<&Passphrase>,
    ) -> Result<Self, ProvenanceError> {
        Self::new(&read_to_string(chain)?, keyfile::read(key, passphrase)?)
    }

    /// Builds an identity from a PEM chain (leaf first) and a PKCS#8 PEM Ed25519 private key
    /// (plaintext, or encrypted under `passphrase`).
    ///
    /// # Errors
    /// When the chain holds no certificate, the key is not Ed25519 PKCS#8 or cannot be
    /// decrypted, or the key does not match the leaf certificate.
    pub fn from_pem(
        chain_pem: &str,
        key_pem: &str,
        passphrase: Option<&Passphrase>,
    ) -> Result<Self, ProvenanceError> {
        Self::new(
            chain_pem,
            keyfile::decode(key_pem, passphrase, "the private key")?,
        )
    }

    fn new(chain_pem: &str, key: SigningKey) -> Result<Self, ProvenanceError> {
        let chain_der = parse_pem_certificates(chain_pem.as_bytes())?;
        let leaf = chain_der
            .first()
            .ok_or_else(|| ProvenanceError::Key("the certificate chain is empty".into()))?;
        if certificate_public_key(leaf)? != key.verifying_key() {
            return Err(ProvenanceError::Key(
                "the private key does not match the leaf certificate".into(),
            ));
        }
        let key_id = key_id(&key.verifying_key());
        Ok(Self {
            key,
            chain_der,
            chain_pem: chain_pem.to_owned(),
            key_id,
        })
    }

    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    #[must_use]
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The chain, leaf first, DER.
    #[must_use]
    pub fn cert_chain_der(&self) -> &[Vec<u8>] {
        &self.chain_der
    }

    /// The chain, leaf first, PEM (as stored in `signing_keys.cert_chain_pem`).
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

/// Creates the root CA, the signing certificate and the log key in `keys_dir` unless they exist
/// already; new private keys are encrypted under `passphrase` when one is given.
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
    let (ca_key, ca_cert_pem, created_ca) = match load_ca(keys_dir, passphrase)? {
        Some((key, cert)) => (key, cert, false),
        None => {
            let key = SigningKey::generate(&mut OsRng);
            let cert = self_signed_ca(&key)?;
            write_private_key(&keys_dir.join(CA_KEY_FILE), &key, passphrase)?;
            write_public(&keys_dir.join(CA_CERT_FILE), cert.as_bytes())?;
            (key, cert, true)
        }
    };
    let key_path = keys_dir.join(SIGNING_KEY_FILE);
    let cert_path = keys_dir.join(SIGNING_CERT_FILE);
    let created_signing_key = match (key_path.exists(), cert_path.exists()) {
        (true, true) => false,
        (false, false) => {
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
        key_id: key_id(&certificate_public_key(leaf)?),
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

/// Rewrites every plaintext private key of `keys_dir` (the CA's, the signing key, the log key)
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
    for file in [CA_KEY_FILE, SIGNING_KEY_FILE, LOG_KEY_FILE] {
        let path = keys_dir.join(file);
        if !path.exists() || keyfile::protection(&path)? == Protection::Encrypted {
            continue;
        }
        let key = keyfile::read(&path, None)?;
        write_private_key(&path, &key, Some(passphrase))?;
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

/// Issues a new signing key and certificate from the CA in `keys_dir` (the new key encrypted under
/// `passphrase` when one is given). The old certificate moves
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
    let (ca_key, ca_cert_pem) = load_ca(keys_dir, passphrase)?.ok_or_else(|| {
        ProvenanceError::Config(format!(
            "no CA in {}: run `hallmark init` first",
            keys_dir.display()
        ))
    })?;
    let cert_path = keys_dir.join(SIGNING_CERT_FILE);
    let old_key_id = if cert_path.exists() {
        let old_pem = read_to_string(&cert_path)?;
        let old = parse_pem_certificates(old_pem.as_bytes())?;
        let old = old.first().ok_or_else(|| {
            ProvenanceError::Key(format!("no certificate in {}", cert_path.display()))
        })?;
        let id = key_id(&certificate_public_key(old)?);
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
        new_key_id: key_id(&key.verifying_key()),
    })
}

/// Every public key of this service the settings know, current first: the current signing
/// certificate and the retired ones in the keys directory (or the operator's leaf). Reads no
/// private key. Missing files are skipped.
///
/// # Errors
/// When a certificate file exists but cannot be read or parsed.
pub fn service_public_keys(settings: &Settings) -> Result<Vec<VerifyingKey>, ProvenanceError> {
    let dir = settings.storage.keys_dir();
    let mut keys = Vec::new();
    let current = match custom_identity_paths(settings)? {
        Some((chain, _)) => chain,
        None => dir.join(SIGNING_CERT_FILE),
    };
    if current.exists() {
        if let Some(leaf) = parse_pem_certificates(read_to_string(&current)?.as_bytes())?.first() {
            keys.push(certificate_public_key(leaf)?);
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
                let key = certificate_public_key(leaf)?;
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

/// The public key inside a DER certificate, which must be Ed25519.
///
/// # Errors
/// When the certificate cannot be parsed or its key is not Ed25519.
pub fn certificate_public_key(der: &[u8]) -> Result<VerifyingKey, ProvenanceError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| ProvenanceError::Key("cannot parse the certificate".into()))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() != ED25519_OID {
        return Err(ProvenanceError::Key(
            "the certificate's key is not Ed25519 (the only algorithm Hallmark signs with)".into(),
        ));
    }
    let raw: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| ProvenanceError::Key("bad Ed25519 public key length".into()))?;
    VerifyingKey::from_bytes(&raw)
        .map_err(|_| ProvenanceError::Key("bad Ed25519 public key".into()))
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

/// rcgen signing over our own ed25519-dalek key (no ring or aws-lc needed).
struct RcgenKey<'a> {
    key: &'a SigningKey,
    public: [u8; 32],
}

impl<'a> RcgenKey<'a> {
    fn new(key: &'a SigningKey) -> Self {
        Self {
            key,
            public: key.verifying_key().to_bytes(),
        }
    }
}

impl rcgen::PublicKeyData for RcgenKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

impl rcgen::SigningKey for RcgenKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
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

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    dn
}

fn self_signed_ca(key: &SigningKey) -> Result<String, ProvenanceError> {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = name(CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    params.serial_number = Some(random_serial());
    let cert = params
        .self_signed(&RcgenKey::new(key))
        .map_err(rcgen_error)?;
    Ok(cert.pem())
}

fn issue_signing_cert(
    ca_key: &SigningKey,
    ca_cert_pem: &str,
    key: &SigningKey,
    days: u32,
) -> Result<String, ProvenanceError> {
    let ca_der = parse_pem_certificates(ca_cert_pem.as_bytes())?;
    let ca_der = ca_der
        .first()
        .ok_or_else(|| ProvenanceError::Key("no certificate in the CA file".into()))?;
    if certificate_public_key(ca_der)? != ca_key.verifying_key() {
        return Err(ProvenanceError::Key(
            "the CA key does not match the CA certificate".into(),
        ));
    }
    let ca_not_after = x509_parser::parse_x509_certificate(ca_der)
        .map_err(|_| ProvenanceError::Key("cannot parse the CA certificate".into()))?
        .1
        .validity()
        .not_after
        .to_datetime();
    // The CA was made by `self_signed_ca` with these same name and key-identifier parameters, so
    // the authority key identifier matches its subject key identifier.
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name(CA_COMMON_NAME);
    let issuer = Issuer::new(ca_params, RcgenKey::new(ca_key));
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = name(SIGNER_COMMON_NAME);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::EmailProtection,
        ExtendedKeyUsagePurpose::Other(C2PA_CLAIM_SIGNING_EKU.to_vec()),
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    params.not_after = (now + Duration::days(i64::from(days.max(1)))).min(ca_not_after);
    params.serial_number = Some(random_serial());
    let cert = params
        .signed_by(&RcgenKey::new(key), &issuer)
        .map_err(rcgen_error)?;
    Ok(cert.pem())
}

fn load_ca(
    keys_dir: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<Option<(SigningKey, String)>, ProvenanceError> {
    let key_path = keys_dir.join(CA_KEY_FILE);
    let cert_path = keys_dir.join(CA_CERT_FILE);
    match (key_path.exists(), cert_path.exists()) {
        (false, false) => Ok(None),
        (true, true) => Ok(Some((
            keyfile::read(&key_path, passphrase)?,
            read_to_string(&cert_path)?,
        ))),
        _ => Err(ProvenanceError::Config(format!(
            "only one of {} and {} exists: restore the other or remove both",
            key_path.display(),
            cert_path.display()
        ))),
    }
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
        for file in [CA_KEY_FILE, SIGNING_KEY_FILE, LOG_KEY_FILE] {
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

    #[test]
    fn with_a_passphrase_every_key_is_encrypted_and_still_serves() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let passphrase = Passphrase::new(b"a passphrase for tests".to_vec()).unwrap();
        let made = init_pki(&keys, 30, Some(&passphrase)).unwrap();
        for file in [CA_KEY_FILE, SIGNING_KEY_FILE, LOG_KEY_FILE] {
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
        assert_eq!(rewritten.len(), 3);
        assert!(
            encrypt_keys(&keys, &passphrase).unwrap().is_empty(),
            "idempotent"
        );
        #[cfg(unix)]
        for file in [CA_KEY_FILE, SIGNING_KEY_FILE, LOG_KEY_FILE] {
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
