-- Manifest bytes and annotations out of the hot `manifests` rows: in a WITHOUT ROWID table
-- every key comparison against a row with overflow pages reads all of them,
-- so one 4 MB manifest slowed every lookup near it. Contents live in a rowid
-- table reached through a small unique index.
CREATE TABLE manifest_contents (
    repository_id  INTEGER NOT NULL,
    digest         TEXT NOT NULL,
    content        BLOB NOT NULL,
    annotations    TEXT,
    FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);
CREATE UNIQUE INDEX manifest_contents_key ON manifest_contents(repository_id, digest);
INSERT INTO manifest_contents (repository_id, digest, content, annotations)
    SELECT repository_id, digest, content, annotations FROM manifests;
ALTER TABLE manifests DROP COLUMN content;
ALTER TABLE manifests DROP COLUMN annotations;
