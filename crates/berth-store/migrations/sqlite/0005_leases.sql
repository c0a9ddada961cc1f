-- Leases on background jobs: any node may run a job, one at a time; a lease
-- not renewed before it expires passes to another node.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
