DROP INDEX idempotency_expiry;
DROP INDEX quotes_expiry;
