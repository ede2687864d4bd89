//! WebSocket close codes the server uses, and what a client should do on each.
//!
//! Codes 4000–4499 mean "reconnect" (with backoff, resuming from the last
//! sequence seen); codes 4500–4999 are terminal: reconnecting with the same
//! credentials will fail the same way. The standard codes keep their RFC 6455
//! meaning; of those, only 1001 (server going away), 1006 (abnormal, seen by
//! clients only), 1011 (internal error), 1012 (service restart) and 1013 (try
//! again later) mean "reconnect".

/// The server is shutting down or restarting: reconnect and resume.
pub const GOING_AWAY: u16 = 1001;
/// A frame broke RFC 6455 (sent by the WebSocket layer).
pub const PROTOCOL_ERROR: u16 = 1002;
/// A text message held invalid UTF-8 (RFC 6455 7.4.1, sent by the WebSocket layer).
pub const INVALID_PAYLOAD: u16 = 1007;
/// A message was larger than [`crate::limits::MAX_FRAME_BYTES`].
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// Something broke inside the server: reconnect.
pub const INTERNAL_ERROR: u16 = 1011;

/// The client did not read its messages fast enough and its outbound queue
/// filled up. Reconnect and resume from the last sequence seen.
pub const SLOW_CONSUMER: u16 = 4000;
/// The client sent too fast. Reconnect after a backoff.
pub const RATE_LIMITED: u16 = 4001;
/// The server (or this client's address) has too many connections. Reconnect after a backoff.
pub const TOO_MANY_CONNECTIONS: u16 = 4002;
/// No pong (or no frame at all) within the idle timeout. Reconnect.
pub const IDLE_TIMEOUT: u16 = 4003;

/// The first message was not a valid hello, or came too late. Terminal.
pub const BAD_HELLO: u16 = 4500;
/// The token in the hello is invalid, expired or revoked (or its account was
/// deleted). Terminal: a visitor drops its stored token and connects anew; an
/// agent logs in again.
pub const UNAUTHORIZED: u16 = 4501;
/// The agent account is disabled: its token is genuine but may not connect
/// (at hello, or a live session when the account is disabled); or a live
/// session's account was deleted. Terminal: logging in again is refused too.
pub const FORBIDDEN: u16 = 4503;

/// Whether a client seeing `code` should reconnect (with backoff) and resume.
pub fn should_reconnect(code: u16) -> bool {
    matches!(code, 1001 | 1006 | 1011 | 1012 | 1013 | 4000..=4499)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_and_terminal_ranges() {
        for code in [
            GOING_AWAY,
            SLOW_CONSUMER,
            RATE_LIMITED,
            TOO_MANY_CONNECTIONS,
            IDLE_TIMEOUT,
        ] {
            assert!(should_reconnect(code), "{code}");
        }
        for code in [
            PROTOCOL_ERROR,
            INVALID_PAYLOAD,
            MESSAGE_TOO_BIG,
            BAD_HELLO,
            UNAUTHORIZED,
            FORBIDDEN,
            1000,
        ] {
            assert!(!should_reconnect(code), "{code}");
        }
    }
}
