-- The sweeper purges expired quotes and idempotency records by expiry.
CREATE INDEX quotes_expiry ON quotes (expires_at);
CREATE INDEX idempotency_expiry ON idempotency (expires_at);
