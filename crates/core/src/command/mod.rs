//! The application layer: every operation of the API as one method of [`Core`], protocol-free.
//! Each write loads projections, decides with the domain, and commits events and projection rows
//! in one transaction; a lost optimistic-concurrency race re-reads and decides again.

mod access;
mod bootstrap;
mod last_owner;
mod org;
mod user;

use std::future::Future;
use std::sync::Arc;

pub use access::{IssuedToken, MemberChange, NewMachine};
pub use bootstrap::{Bootstrap, BootstrapResult};
pub use last_owner::RecoveredOwner;
pub use org::OrgContext;
pub use user::{NewHuman, PasswordInput, UserScope, read_details};

use crate::domain::id::IdGenerator;
use crate::domain::{DomainError, ErrorKind};
use crate::store::{EventStore, StoreError};

/// How often a command re-decides after losing a race before giving up.
const MAX_ATTEMPTS: usize = 8;

/// What a manipulation answers: the appended event's sequence and time, and the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    /// The aggregate's sequence after the event.
    pub sequence: u64,
    /// Creation date: the event's time for a manipulation, the first event's for a read.
    pub created_us: i64,
    /// Change date: the event's time for a manipulation, the last event's for a read.
    pub changed_us: i64,
    /// The owning org.
    pub resource_owner: String,
}

/// The user-management application: the store, id generation and instance settings.
#[derive(Clone)]
pub struct Core {
    store: Arc<dyn EventStore>,
    ids: Arc<IdGenerator>,
    external_domain: Arc<str>,
    jwt: Option<Arc<crate::auth::jwt::JwtVerifier>>,
    /// Verified personal access tokens, invalidated by [`Core::commit`].
    tokens: Arc<crate::auth::cache::TokenCache>,
}

impl Core {
    /// A core over `store`; org domains end with `external_domain` (e.g. `localhost`).
    pub fn new(store: Arc<dyn EventStore>, external_domain: &str) -> Self {
        Self {
            store,
            ids: Arc::new(IdGenerator::new()),
            external_domain: external_domain.into(),
            jwt: None,
            tokens: Arc::new(crate::auth::cache::TokenCache::default()),
        }
    }

    /// Caches verified personal access tokens for `ttl` (default
    /// [`crate::auth::cache::TTL`]); `Duration::ZERO` turns the cache off.
    pub fn with_token_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.tokens = Arc::new(crate::auth::cache::TokenCache::new(ttl));
        self
    }

    /// Commits through the store, then drops the cached callers the commit may have changed.
    ///
    /// # Errors
    /// The store's.
    pub(crate) async fn commit(&self, commit: crate::store::Commit) -> Result<(), StoreError> {
        let invalidation = crate::auth::cache::Invalidation::of(&commit);
        let result = self.store.commit(commit).await;
        // Also after a failure: a backend error may leave it unknown whether the commit landed.
        if !invalidation.is_empty() {
            self.tokens.invalidate(&invalidation);
        }
        result
    }

    /// Also accepts JWT access tokens that `verifier` validates (`sub` is the user id).
    pub fn with_jwt(mut self, verifier: Arc<crate::auth::jwt::JwtVerifier>) -> Self {
        self.jwt = Some(verifier);
        self
    }

    /// The store, for reads the services do directly.
    pub fn store(&self) -> &dyn EventStore {
        self.store.as_ref()
    }

    /// Authenticates the `authorization` header value.
    ///
    /// # Errors
    /// See [`crate::auth::authenticate`].
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<crate::auth::Caller, DomainError> {
        crate::auth::authenticate(
            self.store(),
            self.jwt.as_deref(),
            Some(&self.tokens),
            authorization,
            crate::domain::now_us(),
        )
        .await
    }
}

/// The next event of `user`: bumps its sequence and change time to `now` and returns the event
/// with the details a manipulation answers (the event's sequence and time, the owner).
pub(crate) fn next_user_event(
    user: &mut crate::domain::user::User,
    event_type: crate::domain::event::EventType,
    payload: serde_json::Value,
    creator: &str,
    now: i64,
) -> (crate::domain::event::NewEvent, Details) {
    user.sequence += 1;
    user.changed_us = now;
    let event = crate::domain::event::NewEvent {
        aggregate_type: crate::domain::event::AggregateType::User,
        aggregate_id: user.id.clone(),
        sequence: user.sequence,
        event_type,
        payload,
        resource_owner: user.resource_owner.clone(),
        creator: creator.to_owned(),
        created_us: now,
    };
    let details = Details {
        sequence: user.sequence,
        created_us: now,
        changed_us: now,
        resource_owner: user.resource_owner.clone(),
    };
    (event, details)
}

/// Maps a store failure to the domain error a client sees. Conflicts that survive every retry
/// and backend faults are not the caller's fault.
pub(crate) fn store_error(e: StoreError) -> DomainError {
    use crate::store::Constraint;
    match e {
        // As ZITADEL: every unique constraint is `V3-DKcYh`, each with its own message.
        StoreError::UniqueViolation {
            constraint: Constraint::UserName,
        } => DomainError::new(ErrorKind::AlreadyExists, "V3-DKcYh", "User already exists"),
        StoreError::UniqueViolation {
            constraint: Constraint::OrgName,
        } => DomainError::new(
            ErrorKind::AlreadyExists,
            "V3-DKcYh",
            "Organisation already exists",
        ),
        StoreError::UniqueViolation {
            constraint: Constraint::Token,
        } => DomainError::new(
            ErrorKind::AlreadyExists,
            "V3-DKcYh",
            "Personal access token already exists",
        ),
        StoreError::VersionConflict { .. } => DomainError::new(
            ErrorKind::Unavailable,
            "SY-STORE-BUSY",
            "The object is being changed concurrently; try again",
        ),
        // Not the caller's fault and not ours: say so, so that clients retry (UNAVAILABLE)
        // or an operator frees space (RESOURCE_EXHAUSTED), instead of a bare INTERNAL.
        StoreError::Unavailable { context, source } => {
            match source {
                Some(source) => tracing::warn!(%context, %source, "store unavailable"),
                None => tracing::warn!(%context, "store unavailable"),
            }
            DomainError::new(
                ErrorKind::Unavailable,
                "SY-STORE-DOWN",
                "The store is unavailable; try again",
            )
        }
        StoreError::Full { context, source } => {
            match source {
                Some(source) => tracing::error!(%context, %source, "store full"),
                None => tracing::error!(%context, "store full"),
            }
            DomainError::new(
                ErrorKind::ResourceExhausted,
                "SY-STORE-FULL",
                "The store is out of disk space; nothing was written",
            )
        }
        StoreError::Backend { context, source } => {
            match source {
                Some(source) => tracing::error!(%context, %source, "store failure"),
                None => tracing::error!(%context, "store failure"),
            }
            DomainError::internal("SY-STORE", "Internal error")
        }
    }
}

/// Runs `attempt` until it does not lose an optimistic-concurrency race, at most
/// [`MAX_ATTEMPTS`] times. `attempt` must re-read everything it decides on.
pub(crate) async fn with_retry<T, F, Fut>(mut attempt: F) -> Result<T, DomainError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    for _ in 1..MAX_ATTEMPTS {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Attempt::Rejected(e)) => return Err(e),
            Err(Attempt::Store(StoreError::VersionConflict {
                aggregate_id,
                sequence,
            })) => {
                tracing::debug!(%aggregate_id, sequence, "lost a race; deciding again");
            }
            Err(Attempt::Store(e)) => return Err(store_error(e)),
        }
    }
    attempt().await.map_err(|e| match e {
        Attempt::Rejected(e) => e,
        Attempt::Store(e) => store_error(e),
    })
}

/// Why one attempt of a command ended without a result.
pub(crate) enum Attempt {
    /// The domain said no: final.
    Rejected(DomainError),
    /// The store failed; a version conflict is retried.
    Store(StoreError),
}

impl From<DomainError> for Attempt {
    fn from(e: DomainError) -> Self {
        Self::Rejected(e)
    }
}

impl From<StoreError> for Attempt {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
