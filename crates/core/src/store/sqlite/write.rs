//! The write path: transactions, savepoints, event appends and projection writes.
//!
//! Every statement here, transaction control included, runs from the connection's statement
//! cache (`prepare_cached`): SQLite parses each once per connection, never per command.
//! (`Connection::execute_batch` and rusqlite's `Transaction` re-parse `BEGIN`, `SAVEPOINT`,
//! `RELEASE` and `COMMIT` every time: that was a tenth of the server's instructions.)

use rusqlite::{Connection, params};

use super::{OnUnique, backend, classify, scope_key};
use crate::domain::user::{User, UserState};
use crate::store::sql::{EventRow, UserColumns, encode_roles};
use crate::store::{Commit, Constraint, ProjectionWrite, StoreError};

const INSERT_EVENT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, \
    event_type, payload, resource_owner, creator, created_us) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const UPSERT_USER: &str = "INSERT INTO users (id, resource_owner, username, username_key, \
    state, is_human, first_name, last_name, nick_name, display_name, email, data, password_hash, \
    sequence, created_us, changed_us) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
    ON CONFLICT (id) DO UPDATE SET resource_owner = excluded.resource_owner, \
    username = excluded.username, username_key = excluded.username_key, \
    state = excluded.state, is_human = excluded.is_human, \
    first_name = excluded.first_name, last_name = excluded.last_name, \
    nick_name = excluded.nick_name, display_name = excluded.display_name, \
    email = excluded.email, data = excluded.data, \
    password_hash = excluded.password_hash, sequence = excluded.sequence, \
    changed_us = excluded.changed_us";
const SET_USER_STATE: &str =
    "UPDATE users SET state = ?2, sequence = ?3, changed_us = ?4 WHERE id = ?1";
/// A removal also frees the user name (see `USERNAME_INDEX` in sqlite.rs).
const REMOVE_USER: &str = "UPDATE users SET state = ?2, sequence = ?3, changed_us = ?4, \
    username_key = 'DELETED:' || id WHERE id = ?1";
const UPSERT_ORG: &str = "INSERT INTO orgs (id, name, name_key, primary_domain, sequence, \
    created_us, changed_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_key = excluded.name_key, \
    primary_domain = excluded.primary_domain, sequence = excluded.sequence, \
    changed_us = excluded.changed_us";
const UPSERT_MEMBER: &str = "INSERT INTO members (scope, user_id, roles) VALUES (?1, ?2, ?3) \
    ON CONFLICT (scope, user_id) DO UPDATE SET roles = excluded.roles";
const DELETE_MEMBER: &str = "DELETE FROM members WHERE scope = ?1 AND user_id = ?2";
const DELETE_TOKEN: &str = "DELETE FROM tokens WHERE id = ?1";
const INSERT_TOKEN: &str = "INSERT INTO tokens (id, user_id, resource_owner, hash, \
    expiration_us, created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Runs a statement without parameters or rows (`BEGIN`, `COMMIT`, `SAVEPOINT` …) from the
/// statement cache.
pub(super) fn exec(conn: &Connection, sql: &'static str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.raw_execute())
        .map(|_| ())
        .map_err(backend)
}

/// Runs `f` in one transaction: committed if it succeeds, rolled back otherwise.
pub(super) fn transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    exec(conn, "BEGIN")?;
    let result = f(conn).and_then(|value| exec(conn, "COMMIT").map(|()| value));
    if result.is_err() {
        rollback(conn);
    }
    result
}

/// Ends the open transaction, if any, keeping nothing of it.
pub(super) fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        // A failed ROLLBACK leaves nothing better to do; the next BEGIN reports the state.
        let _ = exec(conn, "ROLLBACK");
    }
}

/// Applies one commit inside a SAVEPOINT of the open transaction; on failure only it is
/// undone.
pub(super) fn in_savepoint(conn: &Connection, commit: &Commit) -> Result<(), StoreError> {
    exec(conn, "SAVEPOINT sy_commit")?;
    match append(conn, commit) {
        Ok(()) => exec(conn, "RELEASE sy_commit"),
        Err(e) => {
            exec(conn, "ROLLBACK TO sy_commit")?;
            exec(conn, "RELEASE sy_commit")?;
            Err(e)
        }
    }
}

/// Appends the events and writes the projections of `commit` in the open transaction.
pub(super) fn append(conn: &Connection, commit: &Commit) -> Result<(), StoreError> {
    for event in &commit.events {
        insert_event(conn, &EventRow::from(event))?;
    }
    for write in &commit.writes {
        write_projection(conn, write)?;
    }
    Ok(())
}

/// Inserts one event; a taken (aggregate, sequence) is a [`StoreError::VersionConflict`].
#[allow(clippy::too_many_arguments)]
pub(super) fn insert_event(conn: &Connection, event: &EventRow<'_>) -> Result<(), StoreError> {
    // Most events carry `{}`: no serialiser run for those.
    let payload = match event.payload {
        serde_json::Value::Object(map) if map.is_empty() => std::borrow::Cow::Borrowed("{}"),
        other => std::borrow::Cow::Owned(other.to_string()),
    };
    conn.prepare_cached(INSERT_EVENT)
        .and_then(|mut stmt| {
            stmt.execute(params![
                event.aggregate_type,
                event.aggregate_id,
                event.sequence as i64,
                event.event_type,
                payload.as_ref(),
                event.resource_owner,
                event.creator,
                event.created_us,
            ])
        })
        .map(|_| ())
        .map_err(|e| classify(e, OnUnique::Conflict(event.aggregate_id, event.sequence)))
}

/// The key of `user`'s name in the unique index: lowercased, or `DELETED:<id>` once removed
/// (see `USERNAME_INDEX` in sqlite.rs).
fn username_key(user: &User) -> String {
    if user.state == UserState::Deleted {
        format!("DELETED:{}", user.id)
    } else {
        user.username.to_lowercase()
    }
}

/// Writes one projection row.
pub(super) fn write_projection(
    conn: &Connection,
    write: &ProjectionWrite,
) -> Result<(), StoreError> {
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
            conn.prepare_cached(UPSERT_USER)
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        user.id,
                        user.resource_owner,
                        user.username,
                        username_key(user),
                        user.state.as_str(),
                        is_human,
                        first,
                        last,
                        nick,
                        user.display_name(),
                        email,
                        data,
                        user.password_hash,
                        user.sequence as i64,
                        user.created_us,
                        user.changed_us,
                    ])
                })
                .map_err(|e| classify(e, OnUnique::Taken(Constraint::UserName)))?;
        }
        ProjectionWrite::SetUserState {
            id,
            state,
            sequence,
            changed_us,
        } => {
            let sql = if *state == UserState::Deleted {
                REMOVE_USER
            } else {
                SET_USER_STATE
            };
            let changed = conn
                .prepare_cached(sql)
                .and_then(|mut stmt| {
                    stmt.execute(params![id, state.as_str(), *sequence as i64, changed_us])
                })
                .map_err(|e| classify(e, OnUnique::Taken(Constraint::UserName)))?;
            if changed != 1 {
                return Err(StoreError::backend(format!(
                    "no user row {id} to set the state of"
                )));
            }
        }
        ProjectionWrite::Org(org) => {
            conn.prepare_cached(UPSERT_ORG)
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        org.id,
                        org.name,
                        org.name.to_lowercase(),
                        org.primary_domain,
                        org.sequence as i64,
                        org.created_us,
                        org.changed_us,
                    ])
                })
                .map_err(|e| classify(e, OnUnique::Taken(Constraint::OrgName)))?;
        }
        ProjectionWrite::Member(member) => {
            let roles = encode_roles(&member.roles)?;
            conn.prepare_cached(UPSERT_MEMBER)
                .and_then(|mut stmt| {
                    stmt.execute(params![scope_key(&member.scope), member.user_id, roles])
                })
                .map_err(backend)?;
        }
        ProjectionWrite::RemoveMember { scope, user_id } => {
            conn.prepare_cached(DELETE_MEMBER)
                .and_then(|mut stmt| stmt.execute(params![scope_key(scope), user_id]))
                .map_err(backend)?;
        }
        ProjectionWrite::RemoveToken { id } => {
            conn.prepare_cached(DELETE_TOKEN)
                .and_then(|mut stmt| stmt.execute(params![id]))
                .map_err(backend)?;
        }
        ProjectionWrite::Token(token) => {
            conn.prepare_cached(INSERT_TOKEN)
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        token.id,
                        token.user_id,
                        token.resource_owner,
                        &token.hash[..],
                        token.expiration_us,
                        token.created_us,
                    ])
                })
                .map_err(|e| classify(e, OnUnique::Taken(Constraint::Token)))?;
        }
    }
    Ok(())
}
