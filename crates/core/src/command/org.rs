//! Organizations: the v1 org context (`x-zitadel-orgid`) with its permission check, and AddOrg.

use serde_json::json;

use super::{Attempt, Core, Details, store_error, with_retry};
use crate::auth::Caller;
use crate::domain::event::{AggregateType, EventType, NewEvent};
use crate::domain::org::{MemberScope, Membership, Org, Permission, primary_domain};
use crate::domain::{DomainError, now_us};
use crate::store::{Commit, ProjectionWrite};

/// The org a v1 call acts in, after its permission was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgContext {
    /// The org.
    pub org: Org,
}

impl Core {
    /// Resolves the v1 org context: the `x-zitadel-orgid` header, or the caller's own org, and
    /// checks that the caller holds `permission` there (ZITADEL checks before the handler).
    ///
    /// # Errors
    /// PERMISSION_DENIED `AUTH-Bs7Ds` for an unknown org, `AUTH-5mWD2` without the permission.
    pub async fn org_context(
        &self,
        caller: &Caller,
        header_org: Option<&str>,
        permission: Permission,
    ) -> Result<OrgContext, DomainError> {
        let org_id = header_org
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(&caller.org_id);
        let org = self
            .store()
            .org(org_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                DomainError::permission_denied("AUTH-Bs7Ds", "Organisation doesn't exist")
            })?;
        if !caller.has_permission(permission, &org.id) {
            return Err(DomainError::permission_denied(
                "AUTH-5mWD2",
                "No matching permissions found",
            ));
        }
        Ok(OrgContext { org })
    }

    /// Creates an org named `name`; the caller becomes its `ORG_OWNER`.
    ///
    /// # Errors
    /// INVALID_ARGUMENT for an empty name; ALREADY_EXISTS if the name is taken.
    pub async fn add_org(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<(Org, Details), DomainError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(DomainError::invalid_argument(
                "ORG-mruNY",
                "Invalid organisation name",
            ));
        }
        let org_id = self.ids.next_id();
        with_retry(|| async {
            let now = now_us();
            let org = Org {
                id: org_id.clone(),
                name: name.to_owned(),
                primary_domain: primary_domain(name, &self.external_domain),
                sequence: 2,
                created_us: now,
                changed_us: now,
            };
            let (commit, details) = add_org_commit(&org, caller, now);
            self.commit(commit).await.map_err(Attempt::Store)?;
            Ok((org, details))
        })
        .await
    }
}

/// The commit that creates `org` with `owner` as its `ORG_OWNER`: `org.added` (sequence 1) and
/// `org.member.added` (sequence 2).
pub(super) fn add_org_commit(org: &Org, owner: &Caller, now: i64) -> (Commit, Details) {
    let event = |sequence, event_type, payload| NewEvent {
        aggregate_type: AggregateType::Org,
        aggregate_id: org.id.clone(),
        sequence,
        event_type,
        payload,
        resource_owner: org.id.clone(),
        creator: owner.user_id.clone(),
        created_us: now,
    };
    let member = Membership {
        scope: MemberScope::Org(org.id.clone()),
        user_id: owner.user_id.clone(),
        roles: vec!["ORG_OWNER".to_owned()],
    };
    let commit = Commit {
        events: vec![
            event(1, EventType::OrgAdded, json!({ "name": org.name })),
            event(
                2,
                EventType::OrgMemberAdded,
                json!({ "userId": owner.user_id, "roles": member.roles }),
            ),
        ],
        writes: vec![
            ProjectionWrite::Org(org.clone()),
            ProjectionWrite::Member(member),
        ],
    };
    // Details name the last event appended: the org's sequence after the commit.
    let details = Details {
        sequence: org.sequence,
        created_us: now,
        changed_us: now,
        resource_owner: org.id.clone(),
    };
    (commit, details)
}
