-- Web sign-in sessions. Only the SHA-256 of the cookie's secret is kept, so reading this table
-- does not let anyone sign in; the CSRF token is not a credential on its own and is kept as is,
-- because every page needs to render it.

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ux_sessions__secret_hash ON sessions (secret_hash);
CREATE INDEX ix_sessions__user ON sessions (user_id);
CREATE INDEX ix_sessions__expires_at ON sessions (expires_at);
