//! Protocol limits. The server enforces them and reports a typed error
//! (or, for frames, a close code) when a client goes past them.

/// Largest WebSocket message the server accepts, in bytes (either encoding).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Longest chat message text, in Unicode scalar values.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest client-chosen message id, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 64;
/// Most messages one history page returns.
pub const MAX_HISTORY_PAGE: u32 = 200;
/// History page size when the client does not say.
pub const DEFAULT_HISTORY_PAGE: u32 = 50;
/// Most conversations a hello may ask to resume.
pub const MAX_RESUME_POINTS: usize = 64;
/// Longest rating comment, in Unicode scalar values.
pub const MAX_COMMENT_CHARS: usize = 2000;
/// Longest profile field (name, email, phone, company, country, url), in bytes.
pub const MAX_FIELD_BYTES: usize = 512;
/// Most custom attributes on a customer profile.
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest team name, in bytes (`[a-z0-9_-]`, so bytes are characters).
pub const MAX_TEAM_CHARS: usize = 32;
/// Most teams one agent may be in.
pub const MAX_TEAMS_PER_AGENT: usize = 16;

/// Whether `name` is a valid team name: 1 to [`MAX_TEAM_CHARS`] of `a-z`, `0-9`, `_`, `-`.
pub fn is_team_name(name: &str) -> bool {
    (1..=MAX_TEAM_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    #[test]
    fn team_names_are_short_lower_case_words() {
        for ok in ["orders", "billing-eu", "tier_2", "a", &"x".repeat(32)] {
            assert!(super::is_team_name(ok), "{ok}");
        }
        for bad in ["", "Orders", "two words", "café", "a.b", &"x".repeat(33)] {
            assert!(!super::is_team_name(bad), "{bad}");
        }
    }
}
