-- The webhook inbox: every authenticated provider webhook is stored here before it is answered.
CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    sender_id    TEXT REFERENCES senders (id) ON DELETE SET NULL,
    dedupe_key   TEXT NOT NULL,
    body         TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    outcome      TEXT
);
CREATE UNIQUE INDEX ux_webhook_events__dedupe_key ON webhook_events (provider, dedupe_key);
CREATE INDEX ix_webhook_events__pending ON webhook_events (processed_at, received_at);
