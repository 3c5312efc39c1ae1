-- Conversations by customer are found through the unique index on (contact_id, sender_id),
-- whose first column this index repeated; on PostgreSQL every conversation an inbound message
-- moved paid for it again (the update changes indexed columns, so every index gets an entry).
DROP INDEX ix_conversations__contact;
