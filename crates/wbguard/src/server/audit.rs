//! The audit log over HTTP: its signed checkpoint and verifier key (public, for witnesses and monitors), proofs
//! of inclusion and consistency, and an entry's exact bytes (auditors and admins).
use super::error::{ApiError, ApiErrorBody, ApiResult};
use super::extract::{blocking, number, Caller, Q};
use super::{text, AppState};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[utoipa::path(get, path = "/v1/audit/checkpoint", tag = "audit log", summary = "The latest signed checkpoint",
    responses((status = 200, description = "C2SP signed note holding a tlog-checkpoint", content_type = "text/plain")))]
pub(super) async fn checkpoint(State(s): State<AppState>) -> ApiResult<Response> {
    Ok(text(blocking(move || s.guard.checkpoint()).await?))
}

#[utoipa::path(get, path = "/v1/audit/key", tag = "audit log", summary = "The checkpoints' verifier key",
    responses((status = 200, description = "the note verifier key, name+hash+base64key", content_type = "text/plain")))]
pub(super) async fn verifier_key(State(s): State<AppState>) -> Response {
    text(format!("{}\n", s.guard.verifier_key().to_text()))
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProofResponse {
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
pub(super) struct SizeQuery {
    /// Tree size (default: the current size).
    #[serde(default)]
    size: Option<u64>,
}

#[utoipa::path(get, path = "/v1/audit/proof/{seq}", tag = "audit log", summary = "Inclusion proof of an entry",
    params(("seq" = u64, Path), SizeQuery),
    responses((status = 200, body = ProofResponse), (status = 400, body = ApiErrorBody)))]
pub(super) async fn inclusion(
    State(s): State<AppState>,
    Path(seq): Path<String>,
    Q(q): Q<SizeQuery>,
) -> ApiResult<Json<ProofResponse>> {
    let seq = number(&seq, "seq")?;
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
pub(super) struct ConsistencyQuery {
    /// Older tree size.
    from: u64,
    /// Newer tree size.
    to: u64,
}

#[utoipa::path(get, path = "/v1/audit/consistency", tag = "audit log", summary = "Consistency proof between two sizes",
    params(ConsistencyQuery),
    responses((status = 200, body = ProofResponse), (status = 400, body = ApiErrorBody)))]
pub(super) async fn consistency(
    State(s): State<AppState>,
    Q(q): Q<ConsistencyQuery>,
) -> ApiResult<Json<ProofResponse>> {
    let (from, to) = (q.from, q.to);
    let proof = blocking(move || s.guard.consistency_proof(from, to)).await?;
    Ok(Json(ProofResponse {
        from,
        size: to,
        proof: proof.iter().map(|h| B64.encode(h)).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchQuery {
    /// The acting account.
    #[serde(default)]
    account: Option<String>,
    /// The waybill concerned.
    #[serde(default)]
    waybill: Option<String>,
    /// The action (`view`, `label`, `ingest`, `event`, `account_suspend`, `alert_triage`, …).
    #[serde(default)]
    action: Option<String>,
    /// `allow` or `deny`.
    #[serde(default)]
    decision: Option<String>,
    /// Entries at or after this time: ms since the epoch, ISO 8601 (`2026-12-03T08:00:00+08:00`; without an
    /// offset, China Standard Time), a date, `now-7d`…
    #[serde(default)]
    from: Option<String>,
    /// Entries before this time, as `from`.
    #[serde(default)]
    to: Option<String>,
    /// The previous page's `next`.
    #[serde(default)]
    cursor: Option<String>,
    /// Page size (default 50, at most 500).
    #[serde(default)]
    limit: Option<usize>,
}

/// A query's time parameter, as [`wbg_core::when`] reads it.
pub(super) fn when(name: &str, given: Option<&str>) -> ApiResult<Option<i64>> {
    given
        .map(|t| {
            wbg_core::when::parse_when(t, wbg_core::now_millis())
                .map_err(|e| ApiError::invalid(format!("{name} is not a time: {e}")))
        })
        .transpose()
}

#[utoipa::path(get, path = "/v1/audit/entries", tag = "audit log",
    summary = "Search the audit log, newest first, a page at a time (auditors, admins)",
    description = "Every filter given must hold. Pages follow `next` (a cursor naming the last entry shown), so new \
        entries never shift a page. Answered from an index kept beside the log; 503 while the index of an upgraded \
        store is first built.",
    security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = wbg_guard::AuditSearchPage), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
pub(super) async fn search(
    caller: Caller,
    Q(q): Q<SearchQuery>,
) -> ApiResult<Json<wbg_guard::AuditSearchPage>> {
    let before = match q.cursor.as_deref() {
        Some(c) => Some(
            wbg_store::AuditCursor::parse(c)
                .ok_or_else(|| ApiError::invalid("cursor must be a `next` this endpoint gave"))?,
        ),
        None => None,
    };
    if q.limit.is_some_and(|n| n == 0 || n > wbg_store::MAX_PAGE) {
        return Err(ApiError::invalid(format!(
            "limit must be 1-{}",
            wbg_store::MAX_PAGE
        )));
    }
    let query = wbg_store::AuditQuery {
        account: q.account,
        waybill: q.waybill,
        action: q.action,
        decision: q.decision,
        from: when("from", q.from.as_deref())?,
        to: when("to", q.to.as_deref())?,
        before,
        limit: q.limit.unwrap_or(50),
    };
    caller
        .run(move |g, c| g.search_audit(c.actor(), &query, &c.meta))
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct HourlyQuery {
    /// The acting account.
    #[serde(default)]
    account: Option<String>,
    /// The waybill concerned.
    #[serde(default)]
    waybill: Option<String>,
    /// The action (`view` for guarded reads).
    #[serde(default)]
    action: Option<String>,
    /// `allow` or `deny`.
    #[serde(default)]
    decision: Option<String>,
    /// Window start (default 24 hours ago), as `/v1/audit/entries` takes it.
    #[serde(default)]
    from: Option<String>,
    /// Window end (default now); at most 31 days after `from`.
    #[serde(default)]
    to: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit/hourly", tag = "audit log",
    summary = "How many entries the filters select in each hour, by decision (auditors, admins)",
    security(("bearer" = [])), params(HourlyQuery),
    responses((status = 200, body = [wbg_store::HourCount]), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
pub(super) async fn hourly(
    caller: Caller,
    Q(q): Q<HourlyQuery>,
) -> ApiResult<Json<Vec<wbg_store::HourCount>>> {
    let query = wbg_store::AuditQuery {
        account: q.account,
        waybill: q.waybill,
        action: q.action,
        decision: q.decision,
        from: when("from", q.from.as_deref())?,
        to: when("to", q.to.as_deref())?,
        before: None,
        limit: 1,
    };
    caller
        .run(move |g, c| g.hourly_audit(c.actor(), &query, &c.meta))
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/v1/audit/entries/{seq}", tag = "audit log", summary = "An entry's exact bytes (auditors, admins)",
    security(("bearer" = [])), params(("seq" = u64, Path)),
    responses((status = 200, description = "the exact bytes that were hashed into the log", content_type = "application/json"),
        (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
        (status = 404, body = ApiErrorBody)))]
pub(super) async fn entry(caller: Caller, Path(seq): Path<String>) -> ApiResult<Response> {
    let seq = number(&seq, "seq")?;
    let bytes = caller
        .run(move |g, c| g.audit_entry(c.actor(), seq, &c.meta))
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}
