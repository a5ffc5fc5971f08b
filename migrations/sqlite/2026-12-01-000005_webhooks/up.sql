-- Webhooks (issue #18): endpoints, their deliveries, and the outbox they are made from.
--
-- Every status change of a job adds a row to job_events, written by a trigger in the statement
-- that changes the job: the event commits with the change or not at all, and no transition pays a
-- round trip for it. The row holds the job as it became (what the event shows its receivers), the
-- status it left and whose agent held or worked on it until then. The delivery worker turns rows
-- into webhook_deliveries (one per receiving endpoint) and deletes the rows nobody receives.

CREATE TABLE job_events (
    seq INTEGER PRIMARY KEY, -- the rowid: only a deleted last row's number is reused
    from_status TEXT,
    prev_operator TEXT,
    dispatched INTEGER NOT NULL DEFAULT 0,
    -- The job as it became: the columns of jobs (the verification lease is always NULL here).
    job_id TEXT NOT NULL,
    status TEXT NOT NULL,
    prompt TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    requirements TEXT NOT NULL,
    acceptance_criteria TEXT NOT NULL,
    sender TEXT NOT NULL,
    receiver TEXT,
    receiver_agent_id TEXT,
    held_by_agent_id TEXT,
    held_by_owner_id TEXT,
    hold_expires_at INTEGER,
    price_cents INTEGER NOT NULL,
    time_limit_seconds INTEGER NOT NULL,
    accepted_at INTEGER,
    deadline_at INTEGER,
    submitted_at INTEGER,
    completed_at INTEGER,
    attempt_count INTEGER NOT NULL,
    cancellation_requested INTEGER NOT NULL,
    output_text TEXT,
    output_attachments TEXT,
    env_vars TEXT NOT NULL,
    attachments TEXT NOT NULL,
    presented_to_agents TEXT NOT NULL,
    verification TEXT,
    verify_errors INTEGER NOT NULL,
    review_due_at INTEGER,
    structured_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    verify_lease_until INTEGER
) STRICT;
CREATE INDEX job_events_undispatched ON job_events (seq) WHERE NOT dispatched;
-- The sweeper's purge of events no delivery carries any more.
CREATE INDEX job_events_dispatched ON job_events (updated_at) WHERE dispatched;

CREATE TRIGGER jobs_event_on_insert AFTER INSERT ON jobs WHEN NEW.status = 'queued'
BEGIN
    INSERT INTO job_events (from_status, prev_operator, job_id, status, prompt, title, description, requirements, acceptance_criteria, sender, receiver, receiver_agent_id, held_by_agent_id, held_by_owner_id, hold_expires_at, price_cents, time_limit_seconds, accepted_at, deadline_at, submitted_at, completed_at, attempt_count, cancellation_requested, output_text, output_attachments, env_vars, attachments, presented_to_agents, verification, verify_errors, review_due_at, structured_by, created_at, updated_at, version)
        VALUES (NULL, NULL, NEW.id, NEW.status, NEW.prompt, NEW.title, NEW.description, NEW.requirements, NEW.acceptance_criteria, NEW.sender, NEW.receiver, NEW.receiver_agent_id, NEW.held_by_agent_id, NEW.held_by_owner_id, NEW.hold_expires_at, NEW.price_cents, NEW.time_limit_seconds, NEW.accepted_at, NEW.deadline_at, NEW.submitted_at, NEW.completed_at, NEW.attempt_count, NEW.cancellation_requested, NEW.output_text, NEW.output_attachments, NEW.env_vars, NEW.attachments, NEW.presented_to_agents, NEW.verification, NEW.verify_errors, NEW.review_due_at, NEW.structured_by, NEW.created_at, NEW.updated_at, NEW.version);
END;
CREATE TRIGGER jobs_event_on_update AFTER UPDATE OF status ON jobs WHEN OLD.status <> NEW.status
BEGIN
    INSERT INTO job_events (from_status, prev_operator, job_id, status, prompt, title, description, requirements, acceptance_criteria, sender, receiver, receiver_agent_id, held_by_agent_id, held_by_owner_id, hold_expires_at, price_cents, time_limit_seconds, accepted_at, deadline_at, submitted_at, completed_at, attempt_count, cancellation_requested, output_text, output_attachments, env_vars, attachments, presented_to_agents, verification, verify_errors, review_due_at, structured_by, created_at, updated_at, version)
        VALUES (OLD.status, COALESCE(OLD.held_by_owner_id, OLD.receiver), NEW.id, NEW.status, NEW.prompt, NEW.title, NEW.description, NEW.requirements, NEW.acceptance_criteria, NEW.sender, NEW.receiver, NEW.receiver_agent_id, NEW.held_by_agent_id, NEW.held_by_owner_id, NEW.hold_expires_at, NEW.price_cents, NEW.time_limit_seconds, NEW.accepted_at, NEW.deadline_at, NEW.submitted_at, NEW.completed_at, NEW.attempt_count, NEW.cancellation_requested, NEW.output_text, NEW.output_attachments, NEW.env_vars, NEW.attachments, NEW.presented_to_agents, NEW.verification, NEW.verify_errors, NEW.review_due_at, NEW.structured_by, NEW.created_at, NEW.updated_at, NEW.version);
END;

CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users(id),
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT,
    enabled INTEGER NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_endpoints_owner ON webhook_endpoints (owner_id, created_at);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints(id),
    event_seq INTEGER NOT NULL REFERENCES job_events(seq),
    event_type TEXT NOT NULL,
    event_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    next_at INTEGER,
    last_status INTEGER,
    last_error TEXT,
    give_up_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK ((state = 'pending') = (next_at IS NOT NULL))
) STRICT;
-- Plain indexes where the queries bind the state: a bound value cannot select a partial index.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_at, event_seq);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_seq);
CREATE INDEX webhook_deliveries_updated ON webhook_deliveries (updated_at);
