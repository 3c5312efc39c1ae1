-- The inbox's search finds conversations, so only messages in one are indexed for it. A
-- campaign's messages belong to none until their customer answers (then the message joins
-- the answer's conversation and is indexed): a million of them no longer each pay for the
-- trigram index, which cost more than the rest of writing the message.
DROP TRIGGER messages_search_insert;
DROP TRIGGER messages_search_delete;
DROP TRIGGER messages_search_update;
INSERT INTO messages_search (messages_search, rowid, text)
    SELECT 'delete', rowid, text FROM messages WHERE conversation_id IS NULL;
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages
    WHEN new.conversation_id IS NOT NULL BEGIN
    INSERT INTO messages_search (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER messages_search_delete AFTER DELETE ON messages
    WHEN old.conversation_id IS NOT NULL BEGIN
    INSERT INTO messages_search (messages_search, rowid, text)
        VALUES ('delete', old.rowid, old.text);
END;
-- One trigger, so that the old entry always goes before the new one comes.
CREATE TRIGGER messages_search_update AFTER UPDATE OF text, conversation_id ON messages BEGIN
    INSERT INTO messages_search (messages_search, rowid, text)
        SELECT 'delete', old.rowid, old.text WHERE old.conversation_id IS NOT NULL;
    INSERT INTO messages_search (rowid, text)
        SELECT new.rowid, new.text WHERE new.conversation_id IS NOT NULL;
END;
