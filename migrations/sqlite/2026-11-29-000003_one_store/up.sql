-- One store for both backends (see migrations/postgres for the same change), and STRICT tables:
-- a column declared INTEGER holds only integers, so an overflowing sum can never be stored as a
-- REAL. Every table is rebuilt (SQLite cannot change a table's type in place); the store runs
-- migrations with foreign keys off and checks them afterwards, as SQLite's procedure asks.
--
-- * jobs.version: a job change is written only over the version it was computed from.
-- * presentations are indexed from the job's holder by a trigger.
-- * The outside world and the platform keep no balance row: their balances are their ledger sums.
-- * Indexes for the agent's own work list.

CREATE TABLE users_new (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO users_new (id, name, created_at) SELECT id, name, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

CREATE TABLE api_keys_new (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    key_hash BLOB NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO api_keys_new (id, user_id, key_hash, created_at) SELECT id, user_id, key_hash, created_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;

CREATE TABLE agents_new (
    id TEXT PRIMARY KEY NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    personality TEXT,
    avatar_url TEXT,
    is_default INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (owner_id, name)
) STRICT;
INSERT INTO agents_new (id, owner_id, name, personality, avatar_url, is_default, created_at) SELECT id, owner_id, name, personality, avatar_url, is_default, created_at FROM agents;
DROP TABLE agents;
ALTER TABLE agents_new RENAME TO agents;
CREATE UNIQUE INDEX agents_one_default ON agents (owner_id) WHERE is_default;

CREATE TABLE jobs_new (
    id TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending_payment', 'queued', 'held',
                               'accepted', 'submitted', 'verified', 'failed', 'cancelled')),
    prompt TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    requirements TEXT NOT NULL,
    acceptance_criteria TEXT NOT NULL,
    sender TEXT NOT NULL REFERENCES users(id),
    receiver TEXT REFERENCES users(id),
    receiver_agent_id TEXT,
    held_by_agent_id TEXT,
    held_by_owner_id TEXT REFERENCES users(id),
    hold_expires_at INTEGER,
    price_cents INTEGER NOT NULL CHECK (price_cents BETWEEN 100 AND 100000),
    time_limit_seconds INTEGER NOT NULL CHECK (time_limit_seconds BETWEEN 60 AND 86400),
    accepted_at INTEGER,
    deadline_at INTEGER,
    submitted_at INTEGER,
    completed_at INTEGER,
    attempt_count INTEGER NOT NULL CHECK (attempt_count BETWEEN 0 AND 3),
    cancellation_requested INTEGER NOT NULL,
    output_text TEXT,
    output_attachments TEXT,
    env_vars TEXT NOT NULL,
    attachments TEXT NOT NULL,
    presented_to_agents TEXT NOT NULL,
    verification TEXT,
    structured_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    verify_lease_until INTEGER,
    version INTEGER NOT NULL DEFAULT 0,
    CHECK ((status = 'held') = (held_by_agent_id IS NOT NULL AND hold_expires_at IS NOT NULL)),
    CHECK (status NOT IN ('accepted', 'submitted') OR (receiver IS NOT NULL AND deadline_at IS NOT NULL))
) STRICT;
INSERT INTO jobs_new (id, status, prompt, title, description, requirements, acceptance_criteria, sender, receiver, receiver_agent_id, held_by_agent_id, held_by_owner_id, hold_expires_at, price_cents, time_limit_seconds, accepted_at, deadline_at, submitted_at, completed_at, attempt_count, cancellation_requested, output_text, output_attachments, env_vars, attachments, presented_to_agents, verification, structured_by, created_at, updated_at, verify_lease_until) SELECT id, status, prompt, title, description, requirements, acceptance_criteria, sender, receiver, receiver_agent_id, held_by_agent_id, held_by_owner_id, hold_expires_at, price_cents, time_limit_seconds, accepted_at, deadline_at, submitted_at, completed_at, attempt_count, cancellation_requested, output_text, output_attachments, env_vars, attachments, presented_to_agents, verification, structured_by, created_at, updated_at, verify_lease_until FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_queued ON jobs (created_at, id) WHERE status = 'queued';
CREATE INDEX jobs_sender ON jobs (sender, created_at, id);
CREATE INDEX jobs_hold_expiry ON jobs (hold_expires_at) WHERE status = 'held';
CREATE INDEX jobs_deadline ON jobs (deadline_at) WHERE status = 'accepted';
CREATE INDEX jobs_submitted ON jobs (submitted_at, id) WHERE status = 'submitted';
CREATE INDEX jobs_held_by ON jobs (held_by_agent_id) WHERE status = 'held';
CREATE INDEX jobs_receiver_agent ON jobs (receiver_agent_id) WHERE status IN ('accepted', 'submitted');
CREATE INDEX jobs_receiver ON jobs (receiver, created_at, id) WHERE receiver IS NOT NULL;
CREATE INDEX jobs_held_by_owner ON jobs (held_by_owner_id, created_at, id) WHERE held_by_owner_id IS NOT NULL;

CREATE TABLE presentations_new (
    agent_id TEXT NOT NULL,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    PRIMARY KEY (agent_id, job_id)
) WITHOUT ROWID, STRICT;
INSERT INTO presentations_new (agent_id, job_id) SELECT agent_id, job_id FROM presentations;
DROP TABLE presentations;
ALTER TABLE presentations_new RENAME TO presentations;

CREATE TABLE attempts_new (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    attempt INTEGER NOT NULL CHECK (attempt BETWEEN 1 AND 3),
    agent_id TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('running', 'verified', 'failed')),
    earned_cents INTEGER NOT NULL CHECK (earned_cents >= 0),
    PRIMARY KEY (job_id, attempt)
) STRICT;
INSERT INTO attempts_new (job_id, attempt, agent_id, outcome, earned_cents) SELECT job_id, attempt, agent_id, outcome, earned_cents FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_new RENAME TO attempts;
CREATE INDEX attempts_agent ON attempts (agent_id, outcome);

CREATE TABLE transfers_new (
    id TEXT PRIMARY KEY NOT NULL,
    debit TEXT NOT NULL,
    credit TEXT NOT NULL CHECK (credit <> debit),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    reason TEXT NOT NULL CHECK (reason IN ('topup', 'job_payment', 'refund', 'earning', 'fee',
                     'withdrawal', 'adjustment')),
    job_id TEXT REFERENCES jobs(id),
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO transfers_new (id, debit, credit, amount_cents, reason, job_id, created_at) SELECT id, debit, credit, amount_cents, reason, job_id, created_at FROM transfers;
DROP TABLE transfers;
ALTER TABLE transfers_new RENAME TO transfers;
CREATE INDEX transfers_debit ON transfers (debit, id);
CREATE INDEX transfers_credit ON transfers (credit, id);

CREATE TABLE balances_new (
    account TEXT PRIMARY KEY NOT NULL,
    balance_cents INTEGER NOT NULL CHECK (balance_cents >= 0 OR account = 'world')
) STRICT;
INSERT INTO balances_new (account, balance_cents) SELECT account, balance_cents FROM balances WHERE account NOT IN ('world', 'platform');
DROP TABLE balances;
ALTER TABLE balances_new RENAME TO balances;

CREATE TABLE log_lines_new (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    seq INTEGER NOT NULL CHECK (seq >= 1),
    at INTEGER NOT NULL,
    level TEXT NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) STRICT;
INSERT INTO log_lines_new (job_id, seq, at, level, message) SELECT job_id, seq, at, level, message FROM log_lines;
DROP TABLE log_lines;
ALTER TABLE log_lines_new RENAME TO log_lines;

CREATE TABLE quotes_new (
    sender TEXT NOT NULL REFERENCES users(id),
    digest BLOB NOT NULL,
    structured TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (sender, digest)
) STRICT;
INSERT INTO quotes_new (sender, digest, structured, expires_at) SELECT sender, digest, structured, expires_at FROM quotes;
DROP TABLE quotes;
ALTER TABLE quotes_new RENAME TO quotes;
CREATE INDEX quotes_expiry ON quotes (expires_at);

CREATE TABLE idempotency_new (
    user_id TEXT NOT NULL REFERENCES users(id),
    key TEXT NOT NULL,
    digest BLOB NOT NULL,
    response BLOB,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT;
INSERT INTO idempotency_new (user_id, key, digest, response, expires_at) SELECT user_id, key, digest, response, expires_at FROM idempotency;
DROP TABLE idempotency;
ALTER TABLE idempotency_new RENAME TO idempotency;
CREATE INDEX idempotency_expiry ON idempotency (expires_at);

-- The database indexes the job's holder as presented (pull's anti-join), so a hold is one statement.
CREATE TRIGGER jobs_record_presentation AFTER UPDATE OF held_by_agent_id ON jobs
    WHEN NEW.held_by_agent_id IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO presentations (agent_id, job_id) VALUES (NEW.held_by_agent_id, NEW.id);
END;
