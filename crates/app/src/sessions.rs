//! Signing in to the web pages: e-mail and password for a session, and the session back to the
//! same [`Principal`] an API token gives, so every use case checks permissions one way.

use std::sync::OnceLock;

use base64::Engine;
use rand::RngCore;
use switchboard_core::user::{parse_email, ApiToken, Session, User};
use switchboard_core::{SessionId, TokenId};
use switchboard_store::StoreError;
use time::{Duration, OffsetDateTime};

use crate::auth::{hash_password, hash_token, verify_password};
use crate::{AppError, AppState, Principal, Result};

/// A session unused for this long ends: an agent's shift, with room to spare.
pub const IDLE_TIMEOUT: Duration = Duration::hours(12);
/// However active, a session ends this long after sign-in, so a stolen cookie does not live
/// for ever.
pub const MAX_AGE: Duration = Duration::days(7);
/// Activity is written at most this often, so page views are not a write each.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// A session just opened, with the secret for the cookie: the only time it is available.
#[derive(Clone, Debug)]
pub struct OpenedSession {
    pub session: Session,
    pub secret: String,
}

/// A session resolved from its cookie: who is acting, and the token their pages must send back.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub principal: Principal,
    pub session: Session,
}

impl SignedIn {
    pub fn user(&self) -> &User {
        self.principal
            .user
            .as_ref()
            .expect("a session principal always has its user")
    }
}

fn random_text(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A fresh random token for forms (login CSRF uses it before any session exists).
pub fn new_form_token() -> String {
    random_text("")
}

/// Verifying against this when the e-mail is unknown makes a wrong e-mail take as long as a
/// wrong password, so response times do not reveal who has an account.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that matches nothing"))
}

/// Opens a session for the user with this e-mail and password. Every failure (unknown e-mail,
/// wrong password, a user without a password) is the same [`AppError::Unauthorized`].
pub async fn login(state: &AppState, email: &str, password: &str) -> Result<OpenedSession> {
    let store = state.store();
    let user = match parse_email("email", email) {
        Ok(email) => store
            .find_user_by_email(&email)
            .await
            .map_err(AppError::Internal)?,
        Err(_) => None,
    };
    let phc = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| decoy_hash().to_owned());
    // argon2 is deliberately slow: off the async workers.
    let password = password.to_owned();
    let verified = tokio::task::spawn_blocking(move || verify_password(&phc, &password))
        .await
        .unwrap_or(false);
    let user = match user {
        Some(user) if verified && user.password_hash.is_some() => user,
        _ => return Err(AppError::Unauthorized),
    };
    let now = state.now();
    if let Err(error) = store.delete_expired_sessions(now).await {
        tracing::warn!(?error, "could not remove expired sessions");
    }
    let session = Session {
        id: SessionId::new(),
        user_id: user.id,
        csrf_token: random_text(""),
        created_at: now,
        expires_at: now + IDLE_TIMEOUT,
        last_seen_at: now,
    };
    let secret = random_text("sbs_");
    store
        .create_session(&session, &hash_token(&secret))
        .await
        .map_err(|e| match e {
            // The user was deleted while signing in.
            StoreError::MissingReference { .. } => AppError::Unauthorized,
            other => AppError::Internal(other),
        })?;
    tracing::info!(user_id = %user.id, session_id = %session.id, "signed in");
    Ok(OpenedSession { session, secret })
}

/// Ends a session (signing out); one already gone is not an error.
pub async fn logout(state: &AppState, session: SessionId) -> Result<()> {
    state
        .store()
        .delete_session(session)
        .await
        .map_err(AppError::Internal)?;
    tracing::info!(session_id = %session, "signed out");
    Ok(())
}

/// The principal a session cookie stands for. It carries an in-memory token with the user's
/// role and no scopes, so a session can do exactly what its user's role allows.
pub fn principal_for(session: &Session, user: User) -> Principal {
    Principal {
        token: ApiToken {
            // The session's id, so idempotency keys and audit lines name this session.
            id: TokenId::from_uuid(session.id.as_uuid()),
            name: "web session".to_owned(),
            prefix: String::new(),
            role: user.role,
            scopes: None,
            user_id: Some(user.id),
            created_at: session.created_at,
            last_used_at: Some(session.last_seen_at),
            expires_at: Some(session.expires_at),
        },
        user: Some(user),
    }
}

/// Resolves a session cookie's secret; an unknown, expired or orphaned session is
/// [`AppError::Unauthorized`]. Activity slides the idle expiry, up to [`MAX_AGE`].
pub async fn resolve(state: &AppState, secret: &str) -> Result<SignedIn> {
    let store = state.store();
    let mut session = store
        .find_session_by_hash(&hash_token(secret.trim()))
        .await
        .map_err(AppError::Internal)?
        .ok_or(AppError::Unauthorized)?;
    let now = state.now();
    if session.is_expired(now) {
        return Err(AppError::Unauthorized);
    }
    let user = store.get_user(session.user_id).await.map_err(|e| match e {
        StoreError::NotFound => AppError::Unauthorized,
        other => AppError::Internal(other),
    })?;
    if now - session.last_seen_at >= TOUCH_EVERY {
        let expires_at = slid_expiry(&session, now);
        match store.touch_session(session.id, now, expires_at).await {
            Ok(()) => {
                session.last_seen_at = now;
                session.expires_at = expires_at;
            }
            // Bookkeeping only: a failure must not sign the user out.
            Err(error) => {
                tracing::warn!(session_id = %session.id, ?error, "could not touch session")
            }
        }
    }
    let principal = principal_for(&session, user);
    Ok(SignedIn { principal, session })
}

fn slid_expiry(session: &Session, now: OffsetDateTime) -> OffsetDateTime {
    (now + IDLE_TIMEOUT).min(session.created_at + MAX_AGE)
}

/// Compares secrets in time that does not depend on where they first differ.
pub fn secrets_match(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(secrets_match("abc", "abc"));
        assert!(!secrets_match("abc", "abd"));
        assert!(!secrets_match("abc", "abcd"));
        assert!(!secrets_match("", "a"));
    }

    #[test]
    fn expiry_slides_but_never_past_the_maximum_age() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let session = Session {
            id: SessionId::new(),
            user_id: switchboard_core::UserId::new(),
            csrf_token: String::new(),
            created_at: t,
            expires_at: t + IDLE_TIMEOUT,
            last_seen_at: t,
        };
        assert_eq!(
            slid_expiry(&session, t + Duration::hours(1)),
            t + Duration::hours(13)
        );
        assert_eq!(slid_expiry(&session, t + Duration::days(7)), t + MAX_AGE);
    }
}
