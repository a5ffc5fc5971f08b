DROP INDEX jobs_held_by_owner;
DROP INDEX jobs_receiver;

INSERT INTO balances (account, balance_cents)
SELECT a.account,
       COALESCE((SELECT SUM(amount_cents) FROM transfers WHERE credit = a.account), 0)
     - COALESCE((SELECT SUM(amount_cents) FROM transfers WHERE debit = a.account), 0)
FROM (VALUES ('world'), ('platform')) AS a(account)
WHERE EXISTS (SELECT 1 FROM transfers WHERE credit = a.account OR debit = a.account);

DROP TRIGGER jobs_record_presentation ON jobs;
DROP FUNCTION clawrk_record_presentation();

ALTER TABLE jobs DROP COLUMN version;
