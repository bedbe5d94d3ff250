//! Evidence packs: audit entries as they were hashed, each with its inclusion proof up to one signed checkpoint,
//! so that anyone holding the log's verifier key can check them offline — no node, no store, no trust in whoever
//! handed the pack over.
use crate::merkle::{leaf_hash, verify_inclusion};
use crate::note::NoteVerifier;
use crate::{AuditEntry, Checkpoint, Hash};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::{Deserialize, Serialize};

/// The format name a pack carries.
pub const PACK_FORMAT: &str = "wbguard-evidence-pack/1";

/// One entry of a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    /// Its position in the log.
    pub seq: u64,
    /// Its exact bytes, base64.
    pub entry: String,
    /// Its inclusion proof up to the pack's checkpoint (RFC 9162 hashes, base64, leaf side first).
    pub proof: Vec<String>,
}

/// An evidence pack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidencePack {
    /// [`PACK_FORMAT`].
    pub format: String,
    /// What the entries are evidence of (an alert, as the node described it); not checked by the proofs.
    pub subject: serde_json::Value,
    /// The account that made the pack, and when (ms since the epoch).
    pub created_by: String,
    /// When.
    pub created_at: i64,
    /// The signed checkpoint (a C2SP signed note) every proof leads to.
    pub checkpoint: String,
    /// The verifier key the node said it signs with (`name+hash+base64`). Self-asserted: check the pack with a
    /// key obtained elsewhere (the witness, a printed copy) for the pack to prove anything.
    pub verifier_key: String,
    /// The entries.
    pub entries: Vec<PackEntry>,
}

/// What checking a pack found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackReport {
    /// The checkpoint's origin and size.
    pub origin: String,
    /// The tree size the proofs are for.
    pub size: u64,
    /// Entries whose bytes and proof hold.
    pub verified: Vec<u64>,
    /// Entries that do not, each with why.
    pub failed: Vec<(u64, String)>,
}

impl PackReport {
    /// Every entry holds (and there is at least one).
    pub fn holds(&self) -> bool {
        self.failed.is_empty() && !self.verified.is_empty()
    }
}

/// Why a pack could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Not a pack of this format.
    #[error("not an evidence pack: {0}")]
    Format(String),
    /// The checkpoint is not signed by the key, or is malformed.
    #[error("the checkpoint does not hold: {0}")]
    Checkpoint(#[from] crate::AuditError),
}

fn hash_of(b64: &str) -> Option<Hash> {
    B64.decode(b64).ok()?.try_into().ok()
}

impl EvidencePack {
    /// Parses a pack (JSON).
    pub fn parse(bytes: &[u8]) -> Result<EvidencePack, PackError> {
        let pack: EvidencePack =
            serde_json::from_slice(bytes).map_err(|e| PackError::Format(e.to_string()))?;
        if pack.format != PACK_FORMAT {
            return Err(PackError::Format(format!(
                "format {:?}, expected {PACK_FORMAT:?}",
                pack.format
            )));
        }
        Ok(pack)
    }

    /// Checks the pack against `key`: the checkpoint's signature, then each entry — that its bytes are an
    /// entry with the seq the pack gives it, and that its proof leads from its leaf hash to the signed root.
    pub fn verify(&self, key: &NoteVerifier) -> Result<PackReport, PackError> {
        let cp = Checkpoint::parse(key.open(&self.checkpoint)?)?;
        let mut report = PackReport {
            origin: cp.origin.clone(),
            size: cp.size,
            verified: Vec::new(),
            failed: Vec::new(),
        };
        for e in &self.entries {
            match check_entry(e, &cp) {
                Ok(()) => report.verified.push(e.seq),
                Err(why) => report.failed.push((e.seq, why)),
            }
        }
        Ok(report)
    }
}

fn check_entry(e: &PackEntry, cp: &Checkpoint) -> Result<(), String> {
    let bytes = B64
        .decode(&e.entry)
        .map_err(|_| "its bytes are not base64".to_owned())?;
    let decoded =
        AuditEntry::decode(&bytes).map_err(|_| "its bytes are not an audit entry".to_owned())?;
    if decoded.seq != e.seq {
        return Err(format!("its bytes are entry {}", decoded.seq));
    }
    if e.seq >= cp.size {
        return Err(format!("newer than the checkpoint (size {})", cp.size));
    }
    let proof = e
        .proof
        .iter()
        .map(|h| hash_of(h))
        .collect::<Option<Vec<Hash>>>()
        .ok_or_else(|| "its proof holds a hash that is not 32 bytes of base64".to_owned())?;
    if verify_inclusion(&leaf_hash(&bytes), e.seq, cp.size, &proof, &cp.root) {
        Ok(())
    } else {
        Err("its inclusion proof does not lead to the signed root".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{node_hash, root_of};
    use crate::note::NoteSigner;

    fn entry(seq: u64) -> Vec<u8> {
        AuditEntry {
            seq,
            ..AuditEntry::new(1_000 + seq as i64, "C1", "view")
        }
        .encode()
    }

    /// A pack of entries 0 and 2 of a three-entry log, signed by `signer`.
    fn pack(signer: &NoteSigner) -> EvidencePack {
        let bytes: Vec<Vec<u8>> = (0..3).map(entry).collect();
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        let root = root_of(&refs);
        let cp = Checkpoint {
            origin: "test/log".into(),
            size: 3,
            root,
        };
        let (l0, l1, l2) = (
            leaf_hash(&bytes[0]),
            leaf_hash(&bytes[1]),
            leaf_hash(&bytes[2]),
        );
        // Tree of 3: root = H(H(l0, l1), l2).
        let proofs = [vec![l1, l2], vec![node_hash(&l0, &l1)]];
        EvidencePack {
            format: PACK_FORMAT.into(),
            subject: serde_json::json!({"alert": 7}),
            created_by: "AUD1".into(),
            created_at: 5,
            checkpoint: signer.sign(&cp.to_text()).unwrap(),
            verifier_key: signer.verifier().to_text(),
            entries: [0usize, 2]
                .iter()
                .zip(proofs)
                .map(|(&i, p)| PackEntry {
                    seq: i as u64,
                    entry: B64.encode(&bytes[i]),
                    proof: p.iter().map(|h| B64.encode(h)).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_pack_holds_offline_and_any_change_is_named() {
        let signer = NoteSigner::generate("test/log").unwrap();
        let good = pack(&signer);
        let text = serde_json::to_vec(&good).unwrap();
        let report = EvidencePack::parse(&text)
            .unwrap()
            .verify(&signer.verifier())
            .unwrap();
        assert!(report.holds(), "{report:?}");
        assert_eq!(report.verified, vec![0, 2]);

        // An entry's bytes altered (another time): named, the other still holds.
        let mut bad = good.clone();
        let mut e = AuditEntry::decode(&entry(2)).unwrap();
        e.time += 1;
        bad.entries[1].entry = B64.encode(e.encode());
        let r = bad.verify(&signer.verifier()).unwrap();
        assert_eq!(r.verified, vec![0]);
        assert_eq!(r.failed[0].0, 2);
        // An entry passed off as another seq.
        let mut moved = good.clone();
        moved.entries[1].seq = 1;
        assert!(moved.verify(&signer.verifier()).unwrap().failed[0]
            .1
            .contains("its bytes are entry 2"));
        // Another key: nothing is checked.
        let other = NoteSigner::generate("test/log").unwrap();
        assert!(good.verify(&other.verifier()).is_err());
        // Not a pack.
        assert!(EvidencePack::parse(b"{\"format\": \"x\"}").is_err());
    }
}
