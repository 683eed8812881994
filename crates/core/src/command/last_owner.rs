//! The last-owner rule: no command may leave the instance without an active IAM_OWNER that can
//! still sign in, or nobody could ever administer it again (every call would be 401, and a
//! restart would not help). Deactivating, locking or removing that owner, or revoking its last
//! token, is FAILED_PRECONDITION; `switchyard admin recover` exists for the day it happens
//! anyway (a store edited by hand, tokens expired).
//!
//! An owner *can sign in* when it is active and is either a human (password or external
//! identity provider) or a machine with a personal access token that has not expired.
//!
//! The check reads the projections before the command commits, so two concurrent commands on
//! two different owners could each see the other still standing and both commit. To rule that
//! out, a command that takes something from an owner also appends an `instance.owners.checked`
//! event at the instance aggregate's next sequence, read *before* the owners were checked: of
//! two such commands racing, the second one's append conflicts (`VersionConflict`), the retry
//! loop decides it again, and this time it sees the first one's change. Commands on users who
//! are not owners take no part in it and do not serialize on the instance.

use serde_json::json;

use super::{Attempt, Core, store_error};
use crate::domain::event::{AggregateType, EventType, NewEvent};
use crate::domain::org::{MemberScope, Membership};
use crate::domain::token::{PersonalAccessToken, hash_secret, new_secret};
use crate::domain::user::{Machine, User, UserKind, UserState};
use crate::domain::{DomainError, now_us};
use crate::store::{Commit, ProjectionWrite};

/// What [`Core::recover_owner`] created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredOwner {
    /// The new owner's user id.
    pub user_id: String,
    /// Its user name.
    pub username: String,
    /// Its org (the org of the instance's existing members).
    pub org_id: String,
    /// Its personal access token (the secret), shown this once.
    pub token: String,
}

/// The role that administers the instance.
const IAM_OWNER: &str = "IAM_OWNER";

/// The id of the instance aggregate (one instance per store).
const INSTANCE: &str = "instance";

/// What a command is about to take away.
#[derive(Debug, Clone, Copy)]
pub(super) enum Loss<'a> {
    /// The user stops being able to sign in (deactivated, locked, removed).
    User(&'a str),
    /// One token of the user is revoked.
    Token {
        /// Its user.
        user_id: &'a str,
        /// The token.
        token_id: &'a str,
    },
}

impl Loss<'_> {
    fn user_id(&self) -> &str {
        match self {
            Self::User(user_id) | Self::Token { user_id, .. } => user_id,
        }
    }
}

/// The rejection: in ZITADEL's style (`COMMAND-` and a short random suffix), but ours —
/// ZITADEL has no such rule.
fn last_owner() -> DomainError {
    DomainError::failed_precondition(
        "COMMAND-sy0wnr",
        "The last active IAM owner (and its last token) cannot be deactivated, locked, removed \
         or revoked",
    )
}

impl Core {
    /// Recovery for an instance nobody can administer: creates a new machine user, makes it
    /// IAM_OWNER and issues it a personal access token that does not expire — in one commit,
    /// with events, as any other change. Meant for `switchyard admin recover`, run by whoever
    /// can open the store; nothing else is changed (locked owners stay locked).
    ///
    /// # Errors
    /// FAILED_PRECONDITION when the store holds no instance yet; INTERNAL if the store fails.
    pub async fn recover_owner(&self) -> Result<RecoveredOwner, DomainError> {
        let not_initialized = || {
            DomainError::failed_precondition(
                // Ours, in ZITADEL's style.
                "COMMAND-sy0rcv",
                "The store holds no instance: start `switchyard serve` once to create it",
            )
        };
        let members = self
            .store
            .members(&MemberScope::Instance)
            .await
            .map_err(store_error)?;
        let mut org_id = None;
        for member in &members {
            if let Some(user) = self
                .store
                .user(&member.user_id)
                .await
                .map_err(store_error)?
            {
                org_id = Some(user.resource_owner);
                break;
            }
        }
        let org_id = org_id.ok_or_else(not_initialized)?;
        let instance_sequence = self
            .store
            .events("instance")
            .await
            .map_err(store_error)?
            .iter()
            .map(|e| e.sequence)
            .max()
            .unwrap_or(0);
        let now = now_us();
        let user_id = self.ids.next_id();
        let token_id = self.ids.next_id();
        let token = new_secret();
        let username = format!("recovered-admin-{user_id}");
        let machine = Machine {
            name: "Recovered IAM admin".to_owned(),
            description: "Created by `switchyard admin recover`".to_owned(),
            access_token_type: 0,
        };
        let user_event = |sequence, event_type, payload| NewEvent {
            aggregate_type: AggregateType::User,
            aggregate_id: user_id.clone(),
            sequence,
            event_type,
            payload,
            resource_owner: org_id.clone(),
            creator: "SYSTEM".to_owned(),
            created_us: now,
        };
        let commit = Commit {
            events: vec![
                user_event(
                    1,
                    EventType::MachineAdded,
                    json!({ "userName": username, "name": machine.name }),
                ),
                user_event(
                    2,
                    EventType::PersonalAccessTokenAdded,
                    json!({ "tokenId": token_id, "expiration": null }),
                ),
                NewEvent {
                    aggregate_type: AggregateType::Instance,
                    aggregate_id: "instance".to_owned(),
                    sequence: instance_sequence + 1,
                    event_type: EventType::InstanceMemberAdded,
                    payload: json!({ "userId": user_id, "roles": [IAM_OWNER] }),
                    resource_owner: org_id.clone(),
                    creator: "SYSTEM".to_owned(),
                    created_us: now,
                },
            ],
            writes: vec![
                ProjectionWrite::User(User {
                    id: user_id.clone(),
                    resource_owner: org_id.clone(),
                    username: username.clone(),
                    state: UserState::Active,
                    kind: UserKind::Machine(machine),
                    password_hash: None,
                    sequence: 2,
                    created_us: now,
                    changed_us: now,
                }),
                ProjectionWrite::Token(PersonalAccessToken {
                    id: token_id,
                    user_id: user_id.clone(),
                    resource_owner: org_id.clone(),
                    hash: hash_secret(&token),
                    expiration_us: None,
                    created_us: now,
                }),
                ProjectionWrite::Member(Membership {
                    scope: MemberScope::Instance,
                    user_id: user_id.clone(),
                    roles: vec![IAM_OWNER.to_owned()],
                }),
            ],
        };
        self.commit(commit).await.map_err(store_error)?;
        Ok(RecoveredOwner {
            user_id,
            username,
            org_id,
            token,
        })
    }

    /// Refuses `loss` when it would take the instance's last owner that can sign in. When the
    /// loss concerns an owner and is allowed, returns the `instance.owners.checked` event the
    /// command must commit with its own (see the module documentation); `by` is the caller.
    pub(super) async fn keep_an_owner(
        &self,
        loss: Loss<'_>,
        by: &str,
    ) -> Result<Option<NewEvent>, Attempt> {
        let owners: Vec<String> = self
            .store
            .members(&MemberScope::Instance)
            .await?
            .into_iter()
            .filter(|m| m.roles.iter().any(|r| r == IAM_OWNER))
            .map(|m| m.user_id)
            .collect();
        if !owners.iter().any(|id| id == loss.user_id()) {
            return Ok(None);
        }
        // Read before the owners' states: a command that changes one of them after this read
        // appends at the same sequence, and one of the two commits conflicts.
        let instance = self.store.events(INSTANCE).await?;
        let last = instance.iter().max_by_key(|e| e.sequence);
        let now = now_us();
        let guard = NewEvent {
            aggregate_type: AggregateType::Instance,
            aggregate_id: INSTANCE.to_owned(),
            sequence: last.map_or(0, |e| e.sequence) + 1,
            event_type: EventType::InstanceOwnersChecked,
            payload: json!({ "userId": loss.user_id() }),
            resource_owner: last.map(|e| e.resource_owner.clone()).unwrap_or_default(),
            creator: by.to_owned(),
            created_us: now,
        };
        let mut affected_could = false;
        for owner in &owners {
            let before = self.can_sign_in(owner, None, now).await?;
            if owner != loss.user_id() {
                if before {
                    // Another owner remains: the change is safe.
                    return Ok(Some(guard));
                }
                continue;
            }
            affected_could = before;
            let after = match loss {
                Loss::User(_) => false,
                Loss::Token { token_id, .. } => {
                    self.can_sign_in(owner, Some(token_id), now).await?
                }
            };
            if after {
                return Ok(Some(guard));
            }
        }
        // Only a loss that takes the last usable owner away is refused; one that changes
        // nothing (no owner could sign in before) is left alone.
        if affected_could {
            return Err(Attempt::Rejected(last_owner()));
        }
        Ok(Some(guard))
    }

    /// Whether `user_id` is active and has a way to sign in, not counting token `without`.
    async fn can_sign_in(
        &self,
        user_id: &str,
        without: Option<&str>,
        now: i64,
    ) -> Result<bool, Attempt> {
        let Some(user) = self.store.user(user_id).await? else {
            return Ok(false);
        };
        if user.state != UserState::Active {
            return Ok(false);
        }
        if matches!(user.kind, UserKind::Human(_)) {
            return Ok(true);
        }
        let tokens = self.store.tokens(user_id).await?;
        Ok(tokens
            .iter()
            .any(|t| Some(t.id.as_str()) != without && t.expiration_us.is_none_or(|exp| exp > now)))
    }
}
