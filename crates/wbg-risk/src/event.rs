//! Access events as they travel: an owned, serialisable copy of an [`Access`], and the transport they travel on.
//! The in-process channel is the default; a NATS JetStream transport implements the same two ends.
use crate::hook::Access;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use wbg_core::{Account, Millis, Purpose, View, WaybillMeta};

/// One access, owned. Identifiers and routing metadata only: no personal data travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEvent {
    /// Who.
    pub account: Account,
    /// The number asked for.
    pub waybill_no: String,
    /// Its metadata, if it exists.
    pub waybill: Option<WaybillMeta>,
    /// For what.
    pub purpose: Purpose,
    /// What the policy would grant.
    pub policy_view: Option<View>,
    /// Ticket given.
    pub ticket: Option<String>,
    /// When.
    pub at: Millis,
    /// Device id.
    pub device: Option<String>,
    /// Client address.
    pub ip: Option<String>,
}

impl AccessEvent {
    /// Copies a borrowed access.
    pub fn from_access(a: &Access<'_>) -> AccessEvent {
        AccessEvent {
            account: a.account.clone(),
            waybill_no: a.waybill_no.to_owned(),
            waybill: a.waybill.cloned(),
            purpose: a.purpose,
            policy_view: a.policy_view,
            ticket: a.ticket.map(str::to_owned),
            at: a.at,
            device: a.device.map(str::to_owned),
            ip: a.ip.map(str::to_owned),
        }
    }

    /// Borrows it back.
    pub fn as_access(&self) -> Access<'_> {
        Access {
            account: &self.account,
            waybill_no: &self.waybill_no,
            waybill: self.waybill.as_ref(),
            purpose: self.purpose,
            policy_view: self.policy_view,
            ticket: self.ticket.as_deref(),
            at: self.at,
            device: self.device.as_deref(),
            ip: self.ip.as_deref(),
        }
    }
}

/// Where events are published. Must never block the guard: a full transport drops and counts.
pub trait EventSink: Send + Sync {
    /// Publishes one event.
    fn publish(&self, ev: AccessEvent);
    /// Events dropped because the transport was full or gone.
    fn dropped(&self) -> u64;
}

/// The in-process transport's sending end.
#[derive(Debug)]
pub struct LocalSink {
    tx: SyncSender<AccessEvent>,
    dropped: AtomicU64,
}

impl EventSink for LocalSink {
    fn publish(&self, ev: AccessEvent) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(ev) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// An in-process channel holding at most `capacity` events in flight; the receiving end iterates until every
/// sink is dropped.
pub fn local_channel(capacity: usize) -> (LocalSink, Receiver<AccessEvent>) {
    let (tx, rx) = sync_channel(capacity);
    (
        LocalSink {
            tx,
            dropped: AtomicU64::new(0),
        },
        rx,
    )
}
