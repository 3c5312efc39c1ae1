//! Signing in and out.
//!
//! The sign-in form is protected against login CSRF (another site signing the browser in to an
//! account of the attacker's) by a double-submit token: a random value in a cookie and the same
//! value in the form, which a cross-site form cannot know.

use askama::Template;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use switchboard_app::sessions;
use switchboard_app::{AppError, AppState};

use super::cookies;
use super::page::{render, FormData, Signed, WebConfig, WebResult};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
}

/// How long a sign-in form stays usable.
const LOGIN_FORM_SECS: i64 = 3600;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    email: String,
    error: Option<&'static str>,
    asset_version: &'static str,
}

/// `/`: the inbox for the signed-in, the sign-in form for everyone else.
pub async fn root(signed: Option<Signed>) -> Redirect {
    match signed {
        Some(_) => Redirect::to("/inbox"),
        None => Redirect::to("/login"),
    }
}

fn login_page(
    config: WebConfig,
    status: StatusCode,
    email: String,
    error: Option<&'static str>,
) -> Response {
    let csrf = sessions::new_form_token();
    let cookie = cookies::set(
        cookies::LOGIN_CSRF,
        &csrf,
        LOGIN_FORM_SECS,
        config.secure_cookies,
    );
    let mut response = render(&LoginPage {
        csrf,
        email,
        error,
        asset_version: super::assets::VERSION,
    });
    *response.status_mut() = status;
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

async fn login_form(Extension(config): Extension<WebConfig>, signed: Option<Signed>) -> Response {
    if signed.is_some() {
        return Redirect::to("/inbox").into_response();
    }
    login_page(config, StatusCode::OK, String::new(), None)
}

async fn login(
    State(state): State<AppState>,
    Extension(config): Extension<WebConfig>,
    headers: HeaderMap,
    form: FormData,
) -> WebResult {
    let email = form.text("email");
    let expected = cookies::get(&headers, cookies::LOGIN_CSRF).unwrap_or_default();
    if expected.is_empty() || !sessions::secrets_match(&form.raw("csrf"), &expected) {
        return Ok(login_page(
            config,
            StatusCode::FORBIDDEN,
            email,
            Some("The sign-in form had expired. Please sign in again."),
        ));
    }
    match sessions::login(&state, &email, &form.raw("password")).await {
        Ok(opened) => {
            let session = cookies::set(
                cookies::SESSION,
                &opened.secret,
                sessions::MAX_AGE.whole_seconds(),
                config.secure_cookies,
            );
            let spent = cookies::clear(cookies::LOGIN_CSRF, config.secure_cookies);
            Ok((
                AppendHeaders([(SET_COOKIE, session), (SET_COOKIE, spent)]),
                Redirect::to("/inbox"),
            )
                .into_response())
        }
        // One message for an unknown e-mail and a wrong password, so the form does not tell
        // anyone who has an account.
        Err(AppError::Unauthorized) => Ok(login_page(
            config,
            StatusCode::UNAUTHORIZED,
            email,
            Some("That e-mail address and password do not match an account."),
        )),
        Err(other) => Err(other.into()),
    }
}

async fn logout(
    State(state): State<AppState>,
    Extension(config): Extension<WebConfig>,
    signed: Signed,
    form: FormData,
) -> WebResult {
    form.check_csrf(&signed)?;
    if let Err(error) = sessions::logout(&state, signed.0.session.id).await {
        tracing::warn!(?error, "could not end a session");
    }
    Ok((
        AppendHeaders([(
            SET_COOKIE,
            cookies::clear(cookies::SESSION, config.secure_cookies),
        )]),
        Redirect::to("/login"),
    )
        .into_response())
}
