//! The in-memory backend: everything in one process's memory behind one lock, nothing on disk.
//!
//! It keeps the semantics of [`super::sqlite`] — a commit is all-or-nothing, a taken
//! (aggregate, sequence) is [`StoreError::VersionConflict`], a taken user name (among users
//! that are not deleted, case-insensitively) or org name is [`StoreError::UniqueViolation`] —
//! but not its durability: a restart forgets everything. It serves benchmarks
//! (`switchyard serve --store memory`) and tests; it is never the default.
//!
//! Every operation is a few map look-ups under a `std::sync::RwLock`, short enough to run on
//! the async runtime's threads. Events are stored compactly (strings interned, empty payloads
//! not allocated) because an event log only grows.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

use super::query::{MemberQuery, UserFilter, UserQuery, UserSort};
use super::scope::scope_key;
use super::{
    Commit, Constraint, EventStore, LogEntry, MemberPage, ProjectionWrite, StoreError, StoredEvent,
    UserPage,
};
use crate::domain::org::{MemberScope, Membership, Org};
use crate::domain::token::PersonalAccessToken;
use crate::domain::user::{User, UserState};

/// Default and maximum page sizes of a user search, as the SQL backends have them.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// The in-memory event store. Cloning shares the same data.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<RwLock<State>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // No operation leaves the state half-changed when it panics (commits undo before they
        // return), so a poisoned lock still guards consistent data.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Interned strings: each distinct id, owner, creator and type name is stored once.
#[derive(Default)]
struct Interner {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> Result<u32, StoreError> {
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        let id = u32::try_from(self.names.len())
            .map_err(|_| StoreError::backend("too many distinct names in memory"))?;
        let name: Arc<str> = name.into();
        self.names.push(Arc::clone(&name));
        self.ids.insert(name, id);
        Ok(id)
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |s| s)
    }
}

/// One stored event, compact: 56 bytes plus its payload when that is not `{}`.
struct Event {
    aggregate_type: u32,
    aggregate_id: u32,
    event_type: u32,
    resource_owner: u32,
    creator: u32,
    sequence: u64,
    created_us: i64,
    /// The payload as JSON text; `None` for the empty object most events carry.
    payload: Option<Box<str>>,
}

#[derive(Default)]
struct State {
    strings: Interner,
    /// The log; an event's global position is its index + 1.
    events: Vec<Event>,
    /// Per aggregate id: indexes into `events`, ordered by sequence.
    by_aggregate: HashMap<u32, Vec<u32>>,
    users: HashMap<String, User>,
    /// Lower-cased user name → id, for users that are not deleted.
    usernames: HashMap<String, String>,
    orgs: HashMap<String, Org>,
    /// Lower-cased org name → id.
    org_names: HashMap<String, String>,
    /// Per user id: scope key → membership.
    members: HashMap<String, BTreeMap<String, Membership>>,
    tokens: HashMap<String, PersonalAccessToken>,
    /// Token hash → token id.
    token_hashes: HashMap<[u8; 32], String>,
}

/// What a projection write replaced, to put back if a later part of the commit fails.
enum Undo {
    User(String, Option<User>),
    Org(String, Option<Org>),
    Member(String, String, Option<Membership>),
    Token(String, Option<PersonalAccessToken>),
}

/// An event of a commit, checked and ready to append.
struct Staged<'a> {
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    event_type: &'a str,
    resource_owner: &'a str,
    creator: &'a str,
    sequence: u64,
    created_us: i64,
    payload: &'a serde_json::Value,
}

impl State {
    /// Whether `aggregate_id` already has an event of `aggregate_type` at `sequence`.
    fn sequence_taken(&self, aggregate_type: &str, aggregate_id: &str, sequence: u64) -> bool {
        let (Some(type_id), Some(id)) = (
            self.strings.get(aggregate_type),
            self.strings.get(aggregate_id),
        ) else {
            return false;
        };
        let Some(positions) = self.by_aggregate.get(&id) else {
            return false;
        };
        let start = positions.partition_point(|&i| self.event(i).sequence < sequence);
        positions[start..]
            .iter()
            .map(|&i| self.event(i))
            .take_while(|e| e.sequence == sequence)
            .any(|e| e.aggregate_type == type_id)
    }

    fn event(&self, index: u32) -> &Event {
        &self.events[index as usize]
    }

    /// Appends events already checked for conflicts. Fails only when memory runs out of
    /// 32-bit indexes, before anything is appended.
    fn append(&mut self, staged: &[Staged<'_>]) -> Result<(), StoreError> {
        let mut interned = Vec::with_capacity(staged.len());
        for e in staged {
            let payload = match e.payload {
                serde_json::Value::Object(map) if map.is_empty() => None,
                other => Some(other.to_string().into_boxed_str()),
            };
            interned.push(Event {
                aggregate_type: self.strings.intern(e.aggregate_type)?,
                aggregate_id: self.strings.intern(e.aggregate_id)?,
                event_type: self.strings.intern(e.event_type)?,
                resource_owner: self.strings.intern(e.resource_owner)?,
                creator: self.strings.intern(e.creator)?,
                sequence: e.sequence,
                created_us: e.created_us,
                payload,
            });
        }
        u32::try_from(self.events.len() + interned.len())
            .map_err(|_| StoreError::backend("event log full"))?;
        for event in interned {
            let index = self.events.len() as u32;
            let (aggregate, sequence) = (event.aggregate_id, event.sequence);
            self.events.push(event);
            let positions = self.by_aggregate.entry(aggregate).or_default();
            // Sequences almost always grow: the new one goes last.
            let at = positions.partition_point(|&i| self.events[i as usize].sequence <= sequence);
            positions.insert(at, index);
        }
        Ok(())
    }

    fn stored(&self, index: usize) -> Result<StoredEvent, StoreError> {
        let e = &self.events[index];
        let payload = match &e.payload {
            None => serde_json::Value::Object(serde_json::Map::new()),
            Some(text) => serde_json::from_str(text)
                .map_err(|err| StoreError::backend(format!("decode payload: {err}")))?,
        };
        Ok(StoredEvent {
            position: index as i64 + 1,
            aggregate_id: self.strings.name(e.aggregate_id).to_owned(),
            sequence: e.sequence,
            event_type: self.strings.name(e.event_type).to_owned(),
            payload,
            resource_owner: self.strings.name(e.resource_owner).to_owned(),
            creator: self.strings.name(e.creator).to_owned(),
            created_us: e.created_us,
        })
    }

    /// Checks events against the log and against each other.
    fn check_events(&self, staged: &[Staged<'_>]) -> Result<(), StoreError> {
        for (i, e) in staged.iter().enumerate() {
            let repeated = staged[..i].iter().any(|p| {
                p.aggregate_type == e.aggregate_type
                    && p.aggregate_id == e.aggregate_id
                    && p.sequence == e.sequence
            });
            if repeated || self.sequence_taken(e.aggregate_type, e.aggregate_id, e.sequence) {
                return Err(StoreError::VersionConflict {
                    aggregate_id: e.aggregate_id.to_owned(),
                    sequence: e.sequence,
                });
            }
        }
        Ok(())
    }

    /// Replaces (or removes) a user row, keeping the name index; no checks.
    fn set_user(&mut self, id: &str, user: Option<User>) -> Option<User> {
        let old = match user {
            Some(user) => {
                if user.state != UserState::Deleted {
                    self.usernames
                        .insert(user.username.to_lowercase(), id.to_owned());
                }
                self.users.insert(id.to_owned(), user)
            }
            None => self.users.remove(id),
        };
        if let Some(old) = &old {
            let key = old.username.to_lowercase();
            let still_named = self
                .users
                .get(id)
                .is_some_and(|u| u.state != UserState::Deleted && u.username.to_lowercase() == key);
            if !still_named && self.usernames.get(&key).is_some_and(|owner| owner == id) {
                self.usernames.remove(&key);
            }
        }
        old
    }

    /// Replaces (or removes) an org row, keeping the name index; no checks.
    fn set_org(&mut self, id: &str, org: Option<Org>) -> Option<Org> {
        let old = match org {
            Some(org) => {
                self.org_names
                    .insert(org.name.to_lowercase(), id.to_owned());
                self.orgs.insert(id.to_owned(), org)
            }
            None => self.orgs.remove(id),
        };
        if let Some(old) = &old {
            let key = old.name.to_lowercase();
            let still_named = self
                .orgs
                .get(id)
                .is_some_and(|o| o.name.to_lowercase() == key);
            if !still_named && self.org_names.get(&key).is_some_and(|owner| owner == id) {
                self.org_names.remove(&key);
            }
        }
        old
    }

    fn set_member(
        &mut self,
        user_id: &str,
        key: String,
        member: Option<Membership>,
    ) -> Option<Membership> {
        match member {
            Some(member) => self
                .members
                .entry(user_id.to_owned())
                .or_default()
                .insert(key, member),
            None => {
                let scopes = self.members.get_mut(user_id)?;
                let old = scopes.remove(&key);
                if scopes.is_empty() {
                    self.members.remove(user_id);
                }
                old
            }
        }
    }

    fn set_token(
        &mut self,
        id: &str,
        token: Option<PersonalAccessToken>,
    ) -> Option<PersonalAccessToken> {
        let old = match token {
            Some(token) => {
                self.token_hashes.insert(token.hash, id.to_owned());
                self.tokens.insert(id.to_owned(), token)
            }
            None => self.tokens.remove(id),
        };
        if let Some(old) = &old
            && self.tokens.get(id).is_none_or(|t| t.hash != old.hash)
        {
            self.token_hashes.remove(&old.hash);
        }
        old
    }

    /// Checks one projection write against the current rows and applies it, returning how to
    /// undo it.
    fn apply(&mut self, write: &ProjectionWrite) -> Result<Undo, StoreError> {
        Ok(match write {
            ProjectionWrite::User(user) => {
                if user.state != UserState::Deleted
                    && self
                        .usernames
                        .get(&user.username.to_lowercase())
                        .is_some_and(|owner| *owner != user.id)
                {
                    return Err(StoreError::UniqueViolation {
                        constraint: Constraint::UserName,
                    });
                }
                // As the SQL upsert: the creation time of an existing row stays.
                let row = match self.users.get(&user.id) {
                    Some(existing) => user.replacing(existing),
                    None => user.clone(),
                };
                Undo::User(user.id.clone(), self.set_user(&user.id, Some(row)))
            }
            ProjectionWrite::SetUserState {
                id,
                state,
                sequence,
                changed_us,
            } => {
                let mut user = self.users.get(id).cloned().ok_or_else(|| {
                    StoreError::backend(format!("no user row {id} to set the state of"))
                })?;
                user.set_state(*state, *sequence, *changed_us);
                return self.apply(&ProjectionWrite::User(user));
            }
            ProjectionWrite::Org(org) => {
                if self
                    .org_names
                    .get(&org.name.to_lowercase())
                    .is_some_and(|owner| *owner != org.id)
                {
                    return Err(StoreError::UniqueViolation {
                        constraint: Constraint::OrgName,
                    });
                }
                let row = match self.orgs.get(&org.id) {
                    Some(existing) => org.replacing(existing),
                    None => org.clone(),
                };
                Undo::Org(org.id.clone(), self.set_org(&org.id, Some(row)))
            }
            ProjectionWrite::Member(member) => {
                let key = scope_key(&member.scope);
                let old = self.set_member(&member.user_id, key.clone(), Some(member.clone()));
                Undo::Member(member.user_id.clone(), key, old)
            }
            ProjectionWrite::RemoveMember { scope, user_id } => {
                let key = scope_key(scope);
                let old = self.set_member(user_id, key.clone(), None);
                Undo::Member(user_id.clone(), key, old)
            }
            ProjectionWrite::Token(token) => {
                // As the SQL backends' unique id and hash.
                if self.tokens.contains_key(&token.id)
                    || self.token_hashes.contains_key(&token.hash)
                {
                    return Err(StoreError::UniqueViolation {
                        constraint: Constraint::Token,
                    });
                }
                Undo::Token(
                    token.id.clone(),
                    self.set_token(&token.id, Some(token.clone())),
                )
            }
            ProjectionWrite::RemoveToken { id } => {
                Undo::Token(id.clone(), self.set_token(id, None))
            }
        })
    }

    fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::User(id, old) => {
                self.set_user(&id, old);
            }
            Undo::Org(id, old) => {
                self.set_org(&id, old);
            }
            Undo::Member(user_id, key, old) => {
                self.set_member(&user_id, key, old);
            }
            Undo::Token(id, old) => {
                self.set_token(&id, old);
            }
        }
    }

    /// Checks and applies `staged` and `writes` as one unit: on any error nothing is kept.
    fn commit(
        &mut self,
        staged: &[Staged<'_>],
        writes: &[ProjectionWrite],
    ) -> Result<(), StoreError> {
        self.check_events(staged)?;
        let mut undo = Vec::with_capacity(writes.len());
        for write in writes {
            match self.apply(write) {
                Ok(step) => undo.push(step),
                Err(e) => {
                    self.rollback(undo);
                    return Err(e);
                }
            }
        }
        if let Err(e) = self.append(staged) {
            self.rollback(undo);
            return Err(e);
        }
        Ok(())
    }

    fn rollback(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            self.undo(step);
        }
    }
}

/// What a filter reads: a user's row, or a member's whose user is gone or deleted (`user` is
/// `None`: an empty profile, as the SQL backends' LEFT JOIN reads it).
#[derive(Clone, Copy)]
struct Profile<'a> {
    /// The user id (a member's own).
    id: &'a str,
    user: Option<&'a User>,
}

impl<'a> Profile<'a> {
    fn of(user: &'a User) -> Self {
        Self {
            id: &user.id,
            user: Some(user),
        }
    }

    /// The text `filter` compares, per column; empty without a user.
    fn column(self, filter: &UserFilter) -> &'a str {
        use crate::domain::user::UserKind;
        let Some(user) = self.user else {
            return "";
        };
        let human = match &user.kind {
            UserKind::Human(h) => Some(h),
            UserKind::Machine(_) => None,
        };
        match filter {
            UserFilter::UserName(_) => &user.username,
            UserFilter::FirstName(_) => human.map_or("", |h| &h.first_name),
            UserFilter::LastName(_) => human.map_or("", |h| &h.last_name),
            UserFilter::NickName(_) => human.map_or("", |h| &h.nick_name),
            UserFilter::DisplayName(_) => user.display_name(),
            UserFilter::Org(_) => &user.resource_owner,
            _ => user.email(),
        }
    }
}

/// The login name of `user` (see [`UserFilter::LoginName`]).
fn login_name(state: &State, user: &User) -> String {
    match state.orgs.get(&user.resource_owner) {
        Some(org) if !user.username.contains('@') => {
            format!("{}@{}", user.username, org.primary_domain)
        }
        _ => user.username.clone(),
    }
}

fn matches(state: &State, row: Profile<'_>, filter: &UserFilter) -> bool {
    match filter {
        UserFilter::LoginName(m) => {
            m.matches(&row.user.map_or(String::new(), |u| login_name(state, u)))
        }
        UserFilter::UserName(m)
        | UserFilter::FirstName(m)
        | UserFilter::LastName(m)
        | UserFilter::NickName(m)
        | UserFilter::DisplayName(m)
        | UserFilter::Email(m) => m.matches(row.column(filter)),
        UserFilter::State(wanted) => row.user.is_some_and(|u| u.state == *wanted),
        UserFilter::IsHuman(human) => {
            row.user
                .is_some_and(|u| matches!(u.kind, crate::domain::user::UserKind::Human(_)))
                == *human
        }
        UserFilter::InIds(ids) => ids.iter().any(|id| id == row.id),
        UserFilter::InEmails(emails) => emails.iter().any(|e| e == row.column(filter)),
        UserFilter::Org(org) => row.column(filter) == org,
        UserFilter::And(parts) => parts.iter().all(|p| matches(state, row, p)),
        UserFilter::Or(parts) => parts.iter().any(|p| matches(state, row, p)),
        UserFilter::Not(inner) => !matches(state, row, inner),
    }
}

/// The text a sort column orders by, for the columns that are text.
fn sort_text(user: &User, sort: UserSort) -> &str {
    use crate::domain::user::UserKind;
    let human = match &user.kind {
        UserKind::Human(h) => Some(h),
        UserKind::Machine(_) => None,
    };
    match sort {
        UserSort::UserName => &user.username,
        UserSort::FirstName => human.map_or("", |h| &h.first_name),
        UserSort::LastName => human.map_or("", |h| &h.last_name),
        UserSort::NickName => human.map_or("", |h| &h.nick_name),
        UserSort::DisplayName => user.display_name(),
        UserSort::Email => user.email(),
        UserSort::State => user.state.as_str(),
        UserSort::CreationDate | UserSort::Type => "",
    }
}

/// Orders two users by the search's sort column, then by id (as the SQL backends do).
fn compare(a: &User, b: &User, sort: UserSort) -> std::cmp::Ordering {
    use crate::domain::user::UserKind;
    let primary = match sort {
        UserSort::CreationDate => a.created_us.cmp(&b.created_us),
        UserSort::Type => {
            matches!(a.kind, UserKind::Human(_)).cmp(&matches!(b.kind, UserKind::Human(_)))
        }
        _ => sort_text(a, sort).cmp(sort_text(b, sort)),
    };
    primary.then_with(|| a.id.cmp(&b.id))
}

fn list_users(state: &State, query: &UserQuery) -> UserPage {
    let mut users: Vec<&User> = state
        .users
        .values()
        .filter(|u| u.state != UserState::Deleted)
        .filter(|u| {
            query
                .filters
                .iter()
                .all(|f| matches(state, Profile::of(u), f))
        })
        .collect();
    users.sort_by(|a, b| {
        let order = compare(a, b, query.sort);
        if query.asc { order } else { order.reverse() }
    });
    let limit = match query.limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    UserPage {
        total: users.len() as u64,
        users: page(users, query.offset, limit as usize)
            .into_iter()
            .cloned()
            .collect(),
    }
}

/// The `limit` items of `items` after the first `offset`.
fn page<T>(items: Vec<T>, offset: u64, limit: usize) -> Vec<T> {
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    items.into_iter().skip(offset).take(limit).collect()
}

/// The members of `scope`, by user id.
fn members_of<'a>(state: &'a State, scope: &MemberScope) -> Vec<&'a Membership> {
    let key = scope_key(scope);
    let mut members: Vec<&Membership> = state
        .members
        .values()
        .filter_map(|scopes| scopes.get(&key))
        .collect();
    members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    members
}

fn list_members(state: &State, query: &MemberQuery) -> MemberPage {
    let members: Vec<(&Membership, Option<&User>)> = members_of(state, &query.scope)
        .into_iter()
        .map(|m| {
            let user = state.users.get(&m.user_id);
            (m, user.filter(|u| u.state != UserState::Deleted))
        })
        .filter(|(m, user)| {
            let row = Profile {
                id: &m.user_id,
                user: *user,
            };
            query.filters.iter().all(|f| matches(state, row, f))
        })
        .collect();
    let limit = match query.limit {
        0 => usize::MAX,
        n => n as usize,
    };
    MemberPage {
        total: members.len() as u64,
        members: page(members, query.offset, limit)
            .into_iter()
            .map(|(m, user)| (m.clone(), user.cloned()))
            .collect(),
    }
}

fn staged(commit: &Commit) -> Vec<Staged<'_>> {
    commit
        .events
        .iter()
        .map(|e| Staged {
            aggregate_type: e.aggregate_type.as_str(),
            aggregate_id: &e.aggregate_id,
            event_type: e.event_type.as_str(),
            resource_owner: &e.resource_owner,
            creator: &e.creator,
            sequence: e.sequence,
            created_us: e.created_us,
            payload: &e.payload,
        })
        .collect()
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        let staged = staged(&commit);
        self.write().commit(&staged, &commit.writes)
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.read().users.get(id).cloned())
    }

    async fn list_users(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        Ok(list_users(&self.read(), query))
    }

    async fn org(&self, id: &str) -> Result<Option<Org>, StoreError> {
        Ok(self.read().orgs.get(id).cloned())
    }

    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, StoreError> {
        Ok(self
            .read()
            .members
            .get(user_id)
            .map(|scopes| scopes.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn token_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<PersonalAccessToken>, StoreError> {
        let state = self.read();
        Ok(state
            .token_hashes
            .get(hash)
            .and_then(|id| state.tokens.get(id))
            .cloned())
    }

    async fn members(&self, scope: &MemberScope) -> Result<Vec<Membership>, StoreError> {
        Ok(members_of(&self.read(), scope)
            .into_iter()
            .cloned()
            .collect())
    }

    async fn list_members(&self, query: &MemberQuery) -> Result<MemberPage, StoreError> {
        Ok(list_members(&self.read(), query))
    }

    async fn tokens(&self, user_id: &str) -> Result<Vec<PersonalAccessToken>, StoreError> {
        let mut out: Vec<PersonalAccessToken> = self
            .read()
            .tokens
            .values()
            .filter(|t| t.user_id == user_id)
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.created_us, &a.id).cmp(&(b.created_us, &b.id)));
        Ok(out)
    }

    async fn has_orgs(&self) -> Result<bool, StoreError> {
        Ok(!self.read().orgs.is_empty())
    }

    async fn events(&self, aggregate_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let state = self.read();
        let Some(id) = state.strings.get(aggregate_id) else {
            return Ok(Vec::new());
        };
        state
            .by_aggregate
            .get(&id)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|&i| state.stored(i as usize))
            .collect()
    }

    async fn log(&self, after: i64, limit: u32) -> Result<Vec<LogEntry>, StoreError> {
        let state = self.read();
        let start = usize::try_from(after.max(0)).unwrap_or(usize::MAX);
        (start..state.events.len())
            .take(limit as usize)
            .map(|i| {
                Ok(LogEntry {
                    aggregate_type: state
                        .strings
                        .name(state.events[i].aggregate_type)
                        .to_owned(),
                    event: state.stored(i)?,
                })
            })
            .collect()
    }

    async fn projections(&self) -> Result<Vec<ProjectionWrite>, StoreError> {
        let state = self.read();
        let mut users: Vec<&User> = state.users.values().collect();
        users.sort_by(|a, b| (a.created_us, &a.id).cmp(&(b.created_us, &b.id)));
        let mut orgs: Vec<&Org> = state.orgs.values().collect();
        orgs.sort_by(|a, b| (a.created_us, &a.id).cmp(&(b.created_us, &b.id)));
        let mut members: Vec<(String, &Membership)> = state
            .members
            .values()
            .flat_map(|scopes| scopes.iter().map(|(k, m)| (k.clone(), m)))
            .collect();
        members.sort_by(|a, b| (&a.0, &a.1.user_id).cmp(&(&b.0, &b.1.user_id)));
        let mut tokens: Vec<&PersonalAccessToken> = state.tokens.values().collect();
        tokens.sort_by(|a, b| (a.created_us, &a.id).cmp(&(b.created_us, &b.id)));
        let mut out = Vec::new();
        out.extend(users.into_iter().cloned().map(ProjectionWrite::User));
        out.extend(orgs.into_iter().cloned().map(ProjectionWrite::Org));
        out.extend(
            members
                .into_iter()
                .map(|(_, m)| ProjectionWrite::Member(m.clone())),
        );
        out.extend(tokens.into_iter().cloned().map(ProjectionWrite::Token));
        Ok(out)
    }

    async fn import(
        &self,
        entries: &[LogEntry],
        writes: &[ProjectionWrite],
    ) -> Result<(), StoreError> {
        let staged: Vec<Staged<'_>> = entries
            .iter()
            .map(
                |LogEntry {
                     aggregate_type,
                     event,
                 }| Staged {
                    aggregate_type,
                    aggregate_id: &event.aggregate_id,
                    event_type: &event.event_type,
                    resource_owner: &event.resource_owner,
                    creator: &event.creator,
                    sequence: event.sequence,
                    created_us: event.created_us,
                    payload: &event.payload,
                },
            )
            .collect();
        self.write().commit(&staged, writes)
    }
}

#[cfg(test)]
mod tests;
