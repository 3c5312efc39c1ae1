-- The webhook inbox in a database file of its own, beside the main one: SQLite lets one
-- connection write to a file at a time, and webhooks must be committed before they are
-- answered, so with the inbox in the main file every answer waited its turn behind the
-- processing of earlier webhooks (and every send). Its own file has its own writer.
-- Processing applies a webhook idempotently and only then marks it here, so nothing needs
-- a transaction across the two files. A sender is referred to by id without a foreign key,
-- which SQLite cannot check across files; the processor finds senders by provider identity.
CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    sender_id    TEXT,
    dedupe_key   TEXT NOT NULL,
    body         TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    outcome      TEXT
);
CREATE UNIQUE INDEX ux_webhook_events__dedupe_key ON webhook_events (provider, dedupe_key);
CREATE INDEX ix_webhook_events__pending ON webhook_events (received_at, id)
    WHERE processed_at IS NULL;
