-- Server-side image builds from source bundles (see `builds.rs`).
CREATE TABLE builds (
    id                TEXT COLLATE "C" PRIMARY KEY,
    repository        TEXT NOT NULL,
    tag               TEXT NOT NULL,
    source_digest     TEXT NOT NULL,
    source_size       BIGINT NOT NULL,
    build_key         TEXT NOT NULL,
    options           TEXT NOT NULL,
    status            TEXT NOT NULL,
    reason            TEXT,
    image_digest      TEXT,
    requested_by      TEXT NOT NULL,
    access_key_id     TEXT NOT NULL,
    credential_expires_at BIGINT,
    log               TEXT NOT NULL DEFAULT '',
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX builds_by_target ON builds (repository, tag, build_key, status);
CREATE INDEX builds_by_repository ON builds (repository, created_at);
