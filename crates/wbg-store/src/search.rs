//! Searching the audit log: who did what to which waybill, when — the auditor's first question, answered from an
//! index beside the log rather than by reading it whole.
//!
//! The index holds, per entry, only what a search filters on (time, account, waybill, action, decision) and is
//! built off the request path: the embedded store indexes in its upkeep (every second), PostgreSQL as entries are
//! integrated. Results come newest first, ordered by `(time, seq)`, and page with a cursor that names the last
//! entry shown, so a page never shifts under new entries and a deep history costs the same as a shallow one.
use crate::StoreError;
use wbg_audit::AuditEntry;
use wbg_core::Millis;

/// Largest page a search returns.
pub const MAX_PAGE: usize = 500;

/// Where a page ends: the `(time, seq)` of its last entry; the next page starts strictly before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditCursor {
    /// The entry's time (ms).
    pub time: Millis,
    /// Its sequence number.
    pub seq: u64,
}

impl AuditCursor {
    /// The cursor's text form, `<time>.<seq>` (opaque to clients).
    pub fn to_text(&self) -> String {
        format!("{}.{}", self.time, self.seq)
    }

    /// Parses [`AuditCursor::to_text`]; `None` for anything else.
    pub fn parse(s: &str) -> Option<AuditCursor> {
        let (t, q) = s.split_once('.')?;
        let digits =
            |x: &str| !x.is_empty() && x.len() <= 19 && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(t) || !digits(q) {
            return None;
        }
        Some(AuditCursor {
            time: t.parse().ok()?,
            seq: q.parse().ok()?,
        })
    }
}

/// A search: every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// The acting account.
    pub account: Option<String>,
    /// The waybill concerned.
    pub waybill: Option<String>,
    /// The action (`view`, `ingest`, `account_suspend`, …).
    pub action: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// Entries at or after this time (ms).
    pub from: Option<Millis>,
    /// Entries before this time (ms).
    pub to: Option<Millis>,
    /// Entries strictly before this position (the previous page's cursor).
    pub before: Option<AuditCursor>,
    /// At most this many (1..=[`MAX_PAGE`]).
    pub limit: usize,
}

impl AuditQuery {
    /// Whether `e` passes every filter (the cursor included): what the index answers, for entries it does not
    /// hold yet.
    pub fn matches(&self, e: &IndexRow) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        eq(&self.account, Some(&e.account))
            && eq(&self.waybill, e.waybill.as_deref())
            && eq(&self.action, Some(&e.action))
            && eq(&self.decision, Some(&e.decision))
            && self.from.is_none_or(|f| e.time >= f)
            && self.to.is_none_or(|t| e.time < t)
            && self
                .before
                .is_none_or(|c| (e.time, e.seq) < (c.time, c.seq))
    }

    /// The page size, within bounds.
    pub fn page(&self) -> usize {
        self.limit.clamp(1, MAX_PAGE)
    }

    /// The query's conditions on the index (columns `seq`, `time`, `account`, `waybill`, `action`,
    /// `decision`, each behind `prefix`) as SQL to follow `WHERE true`, and the values to bind in order;
    /// `placeholder(n)` writes the n-th (from 1) in the backend's syntax. Every backend searches with this
    /// one filter, so none can drift from [`AuditQuery::matches`].
    pub fn sql_filter(
        &self,
        prefix: &str,
        placeholder: impl Fn(usize) -> String,
    ) -> (String, Vec<SqlArg>) {
        let mut sql = String::new();
        let mut args = Vec::new();
        for (col, v) in [
            ("account", &self.account),
            ("waybill", &self.waybill),
            ("action", &self.action),
            ("decision", &self.decision),
        ] {
            if let Some(v) = v {
                args.push(SqlArg::Text(v.clone()));
                sql.push_str(&format!(" AND {prefix}{col} = {}", placeholder(args.len())));
            }
        }
        if let Some(f) = self.from {
            args.push(SqlArg::Long(f));
            sql.push_str(&format!(" AND {prefix}time >= {}", placeholder(args.len())));
        }
        if let Some(t) = self.to {
            args.push(SqlArg::Long(t));
            sql.push_str(&format!(" AND {prefix}time < {}", placeholder(args.len())));
        }
        if let Some(c) = self.before {
            args.push(SqlArg::Long(c.time));
            args.push(SqlArg::Long(c.seq as i64));
            sql.push_str(&format!(
                " AND ({prefix}time, {prefix}seq) < ({}, {})",
                placeholder(args.len() - 1),
                placeholder(args.len())
            ));
        }
        (sql, args)
    }
}

/// A value [`AuditQuery::sql_filter`] binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlArg {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Long(i64),
}

/// A page of results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditPage {
    /// The entries' exact bytes with their seqs, newest first.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Where the next page starts; `None` when this is the last.
    pub next: Option<AuditCursor>,
}

/// What the index keeps of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    /// The entry's seq.
    pub seq: u64,
    /// Its time.
    pub time: Millis,
    /// The acting account.
    pub account: String,
    /// The waybill, if any.
    pub waybill: Option<String>,
    /// The action.
    pub action: String,
    /// `allow` or `deny`.
    pub decision: String,
}

impl IndexRow {
    /// The index row of a stored entry.
    pub fn of(e: AuditEntry) -> IndexRow {
        IndexRow {
            seq: e.seq,
            time: e.time,
            account: e.account,
            waybill: e.waybill,
            action: e.action,
            decision: e.decision,
        }
    }

    /// The index row of what the indexes read of a stored entry ([`AuditEntry::head`]).
    pub fn of_head(e: wbg_audit::EntryHead<'_>) -> IndexRow {
        IndexRow {
            seq: e.seq,
            time: e.time,
            account: e.account.into_owned(),
            waybill: e.waybill.map(std::borrow::Cow::into_owned),
            action: e.action.into_owned(),
            decision: e.decision.into_owned(),
        }
    }
}

/// How many entries of one decision fell in one hour.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct HourCount {
    /// The hour's start (ms since the epoch, a multiple of 3,600,000).
    pub hour: Millis,
    /// `allow` or `deny`.
    pub decision: String,
    /// Entries.
    pub count: u64,
}

/// The length of an hour, in ms.
pub const HOUR_MS: Millis = 3_600_000;

/// Adds `row` to `counts` (keyed by hour and decision).
pub fn count_hour(counts: &mut std::collections::BTreeMap<(Millis, String), u64>, row: &IndexRow) {
    *counts
        .entry((row.time.div_euclid(HOUR_MS) * HOUR_MS, row.decision.clone()))
        .or_default() += 1;
}

/// The counts as a list, oldest hour first.
pub fn hour_counts(counts: std::collections::BTreeMap<(Millis, String), u64>) -> Vec<HourCount> {
    counts
        .into_iter()
        .map(|((hour, decision), count)| HourCount {
            hour,
            decision,
            count,
        })
        .collect()
}

/// Search over the audit log.
pub trait AuditSearch {
    /// One page of the entries `q` selects, newest first. `Unavailable` while the index is too far behind the log
    /// to answer completely (right after an upgrade, while it is first built).
    fn search_audit(&self, q: &AuditQuery) -> Result<AuditPage, StoreError>;

    /// How many entries `q` selects in each hour, by decision, oldest hour first (`q`'s cursor and page size do
    /// not apply). `Unavailable` as for [`AuditSearch::search_audit`].
    fn hourly_audit(&self, q: &AuditQuery) -> Result<Vec<HourCount>, StoreError>;

    /// Whether the store keeps the forensics access index itself, brought up to the log in its upkeep
    /// ([`crate::Store::maintain`]) and before every read of it, and shared by every node of the store
    /// ([`AuditSearch::shared_access`]). When it does not (the embedded store), the
    /// guard keeps one of its own beside the data, brought up to date from the log by its upkeep.
    fn keeps_access_index(&self) -> bool {
        false
    }

    /// The store's access index rows for `waybills` (every principal shown each of them, and how), with the
    /// totals of each principal among them, covering every entry appended before the call; `None` when the
    /// store keeps no access index ([`AuditSearch::keeps_access_index`]).
    fn shared_access(&self, waybills: &[String]) -> Result<Option<SharedAccess>, StoreError> {
        let _ = waybills;
        Ok(None)
    }
}

/// One principal's access to one waybill, as a store's access index keeps it: what an attribution ranks on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRow {
    /// The waybill.
    pub waybill: String,
    /// Who: an account id, or `export:<id>` for an export file.
    pub principal: String,
    /// Whether it was ever shown every field in clear.
    pub full: bool,
    /// Its first access's audit seq.
    pub first_seq: u64,
    /// Time of the first access (ms).
    pub first_at: Millis,
    /// Time of the latest access (ms).
    pub last_at: Millis,
    /// The first full view's audit seq, if it had one.
    pub full_seq: Option<u64>,
}

/// How much one principal was shown over the whole log: distinct waybills in full and at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalTotals {
    /// Account id, or `export:<id>`.
    pub name: String,
    /// Distinct waybills shown in full.
    pub full: u64,
    /// Distinct waybills shown masked or full.
    pub seen: u64,
}

/// What [`AuditSearch::shared_access`] answers: the rows of the waybills asked for, and the totals of every
/// principal they name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedAccess {
    /// The rows, in no particular order.
    pub rows: Vec<AccessRow>,
    /// One per principal named in `rows`.
    pub principals: Vec<PrincipalTotals>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let c = AuditCursor {
            time: 1_700_000_000_123,
            seq: 42,
        };
        assert_eq!(AuditCursor::parse(&c.to_text()), Some(c));
        for bad in [
            "",
            ".",
            "1.",
            ".2",
            "1.2.3",
            "a.1",
            "1.-2",
            "-1.2",
            "99999999999999999999.1",
            "1 .2",
        ] {
            assert_eq!(AuditCursor::parse(bad), None, "{bad:?}");
        }
    }
}
