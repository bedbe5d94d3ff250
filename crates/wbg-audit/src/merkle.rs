//! The RFC 6962 / RFC 9162 Merkle tree: hashing, the append frontier, proofs and proof verification.
//!
//! Nodes are addressed as `(level, index)`: the node at level `l`, index `i` is the hash of the perfect subtree
//! over leaves `[i·2^l, (i+1)·2^l)`. A store keeps these as they complete; every proof is built from them.
use crate::AuditError;
use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Leaf hash: SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// Interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (`n ≥ 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The perfect subtrees of a tree of `size` leaves: the frontier that the next append extends. Appending is
/// O(log n) and yields the nodes it completes, so a store can keep every perfect subtree hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// One hash per set bit of `size`, highest level first.
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree hashes, highest level first: the nodes at [`Frontier::addresses`] of the size.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The `(level, index)` addresses of the frontier's subtrees for a tree of `size` leaves, highest first.
    pub fn addresses(size: u64) -> Vec<(u32, u64)> {
        (0..64u32)
            .rev()
            .filter(|l| size & (1 << l) != 0)
            .map(|l| (l, (size >> l) - 1))
            .collect()
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored nodes.
    pub fn load(
        size: u64,
        mut node: impl FnMut(u32, u64) -> Result<Hash, AuditError>,
    ) -> Result<Frontier, AuditError> {
        let hashes = Self::addresses(size)
            .into_iter()
            .map(|(l, i)| node(l, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Frontier { size, hashes })
    }

    /// Appends a leaf hash; returns the nodes this completes as `(level, index, hash)`, the leaf first.
    pub fn append(&mut self, leaf: Hash) -> Vec<(u32, u64, Hash)> {
        let mut done = vec![(0, self.size, leaf)];
        let mut index = self.size;
        let mut level = 0;
        let mut h = leaf;
        while index & 1 == 1 {
            let left = self.hashes.pop().expect("a set bit has a frontier hash");
            h = node_hash(&left, &h);
            index >>= 1;
            level += 1;
            done.push((level, index, h));
        }
        self.hashes.push(h);
        self.size += 1;
        done
    }

    /// The tree's root hash (RFC 6962 MTH).
    pub fn root(&self) -> Hash {
        let mut it = self.hashes.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(last) => it.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

/// Root of a list of entries, computed directly from the RFC's recursive definition (for tests and tools).
pub fn root_of(entries: &[&[u8]]) -> Hash {
    match entries.len() {
        0 => empty_root(),
        1 => leaf_hash(entries[0]),
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root_of(&entries[..k]), &root_of(&entries[k..]))
        }
    }
}

/// Read access to the stored perfect-subtree nodes, from which proofs are built.
pub trait NodeSource {
    /// The node at `(level, index)`; it must exist (the subtree it covers must be complete).
    fn node(&self, level: u32, index: u64) -> Result<Hash, AuditError>;
}

/// MTH of leaves `[start, end)`, where `start` is aligned as it is in every RFC 6962 split.
pub fn range_hash(src: &dyn NodeSource, start: u64, end: u64) -> Result<Hash, AuditError> {
    let n = end - start;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return src.node(n.trailing_zeros(), start / n);
    }
    let k = split(n);
    Ok(node_hash(
        &range_hash(src, start, start + k)?,
        &range_hash(src, start + k, end)?,
    ))
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1), leaf-side first.
pub fn inclusion_proof(
    src: &dyn NodeSource,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, AuditError> {
    if index >= size {
        return Err(AuditError::Range(format!(
            "leaf {index} is not in a tree of size {size}"
        )));
    }
    fn path(
        src: &dyn NodeSource,
        m: u64,
        start: u64,
        end: u64,
        out: &mut Vec<Hash>,
    ) -> Result<(), AuditError> {
        let n = end - start;
        if n == 1 {
            return Ok(());
        }
        let k = split(n);
        if m < start + k {
            path(src, m, start, start + k, out)?;
            out.push(range_hash(src, start + k, end)?);
        } else {
            path(src, m, start + k, end, out)?;
            out.push(range_hash(src, start, start + k)?);
        }
        Ok(())
    }
    let mut out = Vec::new();
    path(src, index, 0, size, &mut out)?;
    Ok(out)
}

/// The consistency proof between trees of sizes `old` and `new` (RFC 9162 §2.1.4.1).
pub fn consistency_proof(
    src: &dyn NodeSource,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, AuditError> {
    if old > new {
        return Err(AuditError::Range(format!(
            "size {old} is larger than {new}"
        )));
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    fn sub(
        src: &dyn NodeSource,
        m: u64,
        start: u64,
        end: u64,
        whole: bool,
        out: &mut Vec<Hash>,
    ) -> Result<(), AuditError> {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(range_hash(src, start, end)?);
            }
            return Ok(());
        }
        let k = split(n);
        if m <= k {
            sub(src, m, start, start + k, whole, out)?;
            out.push(range_hash(src, start + k, end)?);
        } else {
            sub(src, m - k, start + k, end, false, out)?;
            out.push(range_hash(src, start, start + k)?);
        }
        Ok(())
    }
    let mut out = Vec::new();
    sub(src, old, 0, new, true, &mut out)?;
    Ok(out)
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Verifies a consistency proof between `(old, old_root)` and `(new, new_root)` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 {
        return proof.is_empty();
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *new_root && s == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A node store filled by appending through the frontier, as a real store is.
    #[derive(Default)]
    struct Mem {
        nodes: HashMap<(u32, u64), Hash>,
        frontier: Frontier,
    }
    impl Mem {
        fn with(entries: &[Vec<u8>]) -> Mem {
            let mut m = Mem::default();
            for e in entries {
                for (l, i, h) in m.frontier.append(leaf_hash(e)) {
                    m.nodes.insert((l, i), h);
                }
            }
            m
        }
    }
    impl NodeSource for Mem {
        fn node(&self, level: u32, index: u64) -> Result<Hash, AuditError> {
            self.nodes
                .get(&(level, index))
                .copied()
                .ok_or_else(|| AuditError::Range("missing".into()))
        }
    }

    /// The RFC 6962 test leaves used by certificate-transparency implementations.
    fn ct_leaves() -> Vec<Vec<u8>> {
        vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            (0x60..=0x6f).collect(),
        ]
    }

    #[test]
    fn known_roots_of_the_rfc6962_test_tree() {
        let leaves = ct_leaves();
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let m1 = Mem::with(&leaves[..1]);
        assert_eq!(
            hex::encode(m1.frontier.root()),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let m8 = Mem::with(&leaves);
        assert_eq!(
            hex::encode(m8.frontier.root()),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
    }

    #[test]
    fn frontier_addresses_cover_the_tree() {
        assert_eq!(Frontier::addresses(6), vec![(2, 0), (1, 2)]);
        assert_eq!(Frontier::addresses(0), vec![]);
        let leaves: Vec<Vec<u8>> = (0..13u8).map(|i| vec![i]).collect();
        let m = Mem::with(&leaves);
        let loaded = Frontier::load(13, |l, i| m.node(l, i)).unwrap();
        assert_eq!(loaded, m.frontier);
    }

    proptest! {
        #[test]
        fn frontier_root_matches_the_recursive_definition(n in 0usize..70) {
            let leaves: Vec<Vec<u8>> = (0..n).map(|i| format!("entry {i}").into_bytes()).collect();
            let refs: Vec<&[u8]> = leaves.iter().map(|v| v.as_slice()).collect();
            prop_assert_eq!(Mem::with(&leaves).frontier.root(), root_of(&refs));
        }

        #[test]
        fn every_inclusion_proof_verifies_and_a_wrong_one_does_not(n in 1u64..70, pick in 0u64..1000) {
            let leaves: Vec<Vec<u8>> = (0..n).map(|i| format!("e{i}").into_bytes()).collect();
            let m = Mem::with(&leaves);
            let size = 1 + pick % n;
            let idx = pick % size;
            let refs: Vec<&[u8]> = leaves[..size as usize].iter().map(|v| v.as_slice()).collect();
            let root = root_of(&refs);
            let proof = inclusion_proof(&m, idx, size).unwrap();
            prop_assert!(verify_inclusion(&leaf_hash(&leaves[idx as usize]), idx, size, &proof, &root));
            prop_assert!(!verify_inclusion(&leaf_hash(b"forged"), idx, size, &proof, &root));
            if size > 1 {
                prop_assert!(!verify_inclusion(&leaf_hash(&leaves[idx as usize]), (idx + 1) % size, size, &proof, &root));
            }
        }

        #[test]
        fn every_consistency_proof_verifies_and_a_forked_one_does_not(n in 1u64..70, a in 0u64..1000) {
            let leaves: Vec<Vec<u8>> = (0..n).map(|i| format!("e{i}").into_bytes()).collect();
            let m = Mem::with(&leaves);
            let old = a % (n + 1);
            let root = |k: u64| {
                let refs: Vec<&[u8]> = leaves[..k as usize].iter().map(|v| v.as_slice()).collect();
                root_of(&refs)
            };
            let proof = consistency_proof(&m, old, n).unwrap();
            prop_assert!(verify_consistency(old, n, &root(old), &root(n), &proof));
            if old > 0 && old < n {
                // A log that rewrote history after `old` cannot prove consistency with it.
                let mut forked = leaves.clone();
                forked[(old - 1) as usize] = b"rewritten".to_vec();
                let refs: Vec<&[u8]> = forked[..old as usize].iter().map(|v| v.as_slice()).collect();
                prop_assert!(!verify_consistency(old, n, &root_of(&refs), &root(n), &proof));
            }
        }
    }
}
