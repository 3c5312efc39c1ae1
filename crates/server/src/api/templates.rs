//! `/api/v1/templates`: templates per sender and locale, and their approval lifecycle (R3).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use switchboard_app::templates::{self, NewTemplate, StatusChange, TemplatePatch};
use switchboard_app::AppState;
use switchboard_core::template::TemplateStatus;
use switchboard_core::{SenderId, TemplateId};
use switchboard_store::templates::TemplateFilter;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{path_id, ApiJson, ApiQuery, Auth, PageParams};
use super::views::{ListResponse, TemplateView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, update_template, delete_template))
        .routes(routes!(submit_template))
        .routes(routes!(change_status))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TemplateQuery {
    sender_id: Option<SenderId>,
    name: Option<String>,
    status: Option<TemplateStatus>,
}

/// Create a template (supervisors and admins). WhatsApp templates start as drafts to submit;
/// Messenger tag templates and SMS templates are approved at once.
#[utoipa::path(post, path = "/templates", tag = "templates", request_body = NewTemplate,
    responses(
        (status = 201, body = TemplateView),
        (status = 409, description = "same name and locale exists", body = Problem),
        (status = 422, description = "the template breaks a rule, named by `field` and `code`", body = Problem),
    ),
    security(("bearer" = [])))]
async fn create_template(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: ApiJson<NewTemplate>,
) -> ApiResult<(StatusCode, Json<TemplateView>)> {
    let template = templates::create_template(&state, &principal, body.value).await?;
    Ok((StatusCode::CREATED, Json(template.into())))
}

/// List templates.
#[utoipa::path(get, path = "/templates", tag = "templates", params(TemplateQuery, PageParams),
    responses((status = 200, body = ListResponse<TemplateView>)),
    security(("bearer" = [])))]
async fn list_templates(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<TemplateQuery>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<ListResponse<TemplateView>>> {
    let filter = TemplateFilter {
        sender_id: query.sender_id,
        name: query.name,
        status: query.status,
    };
    let page = templates::list_templates(&state, &principal, &filter, &page.to_request()?).await?;
    Ok(Json(ListResponse::from_page(page, TemplateView::from)))
}

/// One template with its lifecycle history.
#[utoipa::path(get, path = "/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "template id")),
    responses((status = 200, body = TemplateView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_template(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<TemplateView>> {
    let id: TemplateId = path_id(&id, "template")?;
    let (template, transitions) = templates::get_template(&state, &principal, id).await?;
    let mut view = TemplateView::from(template);
    view.transitions = Some(transitions);
    Ok(Json(view))
}

/// Change a draft or rejected template (approved WhatsApp templates cannot change).
#[utoipa::path(patch, path = "/templates/{id}", tag = "templates", request_body = TemplatePatch,
    params(("id" = String, Path, description = "template id")),
    responses(
        (status = 200, body = TemplateView),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
    security(("bearer" = [])))]
async fn update_template(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: ApiJson<TemplatePatch>,
) -> ApiResult<Json<TemplateView>> {
    let id: TemplateId = path_id(&id, "template")?;
    let template = templates::update_template(&state, &principal, id, body.value).await?;
    Ok(Json(template.into()))
}

/// Delete a template.
#[utoipa::path(delete, path = "/templates/{id}", tag = "templates",
    params(("id" = String, Path, description = "template id")),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn delete_template(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: TemplateId = path_id(&id, "template")?;
    templates::delete_template(&state, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Submit a WhatsApp template for Meta's review (draft or rejected -> pending). For a WhatsApp
/// Cloud sender the template is sent to Meta's template API; Meta's id is kept as
/// `provider_template_id` and its answer recorded (pending, or approved or rejected at once).
/// If Meta refuses, the template is unchanged and the answer is a 502 whose `code` classifies
/// Meta's error (`token_expired`, `provider_error`, or `provider_unavailable` to try later)
/// with Meta's own code in `provider_code`.
#[utoipa::path(post, path = "/templates/{id}/submit", tag = "templates",
    params(("id" = String, Path, description = "template id")),
    responses(
        (status = 200, body = TemplateView),
        (status = 409, body = Problem),
        (status = 502, description = "Meta refused the submission or could not be reached", body = Problem),
    ),
    security(("bearer" = [])))]
async fn submit_template(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<TemplateView>> {
    let id: TemplateId = path_id(&id, "template")?;
    Ok(Json(
        templates::submit_template(&state, &principal, id)
            .await?
            .into(),
    ))
}

/// Record a status change: Meta's verdict (approved, rejected with a reason), a quality pause,
/// or disabling. Steps the lifecycle does not allow are refused with `invalid_transition`.
#[utoipa::path(post, path = "/templates/{id}/status", tag = "templates", request_body = StatusChange,
    params(("id" = String, Path, description = "template id")),
    responses((status = 200, body = TemplateView), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn change_status(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: ApiJson<StatusChange>,
) -> ApiResult<Json<TemplateView>> {
    let id: TemplateId = path_id(&id, "template")?;
    Ok(Json(
        templates::change_status(&state, &principal, id, body.value)
            .await?
            .into(),
    ))
}
