-- The size of an upload's last write: ECR's UploadLayerPart refuses a part
-- after one smaller than 5 MiB.
ALTER TABLE uploads ADD COLUMN last_part INTEGER NOT NULL DEFAULT 0;
