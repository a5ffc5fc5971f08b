-- An outbox row only for a change someone could be told of (issue #14): every status change
-- copied the whole job into job_events, which the delivery worker then read and deleted, for every
-- job of users without a webhook endpoint (most of them) too. The trigger now writes the row only
-- when the job's sender, or the owner whose agent holds or works on it (or did until this change),
-- has an endpoint — a superset of who the domain tells (webhook::JobEvent::recipients), which still
-- decides. An endpoint receives the changes that commit after it does.

CREATE OR REPLACE FUNCTION clawrk_record_job_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE owner_id IN
                (NEW.sender, NEW.held_by_owner_id, NEW.receiver, OLD.held_by_owner_id, OLD.receiver)) THEN
            RETURN NULL;
        END IF;
        INSERT INTO job_events (from_status, prev_operator, job_id, status, prompt, title, description, requirements, acceptance_criteria, sender, receiver, receiver_agent_id, held_by_agent_id, held_by_owner_id, hold_expires_at, price_cents, time_limit_seconds, accepted_at, deadline_at, submitted_at, completed_at, attempt_count, cancellation_requested, output_text, output_attachments, env_vars, attachments, presented_to_agents, verification, verify_errors, review_due_at, structured_by, created_at, updated_at, version)
            VALUES (OLD.status, COALESCE(OLD.held_by_owner_id, OLD.receiver), NEW.id, NEW.status, NEW.prompt, NEW.title, NEW.description, NEW.requirements, NEW.acceptance_criteria, NEW.sender, NEW.receiver, NEW.receiver_agent_id, NEW.held_by_agent_id, NEW.held_by_owner_id, NEW.hold_expires_at, NEW.price_cents, NEW.time_limit_seconds, NEW.accepted_at, NEW.deadline_at, NEW.submitted_at, NEW.completed_at, NEW.attempt_count, NEW.cancellation_requested, NEW.output_text, NEW.output_attachments, NEW.env_vars, NEW.attachments, NEW.presented_to_agents, NEW.verification, NEW.verify_errors, NEW.review_due_at, NEW.structured_by, NEW.created_at, NEW.updated_at, NEW.version);
    ELSE
        IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE owner_id IN
                (NEW.sender, NEW.held_by_owner_id, NEW.receiver)) THEN
            RETURN NULL;
        END IF;
        INSERT INTO job_events (from_status, prev_operator, job_id, status, prompt, title, description, requirements, acceptance_criteria, sender, receiver, receiver_agent_id, held_by_agent_id, held_by_owner_id, hold_expires_at, price_cents, time_limit_seconds, accepted_at, deadline_at, submitted_at, completed_at, attempt_count, cancellation_requested, output_text, output_attachments, env_vars, attachments, presented_to_agents, verification, verify_errors, review_due_at, structured_by, created_at, updated_at, version)
            VALUES (NULL, NULL, NEW.id, NEW.status, NEW.prompt, NEW.title, NEW.description, NEW.requirements, NEW.acceptance_criteria, NEW.sender, NEW.receiver, NEW.receiver_agent_id, NEW.held_by_agent_id, NEW.held_by_owner_id, NEW.hold_expires_at, NEW.price_cents, NEW.time_limit_seconds, NEW.accepted_at, NEW.deadline_at, NEW.submitted_at, NEW.completed_at, NEW.attempt_count, NEW.cancellation_requested, NEW.output_text, NEW.output_attachments, NEW.env_vars, NEW.attachments, NEW.presented_to_agents, NEW.verification, NEW.verify_errors, NEW.review_due_at, NEW.structured_by, NEW.created_at, NEW.updated_at, NEW.version);
    END IF;
    RETURN NULL;
END
$$;
