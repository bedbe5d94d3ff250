//! The analysts' console at `/console`: a static page and scripts embedded in the binary, and the sessions that
//! let a browser use the public API without holding a token in script.
//!
//! **Why static pages over the public API.** The console calls exactly the endpoints a script with the same
//! token would (`/v1/alerts`, `/v1/audit/entries`, …), so no page can show more than the API gives the signed-in
//! account — role-awareness is the API's, not a second copy of it — and there is no template engine, no build
//! step and no package beyond the Rust toolchain: the assets are `include_str!`ed and served as they are.
//!
//! **Sessions.** `POST /console/session {token}` checks the credential with the guard (audited
//! `console_sign_in`; a suspended account is refused and audited) and answers with a cookie naming a random
//! 256-bit session id — `HttpOnly`, `SameSite=Strict`, `Path=/`, and under TLS `Secure` with the `__Host-`
//! prefix. The node keeps the token in memory against the SHA-256 of the id, so every API call made with the
//! cookie is the guard's ordinary call as that token: a revoked token or a suspended account ends the session at
//! the next request. A session lapses after `[console] idle_minutes` without a request (default 15) and after
//! `max_hours` in any case (default 12); the lapse is audited (`console_sign_out reason=idle`). Sessions live in
//! the node's memory: a restart signs everyone out, and behind a load balancer the console needs sticky sessions.
//!
//! **Sign-in at the identity provider.** With `[credentials.oidc]` `authorization_endpoint`, `token_endpoint`
//! and `redirect_uri`, `/console/oidc/start` sends the browser there (code flow, PKCE S256, a nonce, a `state`
//! bound to the browser by a `SameSite=Lax` cookie) and `/console/oidc/callback` exchanges the code for the ID
//! token, checks its nonce, and opens a session with it as `POST /console/session` would (`via=oidc`).
//!
//! **CSRF.** A request that changes anything (any method but GET/HEAD) and authenticates with the cookie must
//! carry the session's CSRF token in `X-CSRF-Token` (given at sign-in and by `GET /console/session`, never in the
//! cookie). `SameSite=Strict` already keeps the cookie off cross-site requests; the token is the second lock.
//! A bearer token in `Authorization` is used as before and needs no CSRF token (no browser sends it by itself).
//! A cookie request the browser marks as coming from another origin (`Sec-Fetch-Site` other than `same-origin`
//! or `none`) is refused outright, GETs included: a sibling subdomain is the same *site*, so SameSite alone does
//! not keep it out.
//!
//! **Content-Security-Policy.** Every console response carries `default-src 'none'; script-src 'self'; …`: no
//! inline script, no `eval`, nothing from another origin, no framing.
use super::error::{ApiError, ApiResult};
use super::extract::{blocking, Body, Origin};
use super::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64URL, Engine};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wbg_guard::GuardError;

/// `[console]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console at `/console` (default true).
    pub enabled: bool,
    /// Minutes without a request after which a session lapses (default 15).
    pub idle_minutes: u64,
    /// Hours after which a session lapses whatever its activity (default 12).
    pub max_hours: u64,
    /// `[console.sla_minutes]`: how long an alert of each severity may stay untriaged (`new`) before the
    /// queue shows it overdue.
    pub sla_minutes: SlaMinutes,
    /// The IANA time zone the console shows times in (default: the configuration's `time_zone`, the one
    /// everything else is written in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            idle_minutes: 15,
            max_hours: 12,
            sla_minutes: SlaMinutes::default(),
            time_zone: None,
        }
    }
}

/// Minutes to first triage, per severity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SlaMinutes {
    /// `critical` alerts (default 15).
    pub critical: u64,
    /// `warning` alerts (default 60).
    pub warning: u64,
    /// `info` alerts (default 240).
    pub info: u64,
}

impl Default for SlaMinutes {
    fn default() -> Self {
        SlaMinutes {
            critical: 15,
            warning: 60,
            info: 240,
        }
    }
}

impl ConsoleConfig {
    /// Refuses settings no session could work with.
    pub fn check(&self) -> Result<(), String> {
        if self.idle_minutes == 0 || self.idle_minutes > 24 * 60 {
            return Err("[console] idle_minutes must be 1-1440".into());
        }
        if self.max_hours == 0 || self.max_hours > 24 * 7 {
            return Err("[console] max_hours must be 1-168".into());
        }
        if self.time_zone.as_deref().is_some_and(|tz| {
            tz.is_empty()
                || tz.len() > 64
                || !tz
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
        }) {
            return Err(
                "[console] time_zone must be an IANA zone name such as Asia/Shanghai".into(),
            );
        }
        let s = &self.sla_minutes;
        if [s.critical, s.warning, s.info]
            .iter()
            .any(|m| *m == 0 || *m > 7 * 24 * 60)
        {
            return Err("[console.sla_minutes] must each be 1-10080".into());
        }
        Ok(())
    }
}

/// The most sessions a node keeps; a sign-in beyond it is refused (503) until some lapse.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    token: String,
    account: String,
    csrf: String,
    created: Instant,
    last: Instant,
}

/// What a request's cookie resolved to.
pub(crate) struct SessionAuth {
    /// The session's credential.
    pub token: String,
    /// The session itself, for work that outlives the request (an event stream ends with it).
    pub session: SessionHandle,
}

/// A session, as a long-lived request holds it: whether it is still open (not signed out, not lapsed).
#[derive(Clone)]
pub(crate) struct SessionHandle {
    sessions: std::sync::Arc<Sessions>,
    key: [u8; 32],
}

impl SessionHandle {
    /// The session is still open. Looking does not count as activity.
    pub(crate) fn open(&self) -> bool {
        let now = Instant::now();
        self.sessions
            .locked()
            .get(&self.key)
            .is_some_and(|s| !self.sessions.lapsed(s, now))
    }
}

/// The node's console sessions, by the SHA-256 of their ids.
pub(crate) struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    config: ConsoleConfig,
    /// Served over TLS: cookies are `Secure` and `__Host-` prefixed.
    secure: bool,
    /// Sign-in at the identity provider, when configured.
    login: Option<Login>,
}

/// Sign-in at the identity provider: its settings and the sign-ins under way, by their `state`.
pub(crate) struct Login {
    oidc: wbg_guard::OidcLogin,
    /// Further CA certificates for the token endpoint (`[credentials.oidc] jwks_ca_file`).
    ca_file: Option<std::path::PathBuf>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// A sign-in sent to the identity provider and not back yet.
struct Pending {
    verifier: String,
    nonce: String,
    at: Instant,
}

/// How long a sign-in may take at the identity provider.
const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Sign-ins under way at most (a flood of starts is refused, not remembered).
const MAX_PENDING: usize = 10_000;

impl Login {
    pub(crate) fn new(oidc: wbg_guard::OidcLogin, ca_file: Option<std::path::PathBuf>) -> Login {
        Login {
            oidc,
            ca_file,
            pending: Mutex::new(HashMap::new()),
        }
    }
}

/// The value of cookie `name` in a request's `Cookie` headers: at most 64 characters (every cookie the console
/// sets is a 43-character id), never empty.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn random_id() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    B64URL.encode(b)
}

impl Sessions {
    pub(crate) fn new(config: ConsoleConfig, secure: bool) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            config,
            secure,
            login: None,
        }
    }

    /// Offers sign-in at the identity provider too.
    pub(crate) fn with_login(mut self, login: Option<Login>) -> Sessions {
        self.login = login;
        self
    }

    fn cookie_name(&self) -> &'static str {
        if self.secure {
            "__Host-wbg_console"
        } else {
            "wbg_console"
        }
    }

    fn lapsed(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last) > Duration::from_secs(self.config.idle_minutes * 60)
            || now.duration_since(s.created) > Duration::from_secs(self.config.max_hours * 3600)
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while the map was held leaves nothing half-written worth refusing service over.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops lapsed sessions; returns their accounts (to audit).
    fn sweep(&self) -> Vec<String> {
        let now = Instant::now();
        let mut map = self.locked();
        let gone: Vec<[u8; 32]> = map
            .iter()
            .filter(|(_, s)| self.lapsed(s, now))
            .map(|(k, _)| *k)
            .collect();
        gone.into_iter()
            .filter_map(|k| map.remove(&k).map(|s| s.account))
            .collect()
    }

    /// A new session for `account` holding `token`: `(id, csrf)`.
    fn open(&self, token: String, account: String) -> Option<(String, String)> {
        let (id, csrf) = (random_id(), random_id());
        let now = Instant::now();
        let mut map = self.locked();
        if map.len() >= MAX_SESSIONS {
            return None;
        }
        map.insert(
            digest(&id),
            Session {
                token,
                account,
                csrf: csrf.clone(),
                created: now,
                last: now,
            },
        );
        Some((id, csrf))
    }

    /// The session a request's cookie names, touched; `Err(Some(account))` when it has just lapsed.
    fn touch(&self, id: &str) -> Result<(String, String), Option<String>> {
        let key = digest(id);
        let now = Instant::now();
        let mut map = self.locked();
        let Some(s) = map.get_mut(&key) else {
            return Err(None);
        };
        if self.lapsed(s, now) {
            return Err(map.remove(&key).map(|s| s.account));
        }
        s.last = now;
        Ok((s.token.clone(), s.csrf.clone()))
    }

    fn close(&self, id: &str) -> Option<String> {
        self.locked().remove(&digest(id)).map(|s| s.account)
    }

    /// The session id a request's `Cookie` headers carry.
    fn cookie<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie(headers, self.cookie_name())
    }

    fn set_cookie(&self, id: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.cookie_name(),
            self.config.max_hours * 3600
        )
    }

    fn clear_cookie(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
            self.cookie_name()
        )
    }
}

/// Audits the sign-out of sessions that lapsed (off the runtime; a failure is logged, never shown).
fn audit_lapsed(s: &AppState, accounts: Vec<String>) {
    if accounts.is_empty() {
        return;
    }
    let guard = s.guard.clone();
    let meta = guard.request_meta(None, None);
    tokio::task::spawn_blocking(move || {
        for a in accounts {
            if let Err(e) = guard.console_sign_out(&a, "idle", &meta) {
                tracing::error!(error = %e, "cannot audit a console session's lapse");
            }
        }
    });
}

/// The credential of a request that authenticates with the console's cookie, checked for CSRF on anything but
/// GET and HEAD. `Ok(None)` when the request carries no session cookie at all.
pub(crate) fn session_auth(
    s: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<Option<SessionAuth>> {
    let Some(id) = s.sessions.cookie(headers) else {
        return Ok(None);
    };
    // SameSite=Strict keeps the cookie off cross-site requests, but a sibling subdomain is the same site: a request
    // the browser says came from anywhere but this origin (or the user's own navigation) is refused, GETs included
    // (an export file or an evidence pack is a GET).
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "a console session is used only by the console's own pages",
            ));
        }
    }
    let (token, csrf) = match s.sessions.touch(id) {
        Ok(found) => found,
        Err(lapsed) => {
            audit_lapsed(s, lapsed.into_iter().collect());
            return Err(GuardError::Unauthenticated.into());
        }
    };
    if method != Method::GET && method != Method::HEAD {
        let given = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // Compared as digests, so the time taken says nothing about how much of the token was right.
        if digest(given) != digest(&csrf) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "a console request that changes something must carry the session's X-CSRF-Token",
            ));
        }
    }
    Ok(Some(SessionAuth {
        token,
        session: SessionHandle {
            sessions: s.sessions.clone(),
            key: digest(id),
        },
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignIn {
    token: String,
}

/// What the console's script learns about its session.
#[derive(Debug, Serialize)]
pub(super) struct SessionInfo {
    account: String,
    role: String,
    outlet: Option<String>,
    /// Send as `X-CSRF-Token` with every request that changes something.
    csrf: String,
    idle_minutes: u64,
    sla_minutes: SlaMinutes,
    time_zone: String,
}

fn info(s: &AppState, a: &wbg_core::Account, csrf: String) -> SessionInfo {
    SessionInfo {
        account: a.id.to_string(),
        role: a.role.as_str().to_owned(),
        outlet: a.outlet.as_ref().map(|o| o.to_string()),
        csrf,
        idle_minutes: s.sessions.config.idle_minutes,
        sla_minutes: s.sessions.config.sla_minutes.clone(),
        time_zone: s
            .sessions
            .config
            .time_zone
            .clone()
            .unwrap_or_else(|| wbg_core::when::zone_name().to_owned()),
    }
}

async fn sign_in(
    State(s): State<AppState>,
    Origin(meta): Origin,
    Body(body): Body<SignIn>,
) -> ApiResult<Response> {
    let token = body.token.trim().to_owned();
    if token.is_empty() || token.len() > 8192 {
        return Err(ApiError::invalid(
            "token must be an API token or an identity provider's token",
        ));
    }
    audit_lapsed(&s, s.sessions.sweep());
    let guard = s.guard.clone();
    let held = token.clone();
    let account = blocking(move || guard.console_sign_in(&held, "token", &meta)).await?;
    let Some((id, csrf)) = s.sessions.open(token, account.id.to_string()) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "too many console sessions are open on this node; try again later",
        ));
    };
    let cookie = HeaderValue::from_str(&s.sessions.set_cookie(&id))
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "cookie"))?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(info(&s, &account, csrf)),
    )
        .into_response())
}

async fn session(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Json<SessionInfo>> {
    let id = s
        .sessions
        .cookie(&headers)
        .ok_or(GuardError::Unauthenticated)?;
    let (token, csrf) = match s.sessions.touch(id) {
        Ok(found) => found,
        Err(lapsed) => {
            audit_lapsed(&s, lapsed.into_iter().collect());
            return Err(GuardError::Unauthenticated.into());
        }
    };
    let guard = s.guard.clone();
    let account = blocking(move || guard.authenticate(&token)).await?;
    Ok(Json(info(&s, &account, csrf)))
}

async fn sign_out(
    State(s): State<AppState>,
    Origin(meta): Origin,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // The CSRF check first: a forged sign-out is still a forged request.
    session_auth(&s, &method, &headers)?.ok_or(GuardError::Unauthenticated)?;
    let account = s
        .sessions
        .cookie(&headers)
        .and_then(|id| s.sessions.close(id));
    if let Some(a) = account {
        let guard = s.guard.clone();
        blocking(move || guard.console_sign_out(&a, "signed_out", &meta)).await?;
    }
    let cookie = HeaderValue::from_str(&s.sessions.clear_cookie())
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "cookie"))?;
    Ok(([(header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response())
}

#[derive(Debug, Serialize)]
struct SignInOptions {
    /// The console offers sign-in at the identity provider (`/console/oidc/start`).
    identity_provider: bool,
}

async fn sign_in_options(State(s): State<AppState>) -> Json<SignInOptions> {
    Json(SignInOptions {
        identity_provider: s.sessions.login.is_some(),
    })
}

const STATE_COOKIE: &str = "wbg_oidc_state";

fn redirect(to: &str, cookies: &[String]) -> ApiResult<Response> {
    let bad = |_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "header");
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(to).map_err(bad)?);
    for c in cookies {
        r.headers_mut()
            .append(header::SET_COOKIE, HeaderValue::from_str(c).map_err(bad)?);
    }
    Ok(r)
}

/// Sends the browser to the identity provider (authorization code flow with PKCE, a nonce, and the `state`
/// also set in a short-lived cookie, so a callback is accepted only in the browser that started it).
async fn oidc_start(State(s): State<AppState>) -> ApiResult<Response> {
    let login = s.sessions.login.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no identity provider sign-in is configured ([credentials.oidc] authorization_endpoint)",
        )
    })?;
    let (state, verifier, nonce) = (random_id(), random_id(), random_id());
    let challenge = B64URL.encode(Sha256::digest(verifier.as_bytes()));
    {
        let mut pending = login.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| p.at.elapsed() < LOGIN_TTL);
        if pending.len() >= MAX_PENDING {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "too many sign-ins under way; try again shortly",
            ));
        }
        pending.insert(
            state.clone(),
            Pending {
                verifier,
                nonce: nonce.clone(),
                at: Instant::now(),
            },
        );
    }
    let mut to = login.oidc.authorization_endpoint.clone();
    to.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &login.oidc.client_id)
        .append_pair("redirect_uri", login.oidc.redirect_uri.as_str())
        .append_pair("scope", "openid")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    // SameSite=Lax: the identity provider's redirect back is a top-level navigation from another site.
    let secure = if s.sessions.secure { "; Secure" } else { "" };
    let cookie = format!(
        "{STATE_COOKIE}={state}; Path=/console/oidc; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        LOGIN_TTL.as_secs()
    );
    redirect(to.as_str(), &[cookie])
}

#[derive(Debug, Deserialize)]
struct Callback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// The identity provider's answer: the state checked against the sign-in under way and the browser's cookie,
/// the code exchanged (with the PKCE verifier) for an ID token, whose nonce must be this sign-in's; the token
/// then opens a console session exactly as a pasted one would (the guard checks its signature, issuer,
/// audience, expiry and account; audited `console_sign_in via=oidc`), and the browser goes to the console.
async fn oidc_callback(
    State(s): State<AppState>,
    Origin(meta): Origin,
    headers: HeaderMap,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> ApiResult<Response> {
    let login = s.sessions.login.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no identity provider sign-in is configured",
        )
    })?;
    // Other parameters an identity provider adds (`iss`, `session_state`, …) are let through.
    let cb: Callback = super::extract::parse_query(q.as_deref().unwrap_or(""))?;
    if cb.error.is_some() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the identity provider did not sign you in",
        ));
    }
    let (Some(code), Some(state)) = (cb.code, cb.state) else {
        return Err(ApiError::invalid(
            "the identity provider's answer lacks code or state",
        ));
    };
    let cookie = cookie(&headers, STATE_COOKIE).unwrap_or_default();
    let pending = login
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&state)
        .filter(|p| p.at.elapsed() < LOGIN_TTL);
    // Compared as digests: the time taken says nothing about how much of the state was right.
    let Some(pending) = pending.filter(|_| digest(cookie) == digest(&state)) else {
        return Err(ApiError::invalid(
            "no sign-in of this browser is waiting for that answer: start again",
        ));
    };
    let oidc = login.oidc.clone();
    let ca_file = login.ca_file.clone();
    let id_token = blocking(move || {
        exchange(&oidc, ca_file.as_deref(), &code, &pending.verifier).and_then(|t| {
            if nonce_of(&t).as_deref() == Some(pending.nonce.as_str()) {
                Ok(t)
            } else {
                Err(GuardError::Unauthenticated)
            }
        })
    })
    .await?;
    let guard = s.guard.clone();
    let held = id_token.clone();
    let account = blocking(move || guard.console_sign_in(&held, "oidc", &meta)).await?;
    audit_lapsed(&s, s.sessions.sweep());
    let Some((id, _)) = s.sessions.open(id_token, account.id.to_string()) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "too many console sessions are open on this node; try again later",
        ));
    };
    let secure = if s.sessions.secure { "; Secure" } else { "" };
    let clear =
        format!("{STATE_COOKIE}=; Path=/console/oidc; HttpOnly; SameSite=Lax; Max-Age=0{secure}");
    redirect("/console", &[s.sessions.set_cookie(&id), clear])
}

/// Exchanges `code` at the token endpoint for the ID token (`Unauthenticated` for any refusal: the browser is
/// told no more than that; the reason is logged without the code).
fn exchange(
    oidc: &wbg_guard::OidcLogin,
    ca_file: Option<&std::path::Path>,
    code: &str,
    verifier: &str,
) -> Result<String, GuardError> {
    let fail = |why: String| {
        tracing::warn!(reason = %why, "identity provider sign-in refused");
        GuardError::Unauthenticated
    };
    let client = crate::webhook::client(
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none()),
        ca_file,
    )
    .map_err(|e| fail(format!("client: {e}")))?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", oidc.redirect_uri.as_str()),
        ("client_id", oidc.client_id.as_str()),
        ("code_verifier", verifier),
    ];
    if let Some(secret) = &oidc.client_secret {
        form.push(("client_secret", secret.as_str()));
    }
    let res = client
        .post(oidc.token_endpoint.clone())
        .header(header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .map_err(|e| fail(format!("token endpoint unreachable: {e}")))?;
    if !res.status().is_success() {
        return Err(fail(format!("token endpoint answered {}", res.status())));
    }
    #[derive(Deserialize)]
    struct Tokens {
        id_token: String,
    }
    let mut body = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(res, 1 << 20), &mut body)
        .map_err(|e| fail(format!("token endpoint's answer: {e}")))?;
    let t: Tokens =
        serde_json::from_str(&body).map_err(|_| fail("no id_token in the answer".into()))?;
    Ok(t.id_token)
}

/// The `nonce` claim of a JWT, read without checking it (the guard checks the token whole right after).
fn nonce_of(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = B64URL.decode(payload.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("nonce")?.as_str().map(str::to_owned)
}

/// The assets, embedded: `(name, content type, body)`.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/console.js"),
    ),
    (
        "verify.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/verify.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../console/console.css"),
    ),
];

const INDEX: &str = include_str!("../../console/index.html");

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => ([(header::CONTENT_TYPE, *kind)], *body).into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such console asset")
            .into_response(),
    }
}

/// The policy every console response carries.
pub(crate) const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(super) async fn headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// The console's routes (none when `[console] enabled = false`).
pub(super) fn routes(enabled: bool) -> Router<AppState> {
    if !enabled {
        return Router::new();
    }
    Router::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/assets/{name}", get(asset))
        .route(
            "/console/session",
            get(session).post(sign_in).delete(sign_out),
        )
        .route("/console/sign-in-options", get(sign_in_options))
        .route("/console/oidc/start", get(oidc_start))
        .route("/console/oidc/callback", get(oidc_callback))
        .layer(axum::middleware::from_fn(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(idle_minutes: u64) -> Sessions {
        Sessions::new(
            ConsoleConfig {
                idle_minutes,
                ..ConsoleConfig::default()
            },
            false,
        )
    }

    #[test]
    fn a_session_is_found_by_its_cookie_alone_and_closes() {
        let s = sessions(15);
        let (id, csrf) = s.open("tok".into(), "aud-1".into()).unwrap();
        assert_ne!(id, csrf);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; wbg_console={id}")).unwrap(),
        );
        assert_eq!(s.cookie(&h), Some(id.as_str()));
        assert_eq!(s.touch(&id).unwrap(), ("tok".to_string(), csrf));
        assert!(s.touch("not-a-session").is_err());
        assert_eq!(s.close(&id).as_deref(), Some("aud-1"));
        assert!(s.touch(&id).is_err());
    }

    #[test]
    fn a_lapsed_session_is_gone_and_names_its_account() {
        let s = sessions(1);
        let (id, _) = s.open("tok".into(), "aud-1".into()).unwrap();
        s.locked().get_mut(&digest(&id)).unwrap().last -= Duration::from_secs(61);
        assert_eq!(s.touch(&id), Err(Some("aud-1".into())));
        assert_eq!(s.touch(&id), Err(None));
    }

    #[test]
    fn cookies_are_strict_and_secure_under_tls() {
        let plain = sessions(15).set_cookie("x");
        assert!(plain.starts_with("wbg_console=x; Path=/; HttpOnly; SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let tls = Sessions::new(ConsoleConfig::default(), true).set_cookie("x");
        assert!(tls.starts_with("__Host-wbg_console=x;") && tls.ends_with("; Secure"));
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        assert!(ConsoleConfig::default().check().is_ok());
        let mut c = ConsoleConfig::default();
        c.sla_minutes.critical = 0;
        assert!(c.check().is_err());
        c = ConsoleConfig {
            idle_minutes: 0,
            ..ConsoleConfig::default()
        };
        assert!(c.check().is_err());
    }
}
