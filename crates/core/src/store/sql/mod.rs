//! What the two SQL backends share, written once: the user and member searches as SQL text
//! with their parameters ([`search`]), the reads behind export ([`export`]), the column lists
//! and row decoders of every record ([`rows`]), and the batch fan-out of group commit
//! ([`fan_out`]). Each backend keeps only its [`Dialect`] and its driver: binding [`Param`]s,
//! running statements and transactions, giving [`rows::SqlRow`] access to its rows. The codecs
//! of the columns both schemas share are here too ([`UserColumns`], [`decode_roles`] …).

pub(crate) mod export;
pub(crate) mod fan_out;
pub(crate) mod rows;
pub(crate) mod search;

use crate::domain::event::NewEvent;
use crate::domain::org::MemberScope;
use crate::domain::user::{User, UserKind};
use crate::store::{LogEntry, StoreError};

/// The few places where the SQL of the two backends differs.
pub(crate) trait Dialect {
    /// The placeholder of the `n`-th parameter (1-based): `?n` or `$n`.
    fn placeholder(n: usize) -> String;
    /// The login name as an expression (see [`crate::store::UserFilter::LoginName`]).
    const LOGIN_NAME: &'static str;
    /// Literal true and false.
    const TRUE: &'static str;
    /// See [`Dialect::TRUE`].
    const FALSE: &'static str;
    /// What follows a text column in ORDER BY so that it orders bytewise (empty where text
    /// compares bytewise anyway).
    const BYTEWISE: &'static str;
    /// `column` equals, starts with, ends with or contains the parameter `p` (a placeholder);
    /// no LIKE, whose wildcards would need escaping.
    fn text_method(method: crate::store::TextMethod, column: &str, p: &str) -> String;
    /// `column` is one of `values` (never empty), appending what it binds to `params`.
    fn in_list(column: &str, values: &[String], params: &mut Vec<Param>) -> String;
}

/// An event as both schemas' `events` row holds it, borrowed from a command's [`NewEvent`] or
/// an imported [`LogEntry`]: what each backend's insert binds.
pub(crate) struct EventRow<'a> {
    /// `user`, `org`, …
    pub(crate) aggregate_type: &'a str,
    /// The aggregate.
    pub(crate) aggregate_id: &'a str,
    /// Its sequence in the aggregate.
    pub(crate) sequence: u64,
    /// The dotted event name.
    pub(crate) event_type: &'a str,
    /// The payload.
    pub(crate) payload: &'a serde_json::Value,
    /// The owning org.
    pub(crate) resource_owner: &'a str,
    /// Who caused it.
    pub(crate) creator: &'a str,
    /// When (µs).
    pub(crate) created_us: i64,
}

impl<'a> From<&'a NewEvent> for EventRow<'a> {
    fn from(event: &'a NewEvent) -> Self {
        Self {
            aggregate_type: event.aggregate_type.as_str(),
            aggregate_id: &event.aggregate_id,
            sequence: event.sequence,
            event_type: event.event_type.as_str(),
            payload: &event.payload,
            resource_owner: &event.resource_owner,
            creator: &event.creator,
            created_us: event.created_us,
        }
    }
}

impl<'a> From<&'a LogEntry> for EventRow<'a> {
    fn from(entry: &'a LogEntry) -> Self {
        let event = &entry.event;
        Self {
            aggregate_type: &entry.aggregate_type,
            aggregate_id: &event.aggregate_id,
            sequence: event.sequence,
            event_type: &event.event_type,
            payload: &event.payload,
            resource_owner: &event.resource_owner,
            creator: &event.creator,
            created_us: event.created_us,
        }
    }
}

/// A query parameter, before a driver binds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    /// A text value.
    Text(String),
    /// A boolean (SQLite stores it as 0 or 1).
    Bool(bool),
    /// A list of texts, for a dialect that binds a list as one array parameter.
    TextList(Vec<String>),
}

/// The columns of a user row beside its id, owner, name and times, as both schemas store them:
/// the searchable profile fields (empty for a machine) and the whole [`UserKind`] as JSON.
pub(crate) struct UserColumns<'a> {
    /// Human (`true`) or machine.
    pub(crate) is_human: bool,
    /// A human's first name.
    pub(crate) first_name: &'a str,
    /// A human's last name.
    pub(crate) last_name: &'a str,
    /// A human's nick name.
    pub(crate) nick_name: &'a str,
    /// A human's email.
    pub(crate) email: &'a str,
    /// The kind, as JSON (the `data` column).
    pub(crate) data: String,
}

impl<'a> UserColumns<'a> {
    /// The columns of `user`.
    ///
    /// # Errors
    /// A backend error if its data cannot be encoded.
    pub(crate) fn of(user: &'a User) -> Result<Self, StoreError> {
        let (is_human, first_name, last_name, nick_name, email) = match &user.kind {
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
            .map_err(|e| StoreError::backend(format!("encode user data: {e}")))?;
        Ok(Self {
            is_human,
            first_name,
            last_name,
            nick_name,
            email,
            data,
        })
    }
}

/// The [`UserKind`] of a `data` column.
///
/// # Errors
/// A backend error for JSON that is not one.
pub(crate) fn decode_kind(data: &str) -> Result<UserKind, StoreError> {
    serde_json::from_str(data).map_err(|e| StoreError::backend(format!("decode user data: {e}")))
}

/// A membership's roles as its `roles` column holds them (a JSON array).
///
/// # Errors
/// A backend error if they cannot be encoded.
pub(crate) fn encode_roles(roles: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(roles).map_err(|e| StoreError::backend(format!("encode roles: {e}")))
}

/// The roles of a `roles` column.
///
/// # Errors
/// A backend error for anything but a JSON array of strings.
pub(crate) fn decode_roles(roles: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(roles).map_err(|e| StoreError::backend(format!("decode roles: {e}")))
}

/// The scope of a `scope` column.
///
/// # Errors
/// A backend error for a key no store writes.
pub(crate) fn decode_scope(key: &str) -> Result<MemberScope, StoreError> {
    super::scope::parse_scope(key)
        .ok_or_else(|| StoreError::backend(format!("bad member scope {key:?}")))
}
