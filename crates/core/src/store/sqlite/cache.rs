//! The write model: users, orgs and the instance's memberships as the last acknowledged commit
//! left them, kept in memory by the SQLite store so that a command's point reads (its org
//! context, the user it acts on, the instance's owners) run no SQL. A point read through SQLite
//! is a read transaction, a B-tree search and a row decode (the user's JSON): about a fifth of
//! a lifecycle command's instructions before this cache.
//!
//! Why it is never stale inside the process:
//!
//! - The writer thread applies each commit's projection writes here after its `COMMIT` and
//!   before it answers, so a read after an acknowledged write sees it.
//! - A miss reads SQLite *while holding the shard's lock*, and the writer takes the same lock to
//!   apply a commit. Either the read ran before the writer's update (and the update, which
//!   changes an entry in place when one is there, corrects it) or after the `COMMIT` (and read
//!   the new row). A read that saw the old row can never be stored after the update.
//! - A batch or commit whose outcome is not certain (a failed `COMMIT`, an import) clears
//!   everything.
//!
//! Other processes: SQLite does not keep a second process off the file (`switchyard admin
//! recover` may write while a server runs). The writer connection's `PRAGMA data_version`
//! changes only when *another* connection commits (ours never write but through the writer),
//! so the writer checks it before every batch and, when idle, every [`EXTERNAL_CHECK`]: a
//! change clears the cache. Until then a read served here may miss that other process's
//! commit (up to a second when idle, up to the next batch under load); a command decided on
//! such a read appends a sequence the other process took, loses on the unique (aggregate,
//! sequence) key, and the writer forgets that aggregate before it answers, so the retry reads
//! it afresh. Two *servers* on one SQLite file are not supported by this design (nor were they
//! claimed): each would read its own model until its next batch. The memory store needs none
//! of this; PostgreSQL, which many processes share by design, does not cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::domain::org::{MemberScope, Membership, Org};
use crate::domain::user::User;
use crate::store::{Commit, ProjectionWrite};

/// Shards of the user and org maps: a miss holds its shard while it reads SQLite, so reads of
/// other keys go on meanwhile.
const SHARDS: usize = 16;
/// Entries kept per shard and map; past it an arbitrary entry makes room. 16 × 2,048 users is
/// a few tens of MB at most and covers every user a busy instance touches at once.
const PER_SHARD: usize = 2048;
/// How long an idle writer waits before it looks for another process's commit.
pub(super) const EXTERNAL_CHECK: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Shard {
    users: HashMap<String, User>,
    orgs: HashMap<String, Org>,
}

/// The write model (see the module docs).
pub(super) struct Cache {
    shards: [Mutex<Shard>; SHARDS],
    /// The instance's memberships; `None` until read, and again after any change to them.
    instance_members: Mutex<Option<Vec<Membership>>>,
    /// The writer connection's last `PRAGMA data_version`; only the writer thread uses it.
    data_version: Mutex<Option<i64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update leaves the maps consistent before anything can panic.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// FNV-1a: the shard of a key, cheaper than a second SipHash of it.
fn shard_of(key: &str) -> usize {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.bytes() {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    hash as usize % SHARDS
}

/// Inserts or replaces `key`, making room first when the map is full.
fn put<V>(map: &mut HashMap<String, V>, key: &str, value: V) {
    if let Some(slot) = map.get_mut(key) {
        *slot = value;
        return;
    }
    if map.len() >= PER_SHARD
        && let Some(victim) = map.keys().next().cloned()
    {
        map.remove(&victim);
    }
    map.insert(key.to_owned(), value);
}

impl Cache {
    pub(super) fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            instance_members: Mutex::new(None),
            data_version: Mutex::new(None),
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        lock(&self.shards[shard_of(key)])
    }

    /// The user `id` if it is here.
    pub(super) fn user(&self, id: &str) -> Option<User> {
        self.shard(id).users.get(id).cloned()
    }

    /// The user `id`, read by `load` (from SQLite) under the shard's lock and kept if found.
    pub(super) fn load_user<E>(
        &self,
        id: &str,
        load: impl FnOnce() -> Result<Option<User>, E>,
    ) -> Result<Option<User>, E> {
        let mut shard = self.shard(id);
        if let Some(user) = shard.users.get(id) {
            return Ok(Some(user.clone()));
        }
        let user = load()?;
        if let Some(user) = &user {
            put(&mut shard.users, id, user.clone());
        }
        Ok(user)
    }

    /// The org `id` if it is here.
    pub(super) fn org(&self, id: &str) -> Option<Org> {
        self.shard(id).orgs.get(id).cloned()
    }

    /// The org `id`, read by `load` under the shard's lock and kept if found.
    pub(super) fn load_org<E>(
        &self,
        id: &str,
        load: impl FnOnce() -> Result<Option<Org>, E>,
    ) -> Result<Option<Org>, E> {
        let mut shard = self.shard(id);
        if let Some(org) = shard.orgs.get(id) {
            return Ok(Some(org.clone()));
        }
        let org = load()?;
        if let Some(org) = &org {
            put(&mut shard.orgs, id, org.clone());
        }
        Ok(org)
    }

    /// The instance's memberships if they are here.
    pub(super) fn instance_members(&self) -> Option<Vec<Membership>> {
        lock(&self.instance_members).clone()
    }

    /// The instance's memberships, read by `load` under their lock and kept.
    pub(super) fn load_instance_members<E>(
        &self,
        load: impl FnOnce() -> Result<Vec<Membership>, E>,
    ) -> Result<Vec<Membership>, E> {
        let mut members = lock(&self.instance_members);
        if let Some(members) = &*members {
            return Ok(members.clone());
        }
        let loaded = load()?;
        *members = Some(loaded.clone());
        Ok(loaded)
    }

    /// Applies the projection writes of `commit`, which is committed, as SQLite applied them:
    /// a user or org row written whole replaces the kept one, but keeps its creation time (the
    /// upserts do not change `created_us`); one that is not kept is kept only when the commit
    /// created it (appended its aggregate's first event), when the written row *is* the row.
    /// A state change updates the user if it is here (if not, the next read loads the
    /// committed row); a change to the instance's memberships drops them.
    pub(super) fn apply(&self, commit: &Commit) {
        let created = |id: &str| {
            commit
                .events
                .iter()
                .any(|e| e.sequence == 1 && e.aggregate_id == id)
        };
        for write in &commit.writes {
            match write {
                ProjectionWrite::User(user) => {
                    let mut shard = self.shard(&user.id);
                    if let Some(kept) = shard.users.get_mut(&user.id) {
                        *kept = user.replacing(kept);
                    } else if created(&user.id) {
                        put(&mut shard.users, &user.id, user.clone());
                    }
                }
                ProjectionWrite::SetUserState {
                    id,
                    state,
                    sequence,
                    changed_us,
                } => {
                    if let Some(user) = self.shard(id).users.get_mut(id) {
                        user.set_state(*state, *sequence, *changed_us);
                    }
                }
                ProjectionWrite::Org(org) => {
                    let mut shard = self.shard(&org.id);
                    if let Some(kept) = shard.orgs.get_mut(&org.id) {
                        *kept = org.replacing(kept);
                    } else if created(&org.id) {
                        put(&mut shard.orgs, &org.id, org.clone());
                    }
                }
                ProjectionWrite::Member(Membership {
                    scope: MemberScope::Instance,
                    ..
                })
                | ProjectionWrite::RemoveMember {
                    scope: MemberScope::Instance,
                    ..
                } => *lock(&self.instance_members) = None,
                ProjectionWrite::Member(_)
                | ProjectionWrite::RemoveMember { .. }
                | ProjectionWrite::Token(_)
                | ProjectionWrite::RemoveToken { .. } => {}
            }
        }
    }

    /// Forgets the user or org `id` (an aggregate that lost a race).
    pub(super) fn forget(&self, id: &str) {
        let mut shard = self.shard(id);
        shard.users.remove(id);
        shard.orgs.remove(id);
    }

    /// Forgets everything: after a write whose outcome is unknown, or another process's.
    pub(super) fn clear(&self) {
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.users.clear();
            shard.orgs.clear();
        }
        *lock(&self.instance_members) = None;
    }

    /// Clears the cache if another process committed since the last look. `writer` is the
    /// writer connection: its `data_version` moves only on other connections' commits. A
    /// failed look clears too: nothing can be vouched for then.
    pub(super) fn check_external(&self, writer: &rusqlite::Connection) {
        let now = writer
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)))
            .ok();
        let mut seen = lock(&self.data_version);
        if now.is_none() || *seen != now {
            if seen.is_some() {
                self.clear();
            }
            *seen = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::UserState;

    fn user(id: &str, sequence: u64) -> User {
        let mut user = crate::store::suite::human(id, "org1", id, "F", "f@example.com");
        user.sequence = sequence;
        user
    }

    fn added(user: User) -> Commit {
        Commit {
            events: vec![crate::store::suite::event(
                &user.id,
                1,
                crate::domain::event::EventType::HumanAdded,
            )],
            writes: vec![ProjectionWrite::User(user)],
        }
    }

    #[test]
    fn a_row_is_kept_when_its_commit_created_it_and_keeps_its_creation_time() {
        let cache = Cache::new();
        // Written whole but not created here: the row in SQLite may differ (its created_us).
        cache.apply(&Commit {
            events: vec![],
            writes: vec![ProjectionWrite::User(user("u1", 4))],
        });
        assert_eq!(cache.user("u1"), None);
        cache.apply(&added(user("u1", 1)));
        let mut changed = user("u1", 2);
        changed.created_us = 99;
        changed.username = "renamed".into();
        cache.apply(&Commit {
            events: vec![],
            writes: vec![ProjectionWrite::User(changed)],
        });
        let got = cache.user("u1").expect("kept");
        assert_eq!((got.username.as_str(), got.created_us), ("renamed", 1_000));
    }

    #[test]
    fn a_state_change_updates_a_kept_user_and_skips_a_missing_one() {
        let cache = Cache::new();
        cache.apply(&added(user("u1", 1)));
        let change = |id: &str| ProjectionWrite::SetUserState {
            id: id.to_owned(),
            state: UserState::Inactive,
            sequence: 2,
            changed_us: 7,
        };
        cache.apply(&Commit {
            events: vec![],
            writes: vec![change("u1"), change("u2")],
        });
        let got = cache.user("u1").expect("kept");
        assert_eq!(
            (got.state, got.sequence, got.changed_us),
            (UserState::Inactive, 2, 7)
        );
        assert_eq!(cache.user("u2"), None);
    }

    #[test]
    fn a_miss_keeps_what_it_loaded_and_a_later_read_is_a_hit() {
        let cache = Cache::new();
        let loaded = cache
            .load_user("u1", || Ok::<_, ()>(Some(user("u1", 3))))
            .expect("load");
        assert_eq!(loaded.map(|u| u.sequence), Some(3));
        let again = cache
            .load_user("u1", || -> Result<Option<User>, ()> {
                panic!("read again")
            })
            .expect("hit");
        assert_eq!(again.map(|u| u.sequence), Some(3));
        // Absent users are not kept: the next read asks SQLite again.
        assert_eq!(cache.load_user("u9", || Ok::<_, ()>(None)), Ok(None));
        assert_eq!(cache.user("u9"), None);
    }

    #[test]
    fn instance_member_changes_drop_the_kept_list() {
        let cache = Cache::new();
        let kept = cache
            .load_instance_members(|| Ok::<_, ()>(vec![]))
            .expect("load");
        assert!(kept.is_empty());
        assert_eq!(cache.instance_members(), Some(vec![]));
        cache.apply(&Commit {
            events: vec![],
            writes: vec![ProjectionWrite::RemoveMember {
                scope: MemberScope::Instance,
                user_id: "u1".into(),
            }],
        });
        assert_eq!(cache.instance_members(), None);
    }

    #[test]
    fn a_full_shard_makes_room() {
        let cache = Cache::new();
        for i in 0..(SHARDS * PER_SHARD * 2) {
            cache.apply(&added(user(&format!("u{i}"), 1)));
        }
        let kept: usize = cache.shards.iter().map(|s| lock(s).users.len()).sum();
        assert!(kept <= SHARDS * PER_SHARD, "{kept} kept");
    }
}
