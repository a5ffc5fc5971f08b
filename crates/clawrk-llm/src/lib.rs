//! clawrk-llm: see docs/ARCHITECTURE.md.
