//! Teams: the names agents are grouped by (`orders`, `billing`, …) and the
//! hub operation that moves a conversation to one. The routing rule that
//! prefers a conversation's team is in `routing`; an agent's teams are set
//! through `accounts` (REST) or the CLI, a conversation's by the bot's
//! hand-off (`bot`) or by [`Hub::transfer_to_team`].

use super::commit::Commit;
use super::routing::Lean;
use super::{Actor, Hub, HubError, Result};
use switchboard_protocol::limits::{is_team_name, MAX_TEAMS_PER_AGENT, MAX_TEAM_CHARS};
use switchboard_protocol::model::ConversationStatus;
use switchboard_protocol::ConversationId;

/// Checks a team name (1–32 of `a-z 0-9 _ -`).
pub fn check_team(name: &str) -> Result<()> {
    if is_team_name(name) {
        Ok(())
    } else {
        Err(HubError::BadRequest(format!(
            "a team name is 1 to {MAX_TEAM_CHARS} of a-z, 0-9, _ and -"
        )))
    }
}

/// Checks an agent's teams; returns them sorted, without duplicates.
pub fn check_teams(teams: Vec<String>) -> Result<Vec<String>> {
    let mut teams = teams;
    teams.sort();
    teams.dedup();
    if teams.len() > MAX_TEAMS_PER_AGENT {
        return Err(HubError::BadRequest(format!(
            "an agent is in at most {MAX_TEAMS_PER_AGENT} teams"
        )));
    }
    teams.iter().try_for_each(|t| check_team(t))?;
    Ok(teams)
}

impl Hub {
    /// Moves a conversation to `team`: it leaves its agent (or the bot) and
    /// goes to another member of the team with room (by the routing rule, the
    /// sender passed over), or waits in the queue for one. Allowed to the
    /// assigned agent or an admin, or to any agent while the conversation is
    /// waiting (queued, or with the bot: as with `claim` and `close`), so an
    /// admin may move any open conversation.
    pub async fn transfer_to_team(
        &self,
        actor: &Actor,
        id: ConversationId,
        team: String,
    ) -> Result<()> {
        actor
            .agent_id()
            .ok_or(HubError::Forbidden("only agents transfer conversations"))?;
        check_team(&team)?;
        let permit = self.reserve().await?;
        let mut commit = Commit::default();
        let mut routing = self.routing();
        let from;
        {
            let mut st = self.conversation(id)?;
            match st.record.status {
                ConversationStatus::Assigned => Self::authorize_write(actor, &st.record)?,
                ConversationStatus::Queued | ConversationStatus::Bot => {
                    Self::authorize_read(actor, &st.record)?
                }
                ConversationStatus::Closed => {
                    return Err(HubError::InvalidState(
                        "a closed conversation cannot move to a team",
                    ))
                }
            }
            if !routing.has_team(&team) {
                return Err(HubError::UnknownTeam);
            }
            from = st
                .record
                .agent_id
                .filter(|_| st.record.status == ConversationStatus::Assigned);
            if let Some(f) = from {
                routing.release(id, f);
            }
            // Out of the bot's hands, as on a hand-off.
            st.record.bot_answers_in_a_row = 0;
            if st.record.team.as_deref() != Some(team.as_str()) {
                self.store().put_conversation_team(id, Some(&team))?;
                st.record.team = Some(team);
            }
            self.place(
                &mut routing,
                &mut st,
                from.map_or(Lean::None, Lean::AwayFrom),
            );
            self.store().put_conversation(&st.record)?;
            let position = routing.position(id);
            commit.deliver_all(
                super::ops::watchers(&st.record),
                self.transferred(&st, actor, from, position),
            );
        }
        if !self.drain_queue_avoiding(&mut routing, from.map(|f| (id, f)), &mut commit)? {
            self.announce_queue(&routing, &mut commit);
        }
        drop(routing);
        Hub::send(permit, commit);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teams_are_checked_sorted_and_deduplicated() {
        let teams = check_teams(vec!["orders".into(), "billing".into(), "orders".into()]);
        assert_eq!(teams.unwrap(), ["billing", "orders"]);
        assert!(check_teams(vec!["Orders".into()]).is_err());
        assert!(check_teams(vec![String::new()]).is_err());
        let many = (0..17).map(|i| format!("t{i}")).collect();
        assert!(check_teams(many).is_err());
        let enough = (0..16).map(|i| format!("t{i}")).collect();
        assert_eq!(check_teams(enough).unwrap().len(), 16);
    }
}
