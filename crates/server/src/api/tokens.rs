//! `/api/v1/tokens`: API tokens, shown once at creation and stored hashed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use switchboard_app::auth::{self, NewToken};
use switchboard_app::AppState;
use switchboard_core::TokenId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{path_id, ApiJson, ApiQuery, Auth, PageParams};
use super::views::{CreatedTokenView, ListResponse, TokenView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(delete_token))
}

/// Create an API token (admins). The answer carries the secret as `token`, once.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedTokenView), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn create_token(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: ApiJson<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedTokenView>)> {
    let issued = auth::create_token(&state, &principal, body.value).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTokenView {
            details: issued.token.into(),
            token: issued.secret,
        }),
    ))
}

/// List API tokens, without their secrets (admins).
#[utoipa::path(get, path = "/tokens", tag = "tokens", params(PageParams),
    responses((status = 200, body = ListResponse<TokenView>), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn list_tokens(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<ListResponse<TokenView>>> {
    let page = auth::list_tokens(&state, &principal, &page.to_request()?).await?;
    Ok(Json(ListResponse::from_page(page, TokenView::from)))
}

/// Revoke an API token (admins).
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "token id")),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn delete_token(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: TokenId = path_id(&id, "token")?;
    auth::delete_token(&state, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
