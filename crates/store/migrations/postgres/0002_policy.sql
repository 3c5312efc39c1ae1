-- Templates, consent, policy decisions, the job queue and account settings.

ALTER TABLE messages ADD COLUMN business_initiated BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE messages ADD COLUMN tag TEXT;
ALTER TABLE messages ADD COLUMN redacted BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE messages ADD COLUMN send_at BIGINT;
ALTER TABLE messages ADD COLUMN actor TEXT;
-- The rolling 24-hour messaging limit counts business-initiated recipients per sender.
CREATE INDEX ix_messages__business_initiated ON messages (sender_id, business_initiated, created_at);
CREATE INDEX ix_messages__inbound ON messages (contact_id, sender_id, direction);

ALTER TABLE contacts ADD COLUMN whatsapp_unavailable_at BIGINT;

CREATE TABLE templates (
    id                   TEXT PRIMARY KEY,
    sender_id            TEXT NOT NULL REFERENCES senders (id),
    name                 TEXT NOT NULL,
    locale               TEXT NOT NULL,
    content              JSONB NOT NULL,
    status               TEXT NOT NULL,
    status_reason        TEXT,
    recontact            BOOLEAN NOT NULL DEFAULT FALSE,
    provider_template_id TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE UNIQUE INDEX ux_templates__locale ON templates (sender_id, name, locale);

CREATE TABLE template_transitions (
    template_id TEXT NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT,
    PRIMARY KEY (template_id, seq)
);

-- Append-only: rows are inserted, never updated or deleted.
CREATE TABLE consent_events (
    id         TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    channel    TEXT NOT NULL,
    status     TEXT NOT NULL,
    source     TEXT NOT NULL,
    evidence   TEXT,
    actor      TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX ix_consent_events__contact ON consent_events (contact_id, channel, at);

-- Every policy decision, allowed or refused, with the facts it used (audit trail).
CREATE TABLE policy_decisions (
    id         TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    sender_id  TEXT,
    contact_id TEXT,
    channel    TEXT,
    allowed    BOOLEAN NOT NULL,
    code       TEXT,
    reason     TEXT,
    kind       TEXT,
    message_id TEXT,
    dry_run    BOOLEAN NOT NULL,
    request    JSONB NOT NULL,
    facts      JSONB NOT NULL
);
CREATE INDEX ix_policy_decisions__contact ON policy_decisions (contact_id, at);

CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    queue       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    payload     JSONB NOT NULL,
    dedupe_key  TEXT,
    status      TEXT NOT NULL,
    attempt     BIGINT NOT NULL DEFAULT 0,
    run_at      BIGINT NOT NULL,
    expires_at  BIGINT,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX ux_jobs__dedupe_key ON jobs (dedupe_key);
CREATE INDEX ix_jobs__claim ON jobs (queue, status, run_at);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      JSONB NOT NULL,
    updated_at BIGINT NOT NULL
);
