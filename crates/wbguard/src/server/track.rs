//! The public lookup: `GET /track/{no}` (JSON) and the page `/track`, no account needed. The guard answers with
//! routing data only and meters every source (see `wbg_guard::Tracking`): a source too fast gets 429 with
//! `Retry-After`, one caught enumerating 403 until its block ends.
use super::error::{ApiError, ApiResult};
use super::extract::{blocking, Origin, Q};
use super::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::net::IpAddr;
use wbg_guard::TrackRefusal;

const PAGE: &str = include_str!("../../console/track.html");
const SCRIPT: &str = include_str!("../../console/track.js");

/// `?last4=`: the last four digits of the recipient's phone, to be shown the masked name and district.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackQuery {
    #[serde(default)]
    last4: Option<String>,
}

async fn lookup(
    State(s): State<AppState>,
    Origin(meta): Origin,
    Path(no): Path<String>,
    Q(q): Q<TrackQuery>,
) -> ApiResult<Response> {
    if q.last4
        .as_deref()
        .is_some_and(|d| d.len() != 4 || !d.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::invalid("last4 must be four digits"));
    }
    if no.is_empty() || no.len() > 40 || !no.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::invalid(
            "a waybill number is 1-40 letters and digits",
        ));
    }
    // The client's address as the request extractor found it (the peer, or a trusted proxy's X-Forwarded-For).
    let from: IpAddr = meta
        .ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    // A plain lookup awaits the store; one with a last-four check (rare, audited) runs on a blocking thread.
    let answer = match q.last4 {
        None => s.guard.track_async(&no, from, None).await?,
        Some(last4) => {
            let guard = s.guard.clone();
            blocking(move || guard.track(&no, from, Some(&last4))).await?
        }
    };
    match answer {
        Ok(Some(t)) => Ok(Json(t).into_response()),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no parcel has this number",
        )),
        Err(TrackRefusal::Slow(secs)) => {
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many lookups from this address: try again shortly",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(r)
        }
        Err(TrackRefusal::Blocked(until)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "blocked",
            format!(
                "lookups from this address look like enumeration and are blocked until {}",
                wbg_core::when::display(until)
            ),
        )),
    }
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// The public lookup's routes (none when `[tracking] enabled = false`).
pub(super) fn routes(enabled: bool) -> Router<AppState> {
    if !enabled {
        return Router::new();
    }
    Router::new()
        .route("/track", get(page))
        .route("/track/assets/track.js", get(script))
        .route("/track/{no}", get(lookup))
        .layer(axum::middleware::from_fn(super::console::headers))
}
