//! Sender IDs and their provider configuration.

use serde_json::Value;
use sqlx::types::Json;
use switchboard_core::sender::{ProviderConfig, Sender, SenderHealth};
use switchboard_core::{Channel, SenderId};
use time::OffsetDateTime;

use crate::rows::{at, enum_text, json_value, ms, parse, word};
use crate::{Page, PageRequest, Result, Store, StoreError};

#[derive(sqlx::FromRow)]
struct SenderRow {
    id: String,
    channel: String,
    name: String,
    use_case: Option<String>,
    provider_config: Json<Value>,
    health_status: String,
    quality_rating: String,
    messaging_limit_tier: Option<i64>,
    token_status: String,
    rate_limit_per_second: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl SenderRow {
    fn into_sender(self) -> Result<Sender> {
        Ok(Sender {
            id: parse("senders.id", &self.id)?,
            channel: parse("senders.channel", &self.channel)?,
            name: self.name,
            use_case: self.use_case,
            provider: json_value::<ProviderConfig>(
                "senders.provider_config",
                self.provider_config.0,
            )?,
            health: SenderHealth {
                status: word("senders.health_status", &self.health_status)?,
                quality_rating: word("senders.quality_rating", &self.quality_rating)?,
                messaging_limit_tier: self.messaging_limit_tier,
                token_status: word("senders.token_status", &self.token_status)?,
            },
            rate_limit_per_second: self
                .rate_limit_per_second
                .map(|r| {
                    u32::try_from(r).map_err(|_| {
                        StoreError::Corrupt(format!("senders.rate_limit_per_second: {r}"))
                    })
                })
                .transpose()?,
            created_at: at(self.created_at),
            updated_at: at(self.updated_at),
        })
    }
}

const COLUMNS: &str = "id, channel, name, use_case, provider_config, health_status, \
    quality_rating, messaging_limit_tier, token_status, rate_limit_per_second, created_at, \
    updated_at";

/// Filters for listing senders.
#[derive(Clone, Debug, Default)]
pub struct SenderFilter {
    pub channel: Option<Channel>,
}

impl Store {
    pub async fn create_sender(&self, sender: &Sender) -> Result<()> {
        let config = Json(&sender.provider);
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO senders (id, channel, name, use_case, provider_kind, external_id, \
                 provider_config, health_status, quality_rating, messaging_limit_tier, \
                 token_status, rate_limit_per_second, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(sender.id.to_string())
            .bind(sender.channel.as_str())
            .bind(&sender.name)
            .bind(&sender.use_case)
            .bind(sender.provider.kind().as_str())
            .bind(sender.provider.external_id())
            .bind(config)
            .bind(enum_text(&sender.health.status))
            .bind(enum_text(&sender.health.quality_rating))
            .bind(sender.health.messaging_limit_tier)
            .bind(enum_text(&sender.health.token_status))
            .bind(sender.rate_limit_per_second.map(i64::from))
            .bind(ms(sender.created_at))
            .bind(ms(sender.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(external_id_conflict)?;
        });
        Ok(())
    }

    pub async fn get_sender(&self, id: SenderId) -> Result<Sender> {
        let sql = format!("SELECT {COLUMNS} FROM senders WHERE id = $1");
        let row: SenderRow = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(id.to_string())
                .fetch_optional(db)
                .await?
                .ok_or(StoreError::NotFound)?
        });
        row.into_sender()
    }

    /// The senders of these ids that exist.
    pub async fn get_senders(&self, ids: &[SenderId]) -> Result<Vec<Sender>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM senders WHERE id IN ({})",
            crate::rows::placeholders(1, ids.len())
        );
        let rows: Vec<SenderRow> = read_pool!(self, |db| {
            let sql = crate::rows::sql_for(db, sql);
            let mut query = sqlx::query_as(&sql);
            for id in ids {
                query = query.bind(id.to_string());
            }
            query.fetch_all(db).await?
        });
        rows.into_iter().map(SenderRow::into_sender).collect()
    }

    pub async fn list_senders(
        &self,
        filter: &SenderFilter,
        page: &PageRequest,
    ) -> Result<Page<Sender>> {
        let (after, order) = page.keyset("id", 2);
        let sql = format!(
            "SELECT {COLUMNS} FROM senders \
             WHERE (CAST($1 AS TEXT) IS NULL OR channel = $1) AND {after} \
             ORDER BY {order} LIMIT $3"
        );
        let rows: Vec<SenderRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(filter.channel.map(Channel::as_str))
                .bind(&page.after)
                .bind(page.fetch_limit())
                .fetch_all(db)
                .await?
        });
        let senders = rows
            .into_iter()
            .map(SenderRow::into_sender)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(senders, page, |s| s.id.to_string()))
    }

    /// Every sender id, for showing what an admin may use.
    pub async fn all_sender_ids(&self) -> Result<Vec<SenderId>> {
        let ids: Vec<(String,)> = read_pool!(self, |db| {
            sqlx::query_as("SELECT id FROM senders ORDER BY id")
                .fetch_all(db)
                .await?
        });
        ids.iter().map(|(id,)| parse("senders.id", id)).collect()
    }

    pub async fn update_sender(&self, sender: &Sender) -> Result<()> {
        let config = Json(&sender.provider);
        let updated = write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE senders SET name = $2, use_case = $3, provider_kind = $4, \
                 external_id = $5, provider_config = $6, health_status = $7, quality_rating = $8, \
                 messaging_limit_tier = $9, token_status = $10, updated_at = $11, \
                 rate_limit_per_second = $12 WHERE id = $1",
            )
            .bind(sender.id.to_string())
            .bind(&sender.name)
            .bind(&sender.use_case)
            .bind(sender.provider.kind().as_str())
            .bind(sender.provider.external_id())
            .bind(config)
            .bind(enum_text(&sender.health.status))
            .bind(enum_text(&sender.health.quality_rating))
            .bind(sender.health.messaging_limit_tier)
            .bind(enum_text(&sender.health.token_status))
            .bind(ms(sender.updated_at))
            .bind(sender.rate_limit_per_second.map(i64::from))
            .execute(&mut *tx)
            .await
            .map_err(external_id_conflict)?
            .rows_affected()
        });
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Records that the provider refused the sender's credentials, touching nothing else: an
    /// admin may be replacing them at this very moment.
    pub async fn mark_token_expired(&self, id: SenderId, now: OffsetDateTime) -> Result<()> {
        write_tx!(self, |tx| {
            sqlx::query("UPDATE senders SET token_status = $2, updated_at = $3 WHERE id = $1")
                .bind(id.to_string())
                .bind(enum_text(&switchboard_core::sender::TokenStatus::Expired))
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Deletes a sender that no message or conversation refers to; one with history is
    /// [`StoreError::InUse`] (its records must stay for the compliance archive).
    pub async fn delete_sender(&self, id: SenderId) -> Result<()> {
        self.delete_by_id("senders", &id.to_string()).await
    }

    /// The sender a provider's webhook is for, by the provider's id for it (phone-number id,
    /// page id, Twilio number or messaging service).
    pub async fn find_sender_by_external_id(
        &self,
        kind: switchboard_core::sender::ProviderKind,
        external_id: &str,
    ) -> Result<Option<Sender>> {
        let sql =
            format!("SELECT {COLUMNS} FROM senders WHERE provider_kind = $1 AND external_id = $2");
        let row: Option<SenderRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(kind.as_str())
                .bind(external_id)
                .fetch_optional(db)
                .await?
        });
        row.map(SenderRow::into_sender).transpose()
    }

    /// Every sender of one provider kind (the handshake looks for a matching verify token).
    pub async fn senders_of_kind(
        &self,
        kind: switchboard_core::sender::ProviderKind,
    ) -> Result<Vec<Sender>> {
        let sql = format!("SELECT {COLUMNS} FROM senders WHERE provider_kind = $1 ORDER BY id");
        let rows: Vec<SenderRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(kind.as_str())
                .fetch_all(db)
                .await?
        });
        rows.into_iter().map(SenderRow::into_sender).collect()
    }
}

/// Two senders cannot share a provider identity: webhooks are routed by it.
fn external_id_conflict(error: sqlx::Error) -> StoreError {
    match StoreError::from(error) {
        StoreError::Conflict { .. } => StoreError::Conflict {
            field: "provider.external_id".to_owned(),
            existing_id: None,
        },
        other => other,
    }
}
