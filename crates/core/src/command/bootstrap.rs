//! First start: on an empty store, create the default organization and an admin machine user
//! with instance-owner rights, and issue that user's personal access token.

use serde_json::json;

use super::org::add_org_commit;
use super::{Core, store_error};
use crate::auth::Caller;
use crate::domain::event::{AggregateType, EventType, NewEvent};
use crate::domain::org::{MemberScope, Membership, Org, primary_domain};
use crate::domain::token::{PersonalAccessToken, hash_secret, new_secret};
use crate::domain::user::{Machine, User, UserKind, UserState};
use crate::domain::{DomainError, now_us};
use crate::store::{ProjectionWrite, StoreError};

/// What the first start creates.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// Name of the default organization.
    pub org_name: String,
    /// User name of the admin machine user.
    pub admin_username: String,
}

impl Default for Bootstrap {
    fn default() -> Self {
        // ZITADEL's first-instance defaults.
        Self {
            org_name: "ZITADEL".to_owned(),
            admin_username: "zitadel-admin-sa".to_owned(),
        }
    }
}

/// What a bootstrap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapResult {
    /// The store was not empty: nothing was created.
    AlreadyInitialized,
    /// The instance was created; the token is shown this once.
    Created {
        /// The default org's id.
        org_id: String,
        /// The admin machine user's id.
        admin_user_id: String,
        /// The admin's personal access token (the secret).
        token: String,
    },
}

impl Core {
    /// Creates the default org and the admin machine user (IAM_OWNER and ORG_OWNER) with a
    /// personal access token, in one commit, if the store has no org yet. Safe to race: of
    /// several nodes starting on one empty database, one creates and the rest find it created.
    ///
    /// # Errors
    /// INTERNAL if the store fails.
    pub async fn bootstrap(&self, settings: &Bootstrap) -> Result<BootstrapResult, DomainError> {
        if self.store.has_orgs().await.map_err(store_error)? {
            return Ok(BootstrapResult::AlreadyInitialized);
        }
        let now = now_us();
        let org_id = self.ids.next_id();
        let admin_id = self.ids.next_id();
        let token_id = self.ids.next_id();
        let token = new_secret();
        let admin = Caller {
            user_id: admin_id.clone(),
            org_id: org_id.clone(),
            memberships: Vec::new().into(),
        };
        let org = Org {
            id: org_id.clone(),
            name: settings.org_name.clone(),
            primary_domain: primary_domain(&settings.org_name, &self.external_domain),
            sequence: 2,
            created_us: now,
            changed_us: now,
        };
        let (mut commit, _) = add_org_commit(&org, &admin, now);

        let user_event = |sequence, event_type, payload| NewEvent {
            aggregate_type: AggregateType::User,
            aggregate_id: admin_id.clone(),
            sequence,
            event_type,
            payload,
            resource_owner: org_id.clone(),
            creator: "SYSTEM".to_owned(),
            created_us: now,
        };
        let machine = Machine {
            name: "Automatically Initialized IAM admin Client".to_owned(),
            description: "Created by switchyard on first start".to_owned(),
            access_token_type: 0,
        };
        commit.events.push(user_event(
            1,
            EventType::MachineAdded,
            json!({ "userName": settings.admin_username, "name": machine.name }),
        ));
        commit.events.push(user_event(
            2,
            EventType::PersonalAccessTokenAdded,
            json!({ "tokenId": token_id, "expiration": null }),
        ));
        commit.events.push(NewEvent {
            aggregate_type: AggregateType::Instance,
            aggregate_id: "instance".to_owned(),
            sequence: 1,
            event_type: EventType::InstanceMemberAdded,
            payload: json!({ "userId": admin_id, "roles": ["IAM_OWNER"] }),
            resource_owner: org_id.clone(),
            creator: "SYSTEM".to_owned(),
            created_us: now,
        });
        commit.writes.extend([
            ProjectionWrite::User(User {
                id: admin_id.clone(),
                resource_owner: org_id.clone(),
                username: settings.admin_username.clone(),
                state: UserState::Active,
                kind: UserKind::Machine(machine),
                password_hash: None,
                sequence: 2,
                created_us: now,
                changed_us: now,
            }),
            ProjectionWrite::Token(PersonalAccessToken {
                id: token_id,
                user_id: admin_id.clone(),
                resource_owner: org_id.clone(),
                hash: hash_secret(&token),
                expiration_us: None,
                created_us: now,
            }),
            ProjectionWrite::Member(Membership {
                scope: MemberScope::Instance,
                user_id: admin_id.clone(),
                roles: vec!["IAM_OWNER".to_owned()],
            }),
        ]);
        match self.commit(commit).await {
            Ok(()) => Ok(BootstrapResult::Created {
                org_id,
                admin_user_id: admin_id,
                token,
            }),
            // Another node bootstrapped the same database first.
            Err(StoreError::VersionConflict { .. } | StoreError::UniqueViolation { .. }) => {
                Ok(BootstrapResult::AlreadyInitialized)
            }
            Err(e) => Err(store_error(e)),
        }
    }
}
