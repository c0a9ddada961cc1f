-- Background work moved to the job queue (0013_jobs.sql); leases are gone.
DROP TABLE leases;
