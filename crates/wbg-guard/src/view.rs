//! What a guarded read returns: the waybill in the decided view, with only the fields that view allows.
use serde::Serialize;
use utoipa::ToSchema;
use wbg_core::{View, WaybillStatus};

/// An address as a view shows it: `detail` is absent from masked views.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MaskedAddress {
    /// Province.
    pub province: String,
    /// City.
    pub city: String,
    /// District.
    pub district: String,
    /// Street address: full view only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A party as a view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PartyView {
    /// Name (masked: `王*`).
    pub name: String,
    /// Phone (masked: `138******78` by default, see `[masking]`).
    pub phone: String,
    /// Address.
    pub address: MaskedAddress,
}

/// A scan event as a view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EventView {
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Outlet.
    pub outlet: String,
    /// Courier, for out_for_delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub courier: Option<String>,
    /// When (ms since epoch).
    pub at: i64,
}

/// A waybill in the view the guard decided. `recipient` and `sender` are absent from the routing view and
/// `items` from all but the full view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WaybillView {
    /// Waybill number.
    pub waybill_no: String,
    /// The view granted.
    pub view: View,
    /// Merchant.
    pub merchant: String,
    /// Origin outlet.
    pub origin_outlet: String,
    /// Destination outlet.
    pub destination_outlet: String,
    /// Status.
    pub status: WaybillStatus,
    /// Assigned courier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub courier: Option<String>,
    /// Status history.
    pub history: Vec<EventView>,
    /// Recipient, masked or full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<PartyView>,
    /// Sender, masked or full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<PartyView>,
    /// Item description: full view only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    /// The privacy number that reaches the recipient, when one is bound to the reading courier: their view's
    /// `recipient.phone` is this number, not the real one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privacy_number: Option<String>,
    /// Sequence number of the audit entry that records this read.
    pub audit_seq: u64,
}
