-- The durable job queue (see `jobs.rs`).
CREATE TABLE jobs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    -- queued | running | done | failed
    state         TEXT NOT NULL,
    -- At most one queued-or-running job per key (periodic work).
    singleton     TEXT,
    attempts      BIGINT NOT NULL,
    max_attempts  BIGINT NOT NULL,
    run_after     BIGINT NOT NULL,
    worker        TEXT,
    heartbeat_at  BIGINT,
    last_error    TEXT,
    created_at    BIGINT NOT NULL,
    finished_at   BIGINT
);
CREATE INDEX jobs_due ON jobs(state, run_after);
CREATE UNIQUE INDEX jobs_singleton ON jobs(singleton) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_finished ON jobs(singleton, finished_at);
