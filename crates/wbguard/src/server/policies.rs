//! Policy versions over HTTP: propose, list, read, approve (a second admin), roll back. The rules live in
//! `wbg_guard::policies`.
use super::extract::Caller;
use super::{blocking, ApiErrorBody, ApiResult, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wbg_guard::{Actor, PolicyVersion, ReplayReport};

/// `?days=30`: how far back a replay reads.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayParams {
    /// Days of audited reads to replay (1-90, default 30).
    #[serde(default = "thirty")]
    days: u32,
}

fn thirty() -> u32 {
    30
}

/// A proposal stored, and what it would have changed.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Proposal {
    /// The stored version.
    version: PolicyVersion,
    /// The reads of the last `days` days decided again under it: every decision that would change.
    replay: ReplayReport,
}

/// The versions in the store, and the one in force on the node that answered.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PolicyList {
    /// The version in force on this node (0: the configured file or the built-in policy).
    in_force: u64,
    /// Every stored version, oldest first.
    versions: Vec<PolicyVersion>,
}

#[utoipa::path(post, path = "/v1/policies/proposals", tag = "policies", summary = "Propose a policy version, replayed over recent reads", security(("bearer" = [])), params(ReplayParams),
    request_body(content = String, content_type = "text/plain", description = "The whole Cedar policy text"),
    responses((status = 201, body = Proposal, description = "Stored as proposed, with the replay of the last days' reads under it; nothing changes until a second admin approves"),
        (status = 400, body = ApiErrorBody, description = "It does not validate (the message names the line)"),
        (status = 403, body = ApiErrorBody)))]
pub(super) async fn propose(
    State(s): State<AppState>,
    caller: Caller,
    query: axum::extract::RawQuery,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Proposal>)> {
    let params: ReplayParams = super::parse_query(&query)?;
    let text = String::from_utf8(body.to_vec()).map_err(|_| {
        super::ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the policy must be UTF-8 text",
        )
    })?;
    let proposal = blocking(move || {
        let actor = Actor::Token(&caller.token);
        let version = s.guard.propose_policy(actor, &text, &caller.meta)?;
        let replay = s
            .guard
            .replay_policy(actor, version.version, params.days, &caller.meta)?;
        Ok(Proposal { version, replay })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(proposal)))
}

#[utoipa::path(get, path = "/v1/policies", tag = "policies", summary = "The stored policy versions", security(("bearer" = [])),
    responses((status = 200, body = PolicyList), (status = 403, body = ApiErrorBody)))]
pub(super) async fn list(State(s): State<AppState>, caller: Caller) -> ApiResult<Json<PolicyList>> {
    let g = s.guard.clone();
    let versions =
        blocking(move || g.policy_versions(Actor::Token(&caller.token), &caller.meta)).await?;
    Ok(Json(PolicyList {
        in_force: s.guard.policy_version(),
        versions,
    }))
}

#[utoipa::path(get, path = "/v1/policies/{version}", tag = "policies", summary = "A version's Cedar text", security(("bearer" = [])), params(("version" = u64, Path)),
    responses((status = 200, description = "The version's Cedar text", content_type = "text/plain"),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn text(
    State(s): State<AppState>,
    caller: Caller,
    Path(v): Path<u64>,
) -> ApiResult<([(axum::http::HeaderName, &'static str); 1], String)> {
    let text = blocking(move || {
        s.guard
            .policy_text(Actor::Token(&caller.token), v, &caller.meta)
    })
    .await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        text,
    ))
}

#[utoipa::path(post, path = "/v1/policies/{version}/approve", tag = "policies", summary = "Approve a proposed version (a second admin)", security(("bearer" = [])), params(("version" = u64, Path)),
    responses((status = 200, body = PolicyVersion, description = "In force on this node now, on every node within seconds"),
        (status = 403, body = ApiErrorBody, description = "Not an admin, or its proposer"),
        (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub(super) async fn approve(
    State(s): State<AppState>,
    caller: Caller,
    Path(v): Path<u64>,
) -> ApiResult<Json<PolicyVersion>> {
    Ok(Json(
        blocking(move || {
            s.guard
                .approve_policy(Actor::Token(&caller.token), v, &caller.meta)
        })
        .await?,
    ))
}

#[utoipa::path(post, path = "/v1/policies/{version}/rollback", tag = "policies", summary = "Put an earlier version back in force", security(("bearer" = [])), params(("version" = u64, Path)),
    responses((status = 200, body = PolicyVersion, description = "An earlier version back in force"),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub(super) async fn rollback(
    State(s): State<AppState>,
    caller: Caller,
    Path(v): Path<u64>,
) -> ApiResult<Json<PolicyVersion>> {
    Ok(Json(
        blocking(move || {
            s.guard
                .rollback_policy(Actor::Token(&caller.token), v, &caller.meta)
        })
        .await?,
    ))
}

#[utoipa::path(post, path = "/v1/policies/{version}/replay", tag = "policies", summary = "Replay recent reads under a version", security(("bearer" = [])), params(("version" = u64, Path), ReplayParams),
    responses((status = 200, body = ReplayReport, description = "The last days' reads decided again under the version: every decision that would change"),
        (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub(super) async fn replay(
    State(s): State<AppState>,
    caller: Caller,
    Path(v): Path<u64>,
    query: axum::extract::RawQuery,
) -> ApiResult<Json<ReplayReport>> {
    let params: ReplayParams = super::parse_query(&query)?;
    Ok(Json(
        blocking(move || {
            s.guard
                .replay_policy(Actor::Token(&caller.token), v, params.days, &caller.meta)
        })
        .await?,
    ))
}
