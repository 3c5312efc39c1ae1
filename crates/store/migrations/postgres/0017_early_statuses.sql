-- A status can be processed before the send it speaks of is recorded: Twilio and Messenger
-- name a message only by the id they answer the send with, and their status may come in the
-- moments before that answer is written down. Such a status waits here and is applied as the
-- send is recorded; one never claimed is forgotten after an hour.
CREATE TABLE early_statuses (
    channel             TEXT NOT NULL,
    provider_message_id TEXT NOT NULL,
    status              TEXT NOT NULL,
    at                  BIGINT NOT NULL,
    error_code          TEXT,
    error_provider_code TEXT,
    error_reason        TEXT,
    received_at         BIGINT NOT NULL,
    PRIMARY KEY (channel, provider_message_id, status)
);
CREATE INDEX ix_early_statuses__received_at ON early_statuses (received_at);
