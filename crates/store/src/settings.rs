//! Account-wide settings as JSON documents by key (keyword lists, DLP rules, business hours).

use serde_json::Value;
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::rows::ms;
use crate::{Result, Store};

impl Store {
    pub async fn get_setting(&self, key: &str) -> Result<Option<Value>> {
        let row: Option<(Json<Value>,)> = read_pool!(self, |db| {
            sqlx::query_as("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(db)
                .await?
        });
        Ok(row.map(|(v,)| v.0))
    }

    pub async fn put_setting(&self, key: &str, value: &Value, now: OffsetDateTime) -> Result<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(Json(value))
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Stores `value` under `key` unless something is there already, and returns what is
    /// there now: of several nodes racing to create a setting, one value wins for all.
    pub async fn setting_or_insert(
        &self,
        key: &str,
        value: &Value,
        now: OffsetDateTime,
    ) -> Result<Value> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(Json(value))
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        });
        Ok(self
            .get_setting(key)
            .await?
            .unwrap_or_else(|| value.clone()))
    }
}
