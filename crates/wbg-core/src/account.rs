//! Accounts: who is asking, in which role, for which outlet or merchant, and whether they may ask at all.
use crate::{AccountId, CoreError, MerchantId, Millis, OutletId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The job an account does; the policy keys its rules on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Delivers parcels of one outlet.
    Courier,
    /// Works at one outlet (sorting, exceptions).
    OutletStaff,
    /// Answers customers; full data only for a ticket.
    CustomerService,
    /// A shop whose orders become waybills.
    Merchant,
    /// A label printer in a warehouse or outlet.
    PrintStation,
    /// A system feeding waybills and scan events.
    Integration,
    /// Reads the audit log; no personal data.
    Auditor,
    /// Manages accounts and policy; no personal data.
    Admin,
    /// The telephony platform that connects a courier's call to a privacy number with the real recipient; sees
    /// one phone number a call, never a waybill.
    TelephonyGateway,
    /// Manages one outlet's people: recertifies its couriers', staff's and print stations' access each quarter
    /// (as the policy allows); sees no personal data.
    OutletManager,
}

impl Role {
    /// All roles, in a fixed order.
    pub const ALL: [Role; 10] = [
        Role::Courier,
        Role::OutletStaff,
        Role::CustomerService,
        Role::Merchant,
        Role::PrintStation,
        Role::Integration,
        Role::Auditor,
        Role::Admin,
        Role::TelephonyGateway,
        Role::OutletManager,
    ];

    /// The snake_case name used in policies, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Courier => "courier",
            Role::OutletStaff => "outlet_staff",
            Role::CustomerService => "customer_service",
            Role::Merchant => "merchant",
            Role::PrintStation => "print_station",
            Role::Integration => "integration",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::TelephonyGateway => "telephony_gateway",
            Role::OutletManager => "outlet_manager",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Result<Role, CoreError> {
        crate::error::by_name(Role::ALL, Role::as_str, s, "role", "is not a known role")
    }
}

impl std::str::FromStr for Role {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Role, CoreError> {
        Role::parse(s)
    }
}

/// Whether an account may act at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// May authenticate and act.
    Active,
    /// Every request is refused with `account_suspended`.
    Suspended,
}

impl AccountStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Suspended => "suspended",
        }
    }
}

/// An account as stored (tokens are kept apart, as hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    /// Identifier.
    #[schema(value_type = String)]
    pub id: AccountId,
    /// Role.
    pub role: Role,
    /// Outlet the account belongs to, for outlet-bound roles.
    #[schema(value_type = Option<String>)]
    pub outlet: Option<OutletId>,
    /// Merchant the account belongs to, for merchants and their print stations.
    #[schema(value_type = Option<String>)]
    pub merchant: Option<MerchantId>,
    /// Active or suspended.
    pub status: AccountStatus,
    /// Why the account was suspended, when it is.
    pub status_reason: Option<String>,
    /// Creation time (ms since epoch).
    pub created_at: Millis,
    /// When the status last changed: creation, a suspension, a reinstatement (ms since epoch). A risk engine
    /// that suspended the account tells an operator's later reinstatement by it.
    #[serde(default)]
    pub status_since: Millis,
}

impl Account {
    /// Checks that the role has the binding it needs: couriers, outlet staff and outlet managers need an outlet,
    /// merchants a merchant, print stations one of the two.
    pub fn check_binding(
        role: Role,
        outlet: Option<&OutletId>,
        merchant: Option<&MerchantId>,
    ) -> Result<(), CoreError> {
        match role {
            Role::Courier | Role::OutletStaff | Role::OutletManager if outlet.is_none() => {
                Err(CoreError::invalid("outlet", "is required for this role"))
            }
            Role::Merchant if merchant.is_none() => {
                Err(CoreError::invalid("merchant", "is required for this role"))
            }
            Role::PrintStation if outlet.is_none() && merchant.is_none() => Err(
                CoreError::invalid("outlet", "or merchant is required for a print station"),
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn bindings_are_required() {
        let o = OutletId::parse("O1").unwrap();
        assert!(Account::check_binding(Role::Courier, None, None).is_err());
        assert!(Account::check_binding(Role::Courier, Some(&o), None).is_ok());
        assert!(Account::check_binding(Role::Merchant, Some(&o), None).is_err());
        assert!(Account::check_binding(Role::Auditor, None, None).is_ok());
    }
}
