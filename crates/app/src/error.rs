use std::fmt;

use switchboard_core::{FieldError, Permission, ValidationErrors};
use switchboard_store::StoreError;

/// Why a use case refused or failed. Each variant maps to one HTTP status and a stable code.
#[derive(thiserror::Error)]
pub enum AppError {
    /// No credentials, or credentials that are unknown or expired.
    #[error("authentication required")]
    Unauthorized,
    /// The principal lacks a permission.
    #[error("missing permission `{permission}`")]
    Forbidden { permission: Permission },
    /// The principal may not act on this particular resource.
    #[error("{detail}")]
    ForbiddenResource { code: &'static str, detail: String },
    #[error("invalid request: {0}")]
    Validation(ValidationErrors),
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    /// The request clashes with existing data.
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        field: Option<String>,
        existing_id: Option<String>,
        detail: String,
    },
    /// The same idempotency key came back with a different request.
    #[error("the Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    /// The policy refused the send (API.md's refusal codes); the decision says why and what
    /// is allowed instead.
    #[error("refused: {}", .0.refusal().map(|(c, _)| c.as_str()).unwrap_or_default())]
    PolicyRefused(Box<switchboard_core::policy::Decision>),
    /// A provider (Meta, Twilio) refused or failed a call made on the caller's behalf. `code`
    /// is the classification of `switchboard_channels::errors` (`token_expired`,
    /// `provider_error`...), or `provider_unavailable` when trying again later may work.
    #[error("{detail}")]
    Provider {
        code: &'static str,
        provider_code: Option<String>,
        detail: String,
    },
    /// The request carries more than is allowed (a file over the media limit).
    #[error("{detail}")]
    TooLarge {
        code: &'static str,
        field: String,
        detail: String,
    },
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl fmt::Debug for AppError {
    // Debug prints the cause chain, so a logged 500 says why.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            writeln!(f, "  caused by: {cause:?}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl From<ValidationErrors> for AppError {
    fn from(errors: ValidationErrors) -> Self {
        AppError::Validation(errors)
    }
}

impl From<FieldError> for AppError {
    fn from(error: FieldError) -> Self {
        AppError::Validation(error.into())
    }
}

/// Maps a store error on loading a row the request referred to by `field`: a missing row is a
/// field error (the request is wrong), anything else is internal.
pub(crate) fn missing_reference<'a>(
    field: &'a str,
    what: &'a str,
) -> impl Fn(StoreError) -> AppError + 'a {
    move |e| match e {
        StoreError::NotFound => AppError::Validation(
            FieldError::new(field, "unknown_reference", format!("no such {what}")).into(),
        ),
        other => AppError::Internal(other),
    }
}

impl AppError {
    /// Maps a store error for `resource`: a missing row is a 404 for it, a dangling reference
    /// is a field error, anything unexpected is internal.
    pub(crate) fn from_store(resource: &'static str, error: StoreError) -> Self {
        match error {
            StoreError::NotFound => AppError::NotFound { resource },
            StoreError::MissingReference { field, id } => AppError::Validation(
                FieldError::new(
                    field.clone(),
                    "unknown_reference",
                    format!("`{field}` refers to {id}, which does not exist"),
                )
                .into(),
            ),
            StoreError::Conflict { field, existing_id } => AppError::Conflict {
                code: "conflict",
                detail: format!("`{field}` is already taken"),
                field: Some(field),
                existing_id,
            },
            other => AppError::Internal(other),
        }
    }
}
