-- Webhooks that events are delivered to, and the events each gave up on
-- (see `webhooks.rs`).
CREATE TABLE webhooks (
    name               TEXT PRIMARY KEY,
    url                TEXT NOT NULL,
    sealed_secret      BLOB NOT NULL,
    detail_types       TEXT NOT NULL,
    repository_filter  TEXT,
    failures           INTEGER NOT NULL,
    retry_at           INTEGER NOT NULL,
    last_error         TEXT,
    created_at         INTEGER NOT NULL
);

CREATE TABLE webhook_dead_letters (
    webhook   TEXT NOT NULL,
    event_id  INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (webhook, event_id)
);
