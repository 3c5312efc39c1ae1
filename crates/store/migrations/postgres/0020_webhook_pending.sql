-- What waits to be processed is a small table of its own, and what processing came to
-- another: the webhook's own row (its body, about a kilobyte) is written once and never
-- updated. Marking a webhook processed rewrote that row whole, and through every index,
-- since the pending index's condition named the column it set.
-- No foreign keys to webhook_events: both are written only beside it, by the same statement,
-- and every check would cost each webhook a lookup.
CREATE TABLE webhook_pending (
    id          TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL
);
CREATE INDEX ix_webhook_pending__order ON webhook_pending (received_at, id);
CREATE TABLE webhook_outcomes (
    id           TEXT PRIMARY KEY,
    processed_at BIGINT NOT NULL,
    outcome      TEXT NOT NULL
);
INSERT INTO webhook_pending (id, received_at)
    SELECT id, received_at FROM webhook_events WHERE processed_at IS NULL;
INSERT INTO webhook_outcomes (id, processed_at, outcome)
    SELECT id, processed_at, COALESCE(outcome, '') FROM webhook_events
    WHERE processed_at IS NOT NULL;
DROP INDEX ix_webhook_events__pending;
ALTER TABLE webhook_events DROP COLUMN processed_at, DROP COLUMN outcome;
