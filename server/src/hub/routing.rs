//! Who gets which conversation: per-agent capacity and teams, the waiting
//! queue, and the choice of agent. Pure bookkeeping, no I/O: the
//! [`super::Hub`] holds it behind one mutex, applies its decisions to the
//! store, and announces them.
//!
//! Rules:
//! - An agent *takes new conversations* when they are online (connected, and
//!   chose online); away and offline agents take none.
//! - A conversation without a team goes to any agent who takes new
//!   conversations and has a free slot.
//! - A conversation with a team goes only to members of that team while some
//!   member takes new conversations; if they are all full it waits for one of
//!   them. When no member takes new conversations (nobody online in the team,
//!   or no agent has that team at all) it *overflows*: anyone may take it, so
//!   nobody waits forever for an empty team.
//! - Among the eligible agents with a free slot, the one with the most free
//!   capacity wins; ties go to the agent idle longest (assigned least
//!   recently), then the lowest id.
//! - With no eligible agent free it waits in the queue: higher priority
//!   first, then first come, first served.
//! - Whenever room may have appeared (an agent comes online or leaves, frees
//!   a slot, raises capacity, or changes teams) the queue is walked in order
//!   and each conversation goes to an eligible agent with room: an agent
//!   takes the first waiting conversation they may serve, not blindly the
//!   head of the queue.
//! - A waiting conversation's position counts the conversations ahead of it
//!   that the same agents would serve first. A conversation without a team,
//!   or of a team nobody online is in (it overflows), competes with everyone
//!   ahead; one of a staffed team competes with those ahead of its own team
//!   and with the ones anyone may take.

use crate::store::AgentRecord;
use std::collections::{BTreeSet, HashMap, HashSet};
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
    pub(crate) teams: BTreeSet<String>,
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

    /// Online: may be given new conversations (room permitting).
    fn takes_new(&self) -> bool {
        self.status() == AgentStatus::Online
    }
}

/// Whom a conversation may go to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eligible<'a> {
    Anyone,
    Members(&'a str),
}

/// A nudge on top of the rule, for one routing decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lean {
    /// The rule alone.
    None,
    /// This agent, if they take new conversations and have room (whatever the
    /// team: a reopened conversation goes back to its last agent); else the rule.
    Toward(AgentId),
    /// The rule without this agent (who is handing the conversation away): they
    /// neither take it nor count as the team's online member.
    AwayFrom(AgentId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiting {
    conversation: ConversationId,
    priority: i32,
    /// Arrival order (logical), FIFO within a priority.
    order: u64,
    team: Option<String>,
}

/// Who serves a waiting conversation: its team's members if some member is
/// online (`staffed`), else (`None`) anyone.
fn served_by<'w>(w: &'w Waiting, staffed: &HashSet<&str>) -> Option<&'w str> {
    w.team.as_deref().filter(|t| staffed.contains(t))
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
    pub(crate) fn upsert_agent(&mut self, r: &AgentRecord) {
        let a = self.agents.entry(r.id).or_insert_with(|| AgentLoad {
            name: String::new(),
            chosen: r.status,
            sessions: 0,
            capacity: r.capacity,
            active: BTreeSet::new(),
            last_assigned: 0,
            teams: BTreeSet::new(),
        });
        a.name.clone_from(&r.name);
        a.chosen = r.status;
        a.capacity = r.capacity;
        a.teams = r.teams.iter().cloned().collect();
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
            teams: a.teams.iter().cloned().collect(),
        })
    }

    pub(crate) fn all_presence(&self) -> Vec<Presence> {
        let mut ids: Vec<_> = self.agents.keys().copied().collect();
        ids.sort();
        ids.into_iter().filter_map(|id| self.presence(id)).collect()
    }

    /// Whether any (enabled) agent is in `team`.
    pub(crate) fn has_team(&self, team: &str) -> bool {
        self.agents.values().any(|a| a.teams.contains(team))
    }

    /// Whom a conversation of `team` may go to, leaving `except` out.
    fn eligible<'a>(&self, team: Option<&'a str>, except: Option<AgentId>) -> Eligible<'a> {
        let staffed = |t: &str| {
            self.agents
                .iter()
                .any(|(id, a)| Some(*id) != except && a.takes_new() && a.teams.contains(t))
        };
        match team {
            Some(t) if staffed(t) => Eligible::Members(t),
            _ => Eligible::Anyone,
        }
    }

    /// The best agent with room among `who`, leaving `except` out.
    fn best(&self, who: Eligible<'_>, except: Option<AgentId>) -> Option<AgentId> {
        self.agents
            .iter()
            .filter(|(id, a)| Some(**id) != except && a.takes_new() && a.free() > 0)
            .filter(|(_, a)| match who {
                Eligible::Anyone => true,
                Eligible::Members(t) => a.teams.contains(t),
            })
            .min_by_key(|(id, a)| (std::cmp::Reverse(a.free()), a.last_assigned, **id))
            .map(|(id, _)| *id)
    }

    /// The agent a conversation of `team` would go to now, if any.
    pub(crate) fn pick_agent(&self, team: Option<&str>, lean: Lean) -> Option<AgentId> {
        let except = match lean {
            Lean::Toward(a)
                if self
                    .agents
                    .get(&a)
                    .is_some_and(|l| l.takes_new() && l.free() > 0) =>
            {
                return Some(a)
            }
            Lean::AwayFrom(a) => Some(a),
            Lean::Toward(_) | Lean::None => None,
        };
        self.best(self.eligible(team, except), except)
    }

    /// Records that `agent` has `conv` (whatever their capacity: claims may exceed it).
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

    /// Puts `conv` in the queue (or moves it, if its priority or team changed).
    pub(crate) fn enqueue(&mut self, conv: ConversationId, priority: i32, team: Option<&str>) {
        let order = match self.queue.iter().position(|w| w.conversation == conv) {
            Some(i) => self.queue.remove(i).order,
            None => self.tick(),
        };
        let w = Waiting {
            conversation: conv,
            priority,
            order,
            team: team.map(str::to_owned),
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

    /// Assigns waiting conversations, in queue order, to eligible agents with
    /// room. `avoid` keeps one conversation away from one agent this time (the
    /// agent who just handed it to a team).
    pub(crate) fn drain(
        &mut self,
        avoid: Option<(ConversationId, AgentId)>,
    ) -> Vec<(ConversationId, AgentId)> {
        let mut out = Vec::new();
        // Teams whose members are online but full: assignments only use room
        // up, so they stay full for the rest of this walk.
        let mut full: HashSet<String> = HashSet::new();
        let mut i = 0;
        while let Some(w) = self.queue.get(i) {
            let except = avoid.filter(|(c, _)| *c == w.conversation).map(|(_, a)| a);
            if except.is_none() && w.team.as_ref().is_some_and(|t| full.contains(t)) {
                i += 1;
                continue;
            }
            let who = self.eligible(w.team.as_deref(), except);
            match (self.best(who, except), who) {
                (Some(agent), _) => {
                    let conv = w.conversation;
                    self.assign(conv, agent);
                    out.push((conv, agent));
                }
                // Nobody at all has room (the avoided agent aside).
                (None, Eligible::Anyone) if except.is_none() => break,
                (None, Eligible::Members(t)) if except.is_none() => {
                    full.insert(t.to_owned());
                    i += 1;
                }
                (None, _) => i += 1,
            }
        }
        out
    }

    /// 1-based queue position of `conv` (see the module docs).
    pub(crate) fn position(&self, conv: ConversationId) -> Option<u32> {
        self.positions()
            .into_iter()
            .find(|(c, _)| *c == conv)
            .map(|(_, p)| p)
    }

    /// Every waiting conversation with its position, in queue order (one pass).
    pub(crate) fn positions(&self) -> Vec<(ConversationId, u32)> {
        let staffed: HashSet<&str> = self
            .agents
            .values()
            .filter(|a| a.takes_new())
            .flat_map(|a| a.teams.iter().map(String::as_str))
            .collect();
        let mut anyones = 0usize;
        let mut by_team: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::with_capacity(self.queue.len());
        for (i, w) in self.queue.iter().enumerate() {
            let ahead = match served_by(w, &staffed) {
                None => i,
                Some(t) => anyones + by_team.get(t).copied().unwrap_or(0),
            };
            match served_by(w, &staffed) {
                None => anyones += 1,
                Some(t) => *by_team.entry(t).or_default() += 1,
            }
            out.push((w.conversation, u32::try_from(ahead + 1).unwrap_or(u32::MAX)));
        }
        out
    }

    /// The queue in order.
    #[cfg(test)]
    fn queue(&self) -> impl Iterator<Item = ConversationId> + '_ {
        self.queue.iter().map(|w| w.conversation)
    }

    pub(crate) fn queue_len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn online_agents(&self) -> usize {
        self.agents.values().filter(|a| a.takes_new()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::model::Role;

    fn c(n: u64) -> ConversationId {
        ConversationId(n)
    }
    fn a(n: u64) -> AgentId {
        AgentId(n)
    }

    /// Online agents `(id, capacity, teams)`.
    fn routing_with(agents: &[(u64, u32, &[&str])]) -> Routing {
        let mut r = Routing::default();
        for &(id, cap, teams) in agents {
            let mut rec = AgentRecord::new(a(id), "x@x", "x", "", Role::Agent, cap);
            rec.teams = teams.iter().map(|t| t.to_string()).collect();
            r.upsert_agent(&rec);
            r.agent_mut(a(id)).unwrap().sessions = 1;
        }
        r
    }

    fn routing(agents: &[(u64, u32)]) -> Routing {
        let with: Vec<_> = agents.iter().map(|&(id, cap)| (id, cap, &[][..])).collect();
        routing_with(&with)
    }

    fn pick(r: &Routing, team: Option<&str>) -> Option<AgentId> {
        r.pick_agent(team, Lean::None)
    }

    #[test]
    fn most_free_capacity_wins_then_idle_longest() {
        let mut r = routing(&[(1, 2), (2, 3)]);
        assert_eq!(pick(&r, None), Some(a(2)));
        r.assign(c(10), a(2));
        // Both have 2 free; agent 1 has never been assigned, so is idle longest.
        assert_eq!(pick(&r, None), Some(a(1)));
        r.assign(c(11), a(1));
        // Both have 1 free; agent 2 was assigned earlier than agent 1.
        assert_eq!(pick(&r, None), Some(a(2)));
    }

    #[test]
    fn offline_and_away_agents_get_nothing() {
        let mut r = routing(&[(1, 5), (2, 5)]);
        r.agent_mut(a(1)).unwrap().sessions = 0;
        r.agent_mut(a(2)).unwrap().chosen = AgentStatus::Away;
        assert_eq!(pick(&r, None), None);
        assert_eq!(r.presence(a(1)).unwrap().status, AgentStatus::Offline);
        assert_eq!(r.presence(a(2)).unwrap().status, AgentStatus::Away);
    }

    #[test]
    fn queue_is_fifo_within_priority_and_drains_as_room_appears() {
        let mut r = routing(&[(1, 1)]);
        r.assign(c(1), a(1));
        for n in [2, 3, 4] {
            r.enqueue(c(n), 0, None);
        }
        r.enqueue(c(5), 2, None);
        assert_eq!(r.queue().collect::<Vec<_>>(), [c(5), c(2), c(3), c(4)]);
        assert_eq!(r.position(c(3)), Some(3));
        assert_eq!(r.drain(None), []);
        r.release(c(1), a(1));
        assert_eq!(r.drain(None), [(c(5), a(1))]);
        r.agent_mut(a(1)).unwrap().capacity = 3;
        assert_eq!(r.drain(None), [(c(2), a(1)), (c(3), a(1))]);
        assert_eq!(r.position(c(4)), Some(1));
    }

    #[test]
    fn requeue_keeps_arrival_order_but_takes_new_priority() {
        let mut r = routing(&[]);
        r.enqueue(c(1), 0, None);
        r.enqueue(c(2), 0, None);
        r.enqueue(c(2), 0, None);
        assert_eq!(r.queue().collect::<Vec<_>>(), [c(1), c(2)]);
        r.enqueue(c(2), 5, None);
        assert_eq!(r.queue().collect::<Vec<_>>(), [c(2), c(1)]);
    }

    #[test]
    fn claims_may_exceed_capacity_and_free_it_later() {
        let mut r = routing(&[(1, 1)]);
        r.assign(c(1), a(1));
        r.enqueue(c(2), 0, None);
        r.assign(c(2), a(1));
        assert_eq!(r.queue_len(), 0);
        assert_eq!(r.presence(a(1)).unwrap().active, 2);
        r.release(c(1), a(1));
        r.enqueue(c(3), 0, None);
        assert_eq!(r.drain(None), []);
    }

    #[test]
    fn a_team_member_beats_more_free_capacity_elsewhere() {
        let r = routing_with(&[(1, 1, &["orders"]), (2, 5, &["billing"]), (3, 9, &[])]);
        assert_eq!(pick(&r, Some("orders")), Some(a(1)));
        assert_eq!(pick(&r, Some("billing")), Some(a(2)));
        // No team: most free capacity, members or not.
        assert_eq!(pick(&r, None), Some(a(3)));
    }

    #[test]
    fn a_full_team_waits_and_only_a_member_takes_it_when_a_slot_frees() {
        let mut r = routing_with(&[(1, 1, &["orders"]), (2, 5, &["billing"])]);
        r.assign(c(1), a(1));
        // The orders member is online but full: the billing agent's room does not count.
        assert_eq!(pick(&r, Some("orders")), None);
        r.enqueue(c(2), 0, Some("orders"));
        assert_eq!(r.drain(None), []);
        // Room elsewhere changes nothing.
        r.agent_mut(a(2)).unwrap().capacity = 50;
        assert_eq!(r.drain(None), []);
        assert_eq!(r.queue().collect::<Vec<_>>(), [c(2)]);
        // The member frees a slot and takes it.
        r.release(c(1), a(1));
        assert_eq!(r.drain(None), [(c(2), a(1))]);
    }

    #[test]
    fn with_no_member_online_a_team_overflows_to_anyone() {
        let mut r = routing_with(&[(1, 1, &["orders"]), (2, 5, &["billing"])]);
        // Nobody has "returns" at all.
        assert_eq!(pick(&r, Some("returns")), Some(a(2)));
        r.assign(c(1), a(1));
        r.enqueue(c(2), 0, Some("orders"));
        assert_eq!(r.drain(None), []);
        // The only orders member goes offline: the billing agent may take it now.
        r.agent_mut(a(1)).unwrap().sessions = 0;
        assert_eq!(r.drain(None), [(c(2), a(2))]);
        // Away counts as not there too.
        let mut r = routing_with(&[(1, 1, &["orders"]), (2, 5, &[])]);
        r.agent_mut(a(1)).unwrap().chosen = AgentStatus::Away;
        assert_eq!(pick(&r, Some("orders")), Some(a(2)));
    }

    #[test]
    fn an_agent_takes_the_first_waiting_conversation_they_may_serve() {
        let mut r = routing_with(&[(1, 1, &["orders"]), (2, 1, &["billing"])]);
        r.assign(c(1), a(1));
        r.assign(c(2), a(2));
        r.enqueue(c(10), 5, Some("orders"));
        r.enqueue(c(11), 0, Some("orders"));
        r.enqueue(c(12), 0, Some("billing"));
        r.enqueue(c(13), 0, None);
        // Billing frees a slot: the head (orders, urgent) is not theirs; the
        // first billing one is, even behind an older orders one.
        r.release(c(2), a(2));
        assert_eq!(r.drain(None), [(c(12), a(2))]);
        // Orders frees a slot: the urgent orders conversation first.
        r.release(c(1), a(1));
        assert_eq!(r.drain(None), [(c(10), a(1))]);
        // Another billing slot: the conversation without a team is anyone's.
        r.release(c(12), a(2));
        assert_eq!(r.drain(None), [(c(13), a(2))]);
        assert_eq!(r.queue().collect::<Vec<_>>(), [c(11)]);
    }

    #[test]
    fn positions_count_only_who_is_served_first_by_the_same_agents() {
        let mut r = routing_with(&[(1, 0, &["orders"]), (2, 0, &["billing"])]);
        r.enqueue(c(1), 0, Some("billing"));
        r.enqueue(c(2), 0, None);
        r.enqueue(c(3), 0, Some("orders"));
        r.enqueue(c(4), 0, Some("billing"));
        r.enqueue(c(5), 0, None);
        r.enqueue(c(6), 0, Some("returns"));
        let want = [
            (c(1), 1),
            (c(2), 2),
            (c(3), 2),
            (c(4), 3),
            (c(5), 5),
            (c(6), 6),
        ];
        assert_eq!(r.positions(), want);
        for (conv, p) in want {
            assert_eq!(r.position(conv), Some(p));
        }
        // Nobody online: every team overflows, so everyone ahead counts.
        for id in [1, 2] {
            r.agent_mut(a(id)).unwrap().sessions = 0;
        }
        let plain: Vec<_> = (1..=6).map(|n| (c(n), u32::try_from(n).unwrap())).collect();
        assert_eq!(r.positions(), plain);
    }

    #[test]
    fn a_transfer_to_a_team_passes_the_sender_over() {
        let mut r = routing_with(&[(1, 5, &["orders"]), (2, 1, &["orders"]), (3, 9, &[])]);
        r.assign(c(1), a(1));
        // Agent 1 hands it to orders: agent 2 gets it although agent 1 has more room.
        r.release(c(1), a(1));
        assert_eq!(
            r.pick_agent(Some("orders"), Lean::AwayFrom(a(1))),
            Some(a(2))
        );
        r.assign(c(1), a(2));
        // Agent 2 hands it back to orders: agent 1 is the other member.
        r.release(c(1), a(2));
        assert_eq!(
            r.pick_agent(Some("orders"), Lean::AwayFrom(a(2))),
            Some(a(1))
        );
        // The sender is the only member online: it overflows to anyone else.
        r.agent_mut(a(2)).unwrap().sessions = 0;
        assert_eq!(
            r.pick_agent(Some("orders"), Lean::AwayFrom(a(1))),
            Some(a(3))
        );
        // Nobody else has room: it waits, and the drain right after keeps it
        // from the sender, who may still take it later.
        r.agent_mut(a(3)).unwrap().capacity = 0;
        assert_eq!(r.pick_agent(Some("orders"), Lean::AwayFrom(a(1))), None);
        r.enqueue(c(1), 0, Some("orders"));
        assert_eq!(r.drain(Some((c(1), a(1)))), []);
        assert_eq!(r.drain(None), [(c(1), a(1))]);
    }

    #[test]
    fn a_reopened_conversation_leans_toward_its_last_agent() {
        let r = routing_with(&[(1, 1, &["billing"]), (2, 9, &["orders"])]);
        assert_eq!(r.pick_agent(Some("orders"), Lean::Toward(a(1))), Some(a(1)));
        assert_eq!(pick(&r, Some("orders")), Some(a(2)));
    }
}
