//! The HTTP API (axum): thin handlers over the guard, one module per area, JSON errors, OpenAPI, metrics.
//!
//! A handler is a few lines of intent: the [`Caller`](extract::Caller) extractor authenticates nothing itself
//! (the guard does) but carries the bearer credential and where the request came from; [`Body`](extract::Body)
//! and [`Q`](extract::Q) parse with messages that cannot echo a value; `caller.run(|guard, caller| …)` runs the
//! guard call off the async runtime. Nothing here touches personal data except to pass it to the guard and
//! back: bodies are never logged, and the request log records the route template (`/v1/waybills/{no}`), never
//! the path or query a client sent.
//!
//! | module | routes |
//! | --- | --- |
//! | `accounts` | `/v1/accounts` list, suspend, reinstate, transfer |
//! | `credentials` | account creation, tokens, enrolments, `/v1/me`, the roster, the access review |
//! | `policies` | `/v1/policies` versions, proposals, approval, rollback, replay |
//! | `waybills` | ingest, the guarded read, labels, calls, scan events |
//! | `forensics` | alerts, attributions, incidents, notifications, canaries |
//! | `work` | tickets, exports |
//! | `audit` | checkpoint, key, proofs, entries |
//! | `track` | `/track`: the public lookup (JSON and a page), no account, no personal data |
//! | `console` | `/console`: the analysts' pages, their assets, sign-in sessions (cookie + CSRF) |
use axum::extract::{DefaultBodyLimit, MatchedPath, RawQuery, State};
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use utoipa::OpenApi;
use wbg_guard::{Guard, GuardError};

mod accounts;
mod audit;
mod console;
mod credentials;
mod error;
mod extract;
mod forensics;
pub mod listen;
mod policies;
mod track;
mod waybills;
mod work;

pub use console::ConsoleConfig;
pub(crate) use error::json_error_message;
use error::{ApiError, ApiErrorBody, ApiResult};
use extract::blocking;

/// Largest request body: a full batch of 10,000 waybills fits with room to spare.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// What every handler can reach: one reference-counted block, cloned for every request (by the router and by
/// each extractor that takes it), so a clone is one count and not one per part — a profile of the read load
/// had the per-part clones and drops at over 1 % of the node.
#[derive(Clone)]
struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
struct Shared {
    guard: Arc<Guard>,
    metrics: PrometheusHandle,
    /// `[server] trusted_proxies`: peers whose `X-Forwarded-For` names the client.
    trusted_proxies: Vec<ipnet::IpNet>,
    /// The console's sessions (a signed-in request's handle keeps them too).
    sessions: Arc<console::Sessions>,
    /// How often a live stream sends a keep-alive comment when it has nothing else to send.
    stream_keep_alive: std::time::Duration,
}

/// A live stream's keep-alive: every 15 s (axum's default), or often enough that a connection `idle` allows to go
/// quiet for less is kept open — three times within it.
fn stream_keep_alive(idle: std::time::Duration) -> std::time::Duration {
    let every = std::time::Duration::from_secs(15);
    if idle.is_zero() {
        every
    } else {
        every.min(idle / 3)
    }
}

/// How the router is set up beyond the guard.
#[derive(Debug, Clone, Default)]
pub struct RouterOptions {
    /// Peers whose `X-Forwarded-For` is believed (`[server] trusted_proxies`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `[console]`.
    pub console: ConsoleConfig,
    /// Serve the public lookup `/track` (`[tracking] enabled`).
    pub tracking: bool,
    /// Served over TLS (the console's cookie is then `Secure`).
    pub tls: bool,
    /// The console's sign-in at the identity provider (`[credentials.oidc]`), and the further CA certificates
    /// its token endpoint needs.
    pub login: Option<(wbg_guard::OidcLogin, Option<std::path::PathBuf>)>,
    /// How long a request body may go without a byte before the request fails with 408 (`[server]
    /// client_timeout_seconds`): a client that declared a body and sends it slowly, or not at all, would otherwise
    /// hold its connection and a task for as long as it liked.
    pub body_wait: std::time::Duration,
    /// How long a connection may go without a byte before it is closed (`[server] idle_timeout_seconds`; zero:
    /// not bounded): a live stream's keep-alive comes well within it.
    pub idle: std::time::Duration,
}

/// The query string into `T` (for handlers that take it raw).
fn parse_query<T: serde::de::DeserializeOwned>(q: &RawQuery) -> ApiResult<T> {
    extract::parse_query(q.0.as_deref().unwrap_or(""))
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

// ───── operations ─────

#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "Liveness: the store answers",
    responses((status = 200, description = "ok", content_type = "text/plain"), (status = 500, body = ApiErrorBody)))]
async fn healthz(State(s): State<AppState>) -> ApiResult<Response> {
    blocking(move || s.guard.store().audit_size().map_err(GuardError::from)).await?;
    Ok(text("ok\n".into()))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics_text(State(s): State<AppState>) -> Response {
    text(s.metrics.render())
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Refuses a body whose declared length is over the limit before reading any of it (a body without a declared
/// length is cut off at the limit while it is read).
async fn declared_length_limit(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body exceeds {MAX_BODY} bytes"),
        )
        .into_response();
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The bearer scheme, and a 401 on every operation that takes it (the guard answers 401 to a missing, unknown,
/// expired or revoked credential).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        use utoipa::openapi::{RefOr, ResponseBuilder};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let unauthenticated = ResponseBuilder::new()
            .description("No valid credential: missing, unknown, expired or revoked")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ApiErrorBody")))
                    .build(),
            )
            .build();
        for item in api.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    op.responses
                        .responses
                        .entry("401".into())
                        .or_insert_with(|| RefOr::T(unauthenticated.clone()));
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Waybill Guard", description = "Every read of waybill personal data goes through the guard: policy, risk, audit, then the view the policy allows."),
    paths(credentials::create_account, accounts::list, accounts::detail, accounts::suspend, accounts::reinstate, accounts::transfer, credentials::issue_token,
        credentials::list_tokens, credentials::revoke_token, credentials::enrolment, credentials::approve_enrolment, credentials::cancel_enrolment,
        credentials::redeem, credentials::me, credentials::sync_roster, credentials::access_review, credentials::scale_review, credentials::recertify, policies::propose,
        policies::list, policies::text, policies::approve, policies::rollback, policies::replay, waybills::ingest, waybills::read,
        waybills::label, waybills::resolve_label, waybills::route_call, waybills::record_event, waybills::record_events, forensics::alerts, forensics::alert, forensics::explain, forensics::evidence_pack, forensics::backtest_suppression, forensics::suppress, forensics::suppressions, forensics::lift_suppression, forensics::open_case, forensics::cases, forensics::case, forensics::change_case, forensics::case_evidence_pack, forensics::triage, forensics::alert_stream,
        forensics::attribute, forensics::open_incident, forensics::incidents, forensics::incident, forensics::close_incident, forensics::reopen_incident, forensics::notifications, forensics::owed_report, forensics::plant_canaries, forensics::draw_canaries,
        forensics::place_hold, forensics::holds, forensics::hold, forensics::release_hold, forensics::reserve_canary_numbers, forensics::canary_reserve,
        forensics::thresholds, forensics::backtest_thresholds, forensics::apply_thresholds, accounts::scores,
        work::open_ticket, work::rights_access, work::rights_erase, work::ticket, work::close_ticket, work::list_exports, work::request_export, work::export_status, work::approve_export,
        work::export_file, audit::checkpoint, audit::verifier_key, audit::inclusion, audit::consistency, audit::search, audit::hourly, audit::entry, healthz, metrics_text),
    components(schemas(ApiErrorBody, error::ApiErrorDetail, credentials::CreateAccount, credentials::CredentialResponse, credentials::TokenMeta,
        credentials::Redeem, accounts::StatusChange, accounts::Transfer, waybills::IngestBatch, audit::ProofResponse, forensics::PlantCanaries,
        forensics::Planted, waybills::ResolveLabel, waybills::RouteCall, waybills::EventBatch, wbg_guard::RowFault, wbg_guard::ScanEvent,
        wbg_guard::EventBatchReport, wbg_guard::TicketRegistration, wbg_guard::RightsRequest, wbg_guard::RightsAnswer, wbg_guard::WaybillAccesses, wbg_guard::AccessRecord, wbg_guard::TicketRecord, credentials::IssueToken, wbg_guard::RosterReport,
        wbg_guard::RosterTransfer, wbg_guard::ReviewRow, wbg_guard::PurposeAccess, wbg_guard::Attestation, credentials::Recertify,
        wbg_guard::PolicyVersion, policies::PolicyList, policies::Proposal, wbg_guard::ReplayReport, wbg_guard::DecisionChange,
        wbg_guard::AccountSummary, wbg_guard::AccountDetail, wbg_guard::AlertDetail, wbg_guard::TriageRequest, wbg_store::TriageRecord,
        wbg_guard::IncidentSummary, wbg_guard::AuditSearchPage, wbg_store::HourCount, wbg_guard::IncidentStateChange, wbg_guard::IncidentChange,
        wbg_guard::AlertExplanation, wbg_guard::Backtest, wbg_guard::Case, wbg_guard::CaseChange, wbg_guard::NewCase, wbg_guard::NewEvidence, wbg_guard::CheckItem, wbg_guard::EvidenceItem, wbg_guard::Suppression, wbg_guard::SuppressionRequest, wbg_guard::SuppressionScope, wbg_guard::Entitlement, wbg_guard::ExplainedRead, wbg_guard::ReadSummary,
        wbg_guard::HoldRequest, wbg_guard::HoldRelease, wbg_guard::LegalHold, wbg_guard::HoldSummary,
        wbg_guard::CanaryReserve, forensics::ReserveNumbers, wbg_guard::ThresholdProposal, wbg_guard::ThresholdBacktest,
        wbg_guard::ThresholdsInForce, wbg_guard::ReplayOutcome, wbg_guard::HiddenAlert, wbg_guard::ScorePath,
        wbg_guard::ScorePoint, wbg_guard::DetectorTally)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The router over a guard: the API, and the console unless `[console]` turns it off.
pub fn router(guard: Arc<Guard>, metrics: PrometheusHandle, options: RouterOptions) -> Router {
    let trace = tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
        // The route template only: paths and queries can carry whatever a client typed.
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_else(|| "unmatched".into());
        tracing::info_span!("http", method = %req.method(), route = %route)
    });
    Router::new()
        .route(
            "/v1/accounts",
            post(credentials::create_account).get(accounts::list),
        )
        .route("/v1/accounts/{id}", get(accounts::detail))
        .route("/v1/accounts/{id}/scores", get(accounts::scores))
        .route("/v1/accounts/{id}/suspend", post(accounts::suspend))
        .route("/v1/accounts/{id}/transfer", post(accounts::transfer))
        .route("/v1/accounts/{id}/reinstate", post(accounts::reinstate))
        .route(
            "/v1/accounts/{id}/tokens",
            post(credentials::issue_token).get(credentials::list_tokens),
        )
        .route(
            "/v1/accounts/{id}/tokens/{token_id}",
            axum::routing::delete(credentials::revoke_token),
        )
        .route("/v1/enrolments/{id}", get(credentials::enrolment))
        .route(
            "/v1/enrolments/{id}/approve",
            post(credentials::approve_enrolment),
        )
        .route(
            "/v1/enrolments/{id}/cancel",
            post(credentials::cancel_enrolment),
        )
        .route("/v1/enrol", post(credentials::redeem))
        .route("/v1/me", get(credentials::me))
        .route("/v1/accounts/roster", post(credentials::sync_roster))
        .route("/v1/access-review", get(credentials::access_review))
        .route("/v1/access-review/scale", get(credentials::scale_review))
        .route(
            "/v1/access-review/attestations",
            post(credentials::recertify),
        )
        .route("/v1/policies", get(policies::list))
        .route("/v1/policies/proposals", post(policies::propose))
        .route("/v1/policies/{version}", get(policies::text))
        .route("/v1/policies/{version}/approve", post(policies::approve))
        .route("/v1/policies/{version}/rollback", post(policies::rollback))
        .route("/v1/policies/{version}/replay", post(policies::replay))
        .route("/v1/waybills", post(waybills::ingest))
        .route("/v1/waybills/{no}", get(waybills::read))
        .route("/v1/waybills/{no}/events", post(waybills::record_event))
        .route("/v1/events", post(waybills::record_events))
        .route("/v1/waybills/{no}/label", get(waybills::label))
        .route("/v1/labels/resolve", post(waybills::resolve_label))
        .route("/v1/telephony/route", post(waybills::route_call))
        .route("/v1/alerts", get(forensics::alerts))
        .route("/v1/alerts/stream", get(forensics::alert_stream))
        .route("/v1/alerts/{id}", get(forensics::alert))
        .route("/v1/alerts/{id}/triage", post(forensics::triage))
        .route("/v1/alerts/{id}/explanation", get(forensics::explain))
        .route(
            "/v1/alerts/{id}/evidence-pack",
            get(forensics::evidence_pack),
        )
        .route(
            "/v1/cases",
            post(forensics::open_case).get(forensics::cases),
        )
        .route("/v1/cases/{id}", get(forensics::case))
        .route("/v1/cases/{id}/changes", post(forensics::change_case))
        .route(
            "/v1/cases/{id}/evidence-pack",
            get(forensics::case_evidence_pack),
        )
        .route(
            "/v1/suppressions",
            post(forensics::suppress).get(forensics::suppressions),
        )
        .route(
            "/v1/suppressions/backtest",
            post(forensics::backtest_suppression),
        )
        .route(
            "/v1/suppressions/{id}/lift",
            post(forensics::lift_suppression),
        )
        .route("/v1/forensics/attributions", post(forensics::attribute))
        .route(
            "/v1/forensics/incidents",
            post(forensics::open_incident).get(forensics::incidents),
        )
        .route("/v1/forensics/incidents/{id}", get(forensics::incident))
        .route(
            "/v1/forensics/incidents/{id}/close",
            post(forensics::close_incident),
        )
        .route(
            "/v1/forensics/incidents/{id}/reopen",
            post(forensics::reopen_incident),
        )
        .route(
            "/v1/forensics/incidents/{id}/reports/{kind}",
            get(forensics::owed_report),
        )
        .route(
            "/v1/forensics/incidents/{id}/notifications",
            get(forensics::notifications),
        )
        .route("/v1/forensics/canaries", post(forensics::plant_canaries))
        .route(
            "/v1/holds",
            post(forensics::place_hold).get(forensics::holds),
        )
        .route("/v1/holds/{id}", get(forensics::hold))
        .route(
            "/v1/risk/thresholds",
            get(forensics::thresholds).post(forensics::apply_thresholds),
        )
        .route(
            "/v1/risk/thresholds/backtest",
            post(forensics::backtest_thresholds),
        )
        .route(
            "/v1/forensics/canaries/reserve",
            post(forensics::reserve_canary_numbers).get(forensics::canary_reserve),
        )
        .route("/v1/holds/{id}/release", post(forensics::release_hold))
        .route(
            "/v1/forensics/canaries/draw",
            post(forensics::draw_canaries),
        )
        .route("/v1/tickets", post(work::open_ticket))
        .route("/v1/rights/access", post(work::rights_access))
        .route("/v1/rights/erase", post(work::rights_erase))
        .route("/v1/tickets/{id}", get(work::ticket))
        .route("/v1/tickets/{id}/close", post(work::close_ticket))
        .route(
            "/v1/exports",
            post(work::request_export).get(work::list_exports),
        )
        .route("/v1/exports/{id}", get(work::export_status))
        .route("/v1/exports/{id}/approve", post(work::approve_export))
        .route("/v1/exports/{id}/file", get(work::export_file))
        .route("/v1/audit/checkpoint", get(audit::checkpoint))
        .route("/v1/audit/key", get(audit::verifier_key))
        .route("/v1/audit/proof/{seq}", get(audit::inclusion))
        .route("/v1/audit/consistency", get(audit::consistency))
        .route("/v1/audit/entries", get(audit::search))
        .route("/v1/audit/hourly", get(audit::hourly))
        .route("/v1/audit/entries/{seq}", get(audit::entry))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .merge(console::routes(options.console.enabled))
        .merge(track::routes(options.tracking))
        .fallback(not_found)
        // All the middleware as one layer, outermost first (as axum's documentation recommends). Each
        // `Router::layer` call boxes every route once more; a request clones the whole nest of boxes on its way in,
        // one allocation a box, and each `from_fn` middleware clones the nest beneath it again. One stack is one box.
        .layer(
            tower::ServiceBuilder::new()
                .layer(trace)
                // Full views, export files, tokens and reports are for the caller alone: no cache keeps any of them.
                .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                .layer(axum::middleware::from_fn(crate::telemetry::requests))
                .layer(axum::middleware::from_fn(error::json_errors))
                .layer(axum::middleware::from_fn(declared_length_limit))
                .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                    options.body_wait,
                ))
                .layer(DefaultBodyLimit::max(MAX_BODY)),
        )
        .with_state(AppState(Arc::new(Shared {
            guard,
            metrics,
            trusted_proxies: options.trusted_proxies,
            stream_keep_alive: stream_keep_alive(options.idle),
            sessions: Arc::new(
                console::Sessions::new(options.console, options.tls).with_login(
                    options
                        .login
                        .map(|(login, ca)| console::Login::new(login, ca)),
                ),
            ),
        })))
}
