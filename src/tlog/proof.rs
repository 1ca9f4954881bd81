//! Offline inclusion proofs in the c2sp.org/tlog-proof@v1 text format: the header line,
//! `index <i>`, the RFC 6962 inclusion path (one base64 hash a line, from the leaf's sibling up
//! to the root's child), an empty line, then the checkpoint note verbatim. No `extra` line: the
//! entry itself is the public record's encoding (see the module docs of [`crate::tlog`]).

use base64::Engine as _;
use tlog_tiles::{check_record, record_hash, Hash};

use super::note::{verify_checkpoint, VerifiedCheckpoint};
use super::LogError;

pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A proof's parts.
#[derive(Debug, Clone, PartialEq)]
pub struct InclusionProof {
    pub index: u64,
    pub path: Vec<Hash>,
    /// The signed checkpoint note, as the log served it.
    pub checkpoint: String,
}

impl InclusionProof {
    /// The proof as text.
    #[must_use]
    pub fn to_text(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut out = format!("{PROOF_HEADER}\nindex {}\n", self.index);
        for hash in &self.path {
            out.push_str(&b64.encode(hash.0));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses a proof's text (any `extra` line is skipped: it is not authenticated).
    ///
    /// # Errors
    /// When the text is not a tlog-proof@v1.
    pub fn parse(text: &str) -> Result<Self, LogError> {
        let fail = |what: &str| LogError::MalformedProof(what.to_owned());
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| fail("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(PROOF_HEADER) {
            return Err(fail("the first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next().ok_or_else(|| fail("no index line"))?;
        if line.starts_with("extra ") {
            line = lines.next().ok_or_else(|| fail("no index line"))?;
        }
        let index = line
            .strip_prefix("index ")
            .filter(|n| *n == "0" || (!n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| fail("the index line is not `index <decimal>`"))?;
        let path = lines
            .map(|l| Hash::parse_hash(l).map_err(|_| fail("a path line is not a base64 hash")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            index,
            path,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Checks the proof offline: the checkpoint's signature by `verifier_key` for `origin`, then
    /// that `entry` at the proof's index leads to the checkpoint's root.
    ///
    /// # Errors
    /// When the checkpoint or the path does not hold.
    pub fn check(
        &self,
        entry: &[u8],
        verifier_key: &str,
        origin: &str,
    ) -> Result<VerifiedCheckpoint, LogError> {
        let checkpoint = verify_checkpoint(&self.checkpoint, verifier_key, origin)?;
        check_record(
            &self.path,
            checkpoint.size,
            checkpoint.root,
            self.index,
            record_hash(entry),
        )
        .map_err(|_| LogError::BadProof)?;
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::super::hashes::StoredHashes;
    use super::super::note::LogSigner;
    use super::*;
    use ed25519_dalek::SigningKey;
    use rand_core::OsRng;
    use tlog_tiles::{prove_record, stored_hash_index, stored_hashes, tree_hash};

    #[test]
    fn a_proof_round_trips_as_text_and_checks_only_for_its_entry() {
        let mut known = StoredHashes::Known(std::collections::HashMap::new());
        let entries: Vec<Vec<u8>> = (0..11u8).map(|i| vec![i; 3]).collect();
        for (n, entry) in entries.iter().enumerate() {
            let n = n as u64;
            for (i, hash) in stored_hashes(n, entry, &known)
                .unwrap()
                .into_iter()
                .enumerate()
            {
                known.insert(stored_hash_index(0, n) + i as u64, hash);
            }
        }
        let signer = LogSigner::new("example.org/log", SigningKey::generate(&mut OsRng)).unwrap();
        let checkpoint = signer
            .sign_checkpoint(11, tree_hash(11, &known).unwrap())
            .unwrap();
        let proof = InclusionProof {
            index: 6,
            path: prove_record(11, 6, &known).unwrap(),
            checkpoint,
        };
        let text = proof.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 6\n"));
        assert!(text.contains("\n\nexample.org/log\n11\n"));
        let parsed = InclusionProof::parse(&text).unwrap();
        assert_eq!(parsed, proof);
        let vkey = signer.verifier_key();
        parsed.check(&entries[6], &vkey, "example.org/log").unwrap();
        assert!(matches!(
            parsed.check(&entries[5], &vkey, "example.org/log"),
            Err(LogError::BadProof)
        ));
        assert!(InclusionProof::parse("c2sp.org/tlog-proof@v1\nindex 01\n\nx").is_err());
        assert!(InclusionProof::parse("nope\nindex 1\n\nx").is_err());
        assert!(InclusionProof::parse("c2sp.org/tlog-proof@v1\nindex 1\n!!\n\nx").is_err());
    }
}
