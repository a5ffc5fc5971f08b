DROP INDEX IF EXISTS jobs_review_due;
ALTER TABLE jobs DROP COLUMN review_due_at;
ALTER TABLE jobs DROP COLUMN verify_errors;
