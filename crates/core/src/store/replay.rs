//! Projection replay: the reducers that fold an aggregate's events into its projection row.
//!
//! Commands write projections directly (in the commit that appends the events); replay is the
//! independent second derivation of the same rows, used to check that the two agree (the
//! multi-node test) and to rebuild projections from an imported event log. It relies only on
//! what events carry: secrets (password hashes, token hashes) never enter an event, so a
//! replayed user has no password hash, and fields no event names keep their defaults.

use crate::domain::event::EventType;
use crate::domain::user::{Human, Machine, User, UserKind, UserState};
use crate::store::StoredEvent;

/// Why an event stream cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Sequences must be 1, 2, 3, … in order.
    #[error("{aggregate_id}: expected sequence {expected}, found {found}")]
    Gap {
        /// The aggregate.
        aggregate_id: String,
        /// The sequence that should come next.
        expected: u64,
        /// The sequence that came.
        found: u64,
    },
    /// The first event must create the user.
    #[error("{aggregate_id}: {event_type} before the user was added")]
    NotCreated {
        /// The aggregate.
        aggregate_id: String,
        /// The event found first.
        event_type: String,
    },
}

/// Folds one user's events (in sequence order) into the user row; `None` for no events.
///
/// # Errors
/// [`ReplayError`] if sequences are not contiguous from 1 or the stream does not start with
/// the user's creation.
pub fn replay_user(events: &[StoredEvent]) -> Result<Option<User>, ReplayError> {
    let mut user: Option<User> = None;
    for (i, event) in events.iter().enumerate() {
        let expected = i as u64 + 1;
        if event.sequence != expected {
            return Err(ReplayError::Gap {
                aggregate_id: event.aggregate_id.clone(),
                expected,
                found: event.sequence,
            });
        }
        let text = |key: &str| {
            event
                .payload
                .get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let flag = |key: &str| {
            event
                .payload
                .get(key)
                .and_then(serde_json::Value::as_bool)
                .unwrap_or_default()
        };
        match (event.event_type.as_str(), user.as_mut()) {
            ("user.human.added", _) => {
                let has_password = flag("hasPassword");
                let email_verified = flag("isEmailVerified");
                user = Some(User {
                    id: event.aggregate_id.clone(),
                    resource_owner: event.resource_owner.clone(),
                    username: text("userName"),
                    // As ZITADEL: active with a password and a verified email, else initial.
                    state: if has_password && email_verified {
                        UserState::Active
                    } else {
                        UserState::Initial
                    },
                    kind: UserKind::Human(Human {
                        first_name: text("firstName"),
                        last_name: text("lastName"),
                        display_name: text("displayName"),
                        email: text("email"),
                        email_verified,
                        password_changed_us: has_password.then_some(event.created_us),
                        ..Human::default()
                    }),
                    password_hash: None,
                    sequence: event.sequence,
                    created_us: event.created_us,
                    changed_us: event.created_us,
                });
            }
            ("user.machine.added", _) => {
                user = Some(User {
                    id: event.aggregate_id.clone(),
                    resource_owner: event.resource_owner.clone(),
                    username: text("userName"),
                    state: UserState::Active,
                    kind: UserKind::Machine(Machine {
                        name: text("name"),
                        description: text("description"),
                        access_token_type: 0,
                    }),
                    password_hash: None,
                    sequence: event.sequence,
                    created_us: event.created_us,
                    changed_us: event.created_us,
                });
            }
            (event_type, None) => {
                return Err(ReplayError::NotCreated {
                    aggregate_id: event.aggregate_id.clone(),
                    event_type: event_type.to_owned(),
                });
            }
            (event_type, Some(user)) => {
                if let Some(state) =
                    EventType::parse(event_type).and_then(EventType::user_state_after)
                {
                    user.state = state;
                }
                user.sequence = event.sequence;
                user.changed_us = event.created_us;
            }
        }
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(sequence: u64, event_type: &str, payload: serde_json::Value) -> StoredEvent {
        StoredEvent {
            position: sequence as i64,
            aggregate_id: "u1".into(),
            sequence,
            event_type: event_type.into(),
            payload,
            resource_owner: "org1".into(),
            creator: "admin".into(),
            created_us: 100 * sequence as i64,
        }
    }

    fn human_added(has_password: bool) -> StoredEvent {
        event(
            1,
            "user.human.added",
            json!({"userName": "ada", "firstName": "Ada", "lastName": "L", "displayName": "Ada L",
                   "email": "ada@example.com", "isEmailVerified": true, "hasPassword": has_password}),
        )
    }

    #[test]
    fn replay_folds_lifecycle_events() {
        struct Case {
            name: &'static str,
            events: Vec<StoredEvent>,
            want: Result<Option<(UserState, u64, i64)>, ReplayError>,
        }
        let cases = vec![
            Case {
                name: "no events",
                events: vec![],
                want: Ok(None),
            },
            Case {
                name: "added without password is initial",
                events: vec![human_added(false)],
                want: Ok(Some((UserState::Initial, 1, 100))),
            },
            Case {
                name: "lifecycle",
                events: vec![
                    human_added(true),
                    event(2, "user.deactivated", json!({})),
                    event(3, "user.reactivated", json!({})),
                    event(4, "user.locked", json!({})),
                    event(5, "user.personal.access.token.added", json!({})),
                ],
                want: Ok(Some((UserState::Locked, 5, 500))),
            },
            Case {
                name: "machine then removed",
                events: vec![
                    event(1, "user.machine.added", json!({"userName": "bot"})),
                    event(2, "user.removed", json!({})),
                ],
                want: Ok(Some((UserState::Deleted, 2, 200))),
            },
            Case {
                name: "gap",
                events: vec![human_added(true), event(3, "user.locked", json!({}))],
                want: Err(ReplayError::Gap {
                    aggregate_id: "u1".into(),
                    expected: 2,
                    found: 3,
                }),
            },
            Case {
                name: "not created",
                events: vec![event(1, "user.locked", json!({}))],
                want: Err(ReplayError::NotCreated {
                    aggregate_id: "u1".into(),
                    event_type: "user.locked".into(),
                }),
            },
        ];
        for case in cases {
            let got = replay_user(&case.events)
                .map(|user| user.map(|u| (u.state, u.sequence, u.changed_us)));
            assert_eq!(got, case.want, "{}", case.name);
        }
    }

    #[test]
    fn replayed_human_carries_the_added_payload() {
        let user = replay_user(&[human_added(true)])
            .expect("replay")
            .expect("user");
        assert_eq!(user.username, "ada");
        assert_eq!(user.resource_owner, "org1");
        let UserKind::Human(human) = user.kind else {
            panic!("not human")
        };
        assert_eq!(human.email, "ada@example.com");
        assert!(human.email_verified);
        assert_eq!(human.password_changed_us, Some(100));
    }
}
