//! Purposes, views and decisions: what a read is for, how much it may show, and what the guard decided.
use crate::CoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why personal data is being read. Every read names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// A courier delivering the parcel.
    Delivery,
    /// Outlet staff handling a delivery exception.
    ExceptionHandling,
    /// Customer service answering a ticket.
    CustomerService,
    /// Printing the parcel's label.
    Label,
    /// Notifying customers affected by a breach.
    BreachNotification,
    /// Producing records kept under a legal hold, by the hold's custodian.
    LegalHold,
}

impl Purpose {
    /// All purposes.
    pub const ALL: [Purpose; 6] = [
        Purpose::Delivery,
        Purpose::ExceptionHandling,
        Purpose::CustomerService,
        Purpose::Label,
        Purpose::BreachNotification,
        Purpose::LegalHold,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Delivery => "delivery",
            Purpose::ExceptionHandling => "exception_handling",
            Purpose::CustomerService => "customer_service",
            Purpose::Label => "label",
            Purpose::BreachNotification => "breach_notification",
            Purpose::LegalHold => "legal_hold",
        }
    }

    /// Parses a purpose name.
    pub fn parse(s: &str) -> Result<Purpose, CoreError> {
        crate::error::by_name(
            Purpose::ALL,
            Purpose::as_str,
            s,
            "purpose",
            "is not a known purpose",
        )
    }

    /// Whether this purpose can need the full fields at all. Labels never do.
    pub fn may_need_full(self) -> bool {
        !matches!(self, Purpose::Label)
    }
}

/// How much of a waybill a response shows. Ordered: `Routing < Masked < Full`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Routing data only: numbers, outlets, status. No personal data.
    Routing,
    /// Masked personal data: `138******78`, `王*`, address to the district.
    Masked,
    /// Every field in clear.
    Full,
}

impl View {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            View::Routing => "routing",
            View::Masked => "masked",
            View::Full => "full",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// The policy permits no view of this waybill to this account for this purpose.
    NotPermitted,
    /// The account is suspended.
    AccountSuspended,
    /// The risk hook refused the request (rate limit, risk score).
    RiskRefused,
}

impl DenyReason {
    /// The snake_case name, also the API error code.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::NotPermitted => "forbidden",
            DenyReason::AccountSuspended => "account_suspended",
            DenyReason::RiskRefused => "rate_limited",
        }
    }
}

/// What the guard decided for one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    /// Show the waybill in this view.
    Allow {
        /// The view granted.
        view: View,
    },
    /// Refuse.
    Deny {
        /// Why.
        reason: DenyReason,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_ordered() {
        assert!(View::Routing < View::Masked && View::Masked < View::Full);
    }

    #[test]
    fn purposes_round_trip() {
        for p in Purpose::ALL {
            assert_eq!(Purpose::parse(p.as_str()), Ok(p));
        }
        assert!(Purpose::parse("curiosity").is_err());
        assert!(!Purpose::Label.may_need_full());
    }
}
