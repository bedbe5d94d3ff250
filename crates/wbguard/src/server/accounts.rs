//! Accounts over HTTP: the list, suspension and reinstatement, transfers. Creation and credentials are in
//! `credentials.rs`; the rules live in the guard (`wbg_guard::admin`).
use super::error::{ApiErrorBody, ApiResult};
use super::extract::{Body, Caller, OptionalBody, Q};
use axum::extract::Path;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use wbg_core::Account;
use wbg_guard::{AccountDetail, AccountSummary};

/// `{"reason": "…"}` (optional): why, in at most 200 characters and without a phone number.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StatusChange {
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", summary = "Every account with its last activity (admins, auditors)", security(("bearer" = [])),
    responses((status = 200, body = [AccountSummary]), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub(super) async fn list(caller: Caller) -> ApiResult<Json<Vec<AccountSummary>>> {
    caller
        .run(|g, c| g.accounts(c.actor(), &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts",
    summary = "One account: status, reason and since when, role, outlet, last activity, working tokens (a count), open alerts (admins, auditors)",
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = AccountDetail), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn detail(
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountDetail>> {
    caller
        .run(move |g, c| g.account_detail(c.actor(), &id, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/accounts/{id}/suspend", tag = "accounts", summary = "Suspend an account",
    request_body(content = StatusChange, description = "optional"), security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Account), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn suspend(
    caller: Caller,
    Path(id): Path<String>,
    OptionalBody(change): OptionalBody<StatusChange>,
) -> ApiResult<Json<Account>> {
    caller
        .run(move |g, c| g.set_status(c.actor(), &id, true, change.reason.as_deref(), &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/accounts/{id}/reinstate", tag = "accounts", summary = "Reinstate a suspended account",
    request_body(content = StatusChange, description = "optional; required for an account suspended as dormant, a leaver or unattested"),
    security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Account), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn reinstate(
    caller: Caller,
    Path(id): Path<String>,
    OptionalBody(change): OptionalBody<StatusChange>,
) -> ApiResult<Json<Account>> {
    caller
        .run(move |g, c| g.set_status(c.actor(), &id, false, change.reason.as_deref(), &c.meta))
        .await
        .map(Json)
}

/// `{"outlet": "O042"}`: where the account works from now on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Transfer {
    outlet: String,
}

#[utoipa::path(post, path = "/v1/accounts/{id}/transfer", tag = "accounts", summary = "Move a courier, staff member or print station to another outlet",
    request_body = Transfer, security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Account), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn transfer(
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<Transfer>,
) -> ApiResult<Json<Account>> {
    caller
        .run(move |g, c| g.transfer_account(c.actor(), &id, &req.outlet, &c.meta))
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ScoresQuery {
    /// From: ms, ISO 8601 or `now-7d` (the default).
    #[serde(default)]
    from: Option<String>,
    /// To, as `from` (default now).
    #[serde(default)]
    to: Option<String>,
}

#[utoipa::path(get, path = "/v1/accounts/{id}/scores", tag = "accounts",
    summary = "An account's risk scores after each of its reads, replayed from the log, with each detector's share and the live standing (admins, auditors)",
    description = "The account's guarded reads in the window (at most 30 days; default the last 7) are replayed from the audit \
        index through a fresh engine with the settings in force: the fast and slow score and the level after each read, what each \
        detector contributed, and where this node's engine has the account now. The replay sees this account alone (no peers) and \
        starts from nothing. Audited `risk_scores`.",
    security(("bearer" = [])), params(("id" = String, Path), ScoresQuery),
    responses((status = 200, body = wbg_guard::ScorePath), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
pub(super) async fn scores(
    caller: Caller,
    Path(id): Path<String>,
    Q(q): Q<ScoresQuery>,
) -> ApiResult<Json<wbg_guard::ScorePath>> {
    let from =
        super::audit::when("from", Some(q.from.as_deref().unwrap_or("now-7d")))?.unwrap_or(0);
    let to = super::audit::when("to", Some(q.to.as_deref().unwrap_or("now")))?.unwrap_or(0);
    caller
        .run(move |g, c| g.score_path(c.actor(), &id, from, to.saturating_add(1), &c.meta))
        .await
        .map(Json)
}
