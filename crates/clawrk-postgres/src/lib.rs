//! clawrk-postgres: see docs/ARCHITECTURE.md.
