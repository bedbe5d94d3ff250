//! Waybills: the ingest form, the routing metadata kept in clear, and the status lifecycle.
use crate::{AccountId, CoreError, MerchantId, Millis, OutletId, Party, WaybillNo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A waybill as an order or waybill system submits it. Everything but the numbers and outlets is personal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWaybill {
    /// Waybill number.
    #[schema(value_type = String, example = "YT2026112300001")]
    pub waybill_no: WaybillNo,
    /// Merchant that shipped it.
    #[schema(value_type = String, example = "M001")]
    pub merchant: MerchantId,
    /// Outlet that picked it up.
    #[schema(value_type = String, example = "O001")]
    pub origin_outlet: OutletId,
    /// Outlet that delivers it.
    #[schema(value_type = String, example = "O042")]
    pub destination_outlet: OutletId,
    /// Sender.
    pub sender: Party,
    /// Recipient.
    pub recipient: Party,
    /// Item description (personal: it says what someone bought).
    #[serde(default)]
    pub items: String,
}

impl NewWaybill {
    /// Validates every field and normalises both phones.
    pub fn validated(mut self) -> Result<NewWaybill, CoreError> {
        self.sender = self.sender.validated("sender")?;
        self.recipient = self.recipient.validated("recipient")?;
        if self.items.chars().count() > 500 {
            return Err(CoreError::invalid("items", "is too long"));
        }
        if self.items.chars().any(char::is_control) {
            return Err(CoreError::invalid(
                "items",
                "must not contain control characters",
            ));
        }
        Ok(self)
    }
}

/// Where a waybill is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaybillStatus {
    /// Ingested, not yet picked up.
    Created,
    /// Picked up from the sender.
    PickedUp,
    /// Between hubs.
    InTransit,
    /// At an outlet.
    AtOutlet,
    /// With a courier on the way to the recipient.
    OutForDelivery,
    /// Signed for by the recipient. Terminal.
    Signed,
    /// Returned to the sender. Terminal.
    Returned,
    /// A problem registered at an outlet (a failed delivery attempt, a wrong address, damage, a refusal): the
    /// parcel waits for outlet staff to handle it, then goes back into the flow.
    Exception,
}

impl WaybillStatus {
    /// Whether the parcel is finished: signed for or returned (both terminal).
    pub fn is_final(self) -> bool {
        matches!(self, WaybillStatus::Signed | WaybillStatus::Returned)
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WaybillStatus::Created => "created",
            WaybillStatus::PickedUp => "picked_up",
            WaybillStatus::InTransit => "in_transit",
            WaybillStatus::AtOutlet => "at_outlet",
            WaybillStatus::OutForDelivery => "out_for_delivery",
            WaybillStatus::Signed => "signed",
            WaybillStatus::Returned => "returned",
            WaybillStatus::Exception => "exception",
        }
    }

    /// Parses a status name.
    pub fn parse(s: &str) -> Result<WaybillStatus, CoreError> {
        use WaybillStatus::*;
        let all = [
            Created,
            PickedUp,
            InTransit,
            AtOutlet,
            OutForDelivery,
            Signed,
            Returned,
            Exception,
        ];
        crate::error::by_name(
            all,
            WaybillStatus::as_str,
            s,
            "status",
            "is not a known status",
        )
    }

    /// The lifecycle: created → picked_up → in_transit ⇄ at_outlet → out_for_delivery → signed | returned.
    /// A failed delivery goes back to the outlet; a parcel can be returned from an outlet or a delivery round;
    /// a parcel out for delivery can be handed to another courier. A parcel in transit, at an outlet or out for
    /// delivery can be registered as an exception, which is resolved by sending it on, back to the outlet's
    /// shelf, out for delivery again, or back to the sender.
    pub fn can_become(self, to: WaybillStatus) -> bool {
        use WaybillStatus::*;
        matches!(
            (self, to),
            (Created, PickedUp)
                | (PickedUp, InTransit)
                | (PickedUp, AtOutlet)
                | (InTransit, InTransit)
                | (InTransit, AtOutlet)
                | (AtOutlet, InTransit)
                | (AtOutlet, OutForDelivery)
                | (AtOutlet, Returned)
                | (OutForDelivery, OutForDelivery)
                | (OutForDelivery, Signed)
                | (OutForDelivery, AtOutlet)
                | (OutForDelivery, Returned)
                | (InTransit, Exception)
                | (AtOutlet, Exception)
                | (OutForDelivery, Exception)
                | (Exception, InTransit)
                | (Exception, AtOutlet)
                | (Exception, OutForDelivery)
                | (Exception, Returned)
        )
    }

    /// Checks a transition, as an error naming both ends.
    pub fn check_transition(self, to: WaybillStatus) -> Result<(), CoreError> {
        if self.can_become(to) {
            Ok(())
        } else {
            Err(CoreError::Transition {
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }
}

/// The kinds of scan event a waybill receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Picked up.
    PickedUp,
    /// Left for a hub.
    InTransit,
    /// Arrived at an outlet.
    AtOutlet,
    /// Handed to a courier for delivery.
    OutForDelivery,
    /// Signed for.
    Signed,
    /// Returned to the sender.
    Returned,
    /// A problem registered (failed delivery attempt, wrong address, damage, refusal).
    Exception,
}

impl EventType {
    /// The snake_case name (the same as the status it leads to).
    pub fn as_str(self) -> &'static str {
        self.status().as_str()
    }

    /// Parses an event type name.
    pub fn parse(s: &str) -> Result<EventType, CoreError> {
        use EventType::*;
        let all = [
            PickedUp,
            InTransit,
            AtOutlet,
            OutForDelivery,
            Signed,
            Returned,
            Exception,
        ];
        crate::error::by_name(
            all,
            EventType::as_str,
            s,
            "type",
            "is not a known event type",
        )
    }

    /// The status the event moves the waybill to.
    pub fn status(self) -> WaybillStatus {
        match self {
            EventType::PickedUp => WaybillStatus::PickedUp,
            EventType::InTransit => WaybillStatus::InTransit,
            EventType::AtOutlet => WaybillStatus::AtOutlet,
            EventType::OutForDelivery => WaybillStatus::OutForDelivery,
            EventType::Signed => WaybillStatus::Signed,
            EventType::Returned => WaybillStatus::Returned,
            EventType::Exception => WaybillStatus::Exception,
        }
    }
}

/// A status event as posted to `POST /v1/waybills/{no}/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Where it happened.
    #[schema(value_type = String)]
    pub outlet: OutletId,
    /// The courier, required for `out_for_delivery`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub courier: Option<AccountId>,
    /// When the scan happened (ms since epoch), if the scanning system reports it; defaults to the time received.
    /// It may not lie in the future nor before the waybill's previous event.
    #[serde(default)]
    pub at: Option<Millis>,
}

/// The routing metadata of a waybill: kept in clear, no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WaybillMeta {
    /// Waybill number.
    #[schema(value_type = String)]
    pub waybill_no: WaybillNo,
    /// Merchant.
    #[schema(value_type = String)]
    pub merchant: MerchantId,
    /// Origin outlet.
    #[schema(value_type = String)]
    pub origin_outlet: OutletId,
    /// Destination outlet.
    #[schema(value_type = String)]
    pub destination_outlet: OutletId,
    /// Courier assigned by the latest `out_for_delivery` event.
    #[schema(value_type = Option<String>)]
    pub courier: Option<AccountId>,
    /// Current status.
    pub status: WaybillStatus,
    /// Ingest time.
    pub created_at: Millis,
    /// Time of the latest event.
    pub updated_at: Millis,
    /// When it was signed for, once it was.
    pub signed_at: Option<Millis>,
    /// Retention bucket (day number since the epoch) whose data key encrypts its personal fields.
    pub bucket: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use WaybillStatus::*;

    #[test]
    fn lifecycle_allows_the_normal_path() {
        let path = [
            Created,
            PickedUp,
            InTransit,
            AtOutlet,
            OutForDelivery,
            Signed,
        ];
        for w in path.windows(2) {
            assert!(w[0].can_become(w[1]), "{:?} -> {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn an_exception_is_registered_in_the_network_and_resolved_back_into_it() {
        for from in [InTransit, AtOutlet, OutForDelivery] {
            assert!(from.can_become(Exception), "{from:?}");
        }
        for to in [InTransit, AtOutlet, OutForDelivery, Returned] {
            assert!(Exception.can_become(to), "{to:?}");
        }
        for no in [Created, PickedUp, Signed, Returned] {
            assert!(!no.can_become(Exception), "{no:?}");
        }
        assert!(
            !Exception.can_become(Signed),
            "an exception is not delivered from the shelf"
        );
        assert_eq!(EventType::parse("exception").unwrap().status(), Exception);
        assert_eq!(WaybillStatus::parse("exception").unwrap(), Exception);
    }

    #[test]
    fn lifecycle_rejects_impossible_moves() {
        assert!(!Created.can_become(Signed));
        assert!(!Signed.can_become(OutForDelivery));
        assert!(!Returned.can_become(AtOutlet));
        assert!(!Created.can_become(OutForDelivery));
        let e = Signed.check_transition(AtOutlet).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a waybill cannot go from signed to at_outlet"
        );
    }

    #[test]
    fn ingest_rejects_unknown_fields() {
        let j = r#"{"waybill_no":"W1","merchant":"M1","origin_outlet":"O1","destination_outlet":"O2",
            "sender":{"name":"a","phone":"13800138000","address":{"province":"p","city":"c","district":"d","detail":"x"}},
            "recipient":{"name":"b","phone":"13900139000","address":{"province":"p","city":"c","district":"d","detail":"y"}},
            "items":"", "extra": 1}"#;
        assert!(serde_json::from_str::<NewWaybill>(j).is_err());
    }
}
