//! The hub: live conversations between visitors and agents.
//!
//! It owns the in-memory state of open conversations, the routing table
//! (agents' load and the waiting queue), and the path every change takes:
//! validate → write to the store → queue a [`commit::Commit`] → (committer)
//! flush → ack and deliver through the [`broker::Broker`]. Sessions call its
//! methods with the [`Actor`] they authenticated as; every method checks that
//! the actor may touch the conversation.
//!
//! Locking: `routing` (a std mutex) may be taken before a conversation's
//! entry in `conversations` (a DashMap shard lock), never the other way round,
//! and neither is held across an `.await`. A commit is queued while its
//! conversation is still locked, so commits of one conversation reach the
//! committer in sequence order.
//!
//! When the store cannot write, [`Hub::reserve`] refuses every write up front
//! with [`HubError::StoreUnavailable`] while reads go on from what the store
//! holds; `recovery` reopens the store once the disk takes writes again.

pub mod accounts;
mod bot;
pub mod broker;
pub(crate) mod commit;
mod notes;
mod ops;
mod recovery;
pub mod replies;
mod resend;
pub(crate) mod routing;
pub mod teams;

use crate::metrics::Metrics;
use crate::store::{Store, StoreError, StoredConversation, NOTED_ALL};
use broker::{Broker, Participant, SessionHandle};
use commit::{Commit, Job, Permit, To};
use dashmap::mapref::one::RefMut;
use dashmap::DashMap;
use routing::Routing;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchboard_protocol::model::{Author, AuthorKind, ConversationStatus, ConversationView, Role};
use switchboard_protocol::{AgentId, ConversationId, CustomerId, ErrorCode};
use tokio::sync::mpsc;

pub use broker::LocalBroker;
pub(crate) use ops::check_field;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Who is acting: an authenticated visitor or agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub who: Participant,
    pub name: String,
    pub role: Option<Role>,
}

impl Actor {
    pub fn visitor(id: CustomerId, name: Option<String>) -> Actor {
        Actor {
            who: Participant::Visitor(id),
            name: name.unwrap_or_default(),
            role: None,
        }
    }

    pub fn agent(id: AgentId, name: &str, role: Role) -> Actor {
        Actor {
            who: Participant::Agent(id),
            name: name.to_string(),
            role: Some(role),
        }
    }

    pub fn author(&self) -> Author {
        match self.who {
            Participant::Visitor(c) => Author {
                kind: AuthorKind::Visitor,
                id: c.0,
                name: self.name.clone(),
            },
            Participant::Agent(a) => Author {
                kind: AuthorKind::Agent,
                id: a.0,
                name: self.name.clone(),
            },
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Some(Role::Admin)
    }

    pub fn agent_id(&self) -> Option<AgentId> {
        match self.who {
            Participant::Agent(a) => Some(a),
            Participant::Visitor(_) => None,
        }
    }
}

/// Why a hub operation was refused. Expected refusals carry a code the client is told.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    InvalidState(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("unauthorized")]
    Unauthorized,
    /// Identity verification refused the visitor (the reason is safe to show).
    #[error("{0}")]
    Identity(&'static str),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Too much work of one kind queued (e.g. password checks): retry later.
    #[error("{0}")]
    Busy(&'static str),
    #[error("the store could not write; nothing was saved")]
    StoreUnavailable,
    /// The agent a conversation was to be handed to cannot take it now.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// No (enabled) agent is in the team named.
    #[error("no agent is in that team")]
    UnknownTeam,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for HubError {
    /// A store that cannot write is an expected outage the client is told
    /// about (`store_unavailable`), not an internal error.
    fn from(e: StoreError) -> HubError {
        if e.is_unavailable() {
            HubError::StoreUnavailable
        } else {
            HubError::Store(e)
        }
    }
}

impl HubError {
    pub fn code(&self) -> ErrorCode {
        match self {
            HubError::BadRequest(_) => ErrorCode::BadRequest,
            HubError::TooLarge(_) => ErrorCode::TooLarge,
            HubError::NotFound => ErrorCode::NotFound,
            HubError::Forbidden(_) => ErrorCode::Forbidden,
            HubError::InvalidState(_) => ErrorCode::InvalidState,
            HubError::Conflict(_) => ErrorCode::Conflict,
            HubError::Unauthorized | HubError::Identity(_) => ErrorCode::Unauthorized,
            HubError::ShuttingDown | HubError::Busy(_) => ErrorCode::Overloaded,
            HubError::StoreUnavailable => ErrorCode::StoreUnavailable,
            HubError::Unavailable(_) => ErrorCode::InvalidState,
            HubError::UnknownTeam => ErrorCode::NotFound,
            HubError::Store(_) => ErrorCode::Internal,
        }
    }
}

pub type Result<T, E = HubError> = std::result::Result<T, E>;

/// Why an agent cannot be handed a conversation now (a transfer to them is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("that agent is offline")]
    Offline,
    #[error("that agent is away")]
    Away,
    #[error("that agent has no free slot")]
    Full,
}

/// Settings the hub needs.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub visitor_token_ttl: Duration,
    pub agent_token_ttl: Duration,
    pub commit_queue: usize,
    /// Shortest time between the starts of two flushes (group commit).
    pub commit_window: Duration,
    /// New conversations start with the bot (needs NLP).
    pub bot: bool,
    /// Longest chat message text, in characters.
    pub max_text_chars: usize,
    /// Checks signed user ids (identity verification).
    pub identity: crate::auth::IdentitySecret,
    /// Unsigned user ids are refused.
    pub identity_required: bool,
    /// Visitors without a verified identity may chat.
    pub anonymous_visitors: bool,
}

/// A conversation in memory: its record, newest sequence, and how far it is durable.
pub(crate) struct ConvState {
    /// Current: every message up to `last_seq` is folded in (`noted_seq`),
    /// though the stored copy may be behind (see [`StoredConversation`]).
    pub(crate) record: StoredConversation,
    pub(crate) last_seq: u64,
    /// Highest sequence the committer has made durable; resume and history read up to here.
    pub(crate) durable_seq: Arc<AtomicU64>,
    /// Client ids of the newest messages; read from the store when first needed.
    recent: Option<resend::RecentClientIds>,
}

impl ConvState {
    /// A conversation that has no message yet.
    fn fresh(record: StoredConversation) -> ConvState {
        ConvState {
            record,
            last_seq: 0,
            durable_seq: Default::default(),
            recent: Some(resend::RecentClientIds::empty()),
        }
    }

    /// A stored conversation, its record caught up with its messages.
    fn stored(store: &Store, mut record: StoredConversation) -> crate::store::Result<ConvState> {
        let last_seq = store.last_seq(record.id)?;
        catch_up(store, &mut record, last_seq)?;
        Ok(ConvState {
            record,
            last_seq,
            durable_seq: Arc::new(AtomicU64::new(last_seq)),
            recent: None,
        })
    }

    /// The stored message that `client_id` was posted as, if it is among the
    /// newest (see `resend`).
    pub(crate) fn resent(
        &mut self,
        store: &Store,
        client_id: &str,
    ) -> crate::store::Result<Option<switchboard_protocol::model::Message>> {
        let (id, last) = (self.record.id, self.last_seq);
        let recent = match &mut self.recent {
            Some(r) => r,
            None => self
                .recent
                .insert(resend::RecentClientIds::load(store, id, last)?),
        };
        recent.find(store, id, last, client_id)
    }

    /// Takes message `m` (just stored, `last_seq` + 1) into the state.
    pub(crate) fn note(&mut self, m: &switchboard_protocol::model::Message) {
        self.last_seq = m.seq;
        self.record.note(m);
        if let Some(r) = &mut self.recent {
            r.note(m.seq, m.client_id.as_deref());
        }
    }

    /// Forgets what was read from the store (after the store was reopened).
    pub(crate) fn forget_recent(&mut self) {
        self.recent = None;
    }
}

/// Folds into `record` the bookkeeping of its conversation's messages after
/// `noted_seq`, up to `last_seq` (the store's newest).
pub(crate) fn catch_up(
    store: &Store,
    record: &mut StoredConversation,
    last_seq: u64,
) -> crate::store::Result<()> {
    const CHUNK: usize = 1024;
    if record.noted_seq == NOTED_ALL {
        record.noted_seq = last_seq;
    }
    while record.noted_seq < last_seq {
        let from = record.noted_seq + 1;
        let chunk = store.messages_between(record.id, from, last_seq, CHUNK)?;
        if chunk.is_empty() {
            break;
        }
        for m in &chunk {
            record.note(m);
        }
    }
    record.noted_seq = last_seq;
    Ok(())
}

/// Cloneable handle to the hub.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    broker: Arc<dyn Broker>,
    commits: mpsc::Sender<Job>,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    recovery: Mutex<Option<recovery::Handle>>,
    conversations: DashMap<ConversationId, ConvState>,
    routing: Mutex<Routing>,
    visitor_tokens: crate::auth::VisitorTokens,
    config: HubConfig,
    metrics: Arc<Metrics>,
    next_session: AtomicU64,
    nlp: Option<Arc<crate::nlp::Nlp>>,
    /// Agent sessions by bearer token, closed when their token is revoked.
    token_sessions: accounts::TokenSessions,
    /// One writer of saved replies at a time (their shortcuts are unique).
    replies_lock: tokio::sync::Mutex<()>,
}

impl Hub {
    /// Loads open conversations and agents from the store and starts the committer.
    pub fn start(
        store: Store,
        broker: Arc<dyn Broker>,
        config: HubConfig,
        metrics: Arc<Metrics>,
        nlp: Option<Arc<crate::nlp::Nlp>>,
    ) -> Result<Hub> {
        let secret = store.visitor_secret()?;
        let ttl = config.visitor_token_ttl.as_secs();
        let (commits, thread) = commit::spawn(
            store.clone(),
            broker.clone(),
            metrics.clone(),
            config.commit_queue,
            config.commit_window,
        );
        let hub = Hub {
            shared: Arc::new(Shared {
                store,
                broker,
                commits,
                committer: Mutex::new(Some(thread)),
                recovery: Mutex::new(None),
                conversations: DashMap::new(),
                routing: Mutex::new(Routing::default()),
                visitor_tokens: crate::auth::VisitorTokens::new(secret, ttl),
                config,
                metrics,
                next_session: AtomicU64::new(1),
                nlp,
                token_sessions: Default::default(),
                replies_lock: Default::default(),
            }),
        };
        hub.load()?;
        *hub.shared
            .recovery
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(recovery::spawn(&hub));
        Ok(hub)
    }

    fn load(&self) -> Result<()> {
        let mut routing = self.routing();
        for a in self.store().agents()?.into_iter().filter(|a| !a.disabled) {
            routing.upsert_agent(&a);
        }
        let mut queued = Vec::new();
        for c in self.store().conversations() {
            let c = c?;
            if !c.is_open() {
                continue;
            }
            match (c.status, c.agent_id) {
                (ConversationStatus::Assigned, Some(agent)) => routing.assign(c.id, agent),
                (ConversationStatus::Queued, _) => queued.push((
                    c.queued_at.unwrap_or(c.created_at),
                    c.id,
                    c.priority,
                    c.team.clone(),
                )),
                _ => {}
            }
            let state = ConvState::stored(self.store(), c)?;
            self.shared.conversations.insert(state.record.id, state);
        }
        queued.sort();
        for (_, id, priority, team) in queued {
            routing.enqueue(id, priority, team.as_deref());
        }
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    pub fn broker(&self) -> &dyn Broker {
        &*self.shared.broker
    }

    pub fn nlp(&self) -> Option<&Arc<crate::nlp::Nlp>> {
        self.shared.nlp.as_ref()
    }

    /// Whether new conversations start with the bot.
    pub fn bot_enabled(&self) -> bool {
        self.shared.config.bot && self.shared.nlp.is_some()
    }

    pub fn config(&self) -> &HubConfig {
        &self.shared.config
    }

    pub(crate) fn visitor_tokens(&self) -> &crate::auth::VisitorTokens {
        &self.shared.visitor_tokens
    }

    pub(crate) fn routing(&self) -> MutexGuard<'_, Routing> {
        // A panic while routing is held leaves it consistent enough to go on:
        // every mutation is a single insert/remove.
        self.shared
            .routing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh session id and outbound queue.
    pub fn new_session(
        &self,
        queue: usize,
    ) -> (
        SessionHandle,
        mpsc::Receiver<broker::Outbound>,
        Arc<broker::KillSwitch>,
    ) {
        SessionHandle::new(
            self.shared.next_session.fetch_add(1, Ordering::Relaxed),
            queue,
        )
    }

    /// Reserves room in the commit queue (backpressure) before any lock is
    /// taken and anything is written. Refuses while the store cannot write.
    pub(crate) async fn reserve(&self) -> Result<Permit> {
        let slot = self
            .shared
            .commits
            .clone()
            .reserve_owned()
            .await
            .map_err(|_| HubError::ShuttingDown)?;
        // The epoch first: a reopen after this point makes the commit's epoch
        // stale, and the committer refuses it rather than ack lost writes.
        let epoch = self.store().epoch();
        if !self.store().is_writable() {
            return Err(HubError::StoreUnavailable);
        }
        Ok(Permit { slot, epoch })
    }

    /// Queues a commit without waiting; used where the caller holds a permit.
    pub(crate) fn send(permit: Permit, mut commit: Commit) {
        commit.epoch = permit.epoch;
        permit.slot.send(Job::Commit(commit));
    }

    /// Waits until everything queued so far is durable (REST writes).
    pub(crate) async fn sync(&self, permit: Permit, mut commit: Commit) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        commit.done = Some(tx);
        Hub::send(permit, commit);
        match rx.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(HubError::StoreUnavailable),
            Err(_) => Err(HubError::ShuttingDown),
        }
    }

    /// The in-memory state of a conversation, loaded from the store if needed.
    pub(crate) fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<RefMut<'_, ConversationId, ConvState>> {
        if let Some(c) = self.shared.conversations.get_mut(&id) {
            return Ok(c);
        }
        let record = self.store().conversation(id)?.ok_or(HubError::NotFound)?;
        let state = ConvState::stored(self.store(), record)?;
        Ok(self.shared.conversations.entry(id).or_insert(state))
    }

    /// Drops from memory the closed conversations whose messages are all
    /// durable: they are read from the store again if anyone needs them (a
    /// reopen, a history page). Without this a long-running server would keep
    /// every conversation it ever touched. Runs on every heartbeat tick;
    /// returns how many it dropped.
    pub fn forget_closed(&self) -> usize {
        let before = self.shared.conversations.len();
        self.shared.conversations.retain(|_, st| {
            st.record.is_open() || st.durable_seq.load(Ordering::Acquire) < st.last_seq
        });
        before.saturating_sub(self.shared.conversations.len())
    }

    /// Conversations held in memory (open ones, and closed ones not yet forgotten).
    pub fn conversations_in_memory(&self) -> usize {
        self.shared.conversations.len()
    }

    pub(crate) fn forget_conversation(&self, id: ConversationId) {
        self.shared.conversations.remove(&id);
    }

    /// Counts of in-memory open conversations by status (for metrics).
    pub fn open_counts(&self) -> [(ConversationStatus, usize); 3] {
        let mut counts = [
            (ConversationStatus::Bot, 0),
            (ConversationStatus::Queued, 0),
            (ConversationStatus::Assigned, 0),
        ];
        for c in self.shared.conversations.iter() {
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == c.record.status) {
                slot.1 += 1;
            }
        }
        counts
    }

    /// The wire view of a conversation.
    pub(crate) fn view(&self, st: &ConvState, queue_position: Option<u32>) -> ConversationView {
        let r = &st.record;
        let customer_name = self
            .store()
            .customer(r.customer_id)
            .ok()
            .flatten()
            .and_then(|c| c.name);
        ConversationView {
            id: r.id,
            customer_id: r.customer_id,
            customer_name,
            status: r.status,
            agent_id: r.agent_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_seq: st.last_seq,
            queue_position,
            visitor_read_seq: r.visitor_read_seq,
            agent_read_seq: r.agent_read_seq,
            rating: r.rating.clone(),
            priority: r.priority,
            sentiment: r.sentiment(),
            team: r.team.clone(),
        }
    }

    /// The view of conversation `id`, with its queue position.
    pub fn view_of(&self, id: ConversationId) -> Result<ConversationView> {
        let position = self.routing().position(id);
        let st = self.conversation(id)?;
        Ok(self.view(&st, position))
    }

    /// Makes `write`'s store writes and returns once they are durable (REST
    /// writes). The commit slot is reserved first, so the writes fall in the
    /// store epoch the slot was taken in: if the store fails and is reopened
    /// meanwhile, the flush of the new database does not acknowledge them.
    pub async fn persist_with<T>(
        &self,
        write: impl FnOnce(&Store) -> crate::store::Result<T>,
    ) -> Result<T> {
        let permit = self.reserve().await?;
        let out = write(self.store())?;
        self.sync(permit, Commit::default()).await?;
        Ok(out)
    }

    /// The view of a stored conversation, without caching it.
    pub fn view_record(&self, r: &StoredConversation) -> Result<ConversationView> {
        if self.shared.conversations.contains_key(&r.id) {
            return self.view_of(r.id);
        }
        let st = ConvState::stored(self.store(), r.clone())?;
        Ok(self.view(&st, None))
    }

    /// Every conversation record, current: the stored copy, or the one in
    /// memory when the conversation is there (its stored copy may lag its
    /// newest messages).
    pub fn conversation_records(&self) -> impl Iterator<Item = Result<StoredConversation>> + '_ {
        self.store().conversations().map(move |r| {
            let r = r?;
            Ok(match self.shared.conversations.get(&r.id) {
                Some(st) => st.record.clone(),
                None => r,
            })
        })
    }

    /// Writes every record in memory whose stored copy is behind its messages
    /// (at shutdown, so the next start has nothing to catch up).
    async fn write_records(&self) -> Result<usize> {
        self.persist_with(|store| {
            let mut written = 0;
            for st in self.shared.conversations.iter() {
                if st.last_seq > 0 && st.last_seq % crate::store::NOTE_CHECKPOINT != 0 {
                    store.put_conversation(&st.record)?;
                    written += 1;
                }
            }
            Ok(written)
        })
        .await
    }

    /// Stops the committer after everything queued so far, and waits for its last flush.
    pub async fn shutdown(&self) {
        let recovery = self
            .shared
            .recovery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(r) = recovery {
            let _ = tokio::task::spawn_blocking(move || r.stop()).await;
        }
        match self.write_records().await {
            Ok(n) => tracing::debug!(records = n, "conversation records written"),
            Err(e) => tracing::warn!(error = %e, "conversation records not written at shutdown"),
        }
        let _ = self.shared.commits.send(Job::Stop).await;
        let thread = self
            .shared
            .committer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// Everyone who follows a conversation: its visitor and its agent, if any.
pub(crate) fn audience(r: &StoredConversation) -> Vec<To> {
    let mut to = vec![To::One(Participant::Visitor(r.customer_id))];
    if let Some(a) = r.agent_id {
        to.push(To::One(Participant::Agent(a)));
    }
    to
}
