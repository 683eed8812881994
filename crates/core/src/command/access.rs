//! Identity and access: machine users, their personal access tokens, org members and roles,
//! and a user's history. v1 calls: the org context and its permission are checked by the caller.

use serde_json::json;

use super::last_owner::Loss;
use super::{Attempt, Core, Details, OrgContext, next_user_event, store_error, with_retry};
use crate::auth::Caller;
use crate::domain::event::{AggregateType, EventType, NewEvent};
use crate::domain::org::{MemberScope, Membership, ORG_ROLES};
use crate::domain::token::{PersonalAccessToken, hash_secret, new_secret};
use crate::domain::user::{Machine, User, UserKind, UserState};
use crate::domain::{DomainError, ErrorKind, now_us};
use crate::store::{
    Commit, MemberPage, MemberQuery, ProjectionWrite, StoreError, StoredEvent, UserFilter,
};

/// A machine user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMachine {
    /// A caller-chosen id; generated when `None`.
    pub user_id: Option<String>,
    /// The user name, unique in the instance.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Access token type (0 bearer, 1 JWT).
    pub access_token_type: i32,
}

/// A token just issued: the stored record and the secret, shown this once.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The stored token (hash only).
    pub token: PersonalAccessToken,
    /// The secret.
    pub secret: String,
    /// The appended event's details.
    pub details: Details,
}

fn user_not_found(id: &'static str) -> DomainError {
    DomainError::not_found(id, "User could not be found")
}

fn member_roles_invalid() -> DomainError {
    DomainError::invalid_argument("Org-4N8es", "Member roles are invalid")
}

/// Checks org member roles: at least one, each one of ZITADEL's org roles, no repeats.
fn check_roles(roles: &[String]) -> Result<Vec<String>, DomainError> {
    let mut out: Vec<String> = Vec::with_capacity(roles.len());
    for role in roles {
        let role = role.trim();
        if !ORG_ROLES.contains(&role) {
            return Err(member_roles_invalid());
        }
        if !out.iter().any(|r| r == role) {
            out.push(role.to_owned());
        }
    }
    if out.is_empty() {
        return Err(member_roles_invalid());
    }
    Ok(out)
}

impl Core {
    /// The user `user_id` if it exists in `ctx`'s org (v1 scoping).
    async fn user_in(&self, ctx: &OrgContext, user_id: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .store
            .user(user_id)
            .await?
            .filter(|u| u.state != UserState::Deleted && u.resource_owner == ctx.org.id))
    }

    /// Creates a machine user in `ctx`'s org; it is ACTIVE at once.
    ///
    /// # Errors
    /// INVALID_ARGUMENT for a missing user name or name; ALREADY_EXISTS for a taken user name.
    pub async fn add_machine(
        &self,
        caller: &Caller,
        ctx: &OrgContext,
        new: NewMachine,
    ) -> Result<(User, Details), DomainError> {
        let username = new.username.trim().to_owned();
        if username.is_empty() || username.chars().any(char::is_whitespace) {
            return Err(DomainError::invalid_argument(
                "COMMAND-bm9Ds",
                "Username is empty or invalid",
            ));
        }
        if new.name.trim().is_empty() {
            return Err(DomainError::invalid_argument(
                "COMMAND-bm9Ds",
                "Machine name is empty",
            ));
        }
        let user_id = new.user_id.clone().unwrap_or_else(|| self.ids.next_id());
        with_retry(|| async {
            if self.store.user(&user_id).await?.is_some() {
                return Err(Attempt::Rejected(DomainError::new(
                    ErrorKind::AlreadyExists,
                    "COMMAND-k2unb",
                    "User already exists",
                )));
            }
            let now = now_us();
            let user = User {
                id: user_id.clone(),
                resource_owner: ctx.org.id.clone(),
                username: username.clone(),
                state: UserState::Active,
                kind: UserKind::Machine(Machine {
                    name: new.name.trim().to_owned(),
                    description: new.description.clone(),
                    access_token_type: new.access_token_type,
                }),
                password_hash: None,
                sequence: 1,
                created_us: now,
                changed_us: now,
            };
            let event = NewEvent {
                aggregate_type: AggregateType::User,
                aggregate_id: user.id.clone(),
                sequence: 1,
                event_type: EventType::MachineAdded,
                payload: json!({ "userName": user.username, "name": new.name, "description": new.description }),
                resource_owner: user.resource_owner.clone(),
                creator: caller.user_id.clone(),
                created_us: now,
            };
            self
                .commit(Commit { events: vec![event], writes: vec![ProjectionWrite::User(user.clone())] })
                .await?;
            let details = Details { sequence: 1, created_us: now, changed_us: now, resource_owner: user.resource_owner.clone() };
            Ok((user, details))
        })
        .await
    }

    /// Issues a personal access token for the machine user `user_id` of `ctx`'s org.
    ///
    /// # Errors
    /// NOT_FOUND for an unknown user; FAILED_PRECONDITION for a human; INVALID_ARGUMENT for an
    /// expiration in the past.
    pub async fn add_personal_access_token(
        &self,
        caller: &Caller,
        ctx: &OrgContext,
        user_id: &str,
        expiration_us: Option<i64>,
    ) -> Result<IssuedToken, DomainError> {
        let user_id = user_id.trim();
        if user_id.is_empty() {
            return Err(DomainError::invalid_argument(
                "COMMAND-DAg31",
                "User ID missing",
            ));
        }
        if expiration_us.is_some_and(|exp| exp <= now_us()) {
            return Err(DomainError::invalid_argument(
                "COMMAND-dv3t5",
                "Expiration date is in the past",
            ));
        }
        let token_id = self.ids.next_id();
        let secret = new_secret();
        with_retry(|| async {
            let mut user = self
                .user_in(ctx, user_id)
                .await?
                .ok_or_else(|| user_not_found("COMMAND-Dggw2"))?;
            if !matches!(user.kind, UserKind::Machine(_)) {
                return Err(Attempt::Rejected(DomainError::failed_precondition(
                    "COMMAND-Dggw3",
                    "Personal access tokens are for machine users only",
                )));
            }
            let now = now_us();
            let token = PersonalAccessToken {
                id: token_id.clone(),
                user_id: user.id.clone(),
                resource_owner: user.resource_owner.clone(),
                hash: hash_secret(&secret),
                expiration_us,
                created_us: now,
            };
            let (event, details) = next_user_event(
                &mut user,
                EventType::PersonalAccessTokenAdded,
                json!({ "tokenId": token.id, "expirationUs": expiration_us }),
                &caller.user_id,
                now,
            );
            self.commit(Commit {
                events: vec![event],
                writes: vec![
                    ProjectionWrite::User(user),
                    ProjectionWrite::Token(token.clone()),
                ],
            })
            .await?;
            Ok(IssuedToken {
                token,
                secret: secret.clone(),
                details,
            })
        })
        .await
    }

    /// The tokens of `user_id` in `ctx`'s org (never their secrets).
    ///
    /// # Errors
    /// NOT_FOUND for an unknown user.
    pub async fn personal_access_tokens(
        &self,
        ctx: &OrgContext,
        user_id: &str,
    ) -> Result<Vec<PersonalAccessToken>, DomainError> {
        let user = self
            .user_in(ctx, user_id.trim())
            .await
            .map_err(store_error)?
            .ok_or_else(|| user_not_found("QUERY-Dfbg2"))?;
        self.store.tokens(&user.id).await.map_err(store_error)
    }

    /// Revokes token `token_id` of `user_id`: it stops working on the next request, on every node.
    ///
    /// # Errors
    /// NOT_FOUND for an unknown user or token.
    pub async fn remove_personal_access_token(
        &self,
        caller: &Caller,
        ctx: &OrgContext,
        user_id: &str,
        token_id: &str,
    ) -> Result<Details, DomainError> {
        let (user_id, token_id) = (user_id.trim(), token_id.trim());
        if user_id.is_empty() || token_id.is_empty() {
            return Err(DomainError::invalid_argument("COMMAND-Dng42", "ID missing"));
        }
        with_retry(|| async {
            let mut user = self
                .user_in(ctx, user_id)
                .await?
                .ok_or_else(|| user_not_found("COMMAND-BF4hd"))?;
            if !self
                .store
                .tokens(&user.id)
                .await?
                .iter()
                .any(|t| t.id == token_id)
            {
                return Err(Attempt::Rejected(DomainError::not_found(
                    "COMMAND-BF4hd",
                    "Personal Access Token not found",
                )));
            }
            let guard = self
                .keep_an_owner(
                    Loss::Token {
                        user_id: &user.id,
                        token_id,
                    },
                    &caller.user_id,
                )
                .await?;
            let now = now_us();
            let (event, details) = next_user_event(
                &mut user,
                EventType::PersonalAccessTokenRemoved,
                json!({ "tokenId": token_id }),
                &caller.user_id,
                now,
            );
            self.commit(Commit {
                events: std::iter::once(event).chain(guard).collect(),
                writes: vec![
                    ProjectionWrite::User(user),
                    ProjectionWrite::RemoveToken {
                        id: token_id.to_owned(),
                    },
                ],
            })
            .await?;
            Ok(details)
        })
        .await
    }

    /// A page of the members of `ctx`'s org that match every filter, each with its user if
    /// that still exists (see [`MemberQuery`]); `limit` 0 is every member.
    ///
    /// # Errors
    /// INTERNAL if the store fails.
    pub async fn org_members(
        &self,
        ctx: &OrgContext,
        filters: Vec<UserFilter>,
        offset: u64,
        limit: u32,
    ) -> Result<MemberPage, DomainError> {
        let query = MemberQuery {
            scope: MemberScope::Org(ctx.org.id.clone()),
            filters,
            offset,
            limit,
        };
        self.store.list_members(&query).await.map_err(store_error)
    }

    /// Adds, changes (`Some(roles)` for an existing member) or removes (`None`) a member of
    /// `ctx`'s org, appending `org.member.added|changed|removed` to the org.
    ///
    /// # Errors
    /// INVALID_ARGUMENT for unknown roles; NOT_FOUND for an unknown user or, on change and
    /// removal, a non-member; ALREADY_EXISTS when adding an existing member.
    pub async fn set_org_member(
        &self,
        caller: &Caller,
        ctx: &OrgContext,
        user_id: &str,
        change: MemberChange,
    ) -> Result<Details, DomainError> {
        let user_id = user_id.trim();
        if user_id.is_empty() {
            return Err(DomainError::invalid_argument(
                "Org-4N8es",
                "User ID missing",
            ));
        }
        let roles = match &change {
            MemberChange::Add(roles) | MemberChange::Update(roles) => check_roles(roles)?,
            MemberChange::Remove => Vec::new(),
        };
        let scope = MemberScope::Org(ctx.org.id.clone());
        with_retry(|| async {
            let mut org = self.store.org(&ctx.org.id).await?.ok_or_else(|| {
                DomainError::permission_denied("AUTH-Bs7Ds", "Organisation doesn't exist")
            })?;
            let existing = self
                .store
                .members(&scope)
                .await?
                .into_iter()
                .find(|m| m.user_id == user_id);
            let event_type = match (&change, &existing) {
                (MemberChange::Add(_), Some(_)) => {
                    return Err(Attempt::Rejected(DomainError::new(
                        ErrorKind::AlreadyExists,
                        "Org-PtXi1",
                        "Member already exists",
                    )));
                }
                (MemberChange::Add(_), None) => {
                    // Members may come from any org, as in ZITADEL, but must exist.
                    let exists = self
                        .store
                        .user(user_id)
                        .await?
                        .is_some_and(|u| u.state != UserState::Deleted);
                    if !exists {
                        return Err(Attempt::Rejected(user_not_found("Org-GPut3")));
                    }
                    EventType::OrgMemberAdded
                }
                (MemberChange::Update(_), Some(_)) => EventType::OrgMemberChanged,
                (MemberChange::Remove, Some(_)) => EventType::OrgMemberRemoved,
                (_, None) => {
                    return Err(Attempt::Rejected(DomainError::not_found(
                        "Org-D8JxR",
                        "Member not found",
                    )));
                }
            };
            let now = now_us();
            org.sequence += 1;
            org.changed_us = now;
            let write = match change {
                MemberChange::Remove => ProjectionWrite::RemoveMember {
                    scope: scope.clone(),
                    user_id: user_id.to_owned(),
                },
                _ => ProjectionWrite::Member(Membership {
                    scope: scope.clone(),
                    user_id: user_id.to_owned(),
                    roles: roles.clone(),
                }),
            };
            let event = NewEvent {
                aggregate_type: AggregateType::Org,
                aggregate_id: org.id.clone(),
                sequence: org.sequence,
                event_type,
                payload: json!({ "userId": user_id, "roles": roles }),
                resource_owner: org.id.clone(),
                creator: caller.user_id.clone(),
                created_us: now,
            };
            let details = Details {
                sequence: org.sequence,
                created_us: now,
                changed_us: now,
                resource_owner: org.id.clone(),
            };
            self.commit(Commit {
                events: vec![event],
                writes: vec![ProjectionWrite::Org(org), write],
            })
            .await?;
            Ok(details)
        })
        .await
    }

    /// The history of `user_id` in `ctx`'s org: its events after `after_sequence` (ascending)
    /// or before it (descending; 0 means from the newest), at most `limit` (0: 100).
    ///
    /// # Errors
    /// NOT_FOUND for an unknown user.
    pub async fn user_changes(
        &self,
        ctx: &OrgContext,
        user_id: &str,
        after_sequence: u64,
        limit: u32,
        asc: bool,
    ) -> Result<Vec<StoredEvent>, DomainError> {
        let user_id = user_id.trim();
        // History stays readable after removal, as ZITADEL's change log does.
        let user = self
            .store
            .user(user_id)
            .await
            .map_err(store_error)?
            .filter(|u| u.resource_owner == ctx.org.id)
            .ok_or_else(|| user_not_found("QUERY-Dfbg2"))?;
        let mut events = self.store.events(&user.id).await.map_err(store_error)?;
        let limit = if limit == 0 { 100 } else { limit.min(1000) } as usize;
        if asc {
            events.retain(|e| e.sequence > after_sequence);
        } else {
            events.retain(|e| after_sequence == 0 || e.sequence < after_sequence);
            events.reverse();
        }
        events.truncate(limit);
        Ok(events)
    }
}

/// What to do with an org membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Add a new member with these roles.
    Add(Vec<String>),
    /// Replace an existing member's roles.
    Update(Vec<String>),
    /// Remove an existing member.
    Remove,
}
