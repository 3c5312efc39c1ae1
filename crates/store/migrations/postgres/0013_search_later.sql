-- Nothing to change here: search on PostgreSQL reads the messages themselves (see 0009); on
-- SQLite this migration moves indexing for search off the path that writes a message.
SELECT 1;
