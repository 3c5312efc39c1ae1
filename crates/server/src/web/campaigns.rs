//! Campaigns (R6): the list with live progress, a new campaign, and one campaign's hopper,
//! answers, recipients and controls. Counters follow the live event stream without a reload.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use switchboard_app::campaigns::{self, CampaignInput, CampaignTemplate, CampaignView};
use switchboard_app::AppState;
use switchboard_core::campaign::{CampaignAction, CampaignState, Hopper, RecipientState};
use switchboard_core::sender::Sender;
use switchboard_core::template::TemplateStatus;
use switchboard_core::{CampaignId, Channel, Permission, SenderId};
use switchboard_store::senders::SenderFilter;
use switchboard_store::templates::TemplateFilter;
use switchboard_store::{Order, PageRequest};
use time::OffsetDateTime;

use super::page::{
    plain, render, when, Choice, Chrome, FormData, FormErrors, Section, Signed, WebError, WebResult,
};
use super::users::NoticeQuery;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/campaigns", get(list).post(create))
        .route("/campaigns/{id}", get(show))
        .route("/campaigns/{id}/{action}", post(act))
}

/// The hopper's counters as the page shows them, with each part's share of the bar.
struct Counters {
    total: i64,
    parts: Vec<Part>,
}

struct Part {
    key: &'static str,
    label: &'static str,
    count: i64,
    percent: String,
}

impl Counters {
    fn of(h: &Hopper) -> Counters {
        let share = |n: i64| {
            if h.total > 0 {
                format!("{:.2}", n as f64 * 100.0 / h.total as f64)
            } else {
                "0".to_owned()
            }
        };
        let parts = [
            ("closed", "Closed", h.closed),
            ("pending", "Pending", h.pending),
            ("retry", "Retry", h.retry),
            ("failed", "Failed", h.failed),
            ("skipped", "Skipped", h.skipped),
            ("fresh", "Fresh", h.fresh),
        ]
        .into_iter()
        .map(|(key, label, count)| Part {
            key,
            label,
            count,
            percent: share(count),
        })
        .collect();
        Counters {
            total: h.total,
            parts,
        }
    }
}

struct CampaignRow {
    id: String,
    name: String,
    state: &'static str,
    sender: String,
    channel_key: &'static str,
    template: String,
    counters: Counters,
    held: String,
}

fn row(view: &CampaignView, senders: &[Sender]) -> CampaignRow {
    let c = &view.campaign;
    let sender = senders.iter().find(|s| s.id == c.sender_id);
    CampaignRow {
        id: c.id.to_string(),
        name: c.name.clone(),
        state: c.state.as_str(),
        sender: sender.map(|s| s.name.clone()).unwrap_or_default(),
        channel_key: sender.map_or("whatsapp", |s| s.channel.as_str()),
        template: format!("{} ({})", c.template_name, c.template_locale),
        counters: Counters::of(&view.hopper),
        held: c
            .held
            .as_ref()
            .map(|h| plain(&h.reason))
            .unwrap_or_default(),
    }
}

struct CampaignForm {
    name: String,
    templates: Vec<Choice>,
    lists: Vec<Choice>,
    start_at: String,
    end_at: String,
    timeout: String,
    rate: String,
    start: bool,
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct CampaignsPage {
    chrome: Chrome,
    campaigns: Vec<CampaignRow>,
    can_write: bool,
    form: CampaignForm,
    errors: FormErrors,
}

const FORM_FIELDS: &[&str] = &[
    "name",
    "template",
    "list_id",
    "start_at",
    "end_at",
    "response_timeout_minutes",
    "rate_limit_per_second",
    "variable_mapping",
];

async fn senders_of(state: &AppState, signed: &Signed) -> WebResult<Vec<Sender>> {
    if !signed.can(Permission::SendersRead) {
        return Ok(Vec::new());
    }
    Ok(switchboard_app::senders::list_senders(
        state,
        &signed.0.principal,
        &SenderFilter::default(),
        &all(),
    )
    .await?
    .items)
}

fn all() -> PageRequest {
    PageRequest {
        limit: 200,
        after: None,
        order: Order::Desc,
    }
}

async fn page(
    state: &AppState,
    signed: &Signed,
    notice: Option<&str>,
    typed: Option<&FormData>,
    errors: FormErrors,
) -> WebResult {
    let principal = &signed.0.principal;
    let senders = senders_of(state, signed).await?;
    let views = campaigns::list_campaigns(state, principal, &all())
        .await?
        .items;
    let can_write = signed.can(Permission::CampaignsWrite);
    let text = |name: &str| typed.map(|f| f.text(name)).unwrap_or_default();
    let (templates, lists) = if can_write {
        // Approved templates of senders that may send in bulk: WhatsApp and SMS (R6.7).
        let chosen = text("template");
        let templates = switchboard_app::templates::list_templates(
            state,
            principal,
            &TemplateFilter::default(),
            &all(),
        )
        .await?
        .items
        .into_iter()
        .filter(|t| t.status == TemplateStatus::Approved)
        .filter_map(|t| {
            let sender = senders
                .iter()
                .find(|s| s.id == t.sender_id && s.channel != Channel::Messenger)?;
            let value = format!(
                "{}|{}|{}",
                sender.id,
                t.content.name,
                t.content.locale.as_str()
            );
            let label = format!(
                "{} ({}) from {}",
                t.content.name,
                t.content.locale.as_str(),
                sender.name
            );
            Some(Choice::new(value.clone(), label, value == chosen))
        })
        .collect();
        let chosen = text("list_id");
        let lists = campaigns::list_choices(state, principal)
            .await?
            .into_iter()
            .map(|(id, name, members)| {
                let id = id.to_string();
                let selected = id == chosen;
                Choice::new(id, format!("{name} ({members} contacts)"), selected)
            })
            .collect();
        (templates, lists)
    } else {
        (Vec::new(), Vec::new())
    };
    let form = CampaignForm {
        name: text("name"),
        templates,
        lists,
        start_at: text("start_at"),
        end_at: text("end_at"),
        timeout: typed
            .map(|f| f.text("response_timeout_minutes"))
            .unwrap_or_else(|| "1440".to_owned()),
        rate: text("rate_limit_per_second"),
        start: typed.is_some_and(|f| f.text("start") == "1"),
    };
    Ok(render(&CampaignsPage {
        chrome: Chrome::new(signed, Section::Campaigns, "Campaigns").with_notice(notice),
        campaigns: views.iter().map(|v| row(v, &senders)).collect(),
        can_write,
        form,
        errors,
    }))
}

async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<NoticeQuery>,
) -> WebResult {
    page(
        &state,
        &signed,
        query.notice.as_deref(),
        None,
        FormErrors::default(),
    )
    .await
}

/// A `datetime-local` value (the browser's, taken as UTC like every time on these pages).
fn parse_local(name: &str, value: &str, errors: &mut FormErrors) -> Option<OffsetDateTime> {
    if value.is_empty() {
        return None;
    }
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    match time::PrimitiveDateTime::parse(value, &format) {
        Ok(t) => Some(t.assume_utc()),
        Err(_) => {
            errors.field(name, "Give a date and time, such as 2026-12-24T09:00.");
            None
        }
    }
}

async fn create(State(state): State<AppState>, signed: Signed, form: FormData) -> WebResult {
    form.check_csrf(&signed)?;
    let mut errors = FormErrors::default();
    let start_at = parse_local("start_at", &form.text("start_at"), &mut errors);
    let end_at = parse_local("end_at", &form.text("end_at"), &mut errors);
    let number = |name: &str, errors: &mut FormErrors| -> Option<i64> {
        let text = form.text(name);
        if text.is_empty() {
            return None;
        }
        text.parse().map_or_else(
            |_| {
                errors.field(name, "Give a whole number.");
                None
            },
            Some,
        )
    };
    let timeout = number("response_timeout_minutes", &mut errors);
    let rate = number("rate_limit_per_second", &mut errors);
    let template = form.text("template");
    let mut parts = template.splitn(3, '|');
    let (sender, name, locale) = (parts.next(), parts.next(), parts.next());
    let sender_id = sender.and_then(|s| s.parse::<SenderId>().ok());
    let list_id = form.text("list_id").parse().ok();
    if sender_id.is_none() || name.is_none() || locale.is_none() {
        errors.field("template", "Choose an approved template.");
    }
    if list_id.is_none() {
        errors.field("list_id", "Choose a list.");
    }
    let (Some(sender_id), Some(name), Some(locale), Some(list_id), true) =
        (sender_id, name, locale, list_id, errors.is_empty())
    else {
        return page(&state, &signed, None, Some(&form), errors).await;
    };
    let input = CampaignInput {
        name: form.text("name"),
        sender_id,
        list_id,
        template: CampaignTemplate {
            name: name.to_owned(),
            locale: locale.to_owned(),
        },
        variable_mapping: Default::default(),
        start_at,
        end_at,
        response_timeout_minutes: timeout,
        rate_limit_per_second: rate,
        start: form.text("start") == "1",
    };
    match campaigns::create_campaign(&state, &signed.0.principal, input, None).await {
        Ok(created) => Ok(Redirect::to(&format!(
            "/campaigns/{}?notice=campaign_created",
            created.value.campaign.id
        ))
        .into_response()),
        Err(switchboard_app::AppError::PolicyRefused(decision)) => {
            let mut errors = FormErrors::default();
            let reason = decision
                .refusal()
                .map(|(_, reason)| plain(reason))
                .unwrap_or_default();
            errors.field("template", reason);
            page(&state, &signed, None, Some(&form), errors).await
        }
        Err(error) => {
            let errors = FormErrors::from_app(error, FORM_FIELDS)?;
            page(&state, &signed, None, Some(&form), errors).await
        }
    }
}

struct RecipientRow {
    name: String,
    phone: String,
    state: &'static str,
    detail: String,
    updated: String,
}

struct ActionButton {
    action: &'static str,
    label: &'static str,
    danger: bool,
}

struct StateFilter {
    key: &'static str,
    label: &'static str,
    current: bool,
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct CampaignPage {
    chrome: Chrome,
    campaign: CampaignRow,
    facts: Vec<(&'static str, String)>,
    answers: Vec<(String, i64)>,
    actions: Vec<ActionButton>,
    filters: Vec<StateFilter>,
    recipients: Vec<RecipientRow>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct ShowQuery {
    notice: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn actions_for(state: CampaignState) -> Vec<ActionButton> {
    let button = |action, label, danger| ActionButton {
        action,
        label,
        danger,
    };
    match state {
        CampaignState::Draft => vec![
            button("start", "Start", false),
            button("stop", "Discard", true),
        ],
        CampaignState::Scheduled => vec![
            button("start", "Start now", false),
            button("pause", "Pause", false),
            button("stop", "Stop", true),
        ],
        CampaignState::Running => vec![
            button("pause", "Pause", false),
            button("retry", "Retry failed", false),
            button("stop", "Stop", true),
        ],
        CampaignState::Paused => vec![
            button("resume", "Resume", false),
            button("retry", "Retry failed", false),
            button("stop", "Stop", true),
        ],
        CampaignState::Stopped | CampaignState::Completed => {
            vec![button("retry", "Retry failed", false)]
        }
    }
}

async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> WebResult {
    let principal = &signed.0.principal;
    let id: CampaignId = id
        .parse()
        .map_err(|_| WebError::NotFound("That campaign does not exist.".to_owned()))?;
    let view = campaigns::get_campaign(&state, principal, id).await?;
    let senders = senders_of(&state, &signed).await?;
    let filter: Option<RecipientState> = query.state.as_deref().and_then(|s| s.parse().ok());
    let recipients = campaigns::recipients(&state, principal, id, filter, None, 50)
        .await?
        .into_iter()
        .map(|r| RecipientRow {
            name: r.contact_name.unwrap_or_default(),
            phone: r.contact_phone.unwrap_or_default(),
            state: r.state.as_str(),
            detail: match (r.outcome.as_deref(), r.answer, r.code, r.reason) {
                (Some("answered"), Some(answer), _, _) => format!("Answered “{answer}”"),
                (Some("free_text"), ..) => "Wrote back: in the inbox".to_owned(),
                (Some("late_answer"), ..) => "Answered late: in the inbox".to_owned(),
                (Some("timed_out"), ..) => "No answer in time".to_owned(),
                (_, _, Some(code), Some(reason)) => format!("{code}: {}", plain(&reason)),
                (_, _, Some(code), None) => code,
                _ => String::new(),
            },
            updated: when(r.updated_at),
        })
        .collect();
    let answers = campaigns::answers(&state, principal, id).await?;
    let c = &view.campaign;
    let mut facts = vec![
        (
            "Template",
            format!("{} ({})", c.template_name, c.template_locale),
        ),
        (
            "Answers awaited",
            format!("{} minutes", c.response_timeout_minutes),
        ),
        (
            "Rate cap",
            c.rate_limit_per_second
                .map_or("the sender's own rate".to_owned(), |r| {
                    format!("{r} a second")
                }),
        ),
    ];
    if let Some(t) = c.start_at {
        facts.push(("Starts", when(t)));
    }
    if let Some(t) = c.end_at {
        facts.push(("Ends", when(t)));
    }
    if let Some(t) = c.started_at {
        facts.push(("Started", when(t)));
    }
    if let Some(t) = c.finished_at {
        facts.push(("Finished", when(t)));
    }
    if c.round > 0 {
        facts.push(("Retry runs", c.round.to_string()));
    }
    let filters = [
        ("", "All"),
        ("fresh", "Fresh"),
        ("pending", "Pending"),
        ("retry", "Retry"),
        ("closed", "Closed"),
        ("failed", "Failed"),
        ("skipped", "Skipped"),
    ]
    .into_iter()
    .map(|(key, label)| StateFilter {
        key,
        label,
        current: filter.map_or("", RecipientState::as_str) == key,
    })
    .collect();
    let actions = if signed.can(Permission::CampaignsWrite) {
        actions_for(c.state)
    } else {
        Vec::new()
    };
    let title = c.name.clone();
    Ok(render(&CampaignPage {
        chrome: Chrome::new(&signed, Section::Campaigns, title)
            .with_notice(query.notice.as_deref()),
        campaign: row(&view, &senders),
        facts,
        answers,
        actions,
        filters,
        recipients,
        error: query
            .error
            .as_deref()
            .and_then(action_error)
            .map(str::to_owned),
    }))
}

/// Why an action was refused, by a fixed code in the redirect (never words from a link).
fn action_error(code: &str) -> Option<&'static str> {
    Some(match code {
        "invalid_campaign_state" => "That cannot be done in the campaign's present state.",
        "campaign_ended" => "The campaign's end time has passed.",
        "campaign_changed" => "The campaign changed meanwhile: look again.",
        "bulk_not_allowed" => "This sender may not send in bulk.",
        _ => return None,
    })
}

async fn act(
    State(state): State<AppState>,
    signed: Signed,
    Path((id, action)): Path<(String, String)>,
    form: FormData,
) -> WebResult {
    form.check_csrf(&signed)?;
    let id: CampaignId = id
        .parse()
        .map_err(|_| WebError::NotFound("That campaign does not exist.".to_owned()))?;
    let action = match action.as_str() {
        "start" => CampaignAction::Start,
        "pause" => CampaignAction::Pause,
        "resume" => CampaignAction::Resume,
        "stop" => CampaignAction::Stop,
        "retry" => CampaignAction::Retry,
        _ => return Err(WebError::NotFound("No such action.".to_owned())),
    };
    let to = match campaigns::act(&state, &signed.0.principal, id, action).await {
        Ok(_) => format!("/campaigns/{id}?notice=campaign_{}", action.as_str()),
        Err(switchboard_app::AppError::Conflict { code, .. }) => {
            format!("/campaigns/{id}?error={code}")
        }
        Err(switchboard_app::AppError::PolicyRefused(_)) => {
            format!("/campaigns/{id}?error=bulk_not_allowed")
        }
        Err(other) => return Err(other.into()),
    };
    Ok(Redirect::to(&to).into_response())
}
