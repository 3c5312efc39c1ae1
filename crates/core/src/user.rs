//! People who sign in, and the API tokens that act for them or for a service.

use time::OffsetDateTime;

use crate::auth::{Permission, Role};
use crate::ids::{SenderId, SessionId, TokenId, UserId};
use crate::validation::FieldError;

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// An argon2 PHC string; `None` for a user who signs in only through API tokens.
    pub password_hash: Option<String>,
    pub default_sender_id: Option<SenderId>,
    /// The senders this user may use (R1.3). Admins may use every sender whatever this holds.
    pub permitted_sender_ids: Vec<SenderId>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Normalises an e-mail address for uniqueness: trimmed and lower-cased. The check is shallow on
/// purpose: the address is a login name here, not a mailbox we deliver to.
pub fn parse_email(field: &str, input: &str) -> Result<String, FieldError> {
    let email = input.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
    if valid {
        Ok(email)
    } else {
        Err(FieldError::new(
            field,
            "invalid_email",
            format!("`{field}` must be an e-mail address"),
        ))
    }
}

/// A password must be long enough to resist guessing; composition rules are deliberately not
/// imposed (NIST SP 800-63B).
pub const MIN_PASSWORD_CHARS: usize = 10;

pub fn check_password(field: &str, password: &str) -> Result<(), FieldError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=1024).contains(&n) {
        return Err(FieldError::new(
            field,
            "weak_password",
            format!("`{field}` must be {MIN_PASSWORD_CHARS} to 1,024 characters"),
        ));
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiToken {
    pub id: TokenId,
    pub name: String,
    /// The first characters of the secret, shown in listings so a person can tell tokens apart.
    pub prefix: String,
    pub role: Role,
    /// When set, the token may do only these things (and only those its role allows).
    pub scopes: Option<Vec<Permission>>,
    /// A token with a user acts as that user; one without acts as a service.
    pub user_id: Option<UserId>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
}

impl ApiToken {
    pub fn allows(&self, permission: Permission) -> bool {
        self.role.has(permission)
            && self
                .scopes
                .as_ref()
                .is_none_or(|scopes| scopes.contains(&permission))
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A person signed in to the web pages. The cookie carries a secret whose hash finds this; the
/// CSRF token is what the pages send back with every change.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}

impl Session {
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            parse_email("email", " Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@.com",
        ] {
            assert!(parse_email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_narrow_a_role_but_never_widen_it() {
        let token = ApiToken {
            id: TokenId::new(),
            name: "crm".into(),
            prefix: "sb_abcd".into(),
            role: Role::Agent,
            scopes: Some(vec![Permission::ContactsRead, Permission::UsersWrite]),
            user_id: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            last_used_at: None,
            expires_at: None,
        };
        assert!(token.allows(Permission::ContactsRead));
        assert!(!token.allows(Permission::ContactsWrite));
        assert!(!token.allows(Permission::UsersWrite));
    }
}
