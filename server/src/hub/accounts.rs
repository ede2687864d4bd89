//! Agent accounts and customer erasure: the operations behind the REST API
//! that reach into live state (tokens, sessions, routing).

use super::broker::Participant;
use super::commit::{Commit, To};
use super::{now_ms, Actor, Hub, HubError, Result};
use crate::auth;
use crate::store::{AgentRecord, TokenRecord};
use switchboard_protocol::close;
use switchboard_protocol::model::{ConversationStatus, Role};
use switchboard_protocol::server::{ConversationEvent, ConversationEventKind};
use switchboard_protocol::{AgentId, CustomerId, ServerMessage};

/// Shortest password an account may have.
pub const MIN_PASSWORD: usize = 8;

/// A new account's fields.
pub struct NewAgent {
    pub email: String,
    pub name: String,
    pub password: String,
    pub role: Role,
    pub capacity: u32,
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Default)]
pub struct AgentChanges {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub capacity: Option<u32>,
    pub password: Option<String>,
    pub disabled: Option<bool>,
}

fn check_password(p: &str) -> Result<()> {
    if p.chars().count() < MIN_PASSWORD {
        return Err(HubError::BadRequest(format!(
            "password must be at least {MIN_PASSWORD} characters"
        )));
    }
    Ok(())
}

impl Hub {
    /// Checks an email and password; returns a new bearer token, its expiry and the agent.
    pub async fn login(&self, email: &str, password: &str) -> Result<(String, u64, AgentRecord)> {
        let agent = self.store().agent_by_email(email)?.filter(|a| !a.disabled);
        // Verify against a dummy hash when the email is unknown, so timing does not tell.
        let phc = agent
            .as_ref()
            .map(|a| a.password_hash.clone())
            .unwrap_or_else(dummy_hash);
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &phc))
            .await
            .unwrap_or(false);
        let agent = agent.filter(|_| ok).ok_or(HubError::Unauthorized)?;
        let (token, hash) = auth::new_bearer_token();
        let ttl = u64::try_from(self.config().agent_token_ttl.as_millis()).unwrap_or(u64::MAX);
        let expires_at = now_ms().saturating_add(ttl);
        self.store().put_token(
            &hash,
            &TokenRecord {
                agent_id: agent.id,
                expires_at,
            },
        )?;
        let permit = self.reserve().await?;
        self.sync(permit, Commit::default()).await?;
        Ok((token, expires_at, agent))
    }

    /// The agent a bearer token belongs to, if it is valid, unexpired and the account enabled.
    pub fn authenticate(&self, token: &str) -> Result<Actor> {
        let record = self
            .store()
            .token(&auth::token_hash(token))?
            .ok_or(HubError::Unauthorized)?;
        if record.expires_at <= now_ms() {
            return Err(HubError::Unauthorized);
        }
        let agent = self
            .store()
            .agent(record.agent_id)?
            .filter(|a| !a.disabled)
            .ok_or(HubError::Unauthorized)?;
        Ok(Actor::agent(agent.id, &agent.name, agent.role))
    }

    /// Revokes one bearer token.
    pub async fn logout(&self, token: &str) -> Result<()> {
        self.store().remove_token(&auth::token_hash(token))?;
        let permit = self.reserve().await?;
        self.sync(permit, Commit::default()).await
    }

    /// Creates an agent account (durably).
    pub async fn create_agent(&self, new: NewAgent) -> Result<AgentRecord> {
        check_password(&new.password)?;
        super::ops::check_field("email", Some(&new.email))?;
        super::ops::check_field("name", Some(&new.name))?;
        if !new.email.contains('@') {
            return Err(HubError::BadRequest("email must contain @".into()));
        }
        if new.capacity > super::ops::MAX_CAPACITY {
            return Err(HubError::BadRequest("capacity is too large".into()));
        }
        let password = new.password.clone();
        let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
            .await
            .map_err(|_| HubError::ShuttingDown)?;
        let mut record = AgentRecord::new(
            AgentId(self.store().next_id()?),
            &new.email,
            &new.name,
            &hash,
            new.role,
            new.capacity,
        );
        record.created_at = now_ms();
        if !self.store().put_agent(&record)? {
            return Err(HubError::Conflict("an agent with that email exists"));
        }
        self.routing()
            .upsert_agent(record.id, &record.name, record.status, record.capacity);
        let permit = self.reserve().await?;
        self.sync(permit, Commit::default()).await?;
        Ok(record)
    }

    /// Changes an account. Disabling revokes its tokens, closes its sessions and
    /// sends its open conversations back to the queue.
    pub async fn update_agent(&self, id: AgentId, changes: AgentChanges) -> Result<AgentRecord> {
        let mut record = self.store().agent(id)?.ok_or(HubError::NotFound)?;
        if let Some(p) = &changes.password {
            check_password(p)?;
            let p = p.clone();
            record.password_hash = tokio::task::spawn_blocking(move || auth::hash_password(&p))
                .await
                .map_err(|_| HubError::ShuttingDown)?;
            self.store().revoke_agent_tokens(id)?;
        }
        if let Some(n) = changes.name {
            super::ops::check_field("name", Some(&n))?;
            record.name = n;
        }
        record.role = changes.role.unwrap_or(record.role);
        if let Some(c) = changes.capacity {
            if c > super::ops::MAX_CAPACITY {
                return Err(HubError::BadRequest("capacity is too large".into()));
            }
            record.capacity = c;
        }
        let disabling = changes.disabled == Some(true) && !record.disabled;
        record.disabled = changes.disabled.unwrap_or(record.disabled);
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        {
            let mut routing = self.routing();
            self.store().put_agent(&record)?;
            if record.disabled {
                let orphans = routing.remove_agent(id);
                self.requeue(&mut routing, orphans, &mut commit)?;
            } else {
                routing.upsert_agent(id, &record.name, record.status, record.capacity);
                self.drain_queue(&mut routing, &mut commit)?;
            }
        }
        if disabling {
            self.store().revoke_agent_tokens(id)?;
            self.broker().kill(Participant::Agent(id), close::FORBIDDEN);
        }
        self.sync(permit, commit).await?;
        Ok(record)
    }

    fn requeue(
        &self,
        routing: &mut super::routing::Routing,
        orphans: Vec<switchboard_protocol::ConversationId>,
        commit: &mut Commit,
    ) -> Result<()> {
        for id in orphans {
            let mut st = self.conversation(id)?;
            st.record.agent_id = None;
            st.record.status = ConversationStatus::Queued;
            st.record.queued_at = Some(now_ms());
            routing.enqueue(id, st.record.priority);
            self.store().put_conversation(&st.record)?;
            let position = routing.position(id);
            let ev = ConversationEvent {
                event: ConversationEventKind::Queued,
                conversation: self.view(&st, position),
                by: None,
                from_agent: None,
            };
            commit.deliver_all(
                [
                    To::One(Participant::Visitor(st.record.customer_id)),
                    To::Agents,
                ],
                ServerMessage::Conversation(ev),
            );
        }
        self.drain_queue(routing, commit)
    }

    /// Erases a customer with every conversation and message, and closes their sessions.
    pub async fn delete_customer(&self, id: CustomerId) -> Result<()> {
        let customer = self.store().customer(id)?.ok_or(HubError::NotFound)?;
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        {
            let mut routing = self.routing();
            for conv in self.store().customer_conversations(id)? {
                let Some(st) = self.store().conversation(conv)? else {
                    continue;
                };
                if st.status == ConversationStatus::Assigned {
                    if let Some(a) = st.agent_id {
                        routing.release(conv, a);
                    }
                }
                routing.remove_from_queue(conv);
                self.store().delete_conversation(&st)?;
                self.forget_conversation(conv);
            }
            self.store().delete_customer(&customer)?;
            self.drain_queue(&mut routing, &mut commit)?;
        }
        self.broker()
            .kill(Participant::Visitor(id), close::UNAUTHORIZED);
        self.sync(permit, commit).await
    }
}

fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| auth::hash_password("not a real password"))
        .clone()
}
