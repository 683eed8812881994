//! The export format: the event log as JSON lines, one object per line with a `kind`.
//!
//! `event` lines are the log itself, in position order. Events never carry secrets (password
//! hashes, token hashes) nor what was derived from configuration (org domains), so an export
//! also has one line per projection row (`user`, `org`, `member`, `token`). An import appends
//! the events, replays every user's events ([`super::replay`]) and refuses the file if a replay
//! disagrees with the exported row on what events determine (owner, name, state, sequence,
//! dates); it then writes the rows, which keep what events leave out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::replay::{ReplayError, replay_user};
use super::{LogEntry, ProjectionWrite, StoredEvent};
use crate::domain::org::{MemberScope, Membership, Org};
use crate::domain::token::PersonalAccessToken;
use crate::domain::user::{User, UserKind, UserState};

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogLine {
    /// An event of the log.
    Event(EventLine),
    /// A user row.
    User(UserLine),
    /// An org row.
    Org(OrgLine),
    /// A membership row.
    Member(MemberLine),
    /// A personal access token row (its hash, never a secret).
    Token(TokenLine),
}

/// An event, as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct EventLine {
    pub position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: u64,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub resource_owner: String,
    pub creator: String,
    pub created_us: i64,
}

/// A user row, as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct UserLine {
    pub id: String,
    pub resource_owner: String,
    pub username: String,
    pub state: UserState,
    pub data: UserKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    pub sequence: u64,
    pub created_us: i64,
    pub changed_us: i64,
}

/// An org row, as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct OrgLine {
    pub id: String,
    pub name: String,
    pub primary_domain: String,
    pub sequence: u64,
    pub created_us: i64,
    pub changed_us: i64,
}

/// A membership row, as exported; `scope` is `instance` or `org:<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct MemberLine {
    pub scope: String,
    pub user_id: String,
    pub roles: Vec<String>,
}

/// A token row, as exported; `hash` is the SHA-256 of the secret in hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct TokenLine {
    pub id: String,
    pub user_id: String,
    pub resource_owner: String,
    pub hash: String,
    #[serde(default)]
    pub expiration_us: Option<i64>,
    pub created_us: i64,
}

/// Why an export cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A line is not a valid export line.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A user's events do not replay.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// A user's replayed events disagree with its exported row.
    #[error("user {0}: its events replay to a different state than its row")]
    Mismatch(String),
}

/// What an export holds, decoded.
#[derive(Debug, Default)]
pub struct Export {
    /// The event log, in file order.
    pub entries: Vec<LogEntry>,
    /// The projection rows.
    pub writes: Vec<ProjectionWrite>,
}

impl LogLine {
    /// The line for one log entry.
    pub fn event(entry: &LogEntry) -> Self {
        let e = &entry.event;
        Self::Event(EventLine {
            position: e.position,
            aggregate_type: entry.aggregate_type.clone(),
            aggregate_id: e.aggregate_id.clone(),
            sequence: e.sequence,
            event_type: e.event_type.clone(),
            payload: e.payload.clone(),
            resource_owner: e.resource_owner.clone(),
            creator: e.creator.clone(),
            created_us: e.created_us,
        })
    }

    /// The line for one projection row; `None` for deletions, which never appear in a store.
    pub fn row(write: &ProjectionWrite) -> Option<Self> {
        Some(match write {
            ProjectionWrite::User(u) => Self::User(UserLine {
                id: u.id.clone(),
                resource_owner: u.resource_owner.clone(),
                username: u.username.clone(),
                state: u.state,
                data: u.kind.clone(),
                password_hash: u.password_hash.clone(),
                sequence: u.sequence,
                created_us: u.created_us,
                changed_us: u.changed_us,
            }),
            ProjectionWrite::Org(o) => Self::Org(OrgLine {
                id: o.id.clone(),
                name: o.name.clone(),
                primary_domain: o.primary_domain.clone(),
                sequence: o.sequence,
                created_us: o.created_us,
                changed_us: o.changed_us,
            }),
            ProjectionWrite::Member(m) => Self::Member(MemberLine {
                scope: match &m.scope {
                    MemberScope::Instance => "instance".to_owned(),
                    MemberScope::Org(id) => format!("org:{id}"),
                },
                user_id: m.user_id.clone(),
                roles: m.roles.clone(),
            }),
            ProjectionWrite::Token(t) => Self::Token(TokenLine {
                id: t.id.clone(),
                user_id: t.user_id.clone(),
                resource_owner: t.resource_owner.clone(),
                hash: t.hash.iter().map(|b| format!("{b:02x}")).collect(),
                expiration_us: t.expiration_us,
                created_us: t.created_us,
            }),
            _ => return None,
        })
    }
}

impl Export {
    /// Decodes JSON lines (blank lines skipped).
    ///
    /// # Errors
    /// [`LogError::Line`] for a line that is not an export line.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Self, LogError> {
        let mut export = Self::default();
        for (i, text) in lines.into_iter().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            let err = |message: String| LogError::Line {
                line: i + 1,
                message,
            };
            let line: LogLine = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
            export.push(line).map_err(err)?;
        }
        Ok(export)
    }

    fn push(&mut self, line: LogLine) -> Result<(), String> {
        match line {
            LogLine::Event(e) => self.entries.push(LogEntry {
                aggregate_type: e.aggregate_type,
                event: StoredEvent {
                    position: e.position,
                    aggregate_id: e.aggregate_id,
                    sequence: e.sequence,
                    event_type: e.event_type,
                    payload: e.payload,
                    resource_owner: e.resource_owner,
                    creator: e.creator,
                    created_us: e.created_us,
                },
            }),
            LogLine::User(u) => self.writes.push(ProjectionWrite::User(User {
                id: u.id,
                resource_owner: u.resource_owner,
                username: u.username,
                state: u.state,
                kind: u.data,
                password_hash: u.password_hash,
                sequence: u.sequence,
                created_us: u.created_us,
                changed_us: u.changed_us,
            })),
            LogLine::Org(o) => self.writes.push(ProjectionWrite::Org(Org {
                id: o.id,
                name: o.name,
                primary_domain: o.primary_domain,
                sequence: o.sequence,
                created_us: o.created_us,
                changed_us: o.changed_us,
            })),
            LogLine::Member(m) => {
                let scope = if m.scope == "instance" {
                    MemberScope::Instance
                } else if let Some(id) = m.scope.strip_prefix("org:") {
                    MemberScope::Org(id.to_owned())
                } else {
                    return Err(format!("unknown member scope {:?}", m.scope));
                };
                self.writes.push(ProjectionWrite::Member(Membership {
                    scope,
                    user_id: m.user_id,
                    roles: m.roles,
                }));
            }
            LogLine::Token(t) => {
                let hash = decode_hash(&t.hash).ok_or("token hash: 64 hex digits expected")?;
                self.writes
                    .push(ProjectionWrite::Token(PersonalAccessToken {
                        id: t.id,
                        user_id: t.user_id,
                        resource_owner: t.resource_owner,
                        hash,
                        expiration_us: t.expiration_us,
                        created_us: t.created_us,
                    }));
            }
        }
        Ok(())
    }

    /// Replays every user's events and checks them against the user rows: the same users,
    /// each with the owner, name, state, sequence and dates its events give. Returns how many
    /// users were checked.
    ///
    /// # Errors
    /// [`LogError::Replay`] for events that do not replay (gaps, no creation);
    /// [`LogError::Mismatch`] for a row that disagrees with its events, or a user with events
    /// but no row, or a row without events.
    pub fn verify_users(&self) -> Result<usize, LogError> {
        let mut streams: BTreeMap<&str, Vec<StoredEvent>> = BTreeMap::new();
        for entry in self.entries.iter().filter(|e| e.aggregate_type == "user") {
            streams
                .entry(entry.event.aggregate_id.as_str())
                .or_default()
                .push(entry.event.clone());
        }
        let mut rows: BTreeMap<&str, &User> = BTreeMap::new();
        for write in &self.writes {
            if let ProjectionWrite::User(user) = write {
                rows.insert(&user.id, user);
            }
        }
        let view = |u: &User| {
            (
                u.resource_owner.clone(),
                u.username.clone(),
                u.state,
                u.sequence,
                u.created_us,
                u.changed_us,
            )
        };
        for (id, mut events) in std::mem::take(&mut streams) {
            events.sort_by_key(|e| e.sequence);
            let replayed = replay_user(&events)?;
            match (replayed, rows.remove(id)) {
                (Some(replayed), Some(row)) if view(&replayed) == view(row) => {}
                _ => return Err(LogError::Mismatch(id.to_owned())),
            }
        }
        if let Some(id) = rows.keys().next() {
            return Err(LogError::Mismatch((*id).to_owned()));
        }
        Ok(self
            .writes
            .iter()
            .filter(|w| matches!(w, ProjectionWrite::User(_)))
            .count())
    }
}

fn decode_hash(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::token::hash_secret;

    #[test]
    fn lines_round_trip() {
        let token = PersonalAccessToken {
            id: "t1".into(),
            user_id: "u1".into(),
            resource_owner: "o1".into(),
            hash: hash_secret("s"),
            expiration_us: Some(9),
            created_us: 1,
        };
        let member = Membership {
            scope: MemberScope::Org("o1".into()),
            user_id: "u1".into(),
            roles: vec!["ORG_OWNER".into()],
        };
        let writes = vec![
            ProjectionWrite::Token(token),
            ProjectionWrite::Member(member),
        ];
        let text: Vec<String> = writes
            .iter()
            .filter_map(LogLine::row)
            .map(|l| serde_json::to_string(&l).expect("encode"))
            .collect();
        let export = Export::parse(text.iter().map(String::as_str)).expect("parse");
        assert_eq!(export.writes, writes);
    }

    #[test]
    fn bad_lines_name_their_number() {
        let cases = [
            ("{\"kind\":\"nope\"}", 1),
            (
                "\n{\"kind\":\"member\",\"scope\":\"x\",\"userId\":\"u\",\"roles\":[]}",
                2,
            ),
            (
                "{\"kind\":\"token\",\"id\":\"t\",\"userId\":\"u\",\"resourceOwner\":\"o\",\"hash\":\"zz\",\"createdUs\":1}",
                1,
            ),
        ];
        for (text, want) in cases {
            match Export::parse(text.lines()) {
                Err(LogError::Line { line, .. }) => assert_eq!(line, want, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
