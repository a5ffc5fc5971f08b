-- W3 twin: the SQL statements one job's lifecycle causes in the PostgreSQL store (run confirmed →
-- pull → accept → submit → the client following the log → verification lease, three log lines,
-- verdict and payout), grouped in the same transactions, without HTTP, JSON or the LLM.
-- :client_id picks the sender/worker pair.
\set n random(1, 1000000000)
-- run (phase 2): authenticate, quote cache, create the job and pay it into escrow
BEGIN;
SELECT u.id AS sender FROM users u JOIN api_keys k ON k.user_id = u.id
  WHERE k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('a', 32), 'UTF8')) \gset
COMMIT;
BEGIN;
SELECT structured FROM quotes WHERE sender = ':sender' AND digest = sha256(convert_to('p' || :n, 'UTF8')) AND expires_at > 0;
COMMIT;
BEGIN;
INSERT INTO quotes (sender, digest, structured, expires_at) VALUES (':sender', sha256(convert_to('p' || :n, 'UTF8')), '{}', 9999999999999)
  ON CONFLICT (sender, digest) DO UPDATE SET structured = excluded.structured, expires_at = excluded.expires_at;
COMMIT;
BEGIN;
SELECT id FROM users WHERE id = ':sender';
SELECT balance_cents FROM balances WHERE account = 'wallet:' || ':sender' FOR UPDATE;
SELECT gen_random_uuid() AS job \gset
INSERT INTO jobs (id, status, prompt, title, description, requirements, acceptance_criteria, sender,
  price_cents, time_limit_seconds, attempt_count, cancellation_requested, env_vars, attachments,
  presented_to_agents, structured_by, created_at, updated_at)
  VALUES (':job', 'queued', 'p', 't', 'd', 'r', '["c"]', ':sender', 400, 900, 0, false, '{}', '[]', '[]', 'heuristic', 2, 2);
INSERT INTO transfers (id, debit, credit, amount_cents, reason, job_id, created_at)
  VALUES (gen_random_uuid(), 'wallet:' || ':sender', 'escrow:' || ':job', 400, 'job_payment', ':job', 2);
UPDATE balances SET balance_cents = balance_cents - 400 WHERE account = 'wallet:' || ':sender';
INSERT INTO balances (account, balance_cents) VALUES ('escrow:' || ':job', 400);
COMMIT;
-- pull (as the worker). When every queued job is locked by other clients there is nothing to
-- hold and the rest of this run is skipped (the HTTP client would post and pull again).
BEGIN;
SELECT u.id AS owner FROM users u JOIN api_keys k ON k.user_id = u.id
  WHERE k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8')) \gset
COMMIT;
BEGIN;
SELECT id AS agent FROM agents WHERE owner_id = ':owner' ORDER BY is_default DESC, created_at, id LIMIT 1 \gset
COMMIT;
BEGIN;
WITH c AS (SELECT j.* FROM jobs j WHERE status = 'queued' AND sender <> ':owner' AND NOT EXISTS
  (SELECT 1 FROM presentations p WHERE p.agent_id = ':agent' AND p.job_id = j.id)
  ORDER BY created_at, id LIMIT 32 FOR UPDATE SKIP LOCKED)
SELECT COALESCE((SELECT id::text FROM c ORDER BY created_at, id LIMIT 1), '') AS id, (SELECT COUNT(*) FROM c) AS got \gset
\if :got > 0
UPDATE jobs SET status = 'held', held_by_agent_id = ':agent', held_by_owner_id = ':owner',
  hold_expires_at = 9999999999999, updated_at = 3 WHERE id = ':id';
INSERT INTO presentations (agent_id, job_id) VALUES (':agent', ':id') ON CONFLICT DO NOTHING;
SELECT pg_notify('clawrk_job_events', ':id');
\endif
COMMIT;
\if :got > 0
-- accept: authenticate, find the acting agent (the job's holder, then that agent), then the transition
BEGIN;
SELECT u.id, u.name, u.created_at, COALESCE(b.balance_cents, 0) FROM users u
  LEFT JOIN balances b ON b.account = 'wallet:' || u.id::text JOIN api_keys k ON k.user_id = u.id
  WHERE k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8'));
COMMIT;
BEGIN;
SELECT * FROM jobs WHERE id = ':id';
COMMIT;
BEGIN;
SELECT id, owner_id, name, personality, avatar_url, is_default, created_at FROM agents WHERE id = ':agent';
COMMIT;
BEGIN;
SELECT * FROM jobs WHERE id = ':id' FOR UPDATE;
UPDATE jobs SET status = 'accepted', held_by_agent_id = NULL, held_by_owner_id = NULL, hold_expires_at = NULL,
  receiver = ':owner', receiver_agent_id = ':agent', accepted_at = 4, deadline_at = 9999999999999,
  attempt_count = 1, updated_at = 4 WHERE id = ':id';
INSERT INTO attempts (job_id, attempt, agent_id, outcome, earned_cents) VALUES (':id', 1, ':agent', 'running', 0)
  ON CONFLICT (job_id, attempt) DO UPDATE SET outcome = excluded.outcome, earned_cents = excluded.earned_cents;
SELECT pg_notify('clawrk_job_events', ':id');
COMMIT;
-- submit: authenticate, then the transition
BEGIN;
SELECT u.id, u.name, u.created_at, COALESCE(b.balance_cents, 0) FROM users u
  LEFT JOIN balances b ON b.account = 'wallet:' || u.id::text JOIN api_keys k ON k.user_id = u.id
  WHERE k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8'));
COMMIT;
BEGIN;
SELECT * FROM jobs WHERE id = ':id' FOR UPDATE;
UPDATE jobs SET status = 'submitted', output_text = 'out', submitted_at = 5, updated_at = 5 WHERE id = ':id';
INSERT INTO attempts (job_id, attempt, agent_id, outcome, earned_cents) VALUES (':id', 1, ':agent', 'running', 0)
  ON CONFLICT (job_id, attempt) DO UPDATE SET outcome = excluded.outcome, earned_cents = excluded.earned_cents;
SELECT pg_notify('clawrk_job_events', ':id');
COMMIT;
-- the client follows the log until the verdict: authenticate, check visibility, then each round
-- reads the new lines and the job (a first round, one per wake-up, a last one)
BEGIN;
SELECT u.id, u.name, u.created_at, COALESCE(b.balance_cents, 0) FROM users u
  LEFT JOIN balances b ON b.account = 'wallet:' || u.id::text JOIN api_keys k ON k.user_id = u.id
  WHERE k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8'));
COMMIT;
BEGIN;
SELECT * FROM jobs WHERE id = ':id';
COMMIT;
BEGIN;
SELECT seq, at, level, message FROM log_lines WHERE job_id = ':id' AND seq > 0 ORDER BY seq;
COMMIT;
BEGIN;
SELECT * FROM jobs WHERE id = ':id';
COMMIT;
-- verification: lease, three log lines, verdict and payout
BEGIN;
-- (the store takes the oldest free one; the twin takes its own, so that a client never finds none)
SELECT id AS leased FROM jobs WHERE status = 'submitted' AND (verify_lease_until IS NULL OR verify_lease_until <= 6)
  AND id = ':id' ORDER BY submitted_at, id LIMIT 1 FOR UPDATE SKIP LOCKED \gset
UPDATE jobs SET verify_lease_until = 9999999999999 WHERE id = ':leased';
COMMIT;
BEGIN;
SELECT 1 FROM jobs WHERE id = ':leased' FOR UPDATE;
INSERT INTO log_lines (job_id, seq, at, level, message) VALUES (':leased', (SELECT COALESCE(MAX(seq), 0) + 1 FROM log_lines WHERE job_id = ':leased'), 6, 'info', 'started');
SELECT pg_notify('clawrk_job_events', ':leased');
COMMIT;
BEGIN;
SELECT 1 FROM jobs WHERE id = ':leased' FOR UPDATE;
INSERT INTO log_lines (job_id, seq, at, level, message) VALUES (':leased', (SELECT COALESCE(MAX(seq), 0) + 1 FROM log_lines WHERE job_id = ':leased'), 6, 'info', 'criterion');
SELECT pg_notify('clawrk_job_events', ':leased');
COMMIT;
BEGIN;
SELECT 1 FROM jobs WHERE id = ':leased' FOR UPDATE;
INSERT INTO log_lines (job_id, seq, at, level, message) VALUES (':leased', (SELECT COALESCE(MAX(seq), 0) + 1 FROM log_lines WHERE job_id = ':leased'), 6, 'info', 'verdict');
SELECT pg_notify('clawrk_job_events', ':leased');
COMMIT;
BEGIN;
SELECT * FROM jobs WHERE id = ':leased' FOR UPDATE;
SELECT receiver AS rcv, receiver_agent_id AS ragent FROM jobs WHERE id = ':leased' \gset
UPDATE jobs SET status = 'verified', verification = '{}', completed_at = 7, updated_at = 7,
  verify_lease_until = NULL WHERE id = ':leased';
INSERT INTO attempts (job_id, attempt, agent_id, outcome, earned_cents) VALUES (':leased', 1, ':ragent', 'verified', 270)
  ON CONFLICT (job_id, attempt) DO UPDATE SET outcome = excluded.outcome, earned_cents = excluded.earned_cents;
SELECT pg_notify('clawrk_job_events', ':leased');
INSERT INTO transfers (id, debit, credit, amount_cents, reason, job_id, created_at)
  VALUES (gen_random_uuid(), 'escrow:' || ':leased', 'wallet:' || ':rcv', 270, 'earning', ':leased', 7),
         (gen_random_uuid(), 'escrow:' || ':leased', 'platform', 130, 'fee', ':leased', 7);
UPDATE balances SET balance_cents = balance_cents - 400 WHERE account = 'escrow:' || ':leased';
UPDATE balances SET balance_cents = balance_cents + 130 WHERE account = 'platform';
UPDATE balances SET balance_cents = balance_cents + 270 WHERE account = 'wallet:' || ':rcv';
COMMIT;
-- the stream's wake-ups during and after the verification, and its last read
BEGIN;
SELECT seq, at, level, message FROM log_lines WHERE job_id = ':id' AND seq > 0 ORDER BY seq;
COMMIT;
BEGIN;
SELECT * FROM jobs WHERE id = ':id';
COMMIT;
BEGIN;
SELECT seq, at, level, message FROM log_lines WHERE job_id = ':id' AND seq > 3 ORDER BY seq;
COMMIT;
BEGIN;
SELECT * FROM jobs WHERE id = ':id';
COMMIT;
BEGIN;
SELECT seq, at, level, message FROM log_lines WHERE job_id = ':id' AND seq > 3 ORDER BY seq;
COMMIT;
\endif
