-- Identity and access: temporary credentials, IAM entities and their links,
-- resource policies on repositories and the registry.

ALTER TABLE access_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE access_keys ADD COLUMN session_token_hash TEXT;
ALTER TABLE access_keys ADD COLUMN session_policy TEXT;
CREATE INDEX access_keys_principal ON access_keys (principal);

-- `key` is the lower-cased name: IAM names are unique regardless of case.
CREATE TABLE iam_entities (
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    name        TEXT NOT NULL,
    id          TEXT NOT NULL,
    path        TEXT NOT NULL,
    arn         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    document    TEXT,
    attributes  TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;

CREATE TABLE iam_links (
    kind      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    object    TEXT NOT NULL,
    document  TEXT,
    PRIMARY KEY (kind, subject, object)
) WITHOUT ROWID;
CREATE INDEX iam_links_object ON iam_links (object);
CREATE INDEX iam_links_subject ON iam_links (subject);

ALTER TABLE repositories ADD COLUMN policy TEXT;

CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) WITHOUT ROWID;
