//! Export and import ([`crate::store::log`]) on SQLite: the shared export reads
//! ([`crate::store::sql::export`]) run here, and the raw append of an import.

use rusqlite::{Connection, params};

use super::query;
use super::search::Sqlite;
use super::write::{insert_event, transaction, write_projection};
use crate::store::sql::{EventRow, export, rows};
use crate::store::{LogEntry, ProjectionWrite, StoreError};

/// Up to `limit` events after position `after`, in position order.
pub(super) fn log(conn: &Connection, after: i64, limit: u32) -> Result<Vec<LogEntry>, StoreError> {
    query(
        conn,
        export::LOG_PAGE,
        params![after, i64::from(limit)],
        rows::log_entry,
    )
}

/// Every projection row: users, orgs, members, tokens.
pub(super) fn projections(conn: &Connection) -> Result<Vec<ProjectionWrite>, StoreError> {
    let mut out = Vec::new();
    for (sql, decode) in export::projection_reads::<Sqlite>() {
        out.extend(query(conn, &sql, [], |row| decode(row))?);
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
        for entry in entries {
            insert_event(conn, &EventRow::from(entry))?;
        }
        for write in writes {
            write_projection(conn, write)?;
        }
        Ok(())
    })
}
