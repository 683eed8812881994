//! The PostgreSQL backend: many `serve` processes share one database.
//!
//! Same schema semantics as [`super::sqlite`]: events are unique on (aggregate type, aggregate
//! id, sequence) and a taken sequence is a [`StoreError::VersionConflict`]; the projections
//! (users, orgs, members, tokens) are written in the same transaction, so a read on any node
//! after an acknowledged write sees it. Migrations are embedded and run at start-up under a
//! transaction-scoped advisory lock, so nodes starting at once apply each exactly once.
//!
//! Commits go through a connection pool (deadpool). With group commit on, one committer task
//! collects the commits waiting and writes them in one transaction, a SAVEPOINT around each so
//! that a failing one fails alone; without it, every commit is its own transaction.
//! Connection strings, TLS and server settings are the operator's; TLS is not offered.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Statement};

use super::query::{MemberQuery, UserQuery};
use super::scope::scope_key;
use super::sql::fan_out::{MAX_BATCH, Pending, stopped};
use super::sql::rows::{
    self, EVENTS_OF_AGGREGATE, ORG_BY_ID, SqlRow, TOKEN_BY_HASH, USER_BY_ID, USER_COLUMNS,
    token_columns,
};
use super::sql::search::{Search, member_search, user_search};
use super::sql::{EventRow, UserColumns, encode_roles, export};
use super::{
    Commit, Constraint, EventStore, LogEntry, MemberPage, ProjectionWrite, StoreError, StoredEvent,
    UserPage,
};
use crate::domain::org::{MemberScope, Membership, Org};
use crate::domain::token::PersonalAccessToken;
use crate::domain::user::User;
use group_commit::run_committer;
use migrate::migrate;

/// How a [`PostgresStore`] connects and commits.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections in the pool.
    pub pool_size: usize,
    /// Batch concurrent commits into one transaction (see the module docs).
    pub group_commit: bool,
    /// Use this schema (created if missing) instead of the connection's default search path.
    /// Letters, digits and `_` only. Tests use one schema each.
    pub schema: Option<String>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            group_commit: true,
            schema: None,
        }
    }
}

/// The PostgreSQL event store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    committer: Option<mpsc::Sender<Pending>>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db?...`) with default options and applies
    /// the migrations.
    ///
    /// # Errors
    /// The URL is malformed, the server is unreachable, or a migration fails.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects to `url` with `options` and applies the migrations.
    ///
    /// # Errors
    /// The URL is malformed, the schema name is not a plain identifier, the server is
    /// unreachable, or a migration fails.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::backend(format!("database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if let Some(schema) = &options.schema {
            if schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(StoreError::backend(format!(
                    "schema name {schema:?}: letters, digits and _ only"
                )));
            }
            let prior = config.get_options().unwrap_or_default().to_owned();
            config.options(format!("{prior} -c search_path={schema}"));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .build()
            .map_err(|e| StoreError::backend(format!("connection pool: {e}")))?;
        migrate(&pool, options.schema.as_deref()).await?;
        let committer = options.group_commit.then(|| {
            let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
            tokio::spawn(run_committer(pool.clone(), rx));
            tx
        });
        Ok(Self { pool, committer })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs a rendered search: how many match in all, and the page decoded with `decode`.
    async fn run_search<T>(
        &self,
        search: &Search,
        decode: impl Fn(&dyn SqlRow) -> Result<T, StoreError>,
    ) -> Result<(u64, Vec<T>), StoreError> {
        let args: Vec<_> = search.params.iter().map(query::value).collect();
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.client().await?;
        let total: i64 = client
            .query_one(&search.count, &params)
            .await
            .map_err(backend)?
            .try_get(0)
            .map_err(backend)?;
        let rows = client.query(&search.page, &params).await.map_err(backend)?;
        Ok((total as u64, decode_all(&rows, decode)?))
    }
}

/// A connection the pool could not hand out: the server unreachable (refused, down, starting
/// up or shutting down) is [`StoreError::Unavailable`].
pub(super) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    let context = format!("database connection: {e}");
    match e {
        PoolError::Backend(e) => match backend(e) {
            StoreError::Unavailable { source, .. } => StoreError::Unavailable { context, source },
            StoreError::Full { source, .. } => StoreError::Full { context, source },
            StoreError::Backend { source, .. } => StoreError::Backend { context, source },
            other => other,
        },
        PoolError::Timeout(_) | PoolError::Closed => StoreError::Unavailable {
            context,
            source: None,
        },
        _ => StoreError::backend(context),
    }
}

/// A failure of the server or the connection: the connection lost or refused, and the
/// server's own "not now" answers (class 08 connection exceptions, `57P01` admin shutdown,
/// `57P02` crash shutdown, `57P03` cannot connect now, `53300` too many connections) are
/// [`StoreError::Unavailable`]; `53100` disk full is [`StoreError::Full`]; anything else a
/// backend error. (SQLSTATE list: PostgreSQL's "Appendix A. Error Codes".)
fn backend(e: tokio_postgres::Error) -> StoreError {
    let context = e.to_string();
    let state = e.code().map(SqlState::code);
    let unavailable = e.is_closed()
        // No server answer at all: the socket failed (refused, reset) before or during a call.
        || (e.as_db_error().is_none() && io_cause(&e))
        || state.is_some_and(|c| {
            c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "53300")
        });
    let full = state == Some("53100");
    let source = Some(std::sync::Arc::new(e) as super::BackendSource);
    if full {
        StoreError::Full { context, source }
    } else if unavailable {
        StoreError::Unavailable { context, source }
    } else {
        StoreError::Backend { context, source }
    }
}

/// Whether an I/O error is among the causes of `e`.
fn io_cause(e: &tokio_postgres::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Maps a constraint failure to the domain's meaning; anything else is a backend error.
/// `aggregate` names the event being appended, if any: a lost race on it is a conflict.
fn classify(e: tokio_postgres::Error, aggregate: Option<(&str, u64)>) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let conflict = |(aggregate_id, sequence): (&str, u64)| StoreError::VersionConflict {
            aggregate_id: aggregate_id.to_owned(),
            sequence,
        };
        if *db.code() == SqlState::UNIQUE_VIOLATION {
            match db.constraint() {
                Some("events_aggregate_sequence") => {
                    if let Some(aggregate) = aggregate {
                        return conflict(aggregate);
                    }
                }
                Some(name) => {
                    if let Some(constraint) = Constraint::from_postgres_name(name) {
                        return StoreError::UniqueViolation { constraint };
                    }
                }
                None => {}
            }
        }
        // Two nodes' batches may wait on each other's appends; PostgreSQL breaks the cycle by
        // failing one statement. Its commit lost a race: re-read and decide again.
        if (*db.code() == SqlState::T_R_DEADLOCK_DETECTED
            || *db.code() == SqlState::T_R_SERIALIZATION_FAILURE)
            && let Some(aggregate) = aggregate
        {
            return conflict(aggregate);
        }
    }
    backend(e)
}

/// Appends the events and writes the projections of `commit` inside `tx`.
/// The statements a commit writes with; [`prepare_writes`] prepares them all up front.
const INSERT_EVENT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, payload, \
                 resource_owner, creator, created_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const UPSERT_USER: &str = "INSERT INTO users (id, resource_owner, username, username_key, state, is_human, \
                     first_name, last_name, nick_name, display_name, email, data, password_hash, \
                     sequence, created_us, changed_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                     ON CONFLICT (id) DO UPDATE SET resource_owner = excluded.resource_owner, \
                     username = excluded.username, username_key = excluded.username_key, \
                     state = excluded.state, is_human = excluded.is_human, \
                     first_name = excluded.first_name, last_name = excluded.last_name, \
                     nick_name = excluded.nick_name, display_name = excluded.display_name, \
                     email = excluded.email, data = excluded.data, \
                     password_hash = excluded.password_hash, sequence = excluded.sequence, \
                     changed_us = excluded.changed_us";
const SET_USER_STATE: &str =
    "UPDATE users SET state = $2, sequence = $3, changed_us = $4 WHERE id = $1";
const UPSERT_ORG: &str = "INSERT INTO orgs (id, name, name_key, primary_domain, sequence, created_us, changed_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_key = excluded.name_key, \
                     primary_domain = excluded.primary_domain, sequence = excluded.sequence, \
                     changed_us = excluded.changed_us";
const UPSERT_MEMBER: &str = "INSERT INTO members (scope, user_id, roles) VALUES ($1, $2, $3) \
                     ON CONFLICT (scope, user_id) DO UPDATE SET roles = excluded.roles";
const DELETE_MEMBER: &str = "DELETE FROM members WHERE scope = $1 AND user_id = $2";
const DELETE_TOKEN: &str = "DELETE FROM tokens WHERE id = $1";
const INSERT_TOKEN: &str = "INSERT INTO tokens (id, user_id, resource_owner, hash, expiration_us, created_us) \
                     VALUES ($1, $2, $3, $4, $5, $6)";
const WRITE_STATEMENTS: [&str; 8] = [
    INSERT_EVENT,
    UPSERT_USER,
    SET_USER_STATE,
    UPSERT_ORG,
    UPSERT_MEMBER,
    DELETE_MEMBER,
    DELETE_TOKEN,
    INSERT_TOKEN,
];

/// The prepared statements a commit writes with, in the order of [`WRITE_STATEMENTS`].
pub(super) struct Writes {
    insert_event: Statement,
    upsert_user: Statement,
    set_user_state: Statement,
    upsert_org: Statement,
    upsert_member: Statement,
    delete_member: Statement,
    delete_token: Statement,
    insert_token: Statement,
}

/// Prepares every statement a commit may write with (a cache hit once this connection used
/// them). With them in hand, a commit sends its statements without awaiting anything in
/// between, so they leave in order — what pipelining them relies on.
///
/// # Errors
/// A statement the server cannot prepare.
pub(super) async fn prepare_writes(tx: &Transaction<'_>) -> Result<Writes, StoreError> {
    let mut prepared = Vec::with_capacity(WRITE_STATEMENTS.len());
    for sql in WRITE_STATEMENTS {
        prepared.push(tx.prepare_cached(sql).await.map_err(backend)?);
    }
    let mut next = prepared.into_iter();
    let mut take = || {
        next.next()
            .ok_or_else(|| StoreError::backend("statement missing".to_owned()))
    };
    Ok(Writes {
        insert_event: take()?,
        upsert_user: take()?,
        set_user_state: take()?,
        upsert_org: take()?,
        upsert_member: take()?,
        delete_member: take()?,
        delete_token: take()?,
        insert_token: take()?,
    })
}

/// Appends one event; its (aggregate, sequence) taken is a [`StoreError::VersionConflict`].
async fn insert_event(
    tx: &Transaction<'_>,
    writes_with: &Writes,
    event: EventRow<'_>,
) -> Result<(), StoreError> {
    tx.execute(
        &writes_with.insert_event,
        &[
            &event.aggregate_type,
            &event.aggregate_id,
            &(event.sequence as i64),
            &event.event_type,
            event.payload,
            &event.resource_owner,
            &event.creator,
            &event.created_us,
        ],
    )
    .await
    .map(|_| ())
    .map_err(|e| classify(e, Some((event.aggregate_id, event.sequence))))
}

async fn apply_commit(
    tx: &Transaction<'_>,
    writes_with: &Writes,
    commit: &Commit,
) -> Result<(), StoreError> {
    let first = commit
        .events
        .first()
        .map(|e| (e.aggregate_id.as_str(), e.sequence));
    // Pipelined: every statement is sent before the first answer is awaited (futures polled in
    // order send in order); PostgreSQL runs them in order and, after a failure, rejects the
    // rest, so the first error in statement order is the one that says what went wrong.
    let events = commit
        .events
        .iter()
        .map(|event| insert_event(tx, writes_with, EventRow::from(event)));
    let writes = commit
        .writes
        .iter()
        .map(|write| write_projection(tx, writes_with, write, first));
    let (events, writes) = futures_util::future::join(
        futures_util::future::join_all(events),
        futures_util::future::join_all(writes),
    )
    .await;
    events.into_iter().chain(writes).collect()
}

async fn write_projection(
    tx: &Transaction<'_>,
    writes_with: &Writes,
    write: &ProjectionWrite,
    aggregate: Option<(&str, u64)>,
) -> Result<(), StoreError> {
    let classify = |e| classify(e, aggregate);
    match write {
        ProjectionWrite::User(user) => {
            let UserColumns {
                is_human,
                first_name: first,
                last_name: last,
                nick_name: nick,
                email,
                data,
            } = UserColumns::of(user)?;
            let stmt = &writes_with.upsert_user;
            tx.execute(
                stmt,
                &[
                    &user.id,
                    &user.resource_owner,
                    &user.username,
                    &user.username.to_lowercase(),
                    &user.state.as_str(),
                    &is_human,
                    &first,
                    &last,
                    &nick,
                    &user.display_name(),
                    &email,
                    &data,
                    &user.password_hash,
                    &(user.sequence as i64),
                    &user.created_us,
                    &user.changed_us,
                ],
            )
            .await
            .map_err(classify)?;
        }
        ProjectionWrite::SetUserState {
            id,
            state,
            sequence,
            changed_us,
        } => {
            let changed = tx
                .execute(
                    &writes_with.set_user_state,
                    &[id, &state.as_str(), &(*sequence as i64), changed_us],
                )
                .await
                .map_err(classify)?;
            if changed != 1 {
                return Err(StoreError::backend(format!(
                    "no user row {id} to set the state of"
                )));
            }
        }
        ProjectionWrite::Org(org) => {
            let stmt = &writes_with.upsert_org;
            tx.execute(
                stmt,
                &[
                    &org.id,
                    &org.name,
                    &org.name.to_lowercase(),
                    &org.primary_domain,
                    &(org.sequence as i64),
                    &org.created_us,
                    &org.changed_us,
                ],
            )
            .await
            .map_err(classify)?;
        }
        ProjectionWrite::Member(member) => {
            let roles = encode_roles(&member.roles)?;
            let stmt = &writes_with.upsert_member;
            tx.execute(stmt, &[&scope_key(&member.scope), &member.user_id, &roles])
                .await
                .map_err(classify)?;
        }
        ProjectionWrite::RemoveMember { scope, user_id } => {
            let stmt = &writes_with.delete_member;
            tx.execute(stmt, &[&scope_key(scope), user_id])
                .await
                .map_err(classify)?;
        }
        ProjectionWrite::RemoveToken { id } => {
            let stmt = &writes_with.delete_token;
            tx.execute(stmt, &[id]).await.map_err(classify)?;
        }
        ProjectionWrite::Token(token) => {
            let stmt = &writes_with.insert_token;
            tx.execute(
                stmt,
                &[
                    &token.id,
                    &token.user_id,
                    &token.resource_owner,
                    &&token.hash[..],
                    &token.expiration_us,
                    &token.created_us,
                ],
            )
            .await
            .map_err(classify)?;
        }
    }
    Ok(())
}

impl SqlRow for Row {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.try_get(i).map_err(backend)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.try_get(i).map_err(backend)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.try_get(i).map_err(backend)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.try_get(i).map_err(backend)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        self.try_get(i).map_err(backend)
    }
    fn json(&self, i: usize) -> Result<serde_json::Value, StoreError> {
        self.try_get(i).map_err(backend)
    }
}

const TOKENS_OF_USER: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM tokens WHERE user_id = $1 ORDER BY created_us, id COLLATE \"C\""
);

/// Decodes every row of `rows` with `decode`.
fn decode_all<T>(
    rows: &[Row],
    decode: impl Fn(&dyn SqlRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(|row| decode(row)).collect()
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        if let Some(committer) = &self.committer {
            let (pending, answer) = Pending::new(commit);
            committer.send(pending).await.map_err(|_| stopped())?;
            return answer.wait().await;
        }
        let started = std::time::Instant::now();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let writes_with = prepare_writes(&tx).await?;
        apply_commit(&tx, &writes_with, &commit).await?;
        tx.commit().await.map_err(backend)?;
        super::stats::record(started.elapsed(), 1);
        Ok(())
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(USER_BY_ID).await.map_err(backend)?;
        client
            .query_opt(&stmt, &[&id])
            .await
            .map_err(backend)?
            .map(|row| rows::user(&row))
            .transpose()
    }

    async fn list_users(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        let search = user_search::<query::Postgres>(query, USER_COLUMNS);
        let (total, users) = self.run_search(&search, rows::user).await?;
        Ok(UserPage { users, total })
    }

    async fn list_members(&self, query: &MemberQuery) -> Result<MemberPage, StoreError> {
        let search = member_search::<query::Postgres>(query);
        let (total, members) = self.run_search(&search, rows::member_with_user).await?;
        Ok(MemberPage { members, total })
    }

    async fn org(&self, id: &str) -> Result<Option<Org>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(ORG_BY_ID).await.map_err(backend)?;
        client
            .query_opt(&stmt, &[&id])
            .await
            .map_err(backend)?
            .map(|row| rows::org(&row))
            .transpose()
    }

    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT scope, user_id, roles FROM members WHERE user_id = $1 ORDER BY scope",
            )
            .await
            .map_err(backend)?;
        let rows = client.query(&stmt, &[&user_id]).await.map_err(backend)?;
        decode_all(&rows, rows::member)
    }

    async fn token_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<PersonalAccessToken>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(TOKEN_BY_HASH)
            .await
            .map_err(backend)?;
        client
            .query_opt(&stmt, &[&&hash[..]])
            .await
            .map_err(backend)?
            .map(|row| rows::token(&row))
            .transpose()
    }

    async fn members(&self, scope: &MemberScope) -> Result<Vec<Membership>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT scope, user_id, roles FROM members WHERE scope = $1 \
                 ORDER BY user_id COLLATE \"C\"",
            )
            .await
            .map_err(backend)?;
        let rows = client
            .query(&stmt, &[&scope_key(scope)])
            .await
            .map_err(backend)?;
        decode_all(&rows, rows::member)
    }

    async fn tokens(&self, user_id: &str) -> Result<Vec<PersonalAccessToken>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(TOKENS_OF_USER)
            .await
            .map_err(backend)?;
        let rows = client.query(&stmt, &[&user_id]).await.map_err(backend)?;
        decode_all(&rows, rows::token)
    }

    async fn has_orgs(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        client
            .query_one("SELECT EXISTS (SELECT 1 FROM orgs)", &[])
            .await
            .map_err(backend)?
            .try_get(0)
            .map_err(backend)
    }

    async fn events(&self, aggregate_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(EVENTS_OF_AGGREGATE)
            .await
            .map_err(backend)?;
        let rows = client
            .query(&stmt, &[&aggregate_id])
            .await
            .map_err(backend)?;
        decode_all(&rows, rows::event)
    }

    async fn log(&self, after: i64, limit: u32) -> Result<Vec<LogEntry>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(export::LOG_PAGE)
            .await
            .map_err(backend)?;
        let rows = client
            .query(&stmt, &[&after, &i64::from(limit)])
            .await
            .map_err(backend)?;
        decode_all(&rows, rows::log_entry)
    }

    async fn projections(&self) -> Result<Vec<ProjectionWrite>, StoreError> {
        let client = self.client().await?;
        let mut out = Vec::new();
        for (sql, decode) in export::projection_reads::<query::Postgres>() {
            let rows = client.query(&sql, &[]).await.map_err(backend)?;
            out.extend(decode_all(&rows, |row| decode(row))?);
        }
        Ok(out)
    }

    async fn import(
        &self,
        entries: &[LogEntry],
        writes: &[ProjectionWrite],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let writes_with = prepare_writes(&tx).await?;
        for entry in entries {
            insert_event(&tx, &writes_with, EventRow::from(entry)).await?;
        }
        for write in writes {
            write_projection(&tx, &writes_with, write, None).await?;
        }
        tx.commit().await.map_err(backend)
    }
}

mod group_commit;
mod migrate;
mod query;
#[cfg(test)]
mod tests;
