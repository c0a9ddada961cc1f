-- ECR repository settings, resource tags, and access keys.

ALTER TABLE repositories ADD COLUMN image_tag_mutability TEXT NOT NULL DEFAULT 'MUTABLE';
ALTER TABLE repositories ADD COLUMN scan_on_push INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repositories ADD COLUMN encryption_type TEXT NOT NULL DEFAULT 'AES256';
ALTER TABLE repositories ADD COLUMN kms_key TEXT;

CREATE TABLE repository_tags (
    repository_id  INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    key            TEXT NOT NULL,
    value          TEXT NOT NULL,
    PRIMARY KEY (repository_id, key)
) WITHOUT ROWID;

-- Secrets are stored sealed (encrypted with the install's secret key), never in clear.
CREATE TABLE access_keys (
    id          TEXT PRIMARY KEY,
    secret      BLOB NOT NULL,
    principal   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
