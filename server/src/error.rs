//! The one API error type: every error body is
//! `{"error":{"code":"<stable_code>","message":"<human text>"}}`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `validation_failed`, `not_found`.
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the input is malformed or fails validation.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no valid session.
    #[error("authentication required")]
    Unauthorized { code: &'static str, message: String },
    /// 403: signed in, but not allowed (code `forbidden` for a missing permission or scope).
    #[error("forbidden")]
    Forbidden { code: &'static str, message: String },
    /// 404: missing, or not visible to the caller (the two are never told apart).
    #[error("not found")]
    NotFound,
    /// 409: conflicts with the current state (duplicate, in use, stale version).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 413: the request body is too large.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 422: well-formed but semantically impossible.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 429: locked out or rate limited.
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// 503: no database connection came in time (every one busy, or the database unreachable);
    /// the client may try again after `retry_after_secs`.
    #[error("{message}")]
    Unavailable {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// 500: anything unexpected; the detail goes to the log only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized() -> Self {
        Self::Unauthorized {
            code: "unauthenticated",
            message: "sign in first".into(),
        }
    }

    pub fn forbidden(permission: &str) -> Self {
        Self::Forbidden {
            code: "forbidden",
            message: format!("this action needs the `{permission}` permission"),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    /// The stable code of this error, also written to the audit log as the outcome.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::TooManyRequests { code, .. }
            | Self::Unavailable { code, .. } => code,
            Self::NotFound => "not_found",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The human-readable text of the error body.
    pub fn message(&self) -> String {
        match self {
            Self::BadRequest { message, .. }
            | Self::Unauthorized { message, .. }
            | Self::Forbidden { message, .. }
            | Self::Conflict { message, .. }
            | Self::Unprocessable { message, .. }
            | Self::TooManyRequests { message, .. }
            | Self::Unavailable { message, .. } => message.clone(),
            Self::NotFound => "no such object".into(),
            Self::PayloadTooLarge => "the request body is too large".into(),
            Self::Internal(_) => "an internal error occurred; it has been logged".into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(err) = self {
            tracing::error!(error = ?err, "internal error");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Self::TooManyRequests {
            retry_after_secs, ..
        }
        | Self::Unavailable {
            retry_after_secs, ..
        } = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let Self::Unauthorized { .. } = self {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"palreg\""),
            ));
        }
        if let Self::Forbidden {
            code: "forbidden", ..
        } = self
        {
            response.extensions_mut().insert(AccessDenied);
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.message(),
            },
        })
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        match err {
            diesel::result::Error::NotFound => Self::NotFound,
            other => Self::Internal(other.into()),
        }
    }
}

/// A pool's only error: no connection within its timeout, because every one is in use (a burst,
/// long reports) or none can be opened (the database is down). Either passes; the client is told
/// to come back rather than that the server failed.
impl From<r2d2::Error> for ApiError {
    fn from(err: r2d2::Error) -> Self {
        tracing::warn!(error = %err, "no database connection in time");
        Self::Unavailable {
            code: "database_unavailable",
            message: "the database is busy or unreachable; try again shortly".into(),
            retry_after_secs: 5,
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        Self::Internal(anyhow::anyhow!("blocking task failed: {err}"))
    }
}

/// Turns extractor failures (bad JSON, bad query string, bad path) into the JSON error shape.
pub fn json_error_handler(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &err {
        E::Overflow { .. } | E::OverflowKnownLength { .. } => ApiError::PayloadTooLarge,
        E::ContentType => ApiError::bad_request(
            "unsupported_content_type",
            "the request body must be application/json",
        ),
        E::Deserialize(e) if e.is_data() => ApiError::unprocessable("invalid_body", e.to_string()),
        E::Deserialize(e) => ApiError::bad_request("invalid_json", e.to_string()),
        other => ApiError::bad_request("invalid_body", other.to_string()),
    };
    api.into()
}

pub fn query_error_handler(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request("invalid_query", err.to_string()).into()
}

pub fn path_error_handler(
    err: actix_web::error::PathError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad_request("invalid_path", err.to_string()).into()
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Marks a response that refused a signed-in caller for lack of permission or scope; the
/// audit middleware records such refusals.
#[derive(Clone, Copy, Debug)]
pub struct AccessDenied;
