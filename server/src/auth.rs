//! Credentials: agent passwords (argon2id), agent bearer tokens (random,
//! stored only as their SHA-256) and visitor tokens (HMAC-SHA256 signed,
//! expiring, stateless).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use switchboard_protocol::CustomerId;

thread_local! {
    /// argon2's working memory (19 MiB with the default parameters), kept per
    /// thread and reused: allocating it for every call fragments the heap
    /// until the process is hundreds of MiB larger (measured: +19.5 MiB per
    /// agent created). Password work runs on one thread ([`on_password_thread`]),
    /// so the server holds one such buffer.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Raw argon2id over `password` and `salt` into `out`, in the reused memory.
fn argon2id(
    params: argon2::Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    ARGON2_MEMORY.with(|memory| {
        let mut blocks = memory.borrow_mut();
        let need = params.block_count();
        if blocks.len() < need {
            blocks.resize(need, argon2::Block::default());
        }
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..need])
    })
}

/// Hashes a password with argon2id (default parameters) and a random salt (PHC string).
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    let params = argon2::Params::default();
    let mut salt_bytes = [0u8; 64];
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    // Only fails for parameters or salts out of range, which these are not.
    let salt_raw = salt.decode_b64(&mut salt_bytes).expect("a generated salt");
    argon2id(params.clone(), password.as_bytes(), salt_raw, &mut out)
        .expect("argon2 with default parameters cannot fail");
    PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: (&params).try_into().expect("default parameters encode"),
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).expect("a 32-byte output")),
    }
    .to_string()
}

/// Checks a password against an argon2id PHC string; the comparison is constant-time.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{Output, PasswordHash};
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
        return false;
    };
    if h.algorithm != argon2::Algorithm::Argon2id.ident() {
        return false;
    }
    let Ok(params) = argon2::Params::try_from(&h) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    argon2id(params, password.as_bytes(), salt_raw, &mut out).is_ok()
        && Output::new(&out).is_ok_and(|got| got == expected)
}

/// Runs password work (argon2id hashing or checking) on the one thread kept
/// for it; `None` when its queue is full or the thread is gone.
///
/// One thread on purpose: argon2id takes 19 MiB per call, and glibc keeps
/// freed memory in per-thread arenas, so hashing on tokio's blocking threads
/// left the server larger for good: ten agents logging in at once took it
/// from 54 to 397 MiB. On one thread it is one buffer's worth; logins queue
/// (about 50 ms each), and a flood beyond the queue is refused, not stored.
pub async fn on_password_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    type Job = Box<dyn FnOnce() + Send>;
    static QUEUE: std::sync::OnceLock<Option<std::sync::mpsc::SyncSender<Job>>> =
        std::sync::OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(PASSWORD_QUEUE);
        std::thread::Builder::new()
            .name("sb-passwords".into())
            .spawn(move || rx.into_iter().for_each(|job| job()))
            .ok()
            .map(|_| tx)
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    queue
        .as_ref()?
        .try_send(Box::new(move || {
            let _ = tx.send(f());
        }))
        .ok()?;
    rx.await.ok()
}

/// Password jobs waiting before more are refused as overloaded.
const PASSWORD_QUEUE: usize = 256;

/// A new random bearer token and the hash under which it is stored.
pub fn new_bearer_token() -> (String, [u8; 32]) {
    let bytes: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// The key a bearer token is stored under.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A random password for the first admin, printed once.
pub fn random_password() -> String {
    let bytes: [u8; 12] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs and checks visitor tokens: `v1.<customer id>.<expiry, unix seconds>.<signature>`.
#[derive(Clone)]
pub struct VisitorTokens {
    secret: Vec<u8>,
    ttl_secs: u64,
}

/// Why a visitor token was refused. Every case is answered the same way on the wire.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

impl VisitorTokens {
    pub fn new(secret: Vec<u8>, ttl_secs: u64) -> VisitorTokens {
        VisitorTokens { secret, ttl_secs }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        mac
    }

    /// A token for `customer`, valid for the configured time from `now_secs`; returns it with its expiry.
    pub fn issue(&self, customer: CustomerId, now_secs: u64) -> (String, u64) {
        let expires = now_secs.saturating_add(self.ttl_secs);
        let payload = format!("v1.{}.{expires}", customer.0);
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        (format!("{payload}.{sig}"), expires)
    }

    /// The customer a token names, if it is well-formed, signed by us, and unexpired.
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<CustomerId, TokenError> {
        let (payload, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(id), Some(exp), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        // verify_slice compares in constant time.
        self.mac(payload)
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let id: u64 = id.parse().map_err(|_| TokenError::Malformed)?;
        let exp: u64 = exp.parse().map_err(|_| TokenError::Malformed)?;
        if exp <= now_secs {
            return Err(TokenError::Expired);
        }
        Ok(CustomerId(id))
    }
}

/// Identity verification: the site's backend signs a signed-in user's id
/// with the site's secret (hex HMAC-SHA256 of the id), and the widget passes
/// the id and the signature on. Without a secret nothing verifies.
#[derive(Clone, Default)]
pub struct IdentitySecret {
    secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for IdentitySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.secret.is_some() {
            "IdentitySecret(set)"
        } else {
            "IdentitySecret(unset)"
        })
    }
}

impl IdentitySecret {
    pub fn new(secret: Option<&str>) -> IdentitySecret {
        IdentitySecret {
            secret: secret
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec()),
        }
    }

    pub fn is_set(&self) -> bool {
        self.secret.is_some()
    }

    fn mac(&self, user_id: &str) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_deref()?)
            .expect("HMAC takes any key length");
        mac.update(user_id.as_bytes());
        Some(mac)
    }

    /// The hex signature of `user_id` (what the site's backend computes).
    pub fn sign(&self, user_id: &str) -> Option<String> {
        let bytes = self.mac(user_id)?.finalize().into_bytes();
        Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether `hash` is the signature of `user_id`, compared in constant time.
    pub fn verify(&self, user_id: &str, hash: &str) -> bool {
        match (self.mac(user_id), decode_hex(hash.trim())) {
            (Some(mac), Some(sig)) => mac.verify_slice(&sig).is_ok(),
            _ => false,
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("correct horse", "not a phc string"));
    }

    #[test]
    fn visitor_tokens_round_trip_and_expire() {
        let t = VisitorTokens::new(b"k1".to_vec(), 100);
        let (tok, exp) = t.issue(CustomerId(42), 1000);
        assert_eq!(exp, 1100);
        assert_eq!(t.verify(&tok, 1099), Ok(CustomerId(42)));
        assert_eq!(t.verify(&tok, 1100), Err(TokenError::Expired));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let t = VisitorTokens::new(b"k1".to_vec(), 100);
        let (tok, _) = t.issue(CustomerId(42), 1000);
        let forged = tok.replacen("v1.42.", "v1.43.", 1);
        assert_eq!(t.verify(&forged, 1000), Err(TokenError::BadSignature));
        let other = VisitorTokens::new(b"k2".to_vec(), 100);
        assert_eq!(other.verify(&tok, 1000), Err(TokenError::BadSignature));
        for junk in [
            "",
            ".",
            "v1",
            "v1.1.2",
            "v2.1.2.AAAA",
            "v1.x.2.AAAA",
            "v1.1.2.3.4",
            "v1.1.2.!!",
        ] {
            assert!(t.verify(junk, 0).is_err(), "{junk}");
        }
    }

    #[test]
    fn bearer_tokens_are_distinct_and_hash_stably() {
        let (a, ha) = new_bearer_token();
        let (b, _) = new_bearer_token();
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), ha);
    }

    #[test]
    fn identity_hashes_verify_only_their_user_under_their_secret() {
        let site = IdentitySecret::new(Some("site-secret"));
        let hash = site.sign("u-1").unwrap();
        assert_eq!(hash.len(), 64);
        assert!(site.verify("u-1", &hash));
        assert!(site.verify("u-1", &hash.to_uppercase()));
        assert!(!site.verify("u-2", &hash));
        assert!(!site.verify("u-1", &hash[..62]));
        assert!(!site.verify("u-1", "zz"));
        assert!(!site.verify("u-1", "é"));
        assert!(!IdentitySecret::new(Some("other")).verify("u-1", &hash));
        // No secret: nothing verifies.
        assert!(!IdentitySecret::new(None).verify("u-1", &hash));
        assert!(!IdentitySecret::new(Some("")).is_set());
    }
}
