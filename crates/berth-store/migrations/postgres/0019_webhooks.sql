-- Webhooks that events are delivered to, and the events each gave up on
-- (see `webhooks.rs`).
CREATE TABLE webhooks (
    name               TEXT COLLATE "C" PRIMARY KEY,
    url                TEXT NOT NULL,
    sealed_secret      BYTEA NOT NULL,
    detail_types       TEXT NOT NULL,
    repository_filter  TEXT,
    failures           BIGINT NOT NULL,
    retry_at           BIGINT NOT NULL,
    last_error         TEXT,
    created_at         BIGINT NOT NULL
);

CREATE TABLE webhook_dead_letters (
    webhook   TEXT COLLATE "C" NOT NULL,
    event_id  BIGINT NOT NULL,
    reason    TEXT NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (webhook, event_id)
);
