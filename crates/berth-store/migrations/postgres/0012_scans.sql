-- Scanning (see `scans.rs`): OSV advisories indexed by the packages they
-- name, layer inventories by digest, each image's latest scan.
CREATE TABLE advisories (
    id        TEXT COLLATE "C" PRIMARY KEY,
    modified  TEXT NOT NULL,
    record    TEXT NOT NULL
);
CREATE TABLE advisory_packages (
    ecosystem    TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    advisory_id  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (ecosystem, name, advisory_id)
);
CREATE INDEX advisory_packages_by_advisory ON advisory_packages(advisory_id);
CREATE TABLE scan_layers (
    digest      TEXT COLLATE "C" PRIMARY KEY,
    scanner     BIGINT NOT NULL,
    inventory   TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE image_scans (
    repository         TEXT COLLATE "C" NOT NULL,
    digest             TEXT COLLATE "C" NOT NULL,
    status             TEXT NOT NULL,
    description        TEXT NOT NULL,
    started_at         BIGINT NOT NULL,
    completed_at       BIGINT,
    source_updated_at  BIGINT,
    result             TEXT,
    manual             BOOLEAN NOT NULL,
    PRIMARY KEY (repository, digest)
);

-- How far each outbox consumer has read the events table.
CREATE TABLE outbox_cursors (
    consumer  TEXT COLLATE "C" PRIMARY KEY,
    position  BIGINT NOT NULL
);

-- Scan-gated promotions (see `promotions.rs`).
CREATE TABLE promotions (
    source_repository  TEXT COLLATE "C" NOT NULL,
    digest             TEXT COLLATE "C" NOT NULL,
    rule               TEXT COLLATE "C" NOT NULL,
    destination        TEXT NOT NULL,
    status             TEXT NOT NULL,
    reason             TEXT NOT NULL,
    tags               TEXT NOT NULL,
    decided_at         BIGINT NOT NULL,
    expires_at         BIGINT,
    PRIMARY KEY (source_repository, digest, rule)
);
CREATE INDEX promotions_expiry ON promotions(status, expires_at);
