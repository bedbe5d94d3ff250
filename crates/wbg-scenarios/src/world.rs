//! The simulated world: one real guard (store, vault, policy, risk engine, audit) on a manual clock, the
//! carrier's accounts with their tokens, and a timeline of operations executed in time order.
use crate::{SimError, SimSpec};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use wbg_core::{Clock, ManualClock, Millis, NewWaybill, Purpose, Role, StatusEvent, View};
use wbg_guard::{
    Actor, Guard, GuardConfig, GuardError, KeyConfig, OpenReport, PartyView, ReadRequest,
    RequestMeta,
};
use wbg_sim::Carrier;
use wbg_vault::MasterKey;

/// One thing that happens at a moment of simulated time.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// The integration ingests a batch.
    Ingest(Vec<NewWaybill>),
    /// The integration records a scan.
    Scan { no: String, ev: StatusEvent },
    /// The operator moves an account to another outlet.
    Transfer { account: String, outlet: String },
    /// The ticketing system registers a customer-service ticket (through the integration).
    OpenTicket { id: String, waybills: Vec<String> },
    /// An account asks for a waybill.
    Read {
        account: String,
        no: String,
        purpose: Purpose,
        ticket: Option<String>,
        device: Option<String>,
        ip: Option<String>,
        /// The attack this read belongs to (an index into the run's attacks), `None` for ordinary work.
        attack: Option<usize>,
    },
}

/// An operation and when it happens.
#[derive(Debug, Clone)]
pub(crate) struct Timed {
    pub at: Millis,
    pub op: Op,
}

/// What one read came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Served(View),
    Refused,
    Suspended,
}

/// Tallies of one attack's reads (what it got in full is its haul).
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub reads: u64,
    pub masked: u64,
    pub refused: u64,
    /// The first read.
    pub first_at: Option<Millis>,
    /// When the account was first refused as suspended.
    pub suspended_at: Option<Millis>,
}

impl Tally {
    fn add(&mut self, at: Millis, outcome: Outcome) {
        self.reads += 1;
        self.first_at.get_or_insert(at);
        match outcome {
            Outcome::Served(View::Full) => {}
            Outcome::Served(_) => self.masked += 1,
            Outcome::Refused => self.refused += 1,
            Outcome::Suspended => {
                self.refused += 1;
                self.suspended_at.get_or_insert(at);
            }
        }
    }
}

/// A record an attacker was served: the recipient as the guard served it.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub waybill_no: String,
    pub recipient: PartyView,
}

/// The distinct records an attacker was served, in the order first served, each in the richest view it got
/// (the first full one, once it had one).
#[derive(Debug, Default)]
pub(crate) struct Served {
    pub records: Vec<(View, Taken)>,
    at: HashMap<String, usize>,
}

impl Served {
    /// The records it obtained in full: its haul.
    pub fn full(&self) -> impl Iterator<Item = &Taken> {
        self.records
            .iter()
            .filter(|(v, _)| *v == View::Full)
            .map(|(_, t)| t)
    }

    fn add(&mut self, view: View, taken: Taken) {
        match self.at.get(&taken.waybill_no) {
            Some(&i) => {
                if let Some(slot) = self.records.get_mut(i).filter(|(v, _)| *v < view) {
                    *slot = (view, taken);
                }
            }
            None => {
                self.at.insert(taken.waybill_no.clone(), self.records.len());
                self.records.push((view, taken));
            }
        }
    }
}

/// Creates every account of `carrier` in `guard`, as the local operator `by`, and returns each one's token.
pub fn enrol(
    guard: &Guard,
    carrier: &Carrier,
    by: &str,
) -> Result<HashMap<String, String>, GuardError> {
    let meta = RequestMeta::default();
    carrier
        .accounts
        .iter()
        .map(|a| {
            let (_, token) = guard.create_account(
                Actor::Local(by),
                &a.id,
                a.role.as_str(),
                a.outlet.as_deref(),
                a.merchant.as_deref(),
                &meta,
            )?;
            Ok((a.id.clone(), token))
        })
        .collect()
}

/// The world a scenario runs in.
pub struct World {
    pub(crate) guard: Guard,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) carrier: Carrier,
    tokens: HashMap<String, String>,
    integration: String,
    /// Attack reads, per attack.
    pub(crate) attack_tally: HashMap<usize, Tally>,
    /// Per attack: every distinct record it was served with personal data, masked or full, each in the richest
    /// form it got (what a trojan on a label printer, which never sees a full record, has to sell); those it
    /// got in full are its haul.
    pub(crate) served: HashMap<usize, Served>,
    pub(crate) ops_run: u64,
}

impl World {
    /// Creates every account of `carrier` in `guard` (which must be on `clock`) and sets the clock to `start`.
    pub fn new(
        guard: Guard,
        clock: Arc<ManualClock>,
        carrier: Carrier,
        start: Millis,
    ) -> Result<World, SimError> {
        clock.set(start);
        let tokens = enrol(&guard, &carrier, "simulator")?;
        let integration = carrier
            .account(Role::Integration, None)
            .and_then(|a| tokens.get(&a.id))
            .cloned()
            .ok_or_else(|| SimError::Setup("the carrier has no integration".into()))?;
        Ok(World {
            guard,
            clock,
            carrier,
            tokens,
            integration,
            attack_tally: HashMap::new(),
            served: HashMap::new(),
            ops_run: 0,
        })
    }

    /// Opens a guard with `cfg` on a simulated clock set to the start of `spec`, and the world of its carrier.
    pub fn open(cfg: GuardConfig, spec: &SimSpec) -> Result<(World, OpenReport), SimError> {
        let (guard, report) = Guard::open(cfg)?;
        let clock = Arc::new(ManualClock::new(spec.start));
        let guard = guard.with_clock(clock.clone());
        let world = World::new(guard, clock, crate::carrier(spec), spec.start)?;
        Ok((world, report))
    }

    /// A throw-away world in `dir`, under a master key that lives only in memory.
    pub fn scratch(dir: &Path, spec: &SimSpec) -> Result<World, SimError> {
        let cfg = GuardConfig {
            keys: KeyConfig::Given {
                master: MasterKey::generate(),
                signer: None,
            },
            ..GuardConfig::embedded(dir)
        };
        Ok(World::open(cfg, spec)?.0)
    }

    /// The world with its guard's public lookup under `cfg` (the limits a tracking run meets).
    pub fn with_tracking(self, cfg: &wbg_guard::TrackingConfig) -> Result<World, SimError> {
        Ok(World {
            guard: self.guard.with_tracking(cfg)?,
            ..self
        })
    }

    /// The guard (for inspection after a run).
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Runs `ops` in time order (ties keep their given order).
    pub(crate) fn run(&mut self, mut ops: Vec<Timed>) -> Result<(), SimError> {
        ops.sort_by_key(|t| t.at);
        for t in ops {
            self.clock.set(t.at);
            self.ops_run += 1;
            self.apply(t.at, t.op)?;
        }
        Ok(())
    }

    fn apply(&mut self, at: Millis, op: Op) -> Result<(), SimError> {
        let meta = RequestMeta::default();
        match op {
            Op::Ingest(batch) => {
                self.guard
                    .ingest(Actor::Token(&self.integration), batch, &meta)?;
            }
            Op::Transfer { account, outlet } => {
                self.guard
                    .transfer_account(Actor::Local("simulator"), &account, &outlet, &meta)?;
            }
            Op::OpenTicket { id, waybills } => {
                let reg = wbg_guard::TicketRegistration {
                    ticket: id,
                    waybills,
                    opened_at: None,
                    assignee: None,
                };
                self.guard
                    .open_ticket(Actor::Token(&self.integration), &reg, &meta)?;
            }
            Op::Scan { no, ev } => {
                // A scan the plan got wrong (a parcel already returned) is skipped, as a scanner would be told.
                match self
                    .guard
                    .record_event(Actor::Token(&self.integration), &no, ev, &meta)
                {
                    Ok(_) | Err(GuardError::Conflict(_)) | Err(GuardError::Invalid(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Op::Read {
                account,
                no,
                purpose,
                ticket,
                device,
                ip,
                attack,
            } => {
                let meta = RequestMeta { device, ip };
                let (outcome, recipient) =
                    self.read(&account, &no, purpose, ticket.as_deref(), meta)?;
                // Ordinary work is judged from the store afterwards (suspensions, alerts); attacks keep tallies.
                let Some(k) = attack else {
                    return Ok(());
                };
                self.attack_tally.entry(k).or_default().add(at, outcome);
                let (Outcome::Served(view), Some(recipient)) = (outcome, recipient) else {
                    return Ok(());
                };
                let taken = Taken {
                    waybill_no: no,
                    recipient,
                };
                self.served.entry(k).or_default().add(view, taken);
            }
        }
        Ok(())
    }

    fn read(
        &self,
        account: &str,
        no: &str,
        purpose: Purpose,
        ticket: Option<&str>,
        meta: RequestMeta,
    ) -> Result<(Outcome, Option<PartyView>), SimError> {
        let token = self
            .tokens
            .get(account)
            .ok_or_else(|| SimError::Setup(format!("no account {account}")))?;
        let req = ReadRequest {
            waybill_no: no,
            purpose: purpose.as_str(),
            ticket,
        };
        match self.guard.read(token, &req, &meta) {
            Ok(v) => Ok((Outcome::Served(v.view), v.recipient)),
            Err(GuardError::AccountSuspended) => Ok((Outcome::Suspended, None)),
            Err(
                GuardError::Forbidden(_) | GuardError::NotFound(_) | GuardError::RateLimited(_),
            ) => Ok((Outcome::Refused, None)),
            Err(e) => Err(e.into()),
        }
    }

    /// The simulated time now.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }
}
