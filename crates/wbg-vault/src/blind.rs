//! Blind indexes: keyed HMAC-SHA-256 of normalised phone, name and address, for exact-match lookups
//! (forensics, deduplication) without decrypting anything.
use crate::{normalize_address, normalize_name};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wbg_core::{normalize_phone, Party};
use zeroize::Zeroize;

/// What a blind index was computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlindKind {
    /// Normalised phone number.
    Phone = 1,
    /// Normalised name.
    Name = 2,
    /// Normalised full address.
    Address = 3,
}

impl BlindKind {
    fn tag(self) -> &'static [u8] {
        match self {
            BlindKind::Phone => b"phone",
            BlindKind::Name => b"name",
            BlindKind::Address => b"address",
        }
    }
}

/// The blind-index key and the functions over it. Tokens are HMAC-SHA-256 truncated to 128 bits.
///
/// The HMAC is keyed once, here: every token starts from a copy of that state instead of hashing the key's
/// inner and outer pads again, which is two of the five SHA-256 blocks a token costs. The keyed state is as
/// secret as the key; the `hmac` crate offers no zeroizing of it, so it lives, like the key, as long as the
/// vault that owns it.
#[derive(Clone)]
pub struct BlindIndex {
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndex(..)")
    }
}

impl BlindIndex {
    /// Wraps a 256-bit key.
    pub fn new(mut key: [u8; 32]) -> BlindIndex {
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes any key length");
        key.zeroize();
        BlindIndex { keyed }
    }

    /// The token of an already normalised value.
    pub fn token(&self, kind: BlindKind, normalized: &str) -> [u8; 16] {
        let mut mac = self.keyed.clone();
        mac.update(kind.tag());
        mac.update(&[0]);
        mac.update(normalized.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&mac.finalize().into_bytes()[..16]);
        out
    }

    /// Token of a phone as written anywhere (`+86 138-0013-8000`); `None` when it is not a valid number.
    pub fn phone(&self, raw: &str) -> Option<[u8; 16]> {
        normalize_phone(raw)
            .ok()
            .map(|p| self.token(BlindKind::Phone, &p))
    }

    /// Token of a name as written anywhere.
    pub fn name(&self, raw: &str) -> [u8; 16] {
        self.token(BlindKind::Name, &normalize_name(raw))
    }

    /// Token of a full address given as its parts (or as one string).
    pub fn address(&self, parts: &[&str]) -> [u8; 16] {
        self.token(BlindKind::Address, &normalize_address(parts))
    }

    /// The three tokens of a validated party (phone already normalised).
    pub fn party(&self, p: &Party) -> [(BlindKind, [u8; 16]); 3] {
        let a = &p.address;
        [
            (BlindKind::Phone, self.token(BlindKind::Phone, &p.phone)),
            (BlindKind::Name, self.name(&p.name)),
            (
                BlindKind::Address,
                self.address(&[&a.province, &a.city, &a.district, &a.detail]),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reformatted_values_share_a_token_and_kinds_do_not() {
        let bi = BlindIndex::new([3u8; 32]);
        assert_eq!(bi.phone("13800138000"), bi.phone("+86 138 0013 8000"));
        assert_eq!(bi.name("王 芳"), bi.name("王芳"));
        assert_ne!(
            bi.token(BlindKind::Name, "1"),
            bi.token(BlindKind::Phone, "1")
        );
        assert_ne!(
            bi.phone("13800138000"),
            BlindIndex::new([4u8; 32]).phone("13800138000")
        );
        assert_eq!(bi.phone("138****8000"), None);
    }
}
