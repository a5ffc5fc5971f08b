-- One store for both backends, and one round trip per operation.
--
-- * jobs.version: a job change is written only over the version it was computed from
--   (compare-and-set), so reads need no transaction and no row lock.
-- * presentations are indexed by the database from the job's holder (a trigger), so that a hold is
--   one statement; pull's anti-join reads them.
-- * The outside world and the platform keep no balance row: every top-up, withdrawal and fee would
--   otherwise update one shared row that all of them queue on. Their balances are their ledger sums.
-- * Indexes for the agent's own work list (jobs held by or received by a user).

ALTER TABLE jobs ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION clawrk_record_presentation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO presentations (agent_id, job_id) VALUES (NEW.held_by_agent_id, NEW.id)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_record_presentation AFTER UPDATE OF held_by_agent_id ON jobs
    FOR EACH ROW WHEN (NEW.held_by_agent_id IS NOT NULL)
    EXECUTE FUNCTION clawrk_record_presentation();

DELETE FROM balances WHERE account IN ('world', 'platform');

CREATE INDEX jobs_receiver ON jobs (receiver, created_at, id) WHERE receiver IS NOT NULL;
CREATE INDEX jobs_held_by_owner ON jobs (held_by_owner_id, created_at, id) WHERE held_by_owner_id IS NOT NULL;
