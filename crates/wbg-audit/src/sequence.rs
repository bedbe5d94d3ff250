//! Sequencing: the one place an entry gets its number, its link to the previous entry and its place in the
//! Merkle tree. Storage backends only persist what [`LogTail::sequence`] returns (the way Tessera keeps its tree
//! math in one integrator and its storage drivers thin), so the security-critical steps are written once.
use crate::merkle::{leaf_hash, Frontier, Hash};
use crate::{AuditEntry, AuditError};

/// The end of a log as a sequencer needs it: the Merkle frontier (so the size) and the last leaf's hash (the
/// next entry's `prev`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTail {
    frontier: Frontier,
    last_leaf: Option<Hash>,
}

/// One entry as sequenced: what a store writes for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequenced {
    /// Its position in the log.
    pub seq: u64,
    /// Its canonical bytes (seq and prev filled in): exactly what is hashed.
    pub bytes: Vec<u8>,
    /// The Merkle nodes its append completed, level 0 (its leaf hash) first, 32 bytes each: stored with the
    /// entry, so node `(level, index)` lives in the row of entry `((index + 1) << level) - 1`.
    pub nodes: Vec<u8>,
    /// Its time (for stores that partition by day).
    pub time: i64,
    /// The entry itself, its seq and prev filled in: what `bytes` encode. A store may keep it once committed, so
    /// that its indexes need not read the bytes back and decode them ([`crate::HeldHead`]).
    pub entry: AuditEntry,
}

impl LogTail {
    /// The tail of the empty log.
    pub fn new() -> LogTail {
        LogTail::default()
    }

    /// The tail of a log of `size` entries, from its stored frontier nodes (see [`Frontier::load`]) and its last
    /// leaf hash (`None` exactly when the log is empty).
    pub fn load(
        size: u64,
        node: impl FnMut(u32, u64) -> Result<Hash, AuditError>,
        last_leaf: Option<Hash>,
    ) -> Result<LogTail, AuditError> {
        if (size == 0) != last_leaf.is_none() {
            return Err(AuditError::Store(
                "the log's size and its last leaf disagree".into(),
            ));
        }
        Ok(LogTail {
            frontier: Frontier::load(size, node)?,
            last_leaf,
        })
    }

    /// The number of entries.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The Merkle frontier (its hashes are what a store keeps to resume without reading nodes back).
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// The last entry's leaf hash.
    pub fn last_leaf(&self) -> Option<Hash> {
        self.last_leaf
    }

    /// Gives `entry` the next seq and the previous leaf as its `prev`, encodes it, and appends its leaf to the
    /// tree. The tail moves on: a store that fails to persist the result must drop this tail (reload it).
    pub fn sequence(&mut self, mut entry: AuditEntry) -> Sequenced {
        let seq = self.frontier.size();
        entry.seq = seq;
        entry.prev = self.last_leaf.map(hex::encode).unwrap_or_default();
        let bytes = entry.encode();
        let leaf = leaf_hash(&bytes);
        let nodes = self
            .frontier
            .append(leaf)
            .iter()
            .flat_map(|(_, _, h)| *h)
            .collect();
        self.last_leaf = Some(leaf);
        Sequenced {
            seq,
            bytes,
            nodes,
            time: entry.time,
            entry,
        }
    }
}

/// What stands in the log for a sequence number that was handed out but whose entry never committed (its
/// writer crashed or rolled back). A store whose writers take numbers before they commit (PostgreSQL's
/// sequence) fills such a gap with this entry once it is clearly abandoned, so that the log stays one unbroken
/// run; the writer, if it ever tries to commit after all, finds the number taken and fails, so no action goes
/// unrecorded.
pub fn void_entry(time: i64) -> AuditEntry {
    let mut e = AuditEntry::new(time, "system", "audit_void");
    e.decision = "void".to_owned();
    e.detail = Some("sequence number handed out but its entry was never committed".to_owned());
    e
}

impl LogTail {
    /// Sequences an entry that a writer queued under `seq`, which must be the next position of the log (queued
    /// entries are integrated strictly in order).
    pub fn integrate(&mut self, seq: u64, entry: AuditEntry) -> Result<Sequenced, AuditError> {
        if seq != self.size() {
            return Err(AuditError::Store(
                format!(
                    "queued entry {seq} is not the log's next position {}",
                    self.size()
                )
                .into(),
            ));
        }
        Ok(self.sequence(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::root_of;

    #[test]
    fn sequenced_entries_are_numbered_chained_and_hashed_into_the_tree() {
        let mut tail = LogTail::new();
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        for i in 0..37u64 {
            let s = tail.sequence(AuditEntry::new(1_000 + i as i64, format!("a{i}"), "view"));
            assert_eq!(s.seq, i);
            assert_eq!(&s.nodes[..32], &leaf_hash(&s.bytes)[..]);
            let e = AuditEntry::decode(&s.bytes).unwrap();
            assert_eq!(e.seq, i);
            let prev = bodies
                .last()
                .map(|b| hex::encode(leaf_hash(b)))
                .unwrap_or_default();
            assert_eq!(e.prev, prev);
            bodies.push(s.bytes);
        }
        assert_eq!(tail.size(), 37);
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        assert_eq!(tail.frontier().root(), root_of(&refs));
        assert_eq!(tail.last_leaf(), Some(leaf_hash(&bodies[36])));
    }

    #[test]
    fn queued_entries_integrate_only_in_order() {
        let mut tail = LogTail::new();
        assert!(tail.integrate(1, AuditEntry::new(1, "a", "view")).is_err());
        assert_eq!(tail.integrate(0, void_entry(1)).unwrap().seq, 0);
        let s = tail.integrate(1, AuditEntry::new(2, "a", "view")).unwrap();
        assert_eq!(s.seq, 1);
        assert!(tail.integrate(1, AuditEntry::new(3, "a", "view")).is_err());
    }

    #[test]
    fn a_size_without_its_last_leaf_is_refused() {
        assert!(LogTail::load(0, |_, _| Ok([0; 32]), Some([0; 32])).is_err());
        assert!(LogTail::load(1, |_, _| Ok([0; 32]), None).is_err());
        assert!(LogTail::load(0, |_, _| Ok([0; 32]), None).is_ok());
    }
}
