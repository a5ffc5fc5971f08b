-- W1 twin: the SQL statements one HTTP pull and the reject that follows cause in the PostgreSQL
-- store, in the same transactions: authenticate the key, find the caller's default agent, take up
-- to 32 oldest eligible queued jobs FOR UPDATE SKIP LOCKED and hold one (job row, presentation,
-- notification); then the reject (authenticate, the job, its holder agent, release).
-- pgbench variables: :client_id (one worker per client).
BEGIN;
SELECT u.id AS owner, u.name, u.created_at, COALESCE(b.balance_cents, 0) AS balance
  FROM users u LEFT JOIN balances b ON b.account = 'wallet:' || u.id::text
  JOIN api_keys k ON k.user_id = u.id
  WHERE k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8')) \gset
COMMIT;
BEGIN;
SELECT id AS agent FROM agents WHERE owner_id = ':owner' ORDER BY is_default DESC, created_at, id LIMIT 1 \gset
COMMIT;
BEGIN;
SELECT j.id, j.status, j.prompt, j.title, j.description, j.requirements, j.acceptance_criteria,
       j.sender, j.price_cents, j.time_limit_seconds, j.env_vars, j.attachments,
       j.presented_to_agents, j.created_at, j.updated_at
  FROM jobs j WHERE status = 'queued' AND sender <> ':owner' AND NOT EXISTS
  (SELECT 1 FROM presentations p WHERE p.agent_id = ':agent' AND p.job_id = j.id)
  ORDER BY created_at, id LIMIT 32 FOR UPDATE SKIP LOCKED \aset
UPDATE jobs SET status = 'held', held_by_agent_id = ':agent', held_by_owner_id = ':owner',
       hold_expires_at = 9999999999999, presented_to_agents = '["' || ':agent' || '"]',
       updated_at = 1, verify_lease_until = NULL
  WHERE id = ':id';
INSERT INTO presentations (agent_id, job_id) VALUES (':agent', ':id') ON CONFLICT DO NOTHING;
SELECT pg_notify('clawrk_job_events', ':id');
COMMIT;
-- reject (acting agent: the job's holder): authenticate, read the job and the agent, then release
BEGIN;
SELECT u.id FROM users u LEFT JOIN balances b ON b.account = 'wallet:' || u.id::text
  JOIN api_keys k ON k.user_id = u.id
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
UPDATE jobs SET status = 'queued', held_by_agent_id = NULL, held_by_owner_id = NULL,
       hold_expires_at = NULL, updated_at = 2, verify_lease_until = NULL
  WHERE id = ':id';
SELECT pg_notify('clawrk_job_events', ':id');
COMMIT;
