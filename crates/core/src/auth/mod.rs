//! Authentication (personal access tokens in `Authorization: Bearer`) and authorization
//! (roles in the instance or an org, and the permissions they grant).

pub mod cache;
pub mod jwt;
pub mod password;

use subtle::ConstantTimeEq;

use crate::domain::DomainError;
use crate::domain::org::{MemberScope, Membership, Permission, role_grants};
use crate::domain::token::hash_secret;
use crate::domain::user::UserState;
use crate::store::EventStore;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's user id.
    pub user_id: String,
    /// The caller's own org (its resource owner): the default org context.
    pub org_id: String,
    /// The caller's roles. Shared: a caller is cloned from the token cache and into each
    /// command, and its roles never change once read.
    pub memberships: std::sync::Arc<[Membership]>,
}

impl Caller {
    /// Whether the caller holds `permission` in `org_id`, through an instance role or a role in
    /// that org.
    pub fn has_permission(&self, permission: Permission, org_id: &str) -> bool {
        self.memberships.iter().any(|m| {
            let applies = match &m.scope {
                MemberScope::Instance => true,
                MemberScope::Org(id) => id == org_id,
            };
            applies && m.roles.iter().any(|role| role_grants(role, permission))
        })
    }

    /// Whether the caller holds `permission` instance-wide, i.e. in every org.
    pub fn has_instance_permission(&self, permission: Permission) -> bool {
        self.memberships.iter().any(|m| {
            m.scope == MemberScope::Instance && m.roles.iter().any(|r| role_grants(r, permission))
        })
    }

    /// The orgs in which the caller holds `permission` through an org role.
    pub fn orgs_with(&self, permission: Permission) -> Vec<String> {
        self.memberships
            .iter()
            .filter_map(|m| match &m.scope {
                MemberScope::Org(id) if m.roles.iter().any(|r| role_grants(r, permission)) => {
                    Some(id.clone())
                }
                _ => None,
            })
            .collect()
    }
}

fn unauthenticated(message: &str) -> DomainError {
    DomainError::unauthenticated("AUTH-7fs1e", message)
}

/// Resolves the `authorization` header value to a caller, answering personal access tokens
/// from `cache` when it holds them and filling it otherwise (see [`cache`] for how stale an
/// answer can be).
///
/// # Errors
/// UNAUTHENTICATED for a missing, malformed, unknown or expired token, or a token of a user
/// who is not active; INTERNAL if the store fails.
pub async fn authenticate(
    store: &dyn EventStore,
    jwt: Option<&jwt::JwtVerifier>,
    cache: Option<&cache::TokenCache>,
    authorization: Option<&str>,
    now_us: i64,
) -> Result<Caller, DomainError> {
    let header = authorization.ok_or_else(|| unauthenticated("auth header missing"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthenticated("invalid auth header: expected 'Bearer <token>'"))?;
    let (user_id, cached) = match jwt {
        Some(verifier) if jwt::looks_like_jwt(token) => (verifier.verify(token).await?, None),
        _ => {
            let hash = hash_secret(token);
            if let Some(caller) = cache.and_then(|c| c.get(&hash, now_us)) {
                return Ok(caller);
            }
            // Taken before the store is read: an invalidation after it keeps this answer out.
            let generation = cache.map(cache::TokenCache::generation);
            let (user_id, expiration_us) = personal_access_token_user(store, &hash, now_us).await?;
            (user_id, generation.map(|g| (hash, expiration_us, g)))
        }
    };
    let user = store
        .user(&user_id)
        .await
        .map_err(crate::command::store_error)?
        .ok_or_else(|| unauthenticated("Token is invalid"))?;
    if user.state != UserState::Active {
        return Err(unauthenticated("User is not active"));
    }
    let memberships = store
        .memberships(&user.id)
        .await
        .map_err(crate::command::store_error)?;
    let caller = Caller {
        user_id: user.id,
        org_id: user.resource_owner,
        memberships: memberships.into(),
    };
    if let (Some(cache), Some((hash, expiration_us, generation))) = (cache, cached) {
        cache.insert(hash, &caller, expiration_us, generation);
    }
    Ok(caller)
}

/// The user a personal access token (by its hash) belongs to and the token's expiry, if the
/// token is known and not expired.
async fn personal_access_token_user(
    store: &dyn EventStore,
    hash: &[u8; 32],
    now_us: i64,
) -> Result<(String, Option<i64>), DomainError> {
    let stored = store
        .token_by_hash(hash)
        .await
        .map_err(crate::command::store_error)?
        .ok_or_else(|| unauthenticated("Token is invalid"))?;
    // The lookup was by hash already; compare again in constant time so that timing never
    // depends on how much of a guessed hash matched an index entry.
    if !bool::from(stored.hash.ct_eq(hash)) {
        return Err(unauthenticated("Token is invalid"));
    }
    if stored.expiration_us.is_some_and(|exp| exp <= now_us) {
        return Err(unauthenticated("Token is expired"));
    }
    Ok((stored.user_id, stored.expiration_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(memberships: Vec<(MemberScope, &str)>) -> Caller {
        Caller {
            user_id: "u".into(),
            org_id: "o1".into(),
            memberships: memberships
                .into_iter()
                .map(|(scope, role)| Membership {
                    scope,
                    user_id: "u".into(),
                    roles: vec![role.into()],
                })
                .collect(),
        }
    }

    #[test]
    fn permissions_follow_scope_and_role() {
        let org_owner = caller(vec![(MemberScope::Org("o1".into()), "ORG_OWNER")]);
        assert!(org_owner.has_permission(Permission::UserWrite, "o1"));
        assert!(!org_owner.has_permission(Permission::UserWrite, "o2"));
        assert!(!org_owner.has_instance_permission(Permission::UserRead));
        assert_eq!(
            org_owner.orgs_with(Permission::UserRead),
            vec!["o1".to_owned()]
        );

        let iam = caller(vec![(MemberScope::Instance, "IAM_OWNER")]);
        assert!(iam.has_permission(Permission::UserWrite, "anything"));
        assert!(iam.has_instance_permission(Permission::UserRead));

        let viewer = caller(vec![(MemberScope::Org("o1".into()), "ORG_OWNER_VIEWER")]);
        assert!(viewer.has_permission(Permission::UserRead, "o1"));
        assert!(!viewer.has_permission(Permission::UserWrite, "o1"));

        assert!(!caller(vec![]).has_permission(Permission::UserRead, "o1"));
    }
}
