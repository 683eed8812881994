//! The user aggregate: its states, the lifecycle commands and the state machine that decides
//! which event a command appends, with ZITADEL's error identities for each rejection.
//!
//! The rules follow ZITADEL's command layer (`internal/command/user.go` for v1,
//! `user_v2.go` for v2): the same transitions, but v1 and v2 report rejections under
//! different error ids. The machine is pure: state in, event type or error out.

use serde::{Deserialize, Serialize};

use super::error::DomainError;
use super::event::EventType;

/// A user's lifecycle state. The wire enums number these differently in v1 and v2;
/// `service` maps them, nothing here depends on either numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    /// Usable.
    Active,
    /// Deactivated; only reactivate brings it back.
    Inactive,
    /// Removed; behaves as if it never existed.
    Deleted,
    /// Locked; only unlock brings it back.
    Locked,
    /// Created without credentials; waits for its first login.
    Initial,
}

impl UserState {
    /// The stable name stored in the projection (`active`, `inactive`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Deleted => "deleted",
            Self::Locked => "locked",
            Self::Initial => "initial",
        }
    }

    /// Parses [`UserState::as_str`]'s names.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "active" => Self::Active,
            "inactive" => Self::Inactive,
            "deleted" => Self::Deleted,
            "locked" => Self::Locked,
            "initial" => Self::Initial,
            _ => return None,
        })
    }

    /// Every state, for table-driven tests and exhaustive mappings.
    pub const ALL: [UserState; 5] = [
        Self::Active,
        Self::Inactive,
        Self::Deleted,
        Self::Locked,
        Self::Initial,
    ];
}

/// The API generation a command came through: v1 and v2 share the rules but not the error ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `zitadel.management.v1`.
    V1,
    /// `zitadel.user.v2`.
    V2,
}

/// A command that moves a user through its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleCommand {
    /// Any existing state but initial and inactive → inactive.
    Deactivate,
    /// Inactive → active.
    Reactivate,
    /// Active or initial → locked.
    Lock,
    /// Locked → active.
    Unlock,
    /// Any existing state → deleted.
    Remove,
}

/// ZITADEL's English texts for the error keys we raise.
mod text {
    pub(super) const USER_ID_MISSING: &str = "User ID missing";
    pub(super) const NOT_FOUND: &str = "User could not be found";
    pub(super) const NOT_INACTIVE: &str = "User is not inactive";
    pub(super) const ALREADY_INACTIVE: &str = "User already inactive";
    pub(super) const CANT_DEACTIVATE_INITIAL: &str =
        "User with state initial can only be deleted not deactivated";
    pub(super) const NOT_ACTIVE_OR_INITIAL: &str = "User is not active or initial";
    pub(super) const NOT_LOCKED: &str = "User is not locked";
}

/// The error ids one command uses in one API generation.
struct Ids {
    missing: &'static str,
    not_found: &'static str,
}

impl LifecycleCommand {
    fn ids(self, api: Api) -> Ids {
        // (command, api) → ids, as raised by ZITADEL's command layer.
        let (missing, not_found) = match (self, api) {
            (Self::Deactivate, Api::V1) => ("COMMAND-m0gDf", "COMMAND-3M9ds"),
            (Self::Deactivate, Api::V2) => ("COMMAND-78iiirat8y", "COMMAND-5gp2p62iin"),
            (Self::Reactivate, Api::V1) => ("COMMAND-4M9ds", "COMMAND-4M0sd"),
            (Self::Reactivate, Api::V2) => ("COMMAND-0nx1ie38fw", "COMMAND-9hy5kzbuk6"),
            (Self::Lock, Api::V1) => ("COMMAND-2M0sd", "COMMAND-5M9fs"),
            (Self::Lock, Api::V2) => ("COMMAND-agz3eczifm", "COMMAND-450yxuqrh1"),
            (Self::Unlock, Api::V1) => ("COMMAND-M0dse", "COMMAND-M0dos"),
            (Self::Unlock, Api::V2) => ("COMMAND-a9ld4xckax", "COMMAND-x377t913pw"),
            (Self::Remove, Api::V1) => ("COMMAND-2M0ds", "COMMAND-m9od"),
            (Self::Remove, Api::V2) => ("COMMAND-vaipl7s13l", "COMMAND-bd4ir1mblj"),
        };
        Ids { missing, not_found }
    }

    /// The error for an empty user id.
    pub fn missing_id(self, api: Api) -> DomainError {
        DomainError::invalid_argument(self.ids(api).missing, text::USER_ID_MISSING)
    }

    /// The error for a user that does not exist (or is deleted, or is outside the org scope).
    pub fn not_found(self, api: Api) -> DomainError {
        DomainError::not_found(self.ids(api).not_found, text::NOT_FOUND)
    }

    /// Decides the event this command appends to a user in `current` state (`None`: no such
    /// user), or the rejection ZITADEL gives.
    ///
    /// # Errors
    /// NOT_FOUND for a missing or deleted user; FAILED_PRECONDITION (or, for v1's deactivate
    /// of an initial user, NOT_FOUND as ZITADEL does) when the state forbids the command.
    pub fn decide(self, api: Api, current: Option<UserState>) -> Result<EventType, DomainError> {
        use UserState::*;
        let state = match current {
            None | Some(Deleted) => return Err(self.not_found(api)),
            Some(state) => state,
        };
        match self {
            Self::Deactivate => match (state, api) {
                // ZITADEL v1 reports this as NOT_FOUND; v2 corrected it to FAILED_PRECONDITION.
                (Initial, Api::V1) => Err(DomainError::not_found(
                    "COMMAND-ke0fw",
                    text::CANT_DEACTIVATE_INITIAL,
                )),
                (Initial, Api::V2) => Err(DomainError::failed_precondition(
                    "COMMAND-gvx4kct9r2",
                    text::CANT_DEACTIVATE_INITIAL,
                )),
                (Inactive, Api::V1) => Err(DomainError::failed_precondition(
                    "COMMAND-5M0sf",
                    text::ALREADY_INACTIVE,
                )),
                (Inactive, Api::V2) => Err(DomainError::failed_precondition(
                    "COMMAND-5gunjw0cd7",
                    text::ALREADY_INACTIVE,
                )),
                _ => Ok(EventType::UserDeactivated),
            },
            Self::Reactivate => match (state, api) {
                (Inactive, _) => Ok(EventType::UserReactivated),
                (_, Api::V1) => Err(DomainError::failed_precondition(
                    "COMMAND-6M0sf",
                    text::NOT_INACTIVE,
                )),
                (_, Api::V2) => Err(DomainError::failed_precondition(
                    "COMMAND-s5qqcz97hf",
                    text::NOT_INACTIVE,
                )),
            },
            Self::Lock => match (state, api) {
                (Active | Initial, _) => Ok(EventType::UserLocked),
                (_, Api::V1) => Err(DomainError::failed_precondition(
                    "COMMAND-3NN8v",
                    text::NOT_ACTIVE_OR_INITIAL,
                )),
                (_, Api::V2) => Err(DomainError::failed_precondition(
                    "COMMAND-lgws8wtsqf",
                    text::NOT_ACTIVE_OR_INITIAL,
                )),
            },
            Self::Unlock => match (state, api) {
                (Locked, _) => Ok(EventType::UserUnlocked),
                (_, Api::V1) => Err(DomainError::failed_precondition(
                    "COMMAND-4M0ds",
                    text::NOT_LOCKED,
                )),
                (_, Api::V2) => Err(DomainError::failed_precondition(
                    "COMMAND-olb9vb0oca",
                    text::NOT_LOCKED,
                )),
            },
            Self::Remove => Ok(EventType::UserRemoved),
        }
    }
}

/// What kind of user this is, with the data of that kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    /// A person who logs in.
    Human(Human),
    /// A service account that authenticates with keys or tokens.
    Machine(Machine),
}

/// A human user's profile and contact data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Human {
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Nick name.
    #[serde(default)]
    pub nick_name: String,
    /// Display name; defaults to "first last".
    #[serde(default)]
    pub display_name: String,
    /// BCP 47 language tag.
    #[serde(default)]
    pub preferred_language: String,
    /// Gender, numbered as the wire enums (0 unspecified, 1 female, 2 male, 3 diverse).
    #[serde(default)]
    pub gender: i32,
    /// Email address.
    pub email: String,
    /// Whether the email address is verified.
    #[serde(default)]
    pub email_verified: bool,
    /// Phone number.
    #[serde(default)]
    pub phone: String,
    /// Whether the phone number is verified.
    #[serde(default)]
    pub phone_verified: bool,
    /// Whether the password must be changed at next login.
    #[serde(default)]
    pub password_change_required: bool,
    /// When the password was set (µs since the epoch), if one was.
    #[serde(default)]
    pub password_changed_us: Option<i64>,
}

/// A machine user's data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Access token type, numbered as the wire enums (0 bearer, 1 JWT).
    #[serde(default)]
    pub access_token_type: i32,
}

/// The projected state of one user: what reads serve and commands decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user id.
    pub id: String,
    /// The owning organization's id.
    pub resource_owner: String,
    /// The user name, unique in the instance.
    pub username: String,
    /// The lifecycle state.
    pub state: UserState,
    /// Human or machine data.
    pub kind: UserKind,
    /// The password hash (PHC string), for humans with a password.
    pub password_hash: Option<String>,
    /// The sequence of the user's last event.
    pub sequence: u64,
    /// The time of the user's first event (µs since the epoch).
    pub created_us: i64,
    /// The time of the user's last event (µs since the epoch).
    pub changed_us: i64,
}

impl User {
    /// The display name a listing shows: the human's display name or the machine's name.
    pub fn display_name(&self) -> &str {
        match &self.kind {
            UserKind::Human(h) => &h.display_name,
            UserKind::Machine(m) => &m.name,
        }
    }

    /// The email address of a human, empty for machines.
    pub fn email(&self) -> &str {
        match &self.kind {
            UserKind::Human(h) => &h.email,
            UserKind::Machine(_) => "",
        }
    }

    /// A lifecycle event applied: the new state, the user's sequence after it and its time;
    /// the rest of the row stays (what `ProjectionWrite::SetUserState` writes).
    pub fn set_state(&mut self, state: UserState, sequence: u64, changed_us: i64) {
        self.state = state;
        self.sequence = sequence;
        self.changed_us = changed_us;
    }

    /// This row written over `existing`, the row of the same user: everything is this one's
    /// but the creation time, which an upsert keeps.
    pub fn replacing(&self, existing: &User) -> User {
        User {
            created_us: existing.created_us,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::ErrorKind;

    /// Every command from every state (and from "no such user"), in both API generations.
    /// `Ok(event)` or `Err((kind, id))`.
    #[test]
    fn decide_covers_every_command_from_every_state() {
        use ErrorKind::*;
        use EventType::*;
        use LifecycleCommand::*;
        use UserState::*;
        type Want = Result<EventType, (ErrorKind, &'static str)>;
        struct Case {
            command: LifecycleCommand,
            from: Option<UserState>,
            v1: Want,
            v2: Want,
        }
        let nf = |v1: &'static str, v2: &'static str| -> (Want, Want) {
            (Err((NotFound, v1)), Err((NotFound, v2)))
        };
        let mut cases = Vec::new();
        for (command, v1_nf, v2_nf) in [
            (Deactivate, "COMMAND-3M9ds", "COMMAND-5gp2p62iin"),
            (Reactivate, "COMMAND-4M0sd", "COMMAND-9hy5kzbuk6"),
            (Lock, "COMMAND-5M9fs", "COMMAND-450yxuqrh1"),
            (Unlock, "COMMAND-M0dos", "COMMAND-x377t913pw"),
            (Remove, "COMMAND-m9od", "COMMAND-bd4ir1mblj"),
        ] {
            for from in [None, Some(Deleted)] {
                let (v1, v2) = nf(v1_nf, v2_nf);
                cases.push(Case {
                    command,
                    from,
                    v1,
                    v2,
                });
            }
        }
        let fp = |v1: &'static str, v2: &'static str| -> (Want, Want) {
            (Err((FailedPrecondition, v1)), Err((FailedPrecondition, v2)))
        };
        let ok = |event: EventType| -> (Want, Want) { (Ok(event), Ok(event)) };
        let table: Vec<(LifecycleCommand, UserState, (Want, Want))> = vec![
            (Deactivate, Active, ok(UserDeactivated)),
            (Deactivate, Locked, ok(UserDeactivated)),
            (
                Deactivate,
                Inactive,
                fp("COMMAND-5M0sf", "COMMAND-5gunjw0cd7"),
            ),
            (
                Deactivate,
                Initial,
                (
                    Err((NotFound, "COMMAND-ke0fw")),
                    Err((FailedPrecondition, "COMMAND-gvx4kct9r2")),
                ),
            ),
            (Reactivate, Inactive, ok(UserReactivated)),
            (
                Reactivate,
                Active,
                fp("COMMAND-6M0sf", "COMMAND-s5qqcz97hf"),
            ),
            (
                Reactivate,
                Locked,
                fp("COMMAND-6M0sf", "COMMAND-s5qqcz97hf"),
            ),
            (
                Reactivate,
                Initial,
                fp("COMMAND-6M0sf", "COMMAND-s5qqcz97hf"),
            ),
            (Lock, Active, ok(UserLocked)),
            (Lock, Initial, ok(UserLocked)),
            (Lock, Inactive, fp("COMMAND-3NN8v", "COMMAND-lgws8wtsqf")),
            (Lock, Locked, fp("COMMAND-3NN8v", "COMMAND-lgws8wtsqf")),
            (Unlock, Locked, ok(UserUnlocked)),
            (Unlock, Active, fp("COMMAND-4M0ds", "COMMAND-olb9vb0oca")),
            (Unlock, Inactive, fp("COMMAND-4M0ds", "COMMAND-olb9vb0oca")),
            (Unlock, Initial, fp("COMMAND-4M0ds", "COMMAND-olb9vb0oca")),
            (Remove, Active, ok(UserRemoved)),
            (Remove, Inactive, ok(UserRemoved)),
            (Remove, Locked, ok(UserRemoved)),
            (Remove, Initial, ok(UserRemoved)),
        ];
        for (command, from, (v1, v2)) in table {
            cases.push(Case {
                command,
                from: Some(from),
                v1,
                v2,
            });
        }
        // 5 commands × (4 live states + deleted + missing) = 30 cases.
        assert_eq!(cases.len(), 30);

        for case in cases {
            for (api, want) in [(Api::V1, &case.v1), (Api::V2, &case.v2)] {
                let got = case
                    .command
                    .decide(api, case.from)
                    .map_err(|e| (e.kind, e.id));
                assert_eq!(
                    &got, want,
                    "{:?} from {:?} via {:?}",
                    case.command, case.from, api
                );
            }
        }
    }

    #[test]
    fn every_transition_lands_in_the_state_its_event_names() {
        for (event, want) in [
            (EventType::UserDeactivated, UserState::Inactive),
            (EventType::UserReactivated, UserState::Active),
            (EventType::UserLocked, UserState::Locked),
            (EventType::UserUnlocked, UserState::Active),
            (EventType::UserRemoved, UserState::Deleted),
        ] {
            assert_eq!(event.user_state_after(), Some(want), "{event:?}");
        }
    }

    #[test]
    fn rejection_messages_are_zitadels() {
        let err = LifecycleCommand::Reactivate.decide(Api::V1, Some(UserState::Active));
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("User is not inactive (COMMAND-6M0sf)".to_owned())
        );
        assert_eq!(
            LifecycleCommand::Reactivate.missing_id(Api::V1).to_string(),
            "User ID missing (COMMAND-4M9ds)"
        );
    }

    #[test]
    fn state_names_round_trip() {
        for state in UserState::ALL {
            assert_eq!(UserState::parse(state.as_str()), Some(state));
        }
        assert_eq!(UserState::parse("suspended"), None);
    }

    #[test]
    fn a_state_change_and_an_upsert_keep_the_rest_of_the_row() {
        let existing = User {
            id: "u1".into(),
            resource_owner: "org1".into(),
            username: "alice".into(),
            state: UserState::Active,
            kind: UserKind::Human(Human::default()),
            password_hash: None,
            sequence: 1,
            created_us: 10,
            changed_us: 10,
        };
        let mut locked = existing.clone();
        locked.set_state(UserState::Locked, 2, 20);
        assert_eq!(
            locked,
            User {
                state: UserState::Locked,
                sequence: 2,
                changed_us: 20,
                ..existing.clone()
            }
        );
        let written = User {
            username: "alicia".into(),
            created_us: 99,
            ..locked.clone()
        };
        let row = written.replacing(&existing);
        assert_eq!((row.username.as_str(), row.created_us), ("alicia", 10));
    }
}
