-- Replication backfills (`StartReplicationBackfill`): one row per backfill,
-- one per image and tag it copies (see `replication.rs`).
CREATE TABLE replication_backfills (
    id           TEXT COLLATE "C" PRIMARY KEY,
    region       TEXT COLLATE "C" NOT NULL,
    registry_id  TEXT COLLATE "C" NOT NULL,
    status       TEXT NOT NULL,
    failure_code TEXT,
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT
);
CREATE INDEX replication_backfills_by_start ON replication_backfills (started_at, id);

CREATE TABLE replication_backfill_items (
    backfill_id  TEXT COLLATE "C" NOT NULL,
    repository   TEXT COLLATE "C" NOT NULL,
    digest       TEXT COLLATE "C" NOT NULL,
    -- '' for an untagged image.
    tag          TEXT COLLATE "C" NOT NULL,
    -- PENDING, COMPLETE, FAILED, or SKIPPED (the backfill was stopped first).
    status       TEXT NOT NULL,
    failure_code TEXT,
    PRIMARY KEY (backfill_id, repository, digest, tag)
);
