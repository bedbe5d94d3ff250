//! The guard's operations: guarded reads, ingest, scan events, account administration, audit checkpoints.
use crate::keys::{self, KeyConfig};
use crate::{hash_token, new_token, GuardError};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use wbg_audit::merkle::{self, NodeSource};
use wbg_audit::note::{NoteSigner, NoteVerifier};
use wbg_audit::{AuditEntry, AuditError, Checkpoint, Hash};
use wbg_core::{
    Account, AccountId, AccountStatus, Alert, Clock, MerchantId, Millis, NewWaybill, OutletId,
    Role, SystemClock, WaybillMeta,
};
use wbg_policy::{AdminAction, PolicyEngine, WriteAction};
use wbg_risk::{Engine, RiskAlert, RiskConfig, RiskHook};
use wbg_store::{AlertFilter, SealedWaybill, SqliteStore, Store, StoreError};
use wbg_vault::{bucket_of, KeySource, MasterKey, Vault, WrappedKeyStore};

/// Largest batch one ingest call takes.
pub const MAX_BATCH: usize = 10_000;
/// How far in the future a scan time may lie (clock skew between scanners and the guard).
pub(crate) const MAX_CLOCK_SKEW_MS: i64 = 5 * 60_000;

/// Where the guard's parts come from.
#[derive(Debug)]
pub struct GuardConfig {
    /// Data directory of the embedded store.
    pub data: PathBuf,
    /// Keys.
    pub keys: KeyConfig,
    /// Policy directory; `None` for the built-in policy.
    pub policies: Option<PathBuf>,
    /// The risk engine's settings (detectors, score thresholds, the hard rate limit).
    pub risk: RiskConfig,
    /// Whether missing keys may be created (first run).
    pub create_keys: bool,
}

impl GuardConfig {
    /// The embedded default over `data`, with keys in the default key directory, created when missing.
    pub fn embedded(data: impl Into<PathBuf>) -> GuardConfig {
        GuardConfig {
            data: data.into(),
            keys: KeyConfig::Dir(PathBuf::new()),
            policies: None,
            risk: RiskConfig::default(),
            create_keys: true,
        }
    }
}

/// What opening the guard did, for the operator.
#[derive(Debug, Clone)]
pub struct OpenReport {
    /// Where the master key came from.
    pub master_key: KeySource,
    /// The audit signing key file, when it was created now.
    pub audit_key_created: Option<PathBuf>,
    /// The key directory in use, if any.
    pub key_dir: Option<PathBuf>,
}

/// Who is acting: an API token, or an operator at the machine (the CLI, which holds the keys anyway).
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A bearer token.
    Token(&'a str),
    /// A local operator tool, named in the audit log (e.g. `cli`).
    Local(&'a str),
}

/// Where a request came from, as far as the transport knows.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// Device id header, validated.
    pub device: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
}

/// A guarded read.
#[derive(Debug, Clone)]
pub struct ReadRequest<'a> {
    /// Waybill number, as given.
    pub waybill_no: &'a str,
    /// Purpose, as given.
    pub purpose: &'a str,
    /// Customer-service ticket, as given.
    pub ticket: Option<&'a str>,
}

/// The result of an ingest.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// Waybills stored.
    pub ingested: usize,
    /// Audit entry recording the ingest.
    pub audit_seq: u64,
}

struct StoreKeys(Arc<dyn Store>);

impl WrappedKeyStore for StoreKeys {
    fn get_wrapped_key(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.get_wrapped_key(id).map_err(|e| e.to_string())
    }
    fn put_wrapped_key_if_absent(&self, id: &str, wrapped: &[u8]) -> Result<Vec<u8>, String> {
        self.0
            .put_wrapped_key_if_absent(id, wrapped)
            .map_err(|e| e.to_string())
    }
}

struct Nodes<'a>(&'a dyn Store);

impl NodeSource for Nodes<'_> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, AuditError> {
        self.0
            .audit_node(level, index)
            .map_err(|e| AuditError::Store(e.to_string()))?
            .ok_or_else(|| AuditError::Range(format!("no node ({level}, {index})")))
    }
}

/// Told of every alert once it is stored (webhooks, pagers). Must return at once: it is called on the request
/// path, after the read has committed.
pub trait AlertSink: Send + Sync {
    /// One stored alert, with its id.
    fn alert(&self, alert: &Alert);
}

/// The guard. Cheap to share behind an `Arc`; every method is safe to call from many threads.
pub struct Guard {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) vault: Vault,
    pub(crate) policy: PolicyEngine,
    pub(crate) risk: Arc<dyn RiskHook>,
    alert_sink: Option<Arc<dyn AlertSink>>,
    pub(crate) clock: Arc<dyn Clock>,
    signer: NoteSigner,
    origin: String,
    /// Where the forensics access index lives (beside the data), and the index once opened.
    pub(crate) access_path: PathBuf,
    pub(crate) access: std::sync::Mutex<Option<wbg_forensics::AccessIndex>>,
    /// Canary waybills and the principal each was planted for.
    pub(crate) canaries: std::sync::RwLock<HashMap<String, String>>,
    /// The field groups of retention buckets whose data keys were shredded.
    pub(crate) shredded: std::sync::RwLock<HashSet<(i64, wbg_vault::FieldGroup)>>,
    /// Privacy numbers, once enabled.
    pub(crate) numbers: Option<crate::numbers::NumberState>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// A requested waybill number as it may be recorded (audit, log, error message): as given, unless it reads as
/// a phone number — people paste phone numbers into lookup fields, and those must not be stored or echoed.
pub(crate) fn recordable(requested: &str) -> Option<&str> {
    wbg_core::normalize_phone(requested)
        .is_err()
        .then_some(requested)
}

/// The audit name of a local operator (`local-<name>`); an API token is refused: `what` is done at the machine
/// that holds the store and its keys.
pub(crate) fn local_only(actor: Actor<'_>, what: &str) -> Result<String, GuardError> {
    match actor {
        Actor::Local(name) => Ok(format!("local-{name}")),
        Actor::Token(_) => Err(GuardError::Forbidden(format!(
            "{what} at the machine that holds the store and its keys, not over the API"
        ))),
    }
}

/// Adds `more` to the end of `e`'s detail.
pub(crate) fn add_detail(e: &mut AuditEntry, more: &str) {
    e.detail = Some(match e.detail.take() {
        Some(d) => format!("{d}; {more}"),
        None => more.to_owned(),
    });
}

/// `e` as the record of a refusal with `err` (counted in the denial metric).
pub(crate) fn deny_entry(mut e: AuditEntry, err: &GuardError) -> AuditEntry {
    e.decision = "deny".into();
    e.detail = Some(match &e.detail {
        Some(d) => format!("{}; {}", err.code(), d),
        None => err.code().to_owned(),
    });
    metrics::counter!("wbguard_denials_total", "code" => err.code()).increment(1);
    e
}

/// What every waybill of one ingest batch is checked against.
struct IngestCheck<'a> {
    account: &'a Account,
    /// Whether the caller presented a token (and so is subject to the policy); local operators are not.
    by_token: bool,
    now: Millis,
    bucket: i64,
}

/// Why a batch was turned away.
enum Rejection {
    /// A waybill is malformed (400).
    Invalid(String),
    /// The policy refuses one of its waybills to this account (403, audited).
    Forbidden { message: String, waybill: String },
    /// Something failed that is not the batch's fault.
    Failed(GuardError),
}

impl From<wbg_policy::PolicyError> for Rejection {
    fn from(e: wbg_policy::PolicyError) -> Self {
        Rejection::Failed(e.into())
    }
}

/// The stored hash of a presented token; a token of implausible length is unauthenticated without a lookup.
pub(crate) fn checked_token_hash(token: &str) -> Result<[u8; 32], GuardError> {
    if token.is_empty() || token.len() > 200 {
        return Err(GuardError::Unauthenticated);
    }
    Ok(hash_token(token))
}

impl Guard {
    /// Opens the guard on the embedded store described by `cfg`.
    pub fn open(cfg: GuardConfig) -> Result<(Guard, OpenReport), GuardError> {
        let store = Arc::new(SqliteStore::open(&cfg.data)?);
        Self::open_with_store(store, cfg)
    }

    /// Opens the guard over any store.
    pub fn open_with_store(
        store: Arc<dyn Store>,
        cfg: GuardConfig,
    ) -> Result<(Guard, OpenReport), GuardError> {
        let policy = match &cfg.policies {
            Some(dir) => PolicyEngine::load_dir(dir),
            None => PolicyEngine::builtin(),
        }
        .map_err(|e| GuardError::Config(format!("policy: {e}")))?;
        let store_id = store.store_id()?;
        let origin = format!("wbguard/audit/{store_id}");
        // The key directory when a rotation there may have been cut short.
        let mut rotation_dir = None;
        let (master, signer, report) = match cfg.keys {
            KeyConfig::Given { master, signer } => {
                let signer = match signer {
                    Some(s) => *s,
                    None => NoteSigner::generate(&origin)
                        .map_err(|e| GuardError::Config(e.to_string()))?,
                };
                (
                    master,
                    signer,
                    OpenReport {
                        master_key: KeySource::Supplied,
                        audit_key_created: None,
                        key_dir: None,
                    },
                )
            }
            KeyConfig::Dir(dir) => {
                let dir = if dir.as_os_str().is_empty() {
                    keys::default_key_dir(&store_id)
                } else {
                    dir
                };
                keys::check_outside(&dir, &cfg.data)?;
                let (master, source) = keys::master_key(&dir, cfg.create_keys)?;
                let (signer, created) = keys::audit_signer(&dir, &origin, cfg.create_keys)?;
                if matches!(source, KeySource::File(_)) {
                    rotation_dir = Some(dir.clone());
                }
                let report = OpenReport {
                    master_key: source,
                    audit_key_created: created.then(|| dir.join(keys::AUDIT_KEY_FILE)),
                    key_dir: Some(dir),
                };
                (master, signer, report)
            }
        };
        if signer.name() != origin {
            return Err(GuardError::Config(format!(
                "the audit signing key is named {} but this store's log is {origin}",
                signer.name()
            )));
        }
        let key_store = Arc::new(StoreKeys(store.clone()));
        let vault = match Vault::open(master, key_store.clone()) {
            Err(wrong @ wbg_vault::VaultError::WrongMasterKey { .. }) => {
                // A rotation re-wrapped the keys under the next master key and stopped before its key file
                // replaced the old one: finish it, if that is the key the store now needs.
                let pending = match &rotation_dir {
                    Some(dir) => keys::pending_rotation(dir)?.map(|next| (next, dir)),
                    None => None,
                };
                let Some((next, dir)) = pending else {
                    return Err(GuardError::Config(wrong.to_string()));
                };
                let v = Vault::open(next, key_store)
                    .map_err(|_| GuardError::Config(wrong.to_string()))?;
                keys::finish_rotation(dir)?;
                v
            }
            other => other.map_err(|e| GuardError::Config(e.to_string()))?,
        };
        let risk: Arc<dyn RiskHook> = Arc::new(Engine::new(cfg.risk.clone()));
        let canaries = store.canaries()?.into_iter().collect();
        let shredded = store
            .shredded_keys()?
            .iter()
            .filter_map(|id| wbg_vault::FieldGroup::of_key_id(id))
            .collect();
        Ok((
            Guard {
                store,
                vault,
                policy,
                risk,
                alert_sink: None,
                clock: Arc::new(SystemClock),
                signer,
                origin,
                access_path: cfg.data.join(wbg_forensics::INDEX_FILE),
                access: std::sync::Mutex::new(None),
                canaries: std::sync::RwLock::new(canaries),
                shredded: std::sync::RwLock::new(shredded),
                numbers: None,
            },
            report,
        ))
    }

    /// Takes "now" from `clock` instead of the system clock (simulations run days of traffic in seconds).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Guard {
        self.clock = clock;
        self
    }

    /// An audit entry stamped now by the guard's clock.
    pub(crate) fn entry(&self, account: &str, meta: &RequestMeta, action: &str) -> AuditEntry {
        AuditEntry {
            device: meta.device.clone(),
            ip: meta.ip.clone(),
            ..AuditEntry::new(self.clock.now(), account, action)
        }
    }

    /// Passes every stored alert on to `sink` as well.
    pub fn with_alert_sink(mut self, sink: Arc<dyn AlertSink>) -> Guard {
        self.alert_sink = Some(sink);
        self
    }

    /// Replaces the risk hook (the built-in one is the streaming [`Engine`] with the configured settings).
    pub fn with_risk(mut self, risk: Arc<dyn RiskHook>) -> Guard {
        self.risk = risk;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The blind-index functions (tokens reveal nothing; matching leaked values against the index needs them).
    /// The vault itself stays private: decryption happens only inside [`Guard::read`].
    pub fn blind_index(&self) -> &wbg_vault::BlindIndex {
        self.vault.blind()
    }

    /// The audit log's origin (also the signing key's name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Resolves an actor to an account (a local operator is an admin with no personal-data rights).
    pub(crate) fn actor(&self, actor: Actor<'_>) -> Result<Account, GuardError> {
        match actor {
            Actor::Token(t) => self.authenticate(t),
            Actor::Local(name) => Ok(Account {
                id: AccountId::parse(&format!("local-{name}"))?,
                role: Role::Admin,
                outlet: None,
                merchant: None,
                status: AccountStatus::Active,
                status_reason: None,
                created_at: 0,
                status_since: 0,
            }),
        }
    }

    /// The account a token belongs to; `Unauthenticated` for an unknown token. Suspension is checked by each
    /// operation, so that refused attempts are audited under the account's name.
    pub fn authenticate(&self, token: &str) -> Result<Account, GuardError> {
        self.store
            .account_by_token(&checked_token_hash(token)?)?
            .ok_or(GuardError::Unauthenticated)
    }

    /// The case file `kind`/`id` (an export, an incident; the caller has checked the id's form), parsed, with its
    /// body as stored for a compare-and-set.
    pub(crate) fn case_file<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<(T, String), GuardError> {
        let body = self
            .store
            .case(kind, id)?
            .ok_or_else(|| GuardError::NotFound(format!("{kind} {id}")))?;
        let parsed = serde_json::from_str(&body)
            .map_err(|e| GuardError::Internal(format!("{kind} {id} unreadable: {e}")))?;
        Ok((parsed, body))
    }

    pub(crate) fn deny(&self, e: AuditEntry, err: GuardError) -> GuardError {
        match self.store.append_audit(deny_entry(e, &err)) {
            Ok(_) => err,
            Err(store_err) => GuardError::Internal(format!("audit append failed: {store_err}")),
        }
    }

    pub(crate) fn require_active(&self, a: &Account, e: &AuditEntry) -> Result<(), GuardError> {
        if a.status == AccountStatus::Suspended {
            return Err(self.deny(e.clone(), GuardError::AccountSuspended));
        }
        Ok(())
    }

    pub(crate) fn raise(&self, account: &str, raised: RiskAlert) {
        self.record_alert(account, raised, self.clock.now());
    }

    /// Stores an alert about `account` raised at `at` — the guard's own, or a risk worker's verdict on accesses
    /// other nodes served — and passes it to the alert sink (the webhook), counted in `wbguard_alerts_total`.
    pub fn record_alert(&self, account: &str, raised: RiskAlert, at: Millis) {
        let mut alert = Alert {
            id: 0,
            at,
            account: account.to_owned(),
            kind: raised.kind,
            severity: raised.severity,
            detail: raised.detail,
        };
        match self.store.insert_alert(&alert) {
            Ok(id) => {
                alert.id = id;
                if let Some(sink) = &self.alert_sink {
                    sink.alert(&alert);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot store alert"),
        }
        metrics::counter!("wbguard_alerts_total", "kind" => alert.kind).increment(1);
    }

    /// Ingests a batch of waybills, all or none.
    pub fn ingest(
        &self,
        actor: Actor<'_>,
        batch: Vec<NewWaybill>,
        meta: &RequestMeta,
    ) -> Result<IngestReport, GuardError> {
        let account = self.actor(actor)?;
        let mut e = self.entry(account.id.as_str(), meta, "ingest");
        e.detail = Some(format!("count={}", batch.len()));
        self.require_active(&account, &e)?;
        if batch.is_empty() {
            return Err(GuardError::Invalid("the batch is empty".into()));
        }
        if batch.len() > MAX_BATCH {
            return Err(GuardError::Invalid(format!(
                "a batch holds at most {MAX_BATCH} waybills"
            )));
        }
        let now = self.clock.now();
        let check = IngestCheck {
            account: &account,
            by_token: matches!(actor, Actor::Token(_)),
            now,
            bucket: bucket_of(now),
        };
        let mut seen = HashSet::with_capacity(batch.len());
        if let Some(dup) = batch.iter().position(|w| !seen.insert(&w.waybill_no)) {
            // A waybill before the repeat may be at fault itself; the first fault in the batch is the one told.
            let fault = batch
                .iter()
                .take(dup)
                .enumerate()
                .find_map(|(i, wb)| self.check_one(&check, i, wb.clone()).err())
                .unwrap_or_else(|| {
                    Rejection::Invalid(format!(
                        "waybills[{dup}]: waybill {} appears twice in the batch",
                        batch[dup].waybill_no
                    ))
                });
            return Err(self.reject(e, fault));
        }
        drop(seen);
        if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
            e.detail = Some(format!(
                "count={} first={} last={}",
                batch.len(),
                first.waybill_no,
                last.waybill_no
            ));
        }
        let n = batch.len();
        let audit_seq = self.check_seal_and_insert(&check, batch, e)?;
        metrics::counter!("wbguard_ingested_total").increment(n as u64);
        Ok(IngestReport {
            ingested: n,
            audit_seq,
        })
    }

    /// Validates waybill `i` of a batch and checks that the account may ingest it.
    fn check_one(
        &self,
        c: &IngestCheck<'_>,
        i: usize,
        wb: NewWaybill,
    ) -> Result<(NewWaybill, WaybillMeta), Rejection> {
        let wb = wb
            .validated()
            .map_err(|err| Rejection::Invalid(format!("waybills[{i}]: {err}")))?;
        let mut m = wbg_policy::prospective(&wb, c.now);
        m.bucket = c.bucket;
        // The policy engine caches by what the ingest rules read, so a batch of one merchant's waybills is one
        // Cedar evaluation, however the policy file is written.
        if c.by_token && !self.policy.may_write(c.account, &m, &WriteAction::Ingest)? {
            return Err(Rejection::Forbidden {
                message: format!(
                    "waybills[{i}]: not permitted to ingest for merchant {}",
                    wb.merchant
                ),
                waybill: wb.waybill_no.to_string(),
            });
        }
        Ok((wb, m))
    }

    /// Turns a rejected batch into its error; a refusal by the policy is audited.
    fn reject(&self, mut e: AuditEntry, r: Rejection) -> GuardError {
        match r {
            Rejection::Invalid(message) => GuardError::Invalid(message),
            Rejection::Forbidden { message, waybill } => {
                e.waybill = Some(waybill);
                self.deny(e, GuardError::Forbidden(message))
            }
            Rejection::Failed(err) => err,
        }
    }

    /// Checks, seals and inserts a batch in one transaction, the stages overlapped: worker threads take chunks
    /// of the batch in order, validate, authorise and seal them, while the store writes the chunks already
    /// sealed. Encryption and blind indexing are per waybill and need no coordination; the insert is all or
    /// nothing, so any fault aborts the whole batch, and the fault reported is the first in batch order
    /// (every chunk before a faulty one was taken earlier and is finished before the workers are joined).
    fn check_seal_and_insert(
        &self,
        check: &IngestCheck<'_>,
        batch: Vec<NewWaybill>,
        audit: AuditEntry,
    ) -> Result<u64, GuardError> {
        const CHUNK: usize = 500;
        let process = |start: usize,
                       chunk: Vec<NewWaybill>|
         -> Result<Vec<SealedWaybill>, (usize, Rejection)> {
            chunk
                .into_iter()
                .enumerate()
                .map(|(j, wb)| {
                    let (wb, meta) = self
                        .check_one(check, start + j, wb)
                        .map_err(|r| (start + j, r))?;
                    let (fields, blind) = self
                        .vault
                        .seal(&wb, check.bucket)
                        .map_err(|err| (start + j, Rejection::Failed(err.into())))?;
                    Ok(sealed_waybill(meta, fields, blind))
                })
                .collect()
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        if threads == 1 || batch.len() < 2 * CHUNK {
            let sealed = process(0, batch).map_err(|(_, r)| self.reject(audit.clone(), r))?;
            return Ok(self.store.insert_waybills(&sealed, audit)?);
        }
        // The store is held for the whole insert below; the bucket's key must not need it.
        self.vault.ensure_bucket(check.bucket)?;
        let expected = batch.len();
        let mut rest = batch.into_iter();
        let mut chunks = Vec::with_capacity(expected.div_ceil(CHUNK));
        loop {
            let chunk: Vec<_> = rest.by_ref().take(CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push((chunks.len() * CHUNK, chunk));
        }
        let work = std::sync::Mutex::new(chunks.into_iter());
        // The fault earliest in the batch, whichever worker found it.
        let first_fault: std::sync::Mutex<Option<(usize, Rejection)>> = std::sync::Mutex::new(None);
        let mut stopped_early = false;
        let out = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(threads * 2);
            for _ in 0..threads {
                let tx = tx.clone();
                let (work, first_fault) = (&work, &first_fault);
                scope.spawn(move || loop {
                    if first_fault.lock().map_or(true, |f| f.is_some()) {
                        break;
                    }
                    let next = work.lock().ok().and_then(|mut w| w.next());
                    let Some((start, chunk)) = next else { break };
                    match process(start, chunk) {
                        Ok(sealed) => {
                            if tx.send(Ok(sealed)).is_err() {
                                break;
                            }
                        }
                        Err((at, r)) => {
                            if let Ok(mut f) = first_fault.lock() {
                                if f.as_ref().is_none_or(|(earlier, _)| at < *earlier) {
                                    *f = Some((at, r));
                                }
                            }
                            let _ = tx.send(Err(()));
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let out = self.store.insert_waybill_stream(
                &mut SealedChunks {
                    rx: &rx,
                    expected,
                    received: 0,
                    stopped_early: &mut stopped_early,
                    done: false,
                },
                audit.clone(),
            );
            // Unblocks any worker still sending after the insert stopped early.
            drop(rx);
            out
        });
        let fault = first_fault.into_inner().ok().flatten();
        match (out, fault) {
            (Ok(seq), _) => Ok(seq),
            (Err(_), Some((_, r))) => Err(self.reject(audit, r)),
            (Err(_), None) if stopped_early => Err(GuardError::Internal(
                "a sealing thread stopped early".into(),
            )),
            (Err(e), None) => Err(e.into()),
        }
    }

    /// Resolves the actor of an administrative action, checks it is active and permitted, and returns it with
    /// the audit entry to complete. Local operators are permitted by construction: they hold the keys.
    pub(crate) fn admin(
        &self,
        actor: Actor<'_>,
        action: AdminAction,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<(Account, AuditEntry), GuardError> {
        let who = self.actor(actor)?;
        let e = self.entry(who.id.as_str(), meta, name);
        self.require_active(&who, &e)?;
        if let Actor::Token(_) = actor {
            if !self.policy.may_admin(&who, action)? {
                return Err(self.deny(
                    e,
                    GuardError::Forbidden("not permitted for this role".into()),
                ));
            }
        }
        Ok((who, e))
    }

    /// Creates an account and returns it with its first token (shown once).
    pub fn create_account(
        &self,
        actor: Actor<'_>,
        id: &str,
        role: &str,
        outlet: Option<&str>,
        merchant: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(Account, String), GuardError> {
        let (_, mut e) = self.admin(actor, AdminAction::ManageAccounts, "account_create", meta)?;
        let now = self.clock.now();
        let account = Account {
            id: AccountId::parse(id)?,
            role: Role::parse(role)?,
            outlet: outlet.map(OutletId::parse).transpose()?,
            merchant: merchant.map(MerchantId::parse).transpose()?,
            status: AccountStatus::Active,
            status_reason: None,
            created_at: now,
            status_since: now,
        };
        Account::check_binding(
            account.role,
            account.outlet.as_ref(),
            account.merchant.as_ref(),
        )?;
        let token = new_token();
        e.detail = Some(format!(
            "account={} role={}{}{}",
            account.id,
            account.role.as_str(),
            account
                .outlet
                .as_ref()
                .map(|o| format!(" outlet={o}"))
                .unwrap_or_default(),
            account
                .merchant
                .as_ref()
                .map(|m| format!(" merchant={m}"))
                .unwrap_or_default()
        ));
        self.store
            .create_account(&account, &hash_token(&token), e)?;
        Ok((account, token))
    }

    /// Issues another token for an account.
    pub fn issue_token(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<String, GuardError> {
        let (_, mut e) = self.admin(actor, AdminAction::ManageAccounts, "token_issue", meta)?;
        let id = AccountId::parse(id)?;
        e.detail = Some(format!("account={id}"));
        let token = new_token();
        self.store.add_token(&id, &hash_token(&token), e)?;
        Ok(token)
    }

    /// Suspends `id` on a risk verdict about an access at `at` — the inline hook's on a read, or a risk worker's
    /// on the stream — unless the account is no longer active, or an operator changed its status after that
    /// access (a reinstatement newer than the evidence stands). `judge` names who decided, for the stored
    /// reason (`suspended by the <judge>`). Returns whether it suspended.
    pub fn suspend_for_risk(
        &self,
        id: &AccountId,
        at: Millis,
        judge: &str,
        meta: &RequestMeta,
    ) -> Result<bool, GuardError> {
        let current = self.store.account(id)?;
        if !current.is_some_and(|a| a.status == AccountStatus::Active && a.status_since <= at) {
            return Ok(false);
        }
        let mut e = self.entry("risk", meta, "account_suspend");
        e.detail = Some(format!("account={id}"));
        self.store.set_account_status(
            id,
            AccountStatus::Suspended,
            Some(&format!("suspended by the {judge}")),
            e,
        )?;
        Ok(true)
    }

    /// Suspends (`suspend = true`) or reinstates an account.
    pub fn set_status(
        &self,
        actor: Actor<'_>,
        id: &str,
        suspend: bool,
        reason: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Account, GuardError> {
        let name = if suspend {
            "account_suspend"
        } else {
            "account_reinstate"
        };
        let (_, mut e) = self.admin(actor, AdminAction::ManageAccounts, name, meta)?;
        let id = AccountId::parse(id)?;
        if let Some(r) = reason {
            if r.chars().count() > 200 || r.chars().any(char::is_control) {
                return Err(GuardError::Invalid(
                    "reason must be at most 200 printable characters".into(),
                ));
            }
        }
        e.detail = Some(format!("account={id}"));
        let status = if suspend {
            AccountStatus::Suspended
        } else {
            AccountStatus::Active
        };
        self.store.set_account_status(&id, status, reason, e)?;
        if !suspend {
            self.risk.reinstated(id.as_str());
        }
        self.store
            .account(&id)?
            .ok_or_else(|| GuardError::NotFound(format!("account {id}")))
    }

    /// Moves an outlet-bound account (courier, outlet staff, print station) to another outlet: from the next
    /// request on, the policy scopes it to the new outlet and the risk engine compares it with its new peers.
    pub fn transfer_account(
        &self,
        actor: Actor<'_>,
        id: &str,
        outlet: &str,
        meta: &RequestMeta,
    ) -> Result<Account, GuardError> {
        let (_, mut e) =
            self.admin(actor, AdminAction::ManageAccounts, "account_transfer", meta)?;
        let id = AccountId::parse(id)?;
        let outlet = OutletId::parse(outlet)?;
        let account = self
            .store
            .account(&id)?
            .ok_or_else(|| GuardError::NotFound(format!("account {id}")))?;
        if !matches!(
            account.role,
            Role::Courier | Role::OutletStaff | Role::PrintStation
        ) {
            return Err(GuardError::Invalid(format!(
                "a {} account has no outlet to change",
                account.role.as_str()
            )));
        }
        e.detail = Some(format!(
            "account={id} from={} to={outlet}",
            account.outlet.as_ref().map_or("-", |o| o.as_str())
        ));
        self.store.set_account_outlet(&id, &outlet, e)?;
        Ok(Account {
            outlet: Some(outlet),
            ..account
        })
    }

    /// Lists accounts.
    pub fn accounts(
        &self,
        actor: Actor<'_>,
        meta: &RequestMeta,
    ) -> Result<Vec<Account>, GuardError> {
        self.admin(actor, AdminAction::ManageAccounts, "account_list", meta)?;
        Ok(self.store.accounts()?)
    }

    /// Lists alerts.
    pub fn alerts(
        &self,
        actor: Actor<'_>,
        filter: &AlertFilter,
        meta: &RequestMeta,
    ) -> Result<Vec<Alert>, GuardError> {
        self.admin(actor, AdminAction::ReadAlerts, "alert_list", meta)?;
        Ok(self.store.alerts(filter)?)
    }

    /// The bytes of audit entry `seq` (auditors and admins).
    pub fn audit_entry(
        &self,
        actor: Actor<'_>,
        seq: u64,
        meta: &RequestMeta,
    ) -> Result<Vec<u8>, GuardError> {
        self.admin(actor, AdminAction::ReadAudit, "audit_read", meta)?;
        self.store
            .audit_entry(seq)?
            .ok_or_else(|| GuardError::NotFound(format!("audit entry {seq}")))
    }

    /// Signs a checkpoint of the log as it is now, unless the newest stored one already covers it; returns the
    /// signed note.
    pub fn checkpoint(&self) -> Result<String, GuardError> {
        self.signed_checkpoint().map(|(_, note)| note)
    }

    /// [`Guard::checkpoint`], with the tree size the note is for.
    pub(crate) fn signed_checkpoint(&self) -> Result<(u64, String), GuardError> {
        let (size, root) = self.store.audit_head()?;
        if let Some((s, note)) = self.store.latest_checkpoint()? {
            if s == size {
                return Ok((size, note));
            }
        }
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
        };
        let note = self
            .signer
            .sign(&cp.to_text())
            .map_err(|e| GuardError::Internal(e.to_string()))?;
        self.store.put_checkpoint(size, &note)?;
        Ok((size, note))
    }

    /// The verifier key of the audit log, in signed-note `name+hash+base64key` form.
    pub fn verifier_key(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    fn check_size(&self, size: u64) -> Result<(), GuardError> {
        let (have, _) = self.store.audit_head()?;
        if size > have {
            return Err(GuardError::Invalid(format!(
                "the log has only {have} entries"
            )));
        }
        Ok(())
    }

    /// Re-wraps every key of the store (data keys, the blind-index key, the token key) under `new`, in one audited
    /// transaction; no record is re-encrypted. Local operators only (the CLI, which holds both master keys).
    /// Afterwards this guard still holds the old key: reopen under the new one.
    pub fn rotate_master_key(
        &self,
        actor: Actor<'_>,
        new: &MasterKey,
        meta: &RequestMeta,
    ) -> Result<usize, GuardError> {
        let who = local_only(actor, "the master key is rotated")?;
        let mut e = self.entry(&who, meta, "keys_rotate");
        e.detail = Some(format!(
            "from={} to={}",
            self.vault.master_key_id(),
            new.key_id()
        ));
        let (_, n) = self.store.rewrap_keys(
            &mut |id, wrapped| {
                self.vault
                    .rewrap(id, wrapped, new)
                    .map_err(|e| e.to_string())
            },
            e,
        )?;
        Ok(n)
    }

    /// Inclusion proof of entry `seq` in the tree of `size` entries.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, GuardError> {
        self.check_size(size)?;
        merkle::inclusion_proof(&Nodes(self.store.as_ref()), seq, size)
            .map_err(|e| GuardError::Invalid(e.to_string()))
    }

    /// Consistency proof between trees of sizes `from` and `to`.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, GuardError> {
        self.check_size(to)?;
        merkle::consistency_proof(&Nodes(self.store.as_ref()), from, to)
            .map_err(|e| GuardError::Invalid(e.to_string()))
    }
}

/// The sealed chunks as the store takes them; ends with an error (so the insert rolls back) when sealing failed
/// or when fewer waybills arrived than were sent to be sealed.
struct SealedChunks<'a> {
    rx: &'a std::sync::mpsc::Receiver<Result<Vec<SealedWaybill>, ()>>,
    expected: usize,
    received: usize,
    stopped_early: &'a mut bool,
    done: bool,
}

impl Iterator for SealedChunks<'_> {
    type Item = Result<Vec<SealedWaybill>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let abort = || {
            Some(Err(StoreError::Db(
                "batch aborted before it was sealed".into(),
            )))
        };
        match self.rx.recv() {
            Ok(Ok(chunk)) => {
                self.received += chunk.len();
                Some(Ok(chunk))
            }
            Ok(Err(())) => {
                self.done = true;
                abort()
            }
            Err(_) => {
                self.done = true;
                if self.received == self.expected {
                    None
                } else {
                    *self.stopped_early = true;
                    abort()
                }
            }
        }
    }
}

/// A sealed waybill in the form the store keeps: the vault's blind tokens come recipient first (party 0), then
/// sender (party 1), `BlindIndex::PER_PARTY` each.
pub fn sealed_waybill(
    meta: WaybillMeta,
    fields: wbg_vault::SealedFields,
    blind: wbg_vault::BlindTokens,
) -> SealedWaybill {
    SealedWaybill {
        meta,
        sealed: fields.0,
        blind: blind
            .into_iter()
            .enumerate()
            .map(|(j, (kind, token))| {
                (
                    kind as u8,
                    (j / wbg_vault::BlindIndex::PER_PARTY) as u8,
                    token,
                )
            })
            .collect(),
    }
}

/// Verifies a store's audit log against its signed checkpoints with `verifier`, reading entries in chunks.
pub fn verify_store(
    store: &dyn Store,
    verifier: &NoteVerifier,
) -> Result<wbg_audit::VerifyReport, wbg_audit::VerifyFailure> {
    let fail = |e: StoreError| wbg_audit::VerifyFailure {
        seq: None,
        problem: format!("cannot read the log: {e}"),
    };
    let notes = store.checkpoints().map_err(fail)?;
    let chunks = ChunkedEntries {
        store,
        next: 0,
        buf: Vec::new().into_iter(),
        done: false,
    };
    wbg_audit::verify_log(chunks, &notes, verifier)
}

struct ChunkedEntries<'a> {
    store: &'a dyn Store,
    next: u64,
    buf: std::vec::IntoIter<wbg_audit::StoredEntry>,
    done: bool,
}

impl Iterator for ChunkedEntries<'_> {
    type Item = Result<wbg_audit::StoredEntry, AuditError>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.buf.next() {
            return Some(Ok(e));
        }
        if self.done {
            return None;
        }
        match self.store.audit_entries(self.next, 4096) {
            Ok(v) if v.is_empty() => {
                self.done = true;
                None
            }
            Ok(v) => {
                // Continue after the last row returned, whatever its seq: gaps are for the verifier to see.
                self.next = v.last().map(|e| e.seq + 1).unwrap_or(self.next);
                self.buf = v.into_iter();
                self.buf.next().map(Ok)
            }
            Err(e) => {
                self.done = true;
                Some(Err(AuditError::Store(e.to_string())))
            }
        }
    }
}
