//! Password hashing (argon2id, PHC strings) and ZITADEL's default password complexity policy.

use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash, PasswordVerifier};

use crate::domain::DomainError;

/// Checks `password` against ZITADEL's default complexity policy: at least 8 characters, with a
/// lower-case letter, an upper-case letter, a digit and a symbol.
///
/// # Errors
/// INVALID_ARGUMENT naming the first rule the password breaks.
pub fn check_complexity(password: &str) -> Result<(), DomainError> {
    // (rule holds, error id, text). The ids are ours: ZITADEL reports these through its
    // password policy, whose ids are not part of the published API.
    let rules: [(bool, &'static str, &str); 5] = [
        (
            password.chars().count() >= 8,
            "SY-PWD-LEN",
            "Password is too short (minimum 8 characters)",
        ),
        (
            password.chars().any(char::is_lowercase),
            "SY-PWD-LOW",
            "Password must contain a lower case letter",
        ),
        (
            password.chars().any(char::is_uppercase),
            "SY-PWD-UPP",
            "Password must contain an upper case letter",
        ),
        (
            password.chars().any(|c| c.is_ascii_digit()),
            "SY-PWD-NUM",
            "Password must contain a number",
        ),
        (
            password.chars().any(|c| !c.is_alphanumeric()),
            "SY-PWD-SYM",
            "Password must contain a symbol",
        ),
    ];
    for (holds, id, text) in rules {
        if !holds {
            return Err(DomainError::invalid_argument(id, text));
        }
    }
    Ok(())
}

/// Hashes `password` with argon2id and a random salt. CPU-heavy: call it off the async runtime.
///
/// # Errors
/// INTERNAL if hashing fails (it does not for valid UTF-8 input).
pub fn hash(password: &str) -> Result<String, DomainError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DomainError::internal("SY-PWD-HASH", format!("hash password: {e}")))
}

/// Whether `password` matches the PHC `stored` hash.
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complexity_rules_in_order() {
        let cases = [
            ("Secr3t!", Some("SY-PWD-LEN")),
            ("SECRET12!", Some("SY-PWD-LOW")),
            ("secret12!", Some("SY-PWD-UPP")),
            ("Secretttt!", Some("SY-PWD-NUM")),
            ("Secret123", Some("SY-PWD-SYM")),
            ("Secret123!", None),
        ];
        for (input, want) in cases {
            assert_eq!(check_complexity(input).err().map(|e| e.id), want, "{input}");
        }
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let stored = hash("Secret123!").expect("hash");
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify("Secret123!", &stored));
        assert!(!verify("Secret123?", &stored));
        assert!(!verify("Secret123!", "not a phc string"));
    }
}
