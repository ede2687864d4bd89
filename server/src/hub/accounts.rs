//! Agent accounts and customer erasure: the operations behind the REST API
//! that reach into live state (tokens, sessions, routing).

use super::broker::{Participant, SessionHandle};
use super::commit::{Commit, To};
use super::{now_ms, Actor, Hub, HubError, Result};
use crate::auth;
use crate::store::{AgentRecord, TokenRecord};
use dashmap::DashMap;
use switchboard_protocol::close;
use switchboard_protocol::model::{ConversationStatus, Role};
use switchboard_protocol::server::{
    AgentRemoved, AgentRemovedReason, ConversationEvent, ConversationEventKind,
};
use switchboard_protocol::{AgentId, CustomerId, ServerMessage};

/// Shortest password an account may have.
pub const MIN_PASSWORD: usize = 8;

/// RFC 6455's "service restart": the client reconnects (and says hello again).
const SERVICE_RESTART: u16 = 1012;

/// Agent sessions by the bearer token they said hello with, so that revoking
/// a token (logout, password change) closes exactly those sessions, and so
/// does its expiry ([`Hub::close_expired_sessions`], on every heartbeat).
/// Handles of sessions that have ended are dropped whenever a new one is watched.
#[derive(Default)]
pub(crate) struct TokenSessions {
    by_token: DashMap<[u8; 32], Watched>,
}

/// The live sessions of one bearer token.
struct Watched {
    agent: AgentId,
    /// The token's expiry (ms since the epoch).
    expires_at: u64,
    sessions: Vec<SessionHandle>,
}

impl TokenSessions {
    fn watch(&self, token: [u8; 32], record: &TokenRecord, session: SessionHandle) {
        self.by_token.retain(|_, w| {
            w.sessions.retain(|s| !s.is_closed());
            !w.sessions.is_empty()
        });
        self.by_token
            .entry(token)
            .or_insert_with(|| Watched {
                agent: record.agent_id,
                expires_at: record.expires_at,
                sessions: Vec::new(),
            })
            .sessions
            .push(session);
    }

    /// Closes (with `code`) and forgets the sessions of every token `doomed(token, watched)` picks.
    fn close(&self, doomed: impl Fn(&[u8; 32], &Watched) -> bool, code: u16) {
        self.by_token.retain(|token, w| {
            if !doomed(token, w) {
                return true;
            }
            for s in &w.sessions {
                s.kill(code);
            }
            false
        });
    }
}

/// A new account's fields.
pub struct NewAgent {
    pub email: String,
    pub name: String,
    pub password: String,
    pub role: Role,
    pub capacity: u32,
    /// Team names (checked, sorted and deduplicated on create).
    pub teams: Vec<String>,
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Default)]
pub struct AgentChanges {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub capacity: Option<u32>,
    pub password: Option<String>,
    pub disabled: Option<bool>,
    /// The whole new set of teams (`Some(vec![])` leaves every team).
    pub teams: Option<Vec<String>>,
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
    /// A wrong email or password is [`HubError::Unauthorized`]; the right
    /// password of a disabled account is [`HubError::Forbidden`] (it reveals
    /// nothing to someone without the password).
    pub async fn login(&self, email: &str, password: &str) -> Result<(String, u64, AgentRecord)> {
        let agent = self.store().agent_by_email(email)?;
        // Verify against a dummy hash when the email is unknown, so timing does not tell.
        let phc = agent.as_ref().map(|a| a.password_hash.clone());
        let password = password.to_string();
        // The dummy is made on the password thread too (argon2's memory lives there).
        let ok = auth::on_password_thread(move || {
            auth::verify_password(&password, &phc.unwrap_or_else(dummy_hash))
        })
        .await
        .ok_or(HubError::Busy(PASSWORDS_BUSY))?;
        let agent = agent.filter(|_| ok).ok_or(HubError::Unauthorized)?;
        if agent.disabled {
            return Err(HubError::Forbidden(ACCOUNT_DISABLED));
        }
        let (token, hash) = auth::new_bearer_token();
        let ttl = u64::try_from(self.config().agent_token_ttl.as_millis()).unwrap_or(u64::MAX);
        let expires_at = now_ms().saturating_add(ttl);
        let record = TokenRecord {
            agent_id: agent.id,
            expires_at,
        };
        self.persist_with(|store| store.put_token(&hash, &record))
            .await?;
        Ok((token, expires_at, agent))
    }

    fn token_sessions(&self) -> &TokenSessions {
        &self.shared.token_sessions
    }

    /// The agent a bearer token belongs to, if it is valid, unexpired and the
    /// account enabled. An unknown, expired or revoked token, or one whose
    /// account was removed, is [`HubError::Unauthorized`] (sign in again); a
    /// live token of a disabled account is [`HubError::Forbidden`].
    pub fn authenticate(&self, token: &str) -> Result<Actor> {
        self.authenticate_token(token).map(|(actor, _)| actor)
    }

    /// The agent a live token belongs to, and the token's record.
    fn authenticate_token(&self, token: &str) -> Result<(Actor, TokenRecord)> {
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
            .ok_or(HubError::Unauthorized)?;
        if agent.disabled {
            return Err(HubError::Forbidden(ACCOUNT_DISABLED));
        }
        Ok((Actor::agent(agent.id, &agent.name, agent.role), record))
    }

    /// Closes (4501) the agent sessions whose bearer token has expired: a
    /// token's lifetime bounds its live sessions too, not only new hellos.
    pub fn close_expired_sessions(&self) {
        let now = now_ms();
        self.token_sessions()
            .close(|_, w| w.expires_at <= now, close::UNAUTHORIZED);
    }

    /// [`Hub::authenticate`] for a WebSocket hello: also remembers that
    /// `session` rides on this token, so revoking the token closes it. The
    /// token is checked again after the session is on record: a revocation
    /// either comes before that check (refused) or finds the session (closed).
    pub fn authenticate_session(&self, token: &str, session: &SessionHandle) -> Result<Actor> {
        let (_, record) = self.authenticate_token(token)?;
        let hash = auth::token_hash(token);
        self.token_sessions().watch(hash, &record, session.clone());
        match self.authenticate(token) {
            Ok(actor) => Ok(actor),
            Err(e) => {
                let code = match e {
                    HubError::Forbidden(_) => close::FORBIDDEN,
                    _ => close::UNAUTHORIZED,
                };
                self.token_sessions().close(|h, _| *h == hash, code);
                Err(e)
            }
        }
    }

    /// Revokes one bearer token and closes the sessions opened with it (4501).
    pub async fn logout(&self, token: &str) -> Result<()> {
        let hash = auth::token_hash(token);
        self.persist_with(|store| store.remove_token(&hash)).await?;
        self.token_sessions()
            .close(|h, _| *h == hash, close::UNAUTHORIZED);
        Ok(())
    }

    /// Revokes every token of `agent` but `keep`, and closes the sessions opened with them.
    fn revoke_tokens_but(&self, agent: AgentId, keep: Option<&str>) -> Result<()> {
        let keep = keep.map(auth::token_hash);
        let kept = match &keep {
            Some(hash) => self.store().token(hash)?.filter(|t| t.agent_id == agent),
            None => None,
        };
        self.store().revoke_agent_tokens(agent)?;
        if let (Some(hash), Some(record)) = (&keep, &kept) {
            self.store().put_token(hash, record)?;
        }
        self.token_sessions().close(
            |h, w| w.agent == agent && (kept.is_none() || keep.as_ref() != Some(h)),
            close::UNAUTHORIZED,
        );
        Ok(())
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
        let teams = super::teams::check_teams(new.teams)?;
        let password = new.password.clone();
        let hash = auth::on_password_thread(move || auth::hash_password(&password))
            .await
            .ok_or(HubError::Busy(PASSWORDS_BUSY))?;
        let mut record = AgentRecord::new(
            AgentId(self.store().next_id()?),
            &new.email,
            &new.name,
            &hash,
            new.role,
            new.capacity,
        );
        record.created_at = now_ms();
        record.teams = teams;
        if !self.persist_with(|store| store.put_agent(&record)).await? {
            return Err(HubError::Conflict("an agent with that email exists"));
        }
        self.routing().upsert_agent(&record);
        Ok(record)
    }

    /// Changes an account. New teams take effect at once: waiting conversations
    /// of those teams may go to the agent (and of the old ones, overflow to
    /// anyone). A new password revokes the account's tokens (but
    /// `keep`, the token of an admin changing their own) and closes the
    /// sessions opened with them. A new role closes the account's sessions
    /// with 1012 so they reconnect under it. Disabling closes every session
    /// (4503) and sends its open conversations back to the queue; its tokens
    /// stay on record so that they are refused as "account disabled" (403,
    /// 4503) rather than as unknown, and enabling revokes them: nothing signed
    /// in before the account was disabled works again. The last enabled admin
    /// cannot be disabled or demoted (`invalid_state`).
    pub async fn update_agent(
        &self,
        id: AgentId,
        changes: AgentChanges,
        keep: Option<&str>,
    ) -> Result<AgentRecord> {
        let mut record = self.store().agent(id)?.ok_or(HubError::NotFound)?;
        let was_admin = is_enabled_admin(&record);
        if let Some(teams) = changes.teams {
            record.teams = super::teams::check_teams(teams)?;
        }
        if let Some(p) = &changes.password {
            check_password(p)?;
            let p = p.clone();
            record.password_hash = auth::on_password_thread(move || auth::hash_password(&p))
                .await
                .ok_or(HubError::Busy(PASSWORDS_BUSY))?;
        }
        if let Some(n) = changes.name {
            super::ops::check_field("name", Some(&n))?;
            record.name = n;
        }
        // A session keeps the role it said hello with: make it say hello again.
        let new_role = changes.role.is_some_and(|r| r != record.role);
        record.role = changes.role.unwrap_or(record.role);
        if let Some(c) = changes.capacity {
            if c > super::ops::MAX_CAPACITY {
                return Err(HubError::BadRequest("capacity is too large".into()));
            }
            record.capacity = c;
        }
        let disabling = changes.disabled == Some(true) && !record.disabled;
        let enabling = changes.disabled == Some(false) && record.disabled;
        record.disabled = changes.disabled.unwrap_or(record.disabled);
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        {
            // Under the routing lock, so that two changes cannot each leave the other as the last admin.
            let mut routing = self.routing();
            if was_admin && !is_enabled_admin(&record) {
                self.check_another_admin(id)?;
            }
            self.store().put_agent(&record)?;
            if record.disabled {
                self.withdraw(&mut routing, id, &mut commit)?;
                if disabling {
                    commit.deliver(To::Agents, removed(id, AgentRemovedReason::Disabled));
                }
            } else {
                routing.upsert_agent(&record);
                if let Some(p) = routing.presence(id) {
                    commit.deliver(To::Agents, ServerMessage::Presence(p));
                }
                self.drain_queue(&mut routing, &mut commit)?;
            }
        }
        if disabling {
            self.close_agent_sessions(id, close::FORBIDDEN);
        } else if enabling {
            self.revoke_tokens_but(id, None)?;
        } else if changes.password.is_some() {
            self.revoke_tokens_but(id, keep)?;
        }
        self.sync(permit, commit).await?;
        if new_role {
            self.broker().kill(Participant::Agent(id), SERVICE_RESTART);
        }
        Ok(record)
    }

    /// Closes every session of an agent with `code`: those that have joined,
    /// and those still between their hello's token check and joining.
    fn close_agent_sessions(&self, id: AgentId, code: u16) {
        self.broker().kill(Participant::Agent(id), code);
        self.token_sessions().close(|_, w| w.agent == id, code);
    }

    /// Deletes an account: revokes its tokens, closes its sessions (4503),
    /// and sends its open conversations back to the queue the way disabling
    /// does. The last enabled admin cannot be deleted (`invalid_state`).
    pub async fn delete_agent(&self, id: AgentId) -> Result<AgentRecord> {
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        let record = {
            let mut routing = self.routing();
            let record = self.store().agent(id)?.ok_or(HubError::NotFound)?;
            if is_enabled_admin(&record) {
                self.check_another_admin(id)?;
            }
            self.store().delete_agent(&record)?;
            self.withdraw(&mut routing, id, &mut commit)?;
            commit.deliver(To::Agents, removed(id, AgentRemovedReason::Deleted));
            record
        };
        self.close_agent_sessions(id, close::FORBIDDEN);
        self.sync(permit, commit).await?;
        Ok(record)
    }

    /// Refuses to leave the server without an enabled admin (nobody could
    /// manage accounts any more) when `leaving` stops being one.
    fn check_another_admin(&self, leaving: AgentId) -> Result<()> {
        let agents = self.store().agents()?;
        if agents
            .iter()
            .any(|a| a.id != leaving && is_enabled_admin(a))
        {
            Ok(())
        } else {
            Err(HubError::InvalidState(LAST_ADMIN))
        }
    }

    /// Takes an agent out of routing (disabled or deleted) and sends their
    /// open conversations back to the queue.
    fn withdraw(
        &self,
        routing: &mut super::routing::Routing,
        id: AgentId,
        commit: &mut Commit,
    ) -> Result<()> {
        let orphans = routing.remove_agent(id);
        self.requeue(routing, orphans, commit)
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
            routing.enqueue(id, st.record.priority, st.record.team.as_deref());
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

/// Tells the consoles that an agent left the roster.
fn removed(agent_id: AgentId, reason: AgentRemovedReason) -> ServerMessage {
    ServerMessage::AgentRemoved(AgentRemoved { agent_id, reason })
}

/// Why a disabled account's login, token or hello is refused (403, close 4503).
pub const ACCOUNT_DISABLED: &str = "account disabled";

/// Why a deleted account's live sessions are closed (4503).
pub const ACCOUNT_DELETED: &str = "account deleted";

/// Why the last enabled admin cannot be disabled, demoted or deleted.
pub const LAST_ADMIN: &str = "the last enabled admin cannot be disabled, demoted or deleted";

fn is_enabled_admin(a: &AgentRecord) -> bool {
    a.role == Role::Admin && !a.disabled
}

/// The answer when the password thread's queue is full.
const PASSWORDS_BUSY: &str = "too many password checks waiting: retry shortly";

fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| auth::hash_password("not a real password"))
        .clone()
}
