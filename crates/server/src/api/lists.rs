//! `/api/v1/lists`: contact lists (R6.1), made by hand, by filter or by CSV import.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use switchboard_app::contacts::{ContactImport, ImportReport};
use switchboard_app::lists::{self, NewList, NewMembers};
use switchboard_app::AppState;
use switchboard_core::list::ListFilter;
use switchboard_core::{ContactId, ListId};
use switchboard_store::lists::ListSummary;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{path_id, ApiJson, ApiQuery, Auth, PageParams};
use super::views::{ContactView, ListResponse};

/// The largest CSV body accepted. Rows are imported as they stream in, so this bounds how long
/// one request may run, not memory: a million contacts with a few columns is under 100 MiB.
const MAX_IMPORT_BYTES: u64 = 1024 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_lists, create_list))
        .routes(routes!(get_list, delete_list))
        .routes(routes!(list_members, add_members))
        .routes(routes!(remove_member))
        .routes(routes!(import))
}

#[derive(Serialize, ToSchema)]
pub struct ListView {
    pub id: ListId,
    pub name: String,
    pub description: Option<String>,
    /// The filter the list was filled from, if it was.
    pub filter: Option<ListFilter>,
    pub member_count: u64,
    /// `user:<id>` or `token:<id>`.
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<ListSummary> for ListView {
    fn from(s: ListSummary) -> Self {
        ListView {
            id: s.list.id,
            name: s.list.name,
            description: s.list.description,
            filter: s.list.filter,
            member_count: s.member_count,
            created_by: s.list.created_by,
            created_at: s.list.created_at,
            updated_at: s.list.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MembersAddedView {
    /// Contacts that joined; those already in the list are not counted.
    pub added: u64,
    pub member_count: u64,
}

#[derive(Serialize, ToSchema)]
pub struct RowErrorView {
    /// The file's line where the row starts; the header is line 1.
    pub line: u64,
    pub reason: String,
}

/// What an import did. Each row that is not blank is counted once in `rows` and once in
/// `created`, `updated`, `duplicates` or `failed`; a saved row whose opt-in was refused (the
/// contact had opted out) is also listed in `errors`.
#[derive(Serialize, ToSchema)]
pub struct ImportReportView {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    /// Rows naming a contact an earlier row of the file named: one contact, one member, with
    /// the later rows' values.
    pub duplicates: u64,
    /// Opt-ins recorded in the consent ledger, with the file and line as evidence.
    pub opt_ins: u64,
    /// Contacts that joined the list.
    pub added_to_list: u64,
    pub member_count: u64,
    /// Rows not imported, or whose opt-in was refused.
    pub failed: u64,
    /// The first 500 problems by line.
    pub errors: Vec<RowErrorView>,
    /// Problems beyond those listed.
    pub more_errors: u64,
}

impl ImportReportView {
    fn new(report: ImportReport, member_count: u64) -> Self {
        ImportReportView {
            rows: report.rows,
            created: report.created,
            updated: report.updated,
            duplicates: report.duplicates,
            opt_ins: report.opt_ins,
            added_to_list: report.added_to_list,
            member_count,
            failed: report.failed(),
            more_errors: report.more_errors,
            errors: report
                .errors
                .into_iter()
                .map(|e| RowErrorView {
                    line: e.line,
                    reason: e.reason,
                })
                .collect(),
        }
    }
}

/// Create a list, with the contacts named and/or those its filter selects now.
#[utoipa::path(post, path = "/lists", tag = "lists", request_body = NewList,
    responses(
        (status = 201, body = ListView),
        (status = 409, description = "the name is taken, by the list named in `existing_id`", body = Problem),
        (status = 422, description = "a bad field, or an unknown contact in `contact_ids[i]`", body = Problem),
    ),
    security(("bearer" = [])))]
async fn create_list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: ApiJson<NewList>,
) -> ApiResult<(StatusCode, Json<ListView>)> {
    let list = lists::create_list(&state, &principal, body.value).await?;
    Ok((StatusCode::CREATED, Json(list.into())))
}

/// The lists, with their sizes.
#[utoipa::path(get, path = "/lists", tag = "lists", params(PageParams),
    responses((status = 200, body = ListResponse<ListView>)),
    security(("bearer" = [])))]
async fn list_lists(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<ListResponse<ListView>>> {
    let page = lists::list_lists(&state, &principal, &page.to_request()?).await?;
    Ok(Json(ListResponse::from_page(page, ListView::from)))
}

/// One list, with `member_count`.
#[utoipa::path(get, path = "/lists/{id}", tag = "lists",
    params(("id" = String, Path, description = "list id")),
    responses((status = 200, body = ListView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ListView>> {
    let id: ListId = path_id(&id, "list")?;
    Ok(Json(lists::get_list(&state, &principal, id).await?.into()))
}

/// Delete a list and its memberships; the contacts stay. A list a campaign uses cannot be
/// deleted (`409 list_in_use`).
#[utoipa::path(delete, path = "/lists/{id}", tag = "lists",
    params(("id" = String, Path, description = "list id")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn delete_list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: ListId = path_id(&id, "list")?;
    lists::delete_list(&state, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add contacts to a list: those named (up to 10,000 per request) and/or those a `filter`
/// selects now. Contacts already in the list stay in it once.
#[utoipa::path(post, path = "/lists/{id}/contacts", tag = "lists", request_body = NewMembers,
    params(("id" = String, Path, description = "list id")),
    responses(
        (status = 200, body = MembersAddedView),
        (status = 404, body = Problem),
        (status = 422, description = "an unknown contact, named as `contact_ids[i]`", body = Problem),
    ),
    security(("bearer" = [])))]
async fn add_members(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: ApiJson<NewMembers>,
) -> ApiResult<Json<MembersAddedView>> {
    let id: ListId = path_id(&id, "list")?;
    let added = lists::add_members(&state, &principal, id, body.value).await?;
    Ok(Json(MembersAddedView {
        added: added.added,
        member_count: added.member_count,
    }))
}

/// A page of a list's contacts, by contact (newest first unless `order=asc`).
#[utoipa::path(get, path = "/lists/{id}/contacts", tag = "lists",
    params(("id" = String, Path, description = "list id"), PageParams),
    responses((status = 200, body = ListResponse<ContactView>), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn list_members(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<ListResponse<ContactView>>> {
    let id: ListId = path_id(&id, "list")?;
    let page = lists::list_members(&state, &principal, id, &page.to_request()?).await?;
    Ok(Json(ListResponse::from_page(page, ContactView::from)))
}

/// Take a contact out of a list; the contact stays.
#[utoipa::path(delete, path = "/lists/{id}/contacts/{contact_id}", tag = "lists",
    params(
        ("id" = String, Path, description = "list id"),
        ("contact_id" = String, Path, description = "contact id"),
    ),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn remove_member(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((id, contact_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id: ListId = path_id(&id, "list")?;
    let contact_id: ContactId = path_id(&contact_id, "list member")?;
    lists::remove_member(&state, &principal, id, contact_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ImportQuery {
    /// The file's name, quoted with the line in each opt-in's evidence.
    file_name: Option<String>,
}

/// Import contacts from a CSV body (`Content-Type: text/csv`) into the list, as it streams in.
/// The header row names the columns: `name`, `phone` (with its country prefix), `locale`,
/// `whatsapp_user_id`, `messenger_psid`, `opt_in_source`, `opt_in_at`, `opt_in_channel`; any
/// other column is a custom field. Each good row creates its contact or updates the one with
/// the same phone or ids, and adds it to the list; an `opt_in_source` records an opt-in in the
/// consent ledger. Bad rows are skipped and reported by line. Rows are committed in batches as
/// they arrive, so an upload cut short keeps the rows before the cut.
#[utoipa::path(post, path = "/lists/{id}/import", tag = "lists",
    request_body(content = String, content_type = "text/csv"),
    params(("id" = String, Path, description = "list id"), ImportQuery),
    responses(
        (status = 200, body = ImportReportView),
        (status = 404, body = Problem),
        (status = 413, body = Problem),
        (status = 415, body = Problem),
        (status = 422, description = "the header row is missing or wrong (`field` = `file`)", body = Problem),
    ),
    security(("bearer" = [])))]
async fn import(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ImportReportView>> {
    let id: ListId = path_id(&id, "list")?;
    let is_csv = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "text/csv" || m == "application/csv"
        })
        .unwrap_or(false);
    if !is_csv {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file as the body with `Content-Type: text/csv`",
        ));
    }
    let file_name = query.file_name.unwrap_or_default();
    let mut import = ContactImport::into_list(&state, &principal, &file_name, id).await?;
    let mut stream = body.into_data_stream();
    let mut bytes: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("unreadable_body", format!("could not read the body: {e}"))
        })?;
        bytes += chunk.len() as u64;
        if bytes > MAX_IMPORT_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the file is larger than {} MiB; the rows before this point were imported, \
                     split the rest into smaller files",
                    MAX_IMPORT_BYTES / 1024 / 1024
                ),
            ));
        }
        import.feed(&chunk).await?;
    }
    let report = import.finish().await?;
    let member_count = lists::count_members(&state, &principal, id).await?;
    Ok(Json(ImportReportView::new(report, member_count)))
}
