-- Background work moved to the job queue (0009_jobs.sql); leases are gone.
DROP TABLE leases;
