//! Authorization on Cedar: may this account see this waybill, in which view, for this purpose, now?
//!
//! The rules are a readable Cedar policy file with a schema (`policies/wbguard.cedar` and
//! `policies/wbguard.cedarschema` in the repository; the same files are built in as the default). Loading
//! validates the policies against the schema in strict mode; any error stops start-up with a message naming the
//! file and line.
//!
//! ```
//! use wbg_policy::PolicyEngine;
//! let engine = PolicyEngine::builtin().expect("the built-in policy validates");
//! assert!(engine.policy_ids().any(|id| id == "courier-full-own-delivery"));
//! ```
#![deny(missing_docs)]

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Policy, PolicySet, PrincipalConstraint, Request, RestrictedExpression, Schema,
    ValidationMode, Validator,
};
pub use reach::Reach;
use reads::Reads;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

mod reach;
mod reads;
use thiserror::Error;
use wbg_core::{Account, OutletId, Purpose, Role, View, WaybillMeta, WaybillStatus};

/// The built-in policy, as shipped in `policies/wbguard.cedar`.
pub const BUILTIN_POLICY: &str = include_str!("../../../policies/wbguard.cedar");
/// The built-in schema, as shipped in `policies/wbguard.cedarschema`.
pub const BUILTIN_SCHEMA: &str = include_str!("../../../policies/wbguard.cedarschema");

/// Why a policy could not be loaded or evaluated.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// A policy or schema file has an error; `location` is `file:line`.
    #[error("{location}: {message}")]
    Invalid {
        /// `file:line` of the first error.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A policy directory does not hold one schema and one policy file.
    #[error("cannot read policies: {0}")]
    Io(String),
    /// A policy directory or file could not be read (the file system's error kept as the source).
    #[error("cannot read policies: {path}: {source}")]
    Read {
        /// The directory or file.
        path: String,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
    /// A request could not be built (should not happen with validated inputs); the error that stopped it (Cedar's,
    /// an id's) is kept as the source.
    #[error("policy request: {0}")]
    Request(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Actions other than reading a waybill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// Create, list, suspend and reinstate accounts; issue tokens.
    ManageAccounts,
    /// Read audit entries, checkpoints and proofs.
    ReadAudit,
    /// Read risk alerts.
    ReadAlerts,
    /// Investigate a leak: attribute a leaked sample to the principals that could have produced it.
    Investigate,
    /// Approve another account's bulk export.
    ApproveExport,
    /// Connect calls to privacy numbers (the telephony gateway).
    RouteCalls,
    /// Register and close customer-service tickets in the work registry (the carrier's ticketing system).
    RegisterWork,
}

/// What is being written to a waybill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteAction<'a> {
    /// Ingesting a new waybill.
    Ingest,
    /// Recording a scan event of this type at this outlet.
    RecordEvent {
        /// Event type name, e.g. `out_for_delivery`.
        event_type: &'a str,
        /// Outlet where the scan happened.
        outlet: &'a OutletId,
    },
}

/// What the work registry says of the customer-service ticket a read names, as the policy sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TicketFacts {
    /// The ticket is registered, still open, and concerns the waybill read.
    pub open_for_waybill: bool,
    /// The ticket is assigned to another agent.
    pub assigned_elsewhere: bool,
    /// Reads already made under the ticket by the agents it is for (this one not included).
    pub reads: u32,
}

/// The context of a read.
#[derive(Debug, Clone, Copy)]
pub struct ReadContext<'a> {
    /// The declared purpose.
    pub purpose: Purpose,
    /// Now, in seconds since the epoch.
    pub now_secs: i64,
    /// Whether the request names a customer-service ticket.
    pub has_ticket: bool,
    /// Whether the waybill is among those an open breach incident found exposed (the guard checks this before
    /// it says so; only the notification list sets it).
    pub in_incident: bool,
    /// Whether the waybill is under a legal hold whose custodian is the reader (the guard checks the holds
    /// before it says so; a held waybill is refused to everyone else before the policy is asked).
    pub in_hold: bool,
    /// The registered ticket the request names (all false and zero when it names none, or one nobody
    /// registered).
    pub ticket: TicketFacts,
    /// Where the waybill's open exception was registered (the outlet of the `exception` scan that put it in
    /// that status); `None` unless it is in `exception` status.
    pub exception_outlet: Option<&'a OutletId>,
}

/// The outcome of a read decision: the richest view permitted (none: deny) and the policies that permitted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewVerdict {
    /// The view granted, or `None` for a denial.
    pub view: Option<View>,
    /// `@id`s of the policies that decided it.
    pub policies: Vec<String>,
}

/// Decisions a proposal's replay made already, for each of the two policies
/// ([`PolicyEngine::decide_view_pair`]). Bounded: a side starts over when full.
#[derive(Default)]
pub struct ReplayMemo {
    before: Memo,
    after: Memo,
}

/// One policy's decisions in a replay: by everything its rules can read of a read (`exact`), and — for rules
/// that read the time — by everything but the time (`timeless`), holding the decision if it was found not to
/// depend on the time at all (partial evaluation with the time unknown left no residual), `None` if it does.
/// Keys are kept as 128-bit digests (two SipHashes under keys drawn for this memo, so nobody can aim a collision
/// at them) and verdicts once each, so a large replay's memo stays small; once a map is full it keeps what it has
/// (a working set that outgrows it is decided afresh).
#[derive(Default)]
struct Memo {
    hashers: (std::hash::RandomState, std::hash::RandomState),
    verdicts: Vec<ViewVerdict>,
    exact: HashMap<[u64; 2], u32>,
    timeless: HashMap<[u64; 2], Option<u32>>,
}

impl Memo {
    /// Decisions kept per map: some 20 MB, for each side of each replay thread.
    const MAX: usize = 500_000;

    fn digest(&self, key: &str) -> [u64; 2] {
        use std::hash::BuildHasher;
        [self.hashers.0.hash_one(key), self.hashers.1.hash_one(key)]
    }

    fn verdict(&self, i: u32) -> Option<ViewVerdict> {
        self.verdicts.get(i as usize).cloned()
    }

    fn intern(&mut self, v: &ViewVerdict) -> u32 {
        match self.verdicts.iter().position(|k| k == v) {
            Some(i) => i as u32,
            None => {
                self.verdicts.push(v.clone());
                (self.verdicts.len() - 1) as u32
            }
        }
    }

    fn exact(&self, key: &[u64; 2]) -> Option<ViewVerdict> {
        self.exact.get(key).and_then(|&i| self.verdict(i))
    }

    /// `None`: not decided yet; `Some(None)`: depends on the time; `Some(Some(v))`: `v` at any time.
    fn timeless(&self, key: &[u64; 2]) -> Option<Option<ViewVerdict>> {
        self.timeless
            .get(key)
            .map(|v| v.and_then(|i| self.verdict(i)))
    }

    fn put_exact(&mut self, key: [u64; 2], v: &ViewVerdict) {
        if self.exact.len() < Self::MAX {
            let i = self.intern(v);
            self.exact.insert(key, i);
        }
    }

    fn put_timeless(&mut self, key: [u64; 2], v: Option<&ViewVerdict>) {
        if self.timeless.len() < Self::MAX {
            let i = v.map(|v| self.intern(v));
            self.timeless.insert(key, i);
        }
    }
}

#[derive(PartialEq, Eq)]
struct Names {
    account: EntityTypeName,
    waybill: EntityTypeName,
    outlet: EntityTypeName,
    merchant: EntityTypeName,
    system: EntityTypeName,
    action: EntityTypeName,
    role: EntityTypeName,
}

/// Every action of the schema, for slicing.
const ACTIONS: [&str; 15] = [
    "view_full",
    "view_masked",
    "view_routing",
    "ingest",
    "record_event",
    "manage_accounts",
    "read_audit",
    "read_alerts",
    "investigate",
    "export",
    "approve_export",
    "route_calls",
    "call_recipient",
    "register_work",
    "recertify",
];

/// A validated policy set and schema, ready to answer requests.
pub struct PolicyEngine {
    policies: PolicySet,
    /// For each (role, action), the policies whose scope can match it. Cedar evaluates every policy of the set
    /// it is given (rebuilding each condition), so asking with the slice instead of the whole set is what keeps a
    /// decision in the tens of microseconds; the decision is the same, because a policy whose scope cannot match
    /// a request is not applicable to it (a test checks this for every role, action and context).
    slices: HashMap<(Role, &'static str), PolicySet>,
    /// What each slice reads of the resource and context; for reads, the union over the actions a read asks
    /// about (keyed by whether the purpose may need the full view).
    slice_reads: HashMap<(Role, &'static str), Reads>,
    view_reads: HashMap<(Role, bool), Reads>,
    /// Decisions already made, keyed by the principal and exactly the resource and context values its slice
    /// reads ([`reads`]): a courier's reads of a thousand waybills at their outlet are one Cedar evaluation.
    views: DecisionCache<ViewVerdict>,
    /// Decisions tried with the time unknown, keyed like [`PolicyEngine::views`] but without `now`: the verdict
    /// when the rules settled it whatever the time (a courier's read of a parcel out with them), `None` when
    /// they did not (one signed for within the last two hours), which then goes by the exact key.
    timeless: DecisionCache<Option<ViewVerdict>>,
    writes: DecisionCache<bool>,
    authorizer: Authorizer,
    names: Names,
    ids: HashMap<String, String>,
    /// The policy text and the schema it was validated against, as given.
    policy_src: String,
    schema_file: String,
    schema_src: String,
}

/// A bounded map of decisions; emptied when full (decisions are cheap to remake, and the working set of keys is
/// small: accounts × the few attribute values their policies compare).
struct DecisionCache<V> {
    map: Mutex<HashMap<String, V>>,
    hits: std::sync::atomic::AtomicU64,
}

const CACHE_CAPACITY: usize = 100_000;

impl<V: Clone> DecisionCache<V> {
    fn new() -> Self {
        DecisionCache {
            map: Mutex::new(HashMap::new()),
            hits: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn get(&self, key: &str) -> Option<V> {
        if unsliced() {
            return None;
        }
        let hit = self.map.lock().ok()?.get(key).cloned();
        if hit.is_some() {
            self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        hit
    }

    /// [`DecisionCache::get`] without counting a hit (the caller counts what it uses).
    fn peek(&self, key: &str) -> Option<V> {
        if unsliced() {
            return None;
        }
        self.map.lock().ok()?.get(key).cloned()
    }

    fn hit(&self) {
        self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn put(&self, key: String, value: V) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= CACHE_CAPACITY {
                m.clear();
            }
            m.insert(key, value);
        }
    }
}

/// An attribute value, turned into a Cedar expression for evaluation or into its part of a cache key. The
/// entity built for Cedar and the cache key come from the same list, so they cannot disagree.
#[derive(Clone, Copy)]
enum Attr<'a> {
    Str(&'a str),
    Long(i64),
    Bool(bool),
    Entity(&'a EntityTypeName, &'a str),
    /// A value left unknown, for partial evaluation (never part of a cache key).
    Unknown(&'static str),
}

impl Attr<'_> {
    fn expr(&self) -> RestrictedExpression {
        match self {
            Attr::Str(s) => RestrictedExpression::new_string((*s).to_owned()),
            Attr::Long(n) => RestrictedExpression::new_long(*n),
            Attr::Bool(b) => RestrictedExpression::new_bool(*b),
            Attr::Entity(ty, id) => RestrictedExpression::new_entity_uid(
                EntityUid::from_type_name_and_id((*ty).clone(), EntityId::new(*id)),
            ),
            Attr::Unknown(name) => RestrictedExpression::new_unknown(name),
        }
    }

    /// Appends `\x1e name \x1f value` (identifiers and fixed strings never hold these separators; free strings
    /// are length-prefixed). An entity is keyed by its id alone: the schema gives each attribute one entity type,
    /// so the attribute's name already says which. Written without `format!`'s machinery: this runs twice for
    /// every attribute of every guarded read.
    fn key(&self, name: &str, out: &mut String) {
        out.push('\u{1e}');
        out.push_str(name);
        out.push('\u{1f}');
        let mut digits = itoa::Buffer::new();
        match self {
            Attr::Str(s) => {
                out.push('s');
                out.push_str(digits.format(s.len()));
                out.push(':');
                out.push_str(s);
            }
            Attr::Entity(_, id) => {
                out.push('e');
                out.push_str(digits.format(id.len()));
                out.push(':');
                out.push_str(id);
            }
            Attr::Long(n) => {
                out.push('l');
                out.push_str(digits.format(*n));
            }
            Attr::Bool(b) => out.push_str(if *b { "btrue" } else { "bfalse" }),
            Attr::Unknown(name) => {
                out.push('u');
                out.push_str(name);
            }
        }
    }
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("policies", &self.ids.len())
            .finish()
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// The `file:line` of the first labelled span of a diagnostic, following related diagnostics.
fn located(file: &str, src: &str, diag: &dyn miette::Diagnostic) -> String {
    fn first_offset(d: &dyn miette::Diagnostic) -> Option<usize> {
        if let Some(mut labels) = d.labels() {
            if let Some(l) = labels.next() {
                return Some(l.offset());
            }
        }
        d.related().and_then(|mut r| r.find_map(first_offset))
    }
    match first_offset(diag) {
        Some(off) => format!("{file}:{}", line_of(src, off)),
        None => file.to_owned(),
    }
}

fn diag_message(diag: &dyn miette::Diagnostic, err: &dyn std::fmt::Display) -> String {
    let mut msg = err.to_string();
    if let Some(help) = diag.help() {
        msg.push_str(&format!(" (help: {help})"));
    }
    msg
}

fn name(s: &str) -> EntityTypeName {
    EntityTypeName::from_str(s).expect("a static entity type name parses")
}

impl PolicyEngine {
    /// The built-in policy and schema.
    pub fn builtin() -> Result<PolicyEngine, PolicyError> {
        Self::from_sources(
            "policies/wbguard.cedar",
            BUILTIN_POLICY,
            "policies/wbguard.cedarschema",
            BUILTIN_SCHEMA,
        )
    }

    /// Whether `other` decides every read by an account of `role` for a purpose that may (`full`) or may not
    /// need the full view exactly as this engine does: the policies that can apply to those requests are the
    /// same, text for text. A replay skips such reads: their decisions cannot change.
    pub fn same_view_rules(&self, other: &PolicyEngine, role: Role, full: bool) -> bool {
        let texts = |e: &PolicyEngine| -> Vec<Vec<String>> {
            view_candidates(full)
                .iter()
                .map(|(_, action)| {
                    let mut t: Vec<String> = e
                        .slices
                        .get(&(role, *action))
                        .map(|s| s.policies().map(|p| p.to_string()).collect())
                        .unwrap_or_default();
                    t.sort();
                    t
                })
                .collect()
        };
        texts(self) == texts(other)
    }

    /// The policy text in force.
    pub fn policy_text(&self) -> &str {
        &self.policy_src
    }

    /// A new engine with `text` as its policy, validated against this engine's schema (the schema describes
    /// what the guard builds, so it does not change at run time); `file` names it in error messages.
    pub fn with_policy_text(&self, file: &str, text: &str) -> Result<PolicyEngine, PolicyError> {
        Self::from_sources(file, text, &self.schema_file, &self.schema_src)
    }

    /// Loads every `*.cedar` file of `dir` (concatenated in name order) and its one `*.cedarschema` file.
    pub fn load_dir(dir: &Path) -> Result<PolicyEngine, PolicyError> {
        let io = |e: std::io::Error| PolicyError::Read {
            path: dir.display().to_string(),
            source: e,
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        let mut policy_files = files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "cedar"));
        let schema_path = files
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == "cedarschema"))
            .ok_or_else(|| PolicyError::Io(format!("{}: no .cedarschema file", dir.display())))?;
        let schema_src = std::fs::read_to_string(schema_path).map_err(io)?;
        let first = policy_files
            .next()
            .ok_or_else(|| PolicyError::Io(format!("{}: no .cedar policy file", dir.display())))?;
        if let Some(second) = policy_files.next() {
            return Err(PolicyError::Io(format!(
                "{}: keep the policy in one .cedar file ({} and {} found)",
                dir.display(),
                first.display(),
                second.display()
            )));
        }
        let policy_src = std::fs::read_to_string(first).map_err(io)?;
        Self::from_sources(
            &first.display().to_string(),
            &policy_src,
            &schema_path.display().to_string(),
            &schema_src,
        )
    }

    /// Parses and validates a policy and a schema given as text; `*_file` names are used in error messages.
    pub fn from_sources(
        policy_file: &str,
        policy_src: &str,
        schema_file: &str,
        schema_src: &str,
    ) -> Result<PolicyEngine, PolicyError> {
        let (schema, _warnings) =
            Schema::from_cedarschema_str(schema_src).map_err(|e| PolicyError::Invalid {
                location: located(schema_file, schema_src, &e),
                message: diag_message(&e, &e),
            })?;
        let policies = PolicySet::from_str(policy_src).map_err(|e| PolicyError::Invalid {
            location: located(policy_file, policy_src, &e),
            message: diag_message(&e, &e),
        })?;
        let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if let Some(e) = result.validation_errors().next() {
            return Err(PolicyError::Invalid {
                location: located(policy_file, policy_src, e),
                message: diag_message(e, e),
            });
        }
        let mut ids = HashMap::new();
        let mut seen = HashSet::new();
        for p in policies.policies() {
            let id = p
                .annotation("id")
                .map(str::to_owned)
                .unwrap_or_else(|| p.id().to_string());
            if !seen.insert(id.clone()) {
                return Err(PolicyError::Invalid {
                    location: policy_file.to_owned(),
                    message: format!("two policies share @id(\"{id}\")"),
                });
            }
            ids.insert(p.id().to_string(), id);
        }
        let names = Names {
            account: name("Account"),
            waybill: name("Waybill"),
            outlet: name("Outlet"),
            merchant: name("Merchant"),
            system: name("System"),
            action: name("Action"),
            role: name("Role"),
        };
        let _ = schema;
        let mut slices = HashMap::new();
        for role in Role::ALL {
            let role_uid =
                EntityUid::from_type_name_and_id(names.role.clone(), EntityId::new(role.as_str()));
            for action in ACTIONS {
                let action_uid =
                    EntityUid::from_type_name_and_id(names.action.clone(), EntityId::new(action));
                let mut slice = PolicySet::new();
                for p in policies
                    .policies()
                    .filter(|p| may_apply(p, &role_uid, &action_uid, &names.role))
                {
                    slice
                        .add(p.clone())
                        .map_err(|e| PolicyError::Request(Box::new(e)))?;
                }
                slices.insert((role, action), slice);
            }
        }
        let slice_reads: HashMap<(Role, &'static str), Reads> =
            slices.iter().map(|(k, set)| (*k, Reads::of(set))).collect();
        let mut view_reads = HashMap::new();
        for role in Role::ALL {
            for full in [false, true] {
                let mut r = Reads::default();
                for (_, action) in view_candidates(full) {
                    if let Some(x) = slice_reads.get(&(role, *action)) {
                        r.union(x);
                    }
                }
                view_reads.insert((role, full), r);
            }
        }
        Ok(PolicyEngine {
            policies,
            slices,
            slice_reads,
            view_reads,
            views: DecisionCache::new(),
            timeless: DecisionCache::new(),
            writes: DecisionCache::new(),
            authorizer: Authorizer::new(),
            names,
            ids,
            policy_src: policy_src.to_owned(),
            schema_file: schema_file.to_owned(),
            schema_src: schema_src.to_owned(),
        })
    }

    /// How many decisions were answered from the decision cache since start.
    pub fn cache_hits(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        self.views.hits.load(Relaxed)
            + self.timeless.hits.load(Relaxed)
            + self.writes.hits.load(Relaxed)
    }

    /// The `@id`s of the loaded policies.
    pub fn policy_ids(&self) -> impl Iterator<Item = &str> {
        self.ids.values().map(String::as_str)
    }

    fn uid(&self, ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    fn action(&self, a: &str) -> EntityUid {
        self.uid(&self.names.action, a)
    }

    fn account_attrs<'a>(&'a self, a: &'a Account) -> Vec<(&'static str, Attr<'a>)> {
        let mut attrs = vec![("status", Attr::Str(a.status.as_str()))];
        if let Some(o) = &a.outlet {
            attrs.push(("outlet", Attr::Entity(&self.names.outlet, o.as_str())));
        }
        if let Some(m) = &a.merchant {
            attrs.push(("merchant", Attr::Entity(&self.names.merchant, m.as_str())));
        }
        attrs
    }

    /// An entity with these attributes and parents, and its uid.
    fn entity(
        &self,
        ty: &EntityTypeName,
        id: &str,
        attrs: Vec<(&'static str, Attr<'_>)>,
        parents: HashSet<EntityUid>,
    ) -> Result<(EntityUid, Entity), PolicyError> {
        let uid = self.uid(ty, id);
        let attrs = attrs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.expr()))
            .collect();
        let e = Entity::new(uid.clone(), attrs, parents)
            .map_err(|e| PolicyError::Request(Box::new(e)))?;
        Ok((uid, e))
    }

    fn account_entity(&self, a: &Account) -> Result<(EntityUid, Entity), PolicyError> {
        let role = self.uid(&self.names.role, a.role.as_str());
        self.entity(
            &self.names.account,
            a.id.as_str(),
            self.account_attrs(a),
            HashSet::from([role]),
        )
    }

    fn waybill_attrs<'a>(&'a self, w: &'a WaybillMeta) -> Vec<(&'static str, Attr<'a>)> {
        let mut attrs = vec![
            (
                "merchant",
                Attr::Entity(&self.names.merchant, w.merchant.as_str()),
            ),
            (
                "origin_outlet",
                Attr::Entity(&self.names.outlet, w.origin_outlet.as_str()),
            ),
            (
                "destination_outlet",
                Attr::Entity(&self.names.outlet, w.destination_outlet.as_str()),
            ),
            ("status", Attr::Str(w.status.as_str())),
        ];
        if let Some(c) = &w.courier {
            attrs.push(("courier", Attr::Entity(&self.names.account, c.as_str())));
        }
        if let Some(t) = w.signed_at {
            attrs.push(("signed_at", Attr::Long(t.div_euclid(1000))));
        }
        attrs
    }

    /// Everything Cedar needs to decide about `account` and `waybill` in `context`: the principal's and the
    /// resource's uids, the entities, the context.
    fn request_parts(
        &self,
        account: &Account,
        waybill: &WaybillMeta,
        context: &[(&'static str, Attr<'_>)],
    ) -> Result<(EntityUid, EntityUid, Entities, Context), PolicyError> {
        let (principal, principal_entity) = self.account_entity(account)?;
        let (resource, resource_entity) = self.entity(
            &self.names.waybill,
            waybill.waybill_no.as_str(),
            self.waybill_attrs(waybill),
            HashSet::new(),
        )?;
        let entities = self.entities(principal_entity, Some(resource_entity))?;
        Ok((principal, resource, entities, Self::context(context)?))
    }

    /// The cache key of a decision: what it asks, who asks (all of the account), and the resource and context
    /// values that the policies consulted can read.
    fn cache_key(
        &self,
        what: &str,
        account: &Account,
        waybill: &WaybillMeta,
        context: &[(&'static str, Attr<'_>)],
        reads: &Reads,
    ) -> String {
        let mut key = String::with_capacity(128);
        key.push_str(what);
        Attr::Str(account.id.as_str()).key("principal", &mut key);
        Attr::Str(account.role.as_str()).key("role", &mut key);
        for (name, v) in self.account_attrs(account) {
            v.key(name, &mut key);
        }
        if reads.resource.reads_whole() {
            Attr::Str(waybill.waybill_no.as_str()).key("resource", &mut key);
        }
        for (name, v) in self.waybill_attrs(waybill) {
            if reads.resource.reads(name) {
                v.key(name, &mut key);
            }
        }
        key.push('\u{1d}');
        for (name, v) in context {
            if reads.context.reads(name) {
                v.key(name, &mut key);
            }
        }
        key
    }

    /// The entities of one decision, built once however many actions it asks about.
    fn entities(
        &self,
        principal: Entity,
        resource: Option<Entity>,
    ) -> Result<Entities, PolicyError> {
        Entities::from_entities([Some(principal), resource].into_iter().flatten(), None)
            .map_err(|e| PolicyError::Request(Box::new(e)))
    }

    fn context(pairs: &[(&'static str, Attr<'_>)]) -> Result<Context, PolicyError> {
        Context::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.expr())))
            .map_err(|e| PolicyError::Request(Box::new(e)))
    }

    /// Asks about one action, with the policy slice for the principal's role.
    fn ask(
        &self,
        role: Role,
        principal: &EntityUid,
        action: &'static str,
        resource: &EntityUid,
        context: Context,
        entities: &Entities,
    ) -> Result<(bool, Vec<String>), PolicyError> {
        // The context is built here with fixed types, and the policies were validated strictly against the schema
        // at load; checking every request against the schema again costs more than the evaluation itself.
        let request = Request::new(
            principal.clone(),
            self.action(action),
            resource.clone(),
            context,
            None,
        )
        .map_err(|e| PolicyError::Request(Box::new(e)))?;
        let policies = match self.slices.get(&(role, action)) {
            Some(slice) if !unsliced() => slice,
            _ => &self.policies,
        };
        let response = self.authorizer.is_authorized(&request, policies, entities);
        // Sorted: the diagnostics hold a set, and a replay groups decisions by their rules.
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| self.name_of(id))
            .collect();
        reasons.sort();
        Ok((response.decision() == Decision::Allow, reasons))
    }

    /// The richest view `account` may have of `waybill` for this read: full (only when the purpose can need
    /// it), else masked, else routing, else none.
    pub fn decide_view(
        &self,
        account: &Account,
        waybill: &WaybillMeta,
        ctx: &ReadContext<'_>,
    ) -> Result<ViewVerdict, PolicyError> {
        self.decide_view_with(account, waybill, ctx, true)
    }

    /// [`PolicyEngine::decide_view`] without the decision cache (neither read nor filled).
    pub fn decide_view_uncached(
        &self,
        account: &Account,
        waybill: &WaybillMeta,
        ctx: &ReadContext<'_>,
    ) -> Result<ViewVerdict, PolicyError> {
        self.decide_view_with(account, waybill, ctx, false)
    }

    fn decide_view_with(
        &self,
        account: &Account,
        waybill: &WaybillMeta,
        ctx: &ReadContext<'_>,
        cached: bool,
    ) -> Result<ViewVerdict, PolicyError> {
        let full = ctx.purpose.may_need_full();
        let context = self.read_context(ctx);
        // The verdict that holds at any time first: where the rules read the time, the exact key (which holds
        // the time in seconds) is seldom met again, and building it would be wasted on every read it settles.
        if cached {
            if let Some(v) = self.timeless_view(account, waybill, &context, full)? {
                return Ok(v);
            }
        }
        let key = self
            .view_key(account, waybill, &context, full)
            .filter(|_| cached);
        if let Some(hit) = key.as_deref().and_then(|k| self.views.get(k)) {
            return Ok(hit);
        }
        let parts = self.request_parts(account, waybill, &context)?;
        let verdict = self.view_of(account.role, full, &parts)?;
        if let Some(k) = key {
            self.views.put(k, verdict.clone());
        }
        Ok(verdict)
    }

    /// Where the role's rules read the time, the decision tried with the time unknown (Cedar's partial
    /// evaluation), remembered by every other input: the verdict if that settled every policy asked, so that it
    /// holds at any time — without this a courier's read of a parcel out with them missed the decision cache
    /// once a second, since `now` (in seconds) is part of the exact key. `None` when the time matters (or the
    /// rules read no time, or could not be analysed): the caller decides with the exact key.
    fn timeless_view(
        &self,
        account: &Account,
        waybill: &WaybillMeta,
        context: &[(&'static str, Attr<'_>)],
        full: bool,
    ) -> Result<Option<ViewVerdict>, PolicyError> {
        let Some(reads) = self.view_reads.get(&(account.role, full)) else {
            return Ok(None);
        };
        if !reads.context.reads("now") {
            return Ok(None);
        }
        let mut timeless: Vec<(&'static str, Attr<'_>)> = context
            .iter()
            .filter(|(k, _)| *k != "now")
            .copied()
            .collect();
        let what = if full { "view+full" } else { "view" };
        let key = self.cache_key(what, account, waybill, &timeless, reads);
        if let Some(known) = self.timeless.peek(&key) {
            if known.is_some() {
                self.timeless.hit();
            }
            return Ok(known);
        }
        timeless.push(("now", Attr::Unknown("now")));
        let parts = self.request_parts(account, waybill, &timeless)?;
        let settled = self.view_of_timeless(account.role, full, &parts)?;
        self.timeless.put(key, settled.clone());
        Ok(settled)
    }

    /// A read's context, as the policies see it.
    fn read_context<'a>(&'a self, ctx: &ReadContext<'a>) -> Vec<(&'static str, Attr<'a>)> {
        let mut context = vec![
            ("purpose", Attr::Str(ctx.purpose.as_str())),
            ("now", Attr::Long(ctx.now_secs)),
            ("has_ticket", Attr::Bool(ctx.has_ticket)),
            ("in_incident", Attr::Bool(ctx.in_incident)),
            ("in_hold", Attr::Bool(ctx.in_hold)),
            (
                "ticket_open_for_waybill",
                Attr::Bool(ctx.ticket.open_for_waybill),
            ),
            (
                "ticket_assigned_elsewhere",
                Attr::Bool(ctx.ticket.assigned_elsewhere),
            ),
            ("ticket_reads", Attr::Long(i64::from(ctx.ticket.reads))),
        ];
        if let Some(outlet) = ctx.exception_outlet {
            context.push((
                "exception_outlet",
                Attr::Entity(&self.names.outlet, outlet.as_str()),
            ));
        }
        context
    }

    /// The decision cache's key of a read: everything this policy's rules for the role can read of it (none
    /// when the rules could not be analysed, and then nothing is cached).
    fn view_key(
        &self,
        account: &Account,
        waybill: &WaybillMeta,
        context: &[(&'static str, Attr<'_>)],
        full: bool,
    ) -> Option<String> {
        self.view_reads.get(&(account.role, full)).map(|reads| {
            self.cache_key(
                if full { "view+full" } else { "view" },
                account,
                waybill,
                context,
                reads,
            )
        })
    }

    /// The richest view the request `parts` permits, asked action by action (full → masked → routing).
    fn view_of(
        &self,
        role: Role,
        full: bool,
        (principal, resource, entities, context): &(EntityUid, EntityUid, Entities, Context),
    ) -> Result<ViewVerdict, PolicyError> {
        for (view, action) in view_candidates(full) {
            let (ok, policies) =
                self.ask(role, principal, action, resource, context.clone(), entities)?;
            if ok {
                return Ok(ViewVerdict {
                    view: Some(*view),
                    policies,
                });
            }
        }
        Ok(ViewVerdict {
            view: None,
            policies: Vec::new(),
        })
    }

    /// One past read decided under this policy and under `proposal`, for a proposal's replay. Neither engine's
    /// own decision cache is read or filled; instead `memo` keeps what this replay decided, by what each
    /// policy's rules for the role can read of a read (the decision cache's key). Where the rules read the
    /// time, the decision is first tried with the time unknown (Cedar's partial evaluation): if that settles
    /// every policy, the decision holds for any time and is kept by the other inputs alone — a courier's read of
    /// a parcel out with them is decided once, not once a second. The request is built once for both engines.
    pub fn decide_view_pair(
        &self,
        proposal: &PolicyEngine,
        account: &Account,
        waybill: &WaybillMeta,
        ctx: &ReadContext<'_>,
        memo: &mut ReplayMemo,
    ) -> Result<(ViewVerdict, ViewVerdict), PolicyError> {
        let mut parts = None;
        let before = self.replayed(account, waybill, ctx, &mut parts, &mut memo.before)?;
        // The request's entity types come from the schema: another schema's engine builds its own.
        if proposal.names != self.names {
            parts = None;
        }
        let after = proposal.replayed(account, waybill, ctx, &mut parts, &mut memo.after)?;
        Ok((before, after))
    }

    /// [`PolicyEngine::decide_view_pair`] for one side; `parts` is the concrete request, built on first need.
    fn replayed(
        &self,
        account: &Account,
        waybill: &WaybillMeta,
        ctx: &ReadContext<'_>,
        parts: &mut Option<(EntityUid, EntityUid, Entities, Context)>,
        memo: &mut Memo,
    ) -> Result<ViewVerdict, PolicyError> {
        let full = ctx.purpose.may_need_full();
        let context = self.read_context(ctx);
        let mut concrete = || -> Result<ViewVerdict, PolicyError> {
            let p = match parts.take() {
                Some(p) => p,
                None => self.request_parts(account, waybill, &context)?,
            };
            let v = self.view_of(account.role, full, &p);
            *parts = Some(p);
            v
        };
        let Some(reads) = self.view_reads.get(&(account.role, full)) else {
            return concrete();
        };
        let what = if full { "view+full" } else { "view" };
        let exact = memo.digest(&self.cache_key(what, account, waybill, &context, reads));
        if let Some(v) = memo.exact(&exact) {
            return Ok(v);
        }
        if reads.context.reads("now") {
            let mut timeless: Vec<(&'static str, Attr<'_>)> = context
                .iter()
                .filter(|(k, _)| *k != "now")
                .copied()
                .collect();
            let key = memo.digest(&self.cache_key(what, account, waybill, &timeless, reads));
            match memo.timeless(&key) {
                Some(Some(v)) => return Ok(v),
                Some(None) => {}
                None => {
                    timeless.push(("now", Attr::Unknown("now")));
                    let p = self.request_parts(account, waybill, &timeless)?;
                    let settled = self.view_of_timeless(account.role, full, &p)?;
                    memo.put_timeless(key, settled.as_ref());
                    if let Some(v) = settled {
                        return Ok(v);
                    }
                }
            }
        }
        let v = concrete()?;
        memo.put_exact(exact, &v);
        Ok(v)
    }

    /// [`PolicyEngine::view_of`] with some context values unknown: the verdict if every policy asked was settled
    /// without them (so that the verdict and the rules behind it hold whatever they are), else `None`.
    fn view_of_timeless(
        &self,
        role: Role,
        full: bool,
        (principal, resource, entities, context): &(EntityUid, EntityUid, Entities, Context),
    ) -> Result<Option<ViewVerdict>, PolicyError> {
        for (view, action) in view_candidates(full) {
            let request = Request::new(
                principal.clone(),
                self.action(action),
                resource.clone(),
                context.clone(),
                None,
            )
            .map_err(|e| PolicyError::Request(Box::new(e)))?;
            let policies = match self.slices.get(&(role, *action)) {
                Some(slice) if !unsliced() => slice,
                _ => &self.policies,
            };
            let response = self
                .authorizer
                .is_authorized_partial(&request, policies, entities);
            if response.nontrivial_residuals().next().is_some() {
                return Ok(None);
            }
            let Some(decision) = response.decision() else {
                return Ok(None);
            };
            if decision == Decision::Allow {
                // What a concrete evaluation names: the permits satisfied.
                let mut reasons: Vec<String> = response
                    .definitely_satisfied()
                    .filter(|p| p.effect() == cedar_policy::Effect::Permit)
                    .map(|p| self.name_of(p.id()))
                    .collect();
                reasons.sort();
                return Ok(Some(ViewVerdict {
                    view: Some(*view),
                    policies: reasons,
                }));
            }
        }
        Ok(Some(ViewVerdict {
            view: None,
            policies: Vec::new(),
        }))
    }

    /// A policy's `@id` (or, without one, its id in the set).
    fn name_of(&self, id: &cedar_policy::PolicyId) -> String {
        self.ids
            .get(&id.to_string())
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// Whether `account` may perform a write on `waybill` (for ingest: the waybill about to be created).
    pub fn may_write(
        &self,
        account: &Account,
        waybill: &WaybillMeta,
        action: &WriteAction<'_>,
    ) -> Result<bool, PolicyError> {
        let (name, context) = match action {
            WriteAction::Ingest => ("ingest", vec![]),
            WriteAction::RecordEvent { event_type, outlet } => (
                "record_event",
                vec![
                    ("event_type", Attr::Str(event_type)),
                    (
                        "event_outlet",
                        Attr::Entity(&self.names.outlet, outlet.as_str()),
                    ),
                ],
            ),
        };
        self.allowed(account, waybill, name, &context)
    }

    /// Whether `account` may take `waybill` out in a bulk export for `purpose` (once approved).
    pub fn may_export(
        &self,
        account: &Account,
        waybill: &WaybillMeta,
        purpose: Purpose,
    ) -> Result<bool, PolicyError> {
        let context = [("purpose", Attr::Str(purpose.as_str()))];
        self.allowed(account, waybill, "export", &context)
    }

    /// Whether courier `caller` may be connected to `waybill`'s recipient through a privacy number now.
    pub fn may_call(
        &self,
        caller: &Account,
        waybill: &WaybillMeta,
        now_secs: i64,
    ) -> Result<bool, PolicyError> {
        self.allowed(
            caller,
            waybill,
            "call_recipient",
            &[("now", Attr::Long(now_secs))],
        )
    }

    /// Whether `action` on `waybill` in `context` is permitted to `account`, through the decision cache.
    fn allowed(
        &self,
        account: &Account,
        waybill: &WaybillMeta,
        name: &'static str,
        context: &[(&'static str, Attr<'_>)],
    ) -> Result<bool, PolicyError> {
        let key = self
            .slice_reads
            .get(&(account.role, name))
            .map(|reads| self.cache_key(name, account, waybill, context, reads));
        if let Some(hit) = key.as_deref().and_then(|k| self.writes.get(k)) {
            return Ok(hit);
        }
        let (principal, resource, entities, context) =
            self.request_parts(account, waybill, context)?;
        let ok = self
            .ask(
                account.role,
                &principal,
                name,
                &resource,
                context,
                &entities,
            )?
            .0;
        if let Some(k) = key {
            self.writes.put(k, ok);
        }
        Ok(ok)
    }

    /// Whether `account` may keep or revoke `target`'s access at the quarter's recertification (the `recertify`
    /// action; admins decide every account through `manage_accounts` instead). Never for oneself.
    pub fn may_recertify(&self, account: &Account, target: &Account) -> Result<bool, PolicyError> {
        if account.id == target.id {
            return Ok(false);
        }
        let (principal, principal_entity) = self.account_entity(account)?;
        let (resource, resource_entity) = self.account_entity(target)?;
        let entities = self.entities(principal_entity, Some(resource_entity))?;
        Ok(self
            .ask(
                account.role,
                &principal,
                "recertify",
                &resource,
                Self::context(&[])?,
                &entities,
            )?
            .0)
    }

    /// Whether `account` may perform an administrative or oversight action.
    pub fn may_admin(&self, account: &Account, action: AdminAction) -> Result<bool, PolicyError> {
        let name = match action {
            AdminAction::ManageAccounts => "manage_accounts",
            AdminAction::ReadAudit => "read_audit",
            AdminAction::ReadAlerts => "read_alerts",
            AdminAction::Investigate => "investigate",
            AdminAction::ApproveExport => "approve_export",
            AdminAction::RouteCalls => "route_calls",
            AdminAction::RegisterWork => "register_work",
        };
        let system = self.uid(&self.names.system, "wbguard");
        let (principal, principal_entity) = self.account_entity(account)?;
        let entities = self.entities(principal_entity, None)?;
        Ok(self
            .ask(
                account.role,
                &principal,
                name,
                &system,
                Self::context(&[])?,
                &entities,
            )?
            .0)
    }
}

/// The (view, action) pairs a read asks about, richest first.
fn view_candidates(full: bool) -> &'static [(View, &'static str)] {
    if full {
        &[
            (View::Full, "view_full"),
            (View::Masked, "view_masked"),
            (View::Routing, "view_routing"),
        ]
    } else {
        &[
            (View::Masked, "view_masked"),
            (View::Routing, "view_routing"),
        ]
    }
}

/// Whether a policy's scope can match requests by accounts of the role `role_uid` for `action_uid`. Errs
/// towards "yes": only a scope naming another Role group, or other concrete actions, excludes a policy.
fn may_apply(
    p: &Policy,
    role_uid: &EntityUid,
    action_uid: &EntityUid,
    role_ty: &EntityTypeName,
) -> bool {
    let principal_ok = match p.principal_constraint() {
        PrincipalConstraint::In(g) | PrincipalConstraint::IsIn(_, g) => {
            g.type_name() != role_ty || &g == role_uid
        }
        _ => true,
    };
    let concrete = |a: &EntityUid| ACTIONS.iter().any(|n| a.id().unescaped() == *n);
    let action_ok = match p.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(a) => &a == action_uid,
        // An unknown action in the list may be an action group: keep the policy.
        ActionConstraint::In(list) => list.iter().any(|a| a == action_uid || !concrete(a)),
    };
    principal_ok && action_ok
}

#[cfg(test)]
thread_local! {
    /// Tests set this to evaluate against the whole policy set and compare.
    static UNSLICED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
fn unsliced() -> bool {
    UNSLICED.with(|u| u.get())
}

#[cfg(not(test))]
fn unsliced() -> bool {
    false
}

/// A waybill as it is about to be ingested, for the `ingest` check.
pub fn prospective(w: &wbg_core::NewWaybill, now: i64) -> WaybillMeta {
    WaybillMeta {
        waybill_no: w.waybill_no.clone(),
        merchant: w.merchant.clone(),
        origin_outlet: w.origin_outlet.clone(),
        destination_outlet: w.destination_outlet.clone(),
        courier: None,
        status: WaybillStatus::Created,
        created_at: now,
        updated_at: now,
        signed_at: None,
        bucket: 0,
    }
}

#[cfg(test)]
mod tests;
