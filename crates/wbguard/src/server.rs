//! The HTTP API (axum): thin handlers over the guard, JSON errors, OpenAPI, metrics.
//!
//! Nothing here touches personal data except to pass it to the guard and back: request bodies are parsed here
//! but never logged, parse errors are reduced to messages that cannot echo a value, and the request log records
//! the route template (`/v1/waybills/{no}`), never the path or query a client sent.
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};
use wbg_core::{Account, Alert, NewWaybill, StatusEvent, WaybillMeta};
use wbg_guard::{
    Actor, Attribution, CallRoute, EventBatchReport, Export, ExportRequest, Guard, GuardError,
    ImpactReport, IncidentRequest, IngestReport, LabelFormat, NotificationList, ReadRequest,
    RequestMeta, RowFault, ScanEvent, TicketRecord, TicketRegistration, WaybillView,
};
use wbg_store::AlertFilter;

mod credentials;
mod extract;
mod policies;

use extract::{Body, Caller};

use credentials::{
    access_review, approve_enrolment, cancel_enrolment, create_account, enrolment, issue_token,
    list_tokens, me, recertify, redeem, revoke_token, sync_roster, CreateAccount,
    CredentialResponse, IssueToken, Redeem, TokenMeta,
};

/// Largest request body: a full batch of 10,000 waybills fits with room to spare.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

#[derive(Clone)]
struct AppState {
    guard: Arc<Guard>,
    metrics: PrometheusHandle,
}

/// The error body every failure returns.
#[derive(Debug, Serialize, ToSchema)]
struct ApiErrorBody {
    error: ApiErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
struct ApiErrorDetail {
    /// Stable machine-readable code: `unauthenticated`, `account_suspended`, `forbidden`, `rate_limited`,
    /// `invalid_request`, `invalid_json`, `payload_too_large`, `not_found`, `conflict`, `expired`,
    /// `rows_refused`, `internal`.
    code: String,
    /// Human-readable explanation (never holds personal data).
    message: String,
    /// For `rows_refused` (a batch refused whole): every faulty row with its own code and message.
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<Vec<RowFault>>,
}

struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    rows: Option<Vec<RowFault>>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            rows: None,
        }
    }
}

impl From<GuardError> for ApiError {
    fn from(e: GuardError) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            // Internal errors name components (store, vault), never values; still, keep details in the log.
            tracing::error!(error = %e, "request failed");
        }
        let message = e.to_string();
        ApiError {
            status,
            code: e.code(),
            message,
            rows: match e {
                GuardError::Rows(rows) => Some(rows),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody {
            error: ApiErrorDetail {
                code: self.code.into(),
                message: self.message,
                rows: self.rows,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn json_error(e: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        json_error_message(e),
    )
}

/// A JSON parse error as a message that cannot echo a value from the input: serde's own messages quote the
/// offending value (`invalid type: string "13800138000"`), which may be personal data.
pub(crate) fn json_error_message(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = if e.line() == 0 {
        String::new()
    } else {
        format!(" at line {} column {}", e.line(), e.column())
    };
    match e.classify() {
        Category::Syntax => format!("malformed JSON{at}"),
        Category::Eof => "the JSON body ends too early".to_owned(),
        Category::Io => "the body could not be read".to_owned(),
        Category::Data => {
            let full = e.to_string();
            let text = full
                .rsplit_once(" at line ")
                .map(|(m, _)| m)
                .unwrap_or(&full);
            format!("{}{at}", reduce_serde_message(text, "a field"))
        }
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    serde_json::from_slice(&body_bytes(body)?).map_err(|e| json_error(&e))
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body exceeds {MAX_BODY} bytes"),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body could not be read",
            )
        }
    })
}

/// Decodes a query string with axum's own decoder; errors are reduced so they cannot echo a value.
fn parse_query<T: serde::de::DeserializeOwned>(q: &RawQuery) -> ApiResult<T> {
    let text = q.0.as_deref().unwrap_or("");
    let uri: axum::http::Uri = format!("/?{text}").parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "malformed query string",
        )
    })?;
    Query::<T>::try_from_uri(&uri).map(|q| q.0).map_err(|e| {
        let full = e.body_text();
        let text = full.split_once(": ").map(|(_, m)| m).unwrap_or(&full);
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            reduce_serde_message(text, "a query parameter"),
        )
    })
}

/// Reduces a serde data-error message (without position) to one that cannot echo client input: serde quotes
/// offending values (`invalid type: string "13800138000"`) and unknown keys, and a client may put a phone number
/// in either. Field names are kept only when they look like identifiers (ASCII letters and `_`).
fn reduce_serde_message(text: &str, what: &str) -> String {
    fn identifier(s: &str) -> bool {
        !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
    }
    let quoted = text.split('`').nth(1).unwrap_or("");
    let expected = text.split_once(", expected ").map(|(_, e)| e);
    if text.starts_with("unknown field") {
        let name = if identifier(quoted) {
            format!(" `{quoted}`")
        } else {
            String::new()
        };
        match expected {
            Some(exp) => format!("unknown field{name}, expected {exp}"),
            None => format!("unknown field{name}"),
        }
    } else if text.starts_with("missing field") && identifier(quoted) {
        format!("missing field `{quoted}`")
    } else if text.starts_with("invalid ")
        && !["invalid type", "invalid value", "invalid length"]
            .iter()
            .any(|p| text.starts_with(p))
    {
        // Our own validation messages (`invalid recipient.phone: must be …`) name fields, never values.
        text.to_owned()
    } else if let Some(exp) = expected {
        format!("{what} has a value that is not allowed (expected {exp})")
    } else {
        format!("{what} has the wrong type or value")
    }
}

fn bearer(headers: &HeaderMap) -> ApiResult<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::from(GuardError::Unauthenticated))
}

fn request_meta(headers: &HeaderMap, peer: SocketAddr) -> ApiResult<RequestMeta> {
    let device = match headers.get("x-device-id") {
        None => None,
        Some(v) => {
            let ok = v.to_str().ok().filter(|s| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
            });
            Some(
                ok.ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "X-Device-Id must be 1-64 of A-Z a-z 0-9 . _ : -",
                    )
                })?
                .to_owned(),
            )
        }
    };
    Ok(RequestMeta {
        device,
        ip: Some(peer.ip().to_string()),
    })
}

/// Runs a guard call on the blocking pool (store and vault work is synchronous).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GuardError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request was cancelled",
            )
        })?
        .map_err(ApiError::from)
}

// ───── accounts ─────

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(get, path = "/v1/accounts", security(("bearer" = [])), responses((status = 200, body = [Account]), (status = 403, body = ApiErrorBody)))]
async fn list_accounts(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<Account>>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    Ok(Json(
        blocking(move || s.guard.accounts(Actor::Token(&token), &meta)).await?,
    ))
}

async fn set_status(
    s: AppState,
    peer: SocketAddr,
    headers: HeaderMap,
    id: String,
    suspend: bool,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Account>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let change: StatusChange = match &body {
        Ok(b) if b.is_empty() => StatusChange::default(),
        _ => parse_body(body)?,
    };
    Ok(Json(
        blocking(move || {
            s.guard.set_status(
                Actor::Token(&token),
                &id,
                suspend,
                change.reason.as_deref(),
                &meta,
            )
        })
        .await?,
    ))
}

#[utoipa::path(post, path = "/v1/accounts/{id}/suspend", request_body(content = StatusChange, description = "optional"), security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Account), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn suspend(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Account>> {
    set_status(s, peer, headers, id, true, body).await
}

#[utoipa::path(post, path = "/v1/accounts/{id}/reinstate", request_body(content = StatusChange, description = "optional"), security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Account), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn reinstate(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Account>> {
    set_status(s, peer, headers, id, false, body).await
}

/// `{"outlet": "O042"}`: where the account works from now on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Transfer {
    outlet: String,
}

#[utoipa::path(post, path = "/v1/accounts/{id}/transfer", request_body = Transfer, security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Account), (status = 400, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn transfer(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Account>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let req: Transfer = parse_body(body)?;
    Ok(Json(
        blocking(move || {
            s.guard
                .transfer_account(Actor::Token(&token), &id, &req.outlet, &meta)
        })
        .await?,
    ))
}

// ───── waybills ─────

/// `{"waybills": [...]}`: the batch form of ingest.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IngestBatch {
    waybills: Vec<NewWaybill>,
}

#[utoipa::path(post, path = "/v1/waybills", security(("bearer" = [])),
    request_body(content = NewWaybill, description = "one waybill, or {\"waybills\": [...]} (at most 10,000), stored all or none"),
    responses((status = 201, body = IngestReport), (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
        (status = 409, body = ApiErrorBody), (status = 413, body = ApiErrorBody)))]
async fn ingest(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<IngestReport>)> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let bytes = body_bytes(body)?;
    // Tell the two forms apart by their top-level keys, then parse the bytes themselves, so errors keep their
    // line and column.
    let shape: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|e| json_error(&e))?;
    let batch = if shape.contains_key("waybills") {
        serde_json::from_slice::<IngestBatch>(&bytes)
            .map_err(|e| json_error(&e))?
            .waybills
    } else {
        vec![serde_json::from_slice::<NewWaybill>(&bytes).map_err(|e| json_error(&e))?]
    };
    let report = blocking(move || s.guard.ingest(Actor::Token(&token), batch, &meta)).await?;
    Ok((StatusCode::CREATED, Json(report)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ReadQuery {
    /// delivery | exception_handling | customer_service | label | breach_notification
    purpose: String,
    /// Customer-service ticket id (starts with a letter).
    #[serde(default)]
    ticket: Option<String>,
}

#[utoipa::path(get, path = "/v1/waybills/{no}", security(("bearer" = [])), params(("no" = String, Path), ReadQuery),
    responses((status = 200, body = WaybillView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 429, body = ApiErrorBody)))]
async fn read_waybill(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(no): Path<String>,
    q: RawQuery,
) -> ApiResult<Json<WaybillView>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let q: ReadQuery = parse_query(&q)?;
    let req = ReadRequest {
        waybill_no: &no,
        purpose: &q.purpose,
        ticket: q.ticket.as_deref(),
    };
    // Awaited on the runtime, not the blocking pool: the store's lookups take microseconds, and the wait for
    // the entry's group commit parks no thread.
    Ok(Json(s.guard.read_async(&token, &req, &meta).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LabelQuery {
    /// zpl (thermal printers) | pdf | png (previews)
    format: String,
}

#[utoipa::path(get, path = "/v1/waybills/{no}/label", security(("bearer" = [])), params(("no" = String, Path), LabelQuery),
    responses((status = 200, description = "A privacy label: masked fields, Code 128 barcode, QR token. \
        Headers: X-Label-Copy (1 = first print), X-Audit-Seq.", content_type = "application/zpl"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody), (status = 429, body = ApiErrorBody)))]
async fn print_label(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(no): Path<String>,
    q: RawQuery,
) -> ApiResult<Response> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let q: LabelQuery = parse_query(&q)?;
    let format = LabelFormat::parse(&q.format)
        .map_err(|e| ApiError::from(GuardError::Invalid(e.to_string())))?;
    let printed = s
        .guard
        .print_label_async(&token, &no, format, &meta)
        .await?;
    let render = move |label: &wbg_label::Label| {
        wbg_label::render(label, format).map_err(|e| GuardError::Internal(e.to_string()))
    };
    // A ZPL label is a few hundred bytes of text; a PDF or PNG is drawn on the blocking pool.
    let (printed, bytes) = if format == LabelFormat::Zpl {
        let bytes = render(&printed.label)?;
        (printed, bytes)
    } else {
        blocking(move || render(&printed.label).map(|b| (printed, b))).await?
    };
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::HeaderName::from_static("x-label-copy"),
                printed.label.copy.to_string(),
            ),
            (
                header::HeaderName::from_static("x-audit-seq"),
                printed.audit_seq.to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// A label's QR token, as the courier app scanned it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResolveLabel {
    /// The token (`WBG1.…`).
    token: String,
    /// delivery (default) | exception_handling | customer_service
    #[serde(default)]
    purpose: Option<String>,
}

#[utoipa::path(post, path = "/v1/labels/resolve", security(("bearer" = [])), request_body = ResolveLabel,
    responses((status = 200, body = WaybillView, description = "The view the policy allows this account now"),
        (status = 400, body = ApiErrorBody, description = "Not a valid label token"), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 410, body = ApiErrorBody, description = "The token has expired"),
        (status = 429, body = ApiErrorBody)))]
async fn resolve_label(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<WaybillView>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let r: ResolveLabel = parse_body(body)?;
    let view = blocking(move || {
        s.guard
            .resolve_label(&token, &r.token, r.purpose.as_deref(), &meta)
    })
    .await?;
    Ok(Json(view))
}

/// A call the telephony gateway is about to connect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RouteCall {
    /// The privacy number dialled.
    number: String,
    /// The calling courier's account id (as the gateway authenticated the courier app).
    caller: String,
}

#[utoipa::path(post, path = "/v1/telephony/route", security(("bearer" = [])), request_body = RouteCall,
    responses((status = 200, body = CallRoute, description = "The real number to connect; audited"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody, description = "Not the telephony gateway, or not the bound courier, or outside the policy's window"),
        (status = 404, body = ApiErrorBody, description = "Not a privacy number of the pool"),
        (status = 410, body = ApiErrorBody, description = "The number's binding has ended")))]
async fn route_call(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<CallRoute>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let r: RouteCall = parse_body(body)?;
    Ok(Json(
        blocking(move || {
            s.guard
                .route_call(Actor::Token(&token), &r.number, &r.caller, &meta)
        })
        .await?,
    ))
}

#[utoipa::path(post, path = "/v1/waybills/{no}/events", security(("bearer" = [])), params(("no" = String, Path)), request_body = StatusEvent,
    responses((status = 200, body = WaybillMeta), (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
async fn record_event(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(no): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<WaybillMeta>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let ev: StatusEvent = parse_body(body)?;
    Ok(Json(
        s.guard.record_event_async(&token, &no, ev, &meta).await?,
    ))
}

/// A batch of scan events (`POST /v1/events`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EventBatch {
    /// Up to 10,000 events, at most one per waybill; applied all or none.
    events: Vec<ScanEvent>,
}

#[utoipa::path(post, path = "/v1/events", security(("bearer" = [])), request_body = EventBatch,
    responses((status = 200, body = EventBatchReport),
        (status = 400, body = ApiErrorBody, description = "malformed body, or rows refused (`rows_refused`, every faulty row listed)"),
        (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
async fn record_events(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<EventBatchReport>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let batch: EventBatch = parse_body(body)?;
    Ok(Json(
        blocking(move || {
            s.guard
                .record_events(Actor::Token(&token), batch.events, &meta)
        })
        .await?,
    ))
}

// ───── alerts ─────

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AlertQuery {
    /// Only this account's alerts.
    #[serde(default)]
    account: Option<String>,
    /// Only this kind (e.g. `rate_limit`).
    #[serde(default)]
    kind: Option<String>,
    /// Only alerts at or after this time (ms since epoch).
    #[serde(default)]
    since: Option<i64>,
    /// At most this many (default 100, max 10,000), newest first.
    #[serde(default)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/alerts", security(("bearer" = [])), params(AlertQuery),
    responses((status = 200, body = [Alert]), (status = 403, body = ApiErrorBody)))]
async fn alerts(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    q: RawQuery,
) -> ApiResult<Json<Vec<Alert>>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let q: AlertQuery = parse_query(&q)?;
    let filter = AlertFilter {
        account: q.account,
        kind: q.kind,
        since: q.since,
        limit: q.limit.unwrap_or(100),
    };
    Ok(Json(
        blocking(move || s.guard.alerts(Actor::Token(&token), &filter, &meta)).await?,
    ))
}

// ───── forensics ─────

#[utoipa::path(post, path = "/v1/forensics/attributions", security(("bearer" = [])),
    request_body(content = String, description = "The leaked sample as it was found: CSV (English or Chinese headers, or none; comma, tab, semicolon or bar separated) or JSON Lines, UTF-8, at most 16 MiB.", content_type = "text/csv"),
    responses((status = 200, body = Attribution, description = "Ranked suspects with evidence and inclusion proofs; never a name, phone or address"),
        (status = 400, body = ApiErrorBody, description = "Not a leak: empty, binary, no usable column"),
        (status = 403, body = ApiErrorBody, description = "Only auditors investigate"),
        (status = 413, body = ApiErrorBody)))]
async fn attribute(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Attribution>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let limits = wbg_forensics::Limits {
        max_bytes: MAX_BODY as u64,
        ..wbg_forensics::Limits::default()
    };
    Ok(Json(
        blocking(move || {
            s.guard
                .attribute(Actor::Token(&token), body.as_ref(), &limits, &meta)
        })
        .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ReportQuery {
    /// `json` (the default), `csv` (the affected waybills, no persons) or `markdown` (a readable document).
    #[serde(default)]
    format: Option<String>,
}

/// An impact report in the format asked for.
fn report_response(report: ImpactReport, format: Option<&str>) -> ApiResult<Response> {
    Ok(match format.unwrap_or("json") {
        "json" => Json(report).into_response(),
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report.to_csv()?,
        )
            .into_response(),
        "markdown" | "md" => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            report.to_markdown(),
        )
            .into_response(),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "format must be json, csv or markdown",
            ))
        }
    })
}

#[utoipa::path(post, path = "/v1/forensics/incidents", security(("bearer" = [])), request_body = IncidentRequest,
    responses((status = 201, body = ImpactReport, description = "The breach-impact report; it names waybills, accounts, regions and counts, never a person"),
        (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody, description = "Only auditors investigate"),
        (status = 413, body = ApiErrorBody, description = "More exposed waybills than one incident holds: split the window")))]
async fn open_incident(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<ImpactReport>)> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let req: IncidentRequest = parse_body(body)?;
    let report = blocking(move || s.guard.breach_impact(Actor::Token(&token), &req, &meta)).await?;
    Ok((StatusCode::CREATED, Json(report)))
}

#[utoipa::path(get, path = "/v1/forensics/incidents/{id}", security(("bearer" = [])), params(("id" = String, Path), ReportQuery),
    responses((status = 200, body = ImpactReport, description = "JSON, or CSV / Markdown as asked"), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn incident(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: RawQuery,
) -> ApiResult<Response> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let q: ReportQuery = parse_query(&q)?;
    let report = blocking(move || s.guard.incident(Actor::Token(&token), &id, &meta)).await?;
    report_response(report, q.format.as_deref())
}

#[utoipa::path(get, path = "/v1/forensics/incidents/{id}/notifications", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = NotificationList, description = "One notice per exposed customer, with name and phone; every waybill read is audited"),
        (status = 403, body = ApiErrorBody, description = "The policy opens the incident's customers to customer service only"), (status = 404, body = ApiErrorBody)))]
async fn notifications(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<NotificationList>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    Ok(Json(
        blocking(move || s.guard.notification_list(&token, &id, &meta)).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PlantCanaries {
    /// The account whose view they go into.
    account: String,
    /// How many (1-100; default 3).
    #[serde(default)]
    count: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Planted {
    /// The canary waybill numbers.
    waybills: Vec<String>,
}

#[utoipa::path(post, path = "/v1/forensics/canaries", security(("bearer" = [])), request_body = PlantCanaries,
    responses((status = 201, body = Planted), (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn plant_canaries(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Planted>)> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let req: PlantCanaries = parse_body(body)?;
    let count = req.count.unwrap_or(3);
    if !(1..=wbg_guard::MAX_CANARIES).contains(&count) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("count must be 1 to {}", wbg_guard::MAX_CANARIES),
        ));
    }
    let waybills = blocking(move || {
        let made_up = wbg_sim::one_off_waybills(rand::random(), count);
        s.guard
            .plant_canaries(Actor::Token(&token), &req.account, made_up, &meta)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(Planted { waybills })))
}

// ───── the work registry ─────

#[utoipa::path(post, path = "/v1/tickets", security(("bearer" = [])), request_body = TicketRegistration,
    responses((status = 201, body = TicketRecord, description = "Registered, open: customer service may now read its waybills in full"),
        (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody, description = "Only the carrier's systems (integration) register work"),
        (status = 404, body = ApiErrorBody, description = "A waybill it names does not exist"), (status = 409, body = ApiErrorBody)))]
async fn open_ticket(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<TicketRegistration>,
) -> ApiResult<(StatusCode, Json<TicketRecord>)> {
    let t = blocking(move || {
        s.guard
            .open_ticket(Actor::Token(&caller.token), &req, &caller.meta)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(get, path = "/v1/tickets/{id}", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = TicketRecord), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn ticket(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TicketRecord>> {
    Ok(Json(
        blocking(move || {
            s.guard
                .ticket(Actor::Token(&caller.token), &id, &caller.meta)
        })
        .await?,
    ))
}

#[utoipa::path(post, path = "/v1/tickets/{id}/close", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = TicketRecord, description = "Closed: it widens no read any more"), (status = 403, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody, description = "Closed already")))]
async fn close_ticket(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TicketRecord>> {
    Ok(Json(
        blocking(move || {
            s.guard
                .close_ticket(Actor::Token(&caller.token), &id, &caller.meta)
        })
        .await?,
    ))
}

// ───── exports ─────

#[utoipa::path(post, path = "/v1/exports", security(("bearer" = [])), request_body = ExportRequest,
    responses((status = 201, body = Export, description = "Asked for; nothing is handed over until a second account approves"),
        (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
async fn request_export(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Export>)> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let req: ExportRequest = parse_body(body)?;
    let export = blocking(move || s.guard.request_export(&token, &req, &meta)).await?;
    Ok((StatusCode::CREATED, Json(export)))
}

#[utoipa::path(get, path = "/v1/exports/{id}", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Export), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn export_status(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Export>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    Ok(Json(
        blocking(move || s.guard.export(&token, &id, &meta)).await?,
    ))
}

#[utoipa::path(post, path = "/v1/exports/{id}/approve", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Export), (status = 403, body = ApiErrorBody, description = "Not an approver, or the requester itself"),
        (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
async fn approve_export(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Export>> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    Ok(Json(
        blocking(move || s.guard.approve_export(Actor::Token(&token), &id, &meta)).await?,
    ))
}

#[utoipa::path(get, path = "/v1/exports/{id}/file", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "The export file (CSV), once, to its requester", content_type = "text/csv"),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody),
        (status = 409, body = ApiErrorBody, description = "Not approved yet, or delivered already")))]
async fn export_file(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let file = blocking(move || s.guard.deliver_export(&token, &id, &meta)).await?;
    let disposition = format!("attachment; filename=\"{}.csv\"", file.export.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        file.csv,
    )
        .into_response())
}

// ───── audit ─────

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

#[utoipa::path(get, path = "/v1/audit/checkpoint", responses((status = 200, description = "C2SP signed note holding a tlog-checkpoint", content_type = "text/plain")))]
async fn checkpoint(State(s): State<AppState>) -> ApiResult<Response> {
    Ok(text(blocking(move || s.guard.checkpoint()).await?))
}

#[utoipa::path(get, path = "/v1/audit/key", responses((status = 200, description = "the note verifier key, name+hash+base64key", content_type = "text/plain")))]
async fn verifier_key(State(s): State<AppState>) -> Response {
    text(format!("{}\n", s.guard.verifier_key().to_text()))
}

#[derive(Debug, Serialize, ToSchema)]
struct ProofResponse {
    /// Leaf index (inclusion) or old size (consistency).
    from: u64,
    /// Tree size the proof is for.
    size: u64,
    /// RFC 9162 proof hashes, base64, leaf side first.
    proof: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SizeQuery {
    /// Tree size (default: the current size).
    #[serde(default)]
    size: Option<u64>,
}

#[utoipa::path(get, path = "/v1/audit/proof/{seq}", params(("seq" = u64, Path), SizeQuery),
    responses((status = 200, body = ProofResponse), (status = 400, body = ApiErrorBody)))]
async fn inclusion(
    State(s): State<AppState>,
    Path(seq): Path<String>,
    q: RawQuery,
) -> ApiResult<Json<ProofResponse>> {
    let seq: u64 = seq.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "seq must be a number",
        )
    })?;
    let q: SizeQuery = parse_query(&q)?;
    let (size, proof) = blocking(move || {
        let size = match q.size {
            Some(n) => n,
            None => s.guard.store().audit_size()?,
        };
        Ok((size, s.guard.inclusion_proof(seq, size)?))
    })
    .await?;
    Ok(Json(ProofResponse {
        from: seq,
        size,
        proof: proof.iter().map(|h| B64.encode(h)).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ConsistencyQuery {
    /// Older tree size.
    from: u64,
    /// Newer tree size.
    to: u64,
}

#[utoipa::path(get, path = "/v1/audit/consistency", params(ConsistencyQuery),
    responses((status = 200, body = ProofResponse), (status = 400, body = ApiErrorBody)))]
async fn consistency(State(s): State<AppState>, q: RawQuery) -> ApiResult<Json<ProofResponse>> {
    let q: ConsistencyQuery = parse_query(&q)?;
    let (from, to) = (q.from, q.to);
    let proof = blocking(move || s.guard.consistency_proof(from, to)).await?;
    Ok(Json(ProofResponse {
        from,
        size: to,
        proof: proof.iter().map(|h| B64.encode(h)).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/audit/entries/{seq}", security(("bearer" = [])), params(("seq" = u64, Path)),
    responses((status = 200, description = "the exact bytes that were hashed into the log", content_type = "application/json"),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
async fn audit_entry(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(seq): Path<String>,
) -> ApiResult<Response> {
    let token = bearer(&headers)?;
    let meta = request_meta(&headers, peer)?;
    let seq: u64 = seq.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "seq must be a number",
        )
    })?;
    let bytes = blocking(move || s.guard.audit_entry(Actor::Token(&token), seq, &meta)).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

// ───── operations ─────

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "ok")))]
async fn healthz(State(s): State<AppState>) -> ApiResult<Response> {
    blocking(move || s.guard.store().audit_size().map_err(GuardError::from)).await?;
    Ok(text("ok\n".into()))
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
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

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Waybill Guard", description = "Every read of waybill personal data goes through the guard: policy, risk, audit, then the view the policy allows."),
    paths(credentials::create_account, list_accounts, suspend, reinstate, transfer, credentials::issue_token, credentials::list_tokens,
        credentials::revoke_token, credentials::enrolment, credentials::approve_enrolment, credentials::cancel_enrolment,
        credentials::redeem, credentials::me, credentials::sync_roster, credentials::access_review, credentials::recertify, policies::propose, policies::list, policies::text,
        policies::approve, policies::rollback, policies::replay, ingest, read_waybill, print_label, resolve_label, route_call, record_event, record_events, alerts, attribute,
        open_incident, incident, notifications, plant_canaries, open_ticket, ticket, close_ticket, request_export, export_status, approve_export, export_file,
        checkpoint, verifier_key, inclusion, consistency, audit_entry, healthz, metrics_text),
    components(schemas(ApiErrorBody, ApiErrorDetail, CreateAccount, CredentialResponse, TokenMeta, Redeem, StatusChange, Transfer, IngestBatch, ProofResponse,
        PlantCanaries, Planted, ResolveLabel, RouteCall, EventBatch, RowFault, ScanEvent, EventBatchReport,
        TicketRegistration, TicketRecord, IssueToken, wbg_guard::RosterReport, wbg_guard::RosterTransfer, wbg_guard::ReviewRow, wbg_guard::PurposeAccess, wbg_guard::Attestation, credentials::Recertify,
        wbg_guard::PolicyVersion, policies::PolicyList, policies::Proposal, wbg_guard::ReplayReport, wbg_guard::DecisionChange)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The router over a guard.
pub fn router(guard: Arc<Guard>, metrics: PrometheusHandle) -> Router {
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
        .route("/v1/accounts", post(create_account).get(list_accounts))
        .route("/v1/accounts/{id}/suspend", post(suspend))
        .route("/v1/accounts/{id}/transfer", post(transfer))
        .route("/v1/accounts/{id}/reinstate", post(reinstate))
        .route(
            "/v1/accounts/{id}/tokens",
            post(issue_token).get(list_tokens),
        )
        .route(
            "/v1/accounts/{id}/tokens/{token_id}",
            axum::routing::delete(revoke_token),
        )
        .route("/v1/enrolments/{id}", get(enrolment))
        .route("/v1/enrolments/{id}/approve", post(approve_enrolment))
        .route("/v1/enrolments/{id}/cancel", post(cancel_enrolment))
        .route("/v1/enrol", post(redeem))
        .route("/v1/me", get(me))
        .route("/v1/accounts/roster", post(sync_roster))
        .route("/v1/access-review", get(access_review))
        .route("/v1/access-review/attestations", post(recertify))
        .route("/v1/policies", get(policies::list))
        .route("/v1/policies/proposals", post(policies::propose))
        .route("/v1/policies/{version}", get(policies::text))
        .route("/v1/policies/{version}/approve", post(policies::approve))
        .route("/v1/policies/{version}/rollback", post(policies::rollback))
        .route("/v1/policies/{version}/replay", post(policies::replay))
        .route("/v1/waybills", post(ingest))
        .route("/v1/waybills/{no}", get(read_waybill))
        .route("/v1/waybills/{no}/events", post(record_event))
        .route("/v1/events", post(record_events))
        .route("/v1/waybills/{no}/label", get(print_label))
        .route("/v1/labels/resolve", post(resolve_label))
        .route("/v1/telephony/route", post(route_call))
        .route("/v1/alerts", get(alerts))
        .route("/v1/forensics/attributions", post(attribute))
        .route("/v1/forensics/incidents", post(open_incident))
        .route("/v1/forensics/incidents/{id}", get(incident))
        .route(
            "/v1/forensics/incidents/{id}/notifications",
            get(notifications),
        )
        .route("/v1/forensics/canaries", post(plant_canaries))
        .route("/v1/tickets", post(open_ticket))
        .route("/v1/tickets/{id}", get(ticket))
        .route("/v1/tickets/{id}/close", post(close_ticket))
        .route("/v1/exports", post(request_export))
        .route("/v1/exports/{id}", get(export_status))
        .route("/v1/exports/{id}/approve", post(approve_export))
        .route("/v1/exports/{id}/file", get(export_file))
        .route("/v1/audit/checkpoint", get(checkpoint))
        .route("/v1/audit/key", get(verifier_key))
        .route("/v1/audit/proof/{seq}", get(inclusion))
        .route("/v1/audit/consistency", get(consistency))
        .route("/v1/audit/entries/{seq}", get(audit_entry))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(declared_length_limit))
        .layer(trace)
        .with_state(AppState { guard, metrics })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_client_values_but_keep_names() {
        let r = |t| reduce_serde_message(t, "a field");
        assert_eq!(
            r("unknown field `vip`, expected one of `a`, `b`"),
            "unknown field `vip`, expected one of `a`, `b`"
        );
        assert_eq!(
            r("unknown field `13912345678`, expected `a`"),
            "unknown field, expected `a`"
        );
        assert_eq!(
            r("unknown field `欧阳`, expected `a`"),
            "unknown field, expected `a`"
        );
        assert_eq!(r("missing field `purpose`"), "missing field `purpose`");
        assert_eq!(
            r("invalid type: integer `13912345678`, expected a string"),
            "a field has a value that is not allowed (expected a string)"
        );
        assert_eq!(
            r("invalid value: string \"x\", expected y"),
            "a field has a value that is not allowed (expected y)"
        );
        assert_eq!(
            r("unknown variant `13912345678`, expected `a` or `b`"),
            "a field has a value that is not allowed (expected `a` or `b`)"
        );
        assert_eq!(
            r("invalid recipient.phone: must be an 11-digit mobile number"),
            "invalid recipient.phone: must be an 11-digit mobile number"
        );
        assert_eq!(
            r("something else entirely 13912345678"),
            "a field has the wrong type or value"
        );
    }
}
