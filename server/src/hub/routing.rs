//! Who gets which conversation: per-agent capacity, the waiting queue, and
//! the choice of agent. Pure bookkeeping, no I/O: the [`super::Hub`] holds it
//! behind one mutex, applies its decisions to the store, and announces them.
//!
//! Rules:
//! - A conversation goes to the online agent with the most free capacity;
//!   ties go to the agent idle longest (assigned least recently), then the lowest id.
//! - With no room anywhere it waits in the queue: higher priority first, then
//!   first come, first served.
//! - Whenever room appears (an agent comes online, frees a slot, or raises
//!   capacity) the head of the queue is assigned, as long as room lasts.

use std::collections::{BTreeSet, HashMap};
use switchboard_protocol::model::{AgentStatus, Presence};
use switchboard_protocol::{AgentId, ConversationId};

#[derive(Debug, Clone)]
pub(crate) struct AgentLoad {
    pub(crate) name: String,
    /// What the agent chose (online or away).
    pub(crate) chosen: AgentStatus,
    /// Connected sessions; an agent with none is offline whatever they chose.
    pub(crate) sessions: u32,
    pub(crate) capacity: u32,
    pub(crate) active: BTreeSet<ConversationId>,
    /// Logical time of the last assignment (smaller = idle longer).
    pub(crate) last_assigned: u64,
}

impl AgentLoad {
    pub(crate) fn status(&self) -> AgentStatus {
        if self.sessions == 0 {
            AgentStatus::Offline
        } else {
            self.chosen
        }
    }

    pub(crate) fn free(&self) -> u32 {
        self.capacity
            .saturating_sub(u32::try_from(self.active.len()).unwrap_or(u32::MAX))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiting {
    conversation: ConversationId,
    priority: i32,
    /// Arrival order (logical), FIFO within a priority.
    order: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Routing {
    agents: HashMap<AgentId, AgentLoad>,
    /// Sorted: priority descending, then arrival.
    queue: Vec<Waiting>,
    clock: u64,
}

impl Routing {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Registers (or updates) an agent account; keeps its sessions and conversations.
    pub(crate) fn upsert_agent(
        &mut self,
        id: AgentId,
        name: &str,
        chosen: AgentStatus,
        capacity: u32,
    ) {
        let a = self.agents.entry(id).or_insert_with(|| AgentLoad {
            name: String::new(),
            chosen,
            sessions: 0,
            capacity,
            active: BTreeSet::new(),
            last_assigned: 0,
        });
        a.name = name.to_string();
        a.chosen = chosen;
        a.capacity = capacity;
    }

    /// Forgets an agent (disabled or removed); returns the conversations they had.
    pub(crate) fn remove_agent(&mut self, id: AgentId) -> Vec<ConversationId> {
        self.agents
            .remove(&id)
            .map(|a| a.active.into_iter().collect())
            .unwrap_or_default()
    }

    pub(crate) fn agent(&self, id: AgentId) -> Option<&AgentLoad> {
        self.agents.get(&id)
    }

    pub(crate) fn agent_mut(&mut self, id: AgentId) -> Option<&mut AgentLoad> {
        self.agents.get_mut(&id)
    }

    pub(crate) fn presence(&self, id: AgentId) -> Option<Presence> {
        self.agents.get(&id).map(|a| Presence {
            agent_id: id,
            name: a.name.clone(),
            status: a.status(),
            capacity: a.capacity,
            active: u32::try_from(a.active.len()).unwrap_or(u32::MAX),
        })
    }

    pub(crate) fn all_presence(&self) -> Vec<Presence> {
        let mut ids: Vec<_> = self.agents.keys().copied().collect();
        ids.sort();
        ids.into_iter().filter_map(|id| self.presence(id)).collect()
    }

    /// The agent a new conversation would go to now.
    pub(crate) fn pick_agent(&self) -> Option<AgentId> {
        self.agents
            .iter()
            .filter(|(_, a)| a.status() == AgentStatus::Online && a.free() > 0)
            .min_by_key(|(id, a)| (std::cmp::Reverse(a.free()), a.last_assigned, **id))
            .map(|(id, _)| *id)
    }

    /// Records that `agent` has `conv` (whatever their capacity: claims and transfers may exceed it).
    pub(crate) fn assign(&mut self, conv: ConversationId, agent: AgentId) {
        self.remove_from_queue(conv);
        let now = self.tick();
        if let Some(a) = self.agents.get_mut(&agent) {
            a.active.insert(conv);
            a.last_assigned = now;
        }
    }

    /// `agent` no longer has `conv`.
    pub(crate) fn release(&mut self, conv: ConversationId, agent: AgentId) {
        if let Some(a) = self.agents.get_mut(&agent) {
            a.active.remove(&conv);
        }
    }

    /// Puts `conv` in the queue (or moves it, if its priority changed).
    pub(crate) fn enqueue(&mut self, conv: ConversationId, priority: i32) {
        let order = match self.queue.iter().position(|w| w.conversation == conv) {
            Some(i) => self.queue.remove(i).order,
            None => self.tick(),
        };
        let w = Waiting {
            conversation: conv,
            priority,
            order,
        };
        let at = self.queue.partition_point(|q| {
            (std::cmp::Reverse(q.priority), q.order) < (std::cmp::Reverse(priority), order)
        });
        self.queue.insert(at, w);
    }

    /// Takes `conv` out of the queue; returns whether it was there.
    pub(crate) fn remove_from_queue(&mut self, conv: ConversationId) -> bool {
        let before = self.queue.len();
        self.queue.retain(|w| w.conversation != conv);
        before != self.queue.len()
    }

    /// Assigns waiting conversations while some online agent has room.
    pub(crate) fn drain(&mut self) -> Vec<(ConversationId, AgentId)> {
        let mut out = Vec::new();
        while let Some(head) = self.queue.first().map(|w| w.conversation) {
            let Some(agent) = self.pick_agent() else {
                break;
            };
            self.assign(head, agent);
            out.push((head, agent));
        }
        out
    }

    /// 1-based queue position of `conv`.
    pub(crate) fn position(&self, conv: ConversationId) -> Option<u32> {
        self.queue
            .iter()
            .position(|w| w.conversation == conv)
            .and_then(|i| u32::try_from(i + 1).ok())
    }

    /// The queue in order.
    pub(crate) fn queue(&self) -> impl Iterator<Item = ConversationId> + '_ {
        self.queue.iter().map(|w| w.conversation)
    }

    pub(crate) fn queue_len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn online_agents(&self) -> usize {
        self.agents
            .values()
            .filter(|a| a.status() == AgentStatus::Online)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u64) -> ConversationId {
        ConversationId(n)
    }
    fn a(n: u64) -> AgentId {
        AgentId(n)
    }

    fn routing(agents: &[(u64, u32)]) -> Routing {
        let mut r = Routing::default();
        for &(id, cap) in agents {
            r.upsert_agent(a(id), "x", AgentStatus::Online, cap);
            r.agent_mut(a(id)).unwrap().sessions = 1;
        }
        r
    }

    #[test]
    fn most_free_capacity_wins_then_idle_longest() {
        let mut r = routing(&[(1, 2), (2, 3)]);
        assert_eq!(r.pick_agent(), Some(a(2)));
        r.assign(c(10), a(2));
        // Both have 2 free; agent 1 has never been assigned, so is idle longest.
        assert_eq!(r.pick_agent(), Some(a(1)));
        r.assign(c(11), a(1));
        // Both have 1 free; agent 2 was assigned earlier than agent 1.
        assert_eq!(r.pick_agent(), Some(a(2)));
    }

    #[test]
    fn offline_and_away_agents_get_nothing() {
        let mut r = routing(&[(1, 5), (2, 5)]);
        r.agent_mut(a(1)).unwrap().sessions = 0;
        r.agent_mut(a(2)).unwrap().chosen = AgentStatus::Away;
        assert_eq!(r.pick_agent(), None);
        assert_eq!(r.presence(a(1)).unwrap().status, AgentStatus::Offline);
        assert_eq!(r.presence(a(2)).unwrap().status, AgentStatus::Away);
    }

    #[test]
    fn queue_is_fifo_within_priority_and_drains_as_room_appears() {
        let mut r = routing(&[(1, 1)]);
        r.assign(c(1), a(1));
        for n in [2, 3, 4] {
            r.enqueue(c(n), 0);
        }
        r.enqueue(c(5), 2);
        assert_eq!(r.queue().collect::<Vec<_>>(), [c(5), c(2), c(3), c(4)]);
        assert_eq!(r.position(c(3)), Some(3));
        assert_eq!(r.drain(), []);
        r.release(c(1), a(1));
        assert_eq!(r.drain(), [(c(5), a(1))]);
        r.agent_mut(a(1)).unwrap().capacity = 3;
        assert_eq!(r.drain(), [(c(2), a(1)), (c(3), a(1))]);
        assert_eq!(r.position(c(4)), Some(1));
    }

    #[test]
    fn requeue_keeps_arrival_order_but_takes_new_priority() {
        let mut r = routing(&[]);
        r.enqueue(c(1), 0);
        r.enqueue(c(2), 0);
        r.enqueue(c(2), 0);
        assert_eq!(r.queue().collect::<Vec<_>>(), [c(1), c(2)]);
        r.enqueue(c(2), 5);
        assert_eq!(r.queue().collect::<Vec<_>>(), [c(2), c(1)]);
    }

    #[test]
    fn claims_may_exceed_capacity_and_free_it_later() {
        let mut r = routing(&[(1, 1)]);
        r.assign(c(1), a(1));
        r.enqueue(c(2), 0);
        r.assign(c(2), a(1));
        assert_eq!(r.queue_len(), 0);
        assert_eq!(r.presence(a(1)).unwrap().active, 2);
        r.release(c(1), a(1));
        r.enqueue(c(3), 0);
        assert_eq!(r.drain(), []);
    }
}
