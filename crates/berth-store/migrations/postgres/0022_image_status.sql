-- The archive storage class (`UpdateImageStorageClass`): `ACTIVE`,
-- `ARCHIVED` (not pullable) or `ACTIVATING` (being restored).
ALTER TABLE manifests ADD COLUMN image_status TEXT NOT NULL DEFAULT 'ACTIVE';
ALTER TABLE manifests ADD COLUMN last_archived_at BIGINT;
ALTER TABLE manifests ADD COLUMN last_activated_at BIGINT;
