//! The consent ledger: appended to, never changed.

use switchboard_core::consent::ConsentEvent;
use switchboard_core::{Channel, ContactId};

use crate::rows::{at, ms, parse, word};
use crate::{Result, Store, StoreError};

#[derive(sqlx::FromRow)]
struct ConsentRow {
    id: String,
    contact_id: String,
    channel: String,
    status: String,
    source: String,
    evidence: Option<String>,
    actor: String,
    at: i64,
}

impl ConsentRow {
    fn into_event(self) -> Result<ConsentEvent> {
        Ok(ConsentEvent {
            id: parse("consent_events.id", &self.id)?,
            contact_id: parse("consent_events.contact_id", &self.contact_id)?,
            channel: parse("consent_events.channel", &self.channel)?,
            status: word("consent_events.status", &self.status)?,
            source: word("consent_events.source", &self.source)?,
            evidence: self.evidence,
            actor: self.actor,
            at: at(self.at),
        })
    }
}

impl Store {
    pub async fn append_consent(&self, event: &ConsentEvent) -> Result<()> {
        write_tx!(self, |tx| {
            insert_consent_event!(tx, event);
        });
        Ok(())
    }

    /// A contact's ledger, oldest first, on one channel or all.
    pub async fn consent_events(
        &self,
        contact: ContactId,
        channel: Option<Channel>,
    ) -> Result<Vec<ConsentEvent>> {
        let rows: Vec<ConsentRow> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT id, contact_id, channel, status, source, evidence, actor, at \
                 FROM consent_events WHERE contact_id = $1 \
                 AND (CAST($2 AS TEXT) IS NULL OR channel = $2) ORDER BY at, id",
            )
            .bind(contact.to_string())
            .bind(channel.map(Channel::as_str))
            .fetch_all(db)
            .await?
        });
        rows.into_iter().map(ConsentRow::into_event).collect()
    }

    /// The ledgers of many contacts on one channel, oldest first (each contact's entries in
    /// the order [`Store::consent_events`] gives them).
    pub async fn consent_events_of(
        &self,
        contacts: &[ContactId],
        channel: Channel,
    ) -> Result<Vec<ConsentEvent>> {
        if contacts.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<ConsentRow> = read_pool!(self, |db| {
            let (list, _) = crate::bulk::in_list(db, 2, false);
            let sql = format!(
                "SELECT id, contact_id, channel, status, source, evidence, actor, at \
                 FROM consent_events WHERE channel = $1 AND contact_id {list} ORDER BY at, id"
            );
            let sql = crate::rows::sql_for(db, sql);
            let query = sqlx::query_as(&sql).bind(channel.as_str());
            crate::bulk::bind_list(db, query, contacts)
                .fetch_all(db)
                .await?
        });
        rows.into_iter().map(ConsentRow::into_event).collect()
    }

    /// Marks that WhatsApp told us this contact has no WhatsApp (R4.3a), or clears it.
    pub async fn set_whatsapp_unavailable(
        &self,
        contact: ContactId,
        since: Option<time::OffsetDateTime>,
    ) -> Result<()> {
        let updated = write_tx!(self, |tx| {
            sqlx::query("UPDATE contacts SET whatsapp_unavailable_at = $2 WHERE id = $1")
                .bind(contact.to_string())
                .bind(since.map(ms))
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn whatsapp_unavailable_since(
        &self,
        contact: ContactId,
    ) -> Result<Option<time::OffsetDateTime>> {
        let row: Option<(Option<i64>,)> = read_pool!(self, |db| {
            sqlx::query_as("SELECT whatsapp_unavailable_at FROM contacts WHERE id = $1")
                .bind(contact.to_string())
                .fetch_optional(db)
                .await?
        });
        Ok(row.ok_or(StoreError::NotFound)?.0.map(at))
    }
}
