-- The inbox at 100,000 conversations (issue 5): each list it asks for is read in its order
-- from an index, the tab counts from indexes alone, and a search looks its words up instead of
-- reading every message.

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

-- Substring search, any case, over messages' text and contacts' names and phones: trigram
-- indexes answer `"words"` with the rows that contain them. They index the tables' own rows
-- (external content) by rowid, which the triggers keep in step; messages and contacts are
-- never VACUUMed by Switchboard, which is what could renumber a rowid.
CREATE VIRTUAL TABLE messages_search USING fts5 (
    text, content = 'messages', content_rowid = 'rowid', tokenize = 'trigram'
);
INSERT INTO messages_search (messages_search) VALUES ('rebuild');
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_search (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_search (messages_search, rowid, text)
        VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER messages_search_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_search (messages_search, rowid, text)
        VALUES ('delete', old.rowid, old.text);
    INSERT INTO messages_search (rowid, text) VALUES (new.rowid, new.text);
END;

CREATE VIRTUAL TABLE contacts_search USING fts5 (
    name, phone, content = 'contacts', content_rowid = 'rowid', tokenize = 'trigram'
);
INSERT INTO contacts_search (contacts_search) VALUES ('rebuild');
CREATE TRIGGER contacts_search_insert AFTER INSERT ON contacts BEGIN
    INSERT INTO contacts_search (rowid, name, phone) VALUES (new.rowid, new.name, new.phone);
END;
CREATE TRIGGER contacts_search_delete AFTER DELETE ON contacts BEGIN
    INSERT INTO contacts_search (contacts_search, rowid, name, phone)
        VALUES ('delete', old.rowid, old.name, old.phone);
END;
CREATE TRIGGER contacts_search_update AFTER UPDATE OF name, phone ON contacts BEGIN
    INSERT INTO contacts_search (contacts_search, rowid, name, phone)
        VALUES ('delete', old.rowid, old.name, old.phone);
    INSERT INTO contacts_search (rowid, name, phone) VALUES (new.rowid, new.name, new.phone);
END;
