//! clawrk-sqlite: see docs/ARCHITECTURE.md.
