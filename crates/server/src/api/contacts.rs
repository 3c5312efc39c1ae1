//! `/api/v1/contacts`: customers, by phone, WhatsApp user id or Messenger id.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use serde::Deserialize;
use switchboard_app::contacts::{self, ContactPatch, NewContact};
use switchboard_app::AppState;
use switchboard_core::{ContactId, UserId};
use switchboard_store::contacts::ContactFilter;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{path_id, ApiJson, ApiQuery, Auth, IdempotencyKey, PageParams};
use super::views::{ContactView, ListResponse};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts, create_contact))
        .routes(routes!(get_contact, update_contact, delete_contact))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ContactQuery {
    /// Search: part of the name (any case), digits of the phone, or an exact BSUID or PSID.
    q: Option<String>,
    /// Only contacts owned by this user.
    owner_id: Option<UserId>,
}

/// Create a contact. Accepts `Idempotency-Key`: a retry with the same key and body returns the
/// first contact (with `Idempotent-Replayed: true`) and creates nothing.
#[utoipa::path(post, path = "/contacts", tag = "contacts", request_body = NewContact,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries safe")),
    responses(
        (status = 201, body = ContactView),
        (status = 409, description = "an address belongs to another contact, named by `existing_id`", body = Problem),
        (status = 422, body = Problem),
    ),
    security(("bearer" = [])))]
async fn create_contact(
    State(state): State<AppState>,
    Auth(principal): Auth,
    idempotency: IdempotencyKey,
    body: ApiJson<NewContact>,
) -> ApiResult<(StatusCode, HeaderMap, Json<ContactView>)> {
    let idempotency = idempotency.with_body_hash(body.body_hash);
    let created = contacts::create_contact(&state, &principal, body.value, idempotency).await?;
    let mut headers = HeaderMap::new();
    if created.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok((StatusCode::CREATED, headers, Json(created.value.into())))
}

/// List and search contacts.
#[utoipa::path(get, path = "/contacts", tag = "contacts", params(ContactQuery, PageParams),
    responses((status = 200, body = ListResponse<ContactView>)),
    security(("bearer" = [])))]
async fn list_contacts(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<ContactQuery>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<ListResponse<ContactView>>> {
    let filter = ContactFilter {
        q: query.q,
        owner_id: query.owner_id,
    };
    let page = contacts::list_contacts(&state, &principal, &filter, &page.to_request()?).await?;
    Ok(Json(ListResponse::from_page(page, ContactView::from)))
}

/// One contact.
#[utoipa::path(get, path = "/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "contact id")),
    responses((status = 200, body = ContactView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_contact(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ContactView>> {
    let id: ContactId = path_id(&id, "contact")?;
    Ok(Json(
        contacts::get_contact(&state, &principal, id).await?.into(),
    ))
}

/// Change a contact. Fields left out keep their values; `null` clears one; `fields` is merged.
#[utoipa::path(patch, path = "/contacts/{id}", tag = "contacts", request_body = ContactPatch,
    params(("id" = String, Path, description = "contact id")),
    responses(
        (status = 200, body = ContactView),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
    security(("bearer" = [])))]
async fn update_contact(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: ApiJson<ContactPatch>,
) -> ApiResult<Json<ContactView>> {
    let id: ContactId = path_id(&id, "contact")?;
    Ok(Json(
        contacts::update_contact(&state, &principal, id, body.value)
            .await?
            .into(),
    ))
}

/// Delete a contact that has no conversations or messages.
#[utoipa::path(delete, path = "/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "contact id")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn delete_contact(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: ContactId = path_id(&id, "contact")?;
    contacts::delete_contact(&state, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
