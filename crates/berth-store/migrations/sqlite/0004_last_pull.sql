-- When a manifest was last pulled (GET), refreshed at most hourly: ECR's
-- lastRecordedPullTime.
ALTER TABLE manifests ADD COLUMN last_pulled_at INTEGER;
