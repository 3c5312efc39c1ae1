-- Times are epoch milliseconds from the application's clock; ids are UUIDv7 text.

CREATE TABLE senders (
    id                   TEXT PRIMARY KEY,
    channel              TEXT NOT NULL,
    name                 TEXT NOT NULL,
    use_case             TEXT,
    provider_kind        TEXT NOT NULL,
    external_id          TEXT,
    provider_config      TEXT NOT NULL,
    health_status        TEXT NOT NULL,
    quality_rating       TEXT NOT NULL,
    messaging_limit_tier BIGINT,
    token_status         TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE UNIQUE INDEX ux_senders__external_id ON senders (provider_kind, external_id);

CREATE TABLE users (
    id                TEXT PRIMARY KEY,
    email             TEXT NOT NULL,
    name              TEXT NOT NULL,
    role              TEXT NOT NULL,
    password_hash     TEXT,
    default_sender_id TEXT REFERENCES senders (id) ON DELETE SET NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX ux_users__email ON users (email);

CREATE TABLE user_senders (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sender_id TEXT NOT NULL REFERENCES senders (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, sender_id)
);
CREATE INDEX ix_user_senders__sender ON user_senders (sender_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    role         TEXT NOT NULL,
    scopes       TEXT,
    user_id      TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at   BIGINT
);
CREATE UNIQUE INDEX ux_api_tokens__token_hash ON api_tokens (token_hash);

CREATE TABLE contacts (
    id               TEXT PRIMARY KEY,
    name             TEXT,
    phone            TEXT,
    whatsapp_user_id TEXT,
    messenger_psid   TEXT,
    locale           TEXT,
    owner_id         TEXT REFERENCES users (id) ON DELETE SET NULL,
    fields           TEXT NOT NULL DEFAULT '{}',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX ux_contacts__phone ON contacts (phone);
CREATE UNIQUE INDEX ux_contacts__whatsapp_user_id ON contacts (whatsapp_user_id);
CREATE UNIQUE INDEX ux_contacts__messenger_psid ON contacts (messenger_psid);
CREATE INDEX ix_contacts__owner ON contacts (owner_id);

CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    contact_id      TEXT NOT NULL REFERENCES contacts (id),
    sender_id       TEXT NOT NULL REFERENCES senders (id),
    channel         TEXT NOT NULL,
    state           TEXT NOT NULL,
    assignee_id     TEXT REFERENCES users (id) ON DELETE SET NULL,
    last_message_at BIGINT,
    last_inbound_at BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX ux_conversations__contact_sender ON conversations (contact_id, sender_id);
CREATE INDEX ix_conversations__sender ON conversations (sender_id);

CREATE TABLE messages (
    id                    TEXT PRIMARY KEY,
    direction             TEXT NOT NULL,
    channel               TEXT NOT NULL,
    sender_id             TEXT NOT NULL REFERENCES senders (id),
    contact_id            TEXT NOT NULL REFERENCES contacts (id),
    conversation_id       TEXT REFERENCES conversations (id),
    text                  TEXT,
    template              TEXT,
    media                 TEXT,
    channel_template_type TEXT NOT NULL,
    status                TEXT NOT NULL,
    provider_message_id   TEXT,
    error_code            TEXT,
    error_provider_code   TEXT,
    error_reason          TEXT,
    provider_timestamp    BIGINT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE UNIQUE INDEX ux_messages__provider_message_id ON messages (channel, provider_message_id);
CREATE INDEX ix_messages__contact ON messages (contact_id, id);
CREATE INDEX ix_messages__sender ON messages (sender_id, id);
CREATE INDEX ix_messages__conversation ON messages (conversation_id, id);

CREATE TABLE message_status_events (
    message_id          TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq                 BIGINT NOT NULL,
    status              TEXT NOT NULL,
    at                  BIGINT NOT NULL,
    error_code          TEXT,
    error_provider_code TEXT,
    error_reason        TEXT,
    PRIMARY KEY (message_id, seq)
);

-- A retried create with the same key finds the resource the first attempt made.
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    resource_kind TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
