//! Validated identifiers: waybill numbers, accounts, outlets and merchants.
use crate::CoreError;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal, upper = $upper:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s`: 1 to
            #[doc = stringify!($max)]
            /// characters of ASCII letters, digits, `-` and `_`. Carrier codes (waybill numbers, outlets,
            /// merchants) are kept in upper case, so `yt1` and `YT1` are one record, never two.
            pub fn parse(s: &str) -> Result<Self, CoreError> {
                if s.is_empty() || s.len() > $max {
                    return Err(CoreError::invalid($field, concat!("must be 1-", stringify!($max), " characters")));
                }
                if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                    return Err(CoreError::invalid($field, "may hold only ASCII letters, digits, '-' and '_'"));
                }
                Ok(Self(if $upper { s.to_ascii_uppercase() } else { s.to_owned() }))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = CoreError;
            fn try_from(s: String) -> Result<Self, CoreError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = CoreError;
            fn from_str(s: &str) -> Result<Self, CoreError> {
                Self::parse(s)
            }
        }
    };
}

identifier!(
    /// A waybill (express tracking) number, e.g. `YT2026112300001`.
    WaybillNo, "waybill_no", 40, upper = true
);
identifier!(
    /// An account identifier, e.g. `C0420007`.
    /// Its case is kept (`root`), but two accounts whose ids differ only in case are refused at creation.
    AccountId, "account id", 64, upper = false
);
identifier!(
    /// An outlet (franchise station) identifier, e.g. `O042`.
    OutletId, "outlet", 32, upper = true
);
identifier!(
    /// A merchant identifier, e.g. `M001`.
    MerchantId, "merchant", 32, upper = true
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_validate_charset_and_length() {
        assert!(WaybillNo::parse("YT2026112300001").is_ok());
        assert_eq!(
            WaybillNo::parse("yt1").unwrap(),
            WaybillNo::parse("YT1").unwrap()
        );
        assert_eq!(OutletId::parse("o42").unwrap().as_str(), "O42");
        assert_eq!(AccountId::parse("root").unwrap().as_str(), "root");
        assert!(WaybillNo::parse("").is_err());
        assert!(WaybillNo::parse("YT 1").is_err());
        assert!(WaybillNo::parse(&"Y".repeat(41)).is_err());
        assert!(AccountId::parse("C0420007").is_ok());
        assert!(OutletId::parse("O0'42").is_err());
    }

    #[test]
    fn serde_goes_through_validation() {
        let ok: Result<OutletId, _> = serde_json::from_str("\"O042\"");
        assert!(ok.is_ok());
        let bad: Result<OutletId, _> = serde_json::from_str("\"O 042\"");
        assert!(bad.is_err());
    }
}
