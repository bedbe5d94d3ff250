//! The C2SP `tlog-checkpoint` body: origin, tree size, root hash.
use crate::{AuditError, Hash};
use base64::{engine::general_purpose::STANDARD as B64, Engine};

/// A checkpoint: the log `origin` had `size` entries with Merkle root `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique, schema-less URL-like name (also the signing key's name).
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// RFC 6962 root hash over those entries.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a checkpoint body (extension lines after the third are allowed and ignored).
    pub fn parse(text: &str) -> Result<Checkpoint, AuditError> {
        let bad = |why: &str| AuditError::malformed("checkpoint", why.to_owned());
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("missing origin"))?;
        let size_s = lines.next().ok_or_else(|| bad("missing size"))?;
        if size_s.is_empty() || (size_s.len() > 1 && size_s.starts_with('0')) {
            return Err(bad("size must be a decimal without leading zeros"));
        }
        let size = size_s.parse().map_err(|_| bad("size is not a number"))?;
        let root_b = B64
            .decode(lines.next().ok_or_else(|| bad("missing root"))?)
            .map_err(|_| bad("root is not base64"))?;
        let root: Hash = root_b
            .try_into()
            .map_err(|_| bad("root must be 32 bytes"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_junk() {
        let c = Checkpoint {
            origin: "wbguard.local/audit/x".into(),
            size: 42,
            root: [7u8; 32],
        };
        assert_eq!(Checkpoint::parse(&c.to_text()).unwrap(), c);
        assert!(Checkpoint::parse("o\n042\nAAAA\n").is_err());
        assert!(Checkpoint::parse("o\n1\n").is_err());
        assert!(Checkpoint::parse("").is_err());
    }
}
