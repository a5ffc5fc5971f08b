-- The project's copy of ../shared/bench-limit/lifecycle.sql (the limit twin the benchmark compares
-- against), changed only in the API keys' formula, to match the harness's seed (well-formed keys).
-- Limit twin of W3 (one job's whole lifecycle): the same effects as the project's bench/lifecycle.sql
-- (job, escrow payment, hold, presentation, attempt, submission, lease, three log lines, verdict,
-- payout with fee, the client's log reads), in the fewest round trips the operations need: the caller
-- joined into each operation's statement, one transaction per operation, reads without BEGIN, the
-- verifier's first line written with its lease and the rest with the verdict (a structured verdict
-- arrives whole), NOTIFY only where a log stream needs a wake-up. :client_id picks sender/worker.
\set n random(1, 1000000000)
-- run (phase 2): caller + cached quote in one read, then the job, its payment and balances
BEGIN;
SELECT k.user_id AS sender, (SELECT structured FROM quotes q WHERE q.sender = k.user_id
         AND q.digest = sha256(convert_to('p' || :n, 'UTF8')) AND q.expires_at > 0) AS quote
  FROM api_keys k WHERE k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('a', 32), 'UTF8')) \gset
WITH w AS (UPDATE balances SET balance_cents = balance_cents - 400
             WHERE account = 'wallet:' || ':sender' AND balance_cents >= 400 RETURNING 1),
     job AS (INSERT INTO jobs (id, status, prompt, title, description, requirements, acceptance_criteria, sender,
               price_cents, time_limit_seconds, attempt_count, cancellation_requested, env_vars, attachments,
               presented_to_agents, structured_by, created_at, updated_at)
             SELECT gen_random_uuid(), 'queued', 'p', 't', 'd', 'r', '["c"]', ':sender', 400, 900, 0, false,
               '{}', '[]', '[]', 'heuristic', 2, 2 FROM w RETURNING id),
     t AS (INSERT INTO transfers (id, debit, credit, amount_cents, reason, job_id, created_at)
             SELECT gen_random_uuid(), 'wallet:' || ':sender', 'escrow:' || id, 400, 'job_payment', id, 2 FROM job)
INSERT INTO balances (account, balance_cents) SELECT 'escrow:' || id, 400 FROM job;
COMMIT;
-- pull (as the worker): one transaction, as in pull.sql
BEGIN;
WITH me AS (SELECT k.user_id AS owner, a.id AS agent FROM api_keys k
              JOIN agents a ON a.owner_id = k.user_id AND a.is_default
             WHERE k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8'))),
     c AS (SELECT j.id, j.created_at FROM jobs j, me WHERE j.status = 'queued' AND j.sender <> me.owner
             AND NOT EXISTS (SELECT 1 FROM presentations p WHERE p.agent_id = me.agent AND p.job_id = j.id)
           ORDER BY j.created_at, j.id LIMIT 32 FOR UPDATE OF j SKIP LOCKED)
SELECT (SELECT owner FROM me) AS owner, (SELECT agent FROM me) AS agent,
       COALESCE((SELECT id::text FROM c ORDER BY created_at, id LIMIT 1), '') AS id,
       (SELECT COUNT(*) FROM c) AS got \gset
\if :got > 0
WITH h AS (UPDATE jobs SET status = 'held', held_by_agent_id = ':agent', held_by_owner_id = ':owner',
             hold_expires_at = 9999999999999, updated_at = 3 WHERE id = ':id' RETURNING id)
INSERT INTO presentations (agent_id, job_id) SELECT ':agent', id FROM h ON CONFLICT DO NOTHING;
\endif
COMMIT;
\if :got > 0
-- accept: one statement (caller, hold check, transition, attempt row)
WITH me AS (SELECT user_id AS owner FROM api_keys
             WHERE key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8'))),
     a AS (UPDATE jobs j SET status = 'accepted', held_by_agent_id = NULL, held_by_owner_id = NULL,
             hold_expires_at = NULL, receiver = me.owner, receiver_agent_id = j.held_by_agent_id,
             accepted_at = 4, deadline_at = 9999999999999, attempt_count = j.attempt_count + 1, updated_at = 4
             FROM me WHERE j.id = ':id' AND j.status = 'held' AND j.held_by_owner_id = me.owner
               AND j.hold_expires_at > 4
           RETURNING j.id, j.attempt_count, j.receiver_agent_id)
INSERT INTO attempts (job_id, attempt, agent_id, outcome, earned_cents)
  SELECT id, attempt_count, receiver_agent_id, 'running', 0 FROM a;
-- submit: one statement (caller, deadline check, transition)
UPDATE jobs j SET status = 'submitted', output_text = 'out', submitted_at = 5, updated_at = 5
  FROM api_keys k WHERE j.id = ':id' AND j.status = 'accepted' AND j.receiver = k.user_id
   AND j.deadline_at > 5 AND k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8'));
-- the client opens the log stream: caller, visibility and the lines in one read
SELECT j.status, l.seq, l.message FROM jobs j JOIN api_keys k ON k.user_id IN (j.sender, j.receiver)
  LEFT JOIN log_lines l ON l.job_id = j.id
 WHERE j.id = ':id' AND k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8'));
-- verification: lease with its first line (the twin leases its own job: a puller's transient row lock
-- would make SKIP LOCKED find none, so it waits instead)
BEGIN;
UPDATE jobs SET verify_lease_until = 9999999999999
  WHERE id = (SELECT id FROM jobs WHERE status = 'submitted' AND id = ':id'
                AND (verify_lease_until IS NULL OR verify_lease_until <= 6) FOR UPDATE)
  RETURNING receiver AS rcv, receiver_agent_id AS ragent \gset
INSERT INTO log_lines (job_id, seq, at, level, message) VALUES (':id', 1, 6, 'info', 'started');
SELECT pg_notify('clawrk_job_events', ':id');
COMMIT;
-- verdict: the criteria lines, the verdict, the payout and the fee in one transaction
BEGIN;
INSERT INTO log_lines (job_id, seq, at, level, message) VALUES (':id', 2, 7, 'info', 'criterion'),
  (':id', 3, 7, 'info', 'verdict');
UPDATE jobs SET status = 'verified', verification = '{}', completed_at = 7, updated_at = 7,
  verify_lease_until = NULL WHERE id = ':id' AND status = 'submitted';
UPDATE attempts SET outcome = 'verified', earned_cents = 270 WHERE job_id = ':id' AND attempt = 1;
INSERT INTO transfers (id, debit, credit, amount_cents, reason, job_id, created_at)
  VALUES (gen_random_uuid(), 'escrow:' || ':id', 'wallet:' || ':rcv', 270, 'earning', ':id', 7),
         (gen_random_uuid(), 'escrow:' || ':id', 'platform', 130, 'fee', ':id', 7);
UPDATE balances SET balance_cents = balance_cents - 400 WHERE account = 'escrow:' || ':id';
UPDATE balances SET balance_cents = balance_cents + 130 WHERE account = 'platform';
UPDATE balances SET balance_cents = balance_cents + 270 WHERE account = 'wallet:' || ':rcv';
SELECT pg_notify('clawrk_job_events', ':id');
COMMIT;
-- the stream's last read after the wake-up
SELECT seq, at, level, message FROM log_lines WHERE job_id = ':id' AND seq > 1 ORDER BY seq;
\endif
