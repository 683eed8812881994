//! The schema: embedded migrations, applied at start-up in order, each exactly once, under a
//! transaction-scoped advisory lock so that nodes starting at once do not race.

use deadpool_postgres::Pool;

use super::backend;
use crate::store::StoreError;

/// Key of the advisory lock that serialises migrations across nodes ("swyd" in ASCII).
const MIGRATION_LOCK: i64 = 0x7377_7964;

/// Embedded migrations, applied in order, each once (recorded in `switchyard_migrations`).
/// Never edit a released one: append a new one.
pub(super) const MIGRATIONS: &[(i32, &str)] = &[(
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

/// Applies the migrations not yet applied, holding the migration advisory lock for the whole
/// transaction so that concurrent starts apply each exactly once.
pub(super) async fn migrate(pool: &Pool, schema: Option<&str>) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(super::pool_error)?;
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
            .map_err(|e| StoreError::backend(format!("migration {version}: {e}")))?;
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
