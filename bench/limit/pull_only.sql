-- The limit twin's pull alone (the first transaction of bench/limit/pull.sql, unchanged), for W2:
-- pgbench logs each run's latency, so the benchmark reports this pull's p50 and p99 beside the
-- product's. The job stays held (as the product's bench holds for an hour), so each run takes a
-- fresh queued job; W1's seed has enough for the run.
BEGIN;
WITH me AS (SELECT k.user_id AS owner, a.id AS agent FROM api_keys k
              JOIN agents a ON a.owner_id = k.user_id AND a.is_default
             WHERE k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8'))),
     c AS (SELECT j.id, j.created_at FROM jobs j, me WHERE j.status = 'queued' AND j.sender <> me.owner
             AND NOT EXISTS (SELECT 1 FROM presentations p WHERE p.agent_id = me.agent AND p.job_id = j.id)
           ORDER BY j.created_at, j.id LIMIT 32 FOR UPDATE OF j SKIP LOCKED)
SELECT (SELECT owner FROM me) AS owner, (SELECT agent FROM me) AS agent,
       COALESCE((SELECT id::text FROM c ORDER BY created_at, id LIMIT 1), '') AS id \gset
WITH h AS (UPDATE jobs SET status = 'held', held_by_agent_id = ':agent', held_by_owner_id = ':owner',
             hold_expires_at = 9999999999999, updated_at = 3 WHERE id = ':id' RETURNING id)
INSERT INTO presentations (agent_id, job_id) SELECT ':agent', id FROM h ON CONFLICT DO NOTHING;
COMMIT;
