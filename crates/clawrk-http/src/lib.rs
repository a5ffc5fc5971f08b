//! clawrk-http: not built yet (see docs/ARCHITECTURE.md, "Adapters and binaries").
