//! `zitadel.management.v1.ManagementService`: v1 calls act in the org context
//! (`x-zitadel-orgid`, default the caller's org), whose permission is checked before the
//! handler runs, as ZITADEL's `auth_option` does.
//!
//! One file per resource ([`orgs`], [`users`], [`tokens`], [`members`]); the tonic trait impl is
//! the table below, each method forwarding to its handler. Handlers neither log nor name their
//! method: the gateway's call observer writes the one access line per call.

mod members;
mod orgs;
mod tokens;
mod users;

use switchyard_proto::zitadel::management::v1 as pb;
use switchyard_proto::zitadel::management::v1::management_service_server::ManagementService as Api;
use tonic::{Request, Status};

use super::{caller, forward_handlers, org_header};
use crate::auth::Caller;
use crate::command::{Core, Details, OrgContext, UserScope};
use crate::domain::org::Permission;
use crate::domain::user::LifecycleCommand;

/// The v1 management service over a [`Core`].
#[derive(Clone)]
pub struct ManagementService {
    core: Core,
}

impl ManagementService {
    /// Serves `core`.
    pub fn new(core: Core) -> Self {
        Self { core }
    }

    /// Authenticates and resolves the org context with `permission` checked.
    async fn context<T>(
        &self,
        request: &Request<T>,
        permission: Permission,
    ) -> Result<(Caller, OrgContext), Status> {
        let caller = caller(&self.core, request).await?;
        let header = org_header(request)?;
        let ctx = self
            .core
            .org_context(&caller, header.as_deref(), permission)
            .await?;
        Ok((caller, ctx))
    }

    async fn lifecycle(
        &self,
        request: Request<String>,
        command: LifecycleCommand,
        permission: Permission,
    ) -> Result<Details, Status> {
        let (caller, ctx) = self.context(&request, permission).await?;
        let id = request.into_inner();
        Ok(self
            .core
            .lifecycle(&caller, UserScope::V1(&ctx), command, &id)
            .await?)
    }
}

forward_handlers! {
ManagementService: Api in pb {
    get_my_org: GetMyOrgRequest => GetMyOrgResponse = orgs;
    add_org: AddOrgRequest => AddOrgResponse = orgs;
    get_user_by_id: GetUserByIdRequest => GetUserByIdResponse = users;
    list_users: ListUsersRequest => ListUsersResponse = users;
    add_human_user: AddHumanUserRequest => AddHumanUserResponse = users;
    import_human_user: ImportHumanUserRequest => ImportHumanUserResponse = users;
    deactivate_user: DeactivateUserRequest => DeactivateUserResponse = users;
    reactivate_user: ReactivateUserRequest => ReactivateUserResponse = users;
    lock_user: LockUserRequest => LockUserResponse = users;
    unlock_user: UnlockUserRequest => UnlockUserResponse = users;
    remove_user: RemoveUserRequest => RemoveUserResponse = users;
    list_user_changes: ListUserChangesRequest => ListUserChangesResponse = users;
    add_machine_user: AddMachineUserRequest => AddMachineUserResponse = users;
    list_personal_access_tokens: ListPersonalAccessTokensRequest => ListPersonalAccessTokensResponse = tokens;
    add_personal_access_token: AddPersonalAccessTokenRequest => AddPersonalAccessTokenResponse = tokens;
    remove_personal_access_token: RemovePersonalAccessTokenRequest => RemovePersonalAccessTokenResponse = tokens;
    list_org_members: ListOrgMembersRequest => ListOrgMembersResponse = members;
    add_org_member: AddOrgMemberRequest => AddOrgMemberResponse = members;
    update_org_member: UpdateOrgMemberRequest => UpdateOrgMemberResponse = members;
    remove_org_member: RemoveOrgMemberRequest => RemoveOrgMemberResponse = members;
}
}
