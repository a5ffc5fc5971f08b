-- The project's copy of ../shared/bench-limit/pull.sql (the limit twin the benchmark compares
-- against), changed only in the API keys' formula, to match the harness's seed (well-formed keys).
-- Limit twin of W1 (pull + reject): the fewest round trips the two operations need on the product's
-- schema. Pull: one transaction (caller and default agent joined into the candidate read, up to 32
-- candidates FOR UPDATE SKIP LOCKED so the application can still pick by matching, then one statement
-- holds the pick and records the presentation). Reject: one statement. No NOTIFY: nobody streams a
-- held job's log. :client_id picks the worker.
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
UPDATE jobs j SET status = 'queued', held_by_agent_id = NULL, held_by_owner_id = NULL,
       hold_expires_at = NULL, updated_at = 4
  FROM api_keys k JOIN agents a ON a.owner_id = k.user_id
 WHERE j.id = ':id' AND j.status = 'held' AND j.held_by_agent_id = a.id
   AND k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8'));
