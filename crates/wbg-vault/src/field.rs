//! The personal fields of a waybill and the compact binary form that carries their ciphertexts.
use crate::VaultError;

/// One separately encrypted personal field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Sender's name.
    SenderName = 1,
    /// Sender's phone.
    SenderPhone = 2,
    /// Sender's province, city and district.
    SenderRegion = 3,
    /// Sender's street address.
    SenderDetail = 4,
    /// Recipient's name.
    RecipientName = 5,
    /// Recipient's phone.
    RecipientPhone = 6,
    /// Recipient's province, city and district.
    RecipientRegion = 7,
    /// Recipient's street address.
    RecipientDetail = 8,
    /// Item description.
    Items = 9,
}

/// A group of fields that shares one data key per bucket, so that each group can be kept for its own time:
/// retention destroys a group's key and leaves the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldGroup {
    /// Names and phones of both parties: who the parcel is for and how to reach them.
    Contact = 0,
    /// Street addresses of both parties.
    Address = 1,
    /// Province, city and district of both parties: coarse, useful to statistics for longer.
    Region = 2,
    /// The item description.
    Items = 3,
}

impl FieldGroup {
    /// Every group.
    pub const ALL: [FieldGroup; 4] = [
        FieldGroup::Contact,
        FieldGroup::Address,
        FieldGroup::Region,
        FieldGroup::Items,
    ];

    /// The group's name, in key ids (`day:<bucket>:<name>`), configuration and audit entries.
    pub fn name(self) -> &'static str {
        match self {
            FieldGroup::Contact => "contact",
            FieldGroup::Address => "address",
            FieldGroup::Region => "region",
            FieldGroup::Items => "items",
        }
    }

    /// Parses a group name.
    pub fn parse(s: &str) -> Option<FieldGroup> {
        FieldGroup::ALL.into_iter().find(|g| g.name() == s)
    }

    /// The id of the data key of this group in `bucket`.
    pub fn key_id(self, bucket: i64) -> String {
        format!("day:{bucket}:{}", self.name())
    }

    /// The bucket and group a data key id names, if it names one.
    pub fn of_key_id(id: &str) -> Option<(i64, FieldGroup)> {
        let (bucket, group) = id.strip_prefix("day:")?.split_once(':')?;
        Some((bucket.parse().ok()?, FieldGroup::parse(group)?))
    }

    /// The blind-index kinds built from this group's values: they go when the group goes, so the index cannot
    /// confirm a guess the data itself no longer could.
    pub fn index_kinds(self) -> &'static [crate::BlindKind] {
        use crate::BlindKind as K;
        match self {
            FieldGroup::Contact => &[
                K::Phone,
                K::Name,
                K::MaskedPhone,
                K::MaskedPhoneRegion,
                K::TrackLast4,
            ],
            FieldGroup::Address => &[K::Address],
            FieldGroup::Region => &[K::Address, K::MaskedPhoneRegion],
            FieldGroup::Items => &[],
        }
    }
}

/// The separator between province, city and district in a region field's plaintext.
const REGION_SEPARATOR: char = '\u{1f}';

/// A region field's plaintext made from its parts.
pub fn join_region(province: &str, city: &str, district: &str) -> String {
    format!("{province}{REGION_SEPARATOR}{city}{REGION_SEPARATOR}{district}")
}

/// A region field's plaintext split into province, city and district; `None` if it has fewer parts.
pub fn split_region(region: &str) -> Option<(&str, &str, &str)> {
    let mut parts = region.split(REGION_SEPARATOR);
    Some((parts.next()?, parts.next()?, parts.next()?))
}

impl Field {
    /// Every field, in storage order.
    pub const ALL: [Field; 9] = [
        Field::SenderName,
        Field::SenderPhone,
        Field::SenderRegion,
        Field::SenderDetail,
        Field::RecipientName,
        Field::RecipientPhone,
        Field::RecipientRegion,
        Field::RecipientDetail,
        Field::Items,
    ];

    /// The field's name, also bound into its ciphertext as associated data.
    pub fn name(self) -> &'static str {
        match self {
            Field::SenderName => "sender.name",
            Field::SenderPhone => "sender.phone",
            Field::SenderRegion => "sender.region",
            Field::SenderDetail => "sender.detail",
            Field::RecipientName => "recipient.name",
            Field::RecipientPhone => "recipient.phone",
            Field::RecipientRegion => "recipient.region",
            Field::RecipientDetail => "recipient.detail",
            Field::Items => "items",
        }
    }

    /// The group whose key seals this field.
    pub fn group(self) -> FieldGroup {
        match self {
            Field::SenderName
            | Field::SenderPhone
            | Field::RecipientName
            | Field::RecipientPhone => FieldGroup::Contact,
            Field::SenderDetail | Field::RecipientDetail => FieldGroup::Address,
            Field::SenderRegion | Field::RecipientRegion => FieldGroup::Region,
            Field::Items => FieldGroup::Items,
        }
    }

    fn from_id(id: u8) -> Option<Field> {
        Field::ALL.into_iter().find(|f| *f as u8 == id)
    }
}

/// The sealed personal fields of one waybill: `0x01` then, per field, `id: u8, len: u16 LE, nonce ‖ ciphertext`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedFields(pub Vec<u8>);

impl SealedFields {
    const VERSION: u8 = 1;

    pub(crate) fn with_capacity(n: usize) -> SealedFields {
        let mut v = Vec::with_capacity(n);
        v.push(Self::VERSION);
        SealedFields(v)
    }

    pub(crate) fn push(&mut self, field: Field, sealed: &[u8]) {
        self.0.push(field as u8);
        self.0
            .extend_from_slice(&(sealed.len() as u16).to_le_bytes());
        self.0.extend_from_slice(sealed);
    }

    /// Which fields `bytes` (a waybill's sealed fields) carry at all, read in one pass: a waybill a legal hold
    /// carried out of a day one of whose groups was already destroyed carries only the fields that were left.
    /// Malformed bytes carry none.
    pub fn carried(bytes: &[u8]) -> impl Fn(Field) -> bool {
        let mut mask = 0u32;
        if Self::each(bytes, |f, _| {
            mask |= 1 << f as u8;
            true
        })
        .is_err()
        {
            mask = 0;
        }
        move |f: Field| mask & (1 << f as u8) != 0
    }

    /// The sealed bytes of one field.
    pub(crate) fn get(bytes: &[u8], field: Field) -> Result<Option<&[u8]>, VaultError> {
        let mut found = None;
        Self::each(bytes, |f, body| {
            if f == field {
                found = Some(body);
            }
            found.is_none()
        })?;
        Ok(found)
    }

    /// Walks the records of `bytes` in order, handing `visit` each field and its sealed bytes until it answers
    /// `false`; an error for bytes that are not this format (as far as the walk went).
    fn each<'a>(
        bytes: &'a [u8],
        mut visit: impl FnMut(Field, &'a [u8]) -> bool,
    ) -> Result<(), VaultError> {
        let (&version, mut rest) = bytes
            .split_first()
            .ok_or_else(|| VaultError::Malformed("empty"))?;
        if version != Self::VERSION {
            return Err(VaultError::Malformed("unknown version"));
        }
        while !rest.is_empty() {
            if rest.len() < 3 {
                return Err(VaultError::Malformed("truncated header"));
            }
            let len = u16::from_le_bytes([rest[1], rest[2]]) as usize;
            let body = rest
                .get(3..3 + len)
                .ok_or_else(|| VaultError::Malformed("truncated field"))?;
            let field =
                Field::from_id(rest[0]).ok_or_else(|| VaultError::Malformed("unknown field id"))?;
            if !visit(field, body) {
                return Ok(());
            }
            rest = &rest[3 + len..];
        }
        Ok(())
    }
}
