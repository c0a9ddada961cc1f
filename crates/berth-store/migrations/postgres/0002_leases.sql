-- Leases on background jobs (see migrations/sqlite/0005_leases.sql).
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
