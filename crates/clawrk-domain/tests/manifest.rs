//! The domain stays pure: its manifest may not gain I/O, framework or runtime dependencies.

const FORBIDDEN: &[&str] = &[
    "diesel",
    "diesel-async",
    "diesel_migrations",
    "actix",
    "actix-web",
    "async-openai",
    "tokio",
    "serde_json",
    "anyhow",
    "reqwest",
];

#[test]
fn domain_manifest_has_no_io_dependencies() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let manifest = std::fs::read_to_string(path).expect("read the domain's Cargo.toml");
    let mut section = String::new();
    let mut offenders = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_string();
            continue;
        }
        if !section.contains("dependencies") || line.starts_with('#') {
            continue;
        }
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim().trim_matches('"');
        // `foo.workspace = true` names the crate before the dot.
        let name = name.split('.').next().unwrap_or(name);
        if FORBIDDEN
            .iter()
            .any(|f| name == *f || name.starts_with("actix"))
        {
            offenders.push(format!("{name} (in [{section}])"));
        }
    }
    assert!(
        offenders.is_empty(),
        "clawrk-domain must stay free of I/O dependencies, found: {offenders:?}"
    );
}
