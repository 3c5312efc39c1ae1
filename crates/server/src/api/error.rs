//! Errors as `application/problem+json` (RFC 9457) with a stable `code`.
//!
//! A 5xx tells the client only that something failed; the details go to the log.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use switchboard_app::AppError;
use switchboard_core::message::ChannelTemplateType;
use switchboard_core::policy::WindowState;
use switchboard_core::FieldError;
use utoipa::ToSchema;

/// A problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:switchboard:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable and machine-readable: branch on this, not on the text.
    pub code: String,
    /// The request field at fault, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every field at fault, when the request had several problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For a 403: the permission the caller lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// For a 409: the id of the resource already holding the value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<String>,
    /// For a policy refusal: the customer-service window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowState>,
    /// For a policy refusal: what could be sent instead, now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_kinds: Option<Vec<ChannelTemplateType>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_templates: Option<Vec<String>>,
    /// For a provider's refusal (a 502): the provider's own error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    // Boxed so that `Result<T, ApiError>` stays small on the success path.
    problem: Box<Problem>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            problem: Box::new(Problem {
                kind: format!("urn:switchboard:problem:{code}"),
                title: status.canonical_reason().unwrap_or("Error").to_owned(),
                status: status.as_u16(),
                detail: detail.into(),
                code: code.to_owned(),
                field: None,
                errors: Vec::new(),
                permission: None,
                existing_id: None,
                window: None,
                allowed_kinds: None,
                allowed_templates: None,
                provider_code: None,
            }),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.problem.field = Some(field.into());
        self
    }

    pub fn not_found(resource: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{resource} not found"),
        )
    }

    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Unauthorized => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send a valid API token as `Authorization: Bearer <token>`",
            ),
            AppError::Forbidden { permission } => {
                let mut e = ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("this needs the `{permission}` permission, which you do not have"),
                );
                e.problem.permission = Some(permission.to_string());
                e
            }
            AppError::ForbiddenResource { code, detail } => {
                ApiError::new(StatusCode::FORBIDDEN, code, detail)
            }
            AppError::Validation(errors) => {
                let errors = errors.into_errors();
                let first = errors.first().cloned().unwrap_or_else(|| {
                    FieldError::new("", "invalid_request", "the request is invalid")
                });
                let detail = if errors.len() > 1 {
                    format!("{} (and {} more)", first.detail, errors.len() - 1)
                } else {
                    first.detail.clone()
                };
                let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, &first.code, detail)
                    .with_field(first.field);
                e.problem.errors = errors;
                e
            }
            AppError::NotFound { resource } => ApiError::not_found(resource),
            AppError::Conflict {
                code,
                field,
                existing_id,
                detail,
            } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, code, detail);
                e.problem.field = field;
                e.problem.existing_id = existing_id;
                e
            }
            AppError::IdempotencyKeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used before with a different request",
            )
            .with_field("Idempotency-Key"),
            AppError::PolicyRefused(decision) => {
                let decision = *decision;
                let (code, reason) = decision
                    .refusal()
                    .map(|(c, r)| (c.as_str(), r.to_owned()))
                    .unwrap_or(("refused", String::new()));
                let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, reason);
                e.problem.window = Some(decision.window);
                e.problem.allowed_kinds = Some(decision.allowed_kinds);
                e.problem.allowed_templates = Some(decision.allowed_templates);
                e
            }
            // The provider's answer, not ours: a bad gateway, with its code kept.
            AppError::Provider {
                code,
                provider_code,
                detail,
            } => {
                let mut e = ApiError::new(StatusCode::BAD_GATEWAY, code, detail);
                e.problem.provider_code = provider_code;
                e
            }
            AppError::TooLarge {
                code,
                field,
                detail,
            } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, detail).with_field(field),
            AppError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side; it has been logged",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
