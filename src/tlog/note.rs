//! Checkpoints as signed notes: the C2SP tlog-checkpoint body (origin line, decimal tree size,
//! base64 root hash, each ending in a newline) signed by the log's Ed25519 key as a C2SP signed
//! note (a blank line, then `— <key name> <base64(4-byte key id ‖ 64-byte signature)>`), with
//! the key name equal to the origin. The key id is the first 4 bytes of
//! SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key); verifiers pin the verifier key string
//! `<name>+<hex key id>+<base64(0x01 ‖ public key)>` ([`LogSigner::verifier_key`]).

use ed25519_dalek::{Signer as _, SigningKey};
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

use super::LogError;

/// Signs checkpoints with the log's key under the origin's name.
pub struct LogSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogSigner({}+{:08x})", self.name, self.id)
    }
}

impl LogSigner {
    /// # Errors
    /// When the origin cannot be a key name (empty, or with spaces or `+`).
    pub fn new(origin: &str, key: SigningKey) -> Result<Self, LogError> {
        if !signed_note::is_key_name_valid(origin) {
            return Err(LogError::Key(format!(
                "{origin:?} cannot name a note key: it must be non-empty, without spaces or +"
            )));
        }
        let mut public = vec![0x01];
        public.extend_from_slice(key.verifying_key().as_bytes());
        Ok(Self {
            name: origin.to_owned(),
            id: signed_note::key_id(origin, &public),
            key,
        })
    }

    /// The C2SP verifier key that checks this log's checkpoints.
    #[must_use]
    pub fn verifier_key(&self) -> String {
        signed_note::new_ed25519_verifier_key(&self.name, &self.key.verifying_key())
    }

    /// The origin (and key name).
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.name
    }

    /// The signed checkpoint note for a tree of `size` entries with root `root`.
    ///
    /// # Errors
    /// When the origin cannot be a checkpoint origin (it was checked as a key name already).
    pub fn sign_checkpoint(&self, size: u64, root: Hash) -> Result<String, LogError> {
        let text = Checkpoint::new(&self.name, size, root, "")
            .map_err(|e| LogError::MalformedCheckpoint(e.to_string()))?
            .to_bytes();
        let mut note =
            Note::new(&text, &[]).map_err(|e| LogError::MalformedCheckpoint(e.to_string()))?;
        let signer: &dyn signed_note::Signer = self;
        note.add_sigs(&[signer])
            .map_err(|e| LogError::Key(e.to_string()))?;
        String::from_utf8(note.to_bytes()).map_err(|e| LogError::MalformedCheckpoint(e.to_string()))
    }
}

impl signed_note::Signer for LogSigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// A checkpoint whose signature by the pinned key holds.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Checks a checkpoint note's signature with `verifier_key` (a C2SP verifier key string) and
/// that its origin is `origin`; returns the tree head it signs.
///
/// # Errors
/// When the note or key is malformed, the signature does not verify, or the origin differs.
pub fn verify_checkpoint(
    note: &str,
    verifier_key: &str,
    origin: &str,
) -> Result<VerifiedCheckpoint, LogError> {
    let verifier = StandardVerifier::new(verifier_key)
        .map_err(|e| LogError::Key(format!("verifier key: {e}")))?;
    let note = Note::from_bytes(note.as_bytes())
        .map_err(|e| LogError::MalformedCheckpoint(e.to_string()))?;
    note.verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| LogError::BadSignature(e.to_string()))?;
    let checkpoint = Checkpoint::from_bytes(note.text())
        .map_err(|e| LogError::MalformedCheckpoint(e.to_string()))?;
    if checkpoint.origin() != origin {
        return Err(LogError::MalformedCheckpoint(format!(
            "origin {:?}, expected {origin:?}",
            checkpoint.origin()
        )));
    }
    Ok(VerifiedCheckpoint {
        origin: checkpoint.origin().to_owned(),
        size: checkpoint.size(),
        root: *checkpoint.hash(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use rand_core::OsRng;
    use sha2::{Digest, Sha256};

    #[test]
    fn a_checkpoint_note_is_the_spec_s_bytes_and_verifies() {
        let key = SigningKey::generate(&mut OsRng);
        let signer = LogSigner::new("example.org/log", key.clone()).unwrap();
        let root = Hash([7; 32]);
        let note = signer.sign_checkpoint(12, root).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = format!("example.org/log\n12\n{}\n", b64.encode([7; 32]));
        assert!(
            note.starts_with(&format!("{body}\n— example.org/log ")),
            "{note}"
        );
        assert!(note.ends_with('\n'));
        assert_eq!(note.lines().count(), 5);

        // The signature line by hand: key id, then plain Ed25519 over the body.
        let line = note.lines().last().unwrap();
        let sig = b64.decode(line.rsplit(' ').next().unwrap()).unwrap();
        let mut id_input = b"example.org/log\n\x01".to_vec();
        id_input.extend_from_slice(key.verifying_key().as_bytes());
        assert_eq!(&sig[..4], &Sha256::digest(&id_input)[..4]);
        let signature = ed25519_dalek::Signature::from_slice(&sig[4..]).unwrap();
        key.verifying_key()
            .verify_strict(body.as_bytes(), &signature)
            .unwrap();

        let vkey = signer.verifier_key();
        assert!(vkey.starts_with(&format!("example.org/log+{}+", hex::encode(&sig[..4]))));
        let checked = verify_checkpoint(&note, &vkey, "example.org/log").unwrap();
        assert_eq!((checked.size, checked.root), (12, root));
    }

    #[test]
    fn altered_notes_foreign_keys_and_other_origins_are_refused() {
        let signer = LogSigner::new("example.org/log", SigningKey::generate(&mut OsRng)).unwrap();
        let note = signer.sign_checkpoint(3, Hash([1; 32])).unwrap();
        let vkey = signer.verifier_key();
        let altered = note.replacen("\n3\n", "\n4\n", 1);
        assert!(matches!(
            verify_checkpoint(&altered, &vkey, "example.org/log"),
            Err(LogError::BadSignature(_))
        ));
        let other = LogSigner::new("example.org/log", SigningKey::generate(&mut OsRng)).unwrap();
        assert!(verify_checkpoint(&note, &other.verifier_key(), "example.org/log").is_err());
        assert!(verify_checkpoint(&note, &vkey, "example.org/other").is_err());
        assert!(verify_checkpoint("not a note", &vkey, "example.org/log").is_err());
        assert!(LogSigner::new("has space", SigningKey::generate(&mut OsRng)).is_err());
        assert!(LogSigner::new("", SigningKey::generate(&mut OsRng)).is_err());
    }
}
