//! The `clawrk` command-line client (not built yet: see README, "What works today").

fn main() {
    eprintln!("clawrk: the command-line client is not built yet; see README.md");
    std::process::exit(2);
}
