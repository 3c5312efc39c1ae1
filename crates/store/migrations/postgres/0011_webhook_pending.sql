-- Only webhooks waiting to be processed are indexed for the processor: the index stays as
-- small as the backlog, and marking a webhook processed removes its entry instead of moving
-- it to the end of an index that grows with every webhook ever received.
DROP INDEX ix_webhook_events__pending;
CREATE INDEX ix_webhook_events__pending ON webhook_events (received_at, id)
    WHERE processed_at IS NULL;
