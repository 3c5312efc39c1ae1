//! Request extractors that turn every bad input into a problem+json answer.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use switchboard_app::idempotency::{IdempotencyRequest, MAX_KEY_CHARS};
use switchboard_app::{auth, sessions, AppState, Principal};
use switchboard_store::{Order, PageRequest};
use utoipa::IntoParams;

use super::error::ApiError;

/// The authenticated caller, from `Authorization: Bearer <token>` or, for the web pages'
/// JavaScript, the session cookie. A cookie is sent by the browser whoever made the page, so a
/// cookie-authenticated change must also carry the session's CSRF token in `X-CSRF-Token`.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(header) = parts.headers.get(AUTHORIZATION) {
            let secret = header
                .to_str()
                .ok()
                .and_then(|v| {
                    let (scheme, token) = v.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                })
                .filter(|t| !t.is_empty())
                .ok_or(switchboard_app::AppError::Unauthorized)?;
            return Ok(Auth(auth::authenticate(state, secret).await?));
        }
        let secret = crate::web::cookies::session_secret(&parts.headers)
            .ok_or(switchboard_app::AppError::Unauthorized)?;
        let signed_in = sessions::resolve(state, &secret).await?;
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !sessions::secrets_match(sent, &signed_in.session.csrf_token) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    "a request signed in by cookie must send the page's CSRF token as \
                     `X-CSRF-Token`",
                ));
            }
        }
        Ok(Auth(signed_in.principal))
    }
}

/// The header carrying the CSRF token on cookie-authenticated API calls.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A JSON body. Malformed JSON is a 400 `malformed_json`; JSON of the wrong shape is a 422
/// `invalid_field` naming the field by its path (`provider.page_id`, `permitted_sender_ids[1]`).
/// The SHA-256 of the body is kept for idempotency checks.
pub struct ApiJson<T> {
    pub value: T,
    pub body_hash: String,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::new(
                e.status(),
                "unreadable_body",
                format!("could not read the body: {e}"),
            )
        })?;
        let body_hash = hex::encode(Sha256::digest(&bytes));
        let value = parse_json(&bytes)?;
        Ok(ApiJson { value, body_hash })
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let field = if path == "." { String::new() } else { path };
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                if field.is_empty() {
                    inner.to_string()
                } else {
                    format!("`{field}`: {inner}")
                },
            )
            .with_field(field)
        } else {
            ApiError::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {inner}"),
            )
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request("malformed_json", format!("trailing data: {e}")))?;
    Ok(value)
}

/// Query parameters, with a 400 `invalid_query` naming the problem.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|e| {
                let field = e.path().to_string();
                ApiError::bad_request("invalid_query", format!("`{field}`: {}", e.inner()))
                    .with_field(field)
            })
    }
}

pub const MAX_PAGE_SIZE: u32 = 200;

/// Pagination parameters common to every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    pub order: Option<String>,
}

impl PageParams {
    pub fn to_request(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("`limit` must be between 1 and {MAX_PAGE_SIZE}"),
            )
            .with_field("limit"));
        }
        let order = match self.order.as_deref() {
            None | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("`order` must be asc or desc, not {other:?}"),
                )
                .with_field("order"))
            }
        };
        let after = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(PageRequest {
            limit,
            after,
            order,
        })
    }
}

/// Cursors are opaque to clients: the base64 of the last item's id. Only well-formed ids are
/// accepted back, so a forged cursor cannot smuggle anything into a query.
pub fn encode_cursor(after: Option<String>) -> Option<String> {
    after.map(|id| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id))
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "`cursor` is not one this API gave out")
                .with_field("cursor")
        })
}

/// The optional `Idempotency-Key` header.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = value.to_str().map(str::trim).unwrap_or_default();
        if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                format!("`Idempotency-Key` must be 1 to {MAX_KEY_CHARS} visible ASCII characters"),
            )
            .with_field("Idempotency-Key"));
        }
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

impl IdempotencyKey {
    pub fn with_body_hash(self, body_hash: String) -> Option<IdempotencyRequest> {
        self.0.map(|key| IdempotencyRequest {
            key,
            request_hash: body_hash,
        })
    }
}

/// Parses a path id; anything that is not an id of ours cannot name a resource, so it is a 404.
pub fn path_id<T: std::str::FromStr>(raw: &str, resource: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found(resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        ids: Vec<uuid::Uuid>,
    }

    #[test]
    fn json_errors_name_their_field() {
        let e = parse_json::<Body>(br#"{"name": 1}"#).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let e = parse_json::<Body>(br#"{"name": "a", "inner": {"ids": ["x"]}}"#).unwrap_err();
        let text = serde_json::to_string(&format!("{e:?}")).unwrap();
        assert!(text.contains("inner.ids[0]"), "{text}");
        let e = parse_json::<Body>(b"{not json").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = parse_json::<Body>(br#"{"name": "a"} extra"#).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn cursors_round_trip_and_forged_ones_are_refused() {
        let id = uuid::Uuid::now_v7().to_string();
        let cursor = encode_cursor(Some(id.clone())).unwrap();
        let page = PageParams {
            cursor: Some(cursor),
            ..Default::default()
        }
        .to_request()
        .unwrap();
        assert_eq!(page.after, Some(id));
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("' OR 1=1 --");
        assert!(PageParams {
            cursor: Some(forged),
            ..Default::default()
        }
        .to_request()
        .is_err());
        assert!(PageParams {
            limit: Some(0),
            ..Default::default()
        }
        .to_request()
        .is_err());
    }
}
