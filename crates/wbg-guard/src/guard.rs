//! The guard itself: how it is opened (keys, store, policy, risk engine), who is calling (authentication), and
//! the helpers every operation shares. The operations live beside it: `read` (the guarded read, top to bottom),
//! `events`, `ingest`, `label`, `admin` (accounts and keys), `audit` (checkpoints and proofs), and the rest.
use crate::credentials::Bearer;
use crate::keys::{self, KeyConfig};
use crate::{hash_token, GuardError};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use wbg_audit::note::NoteSigner;
use wbg_audit::AuditEntry;
use wbg_core::{Account, AccountId, AccountStatus, Alert, Clock, Role, SystemClock};
use wbg_policy::PolicyEngine;
use wbg_risk::{Engine, RiskConfig, RiskHook};
use wbg_store::Store;
use wbg_store_sqlite::SqliteStore;
use wbg_vault::{KeySource, KeyStoreError, Vault, WrappedKeyStore};

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

/// `[masking]`: how masked views — and the labels printed from them — mask a phone. The default follows
/// GB/T 41833-2022: the first 3 and last 2 digits shown, at least 6 hidden; a carrier may show fewer, never more.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskingConfig {
    /// Leading digits of a phone a masked view shows (0-3).
    pub phone_keep_first: usize,
    /// Trailing digits of a phone a masked view shows (0-4; with `phone_keep_first`, at most 5 in all).
    pub phone_keep_last: usize,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        MaskingConfig {
            phone_keep_first: wbg_vault::PhoneMask::STANDARD.keep_first,
            phone_keep_last: wbg_vault::PhoneMask::STANDARD.keep_last,
        }
    }
}

impl MaskingConfig {
    /// The phone mask it describes.
    pub fn phone(&self) -> wbg_vault::PhoneMask {
        wbg_vault::PhoneMask {
            keep_first: self.phone_keep_first,
            keep_last: self.phone_keep_last,
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

struct StoreKeys(Arc<dyn Store>);

impl WrappedKeyStore for StoreKeys {
    fn get_wrapped_key(&self, id: &str) -> Result<Option<Vec<u8>>, KeyStoreError> {
        Ok(self.0.get_wrapped_key(id)?)
    }
    fn put_wrapped_key_if_absent(
        &self,
        id: &str,
        wrapped: &[u8],
    ) -> Result<Vec<u8>, KeyStoreError> {
        Ok(self.0.put_wrapped_key_if_absent(id, wrapped)?)
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
    /// The policy in force; replaced whole when an approved version is loaded (see `policies.rs`).
    pub(crate) policy: arc_swap::ArcSwap<PolicyEngine>,
    /// Its store version (0: the configured file or the built-in policy).
    pub(crate) policy_version: std::sync::atomic::AtomicU64,
    pub(crate) risk: Arc<dyn RiskHook>,
    pub(crate) alert_sink: Option<Arc<dyn AlertSink>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) signer: NoteSigner,
    pub(crate) origin: String,
    /// Where the forensics access index lives (beside the data), and the index once opened.
    pub(crate) access_path: PathBuf,
    pub(crate) access: std::sync::Mutex<Option<wbg_forensics::AccessIndex>>,
    /// Canary waybills and the principal each was planted for.
    pub(crate) canaries: std::sync::RwLock<HashMap<String, String>>,
    /// The field groups of retention buckets whose data keys were shredded.
    pub(crate) shredded: std::sync::RwLock<HashSet<(i64, wbg_vault::FieldGroup)>>,
    /// Privacy numbers, once enabled.
    pub(crate) numbers: Option<crate::numbers::NumberState>,
    /// Token lifetime, enrolments, the identity provider.
    pub(crate) credentials: crate::credentials::Credentialing,
    /// Dormancy and the roster's limits.
    pub(crate) lifecycle: crate::lifecycle::LifecycleConfig,
    /// `[incidents]`.
    pub(crate) incidents: crate::breach::IncidentConfig,
    /// `[tracking]`: the public lookup's limits.
    pub(crate) tracking: crate::track::TrackingConfig,
    /// What the public lookup remembers of its sources.
    pub(crate) tracker: crate::track::Tracker,
    /// `[masking]`: how masked views and labels mask phones.
    pub(crate) masking: MaskingConfig,
    /// Last activity seen by this node, recorded by the upkeep.
    pub(crate) activity: crate::lifecycle::ActivityMap,
    /// The active legal holds, by waybill (see `hold.rs`).
    pub(crate) holds: arc_swap::ArcSwap<crate::hold::Holds>,
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
        .map_err(|e| GuardError::setup("policy", e))?;
        let store_id = store.store_id()?;
        let origin = format!("wbguard/audit/{store_id}");
        // The key directory when a rotation there may have been cut short.
        let mut rotation_dir = None;
        let (master, signer, report) = match cfg.keys {
            KeyConfig::Given { master, signer } => {
                let signer = match signer {
                    Some(s) => *s,
                    None => NoteSigner::generate(&origin)
                        .map_err(|e| GuardError::setup("audit signing key", e))?,
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
                    return Err(GuardError::setup("vault", wrong));
                };
                let v =
                    Vault::open(next, key_store).map_err(|_| GuardError::setup("vault", wrong))?;
                keys::finish_rotation(dir)?;
                v
            }
            other => other.map_err(|e| GuardError::setup("vault", e))?,
        };
        let risk: Arc<dyn RiskHook> = Arc::new(Engine::new(cfg.risk.clone()));
        let canaries = store.canaries()?.into_iter().collect();
        let shredded = store
            .shredded_keys()?
            .iter()
            .filter_map(|id| wbg_vault::FieldGroup::of_key_id(id))
            .collect();
        let guard = Guard {
            store,
            vault,
            policy: arc_swap::ArcSwap::from_pointee(policy),
            policy_version: Default::default(),
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
            credentials: Default::default(),
            lifecycle: Default::default(),
            incidents: Default::default(),
            tracking: Default::default(),
            tracker: Default::default(),
            masking: Default::default(),
            activity: Default::default(),
            holds: Default::default(),
        };
        // A policy version approved in the store is in force from the start, and so are the holds.
        guard.refresh_policy()?;
        guard.reload_holds()?;
        guard.refresh_thresholds()?;
        Ok((guard, report))
    }

    /// Takes the `[masking]` settings; a mask that hides fewer than 6 digits of a mobile number is refused.
    pub fn with_masking(mut self, cfg: &MaskingConfig) -> Result<Guard, GuardError> {
        cfg.phone()
            .check()
            .map_err(|e| GuardError::Config(format!("[masking]: {e}")))?;
        self.masking = cfg.clone();
        Ok(self)
    }

    /// Takes "now" from `clock` instead of the system clock (simulations run days of traffic in seconds).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Guard {
        self.clock = clock;
        self
    }

    /// Where a request came from, as the audit log and the risk engine keep it: the client's device id (a value
    /// the client chose, which could be anything — a phone number) replaced by its keyed pseudonym `d-<16 hex>`,
    /// the same on every node of the store; the peer's address as it is.
    pub fn request_meta(&self, device: Option<&str>, ip: Option<String>) -> RequestMeta {
        RequestMeta {
            device: device.map(|d| {
                let p = self.vault.blind().pseudonym("device", d);
                format!("d-{}", hex::encode(&p[..8]))
            }),
            ip,
        }
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

    /// Replaces the risk hook (the built-in one is the streaming [`Engine`] with the configured settings); a
    /// threshold change applied earlier (kept in the store) is put in force in it.
    pub fn with_risk(mut self, risk: Arc<dyn RiskHook>) -> Guard {
        self.risk = risk;
        if let Err(e) = self.refresh_thresholds() {
            tracing::error!(error = %e, "cannot put the stored risk thresholds in force");
        }
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
        let account = match self.bearer(token)? {
            Bearer::Token(hash) => self.store.account_by_token(&hash)?,
            Bearer::Oidc(id) => self.store.account(&id)?,
        }
        .ok_or_else(|| GuardError::Unauthenticated)?;
        self.saw(&account.id, self.clock.now());
        Ok(account)
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
            .map_err(|e| GuardError::internal_from(format!("{kind} {id} unreadable"), e))?;
        Ok((parsed, body))
    }

    pub(crate) fn deny(&self, e: AuditEntry, err: GuardError) -> GuardError {
        match self.store.append_audit(deny_entry(e, &err)) {
            Ok(_) => err,
            Err(store_err) => GuardError::internal_from("audit append failed", store_err),
        }
    }

    /// The caller and the audit entry `name` of an oversight action (access review, policy replay): permitted to
    /// admins and auditors (and operators at the machine), refused and audited for anyone else.
    pub(crate) fn overseer(
        &self,
        actor: Actor<'_>,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<(Account, AuditEntry), GuardError> {
        let who = self.actor(actor)?;
        let e = self.entry(who.id.as_str(), meta, name);
        self.require_active(&who, &e)?;
        if !self.is_overseer(actor, &who)? {
            return Err(self.deny(
                e,
                GuardError::Forbidden(format!("{name} is for auditors and admins")),
            ));
        }
        Ok((who, e))
    }

    /// Whether `who` (acting as `actor`) oversees: an operator at the machine, or an account the policy lets read
    /// the audit log or manage accounts.
    pub(crate) fn is_overseer(&self, actor: Actor<'_>, who: &Account) -> Result<bool, GuardError> {
        Ok(matches!(actor, Actor::Local(_))
            || self
                .policy()
                .may_admin(who, wbg_policy::AdminAction::ReadAudit)?
            || self
                .policy()
                .may_admin(who, wbg_policy::AdminAction::ManageAccounts)?)
    }

    pub(crate) fn require_active(&self, a: &Account, e: &AuditEntry) -> Result<(), GuardError> {
        if a.status == AccountStatus::Suspended {
            return Err(self.deny(e.clone(), GuardError::AccountSuspended));
        }
        Ok(())
    }

    /// Meters a personal-data access that is not a waybill read — a breach-notification list, an export file,
    /// a routed call — with the risk engine, as one full read of `wb` by `account` for `purpose`: repeated
    /// often it is rate-limited, scored, alerted on and contained like bulk reading. A refusal is recorded
    /// with `e` (the request's entry); `Suspend` suspends `account` first.
    pub(crate) fn meter(
        &self,
        account: &Account,
        wb: &wbg_core::WaybillMeta,
        purpose: wbg_core::Purpose,
        e: &AuditEntry,
        meta: &RequestMeta,
    ) -> Result<(), GuardError> {
        let risk = self.risk.assess(&wbg_risk::Access {
            account,
            waybill_no: wb.waybill_no.as_str(),
            waybill: Some(wb),
            purpose,
            policy_view: Some(wbg_core::View::Full),
            ticket: None,
            at: e.time,
            device: meta.device.as_deref(),
            ip: meta.ip.as_deref(),
        });
        if let Some(alert) = risk.alert {
            self.raise(account.id.as_str(), alert);
        }
        match risk.action {
            wbg_risk::RiskAction::Allow | wbg_risk::RiskAction::Cap(wbg_core::View::Full) => Ok(()),
            wbg_risk::RiskAction::Cap(_) | wbg_risk::RiskAction::Refuse => Err(self.deny(
                e.clone(),
                GuardError::RateLimited("too many personal-data reads; slow down".into()),
            )),
            wbg_risk::RiskAction::Suspend => {
                self.suspend_for_risk(&account.id, e.time, "risk hook", meta)?;
                Err(self.deny(e.clone(), GuardError::AccountSuspended))
            }
        }
    }
}
