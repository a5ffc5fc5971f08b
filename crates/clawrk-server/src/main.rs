//! The clawrk server binary (not built yet: see README, "What works today").

fn main() {
    eprintln!("clawrk-server: the HTTP server is not built yet; see README.md");
    std::process::exit(2);
}
