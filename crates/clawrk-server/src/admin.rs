//! Operator commands on the configured store (SPEC §9). Each prints one JSON object on stdout.

use crate::cli::Admin;
use clawrk_domain::error::Result;
use clawrk_domain::ids::UserId;
use clawrk_domain::money::{Cents, Reason};
use clawrk_domain::service::Marketplace;
use clawrk_domain::user::{KeyHash, api_key_from};
use rand::RngCore;
use serde_json::{Value, json};

/// A new API key: `ck_` and 32 random bytes in hex (256 bits), shown once, stored as a hash.
pub fn new_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    api_key_from(bytes)
}

/// Issues a new API key for `user`; only its hash is stored.
async fn issue_key(market: &Marketplace, user: UserId) -> Result<String> {
    let key = new_api_key();
    market.add_api_key(user, KeyHash::of(&key)).await?;
    Ok(key)
}

/// Runs one admin command; the JSON object to print.
pub async fn run(market: &Marketplace, cmd: Admin) -> Result<Value> {
    match cmd {
        Admin::CreateUser { name } => {
            let user = market.create_user(&name).await?;
            let key = issue_key(market, user.id).await?;
            Ok(json!({ "user_id": user.id.to_string(), "name": user.name, "api_key": key }))
        }
        Admin::CreateKey { user } => {
            let user = market.find_user(&user).await?;
            let key = issue_key(market, user.id).await?;
            Ok(json!({ "user_id": user.id.to_string(), "api_key": key }))
        }
        Admin::Credit { user, cents } => {
            let user = market.find_user(&user).await?;
            let balance = market
                .adjust_balance(user.id, Cents(cents), Reason::Adjustment)
                .await?;
            Ok(json!({ "user_id": user.id.to_string(), "balance_cents": balance.get() }))
        }
    }
}
