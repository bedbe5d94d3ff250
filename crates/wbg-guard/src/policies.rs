//! Policy changes as proposals: the policy lives versioned in the store; an admin proposes a new text (validated
//! against the schema, errors with their line), a **second** admin approves it, and every node loads the
//! approved version within a second or two (the upkeep polls the store's pointer to the active version); any
//! earlier approved version can be rolled back to. Every step is audited; the policy a node runs is named in
//! its `/healthz`-adjacent metrics and in the version list.
//!
//! The schema is not proposed: it describes the entities and context the guard itself builds, so it changes
//! with the code, not at run time.
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use wbg_policy::{AdminAction, PolicyEngine};

/// The case-file kind policy versions and the active pointer are kept under.
const KIND: &str = "policy";
/// The case holding the active version's number.
const ACTIVE: &str = "active";
/// Longest policy text accepted.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// A policy version, as listed (the text is fetched on its own).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyVersion {
    /// Its number (1, 2, …).
    pub version: u64,
    /// `proposed`, `active`, `superseded` (was active), `withdrawn`.
    pub state: String,
    /// SHA-256 of its text, hex.
    pub sha256: String,
    /// Its rules' ids, in order.
    pub rules: Vec<String>,
    /// Who proposed it and when (ms since the epoch).
    pub proposed_by: String,
    /// When it was proposed.
    pub proposed_at: i64,
    /// Who approved it (or rolled back to it last), and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When it was approved (or rolled back to) last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct VersionCase {
    #[serde(flatten)]
    version: PolicyVersion,
    text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ActiveCase {
    version: u64,
}

fn case_id(v: u64) -> String {
    format!("v{v:06}")
}

fn json<T: Serialize>(v: &T) -> Result<String, GuardError> {
    serde_json::to_string(v).map_err(|e| GuardError::internal_from("policy case", e))
}

impl Guard {
    /// The policy in force on this node.
    pub(crate) fn policy(&self) -> arc_swap::Guard<Arc<PolicyEngine>> {
        self.policy.load()
    }

    /// The store version of the policy in force on this node (0: the configured file or the built-in policy).
    pub fn policy_version(&self) -> u64 {
        self.policy_version
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn version_case(&self, v: u64) -> Result<(VersionCase, String), GuardError> {
        let body = self
            .store
            .case(KIND, &case_id(v))?
            .ok_or_else(|| GuardError::NotFound(format!("policy version {v}")))?;
        let case =
            serde_json::from_str(&body).map_err(|e| GuardError::internal_from("policy case", e))?;
        Ok((case, body))
    }

    fn active_case(&self) -> Result<Option<(u64, String)>, GuardError> {
        match self.store.case(KIND, ACTIVE)? {
            None => Ok(None),
            Some(body) => {
                let a: ActiveCase = serde_json::from_str(&body)
                    .map_err(|e| GuardError::internal_from("policy case", e))?;
                Ok(Some((a.version, body)))
            }
        }
    }

    /// The text of stored version `v` (for the guard's own use: a replay).
    pub(crate) fn policy_version_text(&self, v: u64) -> Result<String, GuardError> {
        Ok(self.version_case(v)?.0.text)
    }

    /// Every stored version, oldest first.
    pub fn policy_versions(
        &self,
        actor: Actor<'_>,
        meta: &RequestMeta,
    ) -> Result<Vec<PolicyVersion>, GuardError> {
        self.admin(actor, AdminAction::ManageAccounts, "policy_list", meta)?;
        let mut out = Vec::new();
        let mut v = 1;
        while let Ok((case, _)) = self.version_case(v) {
            out.push(case.version);
            v += 1;
        }
        Ok(out)
    }

    /// The text of version `v`.
    pub fn policy_text(
        &self,
        actor: Actor<'_>,
        v: u64,
        meta: &RequestMeta,
    ) -> Result<String, GuardError> {
        self.admin(actor, AdminAction::ManageAccounts, "policy_get", meta)?;
        Ok(self.version_case(v)?.0.text)
    }

    /// Proposes `text` as the next policy version: validated against the schema in force (an error names its
    /// line), stored as `proposed`, audited. Nothing changes until a second admin approves it.
    pub fn propose_policy(
        &self,
        actor: Actor<'_>,
        text: &str,
        meta: &RequestMeta,
    ) -> Result<PolicyVersion, GuardError> {
        let (who, mut e) =
            self.admin(actor, AdminAction::ManageAccounts, "policy_propose", meta)?;
        if text.len() > MAX_POLICY_BYTES {
            return Err(GuardError::TooLarge(format!(
                "a policy is at most {MAX_POLICY_BYTES} bytes"
            )));
        }
        let engine = match self.policy().with_policy_text("proposal.cedar", text) {
            Ok(engine) => engine,
            Err(err) => {
                let err = GuardError::Invalid(format!("the proposal does not validate: {err}"));
                return Err(self.deny(e, err));
            }
        };
        let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        let rules: Vec<String> = engine.policy_ids().map(str::to_owned).collect();
        // The next free number: the store's compare-and-set decides between two proposers.
        let mut v = 1;
        loop {
            let version = PolicyVersion {
                version: v,
                state: "proposed".into(),
                sha256: sha256.clone(),
                rules: rules.clone(),
                proposed_by: who.id.to_string(),
                proposed_at: self.clock.now(),
                approved_by: None,
                approved_at: None,
            };
            let body = json(&VersionCase {
                version: version.clone(),
                text: text.to_owned(),
            })?;
            e.detail = Some(format!("version={v} sha256={sha256} rules={}", rules.len()));
            match self.store.case(KIND, &case_id(v))? {
                Some(_) => v += 1,
                None => match self
                    .store
                    .put_case(KIND, &case_id(v), &body, None, e.clone())
                {
                    Ok(_) => return Ok(version),
                    Err(wbg_store::StoreError::Conflict(_)) => v += 1,
                    Err(err) => return Err(err.into()),
                },
            }
        }
    }

    /// Approves proposed version `v` — a second admin, not its proposer — and puts it in force: this node at
    /// once, every other within a second or two.
    pub fn approve_policy(
        &self,
        actor: Actor<'_>,
        v: u64,
        meta: &RequestMeta,
    ) -> Result<PolicyVersion, GuardError> {
        self.put_in_force(actor, v, "policy_approve", meta, |case, who| {
            if case.version.state != "proposed" {
                Some(GuardError::Conflict(format!(
                    "policy version {v} is {}",
                    case.version.state
                )))
            } else if case.version.proposed_by == who.id.as_str() {
                Some(GuardError::Forbidden(
                    "a policy is approved by a second admin, not by its proposer".into(),
                ))
            } else {
                None
            }
        })
    }

    /// Puts earlier version `v` (one that was in force before) back in force; audited.
    pub fn rollback_policy(
        &self,
        actor: Actor<'_>,
        v: u64,
        meta: &RequestMeta,
    ) -> Result<PolicyVersion, GuardError> {
        self.put_in_force(actor, v, "policy_rollback", meta, |case, _| {
            (case.version.state != "superseded").then(|| {
                GuardError::Conflict(format!(
                    "only a version that was in force can be rolled back to; {v} is {}",
                    case.version.state
                ))
            })
        })
    }

    /// The admin step `action` on version `v`: refused (audited) with what `refuse` says of the version and the
    /// admin, else the version is made the active one: the pointer moves by compare-and-set (recorded as the
    /// step's entry), the version it replaces becomes `superseded`, and this node loads it.
    fn put_in_force(
        &self,
        actor: Actor<'_>,
        v: u64,
        action: &str,
        meta: &RequestMeta,
        refuse: impl FnOnce(&VersionCase, &wbg_core::Account) -> Option<GuardError>,
    ) -> Result<PolicyVersion, GuardError> {
        let (who, mut e) = self.admin(actor, AdminAction::ManageAccounts, action, meta)?;
        e.detail = Some(format!("version={v}"));
        let (mut case, was) = match self.version_case(v) {
            Ok(c) => c,
            Err(err) => return Err(self.deny(e, err)),
        };
        if let Some(err) = refuse(&case, &who) {
            return Err(self.deny(e, err));
        }
        let engine = self
            .policy()
            .with_policy_text(&format!("policy v{v}"), &case.text)
            .map_err(|err| {
                GuardError::Conflict(format!("the version no longer validates: {err}"))
            })?;
        let previous = self.active_case()?;
        let pointer = json(&ActiveCase { version: v })?;
        self.store.put_case(
            KIND,
            ACTIVE,
            &pointer,
            previous.as_ref().map(|(_, body)| body.as_str()),
            e,
        )?;
        let by = who.id.as_str();
        case.version.state = "active".into();
        case.version.approved_by = Some(by.to_owned());
        case.version.approved_at = Some(self.clock.now());
        self.set_version_state(v, &json(&case)?, &was, by, "active")?;
        if let Some((old, _)) = previous.filter(|(old, _)| *old != v) {
            let (mut prev, was) = self.version_case(old)?;
            prev.version.state = "superseded".into();
            self.set_version_state(old, &json(&prev)?, &was, by, "superseded")?;
        }
        self.install_policy(engine, v);
        Ok(case.version)
    }

    /// Stores version `v`'s case as `body` (it was `was`), audited as its move to `state` by `by`.
    fn set_version_state(
        &self,
        v: u64,
        body: &str,
        was: &str,
        by: &str,
        state: &str,
    ) -> Result<(), GuardError> {
        let mut note = self.entry(by, &RequestMeta::default(), "policy_state");
        note.detail = Some(format!("version={v} state={state}"));
        self.store
            .put_case(KIND, &case_id(v), body, Some(was), note)?;
        Ok(())
    }

    fn install_policy(&self, engine: PolicyEngine, v: u64) {
        self.policy.store(Arc::new(engine));
        self.policy_version
            .store(v, std::sync::atomic::Ordering::Relaxed);
        // Which accounts get tokens directly is the policy's to say: decide afresh.
        self.credentials.forget_direct();
        metrics::gauge!("wbguard_policy_version").set(v as f64);
        tracing::info!(version = v, "policy version in force");
    }

    /// Loads the store's active policy version if it is not the one in force here (the upkeep calls this every
    /// second, so an approval on any node reaches every node within about a second). Returns the version loaded.
    pub fn refresh_policy(&self) -> Result<Option<u64>, GuardError> {
        let Some((v, _)) = self.active_case()? else {
            return Ok(None);
        };
        if v == self.policy_version() {
            return Ok(None);
        }
        let (case, _) = self.version_case(v)?;
        let engine = self
            .policy()
            .with_policy_text(&format!("policy v{v}"), &case.text)
            .map_err(|e| GuardError::setup(format!("policy version {v}"), e))?;
        self.install_policy(engine, v);
        Ok(Some(v))
    }
}
