//! Stored rows decoded into domain types, the same way in every backend: the columns as each backend reads
//! them (`(id, role, outlet, merchant, status, status_reason, created_at)` for an account, and so on), checked
//! back into validated types, so that a row that no build writes is `Corrupt`, never a panic.
use crate::{EventRecord, NumberBinding, StoreError};
use wbg_core::{
    Account, AccountId, AccountStatus, EventType, MerchantId, OutletId, Role, StatusEvent,
    WaybillMeta, WaybillNo, WaybillStatus,
};

/// A stored waybill number, checked again as it leaves the store.
pub fn waybill_no(no: &str) -> Result<WaybillNo, StoreError> {
    WaybillNo::parse(no)
        .map_err(|e| StoreError::corrupt_because("a stored waybill number is malformed", e))
}

/// An account's columns: id, role, outlet, merchant, status, status reason, created at, status since.
pub type AccountRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    i64,
    i64,
);

/// An account from its columns.
pub fn account(row: AccountRow) -> Result<Account, StoreError> {
    let (id, role, outlet, merchant, status, reason, created_at, status_since) = row;
    Ok(Account {
        id: AccountId::parse(&id).map_err(StoreError::corrupt)?,
        role: Role::parse(&role).map_err(StoreError::corrupt)?,
        outlet: outlet
            .map(|o| OutletId::parse(&o))
            .transpose()
            .map_err(StoreError::corrupt)?,
        merchant: merchant
            .map(|m| MerchantId::parse(&m))
            .transpose()
            .map_err(StoreError::corrupt)?,
        status: match status.as_str() {
            "active" => AccountStatus::Active,
            "suspended" => AccountStatus::Suspended,
            _ => return Err(StoreError::corrupt("unknown account status")),
        },
        status_reason: reason,
        created_at,
        status_since,
    })
}

/// A waybill's columns after its number: merchant, origin, destination, courier, status, created at, updated
/// at, signed at, bucket, sealed fields.
pub type WaybillRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
    Option<i64>,
    i64,
    Vec<u8>,
);

/// Waybill `no`'s metadata and sealed fields from its columns.
pub fn waybill(no: &WaybillNo, row: WaybillRow) -> Result<(WaybillMeta, Vec<u8>), StoreError> {
    let (
        merchant,
        origin,
        dest,
        courier,
        status,
        created_at,
        updated_at,
        signed_at,
        bucket,
        sealed,
    ) = row;
    let meta = WaybillMeta {
        waybill_no: no.clone(),
        merchant: MerchantId::parse(&merchant).map_err(StoreError::corrupt)?,
        origin_outlet: OutletId::parse(&origin).map_err(StoreError::corrupt)?,
        destination_outlet: OutletId::parse(&dest).map_err(StoreError::corrupt)?,
        courier: courier
            .map(|c| AccountId::parse(&c))
            .transpose()
            .map_err(StoreError::corrupt)?,
        status: WaybillStatus::parse(&status).map_err(StoreError::corrupt)?,
        created_at,
        updated_at,
        signed_at,
        bucket,
    };
    Ok((meta, sealed))
}

/// An event's columns: at, type, outlet, courier, actor.
pub type EventRow = (i64, String, String, Option<String>, String);

/// An event from its columns.
pub fn event(row: EventRow) -> Result<EventRecord, StoreError> {
    let (at, kind, outlet, courier, actor) = row;
    Ok(EventRecord {
        at,
        event: StatusEvent {
            kind: EventType::parse(&kind).map_err(StoreError::corrupt)?,
            outlet: OutletId::parse(&outlet).map_err(StoreError::corrupt)?,
            courier: courier
                .map(|c| AccountId::parse(&c))
                .transpose()
                .map_err(StoreError::corrupt)?,
            at: Some(at),
        },
        actor,
    })
}

/// A privacy-number binding's columns: number, waybill, courier, bound at.
pub type BindingRow = (String, String, String, i64);

/// A binding from its columns.
pub fn binding(row: BindingRow) -> Result<NumberBinding, StoreError> {
    let (number, no, courier, bound_at) = row;
    Ok(NumberBinding {
        number,
        waybill_no: WaybillNo::parse(&no)
            .map_err(|e| StoreError::corrupt_because("a bound waybill number", e))?,
        courier: AccountId::parse(&courier)
            .map_err(|e| StoreError::corrupt_because("a bound courier id", e))?,
        bound_at,
    })
}

/// A ticket's columns after its id: opened at, closed at, assignee, reads, and the waybills selected with it.
pub type TicketRow = (i64, Option<i64>, Option<String>, i64, Vec<String>);

/// Ticket `id` from its columns.
pub fn ticket(id: &str, row: TicketRow) -> Result<crate::ServiceTicket, StoreError> {
    let (opened_at, closed_at, assignee, reads, nos) = row;
    Ok(crate::ServiceTicket {
        id: id.to_owned(),
        opened_at,
        closed_at,
        assignee: assignee
            .map(|a| {
                AccountId::parse(&a)
                    .map_err(|e| StoreError::corrupt_because("a ticket's assignee is malformed", e))
            })
            .transpose()?,
        reads: u32::try_from(reads)
            .map_err(|e| StoreError::corrupt_because("a ticket's read count is out of range", e))?,
        waybills: nos
            .iter()
            .map(|n| {
                WaybillNo::parse(n).map_err(|e| {
                    StoreError::corrupt_because("a ticket's waybill number is malformed", e)
                })
            })
            .collect::<Result<_, _>>()?,
    })
}
