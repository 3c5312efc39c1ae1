-- A sender's own send rate (messages per second); NULL means the default.
ALTER TABLE senders ADD COLUMN rate_limit_per_second BIGINT;

-- When a job was taken over from a worker that stopped mid-run (its lease expired). A send
-- job with this set may have reached the provider already.
ALTER TABLE jobs ADD COLUMN interrupted_at BIGINT;
