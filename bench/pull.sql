-- W1 twin: the statements the product sends PostgreSQL for one HTTP pull and the reject that
-- follows, in the same transactions. Authentication costs no statement (the instance remembers the
-- key), so the caller's key is joined into the agent lookup the pull makes anyway.
-- Pull: one transaction (the agent, up to 32 candidates FOR UPDATE SKIP LOCKED, the hold written
-- over the version read; the presentation is recorded by the schema's trigger).
-- Reject: the job read, then the release written over its version (one statement each, no
-- transaction). pgbench variables: :client_id (one worker per client).
BEGIN;
SELECT a.id AS agent, a.owner_id AS owner, a.name, a.personality, a.avatar_url, a.is_default, a.created_at
  FROM agents a JOIN api_keys k ON k.user_id = a.owner_id
 WHERE k.key_hash = sha256(convert_to('ck_' || lpad(to_hex(:client_id), 32, '0') || repeat('b', 32), 'UTF8'))
 ORDER BY a.is_default DESC, a.created_at, a.id LIMIT 1 \gset
SELECT j.id, j.status, j.prompt, j.title, j.description, j.requirements, j.acceptance_criteria,
       j.sender, j.receiver, j.receiver_agent_id, j.held_by_agent_id, j.held_by_owner_id,
       j.hold_expires_at, j.price_cents, j.time_limit_seconds, j.accepted_at, j.deadline_at,
       j.submitted_at, j.completed_at, j.attempt_count, j.cancellation_requested, j.output_text,
       j.output_attachments, j.env_vars, j.attachments, j.presented_to_agents, j.verification,
       j.structured_by, j.created_at, j.updated_at, j.version AS v, j.verify_lease_until
  FROM jobs j WHERE j.status = 'queued' AND j.sender <> ':owner' AND NOT EXISTS
  (SELECT 1 FROM presentations p WHERE p.agent_id = ':agent' AND p.job_id = j.id)
  ORDER BY j.created_at, j.id LIMIT 32 FOR UPDATE SKIP LOCKED \aset
UPDATE jobs SET status = 'held', prompt = prompt, title = title, description = description,
       requirements = requirements, acceptance_criteria = acceptance_criteria, sender = sender,
       receiver = receiver, receiver_agent_id = receiver_agent_id, held_by_agent_id = ':agent',
       held_by_owner_id = ':owner', hold_expires_at = 9999999999999, price_cents = price_cents,
       time_limit_seconds = time_limit_seconds, accepted_at = accepted_at, deadline_at = deadline_at,
       submitted_at = submitted_at, completed_at = completed_at, attempt_count = attempt_count,
       cancellation_requested = cancellation_requested, output_text = output_text,
       output_attachments = output_attachments, env_vars = env_vars, attachments = attachments,
       presented_to_agents = '["' || ':agent' || '"]', verification = verification,
       structured_by = structured_by, created_at = created_at, updated_at = 1, version = :v + 1,
       verify_lease_until = NULL
  WHERE id = ':id' AND version = :v;
COMMIT;
SELECT id, status, prompt, title, description, requirements, acceptance_criteria, sender, receiver,
       receiver_agent_id, held_by_agent_id, held_by_owner_id, hold_expires_at, price_cents,
       time_limit_seconds, accepted_at, deadline_at, submitted_at, completed_at, attempt_count,
       cancellation_requested, output_text, output_attachments, env_vars, attachments,
       presented_to_agents, verification, structured_by, created_at, updated_at, version AS v2,
       verify_lease_until
  FROM jobs WHERE id = ':id' \gset r_
UPDATE jobs SET status = 'queued', prompt = prompt, title = title, description = description,
       requirements = requirements, acceptance_criteria = acceptance_criteria, sender = sender,
       receiver = receiver, receiver_agent_id = receiver_agent_id, held_by_agent_id = NULL,
       held_by_owner_id = NULL, hold_expires_at = NULL, price_cents = price_cents,
       time_limit_seconds = time_limit_seconds, accepted_at = accepted_at, deadline_at = deadline_at,
       submitted_at = submitted_at, completed_at = completed_at, attempt_count = attempt_count,
       cancellation_requested = cancellation_requested, output_text = output_text,
       output_attachments = output_attachments, env_vars = env_vars, attachments = attachments,
       presented_to_agents = presented_to_agents, verification = verification,
       structured_by = structured_by, created_at = created_at, updated_at = 2, version = :r_v2 + 1,
       verify_lease_until = NULL
  WHERE id = ':id' AND version = :r_v2;
