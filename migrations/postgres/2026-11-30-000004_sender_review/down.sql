DROP INDEX IF EXISTS jobs_review_due;
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_review_only_submitted;
ALTER TABLE jobs DROP COLUMN IF EXISTS review_due_at;
ALTER TABLE jobs DROP COLUMN IF EXISTS verify_errors;
