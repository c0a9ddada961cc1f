-- The exclusion filters of IMMUTABLE_WITH_EXCLUSION and MUTABLE_WITH_EXCLUSION, one per line.
ALTER TABLE repositories ADD COLUMN tag_mutability_exclusions TEXT;
