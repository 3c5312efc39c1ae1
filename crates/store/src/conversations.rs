//! Conversations: the thread between one contact and one sender.

use switchboard_core::{Channel, ContactId, ConversationId, SenderId};
use time::OffsetDateTime;

use crate::rows::{ms, parse};
use crate::{Result, Store};

impl Store {
    /// The conversation of a contact with a sender, created unclaimed if there is none yet.
    pub async fn ensure_conversation(
        &self,
        contact: ContactId,
        sender: SenderId,
        channel: Channel,
        now: OffsetDateTime,
    ) -> Result<ConversationId> {
        // Nearly always it exists already: a read then spares the single writer a transaction.
        let existing: Option<(String,)> = read_pool!(self, |db| {
            sqlx::query_as("SELECT id FROM conversations WHERE contact_id = $1 AND sender_id = $2")
                .bind(contact.to_string())
                .bind(sender.to_string())
                .fetch_optional(db)
                .await?
        });
        if let Some((id,)) = existing {
            return parse("conversations.id", &id);
        }
        let fresh = ConversationId::new();
        let (id,): (String,) = write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO conversations (id, contact_id, sender_id, channel, state, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, 'unclaimed', $5, $5) \
                 ON CONFLICT (contact_id, sender_id) DO NOTHING",
            )
            .bind(fresh.to_string())
            .bind(contact.to_string())
            .bind(sender.to_string())
            .bind(channel.as_str())
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            sqlx::query_as("SELECT id FROM conversations WHERE contact_id = $1 AND sender_id = $2")
                .bind(contact.to_string())
                .bind(sender.to_string())
                .fetch_one(&mut *tx)
                .await?
        });
        parse("conversations.id", &id)
    }

    /// The contact and sender of a conversation.
    pub async fn conversation_pair(&self, id: ConversationId) -> Result<(ContactId, SenderId)> {
        let row: Option<(String, String)> = read_pool!(self, |db| {
            sqlx::query_as("SELECT contact_id, sender_id FROM conversations WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(db)
                .await?
        });
        let (contact, sender) = row.ok_or(crate::StoreError::NotFound)?;
        Ok((
            parse("conversations.contact_id", &contact)?,
            parse("conversations.sender_id", &sender)?,
        ))
    }
}
