-- Scanning (see `scans.rs`): OSV advisories indexed by the packages they
-- name, layer inventories by digest, each image's latest scan.
CREATE TABLE advisories (
    id        TEXT PRIMARY KEY,
    modified  TEXT NOT NULL,
    record    TEXT NOT NULL
);
CREATE TABLE advisory_packages (
    ecosystem    TEXT NOT NULL,
    name         TEXT NOT NULL,
    advisory_id  TEXT NOT NULL,
    PRIMARY KEY (ecosystem, name, advisory_id)
) WITHOUT ROWID;
CREATE INDEX advisory_packages_by_advisory ON advisory_packages(advisory_id);
CREATE TABLE scan_layers (
    digest      TEXT PRIMARY KEY,
    scanner     INTEGER NOT NULL,
    inventory   TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE image_scans (
    repository         TEXT NOT NULL,
    digest             TEXT NOT NULL,
    status             TEXT NOT NULL,
    description        TEXT NOT NULL,
    started_at         INTEGER NOT NULL,
    completed_at       INTEGER,
    source_updated_at  INTEGER,
    result             TEXT,
    manual             BOOLEAN NOT NULL,
    PRIMARY KEY (repository, digest)
);

-- How far each outbox consumer has read the events table.
CREATE TABLE outbox_cursors (
    consumer  TEXT PRIMARY KEY,
    position  INTEGER NOT NULL
);

-- Scan-gated promotions (see `promotions.rs`).
CREATE TABLE promotions (
    source_repository  TEXT NOT NULL,
    digest             TEXT NOT NULL,
    rule               TEXT NOT NULL,
    destination        TEXT NOT NULL,
    status             TEXT NOT NULL,
    reason             TEXT NOT NULL,
    tags               TEXT NOT NULL,
    decided_at         INTEGER NOT NULL,
    expires_at         INTEGER,
    PRIMARY KEY (source_repository, digest, rule)
);
CREATE INDEX promotions_expiry ON promotions(status, expires_at);
