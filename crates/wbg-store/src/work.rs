//! The work registry: customer-service tickets as the carrier's ticketing system registers them. A full view
//! claimed for customer service is granted only for a waybill on an open ticket registered for it, so an agent
//! cannot make up the work that justifies a read.
use crate::{StoreError, Ticket};
use wbg_audit::AuditEntry;
use wbg_core::{AccountId, Millis, WaybillNo};

/// A customer-service ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTicket {
    /// The ticketing system's id.
    pub id: String,
    /// When it was opened (as the ticketing system says).
    pub opened_at: Millis,
    /// When it was closed; `None` while open.
    pub closed_at: Option<Millis>,
    /// The agent it is assigned to, if the ticketing system said; then only that agent works it.
    pub assignee: Option<AccountId>,
    /// Reads made under it so far (by the agents it is for, for its waybills).
    pub reads: u32,
    /// The waybills it concerns.
    pub waybills: Vec<WaybillNo>,
}

/// Where tickets are kept. Every change is audited in the transaction that makes it.
pub trait WorkRegistry {
    /// Registers `ticket` (open, no reads yet), with `audit`; a `Conflict` if its id is registered already.
    fn open_ticket(&self, ticket: &ServiceTicket, audit: AuditEntry) -> Result<u64, StoreError>;
    /// Closes ticket `id` at `at`, with `audit`: `NotFound` if unregistered, `Conflict` if closed already.
    fn close_ticket(&self, id: &str, at: Millis, audit: AuditEntry) -> Result<u64, StoreError>;
    /// Ticket `id` as a read of waybill `no` needs it: its `waybills` hold `no` if it concerns it and nothing
    /// otherwise (a read needs no more); `None` if no such ticket is registered.
    fn ticket_for(&self, id: &str, no: &WaybillNo) -> Ticket<Option<ServiceTicket>>;
    /// Ticket `id` whole, every waybill included.
    fn ticket(&self, id: &str) -> Result<Option<ServiceTicket>, StoreError>;
    /// Counts one more read under ticket `id`; returns the new count.
    fn count_ticket_read(&self, id: &str) -> Ticket<u32>;
}
