-- Files (issue #19): uploads' metadata (their bytes are in the file store) and the jobs that
-- reference them. A file is removed by the sweeper once it is a day old and nothing references
-- it; a reference keeps it for as long as the job exists.

CREATE TABLE files (
    id           TEXT PRIMARY KEY NOT NULL,
    owner_id     TEXT NOT NULL REFERENCES users(id),
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL CHECK (size_bytes >= 0),
    sha256       TEXT NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX files_owner ON files (owner_id);
CREATE INDEX files_created ON files (created_at);

CREATE TABLE job_files (
    job_id  TEXT NOT NULL REFERENCES jobs(id),
    role    TEXT NOT NULL CHECK (role IN ('input', 'output')),
    file_id TEXT NOT NULL REFERENCES files(id),
    attempt INTEGER NOT NULL CHECK (attempt >= 0),
    PRIMARY KEY (job_id, role, file_id)
) STRICT;
-- Who may download a file, and whether the sweeper may remove it.
CREATE INDEX job_files_file ON job_files (file_id);
