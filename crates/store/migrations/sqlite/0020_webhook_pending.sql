-- Nothing to do in the main file: on SQLite the webhook inbox has a file of its own, where
-- migrations/sqlite-inbox/0002 makes this change.
SELECT 1;
