//! The clawrk server binary.
fn main() {}
