//! The whole-store reads and the raw append behind export and import ([`crate::store::log`]).

use rusqlite::{Connection, params};

use super::write::{insert_event, transaction, write_projection};
use super::{
    TOKEN_COLUMNS, USER_COLUMNS, backend, org_from_row, stored_event_from_row, token_from_row,
    user_from_row,
};
use crate::domain::org::Membership;
use crate::store::sql::{decode_roles, decode_scope};
use crate::store::{LogEntry, ProjectionWrite, StoreError};

/// Up to `limit` events after position `after`, in position order.
pub(super) fn log(conn: &Connection, after: i64, limit: u32) -> Result<Vec<LogEntry>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT position, aggregate_id, sequence, event_type, payload, resource_owner, creator, \
             created_us, aggregate_type FROM events WHERE position > ?1 ORDER BY position LIMIT ?2",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![after, i64::from(limit)], |row| {
            Ok((row.get::<_, String>(8)?, stored_event_from_row(row)?))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (aggregate_type, event) = row.map_err(backend)?;
        out.push(LogEntry {
            aggregate_type,
            event: event?,
        });
    }
    Ok(out)
}

/// Every projection row: users, orgs, members, tokens.
pub(super) fn projections(conn: &Connection) -> Result<Vec<ProjectionWrite>, StoreError> {
    let mut out = Vec::new();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_us, id"
        ))
        .map_err(backend)?;
    for row in stmt.query_map([], user_from_row).map_err(backend)? {
        out.push(ProjectionWrite::User(row.map_err(backend)??));
    }
    let mut stmt = conn
        .prepare(
            "SELECT id, name, primary_domain, sequence, created_us, changed_us FROM orgs \
             ORDER BY created_us, id",
        )
        .map_err(backend)?;
    let orgs = stmt.query_map([], org_from_row).map_err(backend)?;
    for org in orgs {
        out.push(ProjectionWrite::Org(org.map_err(backend)?));
    }
    let mut stmt = conn
        .prepare("SELECT scope, user_id, roles FROM members ORDER BY scope, user_id")
        .map_err(backend)?;
    let members = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .map_err(backend)?;
    for member in members {
        let (scope, user_id, roles) = member.map_err(backend)?;
        out.push(ProjectionWrite::Member(Membership {
            scope: decode_scope(&scope)?,
            user_id,
            roles: decode_roles(&roles)?,
        }));
    }
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_us, id"
        ))
        .map_err(backend)?;
    for token in stmt.query_map([], token_from_row).map_err(backend)? {
        out.push(ProjectionWrite::Token(token.map_err(backend)?));
    }
    Ok(out)
}

/// Appends `entries` as they are and writes `writes`, in one transaction.
pub(super) fn import(
    conn: &Connection,
    entries: &[LogEntry],
    writes: &[ProjectionWrite],
) -> Result<(), StoreError> {
    transaction(conn, |conn| {
        for LogEntry {
            aggregate_type,
            event,
        } in entries
        {
            insert_event(
                conn,
                aggregate_type,
                &event.aggregate_id,
                event.sequence,
                &event.event_type,
                &event.payload,
                &event.resource_owner,
                &event.creator,
                event.created_us,
            )?;
        }
        for write in writes {
            write_projection(conn, write)?;
        }
        Ok(())
    })
}
