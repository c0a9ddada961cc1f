-- Lifecycle policies: the document, when it was last applied, and the policy
-- text of the last preview asked for.
ALTER TABLE repositories ADD COLUMN lifecycle_policy TEXT;
ALTER TABLE repositories ADD COLUMN lifecycle_evaluated_at BIGINT;
ALTER TABLE repositories ADD COLUMN lifecycle_preview TEXT;
