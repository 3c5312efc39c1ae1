//! Files (R5.6): `POST /api/v1/media` keeps a file to send, `GET /api/v1/media/{sha256}`
//! serves a kept file (inbound or uploaded) to the inbox, and `GET /media/{sha256}` serves one
//! to a provider holding a signed link.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use switchboard_app::media::OpenMedia;
use switchboard_app::uploads::{self, Upload, UploadWriter};
use switchboard_app::{AppError, AppState};
use switchboard_core::FieldError;
use tokio::io::AsyncReadExt;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::Auth;

/// Bytes read from disk at a time while streaming a file.
const CHUNK: usize = 64 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_media))
        // The upload counts a file's bytes against the configured limit as they arrive, so
        // the extractor's fixed cap does not apply.
        .routes(routes!(upload_media).layer(DefaultBodyLimit::disable()))
}

/// `GET /media/{sha256}`: a file for whoever holds a link signed by this server (providers
/// fetching an attachment), with no other credentials.
pub fn public_router() -> Router<AppState> {
    Router::new().route("/media/{sha256}", get(get_public_media))
}

/// The upload form: the file as the part named `file`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Keeps a file for sending (R5.6). A multipart form with the file as `file`; its stated type
/// decides how it goes. Answers the file's hash, to send as `media.sha256` in
/// `POST /messages`. Files over the configured limit (2.5 MB by default) are refused with
/// `413 media_too_large`. Needs `messages:send`.
#[utoipa::path(post, path = "/media", tag = "messages",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "the file is kept", body = Upload),
        (status = 401, body = Problem),
        (status = 413, description = "over the attachment limit (`media_too_large`)", body = Problem),
        (status = 422, description = "no file, or an empty one", body = Problem),
    ),
    security(("bearer" = [])))]
async fn upload_media(
    State(state): State<AppState>,
    Auth(principal): Auth,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Upload>)> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_content_type",
            format!("send the file as multipart/form-data: {e}"),
        )
    })?;
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the multipart form could not be read: {e}"),
        )
    };
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        if field.name() != Some("file") {
            continue;
        }
        let mime_type = field.content_type().map(str::to_owned);
        let filename = field.file_name().map(str::to_owned);
        let mut writer = UploadWriter::start(&state, &principal).await?;
        let upload = receive(&mut writer, &mut field).await.map_err(unreadable)?;
        upload?;
        let upload = writer
            .finish(&state, mime_type.as_deref(), filename.as_deref())
            .await?;
        return Ok((StatusCode::CREATED, Json(upload)));
    }
    Err(AppError::from(FieldError::new(
        "file",
        "required",
        "send the file as the multipart part named `file`",
    ))
    .into())
}

/// Feeds a multipart part into an upload. A file over the limit is refused, but the rest of
/// it is still read (up to a bound) so that the client, still sending, hears why rather than
/// a broken connection. The outer result is the transfer's, the inner the upload's.
pub(crate) async fn receive(
    writer: &mut UploadWriter,
    field: &mut axum::extract::multipart::Field<'_>,
) -> Result<Result<(), AppError>, axum::extract::multipart::MultipartError> {
    /// How much more of a refused file is read and dropped before answering anyway.
    const DRAIN: usize = 64 * 1024 * 1024;
    while let Some(chunk) = field.chunk().await? {
        if let Err(refused) = writer.write(&chunk).await {
            let mut drained = 0;
            while drained < DRAIN {
                match field.chunk().await {
                    Ok(Some(chunk)) => drained += chunk.len(),
                    _ => break,
                }
            }
            return Ok(Err(refused));
        }
    }
    Ok(Ok(()))
}

#[derive(Deserialize)]
struct LinkQuery {
    expires: i64,
    signature: String,
}

async fn get_public_media(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Ok(Query(link)) = query else {
        return Err(ApiError::not_found("media"));
    };
    let media = uploads::open_public(&state, &sha256, link.expires, &link.signature).await?;
    Ok(file_response(media, "private, max-age=3600"))
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
    // A hash names one content forever; only the client that was allowed to read it keeps it.
    Ok(file_response(media, "private, max-age=31536000, immutable"))
}

/// A kept file's bytes with its type and length.
fn file_response(media: OpenMedia, cache_control: &'static str) -> Response {
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
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}
