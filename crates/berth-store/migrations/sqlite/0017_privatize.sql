-- `berth privatize` copies (see `privatize.rs`).
CREATE TABLE privatizations (
    id           TEXT PRIMARY KEY,
    source       TEXT NOT NULL,
    destination  TEXT NOT NULL,
    tag          TEXT,
    status       TEXT NOT NULL,
    digest       TEXT,
    size         INTEGER,
    reason       TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- Fetches from a pull-through upstream in progress, one per manifest or
-- blob across nodes (see `pull_through.rs`).
CREATE TABLE pull_through_flights (
    key         TEXT PRIMARY KEY,
    node        TEXT NOT NULL,
    started_at  INTEGER NOT NULL
);
