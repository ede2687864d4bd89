//! Private notes: text agents leave on a conversation for each other. A note
//! is stored durably, then sent to every agent (the writer's echo confirms
//! it); visitors never receive one. Notes are not messages: no `seq`, not in
//! a visitor's history or resume.

use super::broker::Participant;
use super::commit::{Commit, To};
use super::ops::{check_client_id, check_text};
use super::{now_ms, Actor, Hub, HubError, Result};
use switchboard_protocol::client::NoteRequest;
use switchboard_protocol::server::Note;
use switchboard_protocol::{ConversationId, ServerMessage};

impl Hub {
    /// Adds an agent's note to a conversation (open or closed). A resend
    /// (same writer, same `client_id`) stores nothing and sends the stored
    /// note again.
    pub async fn add_note(&self, actor: &Actor, req: NoteRequest) -> Result<()> {
        let Participant::Agent(_) = actor.who else {
            return Err(HubError::Forbidden("only agents write private notes"));
        };
        check_client_id(&req.client_id)?;
        check_text(&req.text, self.config().max_text_chars)?;
        let permit = self.reserve().await?;
        // Exists (in memory or in the store), else not found.
        self.conversation(req.conversation_id)?;
        let author = actor.author();
        let earlier = self
            .store()
            .notes(req.conversation_id)?
            .into_iter()
            .find(|n| n.client_id == req.client_id && n.author.id == author.id);
        let note = match earlier {
            Some(note) => note,
            None => {
                let note = Note {
                    id: self.store().next_id()?,
                    conversation_id: req.conversation_id,
                    author,
                    text: req.text,
                    client_id: req.client_id,
                    sent_at: now_ms(),
                };
                self.store().put_note(&note)?;
                note
            }
        };
        let mut commit = Commit::default();
        commit.deliver(To::Agents, ServerMessage::Note(note));
        Hub::send(permit, commit);
        Ok(())
    }

    /// A conversation's notes, oldest first (for agents: REST checks the caller).
    pub fn notes(&self, conv: ConversationId) -> Result<Vec<Note>> {
        Ok(self.store().notes(conv)?)
    }
}
