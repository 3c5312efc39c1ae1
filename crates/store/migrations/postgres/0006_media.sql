-- Inbound media kept by Switchboard (R5.6), content-addressed: a file is stored once under
-- `{data_dir}/media/{sha256}` however many messages carry it. This row says what it is, so the
-- API can serve it with its type.
CREATE TABLE media_files (
    sha256     TEXT PRIMARY KEY,
    mime_type  TEXT,
    size_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Meta's template status webhooks name a template by its id first.
CREATE INDEX ix_templates__provider_template_id ON templates (provider_template_id);
