-- Garbage collection: when each blob was last linked, uploaded or referenced
-- (a blob is reclaimed only once unreferenced for longer than the grace
-- period), and a way to ask "does any manifest reference this blob?".
ALTER TABLE blobs ADD COLUMN last_linked_at BIGINT NOT NULL DEFAULT 0;
UPDATE blobs SET last_linked_at = created_at;
CREATE INDEX blobs_last_linked_at ON blobs(last_linked_at);
CREATE INDEX manifest_references_blob ON manifest_references(child_digest) WHERE child_kind = 'blob';
