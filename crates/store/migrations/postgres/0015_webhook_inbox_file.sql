-- Nothing to do on PostgreSQL: it writes from many connections at once, so the webhook inbox
-- stays in the main database. SQLite moves it to a file of its own in this step.
SELECT 1;
