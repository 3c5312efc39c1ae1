//! `/api/v1/users`: admins manage users; supervisors read them; everyone reads themselves.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use switchboard_app::users::{self, NewUser, UserPatch};
use switchboard_app::AppState;
use switchboard_core::UserId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{path_id, ApiJson, ApiQuery, Auth, PageParams};
use super::views::{ListResponse, UserView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
}

/// Create a user (admins).
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser,
    responses(
        (status = 201, body = UserView),
        (status = 409, description = "e-mail in use", body = Problem),
        (status = 422, body = Problem),
    ),
    security(("bearer" = [])))]
async fn create_user(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let user = users::create_user(&state, &principal, body.value).await?;
    let user = users::with_effective_senders(&state, vec![user])
        .await?
        .remove(0);
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// List users (supervisors and admins).
#[utoipa::path(get, path = "/users", tag = "users", params(PageParams),
    responses((status = 200, body = ListResponse<UserView>), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn list_users(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<ListResponse<UserView>>> {
    let page = users::list_users(&state, &principal, &page.to_request()?).await?;
    Ok(Json(ListResponse::from_page(page, UserView::from)))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_user(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    let id: UserId = path_id(&id, "user")?;
    Ok(Json(users::get_user(&state, &principal, id).await?.into()))
}

/// Change a user (admins). Fields left out keep their values.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", request_body = UserPatch,
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn update_user(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: ApiJson<UserPatch>,
) -> ApiResult<Json<UserView>> {
    let id: UserId = path_id(&id, "user")?;
    Ok(Json(
        users::update_user(&state, &principal, id, body.value)
            .await?
            .into(),
    ))
}

/// Delete a user and the tokens that act for them (admins).
#[utoipa::path(delete, path = "/users/{id}", tag = "users",
    params(("id" = String, Path, description = "user id")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn delete_user(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: UserId = path_id(&id, "user")?;
    users::delete_user(&state, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
