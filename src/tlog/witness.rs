//! Witnesses: Ed25519 cosignatures of checkpoints (c2sp.org/tlog-cosignature, `cosignature/v1`)
//! and the c2sp.org/tlog-witness protocol's `add-checkpoint`, from both sides.
//!
//! - A cosignature is a signed-note signature line `— <witness name> base64(key id ‖ timestamp ‖
//!   Ed25519 signature)`: the key id is SHA-256(name ‖ `\n` ‖ 0x04 ‖ public key)[:4], the
//!   timestamp a big-endian u64 of POSIX seconds, and the signature covers `cosignature/v1\n`,
//!   `time <timestamp>\n` and the checkpoint's note text. [`CosignatureSigner`] and
//!   [`CosignatureVerifier`] plug into `signed_note`'s [`Signer`] and [`Verifier`] traits, so
//!   notes are parsed, signed and verified by that crate; only the cosigned message is ours.
//! - [`Witness`] is the witness's side of `add-checkpoint` (`hallmark log witness`): it checks
//!   the log's signature, that the old size is the one it last cosigned, and the RFC 6962
//!   consistency proof from that tree; it persists the new tree head before it cosigns.
//! - [`WitnessClient`] is the log's side: after each checkpoint the service submits it with a
//!   consistency proof from the size the witness last saw, checks the cosignature it gets back
//!   with the witness's pinned key, and adds it to the stored checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use signed_note::{Note, NoteError, Signer, StandardVerifier, Verifier, VerifierList};
use tlog_tiles::{check_tree, Checkpoint, Hash};

use super::LogError;

/// The signature type byte of Ed25519 `cosignature/v1` keys.
pub const COSIGNATURE_V1: u8 = 0x04;
/// Most consistency-proof lines an `add-checkpoint` request may carry.
pub const MAX_PROOF_LINES: usize = 63;
/// Largest `add-checkpoint` body a witness reads.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// The `Content-Type` of a 409 answer's tree size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The message a `cosignature/v1` signs: header, time line, then the note's text.
#[must_use]
pub fn cosigned_message(timestamp: u64, note_text: &[u8]) -> Vec<u8> {
    let mut message = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    message.extend_from_slice(note_text);
    message
}

fn key_id(name: &str, public: &VerifyingKey) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', COSIGNATURE_V1]);
    hasher.update(public.as_bytes());
    u32::from_be_bytes(hasher.finalize()[..4].try_into().unwrap_or([0; 4]))
}

/// A witness's cosigning key under its name.
pub struct CosignatureSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CosignatureSigner({}+{:08x})", self.name, self.id)
    }
}

impl CosignatureSigner {
    /// # Errors
    /// When `name` cannot be a note key name (empty, or with spaces or `+`).
    pub fn new(name: &str, key: SigningKey) -> Result<Self, LogError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(LogError::Key(format!(
                "{name:?} cannot name a witness key: it must be non-empty, without spaces or +"
            )));
        }
        Ok(Self {
            id: key_id(name, &key.verifying_key()),
            name: name.to_owned(),
            key,
        })
    }

    /// The witness's verifier key, `<name>+<hex key id>+<base64(0x04 ‖ public key)>`, which
    /// logs and clients pin.
    #[must_use]
    pub fn verifier_key(&self) -> String {
        let mut public = vec![COSIGNATURE_V1];
        public.extend_from_slice(self.key.verifying_key().as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, b64().encode(public))
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Signer for CosignatureSigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    /// The timestamped signature: the current POSIX time (big-endian u64), then Ed25519 over
    /// the cosigned message.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut out = now.to_be_bytes().to_vec();
        out.extend_from_slice(&self.key.sign(&cosigned_message(now, msg)).to_bytes());
        Ok(out)
    }
}

/// Checks one witness's cosignatures.
#[derive(Debug, Clone)]
pub struct CosignatureVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// From the witness's verifier key (`<name>+<hex key id>+<base64(0x04 ‖ public key)>`).
    ///
    /// # Errors
    /// When the key is malformed, not a `cosignature/v1` Ed25519 key, or its id is not its own.
    pub fn parse(vkey: &str) -> Result<Self, LogError> {
        let bad = |why: &str| LogError::Key(format!("witness key {vkey:?}: {why}"));
        // The base64 key may itself hold `+`: only the first two separate.
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("not <name>+<key id>+<key>"));
        };
        if !signed_note::is_key_name_valid(name) {
            return Err(bad("the name cannot name a note key"));
        }
        let raw = b64()
            .decode(key)
            .map_err(|_| bad("the key is not base64"))?;
        let (&[COSIGNATURE_V1], public) = raw.split_at(1.min(raw.len())) else {
            return Err(bad("not a cosignature/v1 (0x04) Ed25519 key"));
        };
        let public: [u8; 32] = public.try_into().map_err(|_| bad("not 32 key bytes"))?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| bad("not an Ed25519 point"))?;
        let id_hex = u32::from_str_radix(id, 16).map_err(|_| bad("the key id is not hex"))?;
        if id.len() != 8 || id_hex != key_id(name, &key) {
            return Err(bad("the key id is not the key's"));
        }
        Ok(Self {
            name: name.to_owned(),
            id: id_hex,
            key,
        })
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cosignatures of this witness in `note` that verify, with their timestamps.
    #[must_use]
    pub fn cosignatures(&self, note: &str) -> Vec<(String, u64)> {
        let Ok(parsed) = Note::from_bytes(note.as_bytes()) else {
            return Vec::new();
        };
        match parsed.verify(&VerifierList::new(vec![Box::new(self.clone())])) {
            Ok((verified, _)) => verified
                .iter()
                .filter_map(|sig| {
                    let time = u64::from_be_bytes(sig.signature().get(..8)?.try_into().ok()?);
                    Some((String::from_utf8(sig.to_bytes()).ok()?, time))
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Verifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Some((time, signature)) = sig.split_first_chunk::<8>() else {
            return false;
        };
        let timestamp = u64::from_be_bytes(*time);
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        timestamp <= i64::MAX as u64
            && self
                .key
                .verify_strict(&cosigned_message(timestamp, msg), &signature)
                .is_ok()
    }
}

// ----- the witness -----------------------------------------------------------------------------

/// Why a witness refuses an `add-checkpoint`, with the protocol's status codes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WitnessError {
    /// 400: the body is not `old <n>`, proof lines, an empty line and a checkpoint, or old > size.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 404: no log of this origin is configured.
    #[error("unknown log {0:?}")]
    UnknownLog(String),
    /// 403: no signature of the log's key verifies.
    #[error("the checkpoint is not signed by the log's key")]
    Forbidden,
    /// 409: the old size is not the size last cosigned (`size`), or the same size has another
    /// root. The answer's body is `size` and a newline.
    #[error("conflict: the witness last cosigned a tree of {size} entries")]
    Conflict { size: u64 },
    /// 422: the consistency proof does not verify.
    #[error("the consistency proof does not verify")]
    BadProof,
    /// 500: the witness could not persist its state.
    #[error("the witness could not persist its state: {0}")]
    Storage(String),
}

impl WitnessError {
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Forbidden => 403,
            Self::UnknownLog(_) => 404,
            Self::Conflict { .. } => 409,
            Self::BadProof => 422,
            Self::Storage(_) => 500,
        }
    }
}

/// The latest tree head a witness cosigned for one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    pub size: u64,
    /// Base64 root hash.
    pub root: String,
}

/// A witness: its key, the logs it follows (by origin, each with the log's verifier key), and
/// the latest tree head it cosigned for each, kept in a JSON file (written whole, fsynced,
/// renamed) before any cosignature leaves.
pub struct Witness {
    signer: CosignatureSigner,
    logs: BTreeMap<String, String>,
    state_path: PathBuf,
    /// Held across check, persist and sign, so two requests cannot roll the state back.
    state: Mutex<BTreeMap<String, TreeHead>>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Witness({:?}, logs {:?})", self.signer, self.logs.keys())
    }
}

impl Witness {
    /// # Errors
    /// When a log key is not a C2SP Ed25519 verifier key or the state file cannot be read.
    pub fn new(
        signer: CosignatureSigner,
        log_keys: &[String],
        state_path: &Path,
    ) -> Result<Self, LogError> {
        let mut logs = BTreeMap::new();
        for vkey in log_keys {
            let verifier = StandardVerifier::new(vkey)
                .map_err(|e| LogError::Key(format!("log key {vkey:?}: {e}")))?;
            logs.insert(verifier.name().to_owned(), vkey.clone());
        }
        let state = match std::fs::read(state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                LogError::Key(format!("witness state {}: {e}", state_path.display()))
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => {
                return Err(LogError::Key(format!(
                    "witness state {}: {error}",
                    state_path.display()
                )))
            }
        };
        Ok(Self {
            signer,
            logs,
            state_path: state_path.to_owned(),
            state: Mutex::new(state),
        })
    }

    #[must_use]
    pub fn verifier_key(&self) -> String {
        self.signer.verifier_key()
    }

    /// The latest tree head cosigned for `origin`.
    #[must_use]
    pub fn latest(&self, origin: &str) -> Option<TreeHead> {
        self.state.lock().ok()?.get(origin).cloned()
    }

    /// `POST add-checkpoint`: the cosignature line(s) to answer, or why not. Blocking (it
    /// fsyncs the state file): run it off the async executor.
    ///
    /// # Errors
    /// As the protocol says, see [`WitnessError`].
    pub fn add_checkpoint(&self, body: &[u8]) -> Result<String, WitnessError> {
        let bad = |why: &str| WitnessError::BadRequest(why.to_owned());
        let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
        let (head, note_text) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old: u64 = lines
            .next()
            .and_then(|line| line.strip_prefix("old "))
            .filter(|n| *n == "0" || (!n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("the first line is not `old <size>`"))?;
        let proof = lines
            .map(|line| {
                b64()
                    .decode(line)
                    .ok()
                    .and_then(|h| <[u8; 32]>::try_from(h).ok())
                    .map(Hash)
                    .ok_or_else(|| bad("a proof line is not a base64 hash"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(bad("more than 63 proof lines"));
        }
        let note = Note::from_bytes(note_text.as_bytes())
            .map_err(|_| bad("the checkpoint is not a note"))?;
        let checkpoint =
            Checkpoint::from_bytes(note.text()).map_err(|_| bad("not a checkpoint"))?;
        let origin = checkpoint.origin().to_owned();
        let vkey = self
            .logs
            .get(&origin)
            .ok_or_else(|| WitnessError::UnknownLog(origin.clone()))?;
        let verifier = StandardVerifier::new(vkey).map_err(|_| WitnessError::Forbidden)?;
        match note.verify(&VerifierList::new(vec![Box::new(verifier)])) {
            Ok(_) => {}
            Err(NoteError::UnverifiedNote | NoteError::InvalidSignature { .. }) => {
                return Err(WitnessError::Forbidden)
            }
            Err(_) => return Err(bad("the checkpoint's signatures are malformed")),
        }
        let (size, root) = (checkpoint.size(), *checkpoint.hash());
        if old > size {
            return Err(bad("the old size is larger than the checkpoint's"));
        }

        let mut state = self
            .state
            .lock()
            .map_err(|_| WitnessError::Storage("poisoned".into()))?;
        let known = state.get(&origin).cloned();
        let known_size = known.as_ref().map_or(0, |h| h.size);
        if old != known_size {
            return Err(WitnessError::Conflict { size: known_size });
        }
        match &known {
            Some(head) if old == size => {
                if head.root != b64().encode(root.0) {
                    return Err(WitnessError::Conflict { size: known_size });
                }
                if !proof.is_empty() {
                    return Err(WitnessError::BadProof);
                }
            }
            Some(head) if old > 0 => {
                let old_root = b64()
                    .decode(&head.root)
                    .ok()
                    .and_then(|h| <[u8; 32]>::try_from(h).ok())
                    .map(Hash)
                    .ok_or_else(|| WitnessError::Storage("a stored root is malformed".into()))?;
                check_tree(&proof, size, root, old, old_root)
                    .map_err(|_| WitnessError::BadProof)?;
            }
            // Nothing seen yet (or an empty tree): the first checkpoint is taken as it comes.
            _ => {
                if !proof.is_empty() {
                    return Err(WitnessError::BadProof);
                }
            }
        }
        let mut next = state.clone();
        next.insert(
            origin,
            TreeHead {
                size,
                root: b64().encode(root.0),
            },
        );
        write_state(&self.state_path, &next).map_err(|e| WitnessError::Storage(e.to_string()))?;
        *state = next;

        let signature = Signer::sign(&self.signer, note.text())
            .map_err(|e| WitnessError::Storage(e.to_string()))?;
        let line = signed_note::Signature::new(self.signer.name.clone(), self.signer.id, signature)
            .map_err(|e| WitnessError::Storage(e.to_string()))?
            .to_bytes();
        String::from_utf8(line).map_err(|e| WitnessError::Storage(e.to_string()))
    }
}

/// Writes the witness state whole, fsynced, then renames it into place (and fsyncs the
/// directory), so a crash leaves the old state or the new, never a torn file.
fn write_state(path: &Path, state: &BTreeMap<String, TreeHead>) -> std::io::Result<()> {
    use std::io::Write as _;
    let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The body of an `add-checkpoint` request.
#[must_use]
pub fn add_checkpoint_body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for hash in proof {
        body.push_str(&b64().encode(hash.0));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

// ----- the log's side --------------------------------------------------------------------------

/// What a witness answered the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// Cosigned: the verified signature line(s).
    Cosigned(Vec<String>),
    /// 409: the witness's last cosigned size; submit again from it.
    Conflict(u64),
}

/// One configured witness, as the log talks to it.
#[derive(Debug)]
pub struct WitnessClient {
    pub url: String,
    pub verifier: CosignatureVerifier,
    http: reqwest::Client,
    /// The tree size this witness last cosigned, as far as this process knows.
    last_size: Mutex<Option<u64>>,
}

impl WitnessClient {
    /// `url`: the witness's submission prefix (`<url>/add-checkpoint` is posted to).
    ///
    /// # Errors
    /// When the key is not a witness's verifier key.
    pub fn new(url: &str, vkey: &str, timeout: std::time::Duration) -> Result<Self, LogError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| LogError::Witness(e.to_string()))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            verifier: CosignatureVerifier::parse(vkey)?,
            http,
            last_size: Mutex::new(None),
        })
    }

    #[must_use]
    pub fn last_size(&self) -> Option<u64> {
        self.last_size.lock().ok().and_then(|size| *size)
    }

    pub fn set_last_size(&self, size: u64) {
        if let Ok(mut last) = self.last_size.lock() {
            *last = Some(size);
        }
    }

    /// Posts `note` with the consistency proof from `old`; checks what comes back.
    ///
    /// # Errors
    /// When the witness cannot be reached, refuses for another reason, or answers lines that do
    /// not verify with its pinned key.
    pub async fn submit(
        &self,
        old: u64,
        proof: &[Hash],
        note: &str,
    ) -> Result<Submission, LogError> {
        let response = self
            .http
            .post(format!("{}/add-checkpoint", self.url))
            .body(add_checkpoint_body(old, proof, note))
            .send()
            .await
            .map_err(|e| LogError::Witness(format!("{}: {e}", self.url)))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| LogError::Witness(format!("{}: {e}", self.url)))?;
        match status {
            200 => {
                // Concatenated to the checkpoint, the answer must verify with the pinned key.
                let cosigned = format!("{note}{body}");
                let lines: Vec<String> = self
                    .verifier
                    .cosignatures(&cosigned)
                    .into_iter()
                    .map(|(line, _)| line)
                    .collect();
                if lines.is_empty() {
                    return Err(LogError::Witness(format!(
                        "{}: no cosignature of {} verifies in its answer",
                        self.url,
                        self.verifier.name()
                    )));
                }
                Ok(Submission::Cosigned(lines))
            }
            409 => body
                .trim_end_matches('\n')
                .parse()
                .map(Submission::Conflict)
                .map_err(|_| LogError::Witness(format!("{}: 409 {body:?}", self.url))),
            _ => Err(LogError::Witness(format!(
                "{}: HTTP {status}: {}",
                self.url,
                body.chars().take(200).collect::<String>()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::LogSigner;
    use rand_core::OsRng;
    use tlog_tiles::{prove_tree, stored_hashes, tree_hash, HashReader};

    /// A tree in memory, as the log stores it.
    struct Tree(std::collections::HashMap<u64, Hash>);
    impl HashReader for Tree {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
            Ok(indexes.iter().map(|i| self.0[i]).collect())
        }
    }
    fn tree(n: u64) -> Tree {
        let mut t = Tree(std::collections::HashMap::new());
        for i in 0..n {
            let base = tlog_tiles::stored_hash_index(0, i);
            for (k, h) in
                (base..).zip(stored_hashes(i, format!("entry {i}").as_bytes(), &t).unwrap())
            {
                t.0.insert(k, h);
            }
        }
        t
    }

    fn setup(dir: &Path) -> (LogSigner, Witness) {
        let log = LogSigner::new("example.org/log", SigningKey::generate(&mut OsRng)).unwrap();
        let signer =
            CosignatureSigner::new("witness.example/w1", SigningKey::generate(&mut OsRng)).unwrap();
        let witness = Witness::new(signer, &[log.verifier_key()], &dir.join("state.json")).unwrap();
        (log, witness)
    }

    #[test]
    fn a_cosignature_is_the_spec_s_bytes() {
        let key = SigningKey::generate(&mut OsRng);
        let signer = CosignatureSigner::new("witness.example/w1", key.clone()).unwrap();
        let text = b"example.org/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let sig = Signer::sign(&signer, text).unwrap();
        assert_eq!(sig.len(), 72);
        let time = u64::from_be_bytes(sig[..8].try_into().unwrap());
        let message = format!(
            "cosignature/v1\ntime {time}\nexample.org/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        let signature = ed25519_dalek::Signature::from_slice(&sig[8..]).unwrap();
        key.verifying_key()
            .verify_strict(message.as_bytes(), &signature)
            .unwrap();
        // Key id: SHA-256(name ‖ \n ‖ 0x04 ‖ key)[:4], in the verifier key.
        let mut input = b"witness.example/w1\n\x04".to_vec();
        input.extend_from_slice(key.verifying_key().as_bytes());
        let id = hex::encode(&Sha256::digest(&input)[..4]);
        assert!(signer
            .verifier_key()
            .starts_with(&format!("witness.example/w1+{id}+")));
        let verifier = CosignatureVerifier::parse(&signer.verifier_key()).unwrap();
        assert!(Verifier::verify(&verifier, text, &sig));
        let mut other = text.to_vec();
        other[16] = b'6';
        assert!(!Verifier::verify(&verifier, &other, &sig));
        // Keys whose base64 holds `+` (about one in five) parse too.
        let with_plus = (0..=255u8)
            .map(|i| CosignatureSigner::new("w", SigningKey::from_bytes(&[i; 32])).unwrap())
            .find(|s| {
                s.verifier_key()
                    .splitn(3, '+')
                    .nth(2)
                    .unwrap()
                    .contains('+')
            })
            .unwrap();
        CosignatureVerifier::parse(&with_plus.verifier_key()).unwrap();
        // A log key (0x01) is not a witness key.
        let log = LogSigner::new("example.org/log", key).unwrap();
        assert!(CosignatureVerifier::parse(&log.verifier_key()).is_err());
    }

    #[test]
    fn the_witness_follows_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let (log, witness) = setup(dir.path());
        let verifier = CosignatureVerifier::parse(&witness.verifier_key()).unwrap();
        let t = tree(20);
        let note = |n: u64| log.sign_checkpoint(n, tree_hash(n, &t).unwrap()).unwrap();

        // First contact: old 0, no proof.
        let answer = witness
            .add_checkpoint(add_checkpoint_body(0, &[], &note(5)).as_bytes())
            .unwrap();
        assert!(
            answer.starts_with("— witness.example/w1 ") && answer.ends_with('\n'),
            "{answer}"
        );
        assert_eq!(
            verifier.cosignatures(&format!("{}{answer}", note(5))).len(),
            1
        );
        // A stale old size: 409 with the size it knows.
        assert_eq!(
            witness.add_checkpoint(add_checkpoint_body(0, &[], &note(9)).as_bytes()),
            Err(WitnessError::Conflict { size: 5 })
        );
        // The right old size and proof.
        let proof = prove_tree(9, 5, &t).unwrap();
        witness
            .add_checkpoint(add_checkpoint_body(5, &proof, &note(9)).as_bytes())
            .unwrap();
        assert_eq!(witness.latest("example.org/log").unwrap().size, 9);
        // A wrong proof: 422, and the state stays.
        let wrong = prove_tree(12, 5, &t).unwrap();
        assert_eq!(
            witness.add_checkpoint(add_checkpoint_body(9, &wrong, &note(12)).as_bytes()),
            Err(WitnessError::BadProof)
        );
        // A fork: another tree of 12 whose first 9 differ.
        let forked = tree(3);
        let mut fork_note = log
            .sign_checkpoint(12, tree_hash(3, &forked).unwrap())
            .unwrap();
        assert_eq!(
            witness.add_checkpoint(
                add_checkpoint_body(9, &prove_tree(12, 9, &t).unwrap(), &fork_note).as_bytes()
            ),
            Err(WitnessError::BadProof)
        );
        // The same size again with another root: 409.
        fork_note = log
            .sign_checkpoint(9, tree_hash(3, &forked).unwrap())
            .unwrap();
        assert_eq!(
            witness.add_checkpoint(add_checkpoint_body(9, &[], &fork_note).as_bytes()),
            Err(WitnessError::Conflict { size: 9 })
        );
        // The same checkpoint again: cosigned again.
        witness
            .add_checkpoint(add_checkpoint_body(9, &[], &note(9)).as_bytes())
            .unwrap();
        // old > size: 400; another log: 404; a bad signature: 403; not a request: 400.
        assert!(matches!(
            witness.add_checkpoint(add_checkpoint_body(10, &[], &note(9)).as_bytes()),
            Err(WitnessError::BadRequest(_))
        ));
        let stranger =
            LogSigner::new("other.example/log", SigningKey::generate(&mut OsRng)).unwrap();
        let stranger_note = stranger.sign_checkpoint(1, Hash([1; 32])).unwrap();
        assert!(matches!(
            witness.add_checkpoint(add_checkpoint_body(0, &[], &stranger_note).as_bytes()),
            Err(WitnessError::UnknownLog(_))
        ));
        let impostor = LogSigner::new("example.org/log", SigningKey::generate(&mut OsRng)).unwrap();
        let forged = impostor
            .sign_checkpoint(15, tree_hash(15, &t).unwrap())
            .unwrap();
        assert_eq!(
            witness.add_checkpoint(
                add_checkpoint_body(9, &prove_tree(15, 9, &t).unwrap(), &forged).as_bytes()
            ),
            Err(WitnessError::Forbidden)
        );
        assert!(matches!(
            witness.add_checkpoint(b"hello"),
            Err(WitnessError::BadRequest(_))
        ));

        // The state survives a restart.
        let signer =
            CosignatureSigner::new("witness.example/w1", SigningKey::generate(&mut OsRng)).unwrap();
        let again = Witness::new(
            signer,
            &[log.verifier_key()],
            &dir.path().join("state.json"),
        )
        .unwrap();
        assert_eq!(again.latest("example.org/log").unwrap().size, 9);
    }
}
