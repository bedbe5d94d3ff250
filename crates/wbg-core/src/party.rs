//! Senders and recipients: name, phone and address — every field personal data.
use crate::{normalize_phone, CoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A postal address as Chinese waybills carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Province, e.g. `浙江省`.
    pub province: String,
    /// City, e.g. `杭州市`.
    pub city: String,
    /// District, e.g. `萧山区`.
    pub district: String,
    /// Street, building and door: the part a masked view never shows.
    pub detail: String,
}

/// One party of a waybill (sender or recipient).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// Full name.
    pub name: String,
    /// Phone number; stored normalised (digits only, no country code).
    pub phone: String,
    /// Postal address.
    pub address: Address,
}

fn text(field: String, value: &str, max_chars: usize) -> Result<(), CoreError> {
    let n = value.chars().count();
    if value.trim().is_empty() {
        return Err(CoreError::invalid(field, "must not be empty"));
    }
    if n > max_chars {
        return Err(CoreError::invalid(field, "is too long"));
    }
    if value.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl Address {
    /// Checks every part is present, printable and of sane length.
    pub fn validate(&self, prefix: &str) -> Result<(), CoreError> {
        text(format!("{prefix}.province"), &self.province, 32)?;
        text(format!("{prefix}.city"), &self.city, 32)?;
        text(format!("{prefix}.district"), &self.district, 32)?;
        text(format!("{prefix}.detail"), &self.detail, 200)
    }
}

impl Party {
    /// Validates the party and returns it with its phone normalised. `role` is `sender` or `recipient`.
    pub fn validated(mut self, role: &str) -> Result<Party, CoreError> {
        text(format!("{role}.name"), &self.name, 64)?;
        self.phone = normalize_phone(&self.phone).map_err(|_| CoreError::Invalid {
            field: format!("{role}.phone"),
            rule: "must be an 11-digit mobile number or a landline with area code",
        })?;
        self.address.validate(&format!("{role}.address"))?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party() -> Party {
        Party {
            name: "王芳".into(),
            phone: "+86 138 0013 8000".into(),
            address: Address {
                province: "浙江省".into(),
                city: "杭州市".into(),
                district: "萧山区".into(),
                detail: "建设一路 66 号".into(),
            },
        }
    }

    #[test]
    fn validation_normalises_phone() {
        assert_eq!(party().validated("recipient").unwrap().phone, "13800138000");
    }

    #[test]
    fn errors_name_field_not_value() {
        let mut p = party();
        p.phone = "12".into();
        let e = p.validated("recipient").unwrap_err();
        assert!(e.to_string().contains("recipient.phone"));
        let mut p = party();
        p.name = "  ".into();
        assert!(p
            .validated("sender")
            .unwrap_err()
            .to_string()
            .contains("sender.name"));
        let mut p = party();
        p.address.detail = "a\u{0}b".into();
        assert!(p.validated("sender").is_err());
    }
}
