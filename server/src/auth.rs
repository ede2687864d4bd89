//! Credentials: agent passwords (argon2id), agent bearer tokens (random,
//! stored only as their SHA-256) and visitor tokens (HMAC-SHA256 signed,
//! expiring, stateless).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use switchboard_protocol::CustomerId;

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        // Only fails for parameters or salts out of range, which defaults are not.
        .expect("argon2 with default parameters cannot fail")
}

/// Checks a password against a PHC string (constant time inside argon2).
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

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
