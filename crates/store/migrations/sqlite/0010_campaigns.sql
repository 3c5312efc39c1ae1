-- Contact lists (R6.1) and campaigns with their per-recipient hopper (R6.2-R6.6).

CREATE TABLE contact_lists (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    -- The filter a list was built from, kept as evidence of how it was made.
    filter      TEXT,
    created_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX ux_contact_lists__name ON contact_lists (name);

CREATE TABLE contact_list_members (
    list_id    TEXT NOT NULL REFERENCES contact_lists (id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    added_at   BIGINT NOT NULL,
    PRIMARY KEY (list_id, contact_id)
);
CREATE INDEX ix_contact_list_members__contact ON contact_list_members (contact_id);

CREATE TABLE campaigns (
    id                       TEXT PRIMARY KEY,
    name                     TEXT NOT NULL,
    sender_id                TEXT NOT NULL REFERENCES senders (id),
    list_id                  TEXT NOT NULL REFERENCES contact_lists (id),
    template_name            TEXT NOT NULL,
    template_locale          TEXT NOT NULL,
    variable_mapping         TEXT NOT NULL DEFAULT '{}',
    state                    TEXT NOT NULL,
    start_at                 BIGINT,
    end_at                   BIGINT,
    response_timeout_minutes BIGINT NOT NULL,
    rate_limit_per_second    BIGINT,
    -- Why a running campaign is not sending just now (business hours, a limit), and until when.
    held_code                TEXT,
    held_reason              TEXT,
    held_until               BIGINT,
    -- The send rate cap is kept across nodes: the time the next message may go.
    paced_until              BIGINT,
    -- Manual retry runs (R6.4): each one may send a recipient once more.
    round                    BIGINT NOT NULL DEFAULT 0,
    created_by               TEXT,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL,
    started_at               BIGINT,
    finished_at              BIGINT
);
CREATE INDEX ix_campaigns__state ON campaigns (state, start_at);

CREATE TABLE campaign_recipients (
    campaign_id       TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id        TEXT NOT NULL REFERENCES contacts (id),
    -- The recipient's place in the hopper.
    seq               BIGINT NOT NULL,
    -- fresh, queued, pending, retry, closed, failed, skipped
    state             TEXT NOT NULL,
    next_at           BIGINT NOT NULL,
    round             BIGINT NOT NULL DEFAULT 0,
    message_id        TEXT,
    sent_at           BIGINT,
    answer_deadline   BIGINT,
    -- How a closed interaction ended: answered, free_text, late_answer, timed_out.
    outcome           TEXT,
    answer            TEXT,
    answer_message_id TEXT,
    -- A refusal or failure: the stable code and the reason.
    code              TEXT,
    reason            TEXT,
    attempts          BIGINT NOT NULL DEFAULT 0,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, contact_id)
);
CREATE INDEX ix_campaign_recipients__hopper ON campaign_recipients (campaign_id, state, next_at, seq);
CREATE INDEX ix_campaign_recipients__contact ON campaign_recipients (contact_id, state);
CREATE UNIQUE INDEX ux_campaign_recipients__message ON campaign_recipients (message_id);
