-- Manifest bytes and annotations in their own table, as on SQLite (where
-- keeping them out of the hot rows matters), so both databases share one SQL.
CREATE TABLE manifest_contents (
    repository_id  BIGINT NOT NULL,
    digest         TEXT NOT NULL,
    content        BYTEA NOT NULL,
    annotations    TEXT,
    FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);
CREATE UNIQUE INDEX manifest_contents_key ON manifest_contents(repository_id, digest);
INSERT INTO manifest_contents (repository_id, digest, content, annotations)
    SELECT repository_id, digest, content, annotations FROM manifests;
ALTER TABLE manifests DROP COLUMN content, DROP COLUMN annotations;
