-- Where each image stands with each replication destination (see
-- `replication.rs`).
CREATE TABLE replication_status (
    repository   TEXT NOT NULL,
    digest       TEXT NOT NULL,
    region       TEXT NOT NULL,
    registry_id  TEXT NOT NULL,
    status       TEXT NOT NULL,
    failure_code TEXT,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (repository, digest, region, registry_id)
);
