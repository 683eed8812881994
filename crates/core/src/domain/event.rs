//! Events: the dotted event names we share with ZITADEL's event store, and the event records
//! that the store appends.

use super::user::UserState;

/// The aggregate kinds that own event streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateType {
    /// The instance (instance-level members).
    Instance,
    /// An organization.
    Org,
    /// A user, human or machine.
    User,
}

impl AggregateType {
    /// The stored name, as ZITADEL names its aggregates.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::Org => "org",
            Self::User => "user",
        }
    }
}

/// Every event type we append, with ZITADEL's dotted names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `org.added`.
    OrgAdded,
    /// `org.member.added`.
    OrgMemberAdded,
    /// `org.member.changed`.
    OrgMemberChanged,
    /// `org.member.removed`.
    OrgMemberRemoved,
    /// `instance.member.added`.
    InstanceMemberAdded,
    /// `instance.owners.checked` (ours): a command that takes something from an IAM owner
    /// claimed the instance aggregate's next sequence after checking that another owner can
    /// still sign in, so that two such commands cannot both pass the check (the last-owner
    /// rule, `command::last_owner`). No projection follows from it.
    InstanceOwnersChecked,
    /// `user.human.added`.
    HumanAdded,
    /// `user.machine.added`.
    MachineAdded,
    /// `user.deactivated`.
    UserDeactivated,
    /// `user.reactivated`.
    UserReactivated,
    /// `user.locked`.
    UserLocked,
    /// `user.unlocked`.
    UserUnlocked,
    /// `user.removed`.
    UserRemoved,
    /// `user.personal.access.token.added`.
    PersonalAccessTokenAdded,
    /// `user.personal.access.token.removed`.
    PersonalAccessTokenRemoved,
}

impl EventType {
    /// The dotted name stored with the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgAdded => "org.added",
            Self::OrgMemberAdded => "org.member.added",
            Self::OrgMemberChanged => "org.member.changed",
            Self::OrgMemberRemoved => "org.member.removed",
            Self::InstanceMemberAdded => "instance.member.added",
            Self::InstanceOwnersChecked => "instance.owners.checked",
            Self::HumanAdded => "user.human.added",
            Self::MachineAdded => "user.machine.added",
            Self::UserDeactivated => "user.deactivated",
            Self::UserReactivated => "user.reactivated",
            Self::UserLocked => "user.locked",
            Self::UserUnlocked => "user.unlocked",
            Self::UserRemoved => "user.removed",
            Self::PersonalAccessTokenAdded => "user.personal.access.token.added",
            Self::PersonalAccessTokenRemoved => "user.personal.access.token.removed",
        }
    }

    /// Every event type.
    pub const ALL: [Self; 15] = [
        Self::OrgAdded,
        Self::OrgMemberAdded,
        Self::OrgMemberChanged,
        Self::OrgMemberRemoved,
        Self::InstanceMemberAdded,
        Self::InstanceOwnersChecked,
        Self::HumanAdded,
        Self::MachineAdded,
        Self::UserDeactivated,
        Self::UserReactivated,
        Self::UserLocked,
        Self::UserUnlocked,
        Self::UserRemoved,
        Self::PersonalAccessTokenAdded,
        Self::PersonalAccessTokenRemoved,
    ];

    /// The event type stored under the dotted `name` ([`EventType::as_str`]); `None` for a
    /// name this version does not know.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The user state a lifecycle event leads to; `None` for events that don't change it.
    pub fn user_state_after(self) -> Option<UserState> {
        match self {
            Self::UserDeactivated => Some(UserState::Inactive),
            Self::UserReactivated | Self::UserUnlocked => Some(UserState::Active),
            Self::UserLocked => Some(UserState::Locked),
            Self::UserRemoved => Some(UserState::Deleted),
            _ => None,
        }
    }
}

/// An event to append: the store assigns nothing but its global position.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The aggregate kind.
    pub aggregate_type: AggregateType,
    /// The aggregate id.
    pub aggregate_id: String,
    /// This event's sequence in its aggregate: the previous one + 1. The store rejects the
    /// append with `StoreError::VersionConflict` if that sequence is taken.
    pub sequence: u64,
    /// The event type.
    pub event_type: EventType,
    /// The event's data, as JSON.
    pub payload: serde_json::Value,
    /// The organization that owns the aggregate.
    pub resource_owner: String,
    /// The user who caused it (`SYSTEM` for bootstrap).
    pub creator: String,
    /// When it happened (µs since the epoch).
    pub created_us: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_back_from_its_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("user.renamed"), None);
    }
}
