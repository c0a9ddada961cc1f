-- Replication backfills (`StartReplicationBackfill`): one row per backfill,
-- one per image and tag it copies (see `replication.rs`).
CREATE TABLE replication_backfills (
    id           TEXT PRIMARY KEY,
    region       TEXT NOT NULL,
    registry_id  TEXT NOT NULL,
    status       TEXT NOT NULL,
    failure_code TEXT,
    started_at   INTEGER NOT NULL,
    ended_at     INTEGER
);
CREATE INDEX replication_backfills_by_start ON replication_backfills (started_at, id);

CREATE TABLE replication_backfill_items (
    backfill_id  TEXT NOT NULL,
    repository   TEXT NOT NULL,
    digest       TEXT NOT NULL,
    -- '' for an untagged image.
    tag          TEXT NOT NULL,
    -- PENDING, COMPLETE, FAILED, or SKIPPED (the backfill was stopped first).
    status       TEXT NOT NULL,
    failure_code TEXT,
    PRIMARY KEY (backfill_id, repository, digest, tag)
);
