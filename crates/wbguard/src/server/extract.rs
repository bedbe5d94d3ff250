//! Extractors that turn a request into what a handler means: the caller (its bearer credential and where it
//! came from) and the body (parsed with messages that cannot echo a value), so a handler is a few lines of
//! intent. Their rejections are the API's JSON errors.
use super::{bearer, parse_body, request_meta, ApiError};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use std::net::SocketAddr;
use wbg_guard::RequestMeta;

/// Where a request came from: the peer's address and the device header.
pub(super) struct Origin(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
        request_meta(&parts.headers, peer).map(Origin)
    }
}

/// The caller: the bearer credential it presented (unauthenticated without one) and where it came from.
pub(super) struct Caller {
    pub token: String,
    pub meta: RequestMeta,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?;
        let Origin(meta) = Origin::from_request_parts(parts, state).await?;
        Ok(Caller { token, meta })
    }
}

/// A JSON body, required.
pub(super) struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        parse_body(Bytes::from_request(req, state).await).map(Body)
    }
}

/// A JSON body that may be left out: an empty body is `T::default()`.
pub(super) struct OptionalBody<T>(pub T);

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
