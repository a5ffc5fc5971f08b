-- clawrk's PostgreSQL schema. Times are UTC milliseconds (BIGINT), money integer cents, ids UUID v7.
-- The embedded store (migrations/sqlite) has the same model. JSON values are kept as TEXT: the store
-- never queries inside them.

CREATE TABLE users (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users(id),
    key_hash    BYTEA NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    created_at  BIGINT NOT NULL
);

CREATE TABLE agents (
    id          UUID PRIMARY KEY,
    owner_id    UUID NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    personality TEXT,
    avatar_url  TEXT,
    is_default  BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (owner_id, name)
);
CREATE UNIQUE INDEX agents_one_default ON agents (owner_id) WHERE is_default;

CREATE TABLE jobs (
    id                     UUID PRIMARY KEY,
    status                 TEXT NOT NULL CHECK (status IN ('pending_payment', 'queued', 'held',
                               'accepted', 'submitted', 'verified', 'failed', 'cancelled')),
    prompt                 TEXT NOT NULL,
    title                  TEXT NOT NULL,
    description            TEXT NOT NULL,
    requirements           TEXT NOT NULL,
    acceptance_criteria    TEXT NOT NULL,            -- JSON array of strings
    sender                 UUID NOT NULL REFERENCES users(id),
    receiver               UUID REFERENCES users(id),
    receiver_agent_id      UUID,                     -- agents may be deleted; history keeps the id
    held_by_agent_id       UUID,
    held_by_owner_id       UUID REFERENCES users(id),
    hold_expires_at        BIGINT,
    price_cents            BIGINT NOT NULL CHECK (price_cents BETWEEN 100 AND 100000),
    time_limit_seconds     BIGINT NOT NULL CHECK (time_limit_seconds BETWEEN 60 AND 86400),
    accepted_at            BIGINT,
    deadline_at            BIGINT,
    submitted_at           BIGINT,
    completed_at           BIGINT,
    attempt_count          INTEGER NOT NULL CHECK (attempt_count BETWEEN 0 AND 3),
    cancellation_requested BOOLEAN NOT NULL,
    output_text            TEXT,
    output_attachments     TEXT,                     -- JSON
    env_vars               TEXT NOT NULL,            -- JSON object of strings
    attachments            TEXT NOT NULL,            -- JSON
    presented_to_agents    TEXT NOT NULL,            -- JSON array of agent ids, in order
    verification           TEXT,                     -- JSON verdict
    structured_by          TEXT NOT NULL,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    -- The verification worker's lease; never written by a job update.
    verify_lease_until     BIGINT,
    CHECK ((status = 'held') = (held_by_agent_id IS NOT NULL AND hold_expires_at IS NOT NULL)),
    CHECK (status NOT IN ('accepted', 'submitted') OR (receiver IS NOT NULL AND deadline_at IS NOT NULL))
);
CREATE INDEX jobs_queued ON jobs (created_at, id) WHERE status = 'queued';
CREATE INDEX jobs_sender ON jobs (sender, created_at, id);
CREATE INDEX jobs_hold_expiry ON jobs (hold_expires_at) WHERE status = 'held';
CREATE INDEX jobs_deadline ON jobs (deadline_at) WHERE status = 'accepted';
CREATE INDEX jobs_submitted ON jobs (submitted_at, id) WHERE status = 'submitted';
CREATE INDEX jobs_held_by ON jobs (held_by_agent_id) WHERE status = 'held';
CREATE INDEX jobs_receiver_agent ON jobs (receiver_agent_id) WHERE status IN ('accepted', 'submitted');

-- Which agents a job was presented to: pull's anti-join.
CREATE TABLE presentations (
    agent_id UUID NOT NULL,
    job_id   UUID NOT NULL REFERENCES jobs(id),
    PRIMARY KEY (agent_id, job_id)
);

-- One row per attempt (accept), for the directory's per-agent numbers.
CREATE TABLE attempts (
    job_id       UUID NOT NULL REFERENCES jobs(id),
    attempt      INTEGER NOT NULL CHECK (attempt BETWEEN 1 AND 3),
    agent_id     UUID NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('running', 'verified', 'failed')),
    earned_cents BIGINT NOT NULL CHECK (earned_cents >= 0),
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX attempts_agent ON attempts (agent_id, outcome);

-- Double entry: one row per transfer between two accounts ('world', 'platform', 'wallet:<id>',
-- 'escrow:<id>').
CREATE TABLE transfers (
    id           UUID PRIMARY KEY,
    debit        TEXT NOT NULL,
    credit       TEXT NOT NULL CHECK (credit <> debit),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    reason       TEXT NOT NULL CHECK (reason IN ('topup', 'job_payment', 'refund', 'earning', 'fee',
                     'withdrawal', 'adjustment')),
    job_id       UUID REFERENCES jobs(id),
    created_at   BIGINT NOT NULL
);
CREATE INDEX transfers_job ON transfers (job_id);
CREATE INDEX transfers_debit ON transfers (debit, id);
CREATE INDEX transfers_credit ON transfers (credit, id);

CREATE TABLE balances (
    account       TEXT PRIMARY KEY,
    balance_cents BIGINT NOT NULL CHECK (balance_cents >= 0 OR account = 'world')
);

CREATE TABLE log_lines (
    job_id  UUID NOT NULL REFERENCES jobs(id),
    seq     BIGINT NOT NULL CHECK (seq >= 1),
    at      BIGINT NOT NULL,
    level   TEXT NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- Phase-1 estimates reused by phase 2 (SPEC §5).
CREATE TABLE quotes (
    sender     UUID NOT NULL REFERENCES users(id),
    digest     BYTEA NOT NULL,
    structured TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (sender, digest)
);

CREATE TABLE idempotency (
    user_id    UUID NOT NULL REFERENCES users(id),
    key        TEXT NOT NULL,
    digest     BYTEA NOT NULL,
    response   BYTEA,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);
