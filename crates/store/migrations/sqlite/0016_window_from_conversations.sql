-- The customer-service window is read from the conversation, which keeps when its customer
-- last wrote, rather than from the customer's whole history of messages: the index of
-- inbound messages by customer served that read alone, and every inbound message paid for it.
DROP INDEX ix_messages__inbound;
