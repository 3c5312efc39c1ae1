//! Users (R1.3, R8.3): admins, supervisors and agents, their default and permitted senders.

use serde::Deserialize;
use switchboard_core::user::{check_password, parse_email, User};
use switchboard_core::validation::required_text;
use switchboard_core::{FieldError, Permission, Role, SenderId, UserId, ValidationErrors};
use switchboard_store::{Page, PageRequest, StoreError};

use crate::auth::hash_password;
use crate::patch::nullable;
use crate::{AppError, AppState, Principal, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub role: Role,
    /// For signing in to the web inbox; at least 10 characters. A user without one works
    /// through API tokens only.
    pub password: Option<String>,
    /// The sender used when none is named; it is always among the permitted ones.
    pub default_sender_id: Option<SenderId>,
    #[serde(default)]
    pub permitted_sender_ids: Vec<SenderId>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPatch {
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: Option<Role>,
    /// A new password; `null` removes it (the user can then use API tokens only).
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub password: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub default_sender_id: Option<Option<SenderId>>,
    pub permitted_sender_ids: Option<Vec<SenderId>>,
}

/// Sorts and de-duplicates, and makes the default sender permitted.
fn normalise_senders(default: Option<SenderId>, mut permitted: Vec<SenderId>) -> Vec<SenderId> {
    permitted.extend(default);
    permitted.sort();
    permitted.dedup();
    permitted
}

pub async fn create_user(state: &AppState, principal: &Principal, input: NewUser) -> Result<User> {
    principal.require(Permission::UsersWrite)?;
    let mut errors = ValidationErrors::new();
    let email = errors.check(parse_email("email", &input.email));
    let name = errors.check(required_text("name", &input.name, 200));
    if let Some(password) = &input.password {
        errors.check(check_password("password", password));
    }
    let (Some(email), Some(name)) = (email, name) else {
        return Err(errors.into());
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let now = state.now();
    let user = User {
        id: UserId::new(),
        email,
        name,
        role: input.role,
        password_hash: input.password.as_deref().map(hash_password),
        default_sender_id: input.default_sender_id,
        permitted_sender_ids: normalise_senders(
            input.default_sender_id,
            input.permitted_sender_ids,
        ),
        created_at: now,
        updated_at: now,
    };
    state
        .store()
        .create_user(&user)
        .await
        .map_err(user_store_error)?;
    Ok(user)
}

/// Creates a user from the command line, where access to the database is the authority.
pub async fn create_user_unchecked(state: &AppState, input: NewUser) -> Result<User> {
    let root = Principal {
        token: switchboard_core::user::ApiToken {
            id: switchboard_core::TokenId::new(),
            name: "command line".to_owned(),
            prefix: String::new(),
            role: Role::Admin,
            scopes: None,
            user_id: None,
            created_at: state.now(),
            last_used_at: None,
            expires_at: None,
        },
        user: None,
    };
    create_user(state, &root, input).await
}

fn user_store_error(error: StoreError) -> AppError {
    match error {
        StoreError::Conflict { field, existing_id } if field == "email" => AppError::Conflict {
            code: "duplicate_email",
            detail: "a user with this e-mail address exists".to_owned(),
            field: Some(field),
            existing_id,
        },
        other => AppError::from_store("user", other),
    }
}

/// A user may always read their own record; reading others needs `users:read`.
pub async fn get_user(state: &AppState, principal: &Principal, id: UserId) -> Result<User> {
    if principal.user_id() != Some(id) {
        principal.require(Permission::UsersRead)?;
    }
    let user = state
        .store()
        .get_user(id)
        .await
        .map_err(|e| AppError::from_store("user", e))?;
    Ok(with_effective_senders(state, vec![user]).await?.remove(0))
}

pub async fn list_users(
    state: &AppState,
    principal: &Principal,
    page: &PageRequest,
) -> Result<Page<User>> {
    principal.require(Permission::UsersRead)?;
    let page = state
        .store()
        .list_users(page)
        .await
        .map_err(AppError::Internal)?;
    Ok(Page {
        items: with_effective_senders(state, page.items).await?,
        next_after: page.next_after,
    })
}

/// Admins may use every sender: their permitted list is all senders, whatever was assigned.
pub async fn with_effective_senders(state: &AppState, mut users: Vec<User>) -> Result<Vec<User>> {
    if users.iter().any(|u| u.role == Role::Admin) {
        let all = state
            .store()
            .all_sender_ids()
            .await
            .map_err(AppError::Internal)?;
        for user in users.iter_mut().filter(|u| u.role == Role::Admin) {
            user.permitted_sender_ids = all.clone();
        }
    }
    Ok(users)
}

pub async fn update_user(
    state: &AppState,
    principal: &Principal,
    id: UserId,
    patch: UserPatch,
) -> Result<User> {
    principal.require(Permission::UsersWrite)?;
    let mut user = state
        .store()
        .get_user(id)
        .await
        .map_err(|e| AppError::from_store("user", e))?;
    let mut errors = ValidationErrors::new();
    if let Some(email) = &patch.email {
        if let Some(email) = errors.check(parse_email("email", email)) {
            user.email = email;
        }
    }
    if let Some(name) = &patch.name {
        if let Some(name) = errors.check(required_text("name", name, 200)) {
            user.name = name;
        }
    }
    if let Some(role) = patch.role {
        if principal.user_id() == Some(id) && role < user.role {
            errors.push(FieldError::new(
                "role",
                "cannot_demote_self",
                "you cannot lower your own role; ask another admin",
            ));
        }
        user.role = role;
    }
    match &patch.password {
        Some(Some(password)) if errors.check(check_password("password", password)).is_some() => {
            user.password_hash = Some(hash_password(password));
        }
        Some(None) => user.password_hash = None,
        _ => {}
    }
    if let Some(default) = patch.default_sender_id {
        user.default_sender_id = default;
    }
    let permitted = patch
        .permitted_sender_ids
        .unwrap_or_else(|| user.permitted_sender_ids.clone());
    user.permitted_sender_ids = normalise_senders(user.default_sender_id, permitted);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let password_changed = patch.password.is_some();
    user.updated_at = state.now();
    state
        .store()
        .update_user(&user)
        .await
        .map_err(user_store_error)?;
    // A new password (a reset after a leak, say) signs the user out everywhere.
    if password_changed {
        state
            .store()
            .delete_user_sessions(id)
            .await
            .map_err(AppError::Internal)?;
    }
    Ok(with_effective_senders(state, vec![user]).await?.remove(0))
}

pub async fn delete_user(state: &AppState, principal: &Principal, id: UserId) -> Result<()> {
    principal.require(Permission::UsersWrite)?;
    if principal.user_id() == Some(id) {
        return Err(AppError::Conflict {
            code: "cannot_delete_self",
            field: None,
            existing_id: None,
            detail: "you cannot delete your own user; ask another admin".to_owned(),
        });
    }
    state
        .store()
        .delete_user(id)
        .await
        .map_err(|e| AppError::from_store("user", e))
}
