//! Users, their API keys, agents and wallets: creating users, the agent directory and the rules of
//! changing agents, top-ups, withdrawals and operator credits.

use super::idempotency::write_answer;
use super::{Answer, Answered, Marketplace, Principal, post};
use crate::error::{DomainError, Result};
use crate::ids::{AgentId, ApiKeyId, TransferId, UserId};
use crate::job::JobStatus;
use crate::money::{
    Account, Cents, LedgerEntry, MAX_AMOUNT, MIN_TOPUP, MIN_WITHDRAWAL, Reason, Transfer,
};
use crate::ports::{JobFilter, Page, Tx};
use crate::text::{no_nul, no_nul_opt};
use crate::user::{
    self, Agent, AgentPatch, AgentProfile, DEFAULT_AGENT_NAME, KeyHash, NewAgent, User,
};

fn owned_agent(tx: &mut dyn Tx, owner: UserId, id: AgentId) -> Result<Agent> {
    match tx.agent(id)? {
        Some(a) if a.owner_id == owner => Ok(a),
        _ => Err(DomainError::NotFound("agent")),
    }
}

fn clean_optional(field: &str, v: Option<String>) -> Result<Option<String>> {
    no_nul_opt(field, v.as_deref())?;
    Ok(v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
}

fn agent_name(name: &str) -> Result<String> {
    no_nul("name", name)?;
    user::valid_name(name, "name")
}

fn taken(name: &str) -> DomainError {
    DomainError::Conflict(format!("you already have an agent named {name:?}"))
}

/// Renames a unique-violation conflict to `msg`; other errors pass.
fn conflict_as(e: DomainError, msg: impl FnOnce() -> DomainError) -> DomainError {
    match e {
        DomainError::Conflict(_) => msg(),
        other => other,
    }
}

/// Whether the agent holds a job or works on one: `held` by it, or `accepted`/`submitted` with it
/// as the receiver agent.
fn agent_is_busy(tx: &mut dyn Tx, agent: AgentId) -> Result<bool> {
    let filter = JobFilter {
        agent: Some(agent),
        statuses: vec![JobStatus::Held, JobStatus::Accepted, JobStatus::Submitted],
        ..JobFilter::default()
    };
    let mut page = Page::new(Some(Page::<()>::MAX_LIMIT), None)?;
    loop {
        let jobs = tx.jobs(&filter, page)?;
        let busy = jobs.iter().any(|j| match j.status {
            JobStatus::Held => j.holder.is_some_and(|h| h.agent_id == agent),
            _ => j.receiver_agent_id == Some(agent),
        });
        if busy {
            return Ok(true);
        }
        match jobs.last() {
            Some(last) if jobs.len() == page.limit as usize => page.before = Some(last.id),
            _ => return Ok(false),
        }
    }
}

/// Checks an amount moved between a wallet and the outside world: at least `min`, at most
/// [`MAX_AMOUNT`].
fn bounded(amount: Cents, min: Cents) -> Result<Cents> {
    if amount < min {
        return Err(DomainError::invalid(format!(
            "amount_cents must be at least {}",
            min.get()
        )));
    }
    if amount > MAX_AMOUNT {
        return Err(DomainError::invalid(format!(
            "amount_cents must be at most {}",
            MAX_AMOUNT.get()
        )));
    }
    Ok(amount)
}

impl Marketplace {
    /// Creates a user with an empty wallet and an agent named `default`. Conflict if the name is
    /// taken; Invalid for a bad name.
    pub async fn create_user(&self, name: &str) -> Result<User> {
        no_nul("name", name)?;
        let name = user::valid_name(name, "name")?;
        let now = self.now();
        let clock = self.ports.clock.clone();
        self.store()
            .transaction(move |tx| {
                let user = User {
                    id: UserId(clock.new_id()),
                    name: name.clone(),
                    balance_cents: Cents::ZERO,
                    created_at: now,
                };
                tx.insert_user(&user).map_err(|e| {
                    conflict_as(e, || {
                        DomainError::Conflict(format!("user name {name:?} is taken"))
                    })
                })?;
                tx.insert_agent(&Agent {
                    id: AgentId(clock.new_id()),
                    owner_id: user.id,
                    name: DEFAULT_AGENT_NAME.into(),
                    personality: None,
                    avatar_url: None,
                    is_default: true,
                    created_at: now,
                })?;
                Ok(user)
            })
            .await
    }

    /// A user by id (a UUID string) or by name. NotFound otherwise.
    pub async fn find_user(&self, id_or_name: &str) -> Result<User> {
        let key = id_or_name.trim().to_string();
        self.store()
            .read(move |tx| {
                let by_id = match key.parse() {
                    Ok(id) => tx.user(UserId(id))?,
                    Err(_) => None,
                };
                match by_id {
                    Some(u) => Ok(Some(u)),
                    None => tx.user_by_name(&key),
                }?
                .ok_or(DomainError::NotFound("user"))
            })
            .await
    }

    /// The caller with a fresh balance (`whoami`).
    pub async fn whoami(&self, who: &Principal) -> Result<User> {
        let id = who.id;
        self.store()
            .read(move |tx| tx.user(id)?.ok_or(DomainError::NotFound("user")))
            .await
    }

    /// Stores a new API key (by its hash) for a user. NotFound for an unknown user.
    pub async fn add_api_key(&self, user: UserId, hash: KeyHash) -> Result<()> {
        let now = self.now();
        let id = ApiKeyId(self.ports.clock.new_id());
        self.store()
            .transaction(move |tx| {
                tx.user(user)?.ok_or(DomainError::NotFound("user"))?;
                tx.insert_api_key(id, user, &hash, now)
            })
            .await
    }

    /// The owner's agents, default first.
    pub async fn agents(&self, owner: UserId) -> Result<Vec<Agent>> {
        self.store().read(move |tx| tx.agents_of(owner)).await
    }

    /// One of the owner's agents. NotFound if it does not exist or is someone else's.
    pub async fn agent(&self, owner: UserId, id: AgentId) -> Result<Agent> {
        self.store()
            .read(move |tx| owned_agent(tx, owner, id))
            .await
    }

    /// Creates an agent. Invalid without a name; Conflict on a duplicate name.
    pub async fn create_agent(&self, owner: UserId, new: NewAgent) -> Result<Agent> {
        let name = agent_name(&new.name)?;
        let agent = Agent {
            id: AgentId(self.ports.clock.new_id()),
            owner_id: owner,
            personality: clean_optional("personality", new.personality)?,
            avatar_url: clean_optional("avatar_url", new.avatar_url)?,
            is_default: false,
            created_at: self.now(),
            name,
        };
        self.store()
            .single(move |tx| {
                tx.insert_agent(&agent)
                    .map_err(|e| conflict_as(e, || taken(&agent.name)))?;
                Ok(agent)
            })
            .await
    }

    /// Changes an agent; `Some(None)` clears a field. NotFound, Invalid, or Conflict on a
    /// duplicate name.
    pub async fn update_agent(
        &self,
        owner: UserId,
        id: AgentId,
        patch: AgentPatch,
    ) -> Result<Agent> {
        let name = patch.name.as_deref().map(agent_name).transpose()?;
        let personality = patch
            .personality
            .map(|p| clean_optional("personality", p))
            .transpose()?;
        let avatar_url = patch
            .avatar_url
            .map(|a| clean_optional("avatar_url", a))
            .transpose()?;
        self.store()
            .transaction(move |tx| {
                let mut agent = owned_agent(tx, owner, id)?;
                if let Some(name) = name {
                    agent.name = name;
                }
                if let Some(p) = personality {
                    agent.personality = p;
                }
                if let Some(a) = avatar_url {
                    agent.avatar_url = a;
                }
                tx.update_agent(&agent)
                    .map_err(|e| conflict_as(e, || taken(&agent.name)))?;
                Ok(agent)
            })
            .await
    }

    /// Deletes an agent. Conflict for the default agent or one holding or working on a job.
    pub async fn delete_agent(&self, owner: UserId, id: AgentId) -> Result<()> {
        self.store()
            .transaction(move |tx| {
                let agent = owned_agent(tx, owner, id)?;
                if agent.is_default {
                    return Err(DomainError::Conflict(
                        "the default agent cannot be deleted".into(),
                    ));
                }
                if agent_is_busy(tx, id)? {
                    return Err(DomainError::Conflict(
                        "the agent holds or works on a job and cannot be deleted now".into(),
                    ));
                }
                tx.delete_agent(id)
            })
            .await
    }

    /// The public agent directory.
    pub async fn directory(&self, page: Page<AgentId>) -> Result<Vec<AgentProfile>> {
        self.store().read(move |tx| tx.directory(page)).await
    }

    /// The wallet's balance and a page of its ledger.
    pub async fn wallet(
        &self,
        user: UserId,
        page: Page<TransferId>,
    ) -> Result<(Cents, Vec<LedgerEntry>)> {
        self.store()
            .read(move |tx| {
                let u = tx.user(user)?.ok_or(DomainError::NotFound("user"))?;
                Ok((u.balance_cents, tx.ledger(user, page)?))
            })
            .await
    }

    /// Moves `delta` between the user's wallet and the outside world with `reason` (positive: in,
    /// negative: out) and returns the new balance. InsufficientBalance if the wallet would go below
    /// zero; Invalid for zero or for more than [`MAX_AMOUNT`] either way.
    pub async fn adjust_balance(
        &self,
        user: UserId,
        delta: Cents,
        reason: Reason,
    ) -> Result<Cents> {
        Ok(self.adjust_keyed(user, delta, reason, None).await?.value)
    }

    /// [`Self::adjust_balance`], storing the idempotency `answer` (the new balance) with the
    /// transfer.
    async fn adjust_keyed(
        &self,
        user: UserId,
        delta: Cents,
        reason: Reason,
        answer: Option<Answer<Cents>>,
    ) -> Result<Answered<Cents>> {
        if delta == Cents::ZERO {
            return Err(DomainError::invalid("amount_cents must not be zero"));
        }
        if delta.get().unsigned_abs() > MAX_AMOUNT.get().unsigned_abs() {
            return Err(DomainError::invalid(format!(
                "amount_cents must be between -{max} and {max}",
                max = MAX_AMOUNT.get()
            )));
        }
        let wallet = Account::Wallet(user);
        let transfer = if delta > Cents::ZERO {
            Transfer::new(Account::World, wallet, delta, reason, None)?
        } else {
            Transfer::new(wallet, Account::World, Cents(-delta.get()), reason, None)?
        };
        let now = self.now();
        let clock = self.ports.clock.clone();
        self.store()
            .transaction(move |tx| {
                post(tx, &*clock, &[transfer], now)?;
                let balance = tx
                    .user(user)?
                    .ok_or(DomainError::NotFound("user"))?
                    .balance_cents;
                let stored = write_answer(tx, answer.as_ref(), &balance)?;
                Ok(Answered {
                    value: balance,
                    stored,
                })
            })
            .await
    }

    /// Tops up the wallet through the payment port; returns the new balance.
    pub async fn topup(&self, user: UserId, amount: Cents) -> Result<Cents> {
        Ok(self.topup_keyed(user, amount, None).await?.value)
    }

    /// [`Self::topup`], storing the idempotency `answer` with the credit.
    pub async fn topup_keyed(
        &self,
        user: UserId,
        amount: Cents,
        answer: Option<Answer<Cents>>,
    ) -> Result<Answered<Cents>> {
        let amount = bounded(amount, MIN_TOPUP)?;
        self.ports.payments.collect(user, amount).await?;
        self.adjust_keyed(user, amount, Reason::Topup, answer).await
    }

    /// Withdraws from the wallet through the payout port; returns the new balance. The wallet is
    /// debited first (so it cannot be spent twice) and credited back if the payout fails.
    pub async fn withdraw(&self, user: UserId, amount: Cents) -> Result<Cents> {
        let amount = bounded(amount, MIN_WITHDRAWAL)?;
        self.ports.payouts.available().await?;
        let after = self
            .adjust_balance(user, Cents(-amount.get()), Reason::Withdrawal)
            .await?;
        if let Err(e) = self.ports.payouts.send(user, amount).await {
            self.adjust_balance(user, amount, Reason::Adjustment)
                .await?;
            return Err(e);
        }
        Ok(after)
    }
}
