//! Extractors that turn a request into what a handler means — the caller (its bearer credential and where it
//! came from), the body, the query — and the one helper that runs a guard call off the async runtime, so a
//! handler is a few lines of intent. Their rejections are the API's JSON errors, whose messages cannot echo a
//! value a client sent.
use super::error::{json_error, reduce_serde_message, ApiError, ApiResult};
use super::{AppState, MAX_BODY};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use wbg_guard::{Actor, Guard, GuardError, RequestMeta};

/// Where a request came from: the client's address (the peer's, or the `X-Forwarded-For` of a trusted proxy)
/// and its device id (pseudonymised by the guard before anything keeps it).
pub(crate) struct Origin(pub RequestMeta);

impl FromRequestParts<AppState> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        let client = client_ip(&parts.headers, peer, &s.trusted_proxies);
        let device = device_id(&parts.headers)?;
        Ok(Origin(
            s.guard.request_meta(device, Some(client.to_string())),
        ))
    }
}

/// The caller: the bearer credential it presented, or the one its console session holds (unauthenticated
/// without either), where it came from, and the guard it asks.
pub(crate) struct Caller {
    pub token: String,
    pub meta: RequestMeta,
    /// The console session the credential came from, if it came from one.
    pub session: Option<super::console::SessionHandle>,
    guard: Arc<Guard>,
}

impl Caller {
    /// The caller as the guard's actor.
    pub fn actor(&self) -> Actor<'_> {
        Actor::Token(&self.token)
    }

    /// Runs `f` (a guard call as this caller) on the blocking pool: store and vault work is synchronous.
    pub async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce(&Guard, &Caller) -> Result<T, GuardError> + Send + 'static,
    ) -> ApiResult<T> {
        blocking(move || f(&self.guard, &self)).await
    }

    /// The guard, shared (for work that outlives the request, such as an event stream).
    pub fn shared_guard(&self) -> Arc<Guard> {
        self.guard.clone()
    }

    /// The guard (for calls awaited on the runtime itself).
    pub fn guard(&self) -> &Guard {
        &self.guard
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        // A bearer credential when one is given; else the console's session cookie (CSRF-checked).
        let (token, session) = match bearer(&parts.headers) {
            Ok(t) => (t, None),
            Err(unauthenticated) => {
                match super::console::session_auth(s, &parts.method, &parts.headers)? {
                    Some(auth) => (auth.token, Some(auth.session)),
                    None => return Err(unauthenticated),
                }
            }
        };
        let Origin(meta) = Origin::from_request_parts(parts, s).await?;
        // A large body is read (and parsed) only for a known credential: without this an unknown token could
        // make the node buffer MAX_BODY bytes per request before the guard refused it. Small bodies (a scan, a
        // label) are refused after, as before: their lookup stays the guard's one.
        if large_body(&parts.headers) {
            let (guard, token) = (s.guard.clone(), token.clone());
            blocking(move || guard.authenticate(&token).map(drop)).await?;
        }
        Ok(Caller {
            token,
            meta,
            session,
            guard: s.guard.clone(),
        })
    }
}

/// Bodies from this size up (or of no declared size) wait for the caller's credential to be checked first.
const AUTHENTICATE_FIRST: u64 = 64 * 1024;

/// Whether a request declares a body of [`AUTHENTICATE_FIRST`] bytes or more, or one of unknown length (chunked).
fn large_body(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_LENGTH) {
        Some(n) => n
            .to_str()
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
            .is_none_or(|n| n >= AUTHENTICATE_FIRST),
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// A JSON object body, required.
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        parse_body(Bytes::from_request(req, state).await).map(Body)
    }
}

/// A JSON object body that may be left out: an empty body is `T::default()`.
pub(crate) struct OptionalBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Default> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(req, state).await;
        match &body {
            Ok(b) if b.is_empty() => Ok(OptionalBody(T::default())),
            _ => parse_body(body).map(OptionalBody),
        }
    }
}

/// The raw body (a leak sample, a policy text), with the API's 413.
pub(crate) struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        body_bytes(Bytes::from_request(req, state).await).map(RawBody)
    }
}

/// The query string, decoded by axum's own decoder into `T`; errors are reduced so they cannot echo a value.
pub(crate) struct Q<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let text = parts.uri.query().unwrap_or("");
        parse_query(text).map(Q)
    }
}

/// Decodes a query string into `T` (see [`Q`]).
pub(crate) fn parse_query<T: serde::de::DeserializeOwned>(text: &str) -> ApiResult<T> {
    let uri: axum::http::Uri = format!("/?{text}")
        .parse()
        .map_err(|_| ApiError::invalid("malformed query string"))?;
    Query::<T>::try_from_uri(&uri).map(|q| q.0).map_err(|e| {
        let full = e.body_text();
        let text = full.split_once(": ").map(|(_, m)| m).unwrap_or(&full);
        ApiError::invalid(reduce_serde_message(text, "a query parameter"))
    })
}

/// A path segment that must be a number (an audit seq, a policy version).
pub(crate) fn number(segment: &str, what: &str) -> ApiResult<u64> {
    segment
        .parse()
        .map_err(|_| ApiError::invalid(format!("{what} must be a number")))
}

/// Parses a JSON body that must be an object: serde also fills a struct from a JSON array (by position), which
/// no client of this API means.
fn parse_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    parse_object(&body_bytes(body)?)
}

/// Parses `bytes` as `T`, refusing anything but a JSON object (see [`Body`]).
pub(crate) fn parse_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| json_error(&e)),
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body is empty; a JSON object is expected",
        )),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body must be a JSON object",
        )),
    }
}

/// Whether the body failed because it went too long without a byte (the router's `RequestBodyTimeoutLayer`).
fn stalled(r: &BytesRejection) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(r);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body exceeds {MAX_BODY} bytes"),
            )
        } else if stalled(&r) {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the body stopped arriving; send it again",
            )
        } else {
            ApiError::invalid("the body could not be read")
        }
    })
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

/// The `X-Device-Id` header, checked for shape (the guard pseudonymises it).
fn device_id(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(v) = headers.get("x-device-id") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        })
        .map(Some)
        .ok_or_else(|| ApiError::invalid("X-Device-Id must be 1-64 of A-Z a-z 0-9 . _ : -"))
}

/// The client's address: the peer's, unless the peer is a trusted proxy, in which case the right-most address
/// of `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends the address it saw, so everything
/// left of the last untrusted hop could have been written by the client).
pub(crate) fn client_ip(headers: &HeaderMap, peer: IpAddr, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .map(|s| s.parse::<IpAddr>().ok())
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default();
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// Runs a guard call on the blocking pool (store and vault work is synchronous).
pub(crate) async fn blocking<T: Send + 'static>(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_address_is_believed_only_from_a_trusted_proxy() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7, 10.1.2.3".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        // From the proxy: the right-most hop it did not add itself (the client could have forged the left ones).
        assert_eq!(
            client_ip(&h, proxy, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // From anyone else the header is ignored.
        assert_eq!(client_ip(&h, stranger, &trusted), stranger);
        assert_eq!(client_ip(&h, proxy, &[]), proxy);
        // A malformed header is ignored whole.
        h.insert(
            "x-forwarded-for",
            "198.51.100.7, 13800138000".parse().unwrap(),
        );
        assert_eq!(client_ip(&h, proxy, &trusted), proxy);
    }
}
