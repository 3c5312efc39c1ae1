//! Users: who signs in, with which role, and which senders they may use.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use switchboard_app::users::{self, NewUser, UserPatch};
use switchboard_app::AppState;
use switchboard_core::sender::Sender;
use switchboard_core::user::User;
use switchboard_core::{Permission, Role, SenderId, UserId};
use switchboard_store::senders::SenderFilter;
use switchboard_store::{Order, PageRequest};

use super::page::{
    render, Choice, Chrome, FormData, FormErrors, Section, Signed, WebError, WebResult,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(edit).post(update))
        .route("/users/{id}/delete", post(delete))
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

struct UserRow {
    id: String,
    name: String,
    email: String,
    role: &'static str,
    default_sender: String,
    senders: String,
    has_password: bool,
}

/// What the user form shows: the values typed so far and the choices.
struct UserForm {
    email: String,
    name: String,
    roles: Vec<Choice>,
    default_senders: Vec<Choice>,
    permitted: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserRow>,
    can_write: bool,
    form: UserForm,
    errors: FormErrors,
}

#[derive(Template)]
#[template(path = "user_edit.html")]
struct UserEditPage {
    chrome: Chrome,
    id: String,
    can_write: bool,
    is_self: bool,
    form: UserForm,
    errors: FormErrors,
}

const FORM_FIELDS: &[&str] = &[
    "email",
    "name",
    "role",
    "password",
    "default_sender_id",
    "permitted_sender_ids",
];

async fn all_senders(state: &AppState, signed: &Signed) -> WebResult<Vec<Sender>> {
    if !signed.can(Permission::SendersRead) {
        return Ok(Vec::new());
    }
    let page = PageRequest {
        limit: 200,
        after: None,
        order: Order::Asc,
    };
    Ok(switchboard_app::senders::list_senders(
        state,
        &signed.0.principal,
        &SenderFilter::default(),
        &page,
    )
    .await?
    .items)
}

fn user_form(
    senders: &[Sender],
    email: String,
    name: String,
    role: &str,
    default: Option<&str>,
    permitted: &[String],
) -> UserForm {
    let mut default_senders = vec![Choice::new("", "None", default.is_none())];
    default_senders.extend(senders.iter().map(|s| {
        let id = s.id.to_string();
        let selected = default == Some(id.as_str());
        Choice::new(id, sender_label(s), selected)
    }));
    UserForm {
        email,
        name,
        roles: [Role::Agent, Role::Supervisor, Role::Admin]
            .into_iter()
            .map(|r| Choice::new(r.as_str(), title_case(r.as_str()), r.as_str() == role))
            .collect(),
        default_senders,
        permitted: senders
            .iter()
            .map(|s| {
                let id = s.id.to_string();
                let checked = permitted.contains(&id);
                Choice::new(id, sender_label(s), checked)
            })
            .collect(),
    }
}

fn sender_label(sender: &Sender) -> String {
    format!(
        "{} ({})",
        sender.name,
        super::page::channel_label(sender.channel)
    )
}

fn title_case(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn rows(users: Vec<User>, senders: &[Sender]) -> Vec<UserRow> {
    let name_of = |id: &SenderId| {
        senders
            .iter()
            .find(|s| s.id == *id)
            .map(|s| s.name.clone())
            .unwrap_or_else(|| "unknown sender".to_owned())
    };
    users
        .into_iter()
        .map(|u| UserRow {
            id: u.id.to_string(),
            default_sender: u
                .default_sender_id
                .as_ref()
                .map(name_of)
                .unwrap_or_default(),
            senders: if u.role == Role::Admin {
                "All senders".to_owned()
            } else if u.permitted_sender_ids.is_empty() {
                "None".to_owned()
            } else {
                u.permitted_sender_ids
                    .iter()
                    .map(name_of)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            has_password: u.password_hash.is_some(),
            name: u.name,
            email: u.email,
            role: u.role.as_str(),
        })
        .collect()
}

async fn list_page(
    state: &AppState,
    signed: &Signed,
    notice: Option<&str>,
    form: Option<(UserForm, FormErrors)>,
) -> WebResult {
    let principal = &signed.0.principal;
    let page = PageRequest {
        limit: 200,
        after: None,
        order: Order::Asc,
    };
    let users = users::list_users(state, principal, &page).await?.items;
    let senders = all_senders(state, signed).await?;
    let (form, errors) = form.unwrap_or_else(|| {
        (
            user_form(&senders, String::new(), String::new(), "agent", None, &[]),
            FormErrors::default(),
        )
    });
    Ok(render(&UsersPage {
        chrome: Chrome::new(signed, Section::Users, "Users").with_notice(notice),
        users: rows(users, &senders),
        can_write: signed.can(Permission::UsersWrite),
        form,
        errors,
    }))
}

async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<NoticeQuery>,
) -> WebResult {
    list_page(&state, &signed, query.notice.as_deref(), None).await
}

/// Parses the sender fields of the form; an id that is not one is reported on its field.
fn sender_ids(form: &FormData, errors: &mut FormErrors) -> (Option<SenderId>, Vec<SenderId>) {
    let default = match form.opt("default_sender_id") {
        Some(id) => match id.parse() {
            Ok(id) => Some(id),
            Err(_) => {
                errors.field("default_sender_id", "Choose a sender from the list.");
                None
            }
        },
        None => None,
    };
    let mut permitted = Vec::new();
    for id in form.all("permitted_sender_ids") {
        match id.parse() {
            Ok(id) => permitted.push(id),
            Err(_) => errors.field("permitted_sender_ids", "Choose senders from the list."),
        }
    }
    (default, permitted)
}

fn parse_role(form: &FormData, errors: &mut FormErrors) -> Option<Role> {
    match form.text("role").parse() {
        Ok(role) => Some(role),
        Err(_) => {
            errors.field("role", "Choose a role.");
            None
        }
    }
}

async fn create(State(state): State<AppState>, signed: Signed, form: FormData) -> WebResult {
    form.check_csrf(&signed)?;
    let mut errors = FormErrors::default();
    let role = parse_role(&form, &mut errors);
    let (default, permitted) = sender_ids(&form, &mut errors);
    let password = Some(form.raw("password")).filter(|p| !p.is_empty());
    let outcome = match role {
        Some(role) if errors.is_empty() => {
            let input = NewUser {
                email: form.text("email"),
                name: form.text("name"),
                role,
                password,
                default_sender_id: default,
                permitted_sender_ids: permitted,
            };
            match users::create_user(&state, &signed.0.principal, input).await {
                Ok(_) => return Ok(Redirect::to("/users?notice=user_created").into_response()),
                Err(e) => FormErrors::from_app(e, FORM_FIELDS)?,
            }
        }
        _ => errors,
    };
    let senders = all_senders(&state, &signed).await?;
    let form = user_form(
        &senders,
        form.text("email"),
        form.text("name"),
        &form.text("role"),
        form.opt("default_sender_id").as_deref(),
        &form.all("permitted_sender_ids"),
    );
    let mut response = list_page(&state, &signed, None, Some((form, outcome))).await?;
    *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    Ok(response)
}

fn parse_id(raw: &str) -> WebResult<UserId> {
    raw.parse()
        .map_err(|_| WebError::NotFound("That user does not exist.".to_owned()))
}

async fn edit_page(
    state: &AppState,
    signed: &Signed,
    id: UserId,
    form: Option<(UserForm, FormErrors)>,
) -> WebResult {
    let user = users::get_user(state, &signed.0.principal, id).await?;
    let senders = all_senders(state, signed).await?;
    let (form, errors) = match form {
        Some(form) => form,
        None => {
            let permitted: Vec<String> = user
                .permitted_sender_ids
                .iter()
                .map(ToString::to_string)
                .collect();
            let default = user.default_sender_id.map(|s| s.to_string());
            (
                user_form(
                    &senders,
                    user.email.clone(),
                    user.name.clone(),
                    user.role.as_str(),
                    default.as_deref(),
                    &permitted,
                ),
                FormErrors::default(),
            )
        }
    };
    Ok(render(&UserEditPage {
        chrome: Chrome::new(signed, Section::Users, format!("User {}", user.name)),
        id: id.to_string(),
        can_write: signed.can(Permission::UsersWrite),
        is_self: signed.0.principal.user_id() == Some(id),
        form,
        errors,
    }))
}

async fn edit(State(state): State<AppState>, signed: Signed, Path(id): Path<String>) -> WebResult {
    let id = parse_id(&id)?;
    edit_page(&state, &signed, id, None).await
}

async fn update(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> WebResult {
    form.check_csrf(&signed)?;
    let id = parse_id(&id)?;
    let mut errors = FormErrors::default();
    let role = parse_role(&form, &mut errors);
    let (default, permitted) = sender_ids(&form, &mut errors);
    let outcome = if errors.is_empty() {
        let patch = UserPatch {
            email: Some(form.text("email")),
            name: Some(form.text("name")),
            role,
            // A blank password field leaves the password as it is.
            password: Some(form.raw("password"))
                .filter(|p| !p.is_empty())
                .map(Some),
            default_sender_id: Some(default),
            permitted_sender_ids: Some(permitted),
        };
        match users::update_user(&state, &signed.0.principal, id, patch).await {
            Ok(_) => return Ok(Redirect::to("/users?notice=user_saved").into_response()),
            Err(e) => FormErrors::from_app(e, FORM_FIELDS)?,
        }
    } else {
        errors
    };
    let senders = all_senders(&state, &signed).await?;
    let form = user_form(
        &senders,
        form.text("email"),
        form.text("name"),
        &form.text("role"),
        form.opt("default_sender_id").as_deref(),
        &form.all("permitted_sender_ids"),
    );
    let mut response = edit_page(&state, &signed, id, Some((form, outcome))).await?;
    *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    Ok(response)
}

async fn delete(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    form.check_csrf(&signed)?;
    let id = parse_id(&id)?;
    match users::delete_user(&state, &signed.0.principal, id).await {
        Ok(()) => Ok(Redirect::to("/users?notice=user_deleted").into_response()),
        Err(switchboard_app::AppError::Conflict { detail, .. }) => {
            Err(WebError::BadRequest(super::page::plain(&detail)))
        }
        Err(e) => Err(e.into()),
    }
}
