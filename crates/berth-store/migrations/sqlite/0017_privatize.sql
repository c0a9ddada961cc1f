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
