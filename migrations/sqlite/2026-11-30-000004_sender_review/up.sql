-- Sender review (issue #21): verifier failures on the latest submission, and when a submission the
-- verifier gave up on is approved if its sender does not decide. (SQLite adds a column with a
-- CHECK but cannot add a table constraint; the domain keeps the rule that only a submission
-- waits for review.)
ALTER TABLE jobs ADD COLUMN verify_errors INTEGER NOT NULL DEFAULT 0 CHECK (verify_errors >= 0);
ALTER TABLE jobs ADD COLUMN review_due_at INTEGER
    CHECK (review_due_at IS NULL OR status = 'submitted');
-- The sweeper approves reviews past their due time.
CREATE INDEX jobs_review_due ON jobs (review_due_at) WHERE review_due_at IS NOT NULL;
