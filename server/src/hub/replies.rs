//! Saved replies ("canned responses"): texts an agent inserts by typing `/`
//! and a shortcut in the console. Every agent reads them; admins write them.
//! Each write is durable before it returns (`persist_with`), and writes take
//! one lock so that two admins cannot give two replies the same shortcut.

use super::ops::check_text;
use super::{now_ms, Hub, HubError, Result};
use crate::store::SavedReply;
use switchboard_protocol::limits::{is_team_name, MAX_TEAM_CHARS};
use switchboard_protocol::AgentId;

/// Most saved replies a server keeps: the console lists them all.
pub const MAX_SAVED_REPLIES: usize = 500;

/// A new saved reply, or the changes to one (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct ReplyChanges {
    pub shortcut: Option<String>,
    pub text: Option<String>,
}

/// Shortcuts use the alphabet of team names: 1–32 of `a-z 0-9 _ -`.
fn check_shortcut(shortcut: &str) -> Result<()> {
    if is_team_name(shortcut) {
        Ok(())
    } else {
        Err(HubError::BadRequest(format!(
            "a shortcut is 1 to {MAX_TEAM_CHARS} of a-z, 0-9, _ and -"
        )))
    }
}

impl Hub {
    /// Every saved reply, by shortcut.
    pub fn saved_replies(&self) -> Result<Vec<SavedReply>> {
        let mut all = self.store().saved_replies()?;
        all.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
        Ok(all)
    }

    /// Adds a saved reply (`shortcut` and `text` both required).
    pub async fn create_saved_reply(&self, by: AgentId, new: ReplyChanges) -> Result<SavedReply> {
        let (Some(shortcut), Some(text)) = (new.shortcut, new.text) else {
            return Err(HubError::BadRequest(
                "shortcut and text are required".into(),
            ));
        };
        check_shortcut(&shortcut)?;
        check_text(&text, self.config().max_text_chars)?;
        let _one_writer = self.shared.replies_lock.lock().await;
        let all = self.store().saved_replies()?;
        if all.len() >= MAX_SAVED_REPLIES {
            return Err(HubError::InvalidState(
                "there are 500 saved replies already",
            ));
        }
        if all.iter().any(|r| r.shortcut == shortcut) {
            return Err(HubError::Conflict("a saved reply has that shortcut"));
        }
        let reply = SavedReply {
            id: self.store().next_id()?,
            shortcut,
            text,
            updated_at: now_ms(),
            updated_by: by,
        };
        self.persist_with(|store| store.put_saved_reply(&reply))
            .await?;
        Ok(reply)
    }

    /// Changes a saved reply's shortcut or text.
    pub async fn update_saved_reply(
        &self,
        by: AgentId,
        id: u64,
        changes: ReplyChanges,
    ) -> Result<SavedReply> {
        if let Some(s) = &changes.shortcut {
            check_shortcut(s)?;
        }
        if let Some(t) = &changes.text {
            check_text(t, self.config().max_text_chars)?;
        }
        let _one_writer = self.shared.replies_lock.lock().await;
        let all = self.store().saved_replies()?;
        let mut reply = all
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or(HubError::NotFound)?;
        if let Some(shortcut) = changes.shortcut {
            if all.iter().any(|r| r.id != id && r.shortcut == shortcut) {
                return Err(HubError::Conflict("a saved reply has that shortcut"));
            }
            reply.shortcut = shortcut;
        }
        reply.text = changes.text.unwrap_or(reply.text);
        reply.updated_at = now_ms();
        reply.updated_by = by;
        self.persist_with(|store| store.put_saved_reply(&reply))
            .await?;
        Ok(reply)
    }

    pub async fn delete_saved_reply(&self, id: u64) -> Result<()> {
        let _one_writer = self.shared.replies_lock.lock().await;
        if self
            .persist_with(|store| store.delete_saved_reply(id))
            .await?
        {
            Ok(())
        } else {
            Err(HubError::NotFound)
        }
    }
}
