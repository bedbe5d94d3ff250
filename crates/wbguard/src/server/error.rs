//! The API's one error shape — `{"error": {"code", "message", "rows"?}}` — for the guard's errors, for bodies and
//! queries that do not parse (with messages that cannot echo a value a client sent), and, through
//! [`json_errors`], for the answers the framework makes itself (405, 413, a path that does not parse).
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use wbg_guard::{GuardError, RowFault};

/// The error body every failure returns.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiErrorBody {
    error: ApiErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiErrorDetail {
    /// Stable machine-readable code: `unauthenticated`, `account_suspended`, `forbidden`, `rate_limited`,
    /// `invalid_request`, `invalid_json`, `payload_too_large`, `request_timeout`, `not_found`,
    /// `method_not_allowed`, `conflict`, `expired`, `rows_refused`, `unavailable`, `internal`.
    code: String,
    /// Human-readable explanation (never holds personal data).
    message: String,
    /// For `rows_refused` (a batch refused whole): every faulty row with its own code and message.
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<Vec<RowFault>>,
}

/// An error answer: a status and the JSON body.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    rows: Option<Vec<RowFault>>,
}

/// What a handler returns.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            rows: None,
        }
    }

    /// `400 invalid_request`.
    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

/// The same answer for "no such waybill" and "not one you may see": a 403 for a number that exists would tell
/// anyone which numbers exist, and a "legal hold" would tell the suspect of an investigation that one is under
/// way. The audit log keeps the real reason (`forbidden`, `not_found`, `legal_hold`); a batch's refused rows get
/// the same treatment.
pub(crate) fn unseen(e: GuardError) -> GuardError {
    const NOT_SEEN: &str = "no such waybill, or none this account may see or change this way";
    match e {
        GuardError::Forbidden(_) | GuardError::NotFound(_) | GuardError::Held(_) => {
            GuardError::NotFound(NOT_SEEN.into())
        }
        GuardError::Rows(rows) => GuardError::Rows(
            rows.into_iter()
                .map(|mut r| {
                    if r.code == "forbidden" || r.code == "not_found" {
                        r.code = "not_found";
                        r.message = NOT_SEEN.into();
                    }
                    r
                })
                .collect(),
        ),
        other => other,
    }
}

impl From<GuardError> for ApiError {
    fn from(e: GuardError) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            // Internal errors name components (store, vault), never values; still, keep details in the log.
            tracing::error!(error = %e, "request failed");
        }
        let message = e.to_string();
        ApiError {
            status,
            code: e.code(),
            message,
            rows: match e {
                GuardError::Rows(rows) => Some(rows),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody {
            error: ApiErrorDetail {
                code: self.code.into(),
                message: self.message,
                rows: self.rows,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// Middleware: an error answer the framework made itself (a 405 with an empty body, a 413 or a path that does
/// not parse as `text/plain`) becomes the API's JSON error, so every client parses one shape. Headers such as
/// `Allow` are kept.
pub(crate) async fn json_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not take that method (see the Allow header)",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body is too large"),
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("invalid_request", "unsupported content type"),
        s if s.is_server_error() => ("internal", "internal error"),
        // The framework's own texts (a path segment that does not parse) may quote what the client sent.
        _ => ("invalid_request", "the request is malformed"),
    };
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut fixed = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}

/// A JSON parse error as `400 invalid_json`.
pub(crate) fn json_error(e: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        json_error_message(e),
    )
}

/// A JSON parse error as a message that cannot echo a value from the input: serde's own messages quote the
/// offending value (`invalid type: string "13800138000"`), which may be personal data.
pub(crate) fn json_error_message(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = if e.line() == 0 {
        String::new()
    } else {
        format!(" at line {} column {}", e.line(), e.column())
    };
    match e.classify() {
        Category::Syntax => format!("malformed JSON{at}"),
        Category::Eof => "the JSON body ends too early".to_owned(),
        Category::Io => "the body could not be read".to_owned(),
        Category::Data => {
            let full = e.to_string();
            let text = full
                .rsplit_once(" at line ")
                .map(|(m, _)| m)
                .unwrap_or(&full);
            format!("{}{at}", reduce_serde_message(text, "a field"))
        }
    }
}

/// Reduces a serde data-error message (without position) to one that cannot echo client input: serde quotes
/// offending values (`invalid type: string "13800138000"`) and unknown keys, and a client may put a phone number
/// in either. Field names are kept only when they look like identifiers (ASCII letters and `_`).
pub(crate) fn reduce_serde_message(text: &str, what: &str) -> String {
    fn identifier(s: &str) -> bool {
        !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
    }
    let quoted = text.split('`').nth(1).unwrap_or("");
    let expected = text.split_once(", expected ").map(|(_, e)| e);
    if text.starts_with("unknown field") {
        let name = if identifier(quoted) {
            format!(" `{quoted}`")
        } else {
            String::new()
        };
        match expected {
            Some(exp) => format!("unknown field{name}, expected {exp}"),
            None => format!("unknown field{name}"),
        }
    } else if text.starts_with("missing field") && identifier(quoted) {
        format!("missing field `{quoted}`")
    } else if text.starts_with("invalid ")
        && !["invalid type", "invalid value", "invalid length"]
            .iter()
            .any(|p| text.starts_with(p))
    {
        // Our own validation messages (`invalid recipient.phone: must be …`) name fields, never values.
        text.to_owned()
    } else if let Some(exp) = expected {
        format!("{what} has a value that is not allowed (expected {exp})")
    } else {
        format!("{what} has the wrong type or value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_client_values_but_keep_names() {
        let r = |t| reduce_serde_message(t, "a field");
        assert_eq!(
            r("unknown field `vip`, expected one of `a`, `b`"),
            "unknown field `vip`, expected one of `a`, `b`"
        );
        assert_eq!(
            r("unknown field `13912345678`, expected `a`"),
            "unknown field, expected `a`"
        );
        assert_eq!(
            r("unknown field `欧阳`, expected `a`"),
            "unknown field, expected `a`"
        );
        assert_eq!(r("missing field `purpose`"), "missing field `purpose`");
        assert_eq!(
            r("invalid type: integer `13912345678`, expected a string"),
            "a field has a value that is not allowed (expected a string)"
        );
        assert_eq!(
            r("invalid value: string \"x\", expected y"),
            "a field has a value that is not allowed (expected y)"
        );
        assert_eq!(
            r("unknown variant `13912345678`, expected `a` or `b`"),
            "a field has a value that is not allowed (expected `a` or `b`)"
        );
        assert_eq!(
            r("invalid recipient.phone: must be an 11-digit mobile number"),
            "invalid recipient.phone: must be an 11-digit mobile number"
        );
        assert_eq!(
            r("something else entirely 13912345678"),
            "a field has the wrong type or value"
        );
    }
}
