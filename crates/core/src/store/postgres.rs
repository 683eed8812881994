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
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::query::{TextMatch, TextMethod, UserFilter, UserQuery, UserSort};
use super::{Commit, EventStore, LogEntry, ProjectionWrite, StoreError, StoredEvent, UserPage};
use crate::domain::org::{MemberScope, Membership, Org};
use crate::domain::token::PersonalAccessToken;
use crate::domain::user::{User, UserKind, UserState};

/// Default and maximum page sizes of a user search, as ZITADEL's defaults.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
/// The most commits one group-commit transaction takes.
const MAX_BATCH: usize = 256;
/// Key of the advisory lock that serialises migrations across nodes ("swyd" in ASCII).
const MIGRATION_LOCK: i64 = 0x7377_7964;

/// Embedded migrations, applied in order, each once (recorded in `switchyard_migrations`).
/// Never edit a released one: append a new one.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    r#"
CREATE TABLE events (
    position        BIGSERIAL PRIMARY KEY,
    aggregate_type  TEXT   NOT NULL,
    aggregate_id    TEXT   NOT NULL,
    sequence        BIGINT NOT NULL,
    event_type      TEXT   NOT NULL,
    payload         JSONB  NOT NULL,
    resource_owner  TEXT   NOT NULL,
    creator         TEXT   NOT NULL,
    created_us      BIGINT NOT NULL,
    CONSTRAINT events_aggregate_sequence UNIQUE (aggregate_type, aggregate_id, sequence)
);
CREATE INDEX events_aggregate_id ON events (aggregate_id, sequence);
CREATE TABLE orgs (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    primary_domain  TEXT NOT NULL,
    sequence        BIGINT NOT NULL,
    created_us      BIGINT NOT NULL,
    changed_us      BIGINT NOT NULL,
    CONSTRAINT orgs_name_key UNIQUE (name_key)
);
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    resource_owner  TEXT    NOT NULL,
    username        TEXT    NOT NULL,
    username_key    TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    is_human        BOOLEAN NOT NULL,
    first_name      TEXT    NOT NULL,
    last_name       TEXT    NOT NULL,
    nick_name       TEXT    NOT NULL,
    display_name    TEXT    NOT NULL,
    email           TEXT    NOT NULL,
    data            TEXT    NOT NULL,
    password_hash   TEXT,
    sequence        BIGINT  NOT NULL,
    created_us      BIGINT  NOT NULL,
    changed_us      BIGINT  NOT NULL
);
-- User names are unique in the instance while the user exists (a removed user frees its name).
CREATE UNIQUE INDEX users_username_key ON users (username_key) WHERE state <> 'deleted';
CREATE INDEX users_owner ON users (resource_owner, created_us);
CREATE TABLE members (
    scope           TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    roles           TEXT NOT NULL,
    PRIMARY KEY (scope, user_id)
);
CREATE INDEX members_user ON members (user_id);
CREATE TABLE tokens (
    id              TEXT PRIMARY KEY,
    user_id         TEXT   NOT NULL,
    resource_owner  TEXT   NOT NULL,
    hash            BYTEA  NOT NULL UNIQUE,
    expiration_us   BIGINT,
    created_us      BIGINT NOT NULL
);
"#,
)];

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

/// A commit waiting for the group committer, with where to send its own result.
struct Pending {
    commit: Commit,
    reply: oneshot::Sender<Result<(), StoreError>>,
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
            .map_err(|e| StoreError::Backend(format!("database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if let Some(schema) = &options.schema {
            if schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(StoreError::Backend(format!(
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
            .map_err(|e| StoreError::Backend(format!("connection pool: {e}")))?;
        migrate(&pool, options.schema.as_deref()).await?;
        let committer = options.group_commit.then(|| {
            let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
            tokio::spawn(run_committer(pool.clone(), rx));
            tx
        });
        Ok(Self { pool, committer })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("database connection: {e}")))
    }
}

/// Applies the migrations not yet applied, holding the migration advisory lock for the whole
/// transaction so that concurrent starts apply each exactly once.
async fn migrate(pool: &Pool, schema: Option<&str>) -> Result<(), StoreError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| StoreError::Backend(format!("database connection: {e}")))?;
    let tx = client.transaction().await.map_err(backend)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(backend)?;
    if let Some(schema) = schema {
        // Checked to be a plain identifier by the caller.
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .map_err(backend)?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS switchyard_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(backend)?;
    for (version, sql) in MIGRATIONS {
        let applied = tx
            .query_opt(
                "SELECT 1 FROM switchyard_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(backend)?
            .is_some();
        if applied {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|e| StoreError::Backend(format!("migration {version}: {e}")))?;
        tx.execute(
            "INSERT INTO switchyard_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(backend)?;
        tracing::info!(version, "applied database migration");
    }
    tx.commit().await.map_err(backend)
}

/// The group committer: takes what is waiting (up to [`MAX_BATCH`]), commits it as one
/// transaction, answers each, repeats. Ends when every store handle is dropped.
async fn run_committer(pool: Pool, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&pool, std::mem::take(&mut batch)).await;
    }
}

async fn commit_batch(pool: &Pool, batch: Vec<Pending>) {
    let started = std::time::Instant::now();
    let size = batch.len();
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(e) => {
            let message = format!("database connection: {e}");
            for pending in batch {
                let _ = pending
                    .reply
                    .send(Err(StoreError::Backend(message.clone())));
            }
            return;
        }
    };
    let mut tx = match client.transaction().await {
        Ok(tx) => tx,
        Err(e) => {
            let message = e.to_string();
            for pending in batch {
                let _ = pending
                    .reply
                    .send(Err(StoreError::Backend(message.clone())));
            }
            return;
        }
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    for pending in batch {
        let outcome = apply_in_savepoint(&mut tx, &pending.commit).await;
        outcomes.push((pending, outcome));
    }
    match tx.commit().await {
        Ok(()) => {
            super::stats::record(started.elapsed(), size);
            for (pending, outcome) in outcomes {
                let _ = pending.reply.send(outcome);
            }
        }
        Err(e) => {
            // Nothing of the batch is kept: those that had succeeded fail now.
            let message = e.to_string();
            for (pending, outcome) in outcomes {
                let _ = pending
                    .reply
                    .send(outcome.and(Err(StoreError::Backend(message.clone()))));
            }
        }
    }
}

/// One commit of a batch inside its own SAVEPOINT: on failure only it is rolled back.
async fn apply_in_savepoint(tx: &mut Transaction<'_>, commit: &Commit) -> Result<(), StoreError> {
    let savepoint = tx.savepoint("sy_commit").await.map_err(backend)?;
    match apply_commit(&savepoint, commit).await {
        Ok(()) => savepoint.commit().await.map_err(backend),
        Err(e) => {
            savepoint.rollback().await.map_err(backend)?;
            Err(e)
        }
    }
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(e.to_string())
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
                Some("users_username_key") => {
                    return StoreError::UniqueViolation {
                        constraint: "username",
                    };
                }
                Some("orgs_name_key") => {
                    return StoreError::UniqueViolation {
                        constraint: "org_name",
                    };
                }
                _ => {}
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

fn scope_key(scope: &MemberScope) -> String {
    match scope {
        MemberScope::Instance => "instance".to_owned(),
        MemberScope::Org(id) => format!("org:{id}"),
    }
}

fn parse_scope(key: &str) -> Option<MemberScope> {
    if key == "instance" {
        Some(MemberScope::Instance)
    } else {
        key.strip_prefix("org:")
            .map(|id| MemberScope::Org(id.to_owned()))
    }
}

/// Appends the events and writes the projections of `commit` inside `tx`.
async fn apply_commit(tx: &Transaction<'_>, commit: &Commit) -> Result<(), StoreError> {
    let first = commit
        .events
        .first()
        .map(|e| (e.aggregate_id.as_str(), e.sequence));
    if !commit.events.is_empty() {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, payload, \
                 resource_owner, creator, created_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .await
            .map_err(backend)?;
        for event in &commit.events {
            tx.execute(
                &stmt,
                &[
                    &event.aggregate_type.as_str(),
                    &event.aggregate_id,
                    &(event.sequence as i64),
                    &event.event_type.as_str(),
                    &event.payload,
                    &event.resource_owner,
                    &event.creator,
                    &event.created_us,
                ],
            )
            .await
            .map_err(|e| classify(e, Some((&event.aggregate_id, event.sequence))))?;
        }
    }
    for write in &commit.writes {
        write_projection(tx, write, first).await?;
    }
    Ok(())
}

async fn write_projection(
    tx: &Transaction<'_>,
    write: &ProjectionWrite,
    aggregate: Option<(&str, u64)>,
) -> Result<(), StoreError> {
    let classify = |e| classify(e, aggregate);
    match write {
        ProjectionWrite::User(user) => {
            let (is_human, first, last, nick, email) = match &user.kind {
                UserKind::Human(h) => (
                    true,
                    h.first_name.as_str(),
                    h.last_name.as_str(),
                    h.nick_name.as_str(),
                    h.email.as_str(),
                ),
                UserKind::Machine(_) => (false, "", "", "", ""),
            };
            let data = serde_json::to_string(&user.kind)
                .map_err(|e| StoreError::Backend(format!("encode user data: {e}")))?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO users (id, resource_owner, username, username_key, state, is_human, \
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
                     changed_us = excluded.changed_us",
                )
                .await.map_err(classify)?;
            tx.execute(
                &stmt,
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
        ProjectionWrite::Org(org) => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO orgs (id, name, name_key, primary_domain, sequence, created_us, changed_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_key = excluded.name_key, \
                     primary_domain = excluded.primary_domain, sequence = excluded.sequence, \
                     changed_us = excluded.changed_us",
                )
                .await.map_err(classify)?;
            tx.execute(
                &stmt,
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
            let roles = serde_json::to_string(&member.roles)
                .map_err(|e| StoreError::Backend(format!("encode roles: {e}")))?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO members (scope, user_id, roles) VALUES ($1, $2, $3) \
                     ON CONFLICT (scope, user_id) DO UPDATE SET roles = excluded.roles",
                )
                .await
                .map_err(classify)?;
            tx.execute(&stmt, &[&scope_key(&member.scope), &member.user_id, &roles])
                .await
                .map_err(classify)?;
        }
        ProjectionWrite::RemoveMember { scope, user_id } => {
            let stmt = tx
                .prepare_cached("DELETE FROM members WHERE scope = $1 AND user_id = $2")
                .await
                .map_err(classify)?;
            tx.execute(&stmt, &[&scope_key(scope), user_id])
                .await
                .map_err(classify)?;
        }
        ProjectionWrite::RemoveToken { id } => {
            let stmt = tx
                .prepare_cached("DELETE FROM tokens WHERE id = $1")
                .await
                .map_err(classify)?;
            tx.execute(&stmt, &[id]).await.map_err(classify)?;
        }
        ProjectionWrite::Token(token) => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO tokens (id, user_id, resource_owner, hash, expiration_us, created_us) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await.map_err(classify)?;
            tx.execute(
                &stmt,
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

const USER_COLUMNS: &str =
    "id, resource_owner, username, state, data, password_hash, sequence, created_us, changed_us";

fn user_from_row(row: &Row) -> Result<User, StoreError> {
    let state: String = row.try_get(3).map_err(backend)?;
    let data: String = row.try_get(4).map_err(backend)?;
    let sequence: i64 = row.try_get(6).map_err(backend)?;
    let state = UserState::parse(&state)
        .ok_or_else(|| StoreError::Backend(format!("unknown user state {state:?}")))?;
    let kind: UserKind = serde_json::from_str(&data)
        .map_err(|e| StoreError::Backend(format!("decode user data: {e}")))?;
    Ok(User {
        id: row.try_get(0).map_err(backend)?,
        resource_owner: row.try_get(1).map_err(backend)?,
        username: row.try_get(2).map_err(backend)?,
        state,
        kind,
        password_hash: row.try_get(5).map_err(backend)?,
        sequence: sequence as u64,
        created_us: row.try_get(7).map_err(backend)?,
        changed_us: row.try_get(8).map_err(backend)?,
    })
}

/// Query parameters of a rendered filter, in `$n` order.
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// Renders a filter as a SQL condition with `$n` parameters appended to `args`.
fn render_filter(filter: &UserFilter, args: &mut Params) -> String {
    fn text(column: &str, m: &TextMatch, args: &mut Params) -> String {
        let (col, value) = if m.ignore_case {
            (format!("lower({column})"), m.value.to_lowercase())
        } else {
            (column.to_owned(), m.value.clone())
        };
        args.push(Box::new(value));
        let p = format!("${}", args.len());
        // left/right/strpos rather than LIKE: no escaping of % and _ needed.
        match m.method {
            TextMethod::Equals => format!("{col} = {p}"),
            TextMethod::StartsWith => format!("left({col}, length({p})) = {p}"),
            TextMethod::EndsWith => format!("right({col}, length({p})) = {p}"),
            TextMethod::Contains => format!("strpos({col}, {p}) > 0"),
        }
    }
    match filter {
        UserFilter::UserName(m) => text("username", m, args),
        UserFilter::FirstName(m) => text("first_name", m, args),
        UserFilter::LastName(m) => text("last_name", m, args),
        UserFilter::NickName(m) => text("nick_name", m, args),
        UserFilter::DisplayName(m) => text("display_name", m, args),
        UserFilter::Email(m) => text("email", m, args),
        UserFilter::State(state) => {
            args.push(Box::new(state.as_str().to_owned()));
            format!("state = ${}", args.len())
        }
        UserFilter::IsHuman(human) => {
            args.push(Box::new(*human));
            format!("is_human = ${}", args.len())
        }
        UserFilter::Org(org) => {
            args.push(Box::new(org.clone()));
            format!("resource_owner = ${}", args.len())
        }
        UserFilter::InIds(values) => {
            args.push(Box::new(values.clone()));
            format!("id = ANY(${})", args.len())
        }
        UserFilter::InEmails(values) => {
            args.push(Box::new(values.clone()));
            format!("email = ANY(${})", args.len())
        }
        UserFilter::And(parts) | UserFilter::Or(parts) => {
            let (joiner, empty) = if matches!(filter, UserFilter::And(_)) {
                (" AND ", "TRUE")
            } else {
                (" OR ", "FALSE")
            };
            if parts.is_empty() {
                return empty.to_owned();
            }
            let rendered: Vec<String> = parts
                .iter()
                .map(|p| format!("({})", render_filter(p, args)))
                .collect();
            rendered.join(joiner)
        }
        UserFilter::Not(inner) => format!("NOT ({})", render_filter(inner, args)),
    }
}

/// The ORDER BY expression; text compares bytewise (`COLLATE "C"`), as SQLite does.
fn sort_column(sort: UserSort) -> &'static str {
    match sort {
        UserSort::CreationDate => "created_us",
        UserSort::UserName => "username COLLATE \"C\"",
        UserSort::FirstName => "first_name COLLATE \"C\"",
        UserSort::LastName => "last_name COLLATE \"C\"",
        UserSort::NickName => "nick_name COLLATE \"C\"",
        UserSort::DisplayName => "display_name COLLATE \"C\"",
        UserSort::Email => "email COLLATE \"C\"",
        UserSort::State => "state COLLATE \"C\"",
        UserSort::Type => "is_human",
    }
}

const TOKEN_COLUMNS: &str = "id, user_id, resource_owner, hash, expiration_us, created_us";

fn token_from_row(row: &Row) -> Result<PersonalAccessToken, StoreError> {
    let stored: Vec<u8> = row.try_get(3).map_err(backend)?;
    let hash: [u8; 32] = stored
        .try_into()
        .map_err(|_| StoreError::Backend("token hash is not 32 bytes".to_owned()))?;
    Ok(PersonalAccessToken {
        id: row.try_get(0).map_err(backend)?,
        user_id: row.try_get(1).map_err(backend)?,
        resource_owner: row.try_get(2).map_err(backend)?,
        hash,
        expiration_us: row.try_get(4).map_err(backend)?,
        created_us: row.try_get(5).map_err(backend)?,
    })
}

fn events_from_rows(rows: Vec<Row>) -> Result<Vec<StoredEvent>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok(StoredEvent {
                position: row.try_get(0).map_err(backend)?,
                aggregate_id: row.try_get(1).map_err(backend)?,
                sequence: row.try_get::<_, i64>(2).map_err(backend)? as u64,
                event_type: row.try_get(3).map_err(backend)?,
                payload: row.try_get(4).map_err(backend)?,
                resource_owner: row.try_get(5).map_err(backend)?,
                creator: row.try_get(6).map_err(backend)?,
                created_us: row.try_get(7).map_err(backend)?,
            })
        })
        .collect()
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        if let Some(committer) = &self.committer {
            let (reply, answer) = oneshot::channel();
            committer
                .send(Pending { commit, reply })
                .await
                .map_err(|_| StoreError::Backend("group committer stopped".to_owned()))?;
            return answer
                .await
                .map_err(|_| StoreError::Backend("group committer stopped".to_owned()))?;
        }
        let started = std::time::Instant::now();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        apply_commit(&tx, &commit).await?;
        tx.commit().await.map_err(backend)?;
        super::stats::record(started.elapsed(), 1);
        Ok(())
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .await
            .map_err(backend)?;
        client
            .query_opt(&stmt, &[&id])
            .await
            .map_err(backend)?
            .map(|row| user_from_row(&row))
            .transpose()
    }

    async fn list_users(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        let mut args: Params = Vec::new();
        let mut conditions = vec!["state <> 'deleted'".to_owned()];
        for filter in &query.filters {
            conditions.push(format!("({})", render_filter(filter, &mut args)));
        }
        let where_clause = conditions.join(" AND ");
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let client = self.client().await?;
        let total: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM users WHERE {where_clause}"),
                &params,
            )
            .await
            .map_err(backend)?
            .try_get(0)
            .map_err(backend)?;
        let limit = match query.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let direction = if query.asc { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {where_clause} \
             ORDER BY {} {direction}, id COLLATE \"C\" {direction} LIMIT {limit} OFFSET {}",
            sort_column(query.sort),
            query.offset.min(i64::MAX as u64),
        );
        let rows = client.query(&sql, &params).await.map_err(backend)?;
        let users = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(UserPage {
            users,
            total: total as u64,
        })
    }

    async fn org(&self, id: &str) -> Result<Option<Org>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, name, primary_domain, sequence, created_us, changed_us FROM orgs WHERE id = $1",
            )
            .await
            .map_err(backend)?;
        let Some(row) = client.query_opt(&stmt, &[&id]).await.map_err(backend)? else {
            return Ok(None);
        };
        Ok(Some(Org {
            id: row.try_get(0).map_err(backend)?,
            name: row.try_get(1).map_err(backend)?,
            primary_domain: row.try_get(2).map_err(backend)?,
            sequence: row.try_get::<_, i64>(3).map_err(backend)? as u64,
            created_us: row.try_get(4).map_err(backend)?,
            changed_us: row.try_get(5).map_err(backend)?,
        }))
    }

    async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT scope, roles FROM members WHERE user_id = $1 ORDER BY scope")
            .await
            .map_err(backend)?;
        let rows = client.query(&stmt, &[&user_id]).await.map_err(backend)?;
        rows.iter()
            .map(|row| {
                let scope: String = row.try_get(0).map_err(backend)?;
                let roles: String = row.try_get(1).map_err(backend)?;
                let scope = parse_scope(&scope)
                    .ok_or_else(|| StoreError::Backend(format!("bad member scope {scope:?}")))?;
                let roles: Vec<String> = serde_json::from_str(&roles)
                    .map_err(|e| StoreError::Backend(format!("decode roles: {e}")))?;
                Ok(Membership {
                    scope,
                    user_id: user_id.to_owned(),
                    roles,
                })
            })
            .collect()
    }

    async fn token_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<PersonalAccessToken>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"
            ))
            .await
            .map_err(backend)?;
        client
            .query_opt(&stmt, &[&&hash[..]])
            .await
            .map_err(backend)?
            .map(|row| token_from_row(&row))
            .transpose()
    }

    async fn members(&self, scope: &MemberScope) -> Result<Vec<Membership>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT user_id, roles FROM members WHERE scope = $1 ORDER BY user_id COLLATE \"C\"",
            )
            .await
            .map_err(backend)?;
        let rows = client
            .query(&stmt, &[&scope_key(scope)])
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let roles: String = row.try_get(1).map_err(backend)?;
                Ok(Membership {
                    scope: scope.clone(),
                    user_id: row.try_get(0).map_err(backend)?,
                    roles: serde_json::from_str(&roles)
                        .map_err(|e| StoreError::Backend(format!("decode roles: {e}")))?,
                })
            })
            .collect()
    }

    async fn tokens(&self, user_id: &str) -> Result<Vec<PersonalAccessToken>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE user_id = $1 ORDER BY created_us, id COLLATE \"C\""
            ))
            .await
            .map_err(backend)?;
        let rows = client.query(&stmt, &[&user_id]).await.map_err(backend)?;
        rows.iter().map(token_from_row).collect()
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
            .prepare_cached(
                "SELECT position, aggregate_id, sequence, event_type, payload, resource_owner, \
                 creator, created_us FROM events WHERE aggregate_id = $1 ORDER BY sequence",
            )
            .await
            .map_err(backend)?;
        let rows = client
            .query(&stmt, &[&aggregate_id])
            .await
            .map_err(backend)?;
        events_from_rows(rows)
    }

    async fn log(&self, after: i64, limit: u32) -> Result<Vec<LogEntry>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT position, aggregate_id, sequence, event_type, payload, resource_owner, \
                 creator, created_us, aggregate_type FROM events WHERE position > $1 \
                 ORDER BY position LIMIT $2",
            )
            .await
            .map_err(backend)?;
        let rows = client
            .query(&stmt, &[&after, &i64::from(limit)])
            .await
            .map_err(backend)?;
        let types = rows
            .iter()
            .map(|row| row.try_get::<_, String>(8).map_err(backend))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(types
            .into_iter()
            .zip(events_from_rows(rows)?)
            .map(|(aggregate_type, event)| LogEntry {
                aggregate_type,
                event,
            })
            .collect())
    }

    async fn projections(&self) -> Result<Vec<ProjectionWrite>, StoreError> {
        let client = self.client().await?;
        let mut out = Vec::new();
        let users = client
            .query(
                &format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_us, id COLLATE \"C\""),
                &[],
            )
            .await
            .map_err(backend)?;
        for row in &users {
            out.push(ProjectionWrite::User(user_from_row(row)?));
        }
        let orgs = client
            .query(
                "SELECT id, name, primary_domain, sequence, created_us, changed_us FROM orgs \
                 ORDER BY created_us, id COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(backend)?;
        for row in &orgs {
            out.push(ProjectionWrite::Org(Org {
                id: row.try_get(0).map_err(backend)?,
                name: row.try_get(1).map_err(backend)?,
                primary_domain: row.try_get(2).map_err(backend)?,
                sequence: row.try_get::<_, i64>(3).map_err(backend)? as u64,
                created_us: row.try_get(4).map_err(backend)?,
                changed_us: row.try_get(5).map_err(backend)?,
            }));
        }
        let members = client
            .query(
                "SELECT scope, user_id, roles FROM members \
                 ORDER BY scope COLLATE \"C\", user_id COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(backend)?;
        for row in &members {
            let scope: String = row.try_get(0).map_err(backend)?;
            let roles: String = row.try_get(2).map_err(backend)?;
            out.push(ProjectionWrite::Member(Membership {
                scope: parse_scope(&scope)
                    .ok_or_else(|| StoreError::Backend(format!("bad member scope {scope:?}")))?,
                user_id: row.try_get(1).map_err(backend)?,
                roles: serde_json::from_str(&roles)
                    .map_err(|e| StoreError::Backend(format!("decode roles: {e}")))?,
            }));
        }
        let tokens = client
            .query(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_us, id COLLATE \"C\""
                ),
                &[],
            )
            .await
            .map_err(backend)?;
        for row in &tokens {
            out.push(ProjectionWrite::Token(token_from_row(row)?));
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
        let stmt = tx
            .prepare_cached(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, payload, \
                 resource_owner, creator, created_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .await
            .map_err(backend)?;
        for LogEntry {
            aggregate_type,
            event,
        } in entries
        {
            tx.execute(
                &stmt,
                &[
                    aggregate_type,
                    &event.aggregate_id,
                    &(event.sequence as i64),
                    &event.event_type,
                    &event.payload,
                    &event.resource_owner,
                    &event.creator,
                    &event.created_us,
                ],
            )
            .await
            .map_err(|e| classify(e, Some((&event.aggregate_id, event.sequence))))?;
        }
        for write in writes {
            write_projection(&tx, write, None).await?;
        }
        tx.commit().await.map_err(backend)
    }
}

#[cfg(test)]
mod tests;
