//! clawrk-http: see docs/ARCHITECTURE.md.
