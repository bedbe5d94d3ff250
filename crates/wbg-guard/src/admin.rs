//! Account administration (create, tokens, suspend and reinstate, transfer, lists) and master-key rotation:
//! every change audited in the transaction that makes it.
use crate::guard::{local_only, recordable, Actor, RequestMeta};
use crate::{Guard, GuardError, Issued};
use wbg_audit::AuditEntry;
use wbg_core::{Account, AccountId, AccountStatus, Alert, MerchantId, Millis, OutletId, Role};
use wbg_policy::AdminAction;
use wbg_store::AlertFilter;
use wbg_vault::MasterKey;

/// An account in the list: the account and when it was last active.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AccountSummary {
    /// The account.
    #[serde(flatten)]
    pub account: Account,
    /// When it last made a request, if ever (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active: Option<Millis>,
}

/// One account in detail.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AccountDetail {
    /// The account and its last activity.
    #[serde(flatten)]
    pub summary: AccountSummary,
    /// API tokens it holds that still work (how many; never the tokens).
    pub tokens: usize,
    /// Its alerts still open (new or under investigation), newest first.
    pub open_alerts: Vec<Alert>,
}

/// How an operator's reason starts in the accounts table once sealed (see [`Guard::shown`]).
const SEALED_REASON: &str = "sealed:";

/// The vault context a reason is sealed under: bound to its account, so it opens nowhere else.
fn reason_context(id: &AccountId) -> String {
    format!("account-reason/{id}")
}

impl Guard {
    /// Resolves the actor of an administrative action, checks it is active and permitted, and returns it with
    /// the audit entry to complete. Local operators are permitted by construction: they hold the keys.
    pub(crate) fn admin(
        &self,
        actor: Actor<'_>,
        action: AdminAction,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<(Account, AuditEntry), GuardError> {
        self.admin_any(actor, &[action], name, meta)
    }

    /// Creates an account and returns it with its first token (shown once): for an operator at the machine, or
    /// an admin creating a role that sees no personal data. Any other creation over the API goes through
    /// [`Guard::open_account`], which starts an enrolment instead.
    pub fn create_account(
        &self,
        actor: Actor<'_>,
        id: &str,
        role: &str,
        outlet: Option<&str>,
        merchant: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(Account, String), GuardError> {
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
        match self.open_account(actor, account, meta)? {
            (a, Issued::Token(t)) => Ok((a, t.token)),
            (a, Issued::Enrolment(e)) => Err(GuardError::Conflict(format!(
                "account {} was created without a token: it enrols (enrolment {}, approved by a second admin)",
                a.id, e.id
            ))),
        }
    }

    /// Issues a new token for an account (shown once), where a token may be issued directly (see
    /// [`Guard::issue_credential`]). Unless `keep_others`, it replaces the account's older tokens, which stop
    /// working at once: a reissued credential leaves no forgotten one behind, and an owner whose token stops
    /// working learns that someone was issued one.
    pub fn issue_token(
        &self,
        actor: Actor<'_>,
        id: &str,
        keep_others: bool,
        meta: &RequestMeta,
    ) -> Result<String, GuardError> {
        match self.issue_credential(actor, id, keep_others, meta)? {
            Issued::Token(t) => Ok(t.token),
            Issued::Enrolment(e) => Err(GuardError::Conflict(format!(
                "account {id} enrols: enrolment {} awaits a second admin's approval",
                e.id
            ))),
        }
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
            // A reason is kept in the clear (the accounts table, the audit log): no customer's number in it.
            if r.chars().count() > 200
                || r.chars().any(char::is_control)
                || wbg_core::may_hold_phone(r)
            {
                return Err(GuardError::Invalid(
                    "reason must be at most 200 printable characters and hold no phone number"
                        .into(),
                ));
            }
        }
        e.detail = Some(format!("account={id}"));
        // An account the upkeep, the roster or a recertification suspended comes back only for a stated reason;
        // reinstating one suspended as unattested is its recertification for the quarter.
        let lifecycle = match self.store.account(&id)? {
            Some(a) if a.status == AccountStatus::Suspended && !suspend => {
                a.status_reason.filter(|r| {
                    crate::lifecycle::LIFECYCLE_REASONS
                        .iter()
                        .any(|p| r.starts_with(p))
                })
            }
            _ => None,
        };
        if lifecycle.is_some() && reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(GuardError::Invalid(
                "this account was suspended as dormant, a leaver or unattested: reinstating it needs a reason"
                    .into(),
            ));
        }
        let recertified = lifecycle.is_some_and(|r| r.starts_with("unattested"));
        let by = e.account.clone();
        let status = if suspend {
            AccountStatus::Suspended
        } else {
            AccountStatus::Active
        };
        let stored = reason.map(|r| self.seal_reason(&id, r)).transpose()?;
        self.store
            .set_account_status(&id, status, stored.as_deref(), e)?;
        if recertified {
            self.record_attestation(&id, &by, meta)?;
        }
        if !suspend {
            self.risk.reinstated(id.as_str());
        }
        self.store
            .account(&id)?
            .map(|a| self.shown(a))
            .ok_or_else(|| GuardError::NotFound(format!("account {id}")))
    }

    /// An operator's reason as the accounts table keeps it: sealed under the vault's token key, bound to the
    /// account (it may name people, and the table is not encrypted). The guard's own reasons (`risk engine`,
    /// `dormant …`, `leaver …`, `unattested …`) stay readable: the lifecycle rules read them.
    fn seal_reason(&self, id: &AccountId, reason: &str) -> Result<String, GuardError> {
        self.seal_text(&reason_context(id), reason)
    }

    /// Free text an operator wrote (a reason, a note: it may name people), sealed under the vault's token key and
    /// bound to `context`, so it opens nowhere else.
    pub(crate) fn seal_text(&self, context: &str, text: &str) -> Result<String, GuardError> {
        use base64::Engine;
        let sealed = self
            .vault
            .seal_token(context, text.as_bytes())
            .map_err(GuardError::Vault)?;
        Ok(format!(
            "{SEALED_REASON}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// [`Guard::seal_text`] opened; text that was never sealed is given as it is, `None` when it does not open.
    pub(crate) fn open_text(&self, context: &str, stored: &str) -> Option<String> {
        use base64::Engine;
        let Some(b64) = stored.strip_prefix(SEALED_REASON) else {
            return Some(stored.to_owned());
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .ok()
            .and_then(|s| self.vault.open_token(context, &s).ok())
            .and_then(|p| String::from_utf8(p).ok())
    }

    /// An account as its readers (admins, auditors, its owner) see it: an operator's sealed reason opened.
    pub(crate) fn shown(&self, mut a: Account) -> Account {
        a.status_reason = self.shown_reason(&a);
        a
    }

    /// [`Guard::shown`]'s reason alone.
    pub(crate) fn shown_reason(&self, a: &Account) -> Option<String> {
        let reason = a.status_reason.as_deref()?;
        Some(
            self.open_text(&reason_context(&a.id), reason)
                .unwrap_or_else(|| "(a sealed reason this store's keys do not open)".into()),
        )
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
        Ok(self.shown(Account {
            outlet: Some(outlet),
            ..account
        }))
    }

    /// [`Guard::admin`] for an action any of `actions` permits.
    pub(crate) fn admin_any(
        &self,
        actor: Actor<'_>,
        actions: &[AdminAction],
        name: &str,
        meta: &RequestMeta,
    ) -> Result<(Account, AuditEntry), GuardError> {
        let who = self.actor(actor)?;
        let e = self.entry(who.id.as_str(), meta, name);
        self.require_active(&who, &e)?;
        if let Actor::Token(_) = actor {
            let mut permitted = false;
            for a in actions {
                permitted = permitted || self.policy().may_admin(&who, *a)?;
            }
            if !permitted {
                return Err(self.deny(
                    e,
                    GuardError::Forbidden("not permitted for this role".into()),
                ));
            }
        }
        Ok((who, e))
    }

    /// Lists accounts with when each was last active, for those who manage or oversee them (admins, auditors).
    pub fn accounts(
        &self,
        actor: Actor<'_>,
        meta: &RequestMeta,
    ) -> Result<Vec<AccountSummary>, GuardError> {
        self.overseer(actor, "account_list", meta)?;
        let last = self.last_activity()?;
        Ok(self
            .store
            .accounts()?
            .into_iter()
            .map(|a| AccountSummary {
                last_active: last.get(&a.id).copied(),
                account: self.shown(a),
            })
            .collect())
    }

    /// One account as its overseers see it: its standing, last activity, how many working tokens it holds (never
    /// the tokens), and its alerts still open.
    pub fn account_detail(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<AccountDetail, GuardError> {
        let (_, mut e) = self.overseer(actor, "account_read", meta)?;
        e.detail = recordable(id).map(|id| format!("account={id}"));
        let found = AccountId::parse(id)
            .map_err(GuardError::from)
            .and_then(|id| Ok(self.store.account(&id)?));
        let account = match found {
            Ok(Some(a)) => a,
            Ok(None) => return Err(self.deny(e, GuardError::NotFound(format!("account {id}")))),
            Err(err) => return Err(self.deny(e, err)),
        };
        let tokens = self.store.tokens_of(&account.id, self.clock.now())?.len();
        let mut open_alerts = Vec::new();
        for state in ["new", "investigating"] {
            open_alerts.extend(self.store.alerts(&AlertFilter {
                account: Some(account.id.to_string()),
                state: Some(state.into()),
                limit: 100,
                ..AlertFilter::default()
            })?);
        }
        open_alerts.sort_by_key(|a| std::cmp::Reverse(a.id));
        Ok(AccountDetail {
            summary: AccountSummary {
                last_active: self.last_activity()?.get(&account.id).copied(),
                account: self.shown(account),
            },
            tokens,
            open_alerts,
        })
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
            &mut |id, wrapped| self.vault.rewrap(id, wrapped, new).map_err(Into::into),
            e,
        )?;
        Ok(n)
    }
}
