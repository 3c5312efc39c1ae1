//! Users and the senders they may use.

use std::collections::BTreeMap;

use switchboard_core::user::User;
use switchboard_core::{SenderId, UserId};

use crate::rows::{at, ms, parse, parse_opt};
use crate::{Page, PageRequest, Result, Store, StoreError};

/// A user row joined with one of its permitted senders (or none).
#[derive(sqlx::FromRow)]
struct UserSenderRow {
    id: String,
    email: String,
    name: String,
    role: String,
    password_hash: Option<String>,
    default_sender_id: Option<String>,
    created_at: i64,
    updated_at: i64,
    permitted_sender_id: Option<String>,
}

/// Folds joined rows into users, keeping the rows' order.
fn fold_users(rows: Vec<UserSenderRow>) -> Result<Vec<User>> {
    let mut users: Vec<User> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for row in rows {
        let slot = match index.get(&row.id) {
            Some(&i) => i,
            None => {
                users.push(User {
                    id: parse("users.id", &row.id)?,
                    email: row.email,
                    name: row.name,
                    role: parse("users.role", &row.role)?,
                    password_hash: row.password_hash,
                    default_sender_id: parse_opt(
                        "users.default_sender_id",
                        row.default_sender_id.as_deref(),
                    )?,
                    permitted_sender_ids: Vec::new(),
                    created_at: at(row.created_at),
                    updated_at: at(row.updated_at),
                });
                index.insert(row.id, users.len() - 1);
                users.len() - 1
            }
        };
        if let Some(sender) = row.permitted_sender_id {
            users[slot]
                .permitted_sender_ids
                .push(parse("user_senders.sender_id", &sender)?);
        }
    }
    Ok(users)
}

const SELECT_JOINED: &str = "SELECT u.id, u.email, u.name, u.role, u.password_hash, \
    u.default_sender_id, u.created_at, u.updated_at, us.sender_id AS permitted_sender_id";

/// Refuses a user whose e-mail belongs to another user or who refers to a missing sender,
/// inside the write transaction so the answer cannot go stale before the write.
macro_rules! ensure_user_refs {
    ($tx:ident, $user:expr) => {
        let taken: Option<(String,)> =
            sqlx::query_as("SELECT id FROM users WHERE email = $1 AND id <> $2")
                .bind(&$user.email)
                .bind($user.id.to_string())
                .fetch_optional(&mut *$tx)
                .await?;
        if let Some((existing,)) = taken {
            return Err(StoreError::Conflict {
                field: "email".to_owned(),
                existing_id: Some(existing),
            });
        }
        for (field, sender) in sender_refs($user) {
            let found: Option<(String,)> = sqlx::query_as("SELECT id FROM senders WHERE id = $1")
                .bind(sender.to_string())
                .fetch_optional(&mut *$tx)
                .await?;
            if found.is_none() {
                return Err(StoreError::MissingReference {
                    field: field.to_owned(),
                    id: sender.to_string(),
                });
            }
        }
    };
}

impl Store {
    /// Creates a user with its permitted senders. An e-mail already in use is a
    /// [`StoreError::Conflict`] on `email`; an unknown sender is a
    /// [`StoreError::MissingReference`].
    pub async fn create_user(&self, user: &User) -> Result<()> {
        write_tx!(self, |tx| {
            ensure_user_refs!(tx, user);
            sqlx::query(
                "INSERT INTO users (id, email, name, role, password_hash, default_sender_id, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(user.id.to_string())
            .bind(&user.email)
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(&user.password_hash)
            .bind(user.default_sender_id.map(|s| s.to_string()))
            .bind(ms(user.created_at))
            .bind(ms(user.updated_at))
            .execute(&mut *tx)
            .await?;
            for sender in &user.permitted_sender_ids {
                sqlx::query("INSERT INTO user_senders (user_id, sender_id) VALUES ($1, $2)")
                    .bind(user.id.to_string())
                    .bind(sender.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        });
        Ok(())
    }

    pub async fn get_user(&self, id: UserId) -> Result<User> {
        let sql = format!(
            "{SELECT_JOINED} FROM users u LEFT JOIN user_senders us ON us.user_id = u.id \
             WHERE u.id = $1 ORDER BY us.sender_id"
        );
        let rows: Vec<UserSenderRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(id.to_string())
                .fetch_all(db)
                .await?
        });
        fold_users(rows)?.pop().ok_or(StoreError::NotFound)
    }

    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
        let sql = format!(
            "{SELECT_JOINED} FROM users u LEFT JOIN user_senders us ON us.user_id = u.id \
             WHERE u.email = $1 ORDER BY us.sender_id"
        );
        let rows: Vec<UserSenderRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql).bind(email).fetch_all(db).await?
        });
        Ok(fold_users(rows)?.pop())
    }

    pub async fn list_users(&self, page: &PageRequest) -> Result<Page<User>> {
        let (after, order) = page.keyset("id", 1);
        let (_, outer_order) = page.keyset("u.id", 1);
        let sql = format!(
            "{SELECT_JOINED} FROM (SELECT * FROM users WHERE {after} ORDER BY {order} LIMIT $2) u \
             LEFT JOIN user_senders us ON us.user_id = u.id ORDER BY {outer_order}, us.sender_id"
        );
        let rows: Vec<UserSenderRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(&page.after)
                .bind(page.fetch_limit())
                .fetch_all(db)
                .await?
        });
        Ok(Page::from_overfetch(fold_users(rows)?, page, |u| {
            u.id.to_string()
        }))
    }

    pub async fn count_users(&self) -> Result<i64> {
        let (n,): (i64,) = read_pool!(self, |db| {
            sqlx::query_as("SELECT COUNT(*) FROM users")
                .fetch_one(db)
                .await?
        });
        Ok(n)
    }

    /// Replaces a user's fields and permitted senders.
    pub async fn update_user(&self, user: &User) -> Result<()> {
        write_tx!(self, |tx| {
            ensure_user_refs!(tx, user);
            let updated = sqlx::query(
                "UPDATE users SET email = $2, name = $3, role = $4, password_hash = $5, \
                 default_sender_id = $6, updated_at = $7 WHERE id = $1",
            )
            .bind(user.id.to_string())
            .bind(&user.email)
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(&user.password_hash)
            .bind(user.default_sender_id.map(|s| s.to_string()))
            .bind(ms(user.updated_at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM user_senders WHERE user_id = $1")
                .bind(user.id.to_string())
                .execute(&mut *tx)
                .await?;
            for sender in &user.permitted_sender_ids {
                sqlx::query("INSERT INTO user_senders (user_id, sender_id) VALUES ($1, $2)")
                    .bind(user.id.to_string())
                    .bind(sender.to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        });
        Ok(())
    }

    /// Deletes a user and the tokens that act for them; their contacts and conversations stay,
    /// without an owner or assignee.
    pub async fn delete_user(&self, id: UserId) -> Result<()> {
        self.delete_by_id("users", &id.to_string()).await
    }
}

/// Every sender a user row refers to, with the field that refers to it.
fn sender_refs(user: &User) -> impl Iterator<Item = (&'static str, SenderId)> + '_ {
    user.default_sender_id
        .map(|s| ("default_sender_id", s))
        .into_iter()
        .chain(
            user.permitted_sender_ids
                .iter()
                .map(|s| ("permitted_sender_ids", *s)),
        )
}
