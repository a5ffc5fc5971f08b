-- Back to the previous schema (non-STRICT, world and platform balance rows).

DROP TRIGGER jobs_record_presentation;

CREATE TABLE users_new (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
INSERT INTO users_new (id, name, created_at) SELECT id, name, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

CREATE TABLE api_keys_new (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    key_hash BLOB NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at BIGINT NOT NULL
);
INSERT INTO api_keys_new (id, user_id, key_hash, created_at) SELECT id, user_id, key_hash, created_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;

CREATE TABLE agents_new (
    id TEXT PRIMARY KEY NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    personality TEXT,
    avatar_url TEXT,
    is_default BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (owner_id, name)
);
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
    hold_expires_at BIGINT,
    price_cents BIGINT NOT NULL CHECK (price_cents BETWEEN 100 AND 100000),
    time_limit_seconds BIGINT NOT NULL CHECK (time_limit_seconds BETWEEN 60 AND 86400),
    accepted_at BIGINT,
    deadline_at BIGINT,
    submitted_at BIGINT,
    completed_at BIGINT,
    attempt_count INTEGER NOT NULL CHECK (attempt_count BETWEEN 0 AND 3),
    cancellation_requested BOOLEAN NOT NULL,
    output_text TEXT,
    output_attachments TEXT,
    env_vars TEXT NOT NULL,
    attachments TEXT NOT NULL,
    presented_to_agents TEXT NOT NULL,
    verification TEXT,
    structured_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    verify_lease_until BIGINT,
    CHECK ((status = 'held') = (held_by_agent_id IS NOT NULL AND hold_expires_at IS NOT NULL)),
    CHECK (status NOT IN ('accepted', 'submitted') OR (receiver IS NOT NULL AND deadline_at IS NOT NULL))
);
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

CREATE TABLE presentations_new (
    agent_id TEXT NOT NULL,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    PRIMARY KEY (agent_id, job_id)
) WITHOUT ROWID;
INSERT INTO presentations_new (agent_id, job_id) SELECT agent_id, job_id FROM presentations;
DROP TABLE presentations;
ALTER TABLE presentations_new RENAME TO presentations;

CREATE TABLE attempts_new (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    attempt INTEGER NOT NULL CHECK (attempt BETWEEN 1 AND 3),
    agent_id TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('running', 'verified', 'failed')),
    earned_cents BIGINT NOT NULL CHECK (earned_cents >= 0),
    PRIMARY KEY (job_id, attempt)
);
INSERT INTO attempts_new (job_id, attempt, agent_id, outcome, earned_cents) SELECT job_id, attempt, agent_id, outcome, earned_cents FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_new RENAME TO attempts;
CREATE INDEX attempts_agent ON attempts (agent_id, outcome);

CREATE TABLE transfers_new (
    id TEXT PRIMARY KEY NOT NULL,
    debit TEXT NOT NULL,
    credit TEXT NOT NULL CHECK (credit <> debit),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    reason TEXT NOT NULL CHECK (reason IN ('topup', 'job_payment', 'refund', 'earning', 'fee',
                     'withdrawal', 'adjustment')),
    job_id TEXT REFERENCES jobs(id),
    created_at BIGINT NOT NULL
);
INSERT INTO transfers_new (id, debit, credit, amount_cents, reason, job_id, created_at) SELECT id, debit, credit, amount_cents, reason, job_id, created_at FROM transfers;
DROP TABLE transfers;
ALTER TABLE transfers_new RENAME TO transfers;
CREATE INDEX transfers_debit ON transfers (debit, id);
CREATE INDEX transfers_credit ON transfers (credit, id);

CREATE TABLE balances_new (
    account TEXT PRIMARY KEY NOT NULL,
    balance_cents BIGINT NOT NULL CHECK (balance_cents >= 0 OR account = 'world')
);
INSERT INTO balances_new (account, balance_cents) SELECT account, balance_cents FROM balances;
INSERT INTO balances_new (account, balance_cents)
SELECT a.column1,
       COALESCE((SELECT SUM(amount_cents) FROM transfers WHERE credit = a.column1), 0)
     - COALESCE((SELECT SUM(amount_cents) FROM transfers WHERE debit = a.column1), 0)
FROM (VALUES ('world'), ('platform')) AS a
WHERE EXISTS (SELECT 1 FROM transfers WHERE credit = a.column1 OR debit = a.column1);
DROP TABLE balances;
ALTER TABLE balances_new RENAME TO balances;

CREATE TABLE log_lines_new (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    seq BIGINT NOT NULL CHECK (seq >= 1),
    at BIGINT NOT NULL,
    level TEXT NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
INSERT INTO log_lines_new (job_id, seq, at, level, message) SELECT job_id, seq, at, level, message FROM log_lines;
DROP TABLE log_lines;
ALTER TABLE log_lines_new RENAME TO log_lines;

CREATE TABLE quotes_new (
    sender TEXT NOT NULL REFERENCES users(id),
    digest BLOB NOT NULL,
    structured TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (sender, digest)
);
INSERT INTO quotes_new (sender, digest, structured, expires_at) SELECT sender, digest, structured, expires_at FROM quotes;
DROP TABLE quotes;
ALTER TABLE quotes_new RENAME TO quotes;
CREATE INDEX quotes_expiry ON quotes (expires_at);

CREATE TABLE idempotency_new (
    user_id TEXT NOT NULL REFERENCES users(id),
    key TEXT NOT NULL,
    digest BLOB NOT NULL,
    response BLOB,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);
INSERT INTO idempotency_new (user_id, key, digest, response, expires_at) SELECT user_id, key, digest, response, expires_at FROM idempotency;
DROP TABLE idempotency;
ALTER TABLE idempotency_new RENAME TO idempotency;
CREATE INDEX idempotency_expiry ON idempotency (expires_at);

