//! `/api/v1/campaigns`: bulk template sends to a list (R6), with the hopper's live counters,
//! each recipient's history, the answers, and a CSV export.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use switchboard_app::campaigns::{self, CampaignInput, CampaignView as AppView};
use switchboard_app::{AppState, Principal};
use switchboard_core::campaign::{CampaignAction, CampaignState, Held, Hopper, RecipientState};
use switchboard_core::{CampaignId, ContactId, ListId, MessageId, SenderId};
use switchboard_store::campaigns::RecipientRecord;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{path_id, ApiJson, ApiQuery, Auth, IdempotencyKey, PageParams};
use super::views::ListResponse;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign))
        .routes(routes!(start))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(stop))
        .routes(routes!(retry))
        .routes(routes!(recipients))
        .routes(routes!(answers))
        .routes(routes!(export))
}

#[derive(Serialize, ToSchema)]
pub struct TemplateChoice {
    pub name: String,
    pub locale: String,
}

#[derive(Serialize, ToSchema)]
pub struct CampaignView {
    pub id: CampaignId,
    pub name: String,
    pub sender_id: SenderId,
    pub list_id: ListId,
    pub template: TemplateChoice,
    pub variable_mapping: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub start_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end_at: Option<OffsetDateTime>,
    pub response_timeout_minutes: i64,
    pub rate_limit_per_second: Option<i64>,
    pub state: CampaignState,
    /// What holds a running campaign back just now (business hours, a limit), if anything.
    pub held: Option<Held>,
    pub hopper: Hopper,
    /// Manual retry runs so far.
    pub round: i64,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
}

impl From<AppView> for CampaignView {
    fn from(v: AppView) -> Self {
        let c = v.campaign;
        CampaignView {
            id: c.id,
            name: c.name,
            sender_id: c.sender_id,
            list_id: c.list_id,
            template: TemplateChoice {
                name: c.template_name,
                locale: c.template_locale,
            },
            variable_mapping: c.variable_mapping,
            start_at: c.start_at,
            end_at: c.end_at,
            response_timeout_minutes: c.response_timeout_minutes,
            rate_limit_per_second: c.rate_limit_per_second,
            state: c.state,
            held: c.held,
            hopper: v.hopper,
            round: c.round,
            created_by: c.created_by,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
        }
    }
}

/// Create a campaign: one approved template (variables mapped to contact fields, refused if
/// any is left unmapped), one list, one sender (not Messenger: `bulk_not_allowed`). It stays a
/// draft unless `start` is true. Accepts `Idempotency-Key`.
#[utoipa::path(post, path = "/campaigns", tag = "campaigns", request_body = CampaignInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries safe")),
    responses(
        (status = 201, body = CampaignView),
        (status = 422, description = "invalid, or refused by the policy", body = Problem),
    ),
    security(("bearer" = [])))]
async fn create_campaign(
    State(state): State<AppState>,
    Auth(principal): Auth,
    idempotency: IdempotencyKey,
    body: ApiJson<CampaignInput>,
) -> ApiResult<(StatusCode, HeaderMap, Json<CampaignView>)> {
    let idempotency = idempotency.with_body_hash(body.body_hash);
    let created = campaigns::create_campaign(&state, &principal, body.value, idempotency).await?;
    let mut headers = HeaderMap::new();
    let status = if created.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, headers, Json(created.value.into())))
}

/// Campaigns, newest first, each with its hopper.
#[utoipa::path(get, path = "/campaigns", tag = "campaigns", params(PageParams),
    responses((status = 200, body = ListResponse<CampaignView>)),
    security(("bearer" = [])))]
async fn list_campaigns(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<ListResponse<CampaignView>>> {
    let page = campaigns::list_campaigns(&state, &principal, &page.to_request()?).await?;
    Ok(Json(ListResponse::from_page(page, CampaignView::from)))
}

/// One campaign with its live hopper counters (they always add up to `total`).
#[utoipa::path(get, path = "/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_campaign(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    let id: CampaignId = path_id(&id, "campaign")?;
    Ok(Json(
        campaigns::get_campaign(&state, &principal, id)
            .await?
            .into(),
    ))
}

async fn act(
    state: AppState,
    principal: Principal,
    id: String,
    action: CampaignAction,
) -> ApiResult<Json<CampaignView>> {
    let id: CampaignId = path_id(&id, "campaign")?;
    Ok(Json(
        campaigns::act(&state, &principal, id, action).await?.into(),
    ))
}

/// Start a draft (now, or `scheduled` until its `start_at`). `409 invalid_campaign_state` when
/// it cannot start; `409 campaign_ended` after its end.
#[utoipa::path(post, path = "/campaigns/{id}/start", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignView), (status = 409, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn start(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    act(state, principal, id, CampaignAction::Start).await
}

/// Pause: no new recipient is sent to (the few already queued still go).
#[utoipa::path(post, path = "/campaigns/{id}/pause", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignView), (status = 409, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn pause(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    act(state, principal, id, CampaignAction::Pause).await
}

/// Resume a paused campaign where it stopped.
#[utoipa::path(post, path = "/campaigns/{id}/resume", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignView), (status = 409, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn resume(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    act(state, principal, id, CampaignAction::Resume).await
}

/// Stop for good: what was not sent stays unsent (a retry run can still be started).
#[utoipa::path(post, path = "/campaigns/{id}/stop", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignView), (status = 409, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn stop(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    act(state, principal, id, CampaignAction::Stop).await
}

/// A retry run (R6.4): every failed recipient is sent to once more, decided by the policy
/// again (an opted-out contact is skipped).
#[utoipa::path(post, path = "/campaigns/{id}/retry", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = CampaignView), (status = 409, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn retry(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<CampaignView>> {
    act(state, principal, id, CampaignAction::Retry).await
}

#[derive(Serialize, ToSchema)]
pub struct RecipientView {
    /// The recipient's place in the hopper.
    pub seq: i64,
    pub contact_id: ContactId,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub state: RecipientState,
    pub round: i64,
    pub message_id: Option<MessageId>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<OffsetDateTime>,
    /// How a closed interaction ended: `answered`, `free_text`, `late_answer`, `timed_out`.
    pub outcome: Option<String>,
    pub answer: Option<String>,
    pub answer_message_id: Option<MessageId>,
    /// The refusal code (skipped) or failure code (failed).
    pub code: Option<String>,
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<RecipientRecord> for RecipientView {
    fn from(r: RecipientRecord) -> Self {
        RecipientView {
            seq: r.seq,
            contact_id: r.contact_id,
            name: r.contact_name,
            phone: r.contact_phone,
            state: r.state,
            round: r.round,
            message_id: r.message_id,
            sent_at: r.sent_at,
            outcome: r.outcome,
            answer: r.answer,
            answer_message_id: r.answer_message_id,
            code: r.code,
            reason: r.reason,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RecipientQuery {
    /// Only recipients in this state.
    state: Option<RecipientState>,
    /// Items per page, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The campaign's recipients in hopper order, with status, answer and failure reason.
#[utoipa::path(get, path = "/campaigns/{id}/recipients", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id"), RecipientQuery),
    responses((status = 200, body = ListResponse<RecipientView>), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn recipients(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<RecipientQuery>,
) -> ApiResult<Json<ListResponse<RecipientView>>> {
    let id: CampaignId = path_id(&id, "campaign")?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(
            ApiError::bad_request("invalid_query", "`limit` must be between 1 and 1000")
                .with_field("limit"),
        );
    }
    let after = match query.cursor.as_deref() {
        None => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            ApiError::bad_request("invalid_cursor", "`cursor` is not one this API gave")
                .with_field("cursor")
        })?),
    };
    let mut items =
        campaigns::recipients(&state, &principal, id, query.state, after, limit + 1).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    Ok(Json(ListResponse {
        items: items.into_iter().map(RecipientView::from).collect(),
        next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AnswerCount {
    pub answer: String,
    pub count: i64,
}

/// How many recipients tapped each quick reply within the response timeout.
#[utoipa::path(get, path = "/campaigns/{id}/answers", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = Vec<AnswerCount>), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn answers(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<AnswerCount>>> {
    let id: CampaignId = path_id(&id, "campaign")?;
    let answers = campaigns::answers(&state, &principal, id).await?;
    Ok(Json(
        answers
            .into_iter()
            .map(|(answer, count)| AnswerCount { answer, count })
            .collect(),
    ))
}

/// The history as CSV, one row per recipient, streamed page by page.
#[utoipa::path(get, path = "/campaigns/{id}/export", tag = "campaigns",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, description = "text/csv"), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn export(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    const PAGE: i64 = 5_000;
    let id: CampaignId = path_id(&id, "campaign")?;
    // Checks the right and that the campaign exists before the answer starts.
    campaigns::get_campaign(&state, &principal, id).await?;
    let header = Bytes::from_static(
        b"seq,contact_id,name,phone,state,round,message_id,sent_at,outcome,answer,code,reason,updated_at\n",
    );
    let pages = futures_util::stream::try_unfold(Some(0_i64), move |after| {
        let state = state.clone();
        let principal = principal.clone();
        async move {
            let Some(after) = after else {
                return Ok::<_, std::io::Error>(None);
            };
            let rows = campaigns::recipients(&state, &principal, id, None, Some(after), PAGE)
                .await
                .map_err(|e| std::io::Error::other(format!("{e}")))?;
            let next = (rows.len() as i64 == PAGE).then(|| rows.last().map_or(after, |r| r.seq));
            let mut out = String::with_capacity(rows.len() * 120);
            for r in rows {
                let cells = [
                    r.seq.to_string(),
                    r.contact_id.to_string(),
                    r.contact_name.unwrap_or_default(),
                    r.contact_phone.unwrap_or_default(),
                    r.state.as_str().to_owned(),
                    r.round.to_string(),
                    r.message_id.map(|m| m.to_string()).unwrap_or_default(),
                    r.sent_at.map(rfc3339).unwrap_or_default(),
                    r.outcome.unwrap_or_default(),
                    r.answer.unwrap_or_default(),
                    r.code.unwrap_or_default(),
                    r.reason.unwrap_or_default(),
                    rfc3339(r.updated_at),
                ];
                let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
            Ok(Some((Bytes::from(out), next)))
        }
    });
    let body = futures_util::stream::once(async move { Ok(header) });
    let body = futures_util::StreamExt::chain(body, pages);
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(disposition) =
        HeaderValue::from_str(&format!("attachment; filename=\"campaign-{id}.csv\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One CSV cell: quoted when it must be, and never read as a formula by a spreadsheet (a
/// contact's name is the customer's text).
fn csv_cell(value: &str) -> String {
    let signed_number = value.starts_with(['+', '-'])
        && value.len() > 1
        && value[1..].bytes().all(|b| b.is_ascii_digit());
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) && !signed_number {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("Ada"), "Ada");
        assert_eq!(csv_cell("Lovelace, Ada"), "\"Lovelace, Ada\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(
            csv_cell("+15551234"),
            "+15551234",
            "a phone number is no formula"
        );
        assert_eq!(csv_cell("+1+1"), "'+1+1");
    }
}
