//! Replays a stored log against its signed checkpoints and names the first entry altered, removed or reordered.
use crate::merkle::{leaf_hash, Frontier};
use crate::note::NoteVerifier;
use crate::{AuditEntry, AuditError, Checkpoint, Hash};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use std::fmt;

/// One entry as a store holds it.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// The position the store files it under.
    pub seq: u64,
    /// The entry's bytes.
    pub bytes: Vec<u8>,
    /// The leaf hash the store recorded when the entry was appended, if it keeps one.
    pub recorded_leaf: Option<Hash>,
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// Signed checkpoints checked.
    pub checkpoints: usize,
    /// Size of the newest signed checkpoint.
    pub signed_size: u64,
    /// Root over all entries, base64.
    pub root: String,
}

/// The first problem found. `seq` names the first bad entry when one can be named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// First bad entry, if known.
    pub seq: Option<u64>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(s) => write!(f, "entry {s}: {}", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

impl std::error::Error for VerifyFailure {}

fn fail(seq: Option<u64>, problem: impl Into<String>) -> VerifyFailure {
    VerifyFailure {
        seq,
        problem: problem.into(),
    }
}

/// Verifies a log: entries in the order stored, and every signed checkpoint (as notes) against `verifier`.
///
/// Checks, in order of the entries: positions are contiguous from 0 (a gap is a removed entry); each entry
/// decodes and claims its own position (else it was moved); its hash equals the one recorded at append time and
/// the link its successor carries (else it was altered); and the Merkle root at every checkpoint's size equals
/// the signed root (else an entry in that range was rewritten along with its chain). A checkpoint larger than
/// the log means entries were cut off the end.
pub fn verify_log(
    entries: impl Iterator<Item = Result<StoredEntry, AuditError>>,
    checkpoint_notes: &[String],
    verifier: &NoteVerifier,
) -> Result<VerifyReport, VerifyFailure> {
    let mut cps: Vec<Checkpoint> = Vec::with_capacity(checkpoint_notes.len());
    for note in checkpoint_notes {
        let text = verifier.open(note).map_err(|e| {
            fail(
                None,
                format!("a stored checkpoint fails its signature check: {e}"),
            )
        })?;
        let cp = Checkpoint::parse(text).map_err(|e| fail(None, e.to_string()))?;
        if cp.origin != verifier.name() {
            return Err(fail(
                None,
                format!("checkpoint origin {} is not this log's", cp.origin),
            ));
        }
        cps.push(cp);
    }
    cps.sort_by_key(|c| c.size);
    let mut next_cp = cps.iter().peekable();
    while next_cp.peek().is_some_and(|c| c.size == 0) {
        next_cp.next();
    }

    let mut frontier = Frontier::new();
    let mut prev: Option<(u64, Hash)> = None;
    let mut last_good_cp = 0u64;
    for item in entries {
        let stored = item.map_err(|e| fail(None, format!("cannot read the log: {e}")))?;
        let expected = frontier.size();
        if stored.seq != expected {
            return Err(if stored.seq > expected {
                fail(
                    Some(expected),
                    "removed: the log jumps from it to a later entry",
                )
            } else {
                fail(Some(stored.seq), "duplicated or out of order")
            });
        }
        let entry = AuditEntry::decode(&stored.bytes).map_err(|_| {
            fail(
                Some(stored.seq),
                "altered: its bytes are not a valid audit entry",
            )
        })?;
        if entry.seq != stored.seq {
            return Err(fail(
                Some(stored.seq),
                format!(
                    "reordered: the entry filed here says it is entry {}",
                    entry.seq
                ),
            ));
        }
        let leaf = leaf_hash(&stored.bytes);
        if let Some((pseq, phash)) = prev {
            if entry.prev != hex::encode(phash) {
                return Err(fail(
                    Some(pseq),
                    "altered: its hash no longer matches the link in the entry after it",
                ));
            }
        } else if !entry.prev.is_empty() {
            return Err(fail(
                Some(0),
                "altered: the first entry links to a predecessor",
            ));
        }
        if stored.recorded_leaf.is_some_and(|r| r != leaf) {
            return Err(fail(
                Some(stored.seq),
                "altered: its hash differs from the one recorded when it was appended",
            ));
        }
        frontier.append(leaf);
        prev = Some((stored.seq, leaf));
        while let Some(cp) = next_cp.peek() {
            if cp.size != frontier.size() {
                break;
            }
            if cp.root != frontier.root() {
                return Err(fail(
                    Some(last_good_cp),
                    format!(
                        "altered: entries {last_good_cp}..{} no longer match the signed checkpoint of size {} \
                         (the first entry not proven good is named)",
                        cp.size - 1,
                        cp.size
                    ),
                ));
            }
            last_good_cp = cp.size;
            next_cp.next();
        }
    }
    if let Some(cp) = next_cp.next() {
        return Err(fail(
            Some(frontier.size()),
            format!(
                "removed: a signed checkpoint covers {} entries but the log ends here",
                cp.size
            ),
        ));
    }
    Ok(VerifyReport {
        entries: frontier.size(),
        checkpoints: cps.len(),
        signed_size: last_good_cp,
        root: B64.encode(frontier.root()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteSigner;

    struct Log {
        entries: Vec<StoredEntry>,
        notes: Vec<String>,
        signer: NoteSigner,
    }

    fn log(n: u64, checkpoint_every: u64) -> Log {
        let signer = NoteSigner::generate("test.local/audit").unwrap();
        let mut frontier = Frontier::new();
        let mut entries = Vec::new();
        let mut notes = Vec::new();
        let mut prev = String::new();
        for seq in 0..n {
            let e = AuditEntry {
                seq,
                waybill: Some(format!("W{seq}")),
                purpose: Some("delivery".into()),
                view: Some("full".into()),
                fields: vec!["recipient.phone".into()],
                prev: prev.clone(),
                ..AuditEntry::new(1_700_000_000_000 + seq as i64, format!("C{seq:04}"), "view")
            };
            let bytes = e.encode();
            let leaf = leaf_hash(&bytes);
            prev = hex::encode(leaf);
            frontier.append(leaf);
            entries.push(StoredEntry {
                seq,
                bytes,
                recorded_leaf: Some(leaf),
            });
            if (seq + 1) % checkpoint_every == 0 || seq + 1 == n {
                let cp = Checkpoint {
                    origin: signer.name().into(),
                    size: seq + 1,
                    root: frontier.root(),
                };
                notes.push(signer.sign(&cp.to_text()).unwrap());
            }
        }
        Log {
            entries,
            notes,
            signer,
        }
    }

    fn run(l: &Log) -> Result<VerifyReport, VerifyFailure> {
        verify_log(
            l.entries.iter().cloned().map(Ok),
            &l.notes,
            &l.signer.verifier(),
        )
    }

    #[test]
    fn intact_log_verifies() {
        let l = log(50, 10);
        let r = run(&l).unwrap();
        assert_eq!((r.entries, r.checkpoints, r.signed_size), (50, 5, 50));
    }

    #[test]
    fn flipped_byte_is_named() {
        let mut l = log(50, 10);
        let i = l.entries[17].bytes.iter().position(|b| *b == b'W').unwrap();
        l.entries[17].bytes[i + 1] ^= 0x01;
        assert_eq!(run(&l).unwrap_err().seq, Some(17));
        // Also when the store's recorded hash was rewritten to match: the chain names it.
        l.entries[17].recorded_leaf = Some(leaf_hash(&l.entries[17].bytes));
        assert_eq!(run(&l).unwrap_err().seq, Some(17));
    }

    #[test]
    fn removed_reordered_and_truncated_are_named() {
        let mut l = log(30, 10);
        l.entries.remove(12);
        assert_eq!(run(&l).unwrap_err().seq, Some(12));

        let mut l = log(30, 10);
        let a = l.entries[5].bytes.clone();
        l.entries[5].bytes = l.entries[6].bytes.clone();
        l.entries[6].bytes = a;
        let e = run(&l).unwrap_err();
        assert_eq!(e.seq, Some(5));
        assert!(e.problem.contains("reordered"));

        let mut l = log(30, 10);
        l.entries.truncate(25);
        let e = run(&l).unwrap_err();
        assert_eq!(e.seq, Some(25));
        assert!(e.problem.contains("removed"));
    }

    #[test]
    fn rewritten_chain_is_caught_by_the_checkpoint() {
        let mut l = log(30, 10);
        // An attacker without the signing key rewrites entry 13 and re-links everything after it.
        let mut frontier = Frontier::new();
        let mut prev = String::new();
        for s in &mut l.entries {
            let mut e = AuditEntry::decode(&s.bytes).unwrap();
            if e.seq == 13 {
                e.decision = "deny".into();
            }
            e.prev = prev.clone();
            s.bytes = e.encode();
            let leaf = leaf_hash(&s.bytes);
            s.recorded_leaf = Some(leaf);
            prev = hex::encode(leaf);
            frontier.append(leaf);
        }
        let e = run(&l).unwrap_err();
        assert_eq!(e.seq, Some(10));
        assert!(e.problem.contains("checkpoint of size 20"));
    }

    #[test]
    fn forged_checkpoint_fails() {
        let mut l = log(10, 5);
        l.notes[0] = l.notes[0].replace("\n5\n", "\n4\n");
        assert!(run(&l).unwrap_err().problem.contains("signature"));
    }
}
