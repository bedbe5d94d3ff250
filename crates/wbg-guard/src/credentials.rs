//! Credentials: how a caller proves who it is, and how an account comes to hold a working credential.
//!
//! **API tokens** expire (default 90 days), are listed as metadata and revoked by an admin or their owner, and
//! a new one replaces its account's older ones unless asked to keep them.
//!
//! **No admin alone can obtain a working credential for an account that sees personal data.** Over the API, an
//! admin hands a token out directly only to accounts that see none, as the policy decides it (with the built-in
//! policy: integrations and auditors).
//! For every other role — admins included, or one admin could mint a second admin and approve himself — an
//! admin *requests an enrolment*: nothing usable yet, and an alert says so. A **second** admin approves it and
//! receives a one-time enrolment code (valid for `enrolment_hours`) to hand to the account's owner, who
//! redeems it at `POST /v1/enrol` for a token. The token records both admins' names, which its owner sees at
//! `GET /v1/me`; its issue raises an alert; and it replaces the owner's older tokens, so an owner whose token
//! stopped learns someone was issued one. Operators at the machine (the CLI) issue tokens directly: they hold
//! the master key, so a rule over them would protect nothing.
//!
//! **OIDC**: where the carrier runs an identity provider, its JWTs are accepted as bearer credentials,
//! verified against its JWKS (a file), issuer and audience, with one claim naming the account. The IdP is then
//! where the owner's identity is proved; no admin of ours can make such a token.
use crate::guard::{add_detail, Actor, RequestMeta};
use crate::{hash_token, new_token, Guard, GuardError};
use jsonwebtoken::{jwk, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use wbg_core::{Account, AccountId, Role};
use wbg_policy::AdminAction;
use wbg_risk::RiskAlert;
use wbg_store::{NewToken, TokenInfo};

const DAY_MS: i64 = 86_400_000;
/// The case-file kind enrolments are kept under.
const KIND: &str = "enrolment";
/// Longest bearer credential looked at (a JWT with a few claims is well under this).
const MAX_JWT: usize = 8_192;

/// `[credentials]`: token lifetime, enrolment codes, and the identity provider, if any.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialConfig {
    /// Days an API token works after it is issued (1-3650; default 90).
    pub token_days: u32,
    /// Hours an enrolment request, then its code, stays usable (1-720; default 72).
    pub enrolment_hours: u32,
    /// `[credentials.oidc]`: accept the carrier's identity provider's JWTs.
    pub oidc: Option<OidcConfig>,
}

impl Default for CredentialConfig {
    fn default() -> Self {
        CredentialConfig {
            token_days: 90,
            enrolment_hours: 72,
            oidc: None,
        }
    }
}

/// `[credentials.oidc]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The identity provider's JSON Web Key Set, as a file (read once, at start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// The identity provider's JWKS endpoint: `https://…` (plain `http://` only to a loopback address). Fetched
    /// at start (the server does not start without it), then every `jwks_refresh_seconds`, and soon after a
    /// token names a key the set does not hold (the IdP rotated its keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Seconds between fetches of `jwks_url` (60-86,400; default 600).
    #[serde(default = "default_refresh")]
    pub jwks_refresh_seconds: u64,
    /// Further CA certificates (PEM) to trust for `jwks_url`, e.g. a carrier's internal CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_ca_file: Option<PathBuf>,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must carry (this service's client id at the IdP).
    pub audience: String,
    /// The claim whose value is the account id (default `sub`).
    #[serde(default = "default_claim")]
    pub account_claim: String,
    /// The identity provider's authorization endpoint. With `token_endpoint` and `redirect_uri` set, the console
    /// offers sign-in at the identity provider (OpenID Connect authorization code flow with PKCE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// The identity provider's token endpoint (https://, or http:// to a loopback address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// Where the identity provider sends the browser back: this service's `…/console/oidc/callback`, as
    /// registered there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// This service's client id at the identity provider (default: `audience`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// A file holding the client secret, for an identity provider that wants a confidential client (read at
    /// start; kept out of the configuration file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
}

/// The console's sign-in at the identity provider, checked ([`OidcConfig::login`]).
#[derive(Debug, Clone)]
pub struct OidcLogin {
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: url::Url,
    /// Where the code is exchanged for an ID token.
    pub token_endpoint: url::Url,
    /// Where the identity provider sends the browser back.
    pub redirect_uri: url::Url,
    /// This service's client id.
    pub client_id: String,
    /// The client secret, if the identity provider wants one.
    pub client_secret: Option<String>,
}

/// Whether `url` may carry credentials: `https`, or `http` to a loopback address.
fn safe_url(url: &str) -> Option<url::Url> {
    let u = url::Url::parse(url).ok()?;
    let ok = match u.scheme() {
        "https" => u.host().is_some(),
        "http" => match u.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    };
    ok.then_some(u)
}

fn default_refresh() -> u64 {
    600
}

impl OidcConfig {
    /// Where the keys come from, checked: exactly one of `jwks_file` and `jwks_url`, the URL `https` (or `http`
    /// to a loopback address: a key set fetched in the clear would let anyone on the path mint tokens).
    pub fn source(&self) -> Result<JwksSource<'_>, GuardError> {
        let bad = |why: &str| Err(GuardError::Config(format!("[credentials.oidc] {why}")));
        match (&self.jwks_file, &self.jwks_url) {
            (Some(f), None) => Ok(JwksSource::File(f)),
            (None, Some(url)) => {
                if !(60..=86_400).contains(&self.jwks_refresh_seconds) {
                    return bad("jwks_refresh_seconds must be 60-86400");
                }
                if safe_url(url).is_none() {
                    return bad("jwks_url must be https:// (http:// only to a loopback address)");
                }
                Ok(JwksSource::Url(url))
            }
            (Some(_), Some(_)) => bad("takes jwks_file or jwks_url, not both"),
            (None, None) => bad("needs jwks_file or jwks_url"),
        }
    }

    /// The console's sign-in at the identity provider, checked: `None` when `authorization_endpoint`,
    /// `token_endpoint` and `redirect_uri` are all unset; all three, each `https` (or `http` to a loopback
    /// address), otherwise. The client secret is read from its file.
    pub fn login(&self) -> Result<Option<OidcLogin>, GuardError> {
        let bad = |why: &str| Err(GuardError::Config(format!("[credentials.oidc] {why}")));
        let (a, t, r) = match (
            &self.authorization_endpoint,
            &self.token_endpoint,
            &self.redirect_uri,
        ) {
            (None, None, None) => return Ok(None),
            (Some(a), Some(t), Some(r)) => (a, t, r),
            _ => return bad("console sign-in needs authorization_endpoint, token_endpoint and redirect_uri together"),
        };
        let (Some(a), Some(t), Some(r)) = (safe_url(a), safe_url(t), safe_url(r)) else {
            return bad("authorization_endpoint, token_endpoint and redirect_uri must be https:// (http:// only to a loopback address)");
        };
        if !r.path().ends_with("/console/oidc/callback") {
            return bad("redirect_uri must end in /console/oidc/callback");
        }
        let client_secret = match &self.client_secret_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| GuardError::setup("[credentials.oidc] client_secret_file", e))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        Ok(Some(OidcLogin {
            authorization_endpoint: a,
            token_endpoint: t,
            redirect_uri: r,
            client_id: self
                .client_id
                .clone()
                .unwrap_or_else(|| self.audience.clone()),
            client_secret,
        }))
    }
}

/// Where an identity provider's keys come from.
#[derive(Debug, Clone, Copy)]
pub enum JwksSource<'a> {
    /// A file, read at start.
    File(&'a PathBuf),
    /// A URL the server fetches (see [`OidcConfig::jwks_url`]).
    Url(&'a str),
}

fn default_claim() -> String {
    "sub".into()
}

/// Keys by `kid`, each with the algorithms its family allows.
type KeySet = HashMap<String, (DecodingKey, Vec<Algorithm>)>;

/// A verifier of the identity provider's tokens.
pub(crate) struct Oidc {
    keys: arc_swap::ArcSwap<KeySet>,
    /// The `kid`s of the set in force, sorted (to tell a changed set from a re-fetch of the same).
    kids: std::sync::Mutex<Vec<String>>,
    /// A token named a key the set does not hold: the fetcher should look again.
    stale: std::sync::atomic::AtomicBool,
    issuer: String,
    audience: String,
    claim: String,
}

/// A JWKS's public keys; errors name the key's position, never its material.
fn key_set(text: &str) -> Result<KeySet, String> {
    let set: jwk::JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for (i, k) in set.keys.iter().enumerate() {
        let algs = match &k.algorithm {
            jwk::AlgorithmParameters::RSA(_) => vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            jwk::AlgorithmParameters::EllipticCurve(_) => {
                vec![Algorithm::ES256, Algorithm::ES384]
            }
            jwk::AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
            // A shared secret would let whoever holds the set mint tokens: never accepted.
            jwk::AlgorithmParameters::OctetKey(_) => {
                return Err(format!("key {i} is a shared secret; only public keys"))
            }
        };
        let key = DecodingKey::from_jwk(k).map_err(|e| format!("key {i}: {e}"))?;
        let kid = k.common.key_id.clone().unwrap_or_default();
        keys.insert(kid, (key, algs));
    }
    if keys.is_empty() {
        return Err("the key set holds no keys".into());
    }
    Ok(keys)
}

impl Oidc {
    fn load(cfg: &OidcConfig) -> Result<Oidc, GuardError> {
        let bad = |why: String| GuardError::Config(format!("[credentials.oidc] {why}"));
        let keys = match cfg.source()? {
            JwksSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
                key_set(&text).map_err(|e| bad(format!("jwks_file: {e}")))?
            }
            // Fetched by the server before it serves (`Guard::set_oidc_keys`); until then nothing verifies.
            JwksSource::Url(_) => KeySet::new(),
        };
        if cfg.issuer.is_empty() || cfg.audience.is_empty() || cfg.account_claim.is_empty() {
            return Err(bad(
                "issuer, audience and account_claim must not be empty".into()
            ));
        }
        let mut kids: Vec<String> = keys.keys().cloned().collect();
        kids.sort();
        Ok(Oidc {
            keys: arc_swap::ArcSwap::from_pointee(keys),
            kids: std::sync::Mutex::new(kids),
            stale: Default::default(),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            claim: cfg.account_claim.clone(),
        })
    }

    /// The account a JWT names, if it verifies; every failure is the same `Unauthenticated` (which key, which
    /// claim failed is no business of the caller's).
    fn verify(&self, jwt: &str) -> Result<AccountId, GuardError> {
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| GuardError::Unauthenticated)?;
        let keys = self.keys.load();
        let (key, algs) = match &header.kid {
            Some(kid) => keys.get(kid),
            None if keys.len() == 1 => keys.values().next(),
            None => None,
        }
        .ok_or_else(|| {
            // Perhaps the IdP rotated its keys: the fetcher looks again (it limits how often).
            self.stale.store(true, std::sync::atomic::Ordering::Relaxed);
            GuardError::Unauthenticated
        })?;
        if !algs.contains(&header.alg) {
            return Err(GuardError::Unauthenticated);
        }
        let mut v = Validation::new(header.alg);
        v.algorithms = algs.clone();
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.leeway = 30;
        let data = jsonwebtoken::decode::<serde_json::Value>(jwt, key, &v).map_err(|e| {
            tracing::debug!(why = why(&e), "an identity-provider token did not verify");
            GuardError::Unauthenticated
        })?;
        data.claims
            .get(&self.claim)
            .and_then(|c| c.as_str())
            .and_then(|id| AccountId::parse(id).ok())
            .ok_or(GuardError::Unauthenticated)
    }
}

/// Why a JWT failed, in a word for the debug log (never the token, never a claim's value).
fn why(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "expired",
        K::InvalidIssuer => "issuer",
        K::InvalidAudience => "audience",
        K::InvalidSignature => "signature",
        K::ImmatureSignature => "not yet valid",
        K::MissingRequiredClaim(_) => "missing claim",
        _ => "malformed",
    }
}

/// The credential settings a guard runs with.
pub(crate) struct Credentialing {
    token_ms: i64,
    enrolment_ms: i64,
    oidc: Option<Oidc>,
    /// Whether a role (and what it is bound to) is issued tokens directly, as the policy decided it.
    direct: std::sync::Mutex<HashMap<(Role, bool, bool), bool>>,
}

impl Default for Credentialing {
    /// [`CredentialConfig::default`]'s lifetimes, no identity provider.
    fn default() -> Self {
        Credentialing::lifetimes(&CredentialConfig::default())
    }
}

impl Credentialing {
    /// Forgets which accounts get tokens directly (the policy changed).
    pub(crate) fn forget_direct(&self) {
        if let Ok(mut m) = self.direct.lock() {
            m.clear();
        }
    }

    fn new(cfg: &CredentialConfig) -> Result<Credentialing, GuardError> {
        if !(1..=3650).contains(&cfg.token_days) {
            return Err(GuardError::Config(
                "[credentials] token_days must be 1-3650".into(),
            ));
        }
        if !(1..=720).contains(&cfg.enrolment_hours) {
            return Err(GuardError::Config(
                "[credentials] enrolment_hours must be 1-720".into(),
            ));
        }
        Ok(Credentialing {
            oidc: cfg.oidc.as_ref().map(Oidc::load).transpose()?,
            ..Credentialing::lifetimes(cfg)
        })
    }

    /// `cfg`'s token and enrolment lifetimes (checked by the caller), no identity provider.
    fn lifetimes(cfg: &CredentialConfig) -> Credentialing {
        Credentialing {
            token_ms: i64::from(cfg.token_days) * DAY_MS,
            enrolment_ms: i64::from(cfg.enrolment_hours) * 3_600_000,
            oidc: None,
            direct: Default::default(),
        }
    }
}

/// How a presented bearer credential names its caller.
#[derive(Debug, Clone)]
pub(crate) enum Bearer {
    /// An API token, by its stored hash.
    Token([u8; 32]),
    /// An identity-provider token, verified: the account it names.
    Oidc(AccountId),
}

/// A credential just issued.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    /// The account.
    pub id: String,
    /// The API token; shown once, stored only as a hash.
    pub token: String,
    /// When it stops working (ms since the epoch).
    pub expires_at: i64,
}

/// An enrolment, as admins see it (never its code).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Enrolment {
    /// Its id.
    pub id: String,
    /// The account it issues a credential for.
    pub account: String,
    /// `awaiting_approval`, `approved` (a code is out), `redeemed` or `cancelled`.
    pub state: String,
    /// The admin who asked for it.
    pub requested_by: String,
    /// When (ms since the epoch).
    pub requested_at: i64,
    /// The admin who approved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Until when the request (before approval) or the code (after) can be used.
    pub usable_until: i64,
    /// Whether the new token leaves the account's older ones working.
    pub keep_existing: bool,
}

/// The stored case: the enrolment and, once approved, its code's hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EnrolmentCase {
    #[serde(flatten)]
    enrolment: Enrolment,
    #[serde(default)]
    code_hash: Option<String>,
}

/// An approved enrolment's one-time code, for the account's owner.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EnrolmentCode {
    /// The enrolment.
    pub enrolment: Enrolment,
    /// The code (shown once): the owner redeems it at `POST /v1/enrol`.
    pub code: String,
}

/// What creating an account or asking for a token gave.
#[derive(Debug, Clone)]
pub enum Issued {
    /// A working token, for a role issued directly or for an operator at the machine.
    Token(IssuedToken),
    /// An enrolment that a second admin must approve.
    Enrolment(Enrolment),
}

/// An account and the credentials it holds, for its owner.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The account.
    pub account: Account,
    /// Its API tokens still working (metadata: how each was issued, until when it works).
    #[schema(value_type = Vec<Object>)]
    pub tokens: Vec<TokenInfo>,
}

impl Guard {
    /// Takes the credential settings: token lifetime, enrolment codes, the identity provider.
    pub fn with_credentials(mut self, cfg: &CredentialConfig) -> Result<Guard, GuardError> {
        self.credentials = Credentialing::new(cfg)?;
        Ok(self)
    }

    /// Puts the identity provider's key set `jwks` (a JWKS document, as fetched from `jwks_url`) in force for
    /// every JWT from now on. A set that does not parse, holds no key or holds a shared secret is refused and the
    /// set in force stays. A set whose key ids differ from the one in force is audited (`oidc_keys`, with the key
    /// ids). Returns whether the key ids changed.
    pub fn set_oidc_keys(&self, jwks: &str) -> Result<bool, GuardError> {
        let Some(oidc) = &self.credentials.oidc else {
            return Err(GuardError::Config(
                "[credentials.oidc] is not configured".into(),
            ));
        };
        let keys = key_set(jwks)
            .map_err(|e| GuardError::Invalid(format!("the identity provider's key set: {e}")))?;
        let mut kids: Vec<String> = keys.keys().cloned().collect();
        kids.sort();
        let mut held = oidc
            .kids
            .lock()
            .map_err(|_| GuardError::internal("the OIDC key ids lock is poisoned"))?;
        let changed = *held != kids;
        if changed {
            let mut e = self.entry("oidc", &RequestMeta::default(), "oidc_keys");
            e.detail = Some(format!("kids={}", kids.join(",")));
            self.store.append_audit(e)?;
            *held = kids;
        }
        oidc.keys.store(std::sync::Arc::new(keys));
        Ok(changed)
    }

    /// Whether a JWT named a key the set in force does not hold since this was last asked (the fetcher of
    /// `jwks_url` then looks again, at most as often as it chooses).
    pub fn oidc_keys_stale(&self) -> bool {
        self.credentials
            .oidc
            .as_ref()
            .is_some_and(|o| o.stale.swap(false, std::sync::atomic::Ordering::Relaxed))
    }

    /// What a presented bearer credential is: an identity-provider JWT (verified now) when one is configured and
    /// the credential has a JWT's shape, else an API token by its hash.
    pub(crate) fn bearer(&self, presented: &str) -> Result<Bearer, GuardError> {
        match &self.credentials.oidc {
            Some(oidc) if presented.len() <= MAX_JWT && presented.matches('.').count() == 2 => {
                oidc.verify(presented).map(Bearer::Oidc)
            }
            _ => crate::guard::checked_token_hash(presented).map(Bearer::Token),
        }
    }

    /// Whether `actor` gets a working token for `account` without an enrolment: an operator at the machine
    /// always; an admin only for an account the policy lets see nothing beyond routing data for any purpose
    /// ([`wbg_policy::PolicyEngine::reach`]) and that can neither manage accounts (approve enrolments) nor route
    /// calls. Derived from the policy, so a policy that widens a role makes its credentials enrol.
    pub(crate) fn direct(&self, actor: Actor<'_>, account: &Account) -> Result<bool, GuardError> {
        if let Actor::Local(_) = actor {
            return Ok(true);
        }
        let shape = (
            account.role,
            account.outlet.is_some(),
            account.merchant.is_some(),
        );
        if let Some(d) = self
            .credentials
            .direct
            .lock()
            .ok()
            .and_then(|m| m.get(&shape).copied())
        {
            return Ok(d);
        }
        let sees_nothing = self
            .policy()
            .reach(account, self.clock.now().div_euclid(1000))?
            .iter()
            .all(|r| r.view < Some(wbg_core::View::Masked));
        let d = sees_nothing
            && !self
                .policy()
                .may_admin(account, AdminAction::ManageAccounts)?
            && !self.policy().may_admin(account, AdminAction::RouteCalls)?;
        if let Ok(mut m) = self.credentials.direct.lock() {
            m.insert(shape, d);
        }
        Ok(d)
    }

    /// A new token for `id`, issued by `issued_by`, that works for the configured lifetime.
    fn new_token_for(&self, id: &AccountId, issued_by: String) -> (IssuedToken, NewToken) {
        let token = new_token();
        let expires_at = wbg_core::now_millis().saturating_add(self.credentials.token_ms);
        let stored = NewToken {
            hash: hash_token(&token),
            expires_at: Some(expires_at),
            issued_by,
        };
        let issued = IssuedToken {
            id: id.to_string(),
            token,
            expires_at,
        };
        (issued, stored)
    }

    /// Creates an account. An operator at the machine, or an admin creating an account that sees no personal data
    /// (as the policy decides it), gets its
    /// first token; otherwise the account is created without one, with an enrolment for a second admin to
    /// approve.
    pub fn open_account(
        &self,
        actor: Actor<'_>,
        account: Account,
        meta: &RequestMeta,
    ) -> Result<(Account, Issued), GuardError> {
        let (who, mut e) =
            self.admin(actor, AdminAction::ManageAccounts, "account_create", meta)?;
        Account::check_binding(
            account.role,
            account.outlet.as_ref(),
            account.merchant.as_ref(),
        )?;
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
        // An account id is in every audit entry the account makes, in the clear: a person's mobile number (as some
        // carriers number their couriers) would be kept unencrypted wherever it acts. Use an employee number.
        if wbg_core::may_hold_phone(account.id.as_str()) {
            return Err(GuardError::Invalid(
                "an account id must not hold a phone number (it is in every audit entry); use an employee number"
                    .into(),
            ));
        }
        // Ids that differ only in case name one person to a reader of a report or of the audit log: `c2a` beside
        // `C2A` would be a second account passing as the first. (Creation is rare; the list is read whole.)
        let folded = account.id.as_str().to_ascii_lowercase();
        if let Some(twin) = self
            .store
            .accounts()?
            .into_iter()
            .find(|a| a.id != account.id && a.id.as_str().to_ascii_lowercase() == folded)
        {
            return Err(GuardError::Conflict(format!(
                "account {} exists; ids that differ only in case are refused",
                twin.id
            )));
        }
        if self.direct(actor, &account)? {
            let (issued, stored) = self.new_token_for(&account.id, issuer(actor, &who));
            add_detail(&mut e, "first token issued");
            self.store.create_account(&account, Some(&stored), e)?;
            return Ok((account, Issued::Token(issued)));
        }
        add_detail(&mut e, "no token: the owner enrols");
        self.store.create_account(&account, None, e)?;
        let enrolment = self.request_enrolment(&who, &account.id, false, meta)?;
        Ok((account, Issued::Enrolment(enrolment)))
    }

    /// A credential for an existing account: a token (operators, and admins for accounts that see no personal
    /// data) or an
    /// enrolment for a second admin to approve. Unless `keep_others`, the new token replaces the account's older
    /// ones when it is issued.
    pub fn issue_credential(
        &self,
        actor: Actor<'_>,
        id: &str,
        keep_others: bool,
        meta: &RequestMeta,
    ) -> Result<Issued, GuardError> {
        let (who, mut e) = self.admin(actor, AdminAction::ManageAccounts, "token_issue", meta)?;
        let id = AccountId::parse(id)?;
        let target = match self.store.account(&id)? {
            Some(a) => a,
            None => {
                return Err(self.deny(e, GuardError::NotFound(format!("account {id}"))));
            }
        };
        if !self.direct(actor, &target)? {
            return self
                .request_enrolment(&who, &id, keep_others, meta)
                .map(Issued::Enrolment);
        }
        e.detail = Some(format!(
            "account={id}; {}",
            if keep_others {
                "older tokens kept"
            } else {
                "older tokens revoked"
            }
        ));
        let (issued, stored) = self.new_token_for(&id, issuer(actor, &who));
        self.store.add_token(&id, &stored, keep_others, e)?;
        Ok(Issued::Token(issued))
    }

    fn request_enrolment(
        &self,
        who: &Account,
        account: &AccountId,
        keep_existing: bool,
        meta: &RequestMeta,
    ) -> Result<Enrolment, GuardError> {
        let now = self.clock.now();
        let enrolment = Enrolment {
            id: format!("E{}", &new_token()[4..20].replace(['-', '_'], "x")),
            account: account.to_string(),
            state: "awaiting_approval".into(),
            requested_by: who.id.to_string(),
            requested_at: now,
            approved_by: None,
            usable_until: now.saturating_add(self.credentials.enrolment_ms),
            keep_existing,
        };
        let mut e = self.entry(who.id.as_str(), meta, "enrolment_request");
        e.detail = Some(format!(
            "enrolment={} account={account}; a second admin must approve",
            enrolment.id
        ));
        let body = case_body(&EnrolmentCase {
            enrolment: enrolment.clone(),
            code_hash: None,
        })?;
        self.store.put_case(KIND, &enrolment.id, &body, None, e)?;
        self.raise(
            account.as_str(),
            RiskAlert {
                kind: "credential_requested".into(),
                severity: "warning".into(),
                detail: format!(
                    "{} asked for a credential for {account} (enrolment {}); it works only once a second admin approves and the owner redeems the code",
                    who.id, enrolment.id
                ),
            },
        );
        Ok(enrolment)
    }

    fn enrolment_case(&self, id: &str) -> Result<(EnrolmentCase, String), GuardError> {
        let valid =
            !id.is_empty() && id.len() <= 40 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        let body = match valid {
            true => self.store.case(KIND, id)?,
            false => None,
        }
        .ok_or_else(|| GuardError::NotFound(format!("enrolment {id}")))?;
        let case = serde_json::from_str(&body)
            .map_err(|e| GuardError::internal_from("enrolment case", e))?;
        Ok((case, body))
    }

    /// An enrolment, for admins.
    pub fn enrolment(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<Enrolment, GuardError> {
        self.admin(actor, AdminAction::ManageAccounts, "enrolment_get", meta)?;
        Ok(self.enrolment_case(id)?.0.enrolment)
    }

    /// Approves enrolment `id`: a second admin (not its requester) receives the one-time code for the owner.
    pub fn approve_enrolment(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<EnrolmentCode, GuardError> {
        let (who, mut e) = self.admin(
            actor,
            AdminAction::ManageAccounts,
            "enrolment_approve",
            meta,
        )?;
        e.detail = Some(format!("enrolment={id}"));
        let (mut case, was) = match self.enrolment_case(id) {
            Ok(c) => c,
            Err(err) => return Err(self.deny(e, err)),
        };
        let now = self.clock.now();
        let refusal = if case.enrolment.state != "awaiting_approval" {
            Some(GuardError::Conflict(format!(
                "enrolment {id} is {}",
                case.enrolment.state
            )))
        } else if now >= case.enrolment.usable_until {
            Some(GuardError::Expired(format!("enrolment {id} has expired")))
        } else if who.id.as_str() == case.enrolment.requested_by
            || who.id.as_str() == case.enrolment.account
        {
            Some(GuardError::Forbidden(
                "an enrolment is approved by a second admin, not by the one who asked for it or the account it is for".into(),
            ))
        } else {
            None
        };
        if let Some(err) = refusal {
            return Err(self.deny(e, err));
        }
        let code = format!("wbe_{}", &new_token()[4..]);
        case.enrolment.state = "approved".into();
        case.enrolment.approved_by = Some(who.id.to_string());
        case.enrolment.usable_until = now.saturating_add(self.credentials.enrolment_ms);
        case.code_hash = Some(hex::encode(hash_token(&code)));
        add_detail(&mut e, &format!("account={}", case.enrolment.account));
        self.store
            .put_case(KIND, id, &case_body(&case)?, Some(&was), e)?;
        Ok(EnrolmentCode {
            enrolment: case.enrolment,
            code,
        })
    }

    /// Cancels enrolment `id` (before it is redeemed).
    pub fn cancel_enrolment(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<Enrolment, GuardError> {
        let (_, mut e) =
            self.admin(actor, AdminAction::ManageAccounts, "enrolment_cancel", meta)?;
        e.detail = Some(format!("enrolment={id}"));
        let (mut case, was) = match self.enrolment_case(id) {
            Ok(c) => c,
            Err(err) => return Err(self.deny(e, err)),
        };
        if !matches!(
            case.enrolment.state.as_str(),
            "awaiting_approval" | "approved"
        ) {
            let err = GuardError::Conflict(format!("enrolment {id} is {}", case.enrolment.state));
            return Err(self.deny(e, err));
        }
        case.enrolment.state = "cancelled".into();
        case.code_hash = None;
        self.store
            .put_case(KIND, id, &case_body(&case)?, Some(&was), e)?;
        Ok(case.enrolment)
    }

    /// Redeems an approved enrolment's code for a token of its account. No bearer credential is needed: the
    /// code is the proof. The enrolment is used up first, so a code works once even under a race.
    pub fn redeem_enrolment(
        &self,
        id: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<IssuedToken, GuardError> {
        // An unknown enrolment is refused unrecorded, as an unknown token is: anyone can send this request, and
        // the audit log is not theirs to fill. A wrong code for a real enrolment is recorded under its account.
        let (mut case, was) = self
            .enrolment_case(id)
            .map_err(|_| GuardError::Unauthenticated)?;
        let mut e = self.entry(&case.enrolment.account, meta, "enrolment_redeem");
        e.detail = Some(format!("enrolment={}", case.enrolment.id));
        let matches = case
            .code_hash
            .as_deref()
            .is_some_and(|h| h == hex::encode(hash_token(code)));
        if case.enrolment.state != "approved" || !matches {
            return Err(self.deny(e, GuardError::Unauthenticated));
        }
        if self.clock.now() >= case.enrolment.usable_until {
            return Err(self.deny(
                e,
                GuardError::Expired("the enrolment code has expired".into()),
            ));
        }
        let account = AccountId::parse(&case.enrolment.account)?;
        let issued_by = format!(
            "enrolment {} (requested by {}, approved by {})",
            case.enrolment.id,
            case.enrolment.requested_by,
            case.enrolment.approved_by.as_deref().unwrap_or("?")
        );
        case.enrolment.state = "redeemed".into();
        case.code_hash = None;
        let mut used = self.entry(&case.enrolment.account, meta, "enrolment_redeem");
        used.detail = Some(format!("enrolment={}; code used up", case.enrolment.id));
        self.store
            .put_case(KIND, id, &case_body(&case)?, Some(&was), used)?;
        let keep = case.enrolment.keep_existing;
        let mut e = self.entry(account.as_str(), meta, "token_issue");
        e.detail = Some(format!(
            "token issued; {}",
            if keep {
                "older tokens kept"
            } else {
                "older tokens revoked"
            }
        ));
        let (issued, stored) = self.new_token_for(&account, issued_by.clone());
        self.store.add_token(&account, &stored, keep, e)?;
        self.raise(
            account.as_str(),
            RiskAlert {
                kind: "credential_issued".into(),
                severity: "info".into(),
                detail: format!("a token was issued to {account} by {issued_by}"),
            },
        );
        Ok(issued)
    }

    /// The tokens of account `id` still working, as metadata: for an admin, or for the account's owner.
    pub fn tokens_of(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<Vec<TokenInfo>, GuardError> {
        let id = AccountId::parse(id)?;
        self.owner_or_admin(actor, &id, "token_list", meta)?;
        Ok(self.store.tokens_of(&id, wbg_core::now_millis())?)
    }

    /// Revokes token `token_id` of account `id`: an admin, or the account's owner.
    pub fn revoke_token(
        &self,
        actor: Actor<'_>,
        id: &str,
        token_id: &str,
        meta: &RequestMeta,
    ) -> Result<(), GuardError> {
        let id = AccountId::parse(id)?;
        let mut e = self.owner_or_admin(actor, &id, "token_revoke", meta)?;
        if token_id.len() != 12 || !token_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(GuardError::Invalid(
                "a token id is 12 hex digits (GET …/tokens lists them)".into(),
            ));
        }
        e.detail = Some(format!("account={id} token={token_id}"));
        match self
            .store
            .revoke_token(&id, &token_id.to_ascii_lowercase(), e.clone())
        {
            Ok(_) => Ok(()),
            Err(wbg_store::StoreError::NotFound(what)) => {
                Err(self.deny(e, GuardError::NotFound(what)))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Opens a console session for the holder of `token`: the account it names, if that account is active.
    /// Audited (`console_sign_in`, `via=token` or `via=oidc`: how the browser got it) either way once the
    /// credential names an account; a credential that names
    /// none is refused without an entry, as every unauthenticated request is.
    pub fn console_sign_in(
        &self,
        token: &str,
        via: &str,
        meta: &RequestMeta,
    ) -> Result<Account, GuardError> {
        let who = self.authenticate(token)?;
        let mut e = self.entry(who.id.as_str(), meta, "console_sign_in");
        e.detail = Some(format!("via={via}"));
        self.require_active(&who, &e)?;
        self.store.append_audit(e)?;
        Ok(self.shown(who))
    }

    /// Closes a console session (audited `console_sign_out`; `reason` is `signed_out` or `idle`).
    pub fn console_sign_out(
        &self,
        account: &str,
        reason: &str,
        meta: &RequestMeta,
    ) -> Result<(), GuardError> {
        let mut e = self.entry(account, meta, "console_sign_out");
        e.detail = Some(format!("reason={reason}"));
        self.store.append_audit(e)?;
        Ok(())
    }

    /// The caller's own account and tokens: how each came to exist, so an owner sees a credential issued to
    /// their name by someone else.
    pub fn whoami(&self, token: &str) -> Result<WhoAmI, GuardError> {
        let account = self.shown(self.authenticate(token)?);
        let tokens = self.store.tokens_of(&account.id, wbg_core::now_millis())?;
        Ok(WhoAmI { account, tokens })
    }

    /// The audit entry of an action on `id`'s credentials by its owner or an admin (any other caller is refused).
    fn owner_or_admin(
        &self,
        actor: Actor<'_>,
        id: &AccountId,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<wbg_audit::AuditEntry, GuardError> {
        let who = self.actor(actor)?;
        if who.id == *id {
            return Ok(self.entry(who.id.as_str(), meta, name));
        }
        let (_, e) = self.admin(actor, AdminAction::ManageAccounts, name, meta)?;
        Ok(e)
    }
}

/// How a directly issued token names its issuer.
fn issuer(actor: Actor<'_>, who: &Account) -> String {
    match actor {
        Actor::Local(_) => format!("operator {} at the machine", who.id),
        Actor::Token(_) => format!("admin {}", who.id),
    }
}

fn case_body(case: &EnrolmentCase) -> Result<String, GuardError> {
    serde_json::to_string(case).map_err(|e| GuardError::internal_from("enrolment case", e))
}
