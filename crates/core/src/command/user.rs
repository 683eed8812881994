//! Users: creation, the lifecycle commands, reads and searches, with the v1 (org context) and
//! v2 (any org, permission on the user's org) scoping rules.

use serde_json::json;

use super::last_owner::Loss;
use super::{Attempt, Core, Details, OrgContext, next_user_event, store_error, with_retry};
use crate::auth::{Caller, password};
use crate::domain::event::{AggregateType, EventType, NewEvent};
use crate::domain::org::Permission;
use crate::domain::user::{Api, Human, LifecycleCommand, User, UserKind, UserState};
use crate::domain::{DomainError, ErrorKind, now_us};
use crate::store::{Commit, ProjectionWrite, UserFilter, UserPage, UserQuery};

/// How a call finds users: v1 inside its checked org context, v2 in any org.
#[derive(Debug, Clone, Copy)]
pub enum UserScope<'a> {
    /// v1: only users of this org exist; the permission was checked for it.
    V1(&'a OrgContext),
    /// v2: users of every org; the permission is checked on the user's org.
    V2,
}

impl UserScope<'_> {
    fn api(&self) -> Api {
        match self {
            Self::V1(_) => Api::V1,
            Self::V2 => Api::V2,
        }
    }

    /// Keeps `user` only if it exists and is visible in this scope.
    fn visible(&self, user: Option<User>) -> Option<User> {
        let user = user.filter(|u| u.state != UserState::Deleted)?;
        match self {
            Self::V1(ctx) if user.resource_owner != ctx.org.id => None,
            _ => Some(user),
        }
    }
}

/// A password given at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordInput {
    /// A plain password: checked against the complexity policy and hashed with argon2id.
    Plain(String),
    /// An existing hash in PHC format (argon2 or bcrypt), stored as given.
    Hashed(String),
}

/// A human user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHuman {
    /// A caller-chosen id (v2); generated when `None`.
    pub user_id: Option<String>,
    /// The org that will own the user.
    pub org_id: String,
    /// The user name; the email when empty.
    pub username: String,
    /// Profile, email and phone.
    pub human: Human,
    /// The initial password, if any.
    pub password: Option<PasswordInput>,
}

fn v2_permission_denied() -> DomainError {
    DomainError::permission_denied("AUTHZ-HKJD33", "No matching permissions found")
}

fn invalid(id: &'static str, message: &str) -> DomainError {
    DomainError::invalid_argument(id, message)
}

/// Checks and normalises a new human; returns the password hash to store.
async fn prepare_human(new: &mut NewHuman) -> Result<Option<String>, DomainError> {
    let h = &mut new.human;
    h.first_name = h.first_name.trim().to_owned();
    h.last_name = h.last_name.trim().to_owned();
    h.email = h.email.trim().to_owned();
    if h.first_name.is_empty() {
        return Err(invalid("USER-UCej2", "First name is empty"));
    }
    if h.last_name.is_empty() {
        return Err(invalid("USER-4hB7d", "Last name is empty"));
    }
    if h.email.is_empty() || !h.email.contains('@') || h.email.chars().any(char::is_whitespace) {
        return Err(invalid("EMAIL-599BI", "Email is invalid"));
    }
    if h.display_name.trim().is_empty() {
        h.display_name = format!("{} {}", h.first_name, h.last_name);
    }
    new.username = new.username.trim().to_owned();
    if new.username.is_empty() {
        new.username = h.email.clone();
    }
    if new.username.chars().any(char::is_whitespace) {
        return Err(invalid(
            "USER-Djkw2",
            "Username must not contain whitespace",
        ));
    }
    if let Some(id) = &new.user_id
        && (id.trim().is_empty() || id.len() > 200)
    {
        return Err(invalid("USER-ID-INVALID", "User ID is invalid"));
    }
    match new.password.take() {
        None => Ok(None),
        Some(PasswordInput::Plain(plain)) => {
            password::check_complexity(&plain)?;
            // argon2 is deliberately slow: keep it off the async workers.
            tokio::task::spawn_blocking(move || password::hash(&plain))
                .await
                .map_err(|e| DomainError::internal("SY-PWD-HASH", e.to_string()))?
                .map(Some)
        }
        Some(PasswordInput::Hashed(hash)) => {
            let known = [
                "$argon2id$",
                "$argon2i$",
                "$argon2d$",
                "$2a$",
                "$2b$",
                "$2y$",
            ];
            if !known.iter().any(|prefix| hash.starts_with(prefix)) {
                return Err(invalid(
                    "COMMAND-JDk4t",
                    "Password hash is not a supported PHC string",
                ));
            }
            Ok(Some(hash))
        }
    }
}

impl Core {
    /// Creates a human user in `new.org_id`. It is ACTIVE with a password and a verified email,
    /// otherwise INITIAL (as ZITADEL). The caller's permission must already be checked.
    ///
    /// # Errors
    /// INVALID_ARGUMENT for missing or malformed data or a weak password; ALREADY_EXISTS for a
    /// taken user name or id.
    pub async fn add_human(
        &self,
        caller: &Caller,
        mut new: NewHuman,
    ) -> Result<(User, Details), DomainError> {
        let password_hash = prepare_human(&mut new).await?;
        let human = new.human;
        let active = password_hash.is_some() && human.email_verified;
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
            let mut human = human.clone();
            if password_hash.is_some() {
                human.password_changed_us = Some(now);
            }
            let user = User {
                id: user_id.clone(),
                resource_owner: new.org_id.clone(),
                username: new.username.clone(),
                state: if active {
                    UserState::Active
                } else {
                    UserState::Initial
                },
                kind: UserKind::Human(human.clone()),
                password_hash: password_hash.clone(),
                sequence: 1,
                created_us: now,
                changed_us: now,
            };
            let event = NewEvent {
                aggregate_type: AggregateType::User,
                aggregate_id: user.id.clone(),
                sequence: 1,
                event_type: EventType::HumanAdded,
                // The password hash stays out of the event payload; the projection keeps it.
                payload: json!({
                    "userName": user.username,
                    "firstName": human.first_name,
                    "lastName": human.last_name,
                    "displayName": human.display_name,
                    "email": human.email,
                    "isEmailVerified": human.email_verified,
                    "hasPassword": password_hash.is_some(),
                }),
                resource_owner: user.resource_owner.clone(),
                creator: caller.user_id.clone(),
                created_us: now,
            };
            let commit = Commit {
                events: vec![event],
                writes: vec![ProjectionWrite::User(user.clone())],
            };
            self.commit(commit).await?;
            let details = Details {
                sequence: 1,
                created_us: now,
                changed_us: now,
                resource_owner: user.resource_owner.clone(),
            };
            Ok((user, details))
        })
        .await
    }

    /// Applies a lifecycle command (deactivate, reactivate, lock, unlock, remove) to `user_id`.
    ///
    /// # Errors
    /// ZITADEL's errors for the command and API generation (see
    /// [`LifecycleCommand::decide`]); v2 PERMISSION_DENIED after the state checks.
    pub async fn lifecycle(
        &self,
        caller: &Caller,
        scope: UserScope<'_>,
        command: LifecycleCommand,
        user_id: &str,
    ) -> Result<Details, DomainError> {
        let api = scope.api();
        let user_id = user_id.trim();
        if user_id.is_empty() {
            return Err(command.missing_id(api));
        }
        with_retry(|| async {
            let current = scope.visible(self.store.user(user_id).await?);
            let event_type = command.decide(api, current.as_ref().map(|u| u.state))?;
            let Some(mut user) = current else {
                // decide() rejects a missing user; keep the invariant local all the same.
                return Err(Attempt::Rejected(command.not_found(api)));
            };
            if let UserScope::V2 = scope {
                let permission = match command {
                    LifecycleCommand::Remove => Permission::UserDelete,
                    _ => Permission::UserWrite,
                };
                if caller.user_id != user.id
                    && !caller.has_permission(permission, &user.resource_owner)
                {
                    return Err(Attempt::Rejected(v2_permission_denied()));
                }
            }
            let guard = if matches!(
                command,
                LifecycleCommand::Deactivate | LifecycleCommand::Lock | LifecycleCommand::Remove
            ) {
                self.keep_an_owner(Loss::User(&user.id), &caller.user_id)
                    .await?
            } else {
                None
            };
            let now = now_us();
            if let Some(state) = event_type.user_state_after() {
                user.state = state;
            }
            let (event, details) =
                next_user_event(&mut user, event_type, json!({}), &caller.user_id, now);
            // Only the state, sequence and change time changed: the store writes just those.
            let write = ProjectionWrite::SetUserState {
                id: user.id,
                state: user.state,
                sequence: user.sequence,
                changed_us: user.changed_us,
            };
            self.commit(Commit {
                events: std::iter::once(event).chain(guard).collect(),
                writes: vec![write],
            })
            .await?;
            Ok(details)
        })
        .await
    }

    /// Reads one user. v2 needs `user.read` on the user's org, or to be that user.
    ///
    /// # Errors
    /// INVALID_ARGUMENT for an empty id; NOT_FOUND `QUERY-Dfbg2`; v2 PERMISSION_DENIED.
    pub async fn get_user(
        &self,
        caller: &Caller,
        scope: UserScope<'_>,
        user_id: &str,
    ) -> Result<User, DomainError> {
        let user_id = user_id.trim();
        if user_id.is_empty() {
            return Err(invalid("QUERY-4M9ds", "User ID missing"));
        }
        let user = scope
            .visible(self.store.user(user_id).await.map_err(store_error)?)
            .ok_or_else(|| DomainError::not_found("QUERY-Dfbg2", "User could not be found"))?;
        if let UserScope::V2 = scope
            && caller.user_id != user.id
            && !caller.has_permission(Permission::UserRead, &user.resource_owner)
        {
            return Err(v2_permission_denied());
        }
        Ok(user)
    }

    /// Searches users: v1 in the context org; v2 in every org where the caller may read users
    /// (and always the caller itself).
    ///
    /// # Errors
    /// INTERNAL if the store fails.
    pub async fn list_users(
        &self,
        caller: &Caller,
        scope: UserScope<'_>,
        mut query: UserQuery,
    ) -> Result<UserPage, DomainError> {
        match scope {
            UserScope::V1(ctx) => query.filters.push(UserFilter::Org(ctx.org.id.clone())),
            UserScope::V2 if caller.has_instance_permission(Permission::UserRead) => {}
            UserScope::V2 => {
                let mut visible: Vec<UserFilter> = caller
                    .orgs_with(Permission::UserRead)
                    .into_iter()
                    .map(UserFilter::Org)
                    .collect();
                visible.push(UserFilter::InIds(vec![caller.user_id.clone()]));
                query.filters.push(UserFilter::Or(visible));
            }
        }
        self.store.list_users(&query).await.map_err(store_error)
    }
}

/// The details a read reports for `user`: creation from its first event, change from its last.
pub fn read_details(user: &User) -> Details {
    Details {
        sequence: user.sequence,
        created_us: user.created_us,
        changed_us: user.changed_us,
        resource_owner: user.resource_owner.clone(),
    }
}
