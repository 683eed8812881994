//! A short-lived cache of verified personal access tokens: token hash → [`Caller`], so that a
//! busy client does not cost a token, a user and a membership lookup on every call.
//!
//! Staleness is bounded two ways:
//!
//! - **This process** sees every change at once. Every commit that writes a user row or a
//!   membership drops the entries of that user ([`TokenCache::invalidate_user`]); a removed
//!   token drops them all ([`TokenCache::invalidate_all`]). A lookup that read the store before
//!   such a change but finishes after it does not store its stale answer: each invalidation
//!   bumps a generation counter, and an answer is only kept if its user was not invalidated
//!   since the generation the lookup started at.
//! - **Other processes** sharing the database (PostgreSQL) change rows this one never hears
//!   of, so `switchyard serve` turns the cache off there (`Core::with_token_cache_ttl(ZERO)`):
//!   access changes must hold on the next request on every node. An entry lives at most
//!   [`TTL`] (2 s) all the same, as a bound for any other deployment that shares a store.
//!
//! A token's own expiry is checked on every hit. JWTs are not cached (their verifier checks
//! `exp` and the signature itself). What this cache leaves to others: deciding what a commit
//! changed is [`crate::command::Core`]'s job, which calls the invalidations after each commit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Caller;
use crate::store::{Commit, ProjectionWrite};

/// How long a verified token is trusted without asking the store again: the bound on how late
/// this process sees a change made by another process on the same database.
pub const TTL: Duration = Duration::from_secs(2);

/// Most cached tokens; past this the cache starts over (a flood of distinct tokens must not
/// grow memory).
const MAX_ENTRIES: usize = 10_000;

/// Most remembered invalidations; past this, lookups that started before are not kept.
const MAX_INVALIDATED: usize = 16_384;

struct Entry {
    caller: Caller,
    /// The token's own expiry (µs since the epoch), checked on every hit.
    token_expiration_us: Option<i64>,
    /// When the entry stops being trusted.
    until: Instant,
}

#[derive(Default)]
struct State {
    entries: HashMap<[u8; 32], Entry>,
    /// User id → the generation of its last invalidation.
    invalidated: HashMap<String, u64>,
    /// Lookups that started before this generation are never stored.
    floor: u64,
}

/// The verified-token cache of one process. See the module documentation for its bounds.
pub struct TokenCache {
    ttl: Duration,
    generation: AtomicU64,
    state: Mutex<State>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(TTL)
    }
}

/// What a commit changed that cached callers depend on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Invalidation {
    /// Users whose row or memberships changed.
    pub users: Vec<String>,
    /// Whether a token was removed (its user is not named by the write).
    pub all: bool,
}

impl Invalidation {
    /// What `commit` invalidates: its user rows, memberships and removed tokens. New tokens,
    /// orgs and events alone invalidate nothing.
    pub fn of(commit: &Commit) -> Self {
        let mut out = Self::default();
        for write in &commit.writes {
            match write {
                ProjectionWrite::User(user) => out.users.push(user.id.clone()),
                ProjectionWrite::SetUserState { id, .. } => out.users.push(id.clone()),
                ProjectionWrite::Member(member) => out.users.push(member.user_id.clone()),
                ProjectionWrite::RemoveMember { user_id, .. } => out.users.push(user_id.clone()),
                ProjectionWrite::RemoveToken { .. } => out.all = true,
                ProjectionWrite::Token(_) | ProjectionWrite::Org(_) => {}
            }
        }
        out
    }

    /// Whether anything is invalidated.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && !self.all
    }
}

impl TokenCache {
    /// A cache whose entries live `ttl`; `Duration::ZERO` caches nothing.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every critical section leaves the maps consistent, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation to pass to [`TokenCache::insert`]: take it before reading the store.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The caller a token hash was verified as, if cached, still trusted and not expired.
    pub fn get(&self, hash: &[u8; 32], now_us: i64) -> Option<Caller> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut state = self.lock();
        let entry = state.entries.get(hash)?;
        if entry.until > Instant::now() && entry.token_expiration_us.is_none_or(|exp| exp > now_us)
        {
            return Some(entry.caller.clone());
        }
        state.entries.remove(hash);
        None
    }

    /// Keeps `caller` for `hash` unless its user was invalidated since `generation` (taken
    /// with [`TokenCache::generation`] before the store was read).
    pub fn insert(
        &self,
        hash: [u8; 32],
        caller: &Caller,
        token_expiration_us: Option<i64>,
        generation: u64,
    ) {
        if self.ttl.is_zero() {
            return;
        }
        let mut state = self.lock();
        let stale = generation < state.floor
            || state
                .invalidated
                .get(&caller.user_id)
                .is_some_and(|&changed| changed > generation);
        if stale {
            return;
        }
        if state.entries.len() >= MAX_ENTRIES {
            state.entries.clear();
        }
        state.entries.insert(
            hash,
            Entry {
                caller: caller.clone(),
                token_expiration_us,
                until: Instant::now() + self.ttl,
            },
        );
    }

    /// Drops what `invalidation` names.
    pub fn invalidate(&self, invalidation: &Invalidation) {
        if invalidation.all {
            self.invalidate_all();
        }
        for user in &invalidation.users {
            self.invalidate_user(user);
        }
    }

    /// Drops the entries of `user_id` and keeps lookups already under way from storing it.
    pub fn invalidate_user(&self, user_id: &str) {
        let mut state = self.lock();
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        if state.invalidated.len() >= MAX_INVALIDATED {
            // Forget the individual users; refuse every lookup that started before now.
            state.invalidated.clear();
            state.floor = generation;
        }
        state.invalidated.insert(user_id.to_owned(), generation);
        state.entries.retain(|_, e| e.caller.user_id != user_id);
    }

    /// Drops every entry and keeps lookups already under way from storing theirs.
    pub fn invalidate_all(&self) {
        let mut state = self.lock();
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        state.entries.clear();
        state.invalidated.clear();
        state.floor = generation;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(user: &str) -> Caller {
        Caller {
            user_id: user.into(),
            org_id: "o".into(),
            memberships: Vec::new().into(),
        }
    }

    #[test]
    fn hits_until_the_ttl_or_the_token_expires() {
        let cache = TokenCache::new(Duration::from_millis(50));
        let g = cache.generation();
        cache.insert([1; 32], &caller("u"), Some(1_000), g);
        assert_eq!(cache.get(&[1; 32], 999), Some(caller("u")));
        assert_eq!(cache.get(&[1; 32], 1_000), None, "token expired");
        cache.insert([2; 32], &caller("u"), None, g);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&[2; 32], 0), None, "ttl passed");
    }

    #[test]
    fn invalidating_a_user_drops_its_entries_and_stale_lookups() {
        let cache = TokenCache::default();
        let before = cache.generation();
        cache.insert([1; 32], &caller("u"), None, before);
        cache.insert([2; 32], &caller("v"), None, before);
        cache.invalidate_user("u");
        assert_eq!(cache.get(&[1; 32], 0), None);
        assert_eq!(cache.get(&[2; 32], 0), Some(caller("v")));
        // A lookup that read the store before the change must not store what it read.
        cache.insert([1; 32], &caller("u"), None, before);
        assert_eq!(cache.get(&[1; 32], 0), None);
        // One that started after it may.
        cache.insert([1; 32], &caller("u"), None, cache.generation());
        assert_eq!(cache.get(&[1; 32], 0), Some(caller("u")));
    }

    #[test]
    fn invalidating_all_drops_everything_and_every_earlier_lookup() {
        let cache = TokenCache::default();
        let before = cache.generation();
        cache.insert([1; 32], &caller("u"), None, before);
        cache.invalidate_all();
        assert_eq!(cache.get(&[1; 32], 0), None);
        cache.insert([2; 32], &caller("v"), None, before);
        assert_eq!(cache.get(&[2; 32], 0), None);
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let cache = TokenCache::new(Duration::ZERO);
        cache.insert([1; 32], &caller("u"), None, cache.generation());
        assert_eq!(cache.get(&[1; 32], 0), None);
    }

    #[test]
    fn commits_name_what_they_invalidate() {
        use crate::domain::org::MemberScope;
        let commit = Commit {
            events: vec![],
            writes: vec![
                ProjectionWrite::RemoveMember {
                    scope: MemberScope::Instance,
                    user_id: "m".into(),
                },
                ProjectionWrite::RemoveToken { id: "t".into() },
            ],
        };
        assert_eq!(
            Invalidation::of(&commit),
            Invalidation {
                users: vec!["m".into()],
                all: true
            }
        );
        assert!(Invalidation::of(&Commit::default()).is_empty());
    }
}
