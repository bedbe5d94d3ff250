//! The carrier's work over HTTP: customer-service tickets (the work registry that widens a read) and bulk
//! exports (asked for, approved by a second account, delivered once, watermarked).
use super::error::{ApiErrorBody, ApiResult};
use super::extract::{Body, Caller, Q};
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use wbg_guard::{Export, ExportRequest, ExportStatus, TicketRecord, TicketRegistration};

#[utoipa::path(post, path = "/v1/tickets", tag = "work registry", summary = "Register a customer-service ticket (integration)",
    security(("bearer" = [])), request_body = TicketRegistration,
    responses((status = 201, body = TicketRecord, description = "Registered, open: customer service may now read its waybills in full"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody, description = "Only the carrier's systems (integration) register work"),
        (status = 404, body = ApiErrorBody, description = "A waybill it names does not exist"), (status = 409, body = ApiErrorBody)))]
pub(super) async fn open_ticket(
    caller: Caller,
    Body(req): Body<TicketRegistration>,
) -> ApiResult<(StatusCode, Json<TicketRecord>)> {
    let t = caller
        .run(move |g, c| g.open_ticket(c.actor(), &req, &c.meta))
        .await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(get, path = "/v1/tickets/{id}", tag = "work registry", summary = "A registered ticket",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = TicketRecord), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody)))]
pub(super) async fn ticket(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TicketRecord>> {
    caller
        .run(move |g, c| g.ticket(c.actor(), &id, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/tickets/{id}/close", tag = "work registry", summary = "Close a ticket",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = TicketRecord, description = "Closed: it widens no read any more"), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody, description = "Closed already")))]
pub(super) async fn close_ticket(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TicketRecord>> {
    caller
        .run(move |g, c| g.close_ticket(c.actor(), &id, &c.meta))
        .await
        .map(Json)
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ExportQuery {
    /// Only exports in this state (`requested`, `approved`, `delivered`).
    #[serde(default)]
    #[param(value_type = Option<String>)]
    status: Option<ExportStatus>,
}

#[utoipa::path(get, path = "/v1/exports", tag = "exports", summary = "Exports, newest first: the approval queue (auditors, admins)",
    security(("bearer" = [])), params(ExportQuery),
    responses((status = 200, body = [Export]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody)))]
pub(super) async fn list_exports(
    caller: Caller,
    Q(q): Q<ExportQuery>,
) -> ApiResult<Json<Vec<Export>>> {
    caller
        .run(move |g, c| g.exports(c.actor(), q.status, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/exports", tag = "exports", summary = "Ask for a bulk export of a merchant's own orders",
    security(("bearer" = [])), request_body = ExportRequest,
    responses((status = 201, body = Export, description = "Asked for; nothing is handed over until a second account approves"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub(super) async fn request_export(
    caller: Caller,
    Body(req): Body<ExportRequest>,
) -> ApiResult<(StatusCode, Json<Export>)> {
    let export = caller
        .run(move |g, c| g.request_export(&c.token, &req, &c.meta))
        .await?;
    Ok((StatusCode::CREATED, Json(export)))
}

#[utoipa::path(get, path = "/v1/exports/{id}", tag = "exports", summary = "An export's state",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Export), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn export_status(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Export>> {
    caller
        .run(move |g, c| g.export(&c.token, &id, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/exports/{id}/approve", tag = "exports", summary = "Approve an export (a second account)",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Export), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody, description = "Not an approver, or the requester itself"),
        (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub(super) async fn approve_export(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Export>> {
    caller
        .run(move |g, c| g.approve_export(c.actor(), &id, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/exports/{id}/file", tag = "exports", summary = "Download an approved export, once",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "The export file (CSV), once, to its requester", content_type = "text/csv"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody),
        (status = 409, body = ApiErrorBody, description = "Not approved yet, or delivered already")))]
pub(super) async fn export_file(caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let file = caller
        .run(move |g, c| g.deliver_export(&c.token, &id, &c.meta))
        .await?;
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

#[utoipa::path(post, path = "/v1/rights/erase", tag = "tickets",
    summary = "Delete a person's data (PIPL art. 47) by crypto-shredding: every finished waybill carrying their phone loses its personal fields now, those under way once finished (customer service, under a registered ticket)",
    description = "The same proof as /v1/rights/access: the phone must be the recipient's or the sender's of `waybill_no`, and \
        `ticket` a registered open ticket for it. Finished waybills (signed for or returned) are moved into a bucket of their own \
        whose keys are destroyed at once — both parties' fields, as a retention day's; routing data and the audit log stay. \
        Waybills still under way are listed as pending and erased by the first retention run after each is finished. \
        Audited (`rights_erase`, without the phone; `erase` and `shred` for the destruction) and metered like a full read.",
    security(("bearer" = [])), request_body = wbg_guard::RightsRequest,
    responses((status = 200, body = wbg_guard::ErasureAnswer), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 413, body = ApiErrorBody), (status = 429, body = ApiErrorBody)))]
pub(super) async fn rights_erase(
    caller: Caller,
    Body(req): Body<wbg_guard::RightsRequest>,
) -> ApiResult<Json<wbg_guard::ErasureAnswer>> {
    caller
        .run(move |g, c| g.rights_erase(c.actor(), &req, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/rights/access", tag = "tickets",
    summary = "Who was shown a person's data: every waybill carrying their phone, with the accounts shown its personal fields and when (customer service, under a registered ticket)",
    description = "The phone must be the recipient's or the sender's of `waybill_no`, and `ticket` a registered open ticket for \
        it, not another agent's. The answer holds account ids, times, views and purposes, never a name, phone or address. \
        Audited (`rights_access`, without the phone) and metered like a full read.",
    security(("bearer" = [])), request_body = wbg_guard::RightsRequest,
    responses((status = 200, body = wbg_guard::RightsAnswer), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 413, body = ApiErrorBody), (status = 429, body = ApiErrorBody)))]
pub(super) async fn rights_access(
    caller: Caller,
    Body(req): Body<wbg_guard::RightsRequest>,
) -> ApiResult<Json<wbg_guard::RightsAnswer>> {
    caller
        .run(move |g, c| g.rights_access(c.actor(), &req, &c.meta))
        .await
        .map(Json)
}
