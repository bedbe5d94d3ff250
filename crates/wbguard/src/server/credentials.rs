//! Credentials over HTTP: accounts and their first credential, tokens (issue, list, revoke), enrolments
//! (approve, cancel, redeem) and the caller's own account. The rules live in `wbg_guard::credentials`.
use super::extract::{Body, Caller, OptionalBody, Origin};
use super::{blocking, ApiErrorBody, ApiResult, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wbg_core::{Account, AccountId, AccountStatus, MerchantId, OutletId, Role};
use wbg_guard::{
    Actor, Enrolment, EnrolmentCode, Issued, IssuedToken, ReviewRow, RosterReport, WhoAmI,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateAccount {
    id: String,
    role: String,
    #[serde(default)]
    outlet: Option<String>,
    #[serde(default)]
    merchant: Option<String>,
}

/// A credential asked for: a token where one is issued directly, else an enrolment a second admin approves.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CredentialResponse {
    /// The account.
    id: String,
    /// The API token (shown once, stored only as a hash), for a role that sees no personal data.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// When the token stops working (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    /// For a role that sees personal data: the enrolment a second admin approves
    /// (`POST /v1/enrolments/{id}/approve`) and whose code the owner redeems (`POST /v1/enrol`).
    #[serde(skip_serializing_if = "Option::is_none")]
    enrolment: Option<Enrolment>,
}

impl CredentialResponse {
    /// 201 with a token, 202 with an enrolment (nothing usable exists yet).
    fn from(id: &str, issued: Issued) -> (StatusCode, Json<CredentialResponse>) {
        match issued {
            Issued::Token(t) => (
                StatusCode::CREATED,
                Json(CredentialResponse {
                    id: id.to_owned(),
                    token: Some(t.token),
                    expires_at: Some(t.expires_at),
                    enrolment: None,
                }),
            ),
            Issued::Enrolment(e) => (
                StatusCode::ACCEPTED,
                Json(CredentialResponse {
                    id: id.to_owned(),
                    token: None,
                    expires_at: None,
                    enrolment: Some(e),
                }),
            ),
        }
    }
}

#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", summary = "Create an account and its first credential (admins)", request_body = CreateAccount, security(("bearer" = [])),
    responses((status = 201, body = CredentialResponse, description = "Created, with its first token (a role that sees no personal data)"),
        (status = 202, body = CredentialResponse, description = "Created without a token: its owner enrols once a second admin approves"),
        (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub(super) async fn create_account(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateAccount>,
) -> ApiResult<(StatusCode, Json<CredentialResponse>)> {
    let (account, issued) = blocking(move || {
        let now = wbg_core::now_millis();
        let account = Account {
            id: AccountId::parse(&req.id)?,
            role: Role::parse(&req.role)?,
            outlet: req.outlet.as_deref().map(OutletId::parse).transpose()?,
            merchant: req.merchant.as_deref().map(MerchantId::parse).transpose()?,
            status: AccountStatus::Active,
            status_reason: None,
            created_at: now,
            status_since: now,
        };
        s.guard
            .open_account(Actor::Token(&caller.token), account, &caller.meta)
    })
    .await?;
    Ok(CredentialResponse::from(account.id.as_str(), issued))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IssueToken {
    /// Keep the account's older tokens working (default: the new token replaces them).
    #[serde(default)]
    keep_existing: bool,
}

#[utoipa::path(post, path = "/v1/accounts/{id}/tokens", tag = "credentials", summary = "Issue a new credential for an account", security(("bearer" = [])), params(("id" = String, Path)),
    request_body(content = Option<IssueToken>, description = "Optional; without it the new token replaces the account's older ones"),
    responses((status = 201, body = CredentialResponse, description = "A token (a role that sees no personal data)"),
        (status = 202, body = CredentialResponse, description = "An enrolment for a second admin to approve"),
        (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn issue_token(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalBody(req): OptionalBody<IssueToken>,
) -> ApiResult<(StatusCode, Json<CredentialResponse>)> {
    let id2 = id.clone();
    let issued = blocking(move || {
        s.guard.issue_credential(
            Actor::Token(&caller.token),
            &id2,
            req.keep_existing,
            &caller.meta,
        )
    })
    .await?;
    Ok(CredentialResponse::from(&id, issued))
}

/// A token as listed: never the token, never its hash.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TokenMeta {
    /// Its handle, for `DELETE /v1/accounts/{id}/tokens/{token_id}`.
    id: String,
    /// When it was issued (ms since the epoch).
    created_at: i64,
    /// When it stops working.
    expires_at: Option<i64>,
    /// How it was issued (by whom, through which enrolment).
    issued_by: String,
}

#[utoipa::path(get, path = "/v1/accounts/{id}/tokens", tag = "credentials", summary = "An account's working tokens (metadata only)", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = [TokenMeta], description = "The account's working tokens (an admin, or the account itself)"),
        (status = 403, body = ApiErrorBody)))]
pub(super) async fn list_tokens(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<TokenMeta>>> {
    let tokens = blocking(move || {
        s.guard
            .tokens_of(Actor::Token(&caller.token), &id, &caller.meta)
    })
    .await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| TokenMeta {
                id: t.id,
                created_at: t.created_at,
                expires_at: t.expires_at,
                issued_by: t.issued_by,
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/v1/accounts/{id}/tokens/{token_id}", tag = "credentials", summary = "Revoke one token", security(("bearer" = [])),
    params(("id" = String, Path), ("token_id" = String, Path)),
    responses((status = 204, description = "Revoked: it stops working at once (an admin, or the account itself)"),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn revoke_token(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    blocking(move || {
        s.guard
            .revoke_token(Actor::Token(&caller.token), &id, &token_id, &caller.meta)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/enrolments/{id}", tag = "credentials", summary = "An enrolment", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Enrolment), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn enrolment(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Enrolment>> {
    Ok(Json(
        blocking(move || {
            s.guard
                .enrolment(Actor::Token(&caller.token), &id, &caller.meta)
        })
        .await?,
    ))
}

#[utoipa::path(post, path = "/v1/enrolments/{id}/approve", tag = "credentials", summary = "Approve an enrolment (a second admin): the owner's one-time code", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = EnrolmentCode, description = "The one-time code for the account's owner (shown once)"),
        (status = 403, body = ApiErrorBody, description = "Not an admin, or the admin who asked for it"),
        (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 410, body = ApiErrorBody)))]
pub(super) async fn approve_enrolment(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<EnrolmentCode>> {
    Ok(Json(
        blocking(move || {
            s.guard
                .approve_enrolment(Actor::Token(&caller.token), &id, &caller.meta)
        })
        .await?,
    ))
}

#[utoipa::path(post, path = "/v1/enrolments/{id}/cancel", tag = "credentials", summary = "Cancel an enrolment", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Enrolment), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub(super) async fn cancel_enrolment(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Enrolment>> {
    Ok(Json(
        blocking(move || {
            s.guard
                .cancel_enrolment(Actor::Token(&caller.token), &id, &caller.meta)
        })
        .await?,
    ))
}

/// `{"enrolment": "E…", "code": "wbe_…"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Redeem {
    enrolment: String,
    code: String,
}

#[utoipa::path(post, path = "/v1/enrol", tag = "credentials", summary = "Redeem an enrolment code for the owner's token", request_body = Redeem,
    responses((status = 201, body = IssuedToken, description = "The owner's token (shown once); the code is used up"),
        (status = 401, body = ApiErrorBody, description = "No such approved enrolment, or the wrong code"),
        (status = 410, body = ApiErrorBody, description = "The code has expired")))]
pub(super) async fn redeem(
    State(s): State<AppState>,
    Origin(meta): Origin,
    Body(req): Body<Redeem>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    let issued =
        blocking(move || s.guard.redeem_enrolment(&req.enrolment, &req.code, &meta)).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[utoipa::path(get, path = "/v1/me", tag = "credentials", summary = "The caller's account and tokens", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI, description = "The caller's account and its tokens: how each was issued, until when it works"),
        (status = 401, body = ApiErrorBody)))]
pub(super) async fn me(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<WhoAmI>> {
    Ok(Json(blocking(move || s.guard.whoami(&caller.token)).await?))
}

/// `?dry_run=true&force=true`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct RosterParams {
    /// Report what would change, change nothing.
    #[serde(default)]
    dry_run: bool,
    /// Apply even if more accounts would be suspended than `[accounts] roster_max_leavers_percent` allows.
    #[serde(default)]
    force: bool,
}

#[utoipa::path(post, path = "/v1/accounts/roster", tag = "accounts", summary = "Reconcile accounts with the HR roster (CSV)", security(("bearer" = [])), params(RosterParams),
    request_body(content = String, content_type = "text/csv",
        description = "The HR roster: a header with an `account` and optionally an `outlet` column; other columns are ignored"),
    responses((status = 200, body = RosterReport, description = "What changed (or would)"),
        (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
        (status = 409, body = ApiErrorBody, description = "It would suspend implausibly many accounts; check the file or force")))]
pub(super) async fn sync_roster(
    State(s): State<AppState>,
    caller: Caller,
    query: axum::extract::RawQuery,
    body: axum::body::Bytes,
) -> ApiResult<Json<RosterReport>> {
    let params: RosterParams = super::parse_query(&query)?;
    let text = String::from_utf8(body.to_vec()).map_err(|_| {
        super::ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the roster must be UTF-8 CSV",
        )
    })?;
    Ok(Json(
        blocking(move || {
            let rows = wbg_guard::parse_roster(&text)?;
            s.guard.sync_roster(
                Actor::Token(&caller.token),
                &rows,
                params.dry_run,
                params.force,
                &caller.meta,
            )
        })
        .await?,
    ))
}

/// `?format=csv` for a spreadsheet; JSON otherwise.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ReviewParams {
    /// `json` (default) or `csv`.
    #[serde(default)]
    format: Option<String>,
}

#[utoipa::path(get, path = "/v1/access-review/scale", tag = "oversight",
    summary = "How many people the store holds personal data of (distinct phones whose contact data is kept), and the duties that scale brings (1 M, 10 M)",
    security(("bearer" = [])),
    responses((status = 200, body = wbg_guard::ScaleReport), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub(super) async fn scale_review(caller: Caller) -> ApiResult<Json<wbg_guard::ScaleReport>> {
    caller
        .run(move |g, c| g.scale_review(c.actor(), &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/access-review", tag = "oversight", summary = "The access review: what every account may see and do", security(("bearer" = [])), params(ReviewParams),
    responses((status = 200, body = [ReviewRow], description = "Every account (for an outlet manager: the accounts it may recertify): what it may see per purpose (derived from the policy), what it may do, last activity, full reads in 30 days, flags"),
        (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody)))]
pub(super) async fn access_review(
    State(s): State<AppState>,
    caller: Caller,
    query: axum::extract::RawQuery,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let params: ReviewParams = super::parse_query(&query)?;
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(super::ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "format must be json or csv",
            ))
        }
    };
    let rows = blocking(move || {
        s.guard
            .access_review(Actor::Token(&caller.token), &caller.meta)
    })
    .await?;
    Ok(if csv {
        let text = wbg_guard::review_csv(&rows).map_err(super::ApiError::from)?;
        (
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            text,
        )
            .into_response()
    } else {
        Json(rows).into_response()
    })
}

/// `{"accounts": ["C0420001", …], "decision": "keep" | "revoke"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Recertify {
    /// The accounts decided on (1-1000).
    accounts: Vec<String>,
    /// `keep` (access still needed) or `revoke` (suspended now).
    decision: String,
}

#[utoipa::path(post, path = "/v1/access-review/attestations", tag = "oversight", summary = "Record this quarter's recertification decisions", request_body = Recertify, security(("bearer" = [])),
    responses((status = 200, body = [wbg_guard::Attestation], description = "This quarter's decisions, recorded"),
        (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody, description = "Not an admin nor the outlet manager the policy lets decide every account named (none is decided), or one's own account"),
        (status = 409, body = ApiErrorBody, description = "Decided already this quarter")))]
pub(super) async fn recertify(
    State(s): State<AppState>,
    caller: Caller,
    Body(req): Body<Recertify>,
) -> ApiResult<Json<Vec<wbg_guard::Attestation>>> {
    let keep = match req.decision.as_str() {
        "keep" => true,
        "revoke" => false,
        _ => {
            return Err(super::ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "decision must be keep or revoke",
            ))
        }
    };
    Ok(Json(
        blocking(move || {
            s.guard.attest(
                Actor::Token(&caller.token),
                &req.accounts,
                keep,
                &caller.meta,
            )
        })
        .await?,
    ))
}
