//! Personal access tokens: opaque random secrets shown once, stored only as a SHA-256 hash.
//!
//! Tokens are 32 random bytes, so a fast hash is the right tool (no dictionary to resist); the
//! lookup is by hash and the final comparison is constant-time.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A stored personal access token (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalAccessToken {
    /// The token id.
    pub id: String,
    /// The user it authenticates.
    pub user_id: String,
    /// The user's org.
    pub resource_owner: String,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// When it stops working (µs since the epoch); `None`: never.
    pub expiration_us: Option<i64>,
    /// When it was created (µs).
    pub created_us: i64,
}

/// A new random secret: 32 bytes, base64url without padding (43 characters).
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored hash of a secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_hash_stably() {
        let a = new_secret();
        let b = new_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }
}
