//! The access review: for auditors, every account with what it may see per purpose — derived from the policy
//! itself ([`wbg_policy::PolicyEngine::reach`]), not a hand-written table — what it may do besides, when it was
//! last active, how many records it read in full in the last 30 days, and flags that ask a reviewer to look.
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError};
use serde::Serialize;
use std::collections::HashMap;
use wbg_core::{Account, AccountStatus, Millis, Role};
use wbg_policy::{AdminAction, Reach};

const DAY_MS: i64 = 86_400_000;
/// The window full reads are counted over.
pub const REVIEW_WINDOW_DAYS: i64 = 30;

/// What one purpose lets an account see.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PurposeAccess {
    /// The purpose.
    pub purpose: String,
    /// The richest view it can give (`full`, `masked`, `routing`), or absent for nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    /// A situation that gives it.
    pub when: String,
    /// The policy rules that grant it there.
    pub rules: Vec<String>,
}

/// One account in the review.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReviewRow {
    /// The account.
    pub account: String,
    /// Its role.
    pub role: String,
    /// Its outlet, if bound to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlet: Option<String>,
    /// Its merchant, if bound to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    /// `active` or `suspended`.
    pub status: String,
    /// Why it is suspended, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When it was created (ms since the epoch).
    pub created_at: i64,
    /// When it was last active, if ever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active: Option<i64>,
    /// Records it was granted in full (reads, exports, notifications, routed calls) in the last 30 days.
    pub full_reads_30d: u64,
    /// API tokens it holds that still work.
    pub tokens: usize,
    /// What it may see, per purpose.
    pub sees: Vec<PurposeAccess>,
    /// What it may do besides reading waybills (`manage_accounts`, `read_audit`, …).
    pub may: Vec<String>,
    /// This quarter's recertification decision on it, if made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attested: Option<crate::lifecycle::Attestation>,
    /// What a reviewer should look at: `dormant`, `leaver`, `never_used`, `unusually_broad`,
    /// `many_credentials`, `unattested` (older than the quarter, not yet recertified), `suspended`.
    pub flags: Vec<String>,
}

/// Scale thresholds in people whose personal information is held, and the duties each switches on.
pub const SCALE_DUTIES: &[(u64, &str)] = &[
    (
        1_000_000,
        "PIPL art. 52 with the CAC's 2025 rules: designate a personal-information protection officer, publish \
         their contact and report them to the cyberspace administration",
    ),
    (
        10_000_000,
        "Network Data Security Management Regulations (2024) art. 28: the duties of an important-data handler \
         (a network data security officer and management body, art. 30); and the 2025 compliance-audit \
         measures: a personal-information compliance audit at least every two years",
    ),
];

/// How many people the store holds personal data of, and the duties that brings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScaleReport {
    /// Distinct people held: distinct phone numbers (recipients' and senders' alike) whose contact data is
    /// still kept (retention and erasures take theirs out of the count).
    pub individuals: u64,
    /// When that was counted (ms since the epoch).
    pub counted_at: Millis,
    /// When, ISO 8601 in China Standard Time.
    pub counted_at_local: String,
    /// Each threshold, whether it is reached, and what it asks.
    pub duties: Vec<ScaleDuty>,
}

/// One scale threshold.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScaleDuty {
    /// People from which it applies.
    pub threshold: u64,
    /// Whether the store holds that many.
    pub reached: bool,
    /// What it asks of the carrier.
    pub duty: String,
}

impl Guard {
    /// Counts the distinct people held now (a full read of the blind index's phone tokens) and sets
    /// `wbguard_individuals_held`: the upkeep's every six hours, and each scale review's.
    pub fn count_individuals(&self) -> Result<u64, GuardError> {
        let n = self
            .store
            .distinct_index_tokens(wbg_vault::BlindKind::Phone as u8)?;
        metrics::gauge!("wbguard_individuals_held").set(n as f64);
        Ok(n)
    }

    /// How many people the store holds data of, and the duties that brings (auditors and admins; audited
    /// `scale_review`). Counted afresh: a review is rare, and a stale count would mislead it.
    pub fn scale_review(
        &self,
        actor: Actor<'_>,
        meta: &RequestMeta,
    ) -> Result<ScaleReport, GuardError> {
        let who = self.actor(actor)?;
        let e = self.entry(who.id.as_str(), meta, "scale_review");
        self.require_active(&who, &e)?;
        if !self.is_overseer(actor, &who)? {
            return Err(self.deny(
                e,
                GuardError::Forbidden("the scale review is for auditors and admins".into()),
            ));
        }
        let (individuals, counted_at) = (self.count_individuals()?, self.clock.now());
        let mut e = e;
        e.detail = Some(format!("individuals={individuals}"));
        self.store.append_audit(e)?;
        Ok(ScaleReport {
            individuals,
            counted_at,
            counted_at_local: wbg_core::when::display(counted_at),
            duties: SCALE_DUTIES
                .iter()
                .map(|(t, d)| ScaleDuty {
                    threshold: *t,
                    reached: individuals >= *t,
                    duty: (*d).to_owned(),
                })
                .collect(),
        })
    }
}

/// What an account's reach depends on besides the policy: its role and whether it is bound to an outlet or a
/// merchant.
type Shape = (Role, bool, bool);

/// The administrative actions a review lists.
const ACTIONS: [(AdminAction, &str); 7] = [
    (AdminAction::ManageAccounts, "manage_accounts"),
    (AdminAction::ReadAudit, "read_audit"),
    (AdminAction::ReadAlerts, "read_alerts"),
    (AdminAction::Investigate, "investigate"),
    (AdminAction::ApproveExport, "approve_export"),
    (AdminAction::RouteCalls, "route_calls"),
    (AdminAction::RegisterWork, "register_work"),
];

impl Guard {
    /// The access review (see the module doc), for an auditor or an admin (every account), or for an outlet's
    /// manager (the accounts the policy lets them recertify: their own outlet's people); audited as
    /// `access_review`.
    pub fn access_review(
        &self,
        actor: Actor<'_>,
        meta: &RequestMeta,
    ) -> Result<Vec<ReviewRow>, GuardError> {
        let who = self.actor(actor)?;
        let e = self.entry(who.id.as_str(), meta, "access_review");
        self.require_active(&who, &e)?;
        let overseer = self.is_overseer(actor, &who)?;
        let now = self.clock.now();
        let accounts = self.store.accounts()?;
        // An outlet manager sees the accounts it may recertify; the medians below still compare each account
        // with all of its role.
        let mut shown = Vec::with_capacity(accounts.len());
        for a in &accounts {
            if overseer || self.policy().may_recertify(&who, a)? {
                shown.push(a);
            }
        }
        if shown.is_empty() && !overseer {
            return Err(self.deny(
                e,
                GuardError::Forbidden(
                    "access_review is for auditors, admins and outlet managers".into(),
                ),
            ));
        }
        let last = self.last_activity()?;
        let full = self.full_reads_since(now - REVIEW_WINDOW_DAYS * DAY_MS)?;
        let dormant_days = i64::from(self.lifecycle.dormant_days);
        let (quarter, quarter_began) = crate::lifecycle::quarter_of(now);
        let recertifying = self.lifecycle.recertify_grace_days > 0;
        // Reach depends on the role and on what the account is bound to, so it is derived once per shape.
        let mut reaches: HashMap<Shape, (Vec<Reach>, Vec<String>)> = HashMap::new();
        let mut median: HashMap<Role, u64> = HashMap::new();
        for role in Role::ALL {
            let mut counts: Vec<u64> = accounts
                .iter()
                .filter(|a| a.role == role)
                .map(|a| full.get(a.id.as_str()).copied().unwrap_or(0))
                .collect();
            counts.sort_unstable();
            if let Some(m) = counts.get(counts.len() / 2) {
                median.insert(role, *m);
            }
        }
        let mut rows = Vec::with_capacity(shown.len());
        for a in shown {
            let shape = (a.role, a.outlet.is_some(), a.merchant.is_some());
            let (reach, may) = match reaches.entry(shape) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let reach = self.policy().reach(a, now.div_euclid(1000))?;
                    let mut may = Vec::new();
                    for (action, name) in ACTIONS {
                        if self.policy().may_admin(a, action)? {
                            may.push(name.to_owned());
                        }
                    }
                    // Recertifying others (beyond admins' manage_accounts): asked of the policy with an account
                    // of each role bound as this one is, under another id.
                    let mut probe = a.clone();
                    probe.id = wbg_core::AccountId::parse("RECERTIFY-PROBE")?;
                    for role in Role::ALL {
                        probe.role = role;
                        if self.policy().may_recertify(a, &probe)? {
                            may.push(format!("recertify {}", role.as_str()));
                        }
                    }
                    v.insert((reach, may))
                }
            };
            let last_active = last.get(&a.id).copied();
            let full_reads_30d = full.get(a.id.as_str()).copied().unwrap_or(0);
            let tokens = self.store.tokens_of(&a.id, wbg_core::now_millis())?.len();
            let attested = self.attestation(a.id.as_str(), &quarter)?;
            let mut flags = flags(
                a,
                last_active,
                full_reads_30d,
                median.get(&a.role).copied().unwrap_or(0),
                tokens,
                now,
                dormant_days,
            );
            if recertifying
                && attested.is_none()
                && a.status == AccountStatus::Active
                && a.created_at < quarter_began
            {
                flags.push("unattested".into());
            }
            rows.push(ReviewRow {
                account: a.id.to_string(),
                role: a.role.as_str().to_owned(),
                outlet: a.outlet.as_ref().map(|o| o.to_string()),
                merchant: a.merchant.as_ref().map(|m| m.to_string()),
                status: a.status.as_str().to_owned(),
                status_reason: self.shown_reason(a),
                created_at: a.created_at,
                last_active,
                full_reads_30d,
                tokens,
                sees: reach
                    .iter()
                    .map(|r| PurposeAccess {
                        purpose: r.purpose.as_str().to_owned(),
                        view: r.view.map(|v| v.as_str().to_owned()),
                        when: r.when.clone(),
                        rules: r.policies.clone(),
                    })
                    .collect(),
                may: may.clone(),
                attested,
                flags,
            });
        }
        self.store.append_audit(e)?;
        Ok(rows)
    }

    /// Records granted in full since `cutoff`, per account.
    fn full_reads_since(&self, cutoff: Millis) -> Result<HashMap<String, u64>, GuardError> {
        let mut counts: HashMap<String, u64> = HashMap::new();
        self.entries_since(cutoff, |_, e| {
            if e.decision == "allow" && e.view.as_deref() == Some("full") {
                *counts.entry(e.account).or_default() += 1;
            }
        })?;
        Ok(counts)
    }
}

fn flags(
    a: &Account,
    last_active: Option<Millis>,
    full_reads: u64,
    role_median: u64,
    tokens: usize,
    now: Millis,
    dormant_days: i64,
) -> Vec<String> {
    let mut out = Vec::new();
    let reason = a.status_reason.as_deref().unwrap_or("");
    let idle_since = last_active.unwrap_or(a.created_at).max(a.status_since);
    if reason.starts_with("dormant")
        || (a.status == AccountStatus::Active
            && dormant_days > 0
            && now - idle_since > dormant_days * DAY_MS)
    {
        out.push("dormant".into());
    }
    if reason.starts_with("leaver") {
        out.push("leaver".into());
    }
    if last_active.is_none() && now - a.created_at > 7 * DAY_MS {
        out.push("never_used".into());
    }
    if full_reads >= 50 && full_reads >= role_median.saturating_mul(3) {
        out.push("unusually_broad".into());
    }
    if tokens > 2 {
        out.push("many_credentials".into());
    }
    if a.status == AccountStatus::Suspended {
        out.push("suspended".into());
    }
    out
}

/// The review as CSV: one row per account, purposes as `purpose=view` joined by `;`, flags by `;`.
pub fn review_csv(rows: &[ReviewRow]) -> Result<String, GuardError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| GuardError::internal_from("access review", e);
    out.write_record([
        "account",
        "role",
        "outlet",
        "merchant",
        "status",
        "last_active",
        "full_reads_30d",
        "tokens",
        "sees",
        "may",
        "flags",
    ])
    .map_err(err)?;
    for r in rows {
        let sees = r
            .sees
            .iter()
            .map(|p| format!("{}={}", p.purpose, p.view.as_deref().unwrap_or("none")))
            .collect::<Vec<_>>()
            .join(";");
        out.write_record([
            r.account.as_str(),
            &r.role,
            r.outlet.as_deref().unwrap_or(""),
            r.merchant.as_deref().unwrap_or(""),
            &r.status,
            &r.last_active.map(wbg_core::utc_text).unwrap_or_default(),
            &r.full_reads_30d.to_string(),
            &r.tokens.to_string(),
            &sees,
            &r.may.join(";"),
            &r.flags.join(";"),
        ])
        .map_err(err)?;
    }
    String::from_utf8(out.into_inner().map_err(|e| err(e.into_error().into()))?)
        .map_err(|e| GuardError::internal_from("access review", e))
}
