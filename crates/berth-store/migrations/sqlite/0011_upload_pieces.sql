-- The staged pieces an upload's recorded size is made of, in order (space
-- separated): a write that lost the race to record itself is never read.
ALTER TABLE uploads ADD COLUMN pieces TEXT NOT NULL DEFAULT '';
