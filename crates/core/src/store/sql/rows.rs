//! The rows both schemas store, read back: the column lists every read selects and one decoder
//! a record (user, org, member, token, event), written against [`SqlRow`], which each backend
//! implements for its driver's row. What a column holds on the way in is [`super::UserColumns`]
//! and the codecs beside it.

use super::{decode_kind, decode_roles, decode_scope};
use crate::domain::org::{Membership, Org};
use crate::domain::token::PersonalAccessToken;
use crate::domain::user::{User, UserState};
use crate::store::{LogEntry, StoreError, StoredEvent};

/// A row of a result, its columns by index (0-based), as a driver gives them. A value of
/// another type than asked for, or a missing column, is a backend error.
pub(crate) trait SqlRow {
    /// A text column.
    ///
    /// # Errors
    /// See the trait.
    fn text(&self, i: usize) -> Result<String, StoreError>;
    /// A text column that may be NULL.
    ///
    /// # Errors
    /// See the trait.
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    /// An integer column.
    ///
    /// # Errors
    /// See the trait.
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    /// An integer column that may be NULL.
    ///
    /// # Errors
    /// See the trait.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    /// A binary column.
    ///
    /// # Errors
    /// See the trait.
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError>;
    /// A JSON column (text in SQLite, JSONB in PostgreSQL).
    ///
    /// # Errors
    /// See the trait; JSON that does not parse.
    fn json(&self, i: usize) -> Result<serde_json::Value, StoreError>;
}

/// The columns of `row` from `by` on: a record selected after others in one row.
pub(crate) struct Shifted<'a> {
    /// The row.
    pub(crate) row: &'a dyn SqlRow,
    /// The index of the record's first column.
    pub(crate) by: usize,
}

impl SqlRow for Shifted<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.row.text(self.by + i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.row.opt_text(self.by + i)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.row.int(self.by + i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.row.opt_int(self.by + i)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        self.row.bytes(self.by + i)
    }
    fn json(&self, i: usize) -> Result<serde_json::Value, StoreError> {
        self.row.json(self.by + i)
    }
}

/// The user columns every user read selects, as [`user`] reads them (a macro, so that the
/// statements can `concat!` it).
macro_rules! user_columns {
    () => {
        "id, resource_owner, username, state, data, password_hash, sequence, created_us, changed_us"
    };
}
/// See [`user_columns`].
pub(crate) const USER_COLUMNS: &str = user_columns!();

/// The token columns every token read selects, as [`token`] reads them.
macro_rules! token_columns {
    () => {
        "id, user_id, resource_owner, hash, expiration_us, created_us"
    };
}
pub(crate) use token_columns;
/// See [`token_columns`].
pub(crate) const TOKEN_COLUMNS: &str = token_columns!();

/// The org columns, as [`org`] reads them.
macro_rules! org_columns {
    () => {
        "id, name, primary_domain, sequence, created_us, changed_us"
    };
}
/// See [`org_columns`].
pub(crate) const ORG_COLUMNS: &str = org_columns!();

/// The membership columns, as [`member`] reads them.
pub(crate) const MEMBER_COLUMNS: &str = "scope, user_id, roles";

/// The event columns, as [`event`] reads them.
macro_rules! event_columns {
    () => {
        "position, aggregate_id, sequence, event_type, payload, resource_owner, creator, created_us"
    };
}
pub(crate) use event_columns;

/// The user `$1`, whatever its state.
pub(crate) const USER_BY_ID: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
/// The org `$1`.
pub(crate) const ORG_BY_ID: &str = concat!("SELECT ", org_columns!(), " FROM orgs WHERE id = $1");
/// The token whose hash is `$1`.
pub(crate) const TOKEN_BY_HASH: &str =
    concat!("SELECT ", token_columns!(), " FROM tokens WHERE hash = $1");
/// The events of the aggregate `$1`, in sequence order.
pub(crate) const EVENTS_OF_AGGREGATE: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE aggregate_id = $1 ORDER BY sequence"
);

/// A user of [`USER_COLUMNS`].
///
/// # Errors
/// A column missing or of another type, an unknown state, data that is not a user kind.
pub(crate) fn user(row: &dyn SqlRow) -> Result<User, StoreError> {
    let state = row.text(3)?;
    let state = UserState::parse(&state)
        .ok_or_else(|| StoreError::backend(format!("unknown user state {state:?}")))?;
    Ok(User {
        id: row.text(0)?,
        resource_owner: row.text(1)?,
        username: row.text(2)?,
        state,
        kind: decode_kind(&row.text(4)?)?,
        password_hash: row.opt_text(5)?,
        sequence: row.int(6)? as u64,
        created_us: row.int(7)?,
        changed_us: row.int(8)?,
    })
}

/// An org of [`ORG_COLUMNS`].
///
/// # Errors
/// A column missing or of another type.
pub(crate) fn org(row: &dyn SqlRow) -> Result<Org, StoreError> {
    Ok(Org {
        id: row.text(0)?,
        name: row.text(1)?,
        primary_domain: row.text(2)?,
        sequence: row.int(3)? as u64,
        created_us: row.int(4)?,
        changed_us: row.int(5)?,
    })
}

/// A membership of [`MEMBER_COLUMNS`].
///
/// # Errors
/// A column missing or of another type, a scope or roles no store writes.
pub(crate) fn member(row: &dyn SqlRow) -> Result<Membership, StoreError> {
    Ok(Membership {
        scope: decode_scope(&row.text(0)?)?,
        user_id: row.text(1)?,
        roles: decode_roles(&row.text(2)?)?,
    })
}

/// A token of [`TOKEN_COLUMNS`].
///
/// # Errors
/// A column missing or of another type, a hash that is not 32 bytes.
pub(crate) fn token(row: &dyn SqlRow) -> Result<PersonalAccessToken, StoreError> {
    let hash: [u8; 32] = row
        .bytes(3)?
        .try_into()
        .map_err(|_| StoreError::backend("token hash is not 32 bytes".to_owned()))?;
    Ok(PersonalAccessToken {
        id: row.text(0)?,
        user_id: row.text(1)?,
        resource_owner: row.text(2)?,
        hash,
        expiration_us: row.opt_int(4)?,
        created_us: row.int(5)?,
    })
}

/// An event of [`event_columns`].
///
/// # Errors
/// A column missing or of another type, a payload that is not JSON.
pub(crate) fn event(row: &dyn SqlRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        position: row.int(0)?,
        aggregate_id: row.text(1)?,
        sequence: row.int(2)? as u64,
        event_type: row.text(3)?,
        payload: row.json(4)?,
        resource_owner: row.text(5)?,
        creator: row.text(6)?,
        created_us: row.int(7)?,
    })
}

/// A log entry: an event of [`event_columns`] followed by its `aggregate_type`.
///
/// # Errors
/// As [`event`].
pub(crate) fn log_entry(row: &dyn SqlRow) -> Result<LogEntry, StoreError> {
    Ok(LogEntry {
        aggregate_type: row.text(8)?,
        event: event(row)?,
    })
}

/// A member of [`MEMBER_COLUMNS`] followed by its user's [`user_columns`], all NULL when it
/// has none (the member search's LEFT JOIN).
///
/// # Errors
/// As [`member`] and [`user`].
pub(crate) fn member_with_user(row: &dyn SqlRow) -> Result<(Membership, Option<User>), StoreError> {
    let user = Shifted { row, by: 3 };
    let user = match user.opt_text(0)? {
        Some(_) => Some(self::user(&user)?),
        None => None,
    };
    Ok((member(row)?, user))
}
