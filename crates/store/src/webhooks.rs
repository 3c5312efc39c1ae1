//! The webhook inbox: provider webhooks are committed here before they are answered, so none is
//! lost, and each body is kept once however often the provider delivers it. A webhook's row is
//! never changed: until it is processed its id waits in `webhook_pending`, and what processing
//! came to is kept in `webhook_outcomes`.

use time::OffsetDateTime;

use crate::rows::{at, ms};
use crate::{Result, Store};

/// Ids marked by one statement: well under SQLite's and PostgreSQL's limits on parameters.
const MARK_CHUNK: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    pub id: String,
    pub provider: String,
    pub sender_id: Option<String>,
    /// A digest of the body: a redelivery of the same body is recognised by it.
    pub dedupe_key: String,
    pub body: String,
    pub received_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: String,
    provider: String,
    sender_id: Option<String>,
    dedupe_key: String,
    body: String,
    received_at: i64,
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
        }
    }
}

impl Store {
    /// Stores a webhook; returns false when the same body was stored before.
    pub async fn store_webhook(&self, event: &WebhookEvent) -> Result<bool> {
        let fresh = self.store_webhooks(std::slice::from_ref(event)).await?;
        Ok(fresh.first().copied().unwrap_or(false))
    }

    /// Stores webhooks all at once (a group commit): one statement, or past its rows one
    /// transaction; for each, whether it is new. A body stored before, or twice in the batch,
    /// is new only the first time.
    pub async fn store_webhooks(&self, events: &[WebhookEvent]) -> Result<Vec<bool>> {
        // Six parameters a row, well under both engines' limit on parameters per statement,
        // and as many rows as the inbox's writer commits at once: its batches are one
        // statement, written without a transaction around it.
        const ROWS_PER_STATEMENT: usize = 1024;
        macro_rules! insert_webhooks {
            ($tx:ident, $chunk:expr) => {{
                use crate::bulk::Kind;
                const KINDS: [Kind; 6] = [
                    Kind::Text,
                    Kind::Text,
                    Kind::Text,
                    Kind::Text,
                    Kind::Text,
                    Kind::Int,
                ];
                let chunk: &[WebhookEvent] = $chunk;
                let mut rows = crate::bulk::Rows::with_capacity(&KINDS, chunk.len());
                for event in chunk {
                    rows.push([
                        event.id.as_str().into(),
                        event.provider.as_str().into(),
                        event.sender_id.clone().into(),
                        event.dedupe_key.as_str().into(),
                        event.body.as_str().into(),
                        ms(event.received_at).into(),
                    ]);
                }
                let insert = format!(
                    "INSERT INTO webhook_events (id, provider, sender_id, dedupe_key, body, \
                     received_at) {} ON CONFLICT (provider, dedupe_key) DO NOTHING",
                    crate::bulk::source(&*$tx, &rows, 1)
                );
                // A new webhook is pending: by a trigger on SQLite, here in the same
                // statement on PostgreSQL.
                let sql = match crate::bulk::backend(&*$tx) {
                    crate::Backend::Sqlite => format!("{insert} RETURNING id"),
                    crate::Backend::Postgres => format!(
                        "WITH fresh AS ({insert} RETURNING id, received_at), \
                         pending AS (INSERT INTO webhook_pending (id, received_at) \
                         SELECT id, received_at FROM fresh) SELECT id FROM fresh"
                    ),
                };
                let sql = crate::rows::sql_for(&*$tx, sql);
                let query = sqlx::query_as::<_, (String,)>(&sql);
                crate::bulk::bind(&*$tx, query, rows)
                    .fetch_all(&mut *$tx)
                    .await?
            }};
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let inserted: std::collections::HashSet<String> = if events.len() <= ROWS_PER_STATEMENT {
            let rows = write_one!(self.inbox(), |db| insert_webhooks!(db, events));
            rows.into_iter().map(|(id,)| id).collect()
        } else {
            write_tx!(self.inbox(), |tx| {
                let mut inserted = std::collections::HashSet::new();
                for chunk in events.chunks(ROWS_PER_STATEMENT) {
                    inserted.extend(insert_webhooks!(tx, chunk).into_iter().map(|(id,)| id));
                }
                inserted
            })
        };
        Ok(events.iter().map(|e| inserted.contains(&e.id)).collect())
    }

    /// Webhooks not yet processed, oldest first.
    pub async fn pending_webhooks(&self, limit: i64) -> Result<Vec<WebhookEvent>> {
        self.pending_webhooks_except(&[], limit).await
    }

    /// Webhooks not yet processed, oldest first, leaving out those named: the next batch,
    /// read while the one before it is still being applied and not yet marked processed.
    /// (Reading on from the last one read instead would pass over a webhook received earlier
    /// but committed later, until the backlog ran dry.)
    pub async fn pending_webhooks_except(
        &self,
        applying: &[&str],
        limit: i64,
    ) -> Result<Vec<WebhookEvent>> {
        let rows: Vec<WebhookRow> = read_pool!(self.inbox(), |db| {
            let (list, next) = crate::bulk::in_list(db, 1, true);
            let sql = format!(
                "SELECT e.id, e.provider, e.sender_id, e.dedupe_key, e.body, e.received_at \
                 FROM webhook_pending p JOIN webhook_events e ON e.id = p.id \
                 WHERE p.id {list} ORDER BY p.received_at, p.id LIMIT ${next}"
            );
            let sql = crate::rows::sql_for(db, sql);
            let query = crate::bulk::bind_list(db, sqlx::query_as(&sql), applying);
            query.bind(limit).fetch_all(db).await?
        });
        Ok(rows.into_iter().map(WebhookEvent::from).collect())
    }

    /// Records many processed webhooks, with their outcomes, all at once. A webhook marked
    /// before keeps its first outcome.
    pub async fn mark_webhooks_processed(
        &self,
        outcomes: &[(String, String)],
        now: OffsetDateTime,
    ) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        // Most webhooks of a batch end alike ("messages=1 ..."): one statement per outcome,
        // and per few hundred ids, rather than one per webhook.
        let mut by_outcome: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (id, outcome) in outcomes {
            by_outcome.entry(outcome).or_default().push(id);
        }
        macro_rules! mark {
            ($tx:ident, $outcome:expr, $ids:expr) => {{
                let ids: &[&str] = $ids;
                let (list, _) = crate::bulk::in_list(&*$tx, 3, false);
                match crate::bulk::backend(&*$tx) {
                    // No data-modifying WITH on SQLite: the outcomes, then the pending gone.
                    crate::Backend::Sqlite => {
                        let sql = format!(
                            "INSERT INTO webhook_outcomes (id, processed_at, outcome) \
                             SELECT id, $1, $2 FROM webhook_pending WHERE id {list} \
                             ON CONFLICT DO NOTHING"
                        );
                        let query = sqlx::query(&sql).bind(ms(now)).bind($outcome);
                        let query = crate::bulk::bind_list(&*$tx, query, ids);
                        query.execute(&mut *$tx).await?;
                        let (list, _) = crate::bulk::in_list(&*$tx, 1, false);
                        let sql = format!("DELETE FROM webhook_pending WHERE id {list}");
                        let query = crate::bulk::bind_list(&*$tx, sqlx::query(&sql), ids);
                        query.execute(&mut *$tx).await?;
                    }
                    crate::Backend::Postgres => {
                        let sql = format!(
                            "WITH done AS (DELETE FROM webhook_pending WHERE id {list} \
                             RETURNING id) INSERT INTO webhook_outcomes (id, processed_at, \
                             outcome) SELECT id, $1, $2 FROM done ON CONFLICT DO NOTHING"
                        );
                        let query = sqlx::query(&sql).bind(ms(now)).bind($outcome);
                        let query = crate::bulk::bind_list(&*$tx, query, ids);
                        query.execute(&mut *$tx).await?;
                    }
                }
            }};
        }
        match by_outcome.iter().next() {
            // The usual batch on PostgreSQL: one outcome for all, one statement, no
            // transaction around it.
            Some((outcome, ids))
                if by_outcome.len() == 1
                    && ids.len() <= MARK_CHUNK
                    && self.backend() == crate::Backend::Postgres =>
            {
                write_one!(self.inbox(), |db| mark!(db, *outcome, ids));
            }
            _ => write_tx!(self.inbox(), |tx| {
                for (outcome, ids) in &by_outcome {
                    for chunk in ids.chunks(MARK_CHUNK) {
                        mark!(tx, *outcome, chunk);
                    }
                }
            }),
        }
        Ok(())
    }

    /// When a webhook was processed and what it came to; `None` while it waits.
    pub async fn webhook_outcome(&self, id: &str) -> Result<Option<(OffsetDateTime, String)>> {
        let row: Option<(i64, String)> = read_pool!(self.inbox(), |db| {
            sqlx::query_as("SELECT processed_at, outcome FROM webhook_outcomes WHERE id = $1")
                .bind(id)
                .fetch_optional(db)
                .await?
        });
        Ok(row.map(|(processed_at, outcome)| (at(processed_at), outcome)))
    }

    /// Webhooks stored and not yet processed.
    pub async fn count_pending_webhooks(&self) -> Result<i64> {
        let (n,): (i64,) = read_pool!(self.inbox(), |db| {
            sqlx::query_as("SELECT COUNT(*) FROM webhook_pending")
                .fetch_one(db)
                .await?
        });
        Ok(n)
    }

    /// Whether any webhook waits to be processed: one row looked for, where counting them all
    /// reads every one (and on PostgreSQL every row processed but not yet vacuumed away).
    pub async fn any_pending_webhooks(&self) -> Result<bool> {
        let found: Option<(String,)> = read_pool!(self.inbox(), |db| {
            sqlx::query_as("SELECT id FROM webhook_pending LIMIT 1")
                .fetch_optional(db)
                .await?
        });
        Ok(found.is_some())
    }

    pub async fn count_webhooks(&self) -> Result<i64> {
        let (n,): (i64,) = read_pool!(self.inbox(), |db| {
            sqlx::query_as("SELECT COUNT(*) FROM webhook_events")
                .fetch_one(db)
                .await?
        });
        Ok(n)
    }
}
