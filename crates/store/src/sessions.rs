//! Web sessions. As with API tokens, only a SHA-256 hash of the cookie's secret is stored: the
//! secret is 256 random bits, so a slow hash would cost every page view and protect nothing.

use switchboard_core::user::Session;
use switchboard_core::{SessionId, UserId};
use time::OffsetDateTime;

use crate::rows::{at, ms, parse};
use crate::{Result, Store, StoreError};

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    user_id: String,
    csrf_token: String,
    created_at: i64,
    expires_at: i64,
    last_seen_at: i64,
}

impl SessionRow {
    fn into_session(self) -> Result<Session> {
        Ok(Session {
            id: parse("sessions.id", &self.id)?,
            user_id: parse("sessions.user_id", &self.user_id)?,
            csrf_token: self.csrf_token,
            created_at: at(self.created_at),
            expires_at: at(self.expires_at),
            last_seen_at: at(self.last_seen_at),
        })
    }
}

const COLUMNS: &str = "id, user_id, csrf_token, created_at, expires_at, last_seen_at";

impl Store {
    /// Stores a session under the hash of its secret. A user that no longer exists is a
    /// [`StoreError::MissingReference`] on `user_id`.
    pub async fn create_session(&self, session: &Session, secret_hash: &str) -> Result<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO sessions (id, secret_hash, user_id, csrf_token, created_at, \
                 expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(session.id.to_string())
            .bind(secret_hash)
            .bind(session.user_id.to_string())
            .bind(&session.csrf_token)
            .bind(ms(session.created_at))
            .bind(ms(session.expires_at))
            .bind(ms(session.last_seen_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::InUse => StoreError::MissingReference {
                    field: "user_id".to_owned(),
                    id: session.user_id.to_string(),
                },
                other => other,
            })?;
        });
        Ok(())
    }

    /// The session whose secret hashes to `secret_hash`, expired or not: the caller decides.
    pub async fn find_session_by_hash(&self, secret_hash: &str) -> Result<Option<Session>> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE secret_hash = $1");
        let row: Option<SessionRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(secret_hash)
                .fetch_optional(db)
                .await?
        });
        row.map(SessionRow::into_session).transpose()
    }

    /// Records activity and moves the expiry (sliding sessions).
    pub async fn touch_session(
        &self,
        id: SessionId,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        write_tx!(self, |tx| {
            sqlx::query("UPDATE sessions SET last_seen_at = $2, expires_at = $3 WHERE id = $1")
                .bind(id.to_string())
                .bind(ms(now))
                .bind(ms(expires_at))
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Ends a session; ending one that is already gone is not an error (a double logout).
    pub async fn delete_session(&self, id: SessionId) -> Result<()> {
        write_tx!(self, |tx| {
            sqlx::query("DELETE FROM sessions WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Ends every session of a user (after a password change, say); the number ended.
    pub async fn delete_user_sessions(&self, user_id: UserId) -> Result<u64> {
        let n = write_tx!(self, |tx| {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n)
    }

    /// Removes sessions that expired before `now`; the number removed.
    pub async fn delete_expired_sessions(&self, now: OffsetDateTime) -> Result<u64> {
        let n = write_tx!(self, |tx| {
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(ms(now))
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n)
    }
}
