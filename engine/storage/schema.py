"""The session file's tables: their shape, column by column, and the version that names it."""

#: Bumped whenever a table changes shape; older files are refused with a clear message.
SCHEMA_VERSION = 1

#: Every table, created where missing: run on each open, so a file gains tables newer than it
#: (such as verdicts) without a schema bump.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL            -- JSON
);
CREATE TABLE IF NOT EXISTS problems (
    problem_id    TEXT PRIMARY KEY,
    position      INTEGER NOT NULL, -- order in the work list
    format        TEXT NOT NULL,    -- humaneval, mbpp, gsm8k, math, arithmetic
    prompt        TEXT NOT NULL,    -- the text sent to the model, after the chat template
    prompt_tokens INTEGER NOT NULL, -- its length, tokens
    stop          TEXT NOT NULL,    -- JSON list of stop strings
    data          TEXT NOT NULL     -- JSON: the problem as loaded (question, tests, answer...)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id      INTEGER PRIMARY KEY,
    started_at  REAL NOT NULL,      -- unix time, seconds
    finished_at REAL,               -- NULL while running or after a crash
    status      TEXT NOT NULL,      -- running, completed, cancelled, failed
    settings    TEXT NOT NULL,      -- JSON: parallel, threads, gpu_layers, kv cache, versions
    error       TEXT
);
CREATE TABLE IF NOT EXISTS prompt_evals (
    run_id     INTEGER NOT NULL REFERENCES runs(run_id),
    problem_id TEXT NOT NULL,
    n_tokens   INTEGER NOT NULL,    -- tokens evaluated once and shared by the samples after it
    wall_s     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    problem_id        TEXT NOT NULL REFERENCES problems(problem_id),
    sample_index      INTEGER NOT NULL, -- 0-based, per problem
    seed              INTEGER NOT NULL, -- seed of the sample's sampler chain
    temperature       REAL NOT NULL,
    top_k             INTEGER NOT NULL,
    top_p             REAL NOT NULL,
    min_p             REAL NOT NULL,
    max_tokens        INTEGER NOT NULL,
    text              TEXT NOT NULL,    -- the completion as decoded, cut before a stop string
    tokens            BLOB NOT NULL,    -- completion token ids, int32 little-endian
    prompt_tokens     INTEGER NOT NULL, -- length of the prompt it continued (shared, not re-paid)
    completion_tokens INTEGER NOT NULL,
    finish_reason     TEXT NOT NULL,    -- eos, stop, length
    stop              TEXT,             -- the stop string that ended it, if any
    wall_s            REAL NOT NULL,    -- seconds from its first decode step to its last
    logprob           REAL NOT NULL,    -- sum of log p(token) under the raw model, nats
    run_id            INTEGER NOT NULL REFERENCES runs(run_id),
    created_at        REAL NOT NULL,    -- unix time it was stored
    PRIMARY KEY (problem_id, sample_index)
);
CREATE TABLE IF NOT EXISTS verdicts (
    problem_id   TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    verifier     TEXT NOT NULL,     -- registered verifier name, e.g. python-tests
    version      TEXT NOT NULL,     -- verifier version: other versions' verdicts are outdated
    tests_digest TEXT NOT NULL,     -- sha256 of the problem's tests/answer it was judged against
    status       TEXT NOT NULL,     -- pass, fail, timeout, resource, crash, invalid, infra_error
    duration_s   REAL NOT NULL,
    output       TEXT NOT NULL,     -- captured output of the checked program (capped)
    truncated    INTEGER NOT NULL,  -- 1 when output was cut at the cap
    detail       TEXT NOT NULL,     -- one-line reason
    tier         TEXT NOT NULL,     -- sandbox tier: bwrap or rlimits
    extra        TEXT NOT NULL,     -- JSON, verifier-specific (e.g. the extracted answer)
    created_at   REAL NOT NULL,
    PRIMARY KEY (problem_id, sample_index, verifier, version, tests_digest),
    FOREIGN KEY (problem_id, sample_index) REFERENCES samples(problem_id, sample_index)
);
CREATE TABLE IF NOT EXISTS marks (
    problem_id   TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    label        TEXT NOT NULL,     -- a person's judgement, e.g. false positive, flaky test
    note         TEXT NOT NULL,     -- free text, may be empty
    created_at   REAL NOT NULL,     -- unix time of the last edit, seconds
    PRIMARY KEY (problem_id, sample_index, label),
    FOREIGN KEY (problem_id, sample_index) REFERENCES samples(problem_id, sample_index)
);
"""
