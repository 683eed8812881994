//! JWT access tokens from an external identity provider: signature (RS256, ES256, EdDSA)
//! against a JWKS from a file or a URL, `iss`, `aud`, `exp` and `nbf` with a small clock skew;
//! `sub` is the user id.
//!
//! Refused: `alg: none`, HMAC (a public key used as an HMAC secret is the classic confusion),
//! any algorithm other than the three above, and a `kid` the key set does not hold even after
//! one refresh. The key set is cached and refreshed when an unknown `kid` arrives, at most once
//! per [`MIN_REFRESH`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::domain::DomainError;

/// Allowed clock skew for `exp` and `nbf`.
const LEEWAY_SECS: u64 = 60;
/// An unknown `kid` triggers at most one key-set refresh per this interval.
const MIN_REFRESH: Duration = Duration::from_secs(10);
/// The only algorithms accepted.
const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// Where the key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JSON file holding a JWK set; re-read on refresh.
    File(PathBuf),
    /// An `https://` (or, for tests, `http://`) URL serving a JWK set.
    Url(String),
}

/// What a JWT must carry to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// The key set's source.
    pub jwks: JwksSource,
    /// The required `iss`.
    pub issuer: String,
    /// Accepted `aud` values (one must match).
    pub audience: Vec<String>,
}

/// Verifies JWT access tokens; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct JwtVerifier {
    settings: JwtSettings,
    keys: RwLock<(JwkSet, Option<Instant>)>,
    /// The JWKS file's modification time when it was last read.
    file_modified: tokio::sync::Mutex<Option<std::time::SystemTime>>,
    http: reqwest::Client,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
}

fn invalid(reason: &str) -> DomainError {
    DomainError::unauthenticated("AUTH-7fs1e", format!("Token is invalid: {reason}"))
}

/// Whether `token` looks like a JWT (three base64url parts) rather than an opaque token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("ey")
}

impl JwtVerifier {
    /// A verifier for `settings`, loading the key set now.
    ///
    /// # Errors
    /// The key set cannot be read or parsed.
    pub async fn new(settings: JwtSettings) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let file_modified = match &settings.jwks {
            JwksSource::File(path) => tokio::fs::metadata(path)
                .await
                .and_then(|m| m.modified())
                .ok(),
            JwksSource::Url(_) => None,
        };
        let verifier = Self {
            settings,
            keys: RwLock::new((JwkSet { keys: Vec::new() }, None)),
            file_modified: tokio::sync::Mutex::new(file_modified),
            http,
        };
        // Loaded, but not "refreshed": the first unknown kid may refresh at once.
        let keys = verifier.load().await?;
        *verifier.keys.write().await = (keys, None);
        Ok(verifier)
    }

    async fn load(&self) -> Result<JwkSet, String> {
        let text = match &self.settings.jwks {
            JwksSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("read JWKS {}: {e}", path.display()))?,
            JwksSource::Url(url) => {
                let response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| format!("fetch JWKS {url}: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("fetch JWKS {url}: HTTP {}", response.status()));
                }
                response
                    .text()
                    .await
                    .map_err(|e| format!("fetch JWKS {url}: {e}"))?
            }
        };
        serde_json::from_str(&text).map_err(|e| format!("parse JWKS: {e}"))
    }

    /// The decoding key for `kid`, refreshing the set once if it is unknown.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Option<Algorithm>), DomainError> {
        if let Some(found) = self.find(kid).await? {
            return Ok(found);
        }
        let refreshed = {
            let mut keys = self.keys.write().await;
            // A file is re-read when it changed (a stat is cheap); a URL at most once per
            // MIN_REFRESH, so that made-up kids cannot make us hammer the provider.
            let due = match &self.settings.jwks {
                JwksSource::File(path) => {
                    let modified = tokio::fs::metadata(path)
                        .await
                        .and_then(|m| m.modified())
                        .ok();
                    let changed = modified != *self.file_modified.lock().await;
                    if changed {
                        *self.file_modified.lock().await = modified;
                    }
                    changed
                }
                JwksSource::Url(_) => keys.1.is_none_or(|at| at.elapsed() >= MIN_REFRESH),
            };
            if due {
                keys.1 = Some(Instant::now());
                match self.load().await {
                    Ok(set) => keys.0 = set,
                    Err(e) => {
                        tracing::warn!(error = %e, "JWKS refresh failed; keeping the cached set")
                    }
                }
            }
            due
        };
        if refreshed && let Some(found) = self.find(kid).await? {
            return Ok(found);
        }
        Err(invalid("unknown key id"))
    }

    async fn find(
        &self,
        kid: &str,
    ) -> Result<Option<(DecodingKey, Option<Algorithm>)>, DomainError> {
        let keys = self.keys.read().await;
        let Some(jwk) = keys.0.find(kid) else {
            return Ok(None);
        };
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok());
        let key = DecodingKey::from_jwk(jwk).map_err(|_| invalid("unusable key"))?;
        Ok(Some((key, alg)))
    }

    /// Verifies `token` and returns its subject (the user id).
    ///
    /// # Errors
    /// UNAUTHENTICATED for any failed check, naming which.
    pub async fn verify(&self, token: &str) -> Result<String, DomainError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(invalid("algorithm not allowed"));
        }
        let kid = header.kid.as_deref().ok_or_else(|| invalid("no key id"))?;
        let (key, key_alg) = self.key(kid).await?;
        // A key that names its algorithm is used with that one only.
        if key_alg.is_some_and(|alg| alg != header.alg) {
            return Err(invalid("algorithm does not match the key"));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&self.settings.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            invalid(match e.kind() {
                ErrorKind::ExpiredSignature => "expired",
                ErrorKind::ImmatureSignature => "not yet valid",
                ErrorKind::InvalidIssuer => "wrong issuer",
                ErrorKind::InvalidAudience => "wrong audience",
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::MissingRequiredClaim(_) => "missing claim",
                _ => "rejected",
            })
        })?;
        if data.claims.sub.trim().is_empty() {
            return Err(invalid("empty subject"));
        }
        Ok(data.claims.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_part_tokens_look_like_jwts() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"));
        assert!(!looks_like_jwt(
            "abcDEF123_-abcDEF123_-abcDEF123_-abcDEF123_"
        ));
        assert!(!looks_like_jwt("eyJ.a"));
    }
}
