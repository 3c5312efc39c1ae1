-- The inbox at 100,000 conversations (issue 5): each list it asks for is read in its order
-- from an index, the tab counts from indexes alone.

-- Everything, newest first (and the channel filter over it).
CREATE INDEX ix_conversations__activity ON conversations (activity_at, id);
-- Everyone waiting, longest first, whatever the state.
CREATE INDEX ix_conversations__waiting ON conversations (waiting_since, id)
    WHERE waiting_since IS NOT NULL;
-- A sender's conversations, newest first; it serves everything the index on the sender alone
-- did.
CREATE INDEX ix_conversations__sender_activity ON conversations (sender_id, activity_at, id);
DROP INDEX ix_conversations__sender;
-- A sender's tab, and the counts of an agent's tabs (an agent sees some senders only).
CREATE INDEX ix_conversations__sender_state ON conversations (sender_id, state, activity_at, id);
-- A sender's customers waiting, longest first.
CREATE INDEX ix_conversations__sender_waiting ON conversations (sender_id, waiting_since, id)
    WHERE waiting_since IS NOT NULL;

-- Search stays a scan here: SQLite's trigram tables (its 0009) have no counterpart in this
-- schema yet; pg_trgm indexes would be it.
