-- A claim takes the due jobs oldest first, ties by id: with the id in the index they are read
-- in that order, as many as are claimed. Without it, jobs falling due at the same moment (a
-- campaign's, a scheduled batch's) were all read and sorted by id at every claim.
DROP INDEX ix_jobs__claim;
CREATE INDEX ix_jobs__claim ON jobs (queue, status, run_at, id);
