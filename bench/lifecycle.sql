-- W3 twin: the statements the product sends PostgreSQL for one job's whole lifecycle (run
-- confirmed, pull, accept, submit, the client opening the log stream, the verification lease with
-- its first line, the verdict with its lines, attempt and payout, the stream's reads), in the same
-- transactions, without HTTP, JSON or the LLM. Authentication costs no statement (the instance
-- remembers keys), so the callers' keys are joined into the first read each makes.
-- :client_id picks the sender/worker pair.
\set n random(1, 1000000000)
-- run (phase 2 without phase 1): the quote cache is read; the job, its payment and the balances in
-- one transaction
SELECT k.user_id AS sender, (SELECT structured FROM quotes q WHERE q.sender = k.user_id
         AND q.digest = sha256(convert_to('p' || :n, 'UTF8')) AND q.expires_at > 0) AS quote
  FROM api_keys k WHERE k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('a', 32), 'UTF8')) \gset
BEGIN;
INSERT INTO jobs (id, status, prompt, title, description, requirements, acceptance_criteria, sender,
  receiver, receiver_agent_id, held_by_agent_id, held_by_owner_id, hold_expires_at, price_cents,
  time_limit_seconds, accepted_at, deadline_at, submitted_at, completed_at, attempt_count,
  cancellation_requested, output_text, output_attachments, env_vars, attachments,
  presented_to_agents, verification, structured_by, created_at, updated_at, version)
  VALUES (gen_random_uuid(), 'queued', 'p', 't', 'd', 'r', '["c"]', ':sender', NULL, NULL, NULL, NULL,
  NULL, 400, 900, NULL, NULL, NULL, NULL, 0, false, NULL, NULL, '{}', '[]', '[]', NULL, 'heuristic',
  2, 2, 0) RETURNING id AS new \gset
INSERT INTO transfers (id, debit, credit, amount_cents, reason, job_id, created_at)
  VALUES (gen_random_uuid(), 'wallet:' || ':sender', 'escrow:' || ':new', 400, 'job_payment', ':new', 2);
INSERT INTO balances (account, balance_cents) VALUES ('escrow:' || ':new', 400)
  ON CONFLICT (account) DO UPDATE SET balance_cents = balances.balance_cents + 400;
UPDATE balances SET balance_cents = balance_cents - 400
  WHERE account = 'wallet:' || ':sender' AND balance_cents >= 400;
COMMIT;
-- pull (as the worker): one transaction, as in pull.sql
BEGIN;
SELECT a.id AS agent, a.owner_id AS owner, a.personality
  FROM agents a JOIN api_keys k ON k.user_id = a.owner_id
 WHERE k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8'))
 ORDER BY a.is_default DESC, a.created_at, a.id LIMIT 1 \gset
SELECT COALESCE(MIN(id::text), '') AS id, COUNT(*) AS got FROM (SELECT j.* FROM jobs j
  WHERE j.status = 'queued' AND j.sender <> ':owner' AND NOT EXISTS
  (SELECT 1 FROM presentations p WHERE p.agent_id = ':agent' AND p.job_id = j.id)
  ORDER BY j.created_at, j.id LIMIT 32 FOR UPDATE SKIP LOCKED) c \gset
\if :got > 0
UPDATE jobs SET status = 'held', held_by_agent_id = ':agent', held_by_owner_id = ':owner',
       hold_expires_at = 9999999999999, presented_to_agents = '["' || ':agent' || '"]',
       updated_at = 3, version = version + 1, verify_lease_until = NULL, prompt = prompt,
       title = title, description = description, requirements = requirements,
       acceptance_criteria = acceptance_criteria, env_vars = env_vars, attachments = attachments
  WHERE id = ':id' AND version = 0;
\endif
COMMIT;
\if :got > 0
-- accept: the job read (with the acting agent: its holder), the change written over its version
SELECT id, status, prompt, title, description, requirements, acceptance_criteria, sender, receiver,
       receiver_agent_id, held_by_agent_id, held_by_owner_id, hold_expires_at, price_cents,
       time_limit_seconds, accepted_at, deadline_at, submitted_at, completed_at, attempt_count,
       cancellation_requested, output_text, output_attachments, env_vars, attachments,
       presented_to_agents, verification, structured_by, created_at, updated_at, version,
       verify_lease_until
  FROM jobs WHERE id = ':id' \gset r_
UPDATE jobs SET status = 'accepted', held_by_agent_id = NULL, held_by_owner_id = NULL,
       hold_expires_at = NULL, receiver = ':owner', receiver_agent_id = ':agent', accepted_at = 4,
       deadline_at = 9999999999999, attempt_count = 1, updated_at = 4, version = :r_version + 1,
       verify_lease_until = NULL, prompt = prompt, title = title, description = description,
       requirements = requirements, acceptance_criteria = acceptance_criteria, env_vars = env_vars,
       attachments = attachments
  WHERE id = ':id' AND version = :r_version;
-- submit: the same shape
SELECT id, status, prompt, title, description, requirements, acceptance_criteria, sender, receiver,
       receiver_agent_id, held_by_agent_id, held_by_owner_id, hold_expires_at, price_cents,
       time_limit_seconds, accepted_at, deadline_at, submitted_at, completed_at, attempt_count,
       cancellation_requested, output_text, output_attachments, env_vars, attachments,
       presented_to_agents, verification, structured_by, created_at, updated_at, version,
       verify_lease_until
  FROM jobs WHERE id = ':id' \gset r_
UPDATE jobs SET status = 'submitted', output_text = 'out', output_attachments = '[]', submitted_at = 5,
       updated_at = 5, version = :r_version + 1, prompt = prompt, title = title, description = description,
       requirements = requirements, acceptance_criteria = acceptance_criteria, env_vars = env_vars,
       attachments = attachments
  WHERE id = ':id' AND version = :r_version;
-- the client opens the log stream: the job and its lines in one read
SELECT j.status, l.seq, l.message FROM jobs j LEFT JOIN log_lines l ON l.job_id = j.id AND l.seq > 0
 WHERE j.id = ':id' ORDER BY l.seq;
-- verification: the lease (one statement) with its first line; the notification rides on COMMIT
-- (the twin leases its own job: a puller's transient row lock would make SKIP LOCKED skip it)
BEGIN;
UPDATE jobs SET verify_lease_until = 9999999999999
  WHERE id = (SELECT id FROM jobs WHERE status = 'submitted' AND id = ':id'
                AND (verify_lease_until IS NULL OR verify_lease_until <= 6) FOR UPDATE)
  RETURNING version AS lv, receiver AS rcv \gset
INSERT INTO log_lines (job_id, seq, at, level, message) SELECT ':id', m.n + v.column1, 6, v.column2, v.column3
  FROM (SELECT COALESCE(MAX(seq), 0) AS n FROM log_lines WHERE job_id = ':id') m
  CROSS JOIN (VALUES (1, 'info', 'started')) AS v RETURNING seq;
SELECT pg_notify('clawrk_job_events', ':id') \; COMMIT;
-- the stream's reader, woken
SELECT j.status, l.seq, l.message FROM jobs j LEFT JOIN log_lines l ON l.job_id = j.id AND l.seq > 0
 WHERE j.id = ':id' ORDER BY l.seq;
-- verdict: the job over the leased version, the payout and the fee, the attempt, the lines
BEGIN;
UPDATE jobs SET status = 'verified', verification = '{}', completed_at = 7, deadline_at = NULL,
       updated_at = 7, version = :lv + 1, verify_lease_until = NULL, prompt = prompt, title = title,
       description = description, requirements = requirements,
       acceptance_criteria = acceptance_criteria, env_vars = env_vars, attachments = attachments
  WHERE id = ':id' AND version = :lv;
INSERT INTO transfers (id, debit, credit, amount_cents, reason, job_id, created_at)
  VALUES (gen_random_uuid(), 'escrow:' || ':id', 'wallet:' || ':rcv', 270, 'earning', ':id', 7),
         (gen_random_uuid(), 'escrow:' || ':id', 'platform', 130, 'fee', ':id', 7);
UPDATE balances SET balance_cents = balance_cents - 400 WHERE account = 'escrow:' || ':id' AND balance_cents >= 400;
UPDATE balances SET balance_cents = balance_cents + 270 WHERE account = 'wallet:' || ':rcv' AND balance_cents <= 4611686018427387903 - 270;
INSERT INTO attempts (job_id, attempt, agent_id, outcome, earned_cents) VALUES (':id', 1, ':agent', 'verified', 270)
  ON CONFLICT (job_id, attempt) DO UPDATE SET outcome = 'verified', earned_cents = 270;
INSERT INTO log_lines (job_id, seq, at, level, message) SELECT ':id', m.n + v.column1, 7, v.column2, v.column3
  FROM (SELECT COALESCE(MAX(seq), 0) AS n FROM log_lines WHERE job_id = ':id') m
  CROSS JOIN (VALUES (1, 'info', 'reading'), (2, 'info', 'criterion'), (3, 'info', 'verdict'), (4, 'info', 'paid')) AS v
  RETURNING seq;
SELECT pg_notify('clawrk_job_events', ':id') \; COMMIT;
-- the stream's reader, woken by the verdict
SELECT j.status, l.seq, l.message FROM jobs j LEFT JOIN log_lines l ON l.job_id = j.id AND l.seq > 1
 WHERE j.id = ':id' ORDER BY l.seq;
\endif
