//! Oversight over HTTP: alerts, leak attribution, breach incidents and their notification lists, canaries.
use super::error::{ApiError, ApiErrorBody, ApiResult};
use super::extract::{Body, Caller, RawBody, Q};
use super::MAX_BODY;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wbg_core::Alert;
use wbg_guard::{Attribution, ImpactReport, IncidentRequest, NotificationList};
use wbg_store::AlertFilter;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AlertQuery {
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

#[utoipa::path(get, path = "/v1/alerts", tag = "oversight", summary = "Alerts, newest first (auditors, admins)",
    security(("bearer" = [])), params(AlertQuery),
    responses((status = 200, body = [Alert]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody)))]
pub(super) async fn alerts(caller: Caller, Q(q): Q<AlertQuery>) -> ApiResult<Json<Vec<Alert>>> {
    let filter = AlertFilter {
        account: q.account,
        kind: q.kind,
        since: q.since,
        limit: q.limit.unwrap_or(100),
    };
    caller
        .run(move |g, c| g.alerts(c.actor(), &filter, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/forensics/attributions", tag = "forensics", summary = "Attribute a leaked sample to the accounts that could have produced it",
    security(("bearer" = [])),
    request_body(content = String, description = "The leaked sample as it was found: CSV (English or Chinese headers, or none; comma, tab, semicolon or bar separated) or JSON Lines, UTF-8, at most 16 MiB.", content_type = "text/csv"),
    responses((status = 200, body = Attribution, description = "Ranked suspects with evidence and inclusion proofs; never a name, phone or address"),
        (status = 400, body = ApiErrorBody, description = "Not a leak: empty, binary, no usable column"), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody, description = "Only auditors investigate"),
        (status = 413, body = ApiErrorBody)))]
pub(super) async fn attribute(
    caller: Caller,
    RawBody(body): RawBody,
) -> ApiResult<Json<Attribution>> {
    let limits = wbg_forensics::Limits {
        max_bytes: MAX_BODY as u64,
        ..wbg_forensics::Limits::default()
    };
    caller
        .run(move |g, c| g.attribute(c.actor(), body.as_ref(), &limits, &c.meta))
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ReportQuery {
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
        _ => return Err(ApiError::invalid("format must be json, csv or markdown")),
    })
}

#[utoipa::path(post, path = "/v1/forensics/incidents", tag = "forensics", summary = "Open a breach incident: who was exposed, which fields, where",
    security(("bearer" = [])), request_body = IncidentRequest,
    responses((status = 201, body = ImpactReport, description = "The breach-impact report; it names waybills, accounts, regions and counts, never a person"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody, description = "Only auditors investigate"),
        (status = 413, body = ApiErrorBody, description = "More exposed waybills than one incident holds: split the window")))]
pub(super) async fn open_incident(
    caller: Caller,
    Body(req): Body<IncidentRequest>,
) -> ApiResult<(StatusCode, Json<ImpactReport>)> {
    let report = caller
        .run(move |g, c| g.breach_impact(c.actor(), &req, &c.meta))
        .await?;
    Ok((StatusCode::CREATED, Json(report)))
}

#[utoipa::path(get, path = "/v1/forensics/incidents/{id}", tag = "forensics", summary = "An incident's impact report",
    security(("bearer" = [])), params(("id" = String, Path), ReportQuery),
    responses((status = 200, body = ImpactReport, description = "JSON, or CSV / Markdown as asked"), (status = 400, body = ApiErrorBody),
        (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn incident(
    caller: Caller,
    Path(id): Path<String>,
    Q(q): Q<ReportQuery>,
) -> ApiResult<Response> {
    let report = caller
        .run(move |g, c| g.incident(c.actor(), &id, &c.meta))
        .await?;
    report_response(report, q.format.as_deref())
}

#[utoipa::path(get, path = "/v1/forensics/incidents/{id}/notifications", tag = "forensics", summary = "The people to notify of an incident (customer service)",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = NotificationList, description = "One notice per exposed customer, with name and phone; every waybill read is audited"),
        (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody, description = "The policy opens the incident's customers to customer service only"), (status = 404, body = ApiErrorBody)))]
pub(super) async fn notifications(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<NotificationList>> {
    caller
        .run(move |g, c| g.notification_list(&c.token, &id, &c.meta))
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PlantCanaries {
    /// The account whose view they go into.
    account: String,
    /// How many (1-100; default 3).
    #[serde(default)]
    count: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Planted {
    /// The canary waybill numbers.
    waybills: Vec<String>,
}

#[utoipa::path(post, path = "/v1/forensics/canaries", tag = "forensics", summary = "Plant canary waybills in one account's view",
    security(("bearer" = [])), request_body = PlantCanaries,
    responses((status = 201, body = Planted), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn plant_canaries(
    caller: Caller,
    Body(req): Body<PlantCanaries>,
) -> ApiResult<(StatusCode, Json<Planted>)> {
    let count = req.count.unwrap_or(3);
    if !(1..=wbg_guard::MAX_CANARIES).contains(&count) {
        return Err(ApiError::invalid(format!(
            "count must be 1 to {}",
            wbg_guard::MAX_CANARIES
        )));
    }
    let waybills = caller
        .run(move |g, c| {
            let made_up = wbg_sim::one_off_waybills(rand::random(), count);
            g.plant_canaries(c.actor(), &req.account, made_up, &c.meta)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Planted { waybills })))
}
