//! The embedded store: sled trees holding conversations, messages, customers,
//! agents and agent sessions, with values encoded through
//! [`switchboard_protocol::codec`] (bincode behind a format-version byte).
//!
//! The store knows nothing of sessions or routing. It writes synchronously
//! into sled's in-memory pages; *durability* is the hub's committer's job,
//! which calls [`Store::flush`] once per batch of writes (group commit) before
//! anything is acknowledged. Keys put ids first, big-endian, so prefix scans
//! come back in order.
//!
//! Faults: once sled 0.34 fails to write its log (disk full, I/O error) it
//! keeps a global error and refuses every later write and flush, even after
//! the disk has room again; only opening the database anew clears it. So the
//! store tracks whether it is *writable* (a failed write or flush clears it),
//! and [`Store::reopen`] drops the sled handles and opens the folder again,
//! which starts a new *epoch*: writes made into an older epoch's memory are
//! gone unless they had reached the disk, and a flush only vouches for writes
//! made in its own epoch (see `hub::commit`).

mod records;

pub use records::{
    AgentRecord, Customer, SavedReply, StoredConversation, TokenRecord, NOTED_ALL, NOTE_CHECKPOINT,
};

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};
use switchboard_protocol::codec::{from_bincode, to_bincode, DecodeError};
use switchboard_protocol::model::Message;
use switchboard_protocol::server::Note;
use switchboard_protocol::{AgentId, ConversationId, CustomerId};

/// Format byte written before every stored value. Bump it (and migrate) when a record changes shape.
const VALUE_FORMAT: u8 = 1;
/// Format byte of conversation records, which gained `noted_seq` (format 1
/// records still read, as [`records::StoredConversationV1`]).
const CONVERSATION_FORMAT: u8 = 2;
/// Bytes [`Store::probe`] writes: about half a sled log segment.
const PROBE_BYTES: usize = 256 * 1024;
/// sled's page cache unless configured (`store_cache_mib`).
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// How long [`Store::reopen`] waits for in-flight calls to let go of the old database.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record in {tree}: {source}")]
    Corrupt {
        tree: &'static str,
        #[source]
        source: DecodeError,
    },
    /// A reopen closed the database and could not open it again (yet).
    #[error("storage: the database is closed")]
    Closed,
    /// The data folder cannot be written (probe) or synced.
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    /// In-flight calls held the old database past [`RELEASE_WAIT`]; try again.
    #[error("storage: the database is busy; not reopened")]
    Busy,
}

impl StoreError {
    /// Whether this is the store failing to write or being unavailable (as
    /// opposed to a bug or a corrupt record): the client is told `store_unavailable`.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(sled::Error::Io(_))
                | StoreError::Closed
                | StoreError::Io(_)
                | StoreError::Busy
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the store; cheap to clone (every clone sees the same database, also after a reopen).
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    /// sled's page cache size, kept for reopening.
    cache_bytes: u64,
    /// The open database. Calls clone the `Arc` and let go of it when done, so
    /// [`Store::reopen`] can tell when nobody uses the old one. `None` only
    /// while a reopen failed half-way.
    trees: RwLock<Option<Arc<Trees>>>,
    /// Cleared by a failed write or flush, set again by the hub's recovery.
    writable: AtomicBool,
    /// Bumped by every reopen.
    epoch: AtomicU64,
}

/// One opened sled database and its trees.
struct Trees {
    /// The [`Store::epoch`] this database was opened in.
    epoch: u64,
    db: sled::Db,
    /// `"visitor_secret"` → 32 random bytes; `"format"` → VALUE_FORMAT; `"knowledge_base"` → JSON.
    meta: sled::Tree,
    /// ConversationId → StoredConversation
    conversationid_conversation: sled::Tree,
    /// ConversationId ++ seq (u64 BE) → Message
    conversationid_seq_message: sled::Tree,
    /// ConversationId ++ client id bytes → seq (u64 BE). Written by earlier
    /// versions only (the hub now recognises a resend from the newest
    /// messages, see `hub::resend`); kept so that deleting a conversation
    /// erases its old entries.
    conversationid_clientid_seq: sled::Tree,
    /// CustomerId → Customer
    customerid_customer: sled::Tree,
    /// CustomerId ++ ConversationId → () : a customer's conversations, oldest first.
    customerid_conversationid: sled::Tree,
    /// External user id (from identify) → CustomerId
    externalid_customerid: sled::Tree,
    /// AgentId → AgentRecord
    agentid_agent: sled::Tree,
    /// lower-cased email → AgentId
    email_agentid: sled::Tree,
    /// SHA-256 of a bearer token → TokenRecord (the token itself is never stored).
    tokenhash_token: sled::Tree,
    /// AgentId → Vec<String>: the agent's teams, sorted (no key: none). Kept
    /// beside `agentid_agent` because a bincode record cannot grow a field.
    agentid_teams: sled::Tree,
    /// ConversationId → String: the team the conversation is routed to (no key: none).
    conversationid_team: sled::Tree,
    /// u64 id → SavedReply
    replyid_reply: sled::Tree,
    /// ConversationId ++ note id (u64 BE) → Note: private notes, oldest first.
    conversationid_noteid_note: sled::Tree,
}

impl Trees {
    fn open(dir: &Path, epoch: u64, cache_bytes: u64) -> Result<Trees> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // The committer flushes explicitly; sled's own timer flush adds
            // nothing but contention with it.
            .flush_every_ms(None)
            .open()?;
        let tree = |name: &str| db.open_tree(name);
        let trees = Trees {
            epoch,
            meta: tree("meta")?,
            conversationid_conversation: tree("conversationid_conversation")?,
            conversationid_seq_message: tree("conversationid_seq_message")?,
            conversationid_clientid_seq: tree("conversationid_clientid_seq")?,
            customerid_customer: tree("customerid_customer")?,
            customerid_conversationid: tree("customerid_conversationid")?,
            externalid_customerid: tree("externalid_customerid")?,
            agentid_agent: tree("agentid_agent")?,
            email_agentid: tree("email_agentid")?,
            tokenhash_token: tree("tokenhash_token")?,
            agentid_teams: tree("agentid_teams")?,
            conversationid_team: tree("conversationid_team")?,
            replyid_reply: tree("replyid_reply")?,
            conversationid_noteid_note: tree("conversationid_noteid_note")?,
            db,
        };
        trees.meta.insert("format", &[VALUE_FORMAT])?;
        Ok(trees)
    }
}

fn key2(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = bytes.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_be_bytes(b)
}

/// A result as two options, for iterators that start with an error or with items.
fn split<T, E>(r: std::result::Result<T, E>) -> (Option<T>, Option<E>) {
    match r {
        Ok(t) => (Some(t), None),
        Err(e) => (None, Some(e)),
    }
}

fn decode<T: serde::de::DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T> {
    from_bincode(VALUE_FORMAT, bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    to_bincode(VALUE_FORMAT, value)
}

/// A conversation record in either format.
fn decode_conversation(bytes: &[u8]) -> Result<StoredConversation> {
    let tree = "conversations";
    match bytes.first() {
        Some(&VALUE_FORMAT) => decode::<records::StoredConversationV1>(tree, bytes).map(Into::into),
        _ => from_bincode(CONVERSATION_FORMAT, bytes)
            .map_err(|source| StoreError::Corrupt { tree, source }),
    }
}

/// A conversation record with its team (from `conversationid_team`) filled in.
fn with_team(t: &Trees, mut c: StoredConversation) -> Result<StoredConversation> {
    c.team = t
        .conversationid_team
        .get(c.id.to_be_bytes())?
        .map(|v| decode("conversationid_team", &v))
        .transpose()?;
    Ok(c)
}

/// An agent record with its teams (from `agentid_teams`) filled in.
fn with_teams(t: &Trees, mut a: AgentRecord) -> Result<AgentRecord> {
    a.teams = t
        .agentid_teams
        .get(a.id.to_be_bytes())?
        .map(|v| decode("agentid_teams", &v))
        .transpose()?
        .unwrap_or_default();
    Ok(a)
}

impl Store {
    /// Opens (or creates) the store in `dir`, with the default cache.
    pub fn open(dir: &Path) -> Result<Store> {
        Store::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store in `dir`; sled may keep `cache_bytes` of
    /// pages in memory (its own estimate: the heap it takes is about twice that).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Store> {
        let trees = Trees::open(dir, 0, cache_bytes)?;
        Ok(Store {
            shared: Arc::new(Shared {
                cache_bytes,
                dir: dir.to_path_buf(),
                trees: RwLock::new(Some(Arc::new(trees))),
                writable: AtomicBool::new(true),
                epoch: AtomicU64::new(0),
            }),
        })
    }

    /// The open database, for one call.
    fn trees(&self) -> Result<Arc<Trees>> {
        self.shared
            .trees
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Closed)
    }

    /// Passes a write's result on; an I/O error marks the store unwritable.
    fn wrote<T>(&self, result: sled::Result<T>) -> Result<T> {
        if let Err(sled::Error::Io(e)) = &result {
            self.mark_unwritable(e);
        }
        Ok(result?)
    }

    /// Makes every write so far durable (see ARCHITECTURE.md, "What an ack
    /// guarantees"). Returns the epoch of the database it flushed: writes made
    /// in another epoch are not covered.
    pub fn flush(&self) -> Result<u64> {
        let t = self.trees()?;
        self.wrote(t.db.flush())?;
        Ok(t.epoch)
    }

    /// Whether writes are expected to work: false from a failed write or
    /// flush until the hub's recovery has reopened and flushed the store.
    pub fn is_writable(&self) -> bool {
        self.shared.writable.load(Ordering::Acquire)
    }

    /// Records that the store failed to write (logged once per outage).
    pub fn mark_unwritable(&self, why: &dyn std::fmt::Display) {
        if self.shared.writable.swap(false, Ordering::AcqRel) {
            tracing::error!(error = %why, "the store cannot write; refusing writes until it recovers");
        }
    }

    /// Records that the store writes again.
    pub fn mark_writable(&self) {
        if !self.shared.writable.swap(true, Ordering::AcqRel) {
            tracing::warn!(epoch = self.epoch(), "the store writes again");
        }
    }

    /// How many times the database has been reopened since the process started.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::Acquire)
    }

    /// Checks that the data folder takes writes again: writes, syncs and
    /// removes a scratch file of [`PROBE_BYTES`].
    pub fn probe(&self) -> Result<()> {
        let path = self.shared.dir.join("write-probe");
        let written = std::fs::File::create(&path).and_then(|mut f| {
            f.write_all(&[0u8; PROBE_BYTES])?;
            f.sync_all()
        });
        let removed = std::fs::remove_file(&path);
        written?;
        Ok(removed?)
    }

    /// Closes the database and opens it again from disk, which clears a
    /// failed sled's sticky error. Waits (up to [`RELEASE_WAIT`]) for calls
    /// in flight to let go of the old database; calls made meanwhile wait for
    /// the new one. Whatever the old one held only in memory is lost, so the
    /// caller must reconcile its own state with what is on disk.
    pub fn reopen(&self) -> Result<()> {
        let deadline = Instant::now() + RELEASE_WAIT;
        loop {
            let mut slot = self
                .shared
                .trees
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if slot.as_ref().is_some_and(|t| Arc::strong_count(t) > 1) {
                drop(slot);
                if Instant::now() > deadline {
                    return Err(StoreError::Busy);
                }
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let epoch = self.shared.epoch.fetch_add(1, Ordering::AcqRel) + 1;
            // Dropping the last handle closes sled's files and releases its lock.
            *slot = None;
            let trees = self.open_again(epoch)?;
            *slot = Some(Arc::new(trees));
            return Ok(());
        }
    }

    /// Opens the folder for `epoch`, retrying briefly while sled's background
    /// threads still hold the old file lock, then syncs the log so that what
    /// the old database had written (and will now be read back) is on disk.
    fn open_again(&self, epoch: u64) -> Result<Trees> {
        let dir = &self.shared.dir;
        let mut tries = 0;
        let trees = loop {
            match Trees::open(dir, epoch, self.shared.cache_bytes) {
                Ok(t) => break t,
                Err(StoreError::Sled(sled::Error::Io(e))) if tries < 20 => {
                    tracing::debug!(error = %e, "reopening the store: retrying");
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) => return Err(e),
            }
        };
        std::fs::File::open(dir.join("db"))?.sync_all()?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(trees)
    }

    /// A new id, unique in this store, never 0, below 2^53.
    pub fn next_id(&self) -> Result<u64> {
        let t = self.trees()?;
        Ok(self.wrote(t.db.generate_id())? + 1)
    }

    /// The secret that signs visitor tokens, created on first use.
    pub fn visitor_secret(&self) -> Result<Vec<u8>> {
        let t = self.trees()?;
        if let Some(s) = t.meta.get("visitor_secret")? {
            return Ok(s.to_vec());
        }
        let secret: [u8; 32] = rand::random();
        self.wrote(t.meta.compare_and_swap(
            "visitor_secret",
            None as Option<&[u8]>,
            Some(&secret[..]),
        ))?
        .ok();
        Ok(t.meta
            .get("visitor_secret")?
            .map(|s| s.to_vec())
            .unwrap_or_default())
    }

    /// The knowledge base admins saved (JSON), if any.
    pub fn knowledge_base(&self) -> Result<Option<String>> {
        Ok(self
            .trees()?
            .meta
            .get("knowledge_base")?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn put_knowledge_base(&self, json: &str) -> Result<()> {
        let t = self.trees()?;
        self.wrote(t.meta.insert("knowledge_base", json.as_bytes()))?;
        Ok(())
    }

    // ---- conversations ----

    pub fn put_conversation(&self, c: &StoredConversation) -> Result<()> {
        let t = self.trees()?;
        self.wrote(
            t.conversationid_conversation
                .insert(c.id.to_be_bytes(), to_bincode(CONVERSATION_FORMAT, c)),
        )?;
        Ok(())
    }

    pub fn conversation(&self, id: ConversationId) -> Result<Option<StoredConversation>> {
        let t = self.trees()?;
        t.conversationid_conversation
            .get(id.to_be_bytes())?
            .map(|v| with_team(&t, decode_conversation(&v)?))
            .transpose()
    }

    /// Sets (or with `None` clears) the team a conversation is routed to.
    pub fn put_conversation_team(&self, id: ConversationId, team: Option<&str>) -> Result<()> {
        let t = self.trees()?;
        let key = id.to_be_bytes();
        match team {
            Some(team) => self.wrote(t.conversationid_team.insert(key, encode(&team)))?,
            None => self.wrote(t.conversationid_team.remove(key))?,
        };
        Ok(())
    }

    /// Every conversation, in id order.
    pub fn conversations(&self) -> impl Iterator<Item = Result<StoredConversation>> + '_ {
        let (trees, failed) = split(self.trees());
        let iter = trees.as_ref().map(|t| t.conversationid_conversation.iter());
        // `trees` moves into the closure: the database stays open while the iterator lives.
        failed
            .into_iter()
            .map(Err)
            .chain(iter.into_iter().flatten().map(move |r| {
                let c = decode_conversation(&r?.1)?;
                match &trees {
                    Some(t) => with_team(t, c),
                    None => Ok(c),
                }
            }))
    }

    pub fn conversation_count(&self) -> usize {
        self.trees()
            .map_or(0, |t| t.conversationid_conversation.len())
    }

    /// Links a new conversation to its customer.
    pub fn link_conversation(&self, customer: CustomerId, conv: ConversationId) -> Result<()> {
        let t = self.trees()?;
        self.wrote(
            t.customerid_conversationid
                .insert(key2(customer.0, conv.0), &[]),
        )?;
        Ok(())
    }

    /// A customer's conversation ids, oldest first.
    pub fn customer_conversations(&self, customer: CustomerId) -> Result<Vec<ConversationId>> {
        self.trees()?
            .customerid_conversationid
            .scan_prefix(customer.to_be_bytes())
            .keys()
            .map(|k| Ok(ConversationId(u64_at(&k?, 8))))
            .collect()
    }

    // ---- messages ----

    /// Stores a message: one write, the message under its sequence number.
    pub fn put_message(&self, m: &Message) -> Result<()> {
        let t = self.trees()?;
        self.wrote(
            t.conversationid_seq_message
                .insert(key2(m.conversation_id.0, m.seq), encode(m)),
        )?;
        Ok(())
    }

    pub fn message(&self, conv: ConversationId, seq: u64) -> Result<Option<Message>> {
        self.trees()?
            .conversationid_seq_message
            .get(key2(conv.0, seq))?
            .map(|v| decode("messages", &v))
            .transpose()
    }

    /// Sequence number of a conversation's newest message (0 if none).
    pub fn last_seq(&self, conv: ConversationId) -> Result<u64> {
        Ok(self
            .trees()?
            .conversationid_seq_message
            .scan_prefix(conv.to_be_bytes())
            .keys()
            .next_back()
            .transpose()?
            .map_or(0, |k| u64_at(&k, 8)))
    }

    /// Messages with `from <= seq <= to`, ascending, at most `limit`.
    pub fn messages_between(
        &self,
        conv: ConversationId,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        if from > to {
            return Ok(Vec::new());
        }
        self.trees()?
            .conversationid_seq_message
            .range(key2(conv.0, from)..=key2(conv.0, to))
            .values()
            .take(limit)
            .map(|v| decode("messages", &v?))
            .collect()
    }

    /// The `limit` newest messages with `seq < before`, ascending.
    pub fn messages_before(
        &self,
        conv: ConversationId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let mut out: Vec<Message> = self
            .trees()?
            .conversationid_seq_message
            .range(key2(conv.0, 0)..key2(conv.0, before))
            .values()
            .rev()
            .take(limit)
            .map(|v| decode("messages", &v?))
            .collect::<Result<_>>()?;
        out.reverse();
        Ok(out)
    }

    /// Erases a conversation with its messages and client-id index.
    pub fn delete_conversation(&self, c: &StoredConversation) -> Result<()> {
        let t = self.trees()?;
        for tree in [
            &t.conversationid_seq_message,
            &t.conversationid_clientid_seq,
            &t.conversationid_noteid_note,
        ] {
            for key in tree.scan_prefix(c.id.to_be_bytes()).keys() {
                self.wrote(tree.remove(key?))?;
            }
        }
        self.wrote(
            t.customerid_conversationid
                .remove(key2(c.customer_id.0, c.id.0)),
        )?;
        self.wrote(t.conversationid_team.remove(c.id.to_be_bytes()))?;
        self.wrote(t.conversationid_conversation.remove(c.id.to_be_bytes()))?;
        Ok(())
    }

    // ---- customers ----

    pub fn put_customer(&self, c: &Customer) -> Result<()> {
        let t = self.trees()?;
        self.wrote(t.customerid_customer.insert(c.id.to_be_bytes(), encode(c)))?;
        Ok(())
    }

    pub fn customer(&self, id: CustomerId) -> Result<Option<Customer>> {
        self.trees()?
            .customerid_customer
            .get(id.to_be_bytes())?
            .map(|v| decode("customers", &v))
            .transpose()
    }

    /// Customers, newest (highest id) first, starting below `before` when given.
    pub fn customers_desc(
        &self,
        before: Option<CustomerId>,
    ) -> impl Iterator<Item = Result<Customer>> + '_ {
        let end = before.map_or(u64::MAX, |b| b.0);
        let (trees, failed) = split(self.trees());
        let iter = trees
            .as_ref()
            .map(|t| t.customerid_customer.range(..end.to_be_bytes()));
        // `trees` moves into the closure: the database stays open while the iterator lives.
        failed
            .into_iter()
            .map(Err)
            .chain(iter.into_iter().flatten().rev().map(move |r| {
                let _open = &trees;
                decode("customers", &r?.1)
            }))
    }

    pub fn delete_customer(&self, c: &Customer) -> Result<()> {
        let t = self.trees()?;
        if let Some(ext) = &c.external_id {
            self.wrote(t.externalid_customerid.remove(ext.as_bytes()))?;
        }
        self.wrote(t.customerid_customer.remove(c.id.to_be_bytes()))?;
        Ok(())
    }

    pub fn customer_by_external_id(&self, external: &str) -> Result<Option<CustomerId>> {
        Ok(self
            .trees()?
            .externalid_customerid
            .get(external.as_bytes())?
            .map(|v| CustomerId(u64_at(&v, 0))))
    }

    pub fn link_external_id(&self, external: &str, id: CustomerId) -> Result<()> {
        let t = self.trees()?;
        self.wrote(
            t.externalid_customerid
                .insert(external.as_bytes(), &id.to_be_bytes()),
        )?;
        Ok(())
    }

    // ---- agents ----

    /// Stores an agent and its teams, keeping the email index in step. Returns
    /// `false` (and stores nothing) when another agent already has that email.
    pub fn put_agent(&self, a: &AgentRecord) -> Result<bool> {
        let t = self.trees()?;
        let email = a.email.to_lowercase();
        let claimed = self.wrote(t.email_agentid.compare_and_swap(
            email.as_bytes(),
            None as Option<&[u8]>,
            Some(&a.id.to_be_bytes()[..]),
        ))?;
        if let Err(existing) = claimed {
            let owner = existing.current.map(|v| u64_at(&v, 0));
            if owner != Some(a.id.0) {
                return Ok(false);
            }
        }
        if let Some(old) = self.agent(a.id)? {
            let old_email = old.email.to_lowercase();
            if old_email != email {
                self.wrote(t.email_agentid.remove(old_email.as_bytes()))?;
            }
        }
        self.wrote(t.agentid_agent.insert(a.id.to_be_bytes(), encode(a)))?;
        let key = a.id.to_be_bytes();
        if a.teams.is_empty() {
            self.wrote(t.agentid_teams.remove(key))?;
        } else {
            self.wrote(t.agentid_teams.insert(key, encode(&a.teams)))?;
        }
        Ok(true)
    }

    pub fn agent(&self, id: AgentId) -> Result<Option<AgentRecord>> {
        let t = self.trees()?;
        t.agentid_agent
            .get(id.to_be_bytes())?
            .map(|v| with_teams(&t, decode("agents", &v)?))
            .transpose()
    }

    pub fn agent_by_email(&self, email: &str) -> Result<Option<AgentRecord>> {
        let id = self
            .trees()?
            .email_agentid
            .get(email.to_lowercase().as_bytes())?;
        match id {
            Some(id) => self.agent(AgentId(u64_at(&id, 0))),
            None => Ok(None),
        }
    }

    pub fn agents(&self) -> Result<Vec<AgentRecord>> {
        let t = self.trees()?;
        t.agentid_agent
            .iter()
            .values()
            .map(|v| with_teams(&t, decode("agents", &v?)?))
            .collect()
    }

    pub fn delete_agent(&self, a: &AgentRecord) -> Result<()> {
        let t = self.trees()?;
        self.wrote(t.email_agentid.remove(a.email.to_lowercase().as_bytes()))?;
        self.wrote(t.agentid_teams.remove(a.id.to_be_bytes()))?;
        self.wrote(t.agentid_agent.remove(a.id.to_be_bytes()))?;
        self.revoke_agent_tokens(a.id)?;
        Ok(())
    }

    // ---- agent bearer tokens ----

    pub fn put_token(&self, hash: &[u8; 32], t: &TokenRecord) -> Result<()> {
        let trees = self.trees()?;
        self.wrote(trees.tokenhash_token.insert(hash, encode(t)))?;
        Ok(())
    }

    pub fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        self.trees()?
            .tokenhash_token
            .get(hash)?
            .map(|v| decode("tokens", &v))
            .transpose()
    }

    pub fn remove_token(&self, hash: &[u8; 32]) -> Result<()> {
        let t = self.trees()?;
        self.wrote(t.tokenhash_token.remove(hash))?;
        Ok(())
    }

    /// Removes every token of an agent (disable, password change). A scan:
    /// token counts are small and this is rare.
    pub fn revoke_agent_tokens(&self, agent: AgentId) -> Result<()> {
        let trees = self.trees()?;
        for entry in trees.tokenhash_token.iter() {
            let (k, v) = entry?;
            let t: TokenRecord = decode("tokens", &v)?;
            if t.agent_id == agent {
                self.wrote(trees.tokenhash_token.remove(k))?;
            }
        }
        Ok(())
    }
}

impl Store {
    // ---- private notes ----

    pub fn put_note(&self, n: &Note) -> Result<()> {
        let t = self.trees()?;
        self.wrote(
            t.conversationid_noteid_note
                .insert(key2(n.conversation_id.0, n.id), encode(n)),
        )?;
        Ok(())
    }

    /// A conversation's notes, oldest first.
    pub fn notes(&self, conv: ConversationId) -> Result<Vec<Note>> {
        self.trees()?
            .conversationid_noteid_note
            .scan_prefix(conv.to_be_bytes())
            .values()
            .map(|v| decode("notes", &v?))
            .collect()
    }

    // ---- saved replies ----

    pub fn put_saved_reply(&self, r: &SavedReply) -> Result<()> {
        let t = self.trees()?;
        self.wrote(t.replyid_reply.insert(r.id.to_be_bytes(), encode(r)))?;
        Ok(())
    }

    /// Every saved reply, in id order (there are at most a few hundred).
    pub fn saved_replies(&self) -> Result<Vec<SavedReply>> {
        self.trees()?
            .replyid_reply
            .iter()
            .values()
            .map(|v| decode("saved replies", &v?))
            .collect()
    }

    /// Removes a saved reply; `false` if there was none.
    pub fn delete_saved_reply(&self, id: u64) -> Result<bool> {
        let t = self.trees()?;
        Ok(self
            .wrote(t.replyid_reply.remove(id.to_be_bytes()))?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::model::{Author, AuthorKind, ConversationStatus};
    use switchboard_protocol::MessageId;

    fn key_bytes(a: u64, b: &[u8]) -> Vec<u8> {
        let mut k = a.to_be_bytes().to_vec();
        k.extend_from_slice(b);
        k
    }

    fn msg(conv: u64, seq: u64, client_id: Option<&str>) -> Message {
        Message {
            id: MessageId(seq + 100),
            conversation_id: ConversationId(conv),
            seq,
            author: Author {
                kind: AuthorKind::Visitor,
                id: 1,
                name: String::new(),
            },
            text: format!("m{seq}"),
            client_id: client_id.map(str::to_string),
            sent_at: 0,
            analysis: None,
        }
    }

    #[test]
    fn messages_scan_in_sequence_order_per_conversation() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        // 256 and 1 would misorder as little-endian or decimal strings.
        for seq in [1, 2, 256, 3, 257] {
            s.put_message(&msg(5, seq, None)).unwrap();
        }
        s.put_message(&msg(6, 1, None)).unwrap();
        let all: Vec<u64> = s
            .messages_between(ConversationId(5), 0, u64::MAX, 100)
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(all, [1, 2, 3, 256, 257]);
        assert_eq!(s.last_seq(ConversationId(5)).unwrap(), 257);
        assert_eq!(s.last_seq(ConversationId(7)).unwrap(), 0);
        let page: Vec<u64> = s
            .messages_before(ConversationId(5), 256, 2)
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(page, [2, 3]);
    }

    #[test]
    fn a_message_is_one_write_and_dies_with_its_conversation() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        // An index entry as earlier versions wrote it.
        let old_index = key_bytes(5, b"abc");
        s.trees()
            .unwrap()
            .conversationid_clientid_seq
            .insert(&old_index, &1u64.to_be_bytes())
            .unwrap();
        s.put_message(&msg(5, 1, Some("abc"))).unwrap();
        let t = s.trees().unwrap();
        assert_eq!(t.conversationid_clientid_seq.len(), 1, "no index write");
        let conv = StoredConversation::new(ConversationId(5), CustomerId(1), 0);
        s.put_conversation(&conv).unwrap();
        s.delete_conversation(&conv).unwrap();
        assert!(t.conversationid_clientid_seq.is_empty());
        assert_eq!(s.last_seq(ConversationId(5)).unwrap(), 0);
        assert!(s.conversation(ConversationId(5)).unwrap().is_none());
    }

    #[test]
    fn format_1_conversation_records_still_read() {
        let old = records::StoredConversationV1 {
            id: ConversationId(9),
            customer_id: CustomerId(3),
            status: ConversationStatus::Assigned,
            agent_id: Some(AgentId(2)),
            created_at: 10,
            updated_at: 20,
            queued_at: None,
            closed_at: None,
            first_response_at: Some(15),
            priority: 1,
            visitor_read_seq: 4,
            agent_read_seq: 5,
            rating: None,
            sentiment_sum: -0.5,
            sentiment_count: 2,
            bot_answers_in_a_row: 1,
        };
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.trees()
            .unwrap()
            .conversationid_conversation
            .insert(9u64.to_be_bytes(), to_bincode(VALUE_FORMAT, &old))
            .unwrap();
        let c = s.conversation(ConversationId(9)).unwrap().unwrap();
        assert_eq!(
            (
                c.agent_id,
                c.updated_at,
                c.first_response_at,
                c.agent_read_seq
            ),
            (Some(AgentId(2)), 20, Some(15), 5)
        );
        assert_eq!((c.sentiment_count, c.noted_seq), (2, NOTED_ALL));
        // Written back, it takes the new format and reads the same.
        s.put_conversation(&c).unwrap();
        let raw = s
            .trees()
            .unwrap()
            .conversationid_conversation
            .get(9u64.to_be_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(raw[0], CONVERSATION_FORMAT);
        assert_eq!(s.conversation(ConversationId(9)).unwrap().unwrap(), c);
    }

    #[test]
    fn agent_emails_are_unique_case_insensitively() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let a = AgentRecord::new(
            AgentId(1),
            "Ann@x.io",
            "Ann",
            "hash",
            switchboard_protocol::model::Role::Admin,
            5,
        );
        assert!(s.put_agent(&a).unwrap());
        let b = AgentRecord::new(
            AgentId(2),
            "ann@X.io",
            "Bob",
            "hash",
            switchboard_protocol::model::Role::Agent,
            5,
        );
        assert!(!s.put_agent(&b).unwrap());
        assert_eq!(
            s.agent_by_email("ANN@x.io").unwrap().unwrap().id,
            AgentId(1)
        );
        let renamed = AgentRecord {
            email: "ann2@x.io".into(),
            ..a
        };
        assert!(s.put_agent(&renamed).unwrap());
        assert!(s.agent_by_email("ann@x.io").unwrap().is_none());
        assert!(s.put_agent(&b).unwrap());
    }

    #[test]
    fn teams_live_beside_their_records_and_go_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut a = AgentRecord::new(
            AgentId(1),
            "ann@x.io",
            "Ann",
            "hash",
            switchboard_protocol::model::Role::Agent,
            5,
        );
        let plain = encode(&a);
        a.teams = vec!["billing".into(), "orders".into()];
        // The record's bytes keep their old shape: older data folders (and
        // older binaries) read them as before.
        assert_eq!(encode(&a), plain);
        assert!(s.put_agent(&a).unwrap());
        assert_eq!(s.agent(a.id).unwrap().unwrap().teams, a.teams);
        assert_eq!(s.agents().unwrap()[0].teams, a.teams);
        assert_eq!(
            s.agent_by_email("ann@x.io").unwrap().unwrap().teams,
            a.teams
        );
        a.teams.clear();
        s.put_agent(&a).unwrap();
        assert!(s.agent(a.id).unwrap().unwrap().teams.is_empty());
        a.teams = vec!["orders".into()];
        s.put_agent(&a).unwrap();
        s.delete_agent(&a).unwrap();
        assert!(s.trees().unwrap().agentid_teams.is_empty());

        let c = StoredConversation::new(ConversationId(5), CustomerId(1), 0);
        s.put_conversation(&c).unwrap();
        assert_eq!(s.conversation(c.id).unwrap().unwrap().team, None);
        s.put_conversation_team(c.id, Some("orders")).unwrap();
        assert_eq!(
            s.conversation(c.id).unwrap().unwrap().team.as_deref(),
            Some("orders")
        );
        let all: Vec<_> = s.conversations().map(|c| c.unwrap().team).collect();
        assert_eq!(all, [Some("orders".to_string())]);
        s.delete_conversation(&c).unwrap();
        assert!(s.trees().unwrap().conversationid_team.is_empty());
    }

    #[test]
    fn values_survive_reopen_and_carry_the_format_byte() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put_message(&msg(1, 1, None)).unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.message(ConversationId(1), 1).unwrap().unwrap().text, "m1");
        let raw = s
            .trees()
            .unwrap()
            .conversationid_seq_message
            .get(key2(1, 1))
            .unwrap()
            .unwrap();
        assert_eq!(raw[0], VALUE_FORMAT);
    }
}
