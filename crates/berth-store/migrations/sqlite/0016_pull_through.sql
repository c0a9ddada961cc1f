-- Pull-through cache rules (see `pull_through.rs`).
CREATE TABLE pull_through_rules (
    prefix                 TEXT PRIMARY KEY,
    upstream_registry_url  TEXT NOT NULL,
    upstream_registry      TEXT,
    upstream_prefix        TEXT NOT NULL,
    credential_arn         TEXT,
    custom_role_arn        TEXT,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);

-- Secrets, sealed (see `secrets.rs`).
CREATE TABLE secrets (
    name         TEXT PRIMARY KEY,
    arn          TEXT NOT NULL,
    sealed       BLOB NOT NULL,
    description  TEXT,
    version_id   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
