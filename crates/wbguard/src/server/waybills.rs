//! Waybills over HTTP: ingest, the guarded read, labels (print, resolve a scanned token), calls through privacy
//! numbers, and scan events. The guarded read itself — policy, risk, audit, then the view — is
//! `wbg_guard::read`, top to bottom. Whether a waybill exists is told to no one it is not shown to: "not yours"
//! and "no such waybill" are one answer ([`unseen`]).
use super::error::{unseen, ApiError, ApiErrorBody, ApiResult};
use super::extract::{blocking, parse_object, Body, Caller, RawBody, Q};
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use wbg_core::{NewWaybill, StatusEvent, WaybillMeta};
use wbg_guard::{
    CallRoute, EventBatchReport, GuardError, IngestReport, LabelFormat, ReadRequest, ScanEvent,
    WaybillView,
};

/// `{"waybills": [...]}`: the batch form of ingest.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IngestBatch {
    waybills: Vec<NewWaybill>,
}

#[utoipa::path(post, path = "/v1/waybills", tag = "waybills", summary = "Ingest one waybill or a batch (integration)", security(("bearer" = [])),
    request_body(content = NewWaybill, description = "one waybill, or {\"waybills\": [...]} (at most 10,000), stored all or none"),
    responses((status = 201, body = IngestReport), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 413, body = ApiErrorBody)))]
pub(super) async fn ingest(
    caller: Caller,
    RawBody(bytes): RawBody,
) -> ApiResult<(StatusCode, Json<IngestReport>)> {
    // Tell the two forms apart by their top-level keys, then parse the bytes themselves, so errors keep their
    // line and column.
    let shape: serde_json::Map<String, serde_json::Value> = parse_object(&bytes)?;
    let batch = if shape.contains_key("waybills") {
        parse_object::<IngestBatch>(&bytes)?.waybills
    } else {
        vec![parse_object::<NewWaybill>(&bytes)?]
    };
    let report = caller
        .run(move |g, c| g.ingest(c.actor(), batch, &c.meta))
        .await?;
    Ok((StatusCode::CREATED, Json(report)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ReadQuery {
    /// delivery | exception_handling | customer_service | label | breach_notification | legal_hold
    purpose: String,
    /// Customer-service ticket id (starts with a letter).
    #[serde(default)]
    ticket: Option<String>,
}

#[utoipa::path(get, path = "/v1/waybills/{no}", tag = "waybills", summary = "The guarded read: the richest view the policy allows for the purpose",
    security(("bearer" = [])), params(("no" = String, Path), ReadQuery),
    responses((status = 200, body = WaybillView), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody, description = "The account is suspended"),
        (status = 404, body = ApiErrorBody, description = "No such waybill, or none this account may see for the purpose (one answer)"),
        (status = 429, body = ApiErrorBody)))]
pub(super) async fn read(
    caller: Caller,
    Path(no): Path<String>,
    Q(q): Q<ReadQuery>,
) -> ApiResult<Json<WaybillView>> {
    let req = ReadRequest {
        waybill_no: &no,
        purpose: &q.purpose,
        ticket: q.ticket.as_deref(),
    };
    // Awaited on the runtime, not the blocking pool: the store's lookups take microseconds, and the wait for
    // the entry's group commit parks no thread.
    let view = caller
        .guard()
        .read_async(&caller.token, &req, &caller.meta)
        .await
        .map_err(unseen)?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct LabelQuery {
    /// zpl (thermal printers) | pdf | png (previews)
    format: String,
}

#[utoipa::path(get, path = "/v1/waybills/{no}/label", tag = "labels", summary = "Print a privacy label (print stations)",
    security(("bearer" = [])), params(("no" = String, Path), LabelQuery),
    responses((status = 200, description = "A privacy label: masked fields, Code 128 barcode, QR token. \
        Headers: X-Label-Copy (1 = first print), X-Audit-Seq.", content_type = "application/zpl"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody, description = "The account is suspended"),
        (status = 404, body = ApiErrorBody, description = "No such waybill, or none this account may print"), (status = 429, body = ApiErrorBody)))]
pub(super) async fn label(
    caller: Caller,
    Path(no): Path<String>,
    Q(q): Q<LabelQuery>,
) -> ApiResult<Response> {
    let format = LabelFormat::parse(&q.format)
        .map_err(|e| ApiError::from(GuardError::Invalid(e.to_string())))?;
    let printed = caller
        .guard()
        .print_label_async(&caller.token, &no, format, &caller.meta)
        .await
        .map_err(unseen)?;
    let render = move |label: &wbg_label::Label| {
        wbg_label::render(label, format)
            .map_err(|e| GuardError::internal_from("label rendering", e))
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
pub(super) struct ResolveLabel {
    /// The token (`WBG1.…`).
    token: String,
    /// delivery (default) | exception_handling | customer_service
    #[serde(default)]
    purpose: Option<String>,
}

#[utoipa::path(post, path = "/v1/labels/resolve", tag = "labels", summary = "A scanned label token: a guarded read decided now",
    security(("bearer" = [])), request_body = ResolveLabel,
    responses((status = 200, body = WaybillView, description = "The view the policy allows this account now"),
        (status = 400, body = ApiErrorBody, description = "Not a valid label token"), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 410, body = ApiErrorBody, description = "The token has expired"),
        (status = 429, body = ApiErrorBody)))]
pub(super) async fn resolve_label(
    caller: Caller,
    Body(r): Body<ResolveLabel>,
) -> ApiResult<Json<WaybillView>> {
    caller
        .run(move |g, c| g.resolve_label(&c.token, &r.token, r.purpose.as_deref(), &c.meta))
        .await
        .map(Json)
}

/// A call the telephony gateway is about to connect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteCall {
    /// The privacy number dialled.
    number: String,
    /// The calling courier's account id (as the gateway authenticated the courier app).
    caller: String,
}

#[utoipa::path(post, path = "/v1/telephony/route", tag = "privacy numbers", summary = "Route a call to a privacy number (telephony gateway)",
    security(("bearer" = [])), request_body = RouteCall,
    responses((status = 200, body = CallRoute, description = "The real number to connect; audited"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody, description = "Not the telephony gateway, or not the bound courier, or outside the policy's window"),
        (status = 404, body = ApiErrorBody, description = "Not a privacy number of the pool"),
        (status = 410, body = ApiErrorBody, description = "The number's binding has ended")))]
pub(super) async fn route_call(
    caller: Caller,
    Body(r): Body<RouteCall>,
) -> ApiResult<Json<CallRoute>> {
    caller
        .run(move |g, c| g.route_call(c.actor(), &r.number, &r.caller, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/waybills/{no}/events", tag = "waybills", summary = "Record one scan event",
    security(("bearer" = [])), params(("no" = String, Path)), request_body = StatusEvent,
    responses((status = 200, body = WaybillMeta), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody, description = "The account is suspended"),
        (status = 404, body = ApiErrorBody, description = "No such waybill, or none this account may record events of"),
        (status = 409, body = ApiErrorBody)))]
pub(super) async fn record_event(
    caller: Caller,
    Path(no): Path<String>,
    Body(ev): Body<StatusEvent>,
) -> ApiResult<Json<WaybillMeta>> {
    let meta = caller
        .guard()
        .record_event_async(&caller.token, &no, ev, &caller.meta)
        .await
        .map_err(unseen)?;
    Ok(Json(meta))
}

/// A batch of scan events (`POST /v1/events`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventBatch {
    /// Up to 10,000 events, at most one per waybill; applied all or none.
    events: Vec<ScanEvent>,
}

#[utoipa::path(post, path = "/v1/events", tag = "waybills", summary = "Record a batch of scan events, all or none",
    security(("bearer" = [])), request_body = EventBatch,
    responses((status = 200, body = EventBatchReport),
        (status = 400, body = ApiErrorBody, description = "malformed body, or rows refused (`rows_refused`, every faulty row listed)"),
        (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub(super) async fn record_events(
    caller: Caller,
    Body(batch): Body<EventBatch>,
) -> ApiResult<Json<EventBatchReport>> {
    caller
        .run(move |g, c| {
            g.record_events(c.actor(), batch.events, &c.meta)
                .map_err(unseen)
        })
        .await
        .map(Json)
}
