//! The clawrk CLI.
fn main() {}
