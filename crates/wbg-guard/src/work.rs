//! The work registry as the guard serves it: customer-service tickets registered and closed by the carrier's
//! ticketing system (through an `integration` account, policy action `register_work`), so that a full view
//! claimed for customer service is granted only for work that exists (see `cs-full-with-registered-ticket`).
use crate::guard::{deny_entry, Actor, RequestMeta, MAX_CLOCK_SKEW_MS};
use crate::read::valid_ticket;
use crate::{Guard, GuardError};
use wbg_core::{AccountId, Role, WaybillNo};
use wbg_policy::AdminAction;
use wbg_store::ServiceTicket;

/// Most waybills one ticket concerns.
pub const MAX_TICKET_WAYBILLS: usize = 100;

/// A ticket as the ticketing system registers it.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketRegistration {
    /// The ticketing system's id: a letter, then up to 39 letters, digits, `-` or `_`.
    pub ticket: String,
    /// The waybills it concerns (1-100, each one that exists).
    pub waybills: Vec<String>,
    /// When it was opened (ms since the epoch; default now; not in the future).
    #[serde(default)]
    pub opened_at: Option<i64>,
    /// The customer-service agent it is assigned to; then no other agent works it.
    #[serde(default)]
    pub assignee: Option<String>,
}

/// A registered ticket.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TicketRecord {
    /// Its id.
    pub ticket: String,
    /// The waybills it concerns.
    pub waybills: Vec<String>,
    /// When it was opened (ms since the epoch).
    pub opened_at: i64,
    /// When it was closed; absent while open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<i64>,
    /// The agent it is assigned to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Reads made under it so far.
    pub reads: u32,
}

impl From<ServiceTicket> for TicketRecord {
    fn from(t: ServiceTicket) -> Self {
        TicketRecord {
            ticket: t.id,
            waybills: t.waybills.iter().map(|n| n.to_string()).collect(),
            opened_at: t.opened_at,
            closed_at: t.closed_at,
            assignee: t.assignee.map(|a| a.to_string()),
            reads: t.reads,
        }
    }
}

impl Guard {
    /// Registers a ticket, open. Only the carrier's systems may (`register_work`); a ticket whose waybills or
    /// assignee do not exist is refused, and an id registered before is a conflict.
    pub fn open_ticket(
        &self,
        actor: Actor<'_>,
        reg: &TicketRegistration,
        meta: &RequestMeta,
    ) -> Result<TicketRecord, GuardError> {
        let (_, mut e) = self.admin(actor, AdminAction::RegisterWork, "ticket_open", meta)?;
        let invalid = |m: String| Err(GuardError::Invalid(m));
        if !valid_ticket(&reg.ticket) {
            return invalid(
                "ticket must be 1-40 letters, digits, '-' or '_', starting with a letter, and hold no phone number".into(),
            );
        }
        if reg.waybills.is_empty() || reg.waybills.len() > MAX_TICKET_WAYBILLS {
            return invalid(format!(
                "a ticket concerns 1 to {MAX_TICKET_WAYBILLS} waybills"
            ));
        }
        let waybills = reg
            .waybills
            .iter()
            .map(|n| WaybillNo::parse(n))
            .collect::<Result<Vec<_>, _>>()?;
        let now = self.clock.now();
        let opened_at = reg.opened_at.unwrap_or(now);
        if opened_at < 0 || opened_at > now.saturating_add(MAX_CLOCK_SKEW_MS) {
            return invalid("opened_at must be a time in the past (ms since the epoch)".into());
        }
        let assignee = match &reg.assignee {
            None => None,
            Some(a) => {
                let id = AccountId::parse(a)?;
                match self.store.account(&id)? {
                    Some(acc) if acc.role == Role::CustomerService => Some(id),
                    _ => {
                        return invalid(format!("assignee {id} is not a customer-service account"))
                    }
                }
            }
        };
        let metas = self.store.waybill_metas(&waybills).wait()?;
        if let Some((no, _)) = waybills.iter().zip(&metas).find(|(_, m)| m.is_none()) {
            return Err(GuardError::NotFound(format!("waybill {no}")));
        }
        e.detail = Some(format!(
            "ticket={} waybills={}{}",
            reg.ticket,
            waybills.len(),
            assignee
                .as_ref()
                .map(|a| format!(" assignee={a}"))
                .unwrap_or_default()
        ));
        let ticket = ServiceTicket {
            id: reg.ticket.clone(),
            opened_at,
            closed_at: None,
            assignee,
            reads: 0,
            waybills,
        };
        if let Err(err) = self.store.open_ticket(&ticket, e.clone()) {
            let err = GuardError::from(err);
            if matches!(err, GuardError::Conflict(_)) {
                // A refused registration is still a record of someone trying it.
                self.store.append_audit(deny_entry(e, &err))?;
            }
            return Err(err);
        }
        Ok(ticket.into())
    }

    /// Closes a ticket: from now on it widens no read.
    pub fn close_ticket(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<TicketRecord, GuardError> {
        let (_, mut e) = self.admin(actor, AdminAction::RegisterWork, "ticket_close", meta)?;
        if !valid_ticket(id) {
            return Err(GuardError::NotFound("no such ticket".into()));
        }
        e.detail = Some(format!("ticket={id}"));
        let at = self.clock.now();
        match self.store.close_ticket(id, at, e.clone()) {
            Ok(_) => {}
            Err(wbg_store::StoreError::NotFound(_)) => {
                return Err(GuardError::NotFound(format!("ticket {id}")))
            }
            Err(err) => {
                let err = GuardError::from(err);
                if matches!(err, GuardError::Conflict(_)) {
                    // A refused change is still a record of someone trying it.
                    self.store.append_audit(deny_entry(e, &err))?;
                }
                return Err(err);
            }
        }
        self.ticket_record(id)
    }

    /// A registered ticket, for the systems that register them and for auditors.
    pub fn ticket(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<TicketRecord, GuardError> {
        // Auditors read tickets as part of the log they audit; the ticketing system reads what it registered.
        let action = match self.actor(actor)?.role {
            Role::Auditor => AdminAction::ReadAudit,
            _ => AdminAction::RegisterWork,
        };
        self.admin(actor, action, "ticket_read", meta)?;
        if !valid_ticket(id) {
            return Err(GuardError::NotFound("no such ticket".into()));
        }
        self.ticket_record(id)
    }

    fn ticket_record(&self, id: &str) -> Result<TicketRecord, GuardError> {
        self.store
            .ticket(id)?
            .map(TicketRecord::from)
            .ok_or_else(|| GuardError::NotFound(format!("ticket {id}")))
    }
}
