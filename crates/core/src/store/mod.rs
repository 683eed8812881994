//! The event store: the `EventStore` trait every backend implements, its records and errors.
//!
//! A commit appends events under optimistic concurrency on (aggregate, sequence) and writes the
//! read projections in the same durable transaction, so a read after an acknowledged write sees
//! it. Backends: [`sqlite`] (embedded default), [`postgres`] (many nodes on one database) and
//! [`memory`] (not durable: benchmarks and tests).

pub mod log;
pub mod memory;
pub mod postgres;
pub mod query;
pub mod replay;
mod scope;
mod sql;
pub mod sqlite;
pub mod stats;
#[cfg(test)]
pub(crate) mod suite;

use async_trait::async_trait;

use crate::domain::event::NewEvent;
use crate::domain::org::{Membership, Org};
use crate::domain::token::PersonalAccessToken;
use crate::domain::user::User;

pub use query::{MemberQuery, TextMatch, TextMethod, UserFilter, UserQuery, UserSort};

/// A projection row to write in the same transaction as the events.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectionWrite {
    /// Insert or replace a user row.
    User(User),
    /// Set an existing user's state, sequence and change time, leaving the rest of its row as
    /// it is: all a lifecycle command changes, so the backends write only these columns.
    SetUserState {
        /// The user.
        id: String,
        /// The new state.
        state: crate::domain::user::UserState,
        /// The user's sequence after the event.
        sequence: u64,
        /// The event's time (µs).
        changed_us: i64,
    },
    /// Insert or replace an org row.
    Org(Org),
    /// Insert or replace a membership (one per scope and user).
    Member(Membership),
    /// Insert a token.
    Token(PersonalAccessToken),
    /// Delete a membership.
    RemoveMember {
        /// The scope.
        scope: crate::domain::org::MemberScope,
        /// The member.
        user_id: String,
    },
    /// Delete a token.
    RemoveToken {
        /// The token id.
        id: String,
    },
}

/// One atomic, durable unit: events and the projection writes they imply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commit {
    /// The events to append, in order.
    pub events: Vec<NewEvent>,
    /// The projection rows to write.
    pub writes: Vec<ProjectionWrite>,
}

/// One page of a user search.
#[derive(Debug, Clone, PartialEq)]
pub struct UserPage {
    /// The users on this page.
    pub users: Vec<User>,
    /// How many users match in all.
    pub total: u64,
}

/// One page of a member search.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberPage {
    /// The members on this page, each with its user unless that is gone or deleted.
    pub members: Vec<(Membership, Option<User>)>,
    /// How many members match in all.
    pub total: u64,
}

/// A stored event, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Global position in the store.
    pub position: i64,
    /// The aggregate id.
    pub aggregate_id: String,
    /// Sequence in the aggregate.
    pub sequence: u64,
    /// Dotted event type.
    pub event_type: String,
    /// JSON payload.
    pub payload: serde_json::Value,
    /// Owning org.
    pub resource_owner: String,
    /// The user who caused it.
    pub creator: String,
    /// Time (µs).
    pub created_us: i64,
}

/// One entry of the whole event log: an event with the kind of aggregate it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// `user`, `org` or `instance`.
    pub aggregate_type: String,
    /// The event.
    pub event: StoredEvent,
}

/// A unique value of the projections, as a backend reports it taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    /// A user name (case-insensitive, among users that are not deleted).
    UserName,
    /// An org name (case-insensitive).
    OrgName,
    /// A token's id or its secret's hash.
    Token,
}

impl Constraint {
    /// The PostgreSQL constraint (or unique index) behind it, by name; `None` for a name that
    /// is not one of ours.
    pub fn from_postgres_name(name: &str) -> Option<Self> {
        match name {
            "users_username_key" => Some(Self::UserName),
            "orgs_name_key" => Some(Self::OrgName),
            "tokens_pkey" | "tokens_hash_key" => Some(Self::Token),
            _ => None,
        }
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UserName => "user name",
            Self::OrgName => "org name",
            Self::Token => "token",
        })
    }
}

/// The driver error under a [`StoreError::Backend`]; shared, so that one failed batch can
/// answer each of its commits with it.
pub type BackendSource = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// What can go wrong in a store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the aggregate first: re-read and decide again.
    #[error("version conflict on {aggregate_id}: sequence {sequence} is taken")]
    VersionConflict {
        /// The aggregate.
        aggregate_id: String,
        /// The sequence we tried to append.
        sequence: u64,
    },
    /// A unique projection value is taken.
    #[error("unique value taken: {constraint}")]
    UniqueViolation {
        /// Which one.
        constraint: Constraint,
    },
    /// The backend cannot be reached now (the database is down or restarting, a connection
    /// was lost): a retry may succeed. A commit failed this way is not acknowledged; if the
    /// connection was lost during its `COMMIT`, it may or may not have been kept.
    #[error("store unavailable: {context}")]
    Unavailable {
        /// What failed.
        context: String,
        /// The driver's error.
        #[source]
        source: Option<BackendSource>,
    },
    /// The backend is out of space (a full disk): nothing of the commit is kept; writes
    /// succeed again once space returns, reads go on meanwhile.
    #[error("store full: {context}")]
    Full {
        /// What failed.
        context: String,
        /// The driver's error.
        #[source]
        source: Option<BackendSource>,
    },
    /// The backend failed (I/O, corruption, a bug): what was being done, and the driver's
    /// error when there is one.
    #[error("store backend: {context}")]
    Backend {
        /// What failed.
        context: String,
        /// The driver's error.
        #[source]
        source: Option<BackendSource>,
    },
}

impl StoreError {
    /// A backend failure without a driver error (bad data, a stopped writer).
    pub fn backend(context: impl Into<String>) -> Self {
        Self::Backend {
            context: context.into(),
            source: None,
        }
    }

    /// A backend failure caused by the driver's `source`.
    pub fn driver(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            context: context.into(),
            source: Some(std::sync::Arc::new(source)),
        }
    }
}

/// The storage contract of the domain. Reads serve from projections, never by replaying events.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `commit.events` and writes `commit.writes` atomically and durably.
    ///
    /// # Errors
    /// [`StoreError::VersionConflict`] if an event's (aggregate, sequence) is taken;
    /// [`StoreError::UniqueViolation`] if a projection's unique value is taken; nothing of the
    /// commit is kept in either case.
    async fn commit(&self, commit: Commit) -> Result<(), StoreError>;

    /// The user with `id`, in whatever state (deleted included).
    ///
    /// # Errors
    /// Backend failures.
    async fn user(&self, id: &str) -> Result<Option<User>, StoreError>;

    /// Searches users (deleted ones never match).
    ///
    /// # Errors
    /// Backend failures.
    async fn list_users(&self, query: &UserQuery) -> Result<UserPage, StoreError>;

    /// The org with `id`.
    ///
    /// # Errors
    /// Backend failures.
    async fn org(&self, id: &str) -> Result<Option<Org>, StoreError>;

    /// Every membership of `user_id`.
    ///
    /// # Errors
    /// Backend failures.
    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, StoreError>;

    /// The token whose secret hashes to `hash`.
    ///
    /// # Errors
    /// Backend failures.
    async fn token_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<PersonalAccessToken>, StoreError>;

    /// Every membership in `scope`, ordered by user id.
    ///
    /// # Errors
    /// Backend failures.
    async fn members(
        &self,
        scope: &crate::domain::org::MemberScope,
    ) -> Result<Vec<Membership>, StoreError>;

    /// Searches the members of a scope (see [`MemberQuery`]).
    ///
    /// # Errors
    /// Backend failures.
    async fn list_members(&self, query: &MemberQuery) -> Result<MemberPage, StoreError>;

    /// Every token of `user_id`, oldest first.
    ///
    /// # Errors
    /// Backend failures.
    async fn tokens(&self, user_id: &str) -> Result<Vec<PersonalAccessToken>, StoreError>;

    /// Whether any organization exists (false on a fresh store: bootstrap runs).
    ///
    /// # Errors
    /// Backend failures.
    async fn has_orgs(&self) -> Result<bool, StoreError>;

    /// The events of one aggregate, in sequence order.
    ///
    /// # Errors
    /// Backend failures.
    async fn events(&self, aggregate_id: &str) -> Result<Vec<StoredEvent>, StoreError>;

    /// Up to `limit` events of every aggregate after global position `after`, in position
    /// order: the event log, for export.
    ///
    /// # Errors
    /// Backend failures.
    async fn log(&self, after: i64, limit: u32) -> Result<Vec<LogEntry>, StoreError>;

    /// Every projection row (users, orgs, members, tokens), for export.
    ///
    /// # Errors
    /// Backend failures.
    async fn projections(&self) -> Result<Vec<ProjectionWrite>, StoreError>;

    /// Appends already-decided events as they are (new positions, same order) and writes
    /// `writes`, in one transaction: an import into an empty store.
    ///
    /// # Errors
    /// As [`EventStore::commit`]; an event whose aggregate type is unknown is a backend error.
    async fn import(
        &self,
        entries: &[LogEntry],
        writes: &[ProjectionWrite],
    ) -> Result<(), StoreError>;
}
