//! Account settings: business hours (R7.4).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use switchboard_app::settings;
use switchboard_app::AppState;
use switchboard_core::hours::{BusinessHours, Interval, Week};
use switchboard_core::Permission;

use super::page::{render, Chrome, FormData, FormErrors, Section, Signed, WebResult};
use super::users::NoticeQuery;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings", get(show).post(save))
        .route("/settings/hours/clear", post(clear))
}

const DAYS: [(&str, &str); 7] = [
    ("monday", "Monday"),
    ("tuesday", "Tuesday"),
    ("wednesday", "Wednesday"),
    ("thursday", "Thursday"),
    ("friday", "Friday"),
    ("saturday", "Saturday"),
    ("sunday", "Sunday"),
];

struct DayRow {
    key: &'static str,
    label: &'static str,
    opens: String,
    closes: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    can_write: bool,
    keeps_hours: bool,
    time_zone: String,
    days: Vec<DayRow>,
    holidays: String,
    auto_reply: String,
    errors: FormErrors,
}

fn day_intervals(week: &Week, key: &str) -> Vec<Interval> {
    match key {
        "monday" => week.monday.clone(),
        "tuesday" => week.tuesday.clone(),
        "wednesday" => week.wednesday.clone(),
        "thursday" => week.thursday.clone(),
        "friday" => week.friday.clone(),
        "saturday" => week.saturday.clone(),
        _ => week.sunday.clone(),
    }
}

const FORM_FIELDS: &[&str] = &[
    "time_zone",
    "holidays",
    "auto_reply",
    "weekly.monday",
    "weekly.tuesday",
    "weekly.wednesday",
    "weekly.thursday",
    "weekly.friday",
    "weekly.saturday",
    "weekly.sunday",
];

fn page(
    signed: &Signed,
    notice: Option<&str>,
    stored: Option<&BusinessHours>,
    typed: Option<&FormData>,
    errors: FormErrors,
) -> WebResult {
    let days = DAYS
        .iter()
        .map(|(key, label)| {
            let (opens, closes) = match (typed, stored) {
                (Some(f), _) => (
                    f.text(&format!("{key}_opens")),
                    f.text(&format!("{key}_closes")),
                ),
                (None, Some(hours)) => day_intervals(&hours.weekly, key)
                    .first()
                    .map(|i| (i.opens.clone(), i.closes.clone()))
                    .unwrap_or_default(),
                (None, None) => Default::default(),
            };
            DayRow {
                key,
                label,
                opens,
                closes,
                error: errors.of(&format!("weekly.{key}")).map(str::to_owned),
            }
        })
        .collect();
    let text = |name: &str, stored_value: String| match typed {
        Some(f) => f.raw(name).trim().to_owned(),
        None => stored_value,
    };
    let mut response = render(&SettingsPage {
        chrome: Chrome::new(signed, Section::Settings, "Settings").with_notice(notice),
        can_write: signed.can(Permission::SettingsWrite),
        keeps_hours: stored.is_some(),
        time_zone: text(
            "time_zone",
            stored
                .map(|h| h.time_zone.clone())
                .unwrap_or_else(|| "UTC".to_owned()),
        ),
        days,
        holidays: text(
            "holidays",
            stored.map(|h| h.holidays.join(", ")).unwrap_or_default(),
        ),
        auto_reply: text(
            "auto_reply",
            stored
                .and_then(|h| h.auto_reply.clone())
                .unwrap_or_default(),
        ),
        errors,
    });
    if typed.is_some() {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}

async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<NoticeQuery>,
) -> WebResult {
    let hours = settings::get_business_hours(&state, &signed.0.principal).await?;
    page(
        &signed,
        query.notice.as_deref(),
        hours.as_ref(),
        None,
        FormErrors::default(),
    )
}

async fn save(State(state): State<AppState>, signed: Signed, form: FormData) -> WebResult {
    form.check_csrf(&signed)?;
    let mut errors = FormErrors::default();
    let mut week = Week::default();
    for (key, label) in DAYS {
        let opens = form.text(&format!("{key}_opens"));
        let closes = form.text(&format!("{key}_closes"));
        let intervals = match (opens.is_empty(), closes.is_empty()) {
            (true, true) => Vec::new(),
            (false, false) => vec![Interval { opens, closes }],
            _ => {
                errors.field(
                    &format!("weekly.{key}"),
                    format!("Give {label} both an opening and a closing time, or neither."),
                );
                Vec::new()
            }
        };
        match key {
            "monday" => week.monday = intervals,
            "tuesday" => week.tuesday = intervals,
            "wednesday" => week.wednesday = intervals,
            "thursday" => week.thursday = intervals,
            "friday" => week.friday = intervals,
            "saturday" => week.saturday = intervals,
            _ => week.sunday = intervals,
        }
    }
    let hours = BusinessHours {
        time_zone: form.text("time_zone"),
        weekly: week,
        holidays: form
            .text("holidays")
            .split([',', '\n'])
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect(),
        auto_reply: form.opt("auto_reply"),
    };
    if errors.is_empty() {
        match settings::put_business_hours(&state, &signed.0.principal, hours).await {
            Ok(_) => return Ok(Redirect::to("/settings?notice=hours_saved").into_response()),
            Err(e) => errors = FormErrors::from_app(e, FORM_FIELDS)?,
        }
    }
    let stored = settings::get_business_hours(&state, &signed.0.principal).await?;
    page(&signed, None, stored.as_ref(), Some(&form), errors)
}

async fn clear(State(state): State<AppState>, signed: Signed, form: FormData) -> WebResult {
    form.check_csrf(&signed)?;
    settings::clear_business_hours(&state, &signed.0.principal).await?;
    Ok(Redirect::to("/settings?notice=hours_cleared").into_response())
}
