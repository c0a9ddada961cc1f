-- The registry's metadata on PostgreSQL: the same tables as the SQLite
-- backend (see migrations/sqlite). Times are milliseconds since the Unix
-- epoch. Names and tags compare with the "C" collation, so listings come out
-- in the spec's lexical (byte) order.

CREATE TABLE repositories (
    id                    BIGSERIAL PRIMARY KEY,
    name                  TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at            BIGINT NOT NULL,
    image_tag_mutability  TEXT NOT NULL DEFAULT 'MUTABLE',
    scan_on_push          BOOLEAN NOT NULL DEFAULT FALSE,
    encryption_type       TEXT NOT NULL DEFAULT 'AES256',
    kms_key               TEXT
);

CREATE TABLE blobs (
    digest      TEXT COLLATE "C" PRIMARY KEY,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE repository_blobs (
    repository_id  BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest         TEXT COLLATE "C" NOT NULL REFERENCES blobs(digest),
    linked_at      BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_digest ON repository_blobs(digest);

CREATE TABLE manifests (
    repository_id   BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest          TEXT COLLATE "C" NOT NULL,
    media_type      TEXT NOT NULL,
    artifact_type   TEXT,
    subject         TEXT COLLATE "C",
    annotations     TEXT,
    size            BIGINT NOT NULL,
    content         BYTEA NOT NULL,
    pushed_at       BIGINT NOT NULL,
    last_pulled_at  BIGINT,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX manifests_subject ON manifests(repository_id, subject) WHERE subject IS NOT NULL;

CREATE TABLE manifest_references (
    repository_id    BIGINT NOT NULL,
    manifest_digest  TEXT COLLATE "C" NOT NULL,
    child_digest     TEXT COLLATE "C" NOT NULL,
    child_kind       TEXT NOT NULL CHECK (child_kind IN ('blob', 'manifest')),
    PRIMARY KEY (repository_id, manifest_digest, child_kind, child_digest),
    FOREIGN KEY (repository_id, manifest_digest)
        REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_references_child ON manifest_references(repository_id, child_digest, child_kind);

CREATE TABLE tags (
    repository_id    BIGINT NOT NULL,
    name             TEXT COLLATE "C" NOT NULL,
    manifest_digest  TEXT COLLATE "C" NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, manifest_digest)
        REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX tags_manifest ON tags(repository_id, manifest_digest);

CREATE TABLE uploads (
    id             TEXT PRIMARY KEY,
    repository_id  BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    size           BIGINT NOT NULL,
    hash_state     BYTEA NOT NULL,
    last_part      BIGINT NOT NULL DEFAULT 0,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX uploads_updated_at ON uploads(updated_at);

CREATE TABLE repository_tags (
    repository_id  BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    key            TEXT NOT NULL,
    value          TEXT NOT NULL,
    PRIMARY KEY (repository_id, key)
);

CREATE TABLE access_keys (
    id          TEXT PRIMARY KEY,
    secret      BYTEA NOT NULL,
    principal   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
    created_at  BIGINT NOT NULL
);
