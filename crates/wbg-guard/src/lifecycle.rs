//! Joiners, movers and leavers: the accounts kept in step with the carrier's HR roster, and accounts nobody uses
//! suspended as dormant. An account that outlives its owner's job — the leaver whose token still works, the
//! courier moved to another outlet who still sees the old one's parcels, the login unused for months — is a
//! credential waiting to be borrowed.
//!
//! - **Activity**: every authenticated request marks its account active (in memory, no store write); the upkeep
//!   records it in the store at most hourly per account ([`Guard::flush_activity`]).
//! - **Dormancy**: the upkeep suspends an active account whose last activity, creation and last status change
//!   are all older than `dormant_days` ([`Guard::suspend_dormant`]).
//! - **Roster**: [`Guard::sync_roster`] reconciles the people's accounts (couriers, outlet staff, customer
//!   service, admins, auditors; machines are not on an HR roster) with a roster CSV: absent → suspended as a
//!   leaver, outlet changed → transferred; people without an account and leavers back on the roster are reported
//!   for an admin to act on. A roster that would suspend an implausible share of accounts (a truncated file) is
//!   refused unless forced.
//!
//! Every change is an audited status change or transfer; an admin reverses it, with a reason (reinstating a
//! dormant or leaver account without one is refused).
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use wbg_core::{Account, AccountId, AccountStatus, Millis, OutletId, Role};
use wbg_policy::AdminAction;

const DAY_MS: i64 = 86_400_000;
/// How stale a stored last activity may get before the upkeep records a newer one.
const ACTIVITY_GRANULE_MS: i64 = 3_600_000;
/// Most rows a roster may have.
pub const MAX_ROSTER_ROWS: usize = 200_000;
/// The status reason prefixes this module writes; reinstating such an account needs a reason.
pub(crate) const LIFECYCLE_REASONS: [&str; 3] = ["dormant", "leaver", "unattested"];
/// The case-file kind attestations are kept under (`<quarter>:<account>`).
const ATTESTATION: &str = "attestation";

/// `[accounts]`: dormancy and the roster's safety limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// Days without activity after which the upkeep suspends an account as dormant (0: never; default 30).
    pub dormant_days: u32,
    /// Most leavers one roster may make without `force`, as a percentage of the people's active accounts
    /// (at least 5 accounts are always allowed; default 10).
    pub roster_max_leavers_percent: u32,
    /// Days into each calendar quarter by which every account older than the quarter must be attested (kept) by
    /// an admin; the upkeep then suspends the rest as `unattested` (0: no recertification; default 30).
    pub recertify_grace_days: u32,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            dormant_days: 30,
            roster_max_leavers_percent: 10,
            recertify_grace_days: 30,
        }
    }
}

/// Last activity seen by this node: `(seen, recorded in the store)`.
pub(crate) type ActivityMap = std::sync::Mutex<HashMap<AccountId, (Millis, Millis)>>;

/// Whether an account of `role` belongs to a person on the HR roster (machines are not).
pub fn on_roster(role: Role) -> bool {
    matches!(
        role,
        Role::Courier | Role::OutletStaff | Role::CustomerService | Role::Admin | Role::Auditor
    )
}

/// One person on the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterRow {
    /// Their account id.
    pub account: AccountId,
    /// Where they work now, for outlet-bound roles.
    pub outlet: Option<OutletId>,
}

/// A transfer the roster made (or would make).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RosterTransfer {
    /// The account.
    pub account: String,
    /// Its outlet before.
    pub from: Option<String>,
    /// Its outlet now.
    pub to: String,
}

/// What reconciling with a roster did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct RosterReport {
    /// Whether the changes were made (false for a dry run).
    pub applied: bool,
    /// Rows read.
    pub rows: usize,
    /// Accounts suspended as leavers: people's accounts not on the roster.
    pub leavers: Vec<String>,
    /// Accounts moved to the outlet the roster gives.
    pub transfers: Vec<RosterTransfer>,
    /// People on the roster without an account (an admin creates theirs; they enrol).
    pub joiners: Vec<String>,
    /// Accounts suspended as leavers or dormant that are on the roster again (an admin reinstates them, with a
    /// reason, if they should work again).
    pub returning: Vec<String>,
    /// Roster rows naming an account that is not a person's (a machine): left alone.
    pub not_people: Vec<String>,
    /// People's accounts in step with the roster.
    pub unchanged: usize,
}

/// A reviewer's decision on an account for a quarter.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attestation {
    /// The quarter, e.g. `2026Q4`.
    pub quarter: String,
    /// The account.
    pub account: String,
    /// `keep` (its access is still needed) or `revoke` (suspended now).
    pub decision: String,
    /// Who decided.
    pub by: String,
    /// When (ms since the epoch).
    pub at: i64,
}

/// The calendar quarter (UTC) holding `ms`: its label (`2026Q4`) and when it began.
pub fn quarter_of(ms: Millis) -> (String, Millis) {
    let text = wbg_core::utc_text(ms);
    let year: i64 = text.get(0..4).and_then(|y| y.parse().ok()).unwrap_or(1970);
    let month: i64 = text.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    let q = (month - 1) / 3;
    (
        format!("{year}Q{}", q + 1),
        days_from_civil(year, q * 3 + 1, 1) * DAY_MS,
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The quarter's decision on an account is on record already.
struct AlreadyDecided;

/// Parses a roster CSV: a header naming an `account` column and optionally an `outlet` column; any other
/// column (names, departments) is ignored and never stored. Errors name the line, never a value.
pub fn parse_roster(text: &str) -> Result<Vec<RosterRow>, GuardError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|_| GuardError::Invalid("the roster has no readable header line".into()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let account_col = col("account")
        .ok_or_else(|| GuardError::Invalid("the roster's header has no `account` column".into()))?;
    let outlet_col = col("outlet");
    let mut rows = Vec::new();
    let mut seen = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record =
            record.map_err(|_| GuardError::Invalid(format!("roster line {line} is malformed")))?;
        if rows.len() >= MAX_ROSTER_ROWS {
            return Err(GuardError::TooLarge(format!(
                "a roster has at most {MAX_ROSTER_ROWS} rows"
            )));
        }
        let account = AccountId::parse(record.get(account_col).unwrap_or(""))
            .map_err(|e| GuardError::Invalid(format!("roster line {line}: {e}")))?;
        let outlet = match outlet_col.and_then(|c| record.get(c)).unwrap_or("") {
            "" => None,
            o => Some(
                OutletId::parse(o)
                    .map_err(|e| GuardError::Invalid(format!("roster line {line}: {e}")))?,
            ),
        };
        if let Some(first) = seen.insert(account.clone(), line) {
            return Err(GuardError::Invalid(format!(
                "roster line {line} repeats the account of line {first}"
            )));
        }
        rows.push(RosterRow { account, outlet });
    }
    Ok(rows)
}

impl Guard {
    /// Takes the dormancy and roster settings.
    pub fn with_lifecycle(mut self, cfg: &LifecycleConfig) -> Result<Guard, GuardError> {
        if cfg.roster_max_leavers_percent > 100 {
            return Err(GuardError::Config(
                "[accounts] roster_max_leavers_percent must be 0-100".into(),
            ));
        }
        self.lifecycle = cfg.clone();
        Ok(self)
    }

    /// The dormancy and roster settings.
    pub fn lifecycle(&self) -> &LifecycleConfig {
        &self.lifecycle
    }

    /// Notes that `id` was active at `at` (memory only; [`Guard::flush_activity`] records it).
    pub(crate) fn saw(&self, id: &AccountId, at: Millis) {
        let Ok(mut map) = self.activity.lock() else {
            return;
        };
        match map.get_mut(id) {
            Some(v) => v.0 = v.0.max(at),
            None => {
                map.insert(id.clone(), (at, Millis::MIN));
            }
        }
    }

    /// Records in the store the activity seen since it was last recorded, where that is new or an hour newer;
    /// returns how many accounts it recorded.
    pub fn flush_activity(&self) -> Result<usize, GuardError> {
        let due: Vec<(AccountId, Millis)> = {
            let map = self
                .activity
                .lock()
                .map_err(|_| GuardError::internal("activity map poisoned"))?;
            map.iter()
                .filter(|(_, (seen, stored))| {
                    *stored == Millis::MIN || *seen >= stored.saturating_add(ACTIVITY_GRANULE_MS)
                })
                .map(|(id, (seen, _))| (id.clone(), *seen))
                .collect()
        };
        self.store.record_activity(&due)?;
        let mut map = self
            .activity
            .lock()
            .map_err(|_| GuardError::internal("activity map poisoned"))?;
        for (id, at) in &due {
            if let Some(v) = map.get_mut(id) {
                v.1 = v.1.max(*at);
            }
        }
        Ok(due.len())
    }

    /// Every account's last activity as the store knows it, with this node's newer sightings.
    pub fn last_activity(&self) -> Result<HashMap<AccountId, Millis>, GuardError> {
        let mut last: HashMap<AccountId, Millis> =
            self.store.last_activity()?.into_iter().collect();
        if let Ok(map) = self.activity.lock() {
            for (id, (seen, _)) in map.iter() {
                let at = last.entry(id.clone()).or_insert(*seen);
                *at = (*at).max(*seen);
            }
        }
        Ok(last)
    }

    /// Suspends, as dormant, every active account idle for more than `days` days: no activity, creation or
    /// status change since. Returns the accounts suspended. `0` days suspends nothing.
    pub fn suspend_dormant(
        &self,
        days: u32,
        meta: &RequestMeta,
    ) -> Result<Vec<AccountId>, GuardError> {
        if days == 0 {
            return Ok(Vec::new());
        }
        self.flush_activity()?;
        let now = self.clock.now();
        let cutoff = now.saturating_sub(i64::from(days) * DAY_MS);
        let last = self.last_activity()?;
        // Before activity was recorded (an upgraded store) nobody can be judged idle.
        let since = self.store.activity_since()?.unwrap_or(now);
        let mut suspended = Vec::new();
        for a in self.store.accounts()? {
            let active_at = last
                .get(&a.id)
                .copied()
                .unwrap_or(since)
                .max(since)
                .max(a.created_at)
                .max(a.status_since);
            if a.status != AccountStatus::Active || active_at >= cutoff {
                continue;
            }
            let mut e = self.entry("upkeep", meta, "account_suspend");
            e.detail = Some(format!(
                "account={}; dormant: no activity for {days} days",
                a.id
            ));
            self.store.set_account_status(
                &a.id,
                AccountStatus::Suspended,
                Some(&format!("dormant: no activity for {days} days")),
                e,
            )?;
            suspended.push(a.id);
        }
        if !suspended.is_empty() {
            metrics::counter!("wbguard_accounts_dormant_total").increment(suspended.len() as u64);
        }
        Ok(suspended)
    }

    /// The attestation of `account` for `quarter`, if there is one.
    pub fn attestation(
        &self,
        account: &str,
        quarter: &str,
    ) -> Result<Option<Attestation>, GuardError> {
        self.store
            .case(ATTESTATION, &format!("{quarter}:{account}"))?
            .map(|body| {
                serde_json::from_str(&body)
                    .map_err(|e| GuardError::internal_from("attestation case", e))
            })
            .transpose()
    }

    /// Recertifies `accounts` for the current quarter: `keep` attests their access is still needed; otherwise
    /// each is suspended now (`unattested: access revoked at recertification`). An admin (or an operator at the
    /// machine) decides for any account; an outlet's manager for the accounts the policy's `recertify` action
    /// gives them (their own outlet's people); no one for their own account. Every account is checked before
    /// any is decided (a refusal decides none); an account the caller may not decide is refused like one that
    /// does not exist. Each decision is audited and recorded once a quarter (a second is a `Conflict`).
    pub fn attest(
        &self,
        actor: Actor<'_>,
        accounts: &[String],
        keep: bool,
        meta: &RequestMeta,
    ) -> Result<Vec<Attestation>, GuardError> {
        let who = self.actor(actor)?;
        let e = self.entry(who.id.as_str(), meta, "recertify");
        self.require_active(&who, &e)?;
        let everyone = matches!(actor, Actor::Local(_))
            || self.policy().may_admin(&who, AdminAction::ManageAccounts)?;
        if accounts.is_empty() || accounts.len() > 1_000 {
            return Err(GuardError::Invalid(
                "name 1-1000 accounts to recertify".into(),
            ));
        }
        let now = self.clock.now();
        let (quarter, _) = quarter_of(now);
        let decision = if keep { "keep" } else { "revoke" };
        let mut checked = Vec::with_capacity(accounts.len());
        for id in accounts {
            let id = AccountId::parse(id)?;
            let mut entry = e.clone();
            entry.detail = Some(format!(
                "account={id} quarter={quarter} decision={decision}"
            ));
            if id == who.id {
                return Err(self.deny(
                    entry,
                    GuardError::Forbidden("no one recertifies their own account".into()),
                ));
            }
            let account = self.store.account(&id)?;
            let permitted = everyone
                || match &account {
                    Some(a) => self.policy().may_recertify(&who, a)?,
                    None => false,
                };
            let account = match account {
                Some(a) if permitted => a,
                None if everyone => {
                    return Err(self.deny(entry, GuardError::NotFound(format!("account {id}"))))
                }
                _ => {
                    return Err(self.deny(
                        entry,
                        GuardError::Forbidden(format!("not permitted to recertify {id}")),
                    ))
                }
            };
            checked.push((id, account, entry));
        }
        let mut out = Vec::new();
        for (id, account, entry) in checked {
            let a = Attestation {
                quarter: quarter.clone(),
                account: id.to_string(),
                decision: decision.into(),
                by: who.id.to_string(),
                at: now,
            };
            match self.put_attestation(&a, entry.clone())? {
                Ok(()) => {}
                Err(AlreadyDecided) => {
                    return Err(self.deny(
                        entry,
                        GuardError::Conflict(format!("{id} was recertified already this quarter")),
                    ))
                }
            }
            if !keep && account.status == AccountStatus::Active {
                let mut s = self.entry(who.id.as_str(), meta, "account_suspend");
                s.detail = Some(format!(
                    "account={id}; unattested: access revoked at recertification"
                ));
                self.store.set_account_status(
                    &id,
                    AccountStatus::Suspended,
                    Some("unattested: access revoked at recertification"),
                    s,
                )?;
            }
            out.push(a);
        }
        Ok(out)
    }

    /// Records that `by` kept `id`'s access this quarter (a reinstatement of an unattested account), unless the
    /// quarter's decision on it is on record already.
    pub(crate) fn record_attestation(
        &self,
        id: &AccountId,
        by: &str,
        meta: &RequestMeta,
    ) -> Result<(), GuardError> {
        let now = self.clock.now();
        let (quarter, _) = quarter_of(now);
        let a = Attestation {
            quarter: quarter.clone(),
            account: id.to_string(),
            decision: "keep".into(),
            by: by.to_owned(),
            at: now,
        };
        let mut e = self.entry(by, meta, "recertify");
        e.detail = Some(format!(
            "account={id} quarter={quarter} decision=keep; reinstated"
        ));
        // A decision already on record for the quarter stands.
        let _ = self.put_attestation(&a, e)?;
        Ok(())
    }

    /// Records `a` (the quarter's decision on its account) with `entry`, unless a decision on that account is on
    /// record for the quarter already.
    fn put_attestation(
        &self,
        a: &Attestation,
        entry: wbg_audit::AuditEntry,
    ) -> Result<Result<(), AlreadyDecided>, GuardError> {
        let body = serde_json::to_string(a)
            .map_err(|e| GuardError::internal_from("attestation case", e))?;
        let id = format!("{}:{}", a.quarter, a.account);
        match self.store.put_case(ATTESTATION, &id, &body, None, entry) {
            Ok(_) => Ok(Ok(())),
            Err(wbg_store::StoreError::Conflict(_)) => Ok(Err(AlreadyDecided)),
            Err(err) => Err(err.into()),
        }
    }

    /// Once `recertify_grace_days` of the current quarter have passed, suspends every active account that
    /// existed when the quarter began and has no attestation for it. Quarters that began before the store
    /// recorded activity (an upgrade) are not enforced. Returns the accounts suspended.
    pub fn suspend_unattested(&self, meta: &RequestMeta) -> Result<Vec<AccountId>, GuardError> {
        let grace = i64::from(self.lifecycle.recertify_grace_days);
        if grace == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let (quarter, began) = quarter_of(now);
        let tracked_since = self.store.activity_since()?.unwrap_or(now);
        if now < began + grace * DAY_MS || tracked_since > began {
            return Ok(Vec::new());
        }
        let mut suspended = Vec::new();
        for a in self.store.accounts()? {
            if a.status != AccountStatus::Active || a.created_at >= began {
                continue;
            }
            if self.attestation(a.id.as_str(), &quarter)?.is_some() {
                continue;
            }
            let reason = format!("unattested: not recertified for {quarter}");
            let mut e = self.entry("upkeep", meta, "account_suspend");
            e.detail = Some(format!("account={}; {reason}", a.id));
            self.store
                .set_account_status(&a.id, AccountStatus::Suspended, Some(&reason), e)?;
            suspended.push(a.id);
        }
        Ok(suspended)
    }

    /// Reconciles the people's accounts with the HR roster `rows` (see the module doc). With `dry_run` nothing
    /// changes and the report says what would; a roster that would suspend more than the configured share of
    /// the people's active accounts is refused unless `force`.
    pub fn sync_roster(
        &self,
        actor: Actor<'_>,
        rows: &[RosterRow],
        dry_run: bool,
        force: bool,
        meta: &RequestMeta,
    ) -> Result<RosterReport, GuardError> {
        let (who, mut summary) =
            self.admin(actor, AdminAction::ManageAccounts, "roster_sync", meta)?;
        let accounts: BTreeMap<AccountId, Account> = self
            .store
            .accounts()?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let roster: HashMap<&AccountId, &RosterRow> =
            rows.iter().map(|r| (&r.account, r)).collect();
        let mut report = RosterReport {
            applied: !dry_run,
            rows: rows.len(),
            ..RosterReport::default()
        };
        let mut moves = Vec::new();
        for row in rows {
            match accounts.get(&row.account) {
                None => report.joiners.push(row.account.to_string()),
                Some(a) if !on_roster(a.role) => report.not_people.push(a.id.to_string()),
                Some(a) => {
                    let lifecycle_suspended = a.status == AccountStatus::Suspended
                        && a.status_reason
                            .as_deref()
                            .is_some_and(|r| LIFECYCLE_REASONS.iter().any(|p| r.starts_with(p)));
                    if lifecycle_suspended {
                        report.returning.push(a.id.to_string());
                    }
                    let moved = matches!(a.role, Role::Courier | Role::OutletStaff)
                        && row.outlet.is_some()
                        && row.outlet != a.outlet;
                    match (&row.outlet, moved) {
                        (Some(to), true) => {
                            report.transfers.push(RosterTransfer {
                                account: a.id.to_string(),
                                from: a.outlet.as_ref().map(|o| o.to_string()),
                                to: to.to_string(),
                            });
                            moves.push((a.id.clone(), to.clone(), a.outlet.clone()));
                        }
                        _ if !lifecycle_suspended => report.unchanged += 1,
                        _ => {}
                    }
                }
            }
        }
        let people_active: Vec<&Account> = accounts
            .values()
            .filter(|a| on_roster(a.role) && a.status == AccountStatus::Active)
            .collect();
        let leavers: Vec<AccountId> = people_active
            .iter()
            .filter(|a| !roster.contains_key(&a.id))
            .map(|a| a.id.clone())
            .collect();
        report.leavers = leavers.iter().map(|id| id.to_string()).collect();
        let allowed =
            (people_active.len() * self.lifecycle.roster_max_leavers_percent as usize / 100).max(5);
        summary.detail = Some(format!(
            "rows={} leavers={} transfers={} joiners={} returning={}{}",
            rows.len(),
            leavers.len(),
            moves.len(),
            report.joiners.len(),
            report.returning.len(),
            if dry_run { " dry_run" } else { "" }
        ));
        if leavers.len() > allowed && !force {
            let err = GuardError::Conflict(format!(
                "the roster would suspend {} of {} active people's accounts (more than {}): check the file, or force it",
                leavers.len(),
                people_active.len(),
                allowed
            ));
            return Err(self.deny(summary, err));
        }
        if dry_run {
            return Ok(report);
        }
        for id in &leavers {
            let mut e = self.entry(who.id.as_str(), meta, "account_suspend");
            e.detail = Some(format!("account={id}; leaver: not on the HR roster"));
            self.store.set_account_status(
                id,
                AccountStatus::Suspended,
                Some("leaver: not on the HR roster"),
                e,
            )?;
        }
        for (id, to, from) in &moves {
            let mut e = self.entry(who.id.as_str(), meta, "account_transfer");
            e.detail = Some(format!(
                "account={id} from={} to={to}; HR roster",
                from.as_ref().map_or("-", |o| o.as_str())
            ));
            self.store.set_account_outlet(id, to, e)?;
        }
        self.store.append_audit(summary)?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarters_begin_on_the_first_of_january_april_july_october() {
        // 2026-12-02 12:00 UTC, 2027-01-01 00:00 UTC, 2024-02-29 (a leap day), 1970-01-01.
        let cases = [
            (1_796_212_800_000, "2026Q4", "2026-10-01 00:00:00"),
            (1_798_761_600_000, "2027Q1", "2027-01-01 00:00:00"),
            (1_709_208_000_000, "2024Q1", "2024-01-01 00:00:00"),
            (0, "1970Q1", "1970-01-01 00:00:00"),
        ];
        for (ms, label, began) in cases {
            let (q, start) = quarter_of(ms);
            assert_eq!(
                (q.as_str(), wbg_core::utc_text(start).as_str()),
                (label, began),
                "{ms}"
            );
            assert!(start <= ms);
        }
    }

    #[test]
    fn a_roster_needs_an_account_column_and_names_lines_not_values() {
        assert_eq!(
            parse_roster("Account,Name,Outlet\nC1,欧阳娜娜,O042\nK1,某人,\n").unwrap(),
            [
                RosterRow {
                    account: AccountId::parse("C1").unwrap(),
                    outlet: Some(OutletId::parse("O042").unwrap())
                },
                RosterRow {
                    account: AccountId::parse("K1").unwrap(),
                    outlet: None
                }
            ]
        );
        let err = parse_roster("account,name\nC1,欧阳娜娜,extra\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && !err.contains("欧阳娜娜"), "{err}");
    }
}
