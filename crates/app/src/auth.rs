//! Who is acting, and what they may do (R8.3): API tokens, passwords, bootstrap.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use switchboard_core::user::{ApiToken, User};
use switchboard_core::validation::required_text;
use switchboard_core::{FieldError, Permission, Role, TokenId, UserId, ValidationErrors};
use switchboard_store::{Page, PageRequest};
use time::{Duration, OffsetDateTime};

use crate::{AppError, AppState, Result};

/// Every token starts with this, so a leaked one is recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "sb_";
const SHOWN_PREFIX_CHARS: usize = 10;
/// `last_used_at` is refreshed at most this often, so authentication is not a write per request.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// The authenticated caller: a token, and the user it acts for if any.
#[derive(Clone, Debug)]
pub struct Principal {
    pub token: ApiToken,
    pub user: Option<User>,
}

impl Principal {
    /// A token acting for a user never exceeds that user's current role.
    pub fn role(&self) -> Role {
        match &self.user {
            Some(user) => self.token.role.min(user.role),
            None => self.token.role,
        }
    }

    pub fn can(&self, permission: Permission) -> bool {
        self.token.allows(permission) && self.role().has(permission)
    }

    /// `Ok` when the principal holds `permission`, else a 403 naming it.
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.can(permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden { permission })
        }
    }

    pub fn user_id(&self) -> Option<UserId> {
        self.user.as_ref().map(|u| u.id)
    }

    /// The key under which this caller's idempotency keys are kept.
    pub fn idempotency_scope(&self) -> String {
        format!("token:{}", self.token.id)
    }
}

/// The SHA-256 of a token secret, as stored.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn shown_prefix(secret: &str) -> String {
    secret.chars().take(SHOWN_PREFIX_CHARS).collect()
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Authenticates a bearer token.
pub async fn authenticate(state: &AppState, secret: &str) -> Result<Principal> {
    let store = state.store();
    let token = state
        .lookups()
        .token(hash_token(secret.trim()))
        .await
        .map_err(AppError::Internal)?
        .ok_or(AppError::Unauthorized)?;
    let now = state.now();
    if token.is_expired(now) {
        return Err(AppError::Unauthorized);
    }
    let user = match token.user_id {
        Some(id) => Some(store.get_user(id).await.map_err(|e| match e {
            // The user was deleted between the token lookup and now.
            switchboard_store::StoreError::NotFound => AppError::Unauthorized,
            other => AppError::Internal(other),
        })?),
        None => None,
    };
    if token.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY) {
        if let Err(error) = store.touch_token(token.id, now).await {
            // Bookkeeping only: a failure here must not refuse an authenticated request.
            tracing::warn!(token_id = %token.id, ?error, "could not record token use");
        }
    }
    Ok(Principal { token, user })
}

/// A request for a new API token.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewToken {
    /// A label for people: what the token is for.
    pub name: String,
    /// `admin`, `supervisor` or `agent`. With `user_id` it defaults to the user's role and may
    /// not exceed it.
    pub role: Option<Role>,
    /// Narrows the role's permissions to these (e.g. `["contacts:read"]`).
    pub scopes: Option<Vec<Permission>>,
    /// The user the token acts as; without it the token acts as a service.
    pub user_id: Option<UserId>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<OffsetDateTime>,
}

/// A token just made, with its secret: the only time the secret is available.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: ApiToken,
    pub secret: String,
}

pub async fn create_token(
    state: &AppState,
    principal: &Principal,
    input: NewToken,
) -> Result<IssuedToken> {
    principal.require(Permission::TokensWrite)?;
    let token = validate_new_token(state, input).await?;
    // A principal cannot mint a token stronger than itself: not a higher role, and not a
    // permission its own scopes withhold.
    if token.role > principal.role() {
        return Err(FieldError::new(
            "role",
            "exceeds_own_role",
            "a token cannot have a higher role than the one creating it",
        )
        .into());
    }
    if let Some(beyond) = Permission::ALL
        .iter()
        .find(|p| token.allows(**p) && !principal.can(**p))
    {
        return Err(FieldError::new(
            "scopes",
            "exceeds_own_permissions",
            format!("the new token would have `{beyond}`, which the token creating it lacks"),
        )
        .into());
    }
    issue(state, token, None).await
}

/// Creates a token from the command line, where access to the database is the authority.
pub async fn create_token_unchecked(state: &AppState, input: NewToken) -> Result<IssuedToken> {
    let token = validate_new_token(state, input).await?;
    issue(state, token, None).await
}

async fn validate_new_token(state: &AppState, input: NewToken) -> Result<ApiToken> {
    let mut errors = ValidationErrors::new();
    let name = errors.check(required_text("name", &input.name, 200));
    let now = state.now();
    let user = match input.user_id {
        Some(id) => match state.store().get_user(id).await {
            Ok(user) => Some(user),
            Err(switchboard_store::StoreError::NotFound) => {
                errors.push(FieldError::new(
                    "user_id",
                    "unknown_reference",
                    format!("no user {id}"),
                ));
                None
            }
            Err(other) => return Err(AppError::Internal(other)),
        },
        None => None,
    };
    let role = match (input.role, &user) {
        (Some(role), Some(user)) if role > user.role => {
            errors.push(FieldError::new(
                "role",
                "exceeds_user_role",
                format!("the user is {}; their token cannot be {role}", user.role),
            ));
            None
        }
        (Some(role), _) => Some(role),
        (None, Some(user)) => Some(user.role),
        (None, None) => {
            errors.push(FieldError::required("role"));
            None
        }
    };
    if input.expires_at.is_some_and(|at| at <= now) {
        errors.push(FieldError::new(
            "expires_at",
            "in_the_past",
            "`expires_at` must be in the future",
        ));
    }
    if let (Some(role), Some(scopes)) = (role, &input.scopes) {
        for scope in scopes {
            if !role.has(*scope) {
                errors.push(FieldError::new(
                    "scopes",
                    "exceeds_role",
                    format!("a {role} token cannot have `{scope}`"),
                ));
            }
        }
    }
    let (Some(name), Some(role)) = (name, role) else {
        return Err(errors.into());
    };
    errors
        .finish(|| ApiToken {
            id: TokenId::new(),
            name,
            prefix: String::new(),
            role,
            scopes: input.scopes,
            user_id: input.user_id,
            created_at: now,
            last_used_at: None,
            expires_at: input
                .expires_at
                .map(switchboard_core::time::truncate_to_millis),
        })
        .map_err(AppError::from)
}

async fn issue(
    state: &AppState,
    mut token: ApiToken,
    secret: Option<String>,
) -> Result<IssuedToken> {
    let secret = secret.unwrap_or_else(generate_secret);
    token.prefix = shown_prefix(&secret);
    state
        .store()
        .create_token(&token, &hash_token(&secret))
        .await
        .map_err(|e| AppError::from_store("token", e))?;
    Ok(IssuedToken { token, secret })
}

pub async fn list_tokens(
    state: &AppState,
    principal: &Principal,
    page: &PageRequest,
) -> Result<Page<ApiToken>> {
    principal.require(Permission::TokensRead)?;
    state
        .store()
        .list_tokens(page)
        .await
        .map_err(AppError::Internal)
}

pub async fn delete_token(state: &AppState, principal: &Principal, id: TokenId) -> Result<()> {
    principal.require(Permission::TokensWrite)?;
    state
        .store()
        .delete_token(id)
        .await
        .map_err(|e| AppError::from_store("token", e))
}

/// The minimum length of a bootstrap token chosen by an operator.
pub const MIN_BOOTSTRAP_TOKEN_CHARS: usize = 24;

/// What start-up did to make sure someone can get in.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Users or tokens exist already: nothing to do.
    NotNeeded,
    /// The operator's `SWITCHBOARD_BOOTSTRAP_TOKEN` was installed as an admin token.
    Installed,
    /// No users, no tokens and no bootstrap token: a new admin token was made, to be shown once.
    Generated(String),
}

/// On first start (no users), installs the operator's bootstrap token as an admin token; with
/// none given and no tokens at all, generates one so that a newcomer is never locked out.
pub async fn bootstrap(state: &AppState, operator_token: Option<&str>) -> Result<Bootstrap> {
    let store = state.store();
    if store.count_users().await.map_err(AppError::Internal)? > 0 {
        return Ok(Bootstrap::NotNeeded);
    }
    let template = |name: &str| ApiToken {
        id: TokenId::new(),
        name: name.to_owned(),
        prefix: String::new(),
        role: Role::Admin,
        scopes: None,
        user_id: None,
        created_at: state.now(),
        last_used_at: None,
        expires_at: None,
    };
    match operator_token {
        Some(secret) => {
            let secret = secret.trim();
            if secret.chars().count() < MIN_BOOTSTRAP_TOKEN_CHARS {
                return Err(FieldError::new(
                    "bootstrap_token",
                    "too_short",
                    format!("the bootstrap token must be at least {MIN_BOOTSTRAP_TOKEN_CHARS} characters"),
                )
                .into());
            }
            // Only on a first start: once any token exists, a bootstrap token that was revoked
            // (say, because it leaked) must not come back with the next restart.
            if store.count_tokens().await.map_err(AppError::Internal)? > 0 {
                return Ok(Bootstrap::NotNeeded);
            }
            issue(state, template("bootstrap"), Some(secret.to_owned())).await?;
            Ok(Bootstrap::Installed)
        }
        None => {
            if store.count_tokens().await.map_err(AppError::Internal)? > 0 {
                return Ok(Bootstrap::NotNeeded);
            }
            let issued = issue(state, template("first start"), None).await?;
            Ok(Bootstrap::Generated(issued.secret))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_prefixed() {
        let a = generate_secret();
        let b = generate_secret();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), 3 + 43);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a).len(), 64);
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let phc = hash_password("correct horse battery");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password(&phc, "correct horse battery"));
        assert!(!verify_password(&phc, "wrong horse battery"));
        assert!(!verify_password("not a hash", "x"));
    }
}
