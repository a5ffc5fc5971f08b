//! What the CLI remembers between runs, under `~/.clawrk/`: the API key (`credentials.json`, mode
//! 0600 in a 0700 directory) and the working state (`state.json`: per API key, the agent chosen
//! with `use` and the job last pulled or claimed, so `accept`, `submit`… need no id). The state is
//! filed under a digest of the key, so two keys on one machine never share an agent choice.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::PathBuf;

/// The stored login.
#[derive(Serialize, Deserialize, Default)]
pub struct Credentials {
    pub api_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

/// The remembered working state of one API key.
#[derive(Serialize, Deserialize, Default, Clone)]
pub struct State {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// `state.json`: the states by key digest.
#[derive(Serialize, Deserialize, Default)]
struct States {
    #[serde(default)]
    by_key: std::collections::BTreeMap<String, State>,
}

/// Files state under a digest of the key (never the key itself).
fn key_digest(key: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes())
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `~/.clawrk`.
pub fn dir() -> Result<PathBuf, String> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".clawrk"))
        .ok_or_else(|| "HOME is not set: cannot find ~/.clawrk".to_string())
}

fn read<T: for<'de> Deserialize<'de> + Default>(name: &str) -> Result<Option<T>, String> {
    let path = dir()?.join(name);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is not valid JSON: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes `value` to `~/.clawrk/<name>` with owner-only permissions, atomically (temp + rename).
fn write<T: Serialize>(name: &str, value: &T) -> Result<(), String> {
    let dir = dir()?;
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
    }
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(&bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn credentials() -> Result<Option<Credentials>, String> {
    read("credentials.json")
}

pub fn save_credentials(c: &Credentials) -> Result<(), String> {
    write("credentials.json", c)
}

pub fn forget_credentials() -> Result<bool, String> {
    let path = dir()?.join("credentials.json");
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

/// The state of `key`.
pub fn state(key: &str) -> Result<State, String> {
    let all: States = read("state.json")?.unwrap_or_default();
    Ok(all
        .by_key
        .get(&key_digest(key))
        .cloned()
        .unwrap_or_default())
}

/// Saves the state of `key`.
pub fn save_state(key: &str, s: &State) -> Result<(), String> {
    let mut all: States = read("state.json")?.unwrap_or_default();
    all.by_key.insert(key_digest(key), s.clone());
    write("state.json", &all)
}
