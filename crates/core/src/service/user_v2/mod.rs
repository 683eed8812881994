//! `zitadel.user.v2.UserService`: v2 finds users in every org and checks the permission on the
//! user's own org after the state checks; a user may act on itself.
//!
//! Its one resource, users, lives in [`users`]; the tonic trait impl is the table below, each
//! method forwarding to its handler. Handlers neither log nor name their method: the gateway's
//! call observer writes the one access line per call.

mod users;

use switchyard_proto::zitadel::object::v2 as object_v2;
use switchyard_proto::zitadel::user::v2 as pb;
use switchyard_proto::zitadel::user::v2::user_service_server::UserService as Api;
use tonic::{Request, Status};

use super::convert::details_v2;
use super::{caller, forward_handlers};
use crate::command::{Core, UserScope};
use crate::domain::user::LifecycleCommand;

/// The v2 user service over a [`Core`].
#[derive(Clone)]
pub struct UserService {
    core: Core,
}

impl UserService {
    /// Serves `core`.
    pub fn new(core: Core) -> Self {
        Self { core }
    }

    async fn lifecycle(
        &self,
        request: Request<String>,
        command: LifecycleCommand,
    ) -> Result<object_v2::Details, Status> {
        let caller = caller(&self.core, &request).await?;
        let id = request.into_inner();
        let details = self
            .core
            .lifecycle(&caller, UserScope::V2, command, &id)
            .await?;
        Ok(details_v2(&details))
    }
}

forward_handlers! {
UserService: Api in pb {
    add_human_user: AddHumanUserRequest => AddHumanUserResponse = users;
    get_user_by_id: GetUserByIdRequest => GetUserByIdResponse = users;
    list_users: ListUsersRequest => ListUsersResponse = users;
    deactivate_user: DeactivateUserRequest => DeactivateUserResponse = users;
    reactivate_user: ReactivateUserRequest => ReactivateUserResponse = users;
    lock_user: LockUserRequest => LockUserResponse = users;
    unlock_user: UnlockUserRequest => UnlockUserResponse = users;
    delete_user: DeleteUserRequest => DeleteUserResponse = users;
}
}
