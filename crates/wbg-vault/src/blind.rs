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
    /// The phone as the masked view shows it (`138******78`; `138****5678` before the standard mask): what a leak of masked views still carries.
    MaskedPhone = 4,
    /// The masked phone together with the region (province, city, district), the rest of a masked view's
    /// address: together they pin a recipient nearly as well as the full phone does.
    MaskedPhoneRegion = 5,
    /// A waybill's number with the last four digits of its recipient's phone: what the public lookup checks a
    /// caller's four digits against, without opening the phone.
    TrackLast4 = 6,
}

impl BlindKind {
    fn tag(self) -> &'static [u8] {
        match self {
            BlindKind::Phone => b"phone",
            BlindKind::Name => b"name",
            BlindKind::Address => b"address",
            BlindKind::MaskedPhone => b"masked_phone",
            BlindKind::TrackLast4 => b"track_last4",
            BlindKind::MaskedPhoneRegion => b"masked_phone_region",
        }
    }

    /// The kind stored as `code` (the store keeps kinds as small integers).
    pub fn from_code(code: u8) -> Option<BlindKind> {
        Some(match code {
            1 => BlindKind::Phone,
            2 => BlindKind::Name,
            3 => BlindKind::Address,
            4 => BlindKind::MaskedPhone,
            5 => BlindKind::MaskedPhoneRegion,
            6 => BlindKind::TrackLast4,
            _ => return None,
        })
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

    /// A stable pseudonym for an identifier a client chose (a device id), so what it wrote is never kept: the
    /// same value gives the same pseudonym on every node (equality is all the risk engine and an investigator
    /// need), and a guess cannot be checked without the key. Domain-separated from the blind indexes.
    pub fn pseudonym(&self, domain: &str, value: &str) -> [u8; 16] {
        let mut mac = self.keyed.clone();
        mac.update(b"pseudonym\0");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
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

    /// Token of a masked phone in the masked view's own form (`138******78`, see [`crate::mask_phone`]).
    pub fn masked_phone(&self, masked: &str) -> [u8; 16] {
        self.token(BlindKind::MaskedPhone, masked)
    }

    /// Token of a masked phone together with the region (province, city, district) as written anywhere.
    pub fn masked_phone_region(&self, masked: &str, region: &[&str]) -> [u8; 16] {
        let mut value = String::with_capacity(masked.len() + 48);
        value.push_str(masked);
        value.push('\u{1f}');
        value.push_str(&normalize_address(region));
        self.token(BlindKind::MaskedPhoneRegion, &value)
    }

    /// The position key of `item` in the list `list` (an export file's rows, sorted by it): keyed, so that no one
    /// without the key can compute a file's order or tell it from another's, and different for every list.
    pub fn list_order(&self, list: &str, item: &str) -> u64 {
        let mut mac = self.keyed.clone();
        mac.update(b"list_order");
        mac.update(&[0]);
        mac.update(list.as_bytes());
        mac.update(&[0]);
        mac.update(item.as_bytes());
        let mut out = [0u8; 8];
        out.copy_from_slice(&mac.finalize().into_bytes()[..8]);
        u64::from_be_bytes(out)
    }

    /// Token of waybill `no` with `last4`, the last four digits of its recipient's phone (the public lookup's
    /// check): `None` unless `last4` is four ASCII digits.
    pub fn track_last4(&self, no: &str, last4: &str) -> Option<[u8; 16]> {
        if last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut value = String::with_capacity(no.len() + 5);
        value.push_str(no);
        value.push('\u{1f}');
        value.push_str(last4);
        Some(self.token(BlindKind::TrackLast4, &value))
    }

    /// How many tokens [`BlindIndex::party`] gives a party.
    pub const PER_PARTY: usize = 5;

    /// The tokens of a validated party (phone already normalised): phone, name, address, masked phone, masked
    /// phone with region.
    pub fn party(&self, p: &Party) -> [(BlindKind, [u8; 16]); BlindIndex::PER_PARTY] {
        let a = &p.address;
        let masked = crate::mask_phone(&p.phone);
        [
            (BlindKind::Phone, self.token(BlindKind::Phone, &p.phone)),
            (BlindKind::Name, self.name(&p.name)),
            (
                BlindKind::Address,
                self.address(&[&a.province, &a.city, &a.district, &a.detail]),
            ),
            (BlindKind::MaskedPhone, self.masked_phone(&masked)),
            (
                BlindKind::MaskedPhoneRegion,
                self.masked_phone_region(&masked, &[&a.province, &a.city, &a.district]),
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
        assert_eq!(
            bi.masked_phone_region("138****8000", &["浙江省", "杭州市", "萧山区"]),
            bi.masked_phone_region("138****8000", &["浙江省杭州市 萧山区"])
        );
        assert_ne!(
            bi.masked_phone_region("138****8000", &["浙江省", "杭州市", "萧山区"]),
            bi.masked_phone_region("138****8000", &["浙江省", "杭州市", "余杭区"])
        );
        for k in 1..=6 {
            assert_eq!(BlindKind::from_code(k).map(|k| k as u8), Some(k));
        }
        assert_eq!(BlindKind::from_code(0), None);
    }
}
