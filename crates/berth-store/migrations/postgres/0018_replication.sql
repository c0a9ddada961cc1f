-- Where each image stands with each replication destination (see
-- `replication.rs`).
CREATE TABLE replication_status (
    repository   TEXT COLLATE "C" NOT NULL,
    digest       TEXT COLLATE "C" NOT NULL,
    region       TEXT COLLATE "C" NOT NULL,
    registry_id  TEXT COLLATE "C" NOT NULL,
    status       TEXT NOT NULL,
    failure_code TEXT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (repository, digest, region, registry_id)
);
