//! The embedded SQLite backend: one file in the data directory, WAL mode with a full fsync on
//! every commit, so an acknowledged write survives `kill -9` and power loss.
//!
//! rusqlite is synchronous: every call runs on tokio's blocking pool. One writer connection
//! serialises commits (SQLite allows one writer anyway); a few reader connections serve reads
//! concurrently with it, which WAL permits. With group commit (the default) one writer thread
//! commits everything waiting in one fsync'd transaction ([`group_commit`]), and keeps the
//! write model of what it committed ([`cache`]): a command's point reads need no SQL.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, Row};

use super::query::{MemberQuery, UserQuery};
use super::scope::scope_key;
use super::sql::rows::{
    self, EVENTS_OF_AGGREGATE, ORG_BY_ID, SqlRow, TOKEN_BY_HASH, USER_BY_ID, USER_COLUMNS,
    token_columns,
};
use super::sql::search::{Search, member_search, user_search};
use super::{
    Commit, Constraint, EventStore, LogEntry, MemberPage, ProjectionWrite, StoreError, StoredEvent,
    UserPage,
};
use crate::domain::org::{MemberScope, Membership, Org};
use crate::domain::token::PersonalAccessToken;
use crate::domain::user::User;

const READERS: usize = 4;
/// Prepared statements kept per connection: more than the write and read paths use.
const STATEMENT_CACHE: usize = 64;

const SCHEMA: &str = r#"
-- position is the rowid: SQLite gives each new row the largest position + 1, and events are
-- never deleted, so positions only grow (AUTOINCREMENT would add a write of sqlite_sequence to
-- every append; files made with it keep it).
CREATE TABLE IF NOT EXISTS events (
    position        INTEGER PRIMARY KEY,
    aggregate_type  TEXT    NOT NULL,
    aggregate_id    TEXT    NOT NULL,
    sequence        INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    resource_owner  TEXT    NOT NULL,
    creator         TEXT    NOT NULL,
    created_us      INTEGER NOT NULL,
    UNIQUE (aggregate_type, aggregate_id, sequence)
);
CREATE TABLE IF NOT EXISTS orgs (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL UNIQUE,
    primary_domain  TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    created_us      INTEGER NOT NULL,
    changed_us      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id              TEXT PRIMARY KEY,
    resource_owner  TEXT NOT NULL,
    username        TEXT NOT NULL,
    -- The user name lowercased; for a removed user 'DELETED:<id>' (see USERNAME_INDEX).
    username_key    TEXT NOT NULL,
    state           TEXT NOT NULL,
    is_human        INTEGER NOT NULL,
    first_name      TEXT NOT NULL,
    last_name       TEXT NOT NULL,
    nick_name       TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    email           TEXT NOT NULL,
    data            TEXT NOT NULL,
    password_hash   TEXT,
    sequence        INTEGER NOT NULL,
    created_us      INTEGER NOT NULL,
    changed_us      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS users_owner ON users (resource_owner, created_us);
CREATE TABLE IF NOT EXISTS members (
    scope           TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    roles           TEXT NOT NULL,
    PRIMARY KEY (scope, user_id)
);
CREATE INDEX IF NOT EXISTS members_user ON members (user_id);
CREATE TABLE IF NOT EXISTS tokens (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    resource_owner  TEXT NOT NULL,
    hash            BLOB NOT NULL UNIQUE,
    expiration_us   INTEGER,
    created_us      INTEGER NOT NULL
);
"#;

/// User names are unique in the instance while the user exists: a removed user frees its name
/// because its key becomes `DELETED:<id>`, which no lowercased name can equal (it has capitals).
/// The index covers every row and names no other column, so a state change (most commands)
/// does not touch it; it used to be partial (`WHERE state <> 'deleted'`), which made every
/// UPDATE of `state` check, delete and re-insert the user's index entry. [`migrate`] turns a
/// file with the old index into this form once.
const USERNAME_INDEX: &str = "CREATE UNIQUE INDEX users_username_key ON users (username_key)";

/// The schema version this code writes (`PRAGMA user_version`): 1 is [`USERNAME_INDEX`].
const SCHEMA_VERSION: i64 = 1;

/// Brings the schema of an existing or new file to [`SCHEMA_VERSION`], in one transaction that
/// holds the write lock, so two processes opening one file migrate it once.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version = |conn: &Connection| -> Result<i64, StoreError> {
        conn.query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(backend)
    };
    if version(conn)? >= SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
    let result = (|| {
        if version(conn)? >= SCHEMA_VERSION {
            return Ok(());
        }
        conn.execute_batch(&format!(
            "UPDATE users SET username_key = 'DELETED:' || id WHERE state = 'deleted';              DROP INDEX IF EXISTS users_username_key; {USERNAME_INDEX};              PRAGMA user_version = {SCHEMA_VERSION};"
        ))
        .map_err(backend)
    })()
    .and_then(|()| conn.execute_batch("COMMIT").map_err(backend));
    if result.is_err() {
        write::rollback(conn);
    }
    result
}

/// The SQLite event store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// How a [`SqliteStore`] commits.
#[derive(Debug, Clone, Copy)]
pub struct SqliteOptions {
    /// Batch concurrent commits into one fsync'd transaction; otherwise one per commit.
    pub group_commit: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { group_commit: true }
    }
}

struct Inner {
    writer: Arc<Mutex<Connection>>,
    committer: Option<group_commit::Committer>,
    /// Kept by the writer thread, so only with group commit (see [`cache`]).
    cache: Option<Arc<cache::Cache>>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl SqliteStore {
    /// Opens (creating if needed) the store file at `path` and migrates its schema.
    ///
    /// # Errors
    /// The file cannot be opened or the schema cannot be applied.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if needed) the store file at `path` with `options`.
    ///
    /// # Errors
    /// The file cannot be opened, the schema cannot be applied, or the writer thread cannot
    /// be started.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        let writer = open_connection(path)?;
        writer.execute_batch(SCHEMA).map_err(backend)?;
        migrate(&writer)?;
        let readers = (0..READERS)
            .map(|_| open_connection(path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let writer = Arc::new(Mutex::new(writer));
        let (committer, cache) = if options.group_commit {
            let cache = Arc::new(cache::Cache::new());
            let committer =
                group_commit::Committer::start(Arc::clone(&writer), Arc::clone(&cache))?;
            (Some(committer), Some(cache))
        } else {
            (None, None)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                committer,
                cache,
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    /// Runs a read that may take long (a search, an export page) on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        run_blocking(move || {
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let conn = lock(&inner.readers[i]);
            f(&conn)
        })
        .await
    }

    /// Runs a point read (one row, or a few, by an indexed key) right here on the calling task
    /// when a reader connection is free. Such a read costs a few microseconds in pages the OS
    /// caches: less than handing it to the blocking pool and back, two thread switches. Only
    /// when every reader is busy does it go to the blocking pool.
    async fn point_read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = &self.inner.readers;
        let start = self.inner.next_reader.fetch_add(1, Ordering::Relaxed);
        for k in 0..readers.len() {
            match readers[(start + k) % readers.len()].try_lock() {
                Ok(conn) => return f(&conn),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                    return f(&poisoned.into_inner());
                }
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        self.read(f).await
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(backend)?;
    // WAL: readers never block the writer. synchronous=FULL: every commit is fsync'd before we
    // acknowledge it. busy_timeout: other processes on the same file wait instead of failing.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(backend)?;
    // Room for every statement of the write and read paths, so none is ever parsed again.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    // A panic while holding the lock leaves the connection usable: SQLite rolls back any open
    // transaction when the statement or transaction object is dropped.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn run_blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::driver("store task failed", e))?
}

/// A failure of SQLite, by its primary result code: a full disk (`SQLITE_FULL`, whatever
/// statement hit it: an insert, the `COMMIT`, a WAL frame) is [`StoreError::Full`], the file
/// locked by another process past the busy timeout [`StoreError::Unavailable`], anything else
/// a backend error.
fn backend(e: rusqlite::Error) -> StoreError {
    let code = e.sqlite_error_code();
    let context = e.to_string();
    let source = Some(Arc::new(e) as super::BackendSource);
    match code {
        Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full { context, source },
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable { context, source }
        }
        _ => StoreError::Backend { context, source },
    }
}

/// What a unique violation of a statement means. The statement decides: each writes a table
/// where exactly one unique value can be taken (SQLite names the index only in its message
/// text, which is not an interface).
#[derive(Debug, Clone, Copy)]
pub(super) enum OnUnique<'a> {
    /// Appending this event: the (aggregate, sequence) is taken, a lost race.
    Conflict(&'a str, u64),
    /// Writing a row whose only unique value that can clash is this one.
    Taken(Constraint),
}

/// Maps a unique violation (by SQLite's extended result code) to the domain's meaning;
/// anything else is a backend error.
fn classify(e: rusqlite::Error, on_unique: OnUnique<'_>) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, _) = &e
        && matches!(
            code.extended_code,
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )
    {
        return match on_unique {
            OnUnique::Conflict(aggregate_id, sequence) => StoreError::VersionConflict {
                aggregate_id: aggregate_id.to_owned(),
                sequence,
            },
            OnUnique::Taken(constraint) => StoreError::UniqueViolation { constraint },
        };
    }
    backend(e)
}

impl SqlRow for Row<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.get(i).map_err(backend)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.get(i).map_err(backend)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.get(i).map_err(backend)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.get(i).map_err(backend)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        self.get(i).map_err(backend)
    }
    fn json(&self, i: usize) -> Result<serde_json::Value, StoreError> {
        // Stored as text.
        let text: String = self.get(i).map_err(backend)?;
        serde_json::from_str(&text).map_err(|e| StoreError::backend(format!("decode payload: {e}")))
    }
}

/// Runs the cached statement `sql` with `params` and decodes every row with `decode`.
fn query<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&dyn SqlRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let mut rows = stmt.query(params).map_err(backend)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// Runs the cached statement `sql` with `params` and decodes its first row, if any.
fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&dyn SqlRow) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let mut rows = stmt.query(params).map_err(backend)?;
    rows.next()
        .map_err(backend)?
        .map(|row| decode(row))
        .transpose()
}

/// Runs a rendered search: how many match in all, and the page decoded with `decode`.
fn run_search<T>(
    conn: &Connection,
    search: &Search,
    decode: impl Fn(&dyn SqlRow) -> Result<T, StoreError>,
) -> Result<(u64, Vec<T>), StoreError> {
    let params: Vec<rusqlite::types::Value> = search.params.iter().map(search::value).collect();
    let total: i64 = conn
        .query_row(
            &search.count,
            rusqlite::params_from_iter(params.iter()),
            |row| row.get(0),
        )
        .map_err(backend)?;
    let page = query(
        conn,
        &search.page,
        rusqlite::params_from_iter(params.iter()),
        decode,
    )?;
    Ok((total as u64, page))
}

const TOKENS_OF_USER: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM tokens WHERE user_id = ?1 ORDER BY created_us, id"
);

fn read_user(conn: &Connection, id: &str) -> Result<Option<User>, StoreError> {
    query_opt(conn, USER_BY_ID, [id], rows::user)
}

fn read_org(conn: &Connection, id: &str) -> Result<Option<Org>, StoreError> {
    query_opt(conn, ORG_BY_ID, [id], rows::org)
}

fn read_members(conn: &Connection, scope: &MemberScope) -> Result<Vec<Membership>, StoreError> {
    query(
        conn,
        "SELECT scope, user_id, roles FROM members WHERE scope = ?1 ORDER BY user_id",
        [scope_key(scope)],
        rows::member,
    )
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        if let Some(committer) = &self.inner.committer {
            return committer.submit(commit).await;
        }
        let inner = Arc::clone(&self.inner);
        run_blocking(move || {
            let conn = lock(&inner.writer);
            let started = std::time::Instant::now();
            write::transaction(&conn, |conn| write::append(conn, &commit))?;
            super::stats::record(started.elapsed(), 1);
            Ok(())
        })
        .await
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        match &self.inner.cache {
            Some(cache) => {
                if let Some(user) = cache.user(id) {
                    return Ok(Some(user));
                }
                let (cache, id) = (Arc::clone(cache), id.to_owned());
                self.point_read(move |conn| cache.load_user(&id, || read_user(conn, &id)))
                    .await
            }
            None => {
                let id = id.to_owned();
                self.point_read(move |conn| read_user(conn, &id)).await
            }
        }
    }

    async fn list_users(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        let search = user_search::<search::Sqlite>(query, USER_COLUMNS);
        let (total, users) = self
            .read(move |conn| run_search(conn, &search, rows::user))
            .await?;
        Ok(UserPage { users, total })
    }

    async fn org(&self, id: &str) -> Result<Option<Org>, StoreError> {
        match &self.inner.cache {
            Some(cache) => {
                if let Some(org) = cache.org(id) {
                    return Ok(Some(org));
                }
                let (cache, id) = (Arc::clone(cache), id.to_owned());
                self.point_read(move |conn| cache.load_org(&id, || read_org(conn, &id)))
                    .await
            }
            None => {
                let id = id.to_owned();
                self.point_read(move |conn| read_org(conn, &id)).await
            }
        }
    }

    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, StoreError> {
        let user_id = user_id.to_owned();
        self.point_read(move |conn| {
            query(
                conn,
                "SELECT scope, user_id, roles FROM members WHERE user_id = ?1",
                [&user_id],
                rows::member,
            )
        })
        .await
    }

    async fn token_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<PersonalAccessToken>, StoreError> {
        let hash = *hash;
        self.point_read(move |conn| query_opt(conn, TOKEN_BY_HASH, [&hash[..]], rows::token))
            .await
    }

    async fn tokens(&self, user_id: &str) -> Result<Vec<PersonalAccessToken>, StoreError> {
        let user_id = user_id.to_owned();
        self.point_read(move |conn| query(conn, TOKENS_OF_USER, [&user_id], rows::token))
            .await
    }

    async fn members(&self, scope: &MemberScope) -> Result<Vec<Membership>, StoreError> {
        if let (MemberScope::Instance, Some(cache)) = (scope, &self.inner.cache) {
            if let Some(members) = cache.instance_members() {
                return Ok(members);
            }
            let cache = Arc::clone(cache);
            return self
                .point_read(move |conn| {
                    cache.load_instance_members(|| read_members(conn, &MemberScope::Instance))
                })
                .await;
        }
        let scope = scope.clone();
        self.point_read(move |conn| read_members(conn, &scope))
            .await
    }

    async fn list_members(&self, query: &MemberQuery) -> Result<MemberPage, StoreError> {
        let search = member_search::<search::Sqlite>(query);
        let (total, members) = self
            .read(move |conn| run_search(conn, &search, rows::member_with_user))
            .await?;
        Ok(MemberPage { members, total })
    }

    async fn has_orgs(&self) -> Result<bool, StoreError> {
        self.point_read(|conn| {
            conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM orgs)")
                .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
                .map_err(backend)
        })
        .await
    }

    async fn events(&self, aggregate_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let aggregate_id = aggregate_id.to_owned();
        self.read(move |conn| query(conn, EVENTS_OF_AGGREGATE, [&aggregate_id], rows::event))
            .await
    }

    async fn log(&self, after: i64, limit: u32) -> Result<Vec<LogEntry>, StoreError> {
        self.read(move |conn| export::log(conn, after, limit)).await
    }

    async fn projections(&self) -> Result<Vec<ProjectionWrite>, StoreError> {
        self.read(export::projections).await
    }

    async fn import(
        &self,
        entries: &[LogEntry],
        writes: &[ProjectionWrite],
    ) -> Result<(), StoreError> {
        let (entries, writes) = (entries.to_vec(), writes.to_vec());
        let inner = Arc::clone(&self.inner);
        run_blocking(move || {
            let result = export::import(&lock(&inner.writer), &entries, &writes);
            // Whatever the outcome, the rows are not the write model's any more.
            if let Some(cache) = &inner.cache {
                cache.clear();
            }
            result
        })
        .await
    }
}

mod cache;
mod export;
mod group_commit;
mod search;
#[cfg(test)]
mod tests;
mod write;
