//! Storage for Waybill Guard: the [`Store`] trait every backend implements (with its focused parts:
//! [`Credentials`], [`WorkRegistry`], [`Alerts`], [`AuditSearch`], [`AccountActivity`]), the row types they
//! share and, behind the `conformance` feature, the behavioural suite every backend must pass. The backends are
//! crates of their own: `wbg-store-sqlite` (the embedded default: one SQLite file in WAL mode, zero set-up) and
//! `wbg-store-pg` (PostgreSQL, for nodes that scale out).
//!
//! Every write that must be audited takes its [`AuditEntry`] and appends it in the same transaction, so a
//! waybill can never exist without the entry that records its ingest, and a crash never leaves one without the
//! other. The store assigns each entry its sequence number and hash-chain link, and keeps every completed
//! Merkle subtree hash so that proofs are O(log n) lookups.
#![deny(missing_docs)]

mod activity;
mod alerts;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod credentials;
mod error;
mod numbers;
pub mod rows;
mod search;
mod ticket;
mod work;

pub use activity::{AccountActivity, ACTIVITY_SINCE_ROW};
pub use alerts::{check_revision, AlertFilter, Alerts, TriageRecord, ALERT_STATES};
pub use credentials::{token_id, Credentials, NewToken, TokenInfo};
pub use error::{DbError, Source, StoreError};
pub use numbers::{
    BindOutcome, NumberBinding, NumberRelease, PoolState, PoolSync, FREE_NUMBERS_SKIP_LOCKED_SQL,
    FREE_NUMBER_COUNT_SQL, FREE_NUMBER_SQL, TAKE_FREE_NUMBERS_SQL,
};
pub use search::{
    count_hour, hour_counts, AccessRow, AuditCursor, AuditPage, AuditQuery, AuditSearch, HourCount,
    IndexRow, PrincipalTotals, SharedAccess, SqlArg, HOUR_MS, MAX_PAGE,
};
pub use ticket::{Ticket, TicketSender};
pub use work::{ServiceTicket, WorkRegistry};

/// Every part of [`Store`], for `use wbg_store::prelude::*`: a method of any part is then callable on a
/// `dyn Store` (Rust calls a trait's methods only where the trait is in scope).
pub mod prelude {
    pub use crate::{
        AccountActivity, Accounts, Alerts, AuditLog, AuditSearch, Cases, Credentials, Keys,
        Numbers, Store, Waybills, WorkRegistry,
    };
}

use wbg_audit::{AuditEntry, Committed, Hash, StoredEntry};
use wbg_core::{
    Account, AccountId, AccountStatus, MerchantId, Millis, OutletId, StatusEvent, WaybillMeta,
    WaybillNo, WaybillStatus,
};

/// A waybill ready to store: routing metadata in clear, personal fields sealed, blind-index tokens.
#[derive(Debug, Clone)]
pub struct SealedWaybill {
    /// Routing metadata.
    pub meta: WaybillMeta,
    /// Sealed personal fields (see `wbg_vault::SealedFields`).
    pub sealed: Vec<u8>,
    /// Blind-index tokens: `(kind, party, token)`, party 0 = recipient, 1 = sender.
    pub blind: Vec<(u8, u8, [u8; 16])>,
}

/// A recorded scan event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventRecord {
    /// When it happened.
    pub at: Millis,
    /// The event.
    #[serde(flatten)]
    pub event: StatusEvent,
    /// Account that recorded it.
    pub actor: String,
}

/// One scan event to apply: the waybill as it is to become, the status it must still have (a compare-and-set),
/// and the event's record.
#[derive(Debug, Clone)]
pub struct EventWrite {
    /// The waybill's metadata after the event.
    pub next: WaybillMeta,
    /// The status it must have now.
    pub expected: WaybillStatus,
    /// The event as filed.
    pub record: EventRecord,
}

/// What a guarded read needs from the store, read in one snapshot: the caller's account (the one a token belongs
/// to, or one an identity provider vouched for) and, when there is one, the waybill with its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadSnapshot {
    /// The caller's account; `None` for an unknown token or account (and then nothing else is looked up).
    pub account: Option<Account>,
    /// The waybill's metadata and sealed fields; `None` if no such waybill.
    pub waybill: Option<(WaybillMeta, Vec<u8>)>,
    /// The waybill's events, oldest first (empty when there is no waybill).
    pub events: Vec<EventRecord>,
    /// The waybill's privacy-number binding, looked up only when the account is a courier (its view shows the
    /// virtual number instead of the real one).
    pub number: Option<NumberBinding>,
}

impl ReadSnapshot {
    /// Assembles a snapshot the way every backend must: nothing more is looked up for an unknown token, and
    /// events only for a waybill that exists.
    pub fn gather(
        account: Option<Account>,
        waybill: impl FnOnce() -> Result<Option<(WaybillMeta, Vec<u8>)>, StoreError>,
        events: impl FnOnce() -> Result<Vec<EventRecord>, StoreError>,
        number: impl FnOnce() -> Result<Option<NumberBinding>, StoreError>,
    ) -> Result<ReadSnapshot, StoreError> {
        let Some(account) = account else {
            return Ok(ReadSnapshot::default());
        };
        let waybill = waybill()?;
        let (events, number) = match waybill {
            Some(_) if account.role == wbg_core::Role::Courier => (events()?, number()?),
            Some(_) => (events()?, None),
            None => (Vec::new(), None),
        };
        Ok(ReadSnapshot {
            account: Some(account),
            waybill,
            events,
            number,
        })
    }
}

/// What a scan event needs from the store, read in one snapshot: the scanner's account and, when there is one,
/// the waybill's metadata. A scan never decrypts or shows the parcel, so its sealed fields, events and binding
/// are not read (on PostgreSQL they were most of a scan's lookup: the events' index scan, sort and aggregate).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanSnapshot {
    /// The scanner's account; `None` for an unknown token (and then nothing else is looked up).
    pub account: Option<Account>,
    /// The waybill's metadata; `None` if no such waybill.
    pub waybill: Option<WaybillMeta>,
}

/// One retention bucket (a day of ingest) as retention judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketAge {
    /// The bucket (days since the epoch).
    pub bucket: i64,
    /// Waybills in it.
    pub waybills: u64,
    /// When its last finished waybill was signed for or returned, if any finished.
    pub last_finished: Option<Millis>,
    /// When its newest unfinished waybill was created, if any is unfinished.
    pub newest_unfinished: Option<Millis>,
}

/// What shredding one bucket did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shredded {
    /// The audit entry recording it.
    pub audit_seq: u64,
    /// Waybills whose personal fields became unreadable.
    pub waybills: u64,
    /// Blind-index entries removed.
    pub index_entries: u64,
}

/// What [`Numbers::bind_numbers_later`] records of each binding's outcome (as `bind_numbers`' `audit`).
pub type BindAudit =
    Box<dyn FnMut(&WaybillNo, &AccountId, &BindOutcome) -> Option<AuditEntry> + Send>;

/// What [`Keys::rewrap_keys`] makes of each wrapped key: `(id, wrapped)` → the key wrapped anew.
pub type Rewrap<'a> = dyn FnMut(&str, &[u8]) -> Result<Vec<u8>, error::Source> + 'a;

/// The storage a guard node runs on. Implementations must be safe to share between threads.
pub trait Store:
    Keys
    + Accounts
    + Waybills
    + Numbers
    + Cases
    + AuditLog
    + WorkRegistry
    + Credentials
    + AccountActivity
    + Alerts
    + AuditSearch
    + Send
    + Sync
{
    /// Background upkeep, to be called every second or so and after bulk work, never on a request: merges
    /// blind-index segments and moves the write-ahead log into the database file (the embedded store); makes
    /// the coming days' log partitions and brings the shared access index a step closer to the log
    /// (PostgreSQL).
    fn maintain(&self) -> Result<(), StoreError>;

    /// A random id created with the store; names its audit log.
    fn store_id(&self) -> Result<String, StoreError>;
    /// What a guarded read needs, without writing anything: the account behind `token_hash` and, if there is
    /// one, waybill `no` with its events (and, for a courier, its privacy-number binding), as one consistent
    /// snapshot where the backend can give one. The embedded store reads on a pooled read connection (WAL
    /// readers never wait for the writer); PostgreSQL in one statement on its own runtime, so an async caller
    /// awaits the ticket without parking its worker thread.
    fn read_snapshot(&self, token_hash: &[u8; 32], no: &WaybillNo) -> Ticket<ReadSnapshot> {
        Ticket::ready(ReadSnapshot::gather(
            match self.account_by_token(token_hash) {
                Ok(a) => a,
                Err(e) => return Ticket::ready(Err(e)),
            },
            || self.waybill(no),
            || self.events(no),
            || self.number_of_waybill(no),
        ))
    }
    /// What a scan event needs, without writing anything: the account behind `token_hash` and, if there is one,
    /// waybill `no`'s metadata, by the same paths as [`Store::read_snapshot`] (so an async caller awaits it
    /// without parking its worker).
    fn scan_snapshot(&self, token_hash: &[u8; 32], no: &WaybillNo) -> Ticket<ScanSnapshot> {
        let snapshot = || {
            let Some(account) = self.account_by_token(token_hash)? else {
                return Ok(ScanSnapshot::default());
            };
            Ok(ScanSnapshot {
                account: Some(account),
                waybill: self.waybill(no)?.map(|(meta, _)| meta),
            })
        };
        Ticket::ready(snapshot())
    }
    /// [`Store::read_snapshot`] for a caller known by account id rather than by token (one an identity
    /// provider vouched for).
    fn read_snapshot_of_account(&self, id: &AccountId, no: &WaybillNo) -> Ticket<ReadSnapshot> {
        Ticket::ready(ReadSnapshot::gather(
            match self.account(id) {
                Ok(a) => a,
                Err(e) => return Ticket::ready(Err(e)),
            },
            || self.waybill(no),
            || self.events(no),
            || self.number_of_waybill(no),
        ))
    }
}

/// How many bytes of a wrapped key name the master key that wraps it ([`Keys::put_wrapped_key_if_absent`]).
pub const WRAPPING_ID_LEN: usize = 8;

/// The refusal of a new key `id` wrapped under another master key than the store's others.
pub fn wrapped_otherwise(id: &str) -> StoreError {
    StoreError::Conflict(format!(
        "key {id} is wrapped under another master key than the store's (the master key was rotated since this \
         process opened the store); restart it with the store's master key"
    ))
}

/// The wrapped data keys, one per retention bucket and field group, and their destruction (crypto-shredding),
/// with what retention needs to judge and carry the buckets.
pub trait Keys: Send + Sync {
    /// A wrapped key by id.
    fn get_wrapped_key(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores a wrapped key unless one exists; returns the one stored. A wrapped key begins with the
    /// [`WRAPPING_ID_LEN`]-byte id of the master key that wraps it: a new one whose id is not that of the keys
    /// already stored is refused ([`StoreError::Conflict`], nothing stored) — it comes from a process left
    /// behind by a master-key rotation, and a key no process holding the store's master key can unwrap would
    /// take every record sealed under it with it. A rotation under way is waited for, so the check sees its
    /// result.
    fn put_wrapped_key_if_absent(&self, id: &str, wrapped: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// Replaces every wrapped key with what `rewrap(id, wrapped)` makes of it, all in one transaction with `audit`
    /// (a key created meanwhile waits for it, so none is left behind under the old master key); any `Err` from
    /// `rewrap` changes nothing. Returns the entry's seq and how many keys were re-wrapped.
    fn rewrap_keys(
        &self,
        rewrap: &mut Rewrap<'_>,
        audit: AuditEntry,
    ) -> Result<(u64, usize), StoreError>;

    /// Every retention bucket that holds waybills, oldest first.
    fn bucket_ages(&self) -> Result<Vec<BucketAge>, StoreError>;
    /// Crypto-shreds the data key `key_id` of `bucket`: destroys it (zeroed out of the store's files) and leaves a
    /// tombstone so the key is never made again, with `audit`, in one transaction; then removes the blind-index
    /// entries of kinds `index_kinds` of the bucket's waybills. The waybills' routing data stays.
    fn shred_key(
        &self,
        key_id: &str,
        bucket: i64,
        index_kinds: &[u8],
        audit: AuditEntry,
    ) -> Result<Shredded, StoreError>;
    /// The ids of every data key shredded.
    fn shredded_keys(&self) -> Result<Vec<String>, StoreError>;
    /// How many distinct blind-index tokens of `kind` are held (for phones: how many people the store can still
    /// tell apart). Reads the whole index: for upkeep and reviews, never a request's hot path.
    fn distinct_index_tokens(&self, kind: u8) -> Result<u64, StoreError>;
}

/// Accounts and the tokens that authenticate them.
pub trait Accounts: Send + Sync {
    /// Creates an account, with a first token if `token` (an account that must enrol has none until it
    /// does); `Conflict` if the id is taken.
    fn create_account(
        &self,
        account: &Account,
        token: Option<&NewToken>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError>;
    /// Adds a token to an account; unless `keep_others`, the account's other tokens are revoked (deleted)
    /// in the same transaction, so a reissued credential leaves no older one working.
    fn add_token(
        &self,
        id: &AccountId,
        token: &NewToken,
        keep_others: bool,
        audit: AuditEntry,
    ) -> Result<u64, StoreError>;
    /// Looks an account up by id.
    fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError>;
    /// [`Accounts::account`] for an async caller, who awaits the ticket rather than park its worker thread on
    /// the store (the embedded store's write lock, or a PostgreSQL round trip). The default looks it up at once.
    fn account_later(&self, id: &AccountId) -> Ticket<Option<Account>> {
        Ticket::ready(self.account(id))
    }
    /// The account a token hash belongs to, if the token has not expired (by the wall clock).
    fn account_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<Account>, StoreError>;
    /// All accounts, by id.
    fn accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Suspends or reinstates an account.
    fn set_account_status(
        &self,
        id: &AccountId,
        status: AccountStatus,
        reason: Option<&str>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError>;

    /// Moves an outlet-bound account to another outlet.
    fn set_account_outlet(
        &self,
        id: &AccountId,
        outlet: &OutletId,
        audit: AuditEntry,
    ) -> Result<u64, StoreError>;
}

/// Waybills: ingest (with its audit entry), scan events, lookups, the blind index, canaries and label prints.
pub trait Waybills: Send + Sync {
    /// The waybills of `bucket` not yet signed for nor returned, each with when it was created, oldest first.
    fn open_waybills(&self, bucket: i64) -> Result<Vec<(WaybillNo, Millis)>, StoreError>;
    /// Moves waybills from bucket `from` to bucket `to`, each with its fields sealed anew under `to`'s keys,
    /// in one transaction with `audit`; a waybill no longer in `from` is left as it is. Returns the entry's seq
    /// and how many moved.
    fn move_waybills(
        &self,
        from: i64,
        to: i64,
        moved: &[(WaybillNo, Vec<u8>)],
        audit: AuditEntry,
    ) -> Result<(u64, u64), StoreError>;
    /// What the public lookup shows of waybill `no`: its metadata and its events, if it exists — on the same
    /// paths as [`Store::read_snapshot`] (a pooled read connection; the store's own runtime), so a lookup never
    /// waits behind a writer nor parks an async caller's thread.
    fn tracking_snapshot(&self, no: &WaybillNo) -> Ticket<Option<(WaybillMeta, Vec<EventRecord>)>> {
        Ticket::ready(match self.waybill(no) {
            Ok(Some((meta, _))) => self.events(no).map(|ev| Some((meta, ev))),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        })
    }

    /// A label print job's commit: appends its audit `entry` through the group commit (as
    /// [`AuditLog::append_audit_grouped`] does) and, in the same transaction, counts one print of waybill `no`'s
    /// label at `at`. The ticket holds the entry's seq and which print of the label this is (1 for the first),
    /// once both are durable: a print is counted exactly when its job is on record, and the two cost one commit.
    fn append_label_print(
        &self,
        entry: AuditEntry,
        no: &WaybillNo,
        at: Millis,
    ) -> Ticket<(u64, u32)>;

    /// Inserts waybills, all or none: a number that exists already is a `Conflict` and nothing is written.
    fn insert_waybills(
        &self,
        batch: &[SealedWaybill],
        audit: AuditEntry,
    ) -> Result<u64, StoreError>;
    /// Inserts waybills that arrive in chunks (sealed while earlier chunks are being written), all or none, in
    /// one transaction with `audit`. An `Err` from the stream aborts the insert and nothing is written.
    fn insert_waybill_stream(
        &self,
        chunks: &mut dyn Iterator<Item = Result<Vec<SealedWaybill>, StoreError>>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        let mut all = Vec::new();
        for chunk in chunks {
            all.extend(chunk?);
        }
        self.insert_waybills(&all, audit)
    }
    /// Records `nos` as canaries planted for `principal`, with `audit`. Called before the canaries are ingested,
    /// so that no canary ever exists unmarked; a number already planted is a `Conflict` and nothing is written.
    fn plant_canaries(
        &self,
        nos: &[WaybillNo],
        principal: &str,
        audit: AuditEntry,
    ) -> Result<u64, StoreError>;
    /// Every canary: `(waybill number, principal it was planted for)`.
    fn canaries(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// A waybill's metadata and sealed fields.
    fn waybill(&self, no: &WaybillNo) -> Result<Option<(WaybillMeta, Vec<u8>)>, StoreError>;
    /// Up to `limit` waybills picked at random (every one when there are fewer), with their sealed fields: what
    /// canaries are drawn from. Reads the whole table; never on a request's hot path.
    fn sample_waybills(&self, limit: usize) -> Result<Vec<(WaybillMeta, Vec<u8>)>, StoreError>;
    /// Applies an event if the waybill is still in `expected` status (else `Conflict`).
    fn record_event(
        &self,
        next: &WaybillMeta,
        expected: WaybillStatus,
        record: &EventRecord,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        let write = EventWrite {
            next: next.clone(),
            expected,
            record: record.clone(),
        };
        self.record_events(vec![write], audit).wait()
    }
    /// Applies scan events all or none, with `audit`, through the backend's group commit: each waybill (named
    /// once) moves from its expected status to its next and its event is filed; one whose status changed
    /// meanwhile fails the whole job with `Conflict` naming it, and nothing of the job is kept.
    fn record_events(&self, events: Vec<EventWrite>, audit: AuditEntry) -> Ticket<u64>;
    /// The metadata of each of `nos` (`None` where there is no such waybill), in order.
    fn waybill_metas(&self, nos: &[WaybillNo]) -> Ticket<Vec<Option<WaybillMeta>>> {
        Ticket::ready(
            nos.iter()
                .map(|no| self.waybill(no).map(|w| w.map(|(m, _)| m)))
                .collect(),
        )
    }
    /// A waybill's events, oldest first.
    fn events(&self, no: &WaybillNo) -> Result<Vec<EventRecord>, StoreError>;
    /// Waybills whose blind index holds `token`.
    fn find_by_token(&self, token: &[u8; 16]) -> Result<Vec<WaybillNo>, StoreError>;
    /// Waybills whose blind index holds `token` for `party` (0 = recipient, 1 = sender).
    fn find_by_token_of(&self, token: &[u8; 16], party: u8) -> Result<Vec<WaybillNo>, StoreError>;
    /// Number of waybills.
    fn waybill_count(&self) -> Result<u64, StoreError>;
    /// Up to `limit` waybill numbers of `merchant` created in `[from, to)` (ms), oldest first.
    fn merchant_waybills(
        &self,
        merchant: &MerchantId,
        from: Millis,
        to: Millis,
        limit: usize,
    ) -> Result<Vec<WaybillNo>, StoreError>;
}

/// The privacy-number pool and its bindings of numbers to waybills.
pub trait Numbers: Send + Sync {
    /// Makes the pool exactly `numbers` (normalised): adds the new ones, retires those no longer listed (and
    /// brings back retired ones listed again). Returns what changed.
    fn sync_number_pool(&self, numbers: &[String]) -> Result<PoolSync, StoreError>;
    /// Binds a privacy number to each waybill of `wanted` for its courier at `now`, all in one transaction
    /// with the entries `audit` makes of the outcomes (it is not asked for a [`BindOutcome::NotNeeded`]). Each
    /// waybill gets the number it already has if it has one (a rebinding when the courier changed), else the free
    /// number rested longest, else it waits (exhaustion: once one waybill found the pool exhausted, the rest that
    /// need a free number wait too, unlooked). A waybill bound, or no longer out for delivery with its courier,
    /// stops waiting. Returns the outcomes in `wanted`'s order and the first entry's seq, if any was written.
    ///
    /// One transaction for a batch of scans' waybills rather than one each: a batch of 10,000 events half out
    /// for delivery was otherwise 5,000 transactions, one after another, inside its request.
    fn bind_numbers(
        &self,
        wanted: &[(WaybillNo, AccountId)],
        now: Millis,
        release: NumberRelease,
        audit: &mut dyn FnMut(&WaybillNo, &AccountId, &BindOutcome) -> Option<AuditEntry>,
    ) -> Result<(Vec<BindOutcome>, Option<u64>), StoreError>;
    /// [`Numbers::bind_numbers`] for an async caller, who awaits the ticket rather than park its worker thread
    /// on the store for the binding's transaction (the embedded store's write lock, or PostgreSQL's round
    /// trips). Once asked, the binding is made whether or not the ticket is awaited. The default binds at once.
    fn bind_numbers_later(
        &self,
        wanted: Vec<(WaybillNo, AccountId)>,
        now: Millis,
        release: NumberRelease,
        mut audit: BindAudit,
    ) -> Ticket<(Vec<BindOutcome>, Option<u64>)> {
        Ticket::ready(self.bind_numbers(&wanted, now, release, &mut *audit))
    }
    /// [`Numbers::bind_numbers`] of one waybill, `no` for `courier`.
    fn bind_number(
        &self,
        no: &WaybillNo,
        courier: &AccountId,
        now: Millis,
        release: NumberRelease,
        audit: &mut dyn FnMut(&BindOutcome) -> Option<AuditEntry>,
    ) -> Result<(BindOutcome, Option<u64>), StoreError> {
        let wanted = [(no.clone(), courier.clone())];
        let (mut outcomes, seq) =
            self.bind_numbers(&wanted, now, release, &mut |_, _, o| audit(o))?;
        let outcome = outcomes.pop().ok_or_else(|| {
            StoreError::Db("a binding of one waybill came back without an outcome".into())
        })?;
        Ok((outcome, seq))
    }
    /// The binding a virtual number has (ended or not: the caller judges it from the waybill).
    fn number_binding(&self, number: &str) -> Result<Option<NumberBinding>, StoreError>;
    /// The binding waybill `no` has, if any.
    fn number_of_waybill(&self, no: &WaybillNo) -> Result<Option<NumberBinding>, StoreError>;
    /// [`Numbers::number_of_waybill`] for an async caller, who awaits the ticket rather than park its worker
    /// thread on the store. The default looks it up at once.
    fn number_of_waybill_later(&self, no: &WaybillNo) -> Ticket<Option<NumberBinding>> {
        Ticket::ready(self.number_of_waybill(no))
    }
    /// Up to `limit` waybills waiting for a number, longest waiting first: `(waybill, courier)`. A waybill
    /// starts waiting in the transaction of its `out_for_delivery` event whenever the pool is not empty.
    fn waiting_for_numbers(&self, limit: usize) -> Result<Vec<(WaybillNo, AccountId)>, StoreError>;
    /// The pool's state at `now` under `release`: numbers in service, free, and waybills waiting.
    fn number_pool_state(
        &self,
        now: Millis,
        release: NumberRelease,
    ) -> Result<PoolState, StoreError>;
}

/// Case files: small JSON documents by kind and id (incidents, holds, proposals, settings), each written with
/// its audit entry.
pub trait Cases: Send + Sync {
    /// Writes the case file `kind`/`id` (an export, an incident: a JSON body the guard owns) with `audit`, as a
    /// compare-and-set: with `expect` `None` it must not exist yet, else its body must still be `expect`
    /// (`Conflict` otherwise, `NotFound` when it is gone), so that two approvals of one export cannot both win.
    fn put_case(
        &self,
        kind: &str,
        id: &str,
        body: &str,
        expect: Option<&str>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError>;
    /// The case file `kind`/`id`'s body.
    fn case(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError>;
    /// Up to `limit` case files of `kind`, most recently changed first: `(id, body)`.
    fn cases(&self, kind: &str, limit: usize) -> Result<Vec<(String, String)>, StoreError>;
}

/// The audit log: appends (alone, in a batch or grouped with other requests' entries), its entries, Merkle nodes
/// and signed checkpoints. Each backend persists what `wbg_audit::LogTail` computes.
pub trait AuditLog: Send + Sync {
    /// Appends `entries` (in order) through the backend's group commit: the entries of concurrent callers are
    /// committed together, in one transaction and one log flush. The ticket completes, with the first entry's
    /// seq, only once they are durable — a guarded read decrypts nothing before that.
    fn append_audit_grouped(&self, entries: Vec<AuditEntry>) -> Ticket<u64> {
        Ticket::ready(self.append_audit_batch(entries))
    }

    /// Appends one audit entry (its `seq` and `prev` are set by the store); returns its seq.
    fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError>;
    /// Appends `entries` in order, all or none, in one transaction; returns the first one's seq.
    fn append_audit_batch(&self, entries: Vec<AuditEntry>) -> Result<u64, StoreError>;
    /// Number of audit entries.
    fn audit_size(&self) -> Result<u64, StoreError>;
    /// The bytes of entry `seq`.
    fn audit_entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` entries from `from`, in stored order, with their recorded leaf hashes.
    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError>;
    /// Up to `limit` committed entries from `from`, in order, for an index to read their heads
    /// ([`Committed::head`]): a store that still holds the latest ones decoded since their commit hands those out
    /// without reading them back (the embedded store); otherwise, and for older entries, their stored bytes.
    fn committed_entries(&self, from: u64, limit: usize) -> Result<Vec<Committed>, StoreError> {
        Ok(self
            .audit_entries(from, limit)?
            .into_iter()
            .map(Committed::Stored)
            .collect())
    }
    /// A Merkle node `(level, index)`.
    fn audit_node(&self, level: u32, index: u64) -> Result<Option<Hash>, StoreError>;
    /// The root over the first `size` entries... of the current log: `(size, root)`.
    fn audit_head(&self) -> Result<(u64, Hash), StoreError>;
    /// Stores a signed checkpoint note for `size`.
    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError>;
    /// The newest signed checkpoint: `(size, note)`.
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError>;
    /// Every signed checkpoint note, by size.
    fn checkpoints(&self) -> Result<Vec<String>, StoreError>;
}
