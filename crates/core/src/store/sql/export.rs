//! The whole-store reads behind export ([`crate::store::log`]), as SQL both backends run: the
//! page of the event log and the projection tables in export order (users, orgs, members,
//! tokens), each with how its rows become [`ProjectionWrite`]s. Text orders bytewise on both
//! ([`Dialect::BYTEWISE`]), so both export the same file for the same rows. Running the
//! statements, and the import's transaction, stay with each backend.

use super::Dialect;
use super::rows::{
    self, MEMBER_COLUMNS, ORG_COLUMNS, SqlRow, TOKEN_COLUMNS, USER_COLUMNS, event_columns,
};
use crate::store::{ProjectionWrite, StoreError};

/// Up to `$2` events after position `$1` (both integers), in position order, as
/// [`rows::log_entry`] reads them. (SQLite binds `$n` by position as PostgreSQL does.)
pub(crate) const LOG_PAGE: &str = concat!(
    "SELECT ",
    event_columns!(),
    ", aggregate_type FROM events WHERE position > $1 ORDER BY position LIMIT $2"
);

/// How a row of one projection table becomes its write.
pub(crate) type Decode = fn(&dyn SqlRow) -> Result<ProjectionWrite, StoreError>;

/// The projection tables in export order: each one's SELECT (no parameters) and decoder.
pub(crate) fn projection_reads<D: Dialect>() -> [(String, Decode); 4] {
    let c = D::BYTEWISE;
    [
        (
            format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_us, id{c}"),
            |row| rows::user(row).map(ProjectionWrite::User),
        ),
        (
            format!("SELECT {ORG_COLUMNS} FROM orgs ORDER BY created_us, id{c}"),
            |row| rows::org(row).map(ProjectionWrite::Org),
        ),
        (
            format!("SELECT {MEMBER_COLUMNS} FROM members ORDER BY scope{c}, user_id{c}"),
            |row| rows::member(row).map(ProjectionWrite::Member),
        ),
        (
            format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_us, id{c}"),
            |row| rows::token(row).map(ProjectionWrite::Token),
        ),
    ]
}
