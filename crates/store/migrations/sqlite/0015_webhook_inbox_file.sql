-- The webhook inbox now lives in a database file of its own (migrations/sqlite-inbox); its
-- rows were copied there when the store opened, before this migration ran.
DROP TABLE webhook_events;
