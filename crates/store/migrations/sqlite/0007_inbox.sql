-- The inbox (R5): what the conversation list shows and sorts by is kept on the conversation
-- itself, so that listing 100,000 threads reads one index and never the messages table.

-- Newest activity: the latest message, or the creation of a thread with none yet.
ALTER TABLE conversations ADD COLUMN activity_at BIGINT NOT NULL DEFAULT 0;
-- Since when the customer has waited for an answer; NULL when the business spoke last.
ALTER TABLE conversations ADD COLUMN waiting_since BIGINT;
ALTER TABLE conversations ADD COLUMN unread_count BIGINT NOT NULL DEFAULT 0;
-- The start of the latest message and who wrote it.
ALTER TABLE conversations ADD COLUMN preview TEXT;
ALTER TABLE conversations ADD COLUMN preview_direction TEXT;

UPDATE conversations SET activity_at = COALESCE(last_message_at, created_at);
-- Open conversations where the customer spoke last are waiting, since their latest message.
UPDATE conversations SET waiting_since = last_message_at
WHERE state <> 'closed' AND (SELECT m.direction FROM messages m
    WHERE m.conversation_id = conversations.id ORDER BY m.id DESC LIMIT 1) = 'inbound';
UPDATE conversations SET
    preview = (SELECT COALESCE(m.text, '') FROM messages m
               WHERE m.conversation_id = conversations.id ORDER BY m.id DESC LIMIT 1),
    preview_direction = (SELECT m.direction FROM messages m
               WHERE m.conversation_id = conversations.id ORDER BY m.id DESC LIMIT 1);

CREATE INDEX ix_conversations__state_activity ON conversations (state, activity_at, id);
CREATE INDEX ix_conversations__assignee_activity
    ON conversations (assignee_id, state, activity_at, id);
CREATE INDEX ix_conversations__state_waiting ON conversations (state, waiting_since, id);
CREATE INDEX ix_conversations__contact ON conversations (contact_id);

-- Every move of a conversation, with who made it and when (R5.2).
CREATE TABLE conversation_events (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    action          TEXT NOT NULL,
    from_state      TEXT NOT NULL,
    to_state        TEXT NOT NULL,
    assignee_id     TEXT,
    actor           TEXT NOT NULL,
    at              BIGINT NOT NULL
);
CREATE INDEX ix_conversation_events__conversation ON conversation_events (conversation_id, id);
