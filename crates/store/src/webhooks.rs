//! The webhook inbox: provider webhooks are committed here before they are answered, so none is
//! lost, and each body is kept once however often the provider delivers it.

use time::OffsetDateTime;

use crate::rows::{at, ms};
use crate::{Result, Store};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    pub id: String,
    pub provider: String,
    pub sender_id: Option<String>,
    /// A digest of the body: a redelivery of the same body is recognised by it.
    pub dedupe_key: String,
    pub body: String,
    pub received_at: OffsetDateTime,
    pub processed_at: Option<OffsetDateTime>,
    pub outcome: Option<String>,
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: String,
    provider: String,
    sender_id: Option<String>,
    dedupe_key: String,
    body: String,
    received_at: i64,
    processed_at: Option<i64>,
    outcome: Option<String>,
}

impl From<WebhookRow> for WebhookEvent {
    fn from(r: WebhookRow) -> Self {
        WebhookEvent {
            id: r.id,
            provider: r.provider,
            sender_id: r.sender_id,
            dedupe_key: r.dedupe_key,
            body: r.body,
            received_at: at(r.received_at),
            processed_at: r.processed_at.map(at),
            outcome: r.outcome,
        }
    }
}

impl Store {
    /// Stores a webhook; returns false when the same body was stored before.
    pub async fn store_webhook(&self, event: &WebhookEvent) -> Result<bool> {
        let inserted = write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO webhook_events (id, provider, sender_id, dedupe_key, body, \
                 received_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (provider, dedupe_key) DO NOTHING",
            )
            .bind(&event.id)
            .bind(&event.provider)
            .bind(&event.sender_id)
            .bind(&event.dedupe_key)
            .bind(&event.body)
            .bind(ms(event.received_at))
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        Ok(inserted == 1)
    }

    /// Webhooks not yet processed, oldest first.
    pub async fn pending_webhooks(&self, limit: i64) -> Result<Vec<WebhookEvent>> {
        let rows: Vec<WebhookRow> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT id, provider, sender_id, dedupe_key, body, received_at, processed_at, \
                 outcome FROM webhook_events WHERE processed_at IS NULL \
                 ORDER BY received_at, id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(db)
            .await?
        });
        Ok(rows.into_iter().map(WebhookEvent::from).collect())
    }

    pub async fn mark_webhook_processed(
        &self,
        id: &str,
        outcome: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE webhook_events SET processed_at = $2, outcome = $3 \
                 WHERE id = $1 AND processed_at IS NULL",
            )
            .bind(id)
            .bind(ms(now))
            .bind(outcome)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    pub async fn count_webhooks(&self) -> Result<i64> {
        let (n,): (i64,) = read_pool!(self, |db| {
            sqlx::query_as("SELECT COUNT(*) FROM webhook_events")
                .fetch_one(db)
                .await?
        });
        Ok(n)
    }
}
