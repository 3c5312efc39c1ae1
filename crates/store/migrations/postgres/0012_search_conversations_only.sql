-- Nothing to change here: search on PostgreSQL reads the messages themselves (see 0009), so
-- it has no index for campaign messages to stay out of, as they now do on SQLite.
SELECT 1;
