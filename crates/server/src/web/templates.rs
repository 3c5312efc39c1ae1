//! Message templates and their approval status (R3).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use switchboard_app::templates::{self, NewTemplate};
use switchboard_app::AppState;
use switchboard_core::sender::Sender;
use switchboard_core::template::{TemplateCategory, TemplateInput, TemplateStatus};
use switchboard_core::{Permission, TemplateId};
use switchboard_store::senders::SenderFilter;
use switchboard_store::templates::TemplateFilter;
use switchboard_store::{Order, PageRequest};

use super::page::{
    channel_label, render, Choice, Chrome, FormData, FormErrors, Section, Signed, WebError,
    WebResult,
};
use super::users::NoticeQuery;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/templates", get(list).post(create))
        .route("/templates/{id}/submit", post(submit))
}

struct TemplateRow {
    id: String,
    name: String,
    locale: String,
    sender: String,
    channel_key: &'static str,
    category: &'static str,
    body: String,
    status: &'static str,
    reason: String,
    recontact: bool,
    can_submit: bool,
}

struct TemplateForm {
    name: String,
    locale: String,
    body: String,
    footer: String,
    recontact: bool,
    senders: Vec<Choice>,
    categories: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "templates.html")]
struct TemplatesPage {
    chrome: Chrome,
    templates: Vec<TemplateRow>,
    can_write: bool,
    form: TemplateForm,
    errors: FormErrors,
}

const FORM_FIELDS: &[&str] = &["sender_id", "name", "locale", "category", "body", "footer"];

fn category_label(category: Option<TemplateCategory>) -> &'static str {
    match category {
        Some(TemplateCategory::Marketing) => "Marketing",
        Some(TemplateCategory::Utility) => "Utility",
        Some(TemplateCategory::Authentication) => "Authentication",
        None => "",
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
    let all = PageRequest {
        limit: 200,
        after: None,
        order: Order::Desc,
    };
    let senders: Vec<Sender> = if signed.can(Permission::SendersRead) {
        switchboard_app::senders::list_senders(state, principal, &SenderFilter::default(), &all)
            .await?
            .items
    } else {
        Vec::new()
    };
    let list = templates::list_templates(state, principal, &TemplateFilter::default(), &all)
        .await?
        .items;
    let can_write = signed.can(Permission::TemplatesWrite);
    let rows = list
        .into_iter()
        .map(|t| {
            let sender = senders.iter().find(|s| s.id == t.sender_id);
            TemplateRow {
                id: t.id.to_string(),
                name: t.content.name.clone(),
                locale: t.content.locale.as_str().to_owned(),
                sender: sender.map(|s| s.name.clone()).unwrap_or_default(),
                channel_key: sender.map(|s| s.channel.as_str()).unwrap_or("sms"),
                category: category_label(t.content.category),
                body: t.content.body.clone(),
                status: t.status.as_str(),
                reason: t.status_reason.clone().unwrap_or_default(),
                recontact: t.recontact,
                can_submit: can_write
                    && matches!(t.status, TemplateStatus::Draft | TemplateStatus::Rejected)
                    && sender.is_some_and(|s| s.channel == switchboard_core::Channel::Whatsapp),
            }
        })
        .collect();
    let text = |name: &str| typed.map(|f| f.text(name)).unwrap_or_default();
    let chosen_sender = text("sender_id");
    let chosen_category = typed
        .map(|f| f.text("category"))
        .unwrap_or_else(|| "UTILITY".to_owned());
    let form = TemplateForm {
        name: text("name"),
        locale: typed
            .map(|f| f.text("locale"))
            .unwrap_or_else(|| "en".to_owned()),
        body: typed.map(|f| f.raw("body")).unwrap_or_default(),
        footer: text("footer"),
        recontact: typed.is_some_and(|f| f.opt("recontact").is_some()),
        senders: senders
            .iter()
            .map(|s| {
                let id = s.id.to_string();
                let selected = id == chosen_sender;
                Choice::new(
                    id,
                    format!("{} ({})", s.name, channel_label(s.channel)),
                    selected,
                )
            })
            .collect(),
        categories: [
            ("", "None (Messenger, SMS)"),
            ("UTILITY", "Utility"),
            ("MARKETING", "Marketing"),
            ("AUTHENTICATION", "Authentication"),
        ]
        .into_iter()
        .map(|(v, l)| Choice::new(v, l, v == chosen_category))
        .collect(),
    };
    let mut response = render(&TemplatesPage {
        chrome: Chrome::new(signed, Section::Templates, "Templates").with_notice(notice),
        templates: rows,
        can_write,
        form,
        errors,
    });
    if typed.is_some() {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
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

async fn create(State(state): State<AppState>, signed: Signed, form: FormData) -> WebResult {
    form.check_csrf(&signed)?;
    let mut errors = FormErrors::default();
    let sender_id = match form.text("sender_id").parse() {
        Ok(id) => Some(id),
        Err(_) => {
            errors.field("sender_id", "Choose the sender this template belongs to.");
            None
        }
    };
    let category = match form.text("category").as_str() {
        "" => None,
        "UTILITY" => Some(TemplateCategory::Utility),
        "MARKETING" => Some(TemplateCategory::Marketing),
        "AUTHENTICATION" => Some(TemplateCategory::Authentication),
        _ => {
            errors.field("category", "Choose a category from the list.");
            None
        }
    };
    if let (Some(sender_id), true) = (sender_id, errors.is_empty()) {
        let input = NewTemplate {
            sender_id,
            template: TemplateInput {
                name: form.text("name"),
                locale: form.text("locale"),
                category,
                body: form.raw("body").trim().to_owned(),
                footer: form.opt("footer"),
                ..Default::default()
            },
            recontact: form.opt("recontact").is_some(),
        };
        match templates::create_template(&state, &signed.0.principal, input).await {
            Ok(_) => return Ok(Redirect::to("/templates?notice=template_created").into_response()),
            Err(e) => errors = FormErrors::from_app(e, FORM_FIELDS)?,
        }
    }
    page(&state, &signed, None, Some(&form), errors).await
}

async fn submit(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> WebResult {
    form.check_csrf(&signed)?;
    let id: TemplateId = id
        .parse()
        .map_err(|_| WebError::NotFound("That template does not exist.".to_owned()))?;
    match templates::submit_template(&state, &signed.0.principal, id).await {
        Ok(_) => Ok(Redirect::to("/templates?notice=template_submitted").into_response()),
        Err(e) => {
            let errors = FormErrors::from_app(e, &[])?;
            page(&state, &signed, None, None, errors).await
        }
    }
}
