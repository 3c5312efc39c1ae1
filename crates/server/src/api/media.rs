//! `/api/v1/media/{sha256}`: inbound files Switchboard keeps, served to the inbox (R5.6).

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use switchboard_app::AppState;
use tokio::io::AsyncReadExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::Auth;

/// Bytes read from disk at a time while streaming a file.
const CHUNK: usize = 64 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_media))
}

/// A stored file by its SHA-256 (a message's `media.sha256`), with its type and length. Needs
/// `messages:read`.
#[utoipa::path(get, path = "/media/{sha256}", tag = "messages",
    params(("sha256" = String, Path, description = "lower-case hex SHA-256 of the file")),
    responses(
        (status = 200, description = "the file's bytes, with its Content-Type",
            content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, body = Problem),
        (status = 404, description = "no file with this hash", body = Problem),
    ),
    security(("bearer" = [])))]
async fn get_media(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(sha256): Path<String>,
) -> ApiResult<Response> {
    let media = switchboard_app::media::open_media(&state, &principal, &sha256).await?;
    // Streamed a chunk at a time: files may be of any size.
    let stream = futures_util::stream::try_unfold(media.file, |mut file| async move {
        let mut buf = vec![0u8; CHUNK];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), file)))
    });
    let content_type = media
        .mime_type
        .as_deref()
        .and_then(|m| HeaderValue::from_str(m).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(media.size));
    // The bytes are the customer's, not ours: never let a browser run them as a page of ours.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    // A hash names one content forever; only the client that was allowed to read it keeps it.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    Ok(response)
}
