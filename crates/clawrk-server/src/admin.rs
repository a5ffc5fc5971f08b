//! Operator commands on the configured store (SPEC §9). Each prints one JSON object on stdout.

use crate::cli::Admin;
use crate::wiring::SystemClock;
use clawrk_domain::error::Result;
use clawrk_domain::ids::UserId;
use clawrk_domain::money::{Cents, Reason};
use clawrk_domain::ports::{Clock, Store};
use clawrk_domain::user::KeyHash;
use rand::RngCore;
use serde_json::{Value, json};

/// A new API key: `ck_` and 32 random bytes in hex (256 bits), shown once, stored as a hash.
pub fn new_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("ck_{}", hex::encode(bytes))
}

/// Issues a new API key for `user`; only its hash is stored.
async fn issue_key(store: &dyn Store, user: UserId, clock: &SystemClock) -> Result<String> {
    let key = new_api_key();
    store
        .create_api_key(user, KeyHash::of(&key), clock.now())
        .await?;
    Ok(key)
}

/// Runs one admin command; the JSON object to print.
pub async fn run(store: &dyn Store, cmd: Admin) -> Result<Value> {
    let clock = SystemClock;
    match cmd {
        Admin::CreateUser { name } => {
            let user = store.create_user(&name, clock.now()).await?;
            let key = issue_key(store, user.id, &clock).await?;
            Ok(json!({ "user_id": user.id.to_string(), "name": user.name, "api_key": key }))
        }
        Admin::CreateKey { user } => {
            let user = store.find_user(&user).await?;
            let key = issue_key(store, user.id, &clock).await?;
            Ok(json!({ "user_id": user.id.to_string(), "api_key": key }))
        }
        Admin::Credit { user, cents } => {
            let user = store.find_user(&user).await?;
            let balance = store
                .adjust_balance(user.id, Cents(cents), Reason::Adjustment, clock.now())
                .await?;
            Ok(json!({ "user_id": user.id.to_string(), "balance_cents": balance.get() }))
        }
    }
}
