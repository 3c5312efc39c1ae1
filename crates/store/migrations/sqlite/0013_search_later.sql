-- The search index takes new messages in batches, off the path that writes them. Indexing a
-- message from its own statement made the trigram index flush a segment each time (about
-- 35 us a message, a third of recording one); thousands at once cost about 5 us each.
-- A message waits in `messages_search_pending` until the indexer (or a search, which first
-- catches up) takes it; a message is in the index exactly when it is in a conversation and
-- not waiting. The queue holds rowids, not the text: the indexer reads what the message says
-- when it takes it, so an edit meanwhile needs nothing more.
CREATE TABLE messages_search_pending (message_rowid INTEGER PRIMARY KEY);
DROP TRIGGER messages_search_insert;
DROP TRIGGER messages_search_delete;
DROP TRIGGER messages_search_update;
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages
    WHEN new.conversation_id IS NOT NULL BEGIN
    INSERT INTO messages_search_pending (message_rowid) VALUES (new.rowid);
END;
CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_search (messages_search, rowid, text)
        SELECT 'delete', old.rowid, old.text WHERE old.conversation_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM messages_search_pending WHERE message_rowid = old.rowid);
    -- A rowid can be given again after the last row is deleted: nothing of this one stays.
    DELETE FROM messages_search_pending WHERE message_rowid = old.rowid;
END;
CREATE TRIGGER messages_search_update AFTER UPDATE OF text, conversation_id ON messages BEGIN
    INSERT INTO messages_search (messages_search, rowid, text)
        SELECT 'delete', old.rowid, old.text WHERE old.conversation_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM messages_search_pending WHERE message_rowid = old.rowid);
    INSERT OR IGNORE INTO messages_search_pending (message_rowid)
        SELECT new.rowid WHERE new.conversation_id IS NOT NULL;
END;
