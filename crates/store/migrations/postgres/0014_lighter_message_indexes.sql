-- Every message paid for two indexes that only some messages are ever looked up by: the
-- window reads a customer's inbound messages, the messaging limit a sender's
-- business-initiated ones. Each index now holds only those, so a reply skips both and an
-- inbound message the second; the queries name the same condition, which is what lets the
-- planner use a partial index.
DROP INDEX ix_messages__business_initiated;
CREATE INDEX ix_messages__business_initiated ON messages (sender_id, created_at)
    WHERE business_initiated;
DROP INDEX ix_messages__inbound;
CREATE INDEX ix_messages__inbound ON messages (contact_id, sender_id)
    WHERE direction = 'inbound';
