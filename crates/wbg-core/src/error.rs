//! The one error type of the domain layer: what is invalid, never the invalid value itself.
use thiserror::Error;

/// A domain validation error. Messages name fields, never personal values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoreError {
    /// A field is missing, empty, too long or malformed.
    #[error("invalid {field}: {rule}")]
    Invalid {
        /// Path of the field, e.g. `recipient.phone`.
        field: String,
        /// The rule it broke, e.g. `must be 1-40 characters`.
        rule: &'static str,
    },
    /// A status change that the waybill lifecycle does not allow.
    #[error("a waybill cannot go from {from} to {to}")]
    Transition {
        /// The waybill's current status.
        from: &'static str,
        /// The requested status.
        to: &'static str,
    },
}

impl CoreError {
    pub(crate) fn invalid(field: impl Into<String>, rule: &'static str) -> Self {
        CoreError::Invalid {
            field: field.into(),
            rule,
        }
    }
}

/// The member of `all` whose name is `s`, or an error naming `field` (never `s`, which may be anything a client
/// typed).
pub(crate) fn by_name<T: Copy>(
    all: impl IntoIterator<Item = T>,
    name: impl Fn(T) -> &'static str,
    s: &str,
    field: &'static str,
    rule: &'static str,
) -> Result<T, CoreError> {
    all.into_iter()
        .find(|x| name(*x) == s)
        .ok_or_else(|| CoreError::invalid(field, rule))
}
