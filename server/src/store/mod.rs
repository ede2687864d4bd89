//! The embedded store: sled trees holding conversations, messages, customers,
//! agents and agent sessions, with values encoded through
//! [`switchboard_protocol::codec`] (bincode behind a format-version byte).
//!
//! The store knows nothing of sessions or routing. It writes synchronously
//! into sled's in-memory pages; *durability* is the hub's committer's job,
//! which calls [`Store::flush`] once per batch of writes (group commit) before
//! anything is acknowledged. Keys put ids first, big-endian, so prefix scans
//! come back in order.

mod records;

pub use records::{AgentRecord, Customer, StoredConversation, TokenRecord};

use std::path::Path;
use switchboard_protocol::codec::{from_bincode, to_bincode, DecodeError};
use switchboard_protocol::model::Message;
use switchboard_protocol::{AgentId, ConversationId, CustomerId};

/// Format byte written before every stored value. Bump it (and migrate) when a record changes shape.
const VALUE_FORMAT: u8 = 1;

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
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the store; cheap to clone (sled trees are `Arc`s inside).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// `"visitor_secret"` → 32 random bytes; `"format"` → VALUE_FORMAT; `"knowledge_base"` → JSON.
    meta: sled::Tree,
    /// ConversationId → StoredConversation
    conversationid_conversation: sled::Tree,
    /// ConversationId ++ seq (u64 BE) → Message
    conversationid_seq_message: sled::Tree,
    /// ConversationId ++ client id bytes → seq (u64 BE): makes a resent client id a no-op.
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
}

fn key2(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

fn key_bytes(a: u64, b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + b.len());
    k.extend_from_slice(&a.to_be_bytes());
    k.extend_from_slice(b);
    k
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = bytes.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_be_bytes(b)
}

fn decode<T: serde::de::DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T> {
    from_bincode(VALUE_FORMAT, bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    to_bincode(VALUE_FORMAT, value)
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(64 * 1024 * 1024)
            // The committer flushes explicitly; sled's own timer flush adds
            // nothing but contention with it.
            .flush_every_ms(None)
            .open()?;
        let tree = |name: &str| db.open_tree(name);
        let store = Store {
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
            db,
        };
        store.meta.insert("format", &[VALUE_FORMAT])?;
        Ok(store)
    }

    /// Makes every write so far durable (see ARCHITECTURE.md, "What an ack guarantees").
    pub fn flush(&self) -> Result<usize> {
        Ok(self.db.flush()?)
    }

    /// A new id, unique in this store, never 0, below 2^53.
    pub fn next_id(&self) -> Result<u64> {
        Ok(self.db.generate_id()? + 1)
    }

    /// The secret that signs visitor tokens, created on first use.
    pub fn visitor_secret(&self) -> Result<Vec<u8>> {
        if let Some(s) = self.meta.get("visitor_secret")? {
            return Ok(s.to_vec());
        }
        let secret: [u8; 32] = rand::random();
        self.meta
            .compare_and_swap("visitor_secret", None as Option<&[u8]>, Some(&secret[..]))?
            .ok();
        Ok(self
            .meta
            .get("visitor_secret")?
            .map(|s| s.to_vec())
            .unwrap_or_default())
    }

    /// The knowledge base admins saved (JSON), if any.
    pub fn knowledge_base(&self) -> Result<Option<String>> {
        Ok(self
            .meta
            .get("knowledge_base")?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn put_knowledge_base(&self, json: &str) -> Result<()> {
        self.meta.insert("knowledge_base", json.as_bytes())?;
        Ok(())
    }

    // ---- conversations ----

    pub fn put_conversation(&self, c: &StoredConversation) -> Result<()> {
        self.conversationid_conversation
            .insert(c.id.to_be_bytes(), encode(c))?;
        Ok(())
    }

    pub fn conversation(&self, id: ConversationId) -> Result<Option<StoredConversation>> {
        self.conversationid_conversation
            .get(id.to_be_bytes())?
            .map(|v| decode("conversations", &v))
            .transpose()
    }

    /// Every conversation, in id order.
    pub fn conversations(&self) -> impl Iterator<Item = Result<StoredConversation>> + '_ {
        self.conversationid_conversation
            .iter()
            .map(|r| decode("conversations", &r?.1))
    }

    pub fn conversation_count(&self) -> usize {
        self.conversationid_conversation.len()
    }

    /// Links a new conversation to its customer.
    pub fn link_conversation(&self, customer: CustomerId, conv: ConversationId) -> Result<()> {
        self.customerid_conversationid
            .insert(key2(customer.0, conv.0), &[])?;
        Ok(())
    }

    /// A customer's conversation ids, oldest first.
    pub fn customer_conversations(&self, customer: CustomerId) -> Result<Vec<ConversationId>> {
        self.customerid_conversationid
            .scan_prefix(customer.to_be_bytes())
            .keys()
            .map(|k| Ok(ConversationId(u64_at(&k?, 8))))
            .collect()
    }

    // ---- messages ----

    /// Stores a message and remembers its client id.
    pub fn put_message(&self, m: &Message) -> Result<()> {
        let conv = m.conversation_id.0;
        self.conversationid_seq_message
            .insert(key2(conv, m.seq), encode(m))?;
        if let Some(cid) = &m.client_id {
            self.conversationid_clientid_seq
                .insert(key_bytes(conv, cid.as_bytes()), &m.seq.to_be_bytes())?;
        }
        Ok(())
    }

    /// The message a client id was stored as, if any.
    pub fn message_by_client_id(
        &self,
        conv: ConversationId,
        client_id: &str,
    ) -> Result<Option<Message>> {
        let Some(seq) = self
            .conversationid_clientid_seq
            .get(key_bytes(conv.0, client_id.as_bytes()))?
        else {
            return Ok(None);
        };
        self.message(conv, u64_at(&seq, 0))
    }

    pub fn message(&self, conv: ConversationId, seq: u64) -> Result<Option<Message>> {
        self.conversationid_seq_message
            .get(key2(conv.0, seq))?
            .map(|v| decode("messages", &v))
            .transpose()
    }

    /// Sequence number of a conversation's newest message (0 if none).
    pub fn last_seq(&self, conv: ConversationId) -> Result<u64> {
        Ok(self
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
        self.conversationid_seq_message
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
        for tree in [
            &self.conversationid_seq_message,
            &self.conversationid_clientid_seq,
        ] {
            for key in tree.scan_prefix(c.id.to_be_bytes()).keys() {
                tree.remove(key?)?;
            }
        }
        self.customerid_conversationid
            .remove(key2(c.customer_id.0, c.id.0))?;
        self.conversationid_conversation
            .remove(c.id.to_be_bytes())?;
        Ok(())
    }

    // ---- customers ----

    pub fn put_customer(&self, c: &Customer) -> Result<()> {
        self.customerid_customer
            .insert(c.id.to_be_bytes(), encode(c))?;
        Ok(())
    }

    pub fn customer(&self, id: CustomerId) -> Result<Option<Customer>> {
        self.customerid_customer
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
        self.customerid_customer
            .range(..end.to_be_bytes())
            .values()
            .rev()
            .map(|v| decode("customers", &v?))
    }

    pub fn delete_customer(&self, c: &Customer) -> Result<()> {
        if let Some(ext) = &c.external_id {
            self.externalid_customerid.remove(ext.as_bytes())?;
        }
        self.customerid_customer.remove(c.id.to_be_bytes())?;
        Ok(())
    }

    pub fn customer_by_external_id(&self, external: &str) -> Result<Option<CustomerId>> {
        Ok(self
            .externalid_customerid
            .get(external.as_bytes())?
            .map(|v| CustomerId(u64_at(&v, 0))))
    }

    pub fn link_external_id(&self, external: &str, id: CustomerId) -> Result<()> {
        self.externalid_customerid
            .insert(external.as_bytes(), &id.to_be_bytes())?;
        Ok(())
    }

    // ---- agents ----

    /// Stores an agent, keeping the email index in step. Returns `false` (and
    /// stores nothing) when another agent already has that email.
    pub fn put_agent(&self, a: &AgentRecord) -> Result<bool> {
        let email = a.email.to_lowercase();
        let claimed = self.email_agentid.compare_and_swap(
            email.as_bytes(),
            None as Option<&[u8]>,
            Some(&a.id.to_be_bytes()[..]),
        )?;
        if let Err(existing) = claimed {
            let owner = existing.current.map(|v| u64_at(&v, 0));
            if owner != Some(a.id.0) {
                return Ok(false);
            }
        }
        if let Some(old) = self.agent(a.id)? {
            let old_email = old.email.to_lowercase();
            if old_email != email {
                self.email_agentid.remove(old_email.as_bytes())?;
            }
        }
        self.agentid_agent.insert(a.id.to_be_bytes(), encode(a))?;
        Ok(true)
    }

    pub fn agent(&self, id: AgentId) -> Result<Option<AgentRecord>> {
        self.agentid_agent
            .get(id.to_be_bytes())?
            .map(|v| decode("agents", &v))
            .transpose()
    }

    pub fn agent_by_email(&self, email: &str) -> Result<Option<AgentRecord>> {
        match self.email_agentid.get(email.to_lowercase().as_bytes())? {
            Some(id) => self.agent(AgentId(u64_at(&id, 0))),
            None => Ok(None),
        }
    }

    pub fn agents(&self) -> Result<Vec<AgentRecord>> {
        self.agentid_agent
            .iter()
            .values()
            .map(|v| decode("agents", &v?))
            .collect()
    }

    pub fn delete_agent(&self, a: &AgentRecord) -> Result<()> {
        self.email_agentid
            .remove(a.email.to_lowercase().as_bytes())?;
        self.agentid_agent.remove(a.id.to_be_bytes())?;
        self.revoke_agent_tokens(a.id)?;
        Ok(())
    }

    // ---- agent bearer tokens ----

    pub fn put_token(&self, hash: &[u8; 32], t: &TokenRecord) -> Result<()> {
        self.tokenhash_token.insert(hash, encode(t))?;
        Ok(())
    }

    pub fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        self.tokenhash_token
            .get(hash)?
            .map(|v| decode("tokens", &v))
            .transpose()
    }

    pub fn remove_token(&self, hash: &[u8; 32]) -> Result<()> {
        self.tokenhash_token.remove(hash)?;
        Ok(())
    }

    /// Removes every token of an agent (disable, password change). A scan:
    /// token counts are small and this is rare.
    pub fn revoke_agent_tokens(&self, agent: AgentId) -> Result<()> {
        for entry in self.tokenhash_token.iter() {
            let (k, v) = entry?;
            let t: TokenRecord = decode("tokens", &v)?;
            if t.agent_id == agent {
                self.tokenhash_token.remove(k)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::model::{Author, AuthorKind};
    use switchboard_protocol::MessageId;

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
    fn client_ids_find_their_message_and_die_with_the_conversation() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.put_message(&msg(5, 1, Some("abc"))).unwrap();
        assert_eq!(
            s.message_by_client_id(ConversationId(5), "abc")
                .unwrap()
                .unwrap()
                .seq,
            1
        );
        assert!(s
            .message_by_client_id(ConversationId(6), "abc")
            .unwrap()
            .is_none());
        let conv = StoredConversation::new(ConversationId(5), CustomerId(1), 0);
        s.put_conversation(&conv).unwrap();
        s.delete_conversation(&conv).unwrap();
        assert!(s
            .message_by_client_id(ConversationId(5), "abc")
            .unwrap()
            .is_none());
        assert_eq!(s.last_seq(ConversationId(5)).unwrap(), 0);
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
            .conversationid_seq_message
            .get(key2(1, 1))
            .unwrap()
            .unwrap();
        assert_eq!(raw[0], VALUE_FORMAT);
    }
}
