//! The in-process handler table of `switchyard serve`: every unary method of
//! `zitadel.management.v1.ManagementService` and `zitadel.user.v2.UserService`, called by the
//! gateway without the wire shape of gRPC (see `switchyard_gateway::Handlers`).
//!
//! Each entry names the method as the descriptors do and the trait method that serves it; a
//! unit test checks that the table and the descriptors name the same methods, so a method
//! added to the protos and not here is caught (it would still be served, through tonic).

use std::sync::Arc;

use switchyard_core::command::Core;
use switchyard_core::service::{ManagementService, UserService};
use switchyard_gateway::Handlers;
use switchyard_proto::zitadel::management::v1::management_service_server::ManagementService as ManagementApi;
use switchyard_proto::zitadel::user::v2::user_service_server::UserService as UserApi;

/// Registers `service`'s methods: `"Name" => trait_method`, under `/<service name>/<Name>`.
macro_rules! unary_methods {
    ($handlers:expr, $service:expr, $api:path, $name:literal { $($method:literal => $fn:ident),+ $(,)? }) => {
        $({
            let service = Arc::clone(&$service);
            $handlers.unary(concat!("/", $name, "/", $method), move |request| {
                let service = Arc::clone(&service);
                async move { <_ as $api>::$fn(&*service, request).await }
            });
        })+
    };
}

/// The handler table over `core`.
pub(crate) fn handlers(core: &Core) -> Handlers {
    let mut handlers = Handlers::new();
    let management = Arc::new(ManagementService::new(core.clone()));
    unary_methods!(handlers, management, ManagementApi, "zitadel.management.v1.ManagementService" {
        "GetMyOrg" => get_my_org,
        "AddOrg" => add_org,
        "ListOrgMembers" => list_org_members,
        "AddOrgMember" => add_org_member,
        "UpdateOrgMember" => update_org_member,
        "RemoveOrgMember" => remove_org_member,
        "GetUserByID" => get_user_by_id,
        "ListUsers" => list_users,
        "ListUserChanges" => list_user_changes,
        "AddHumanUser" => add_human_user,
        "ImportHumanUser" => import_human_user,
        "AddMachineUser" => add_machine_user,
        "DeactivateUser" => deactivate_user,
        "ReactivateUser" => reactivate_user,
        "LockUser" => lock_user,
        "UnlockUser" => unlock_user,
        "RemoveUser" => remove_user,
        "ListPersonalAccessTokens" => list_personal_access_tokens,
        "AddPersonalAccessToken" => add_personal_access_token,
        "RemovePersonalAccessToken" => remove_personal_access_token,
    });
    let users = Arc::new(UserService::new(core.clone()));
    unary_methods!(handlers, users, UserApi, "zitadel.user.v2.UserService" {
        "AddHumanUser" => add_human_user,
        "GetUserByID" => get_user_by_id,
        "ListUsers" => list_users,
        "DeactivateUser" => deactivate_user,
        "ReactivateUser" => reactivate_user,
        "LockUser" => lock_user,
        "UnlockUser" => unlock_user,
        "DeleteUser" => delete_user,
    });
    handlers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_table_serves_every_unary_method_of_the_zitadel_services() {
        let store = match crate::store::open_kind(
            crate::store::StoreKind::Memory,
            None,
            std::path::Path::new("."),
            false,
        )
        .await
        {
            Ok(store) => store,
            Err(err) => panic!("memory store: {err}"),
        };
        let core = Core::new(store, "localhost");
        let table = handlers(&core);
        let mut want: Vec<String> = [
            "zitadel.management.v1.ManagementService",
            "zitadel.user.v2.UserService",
        ]
        .iter()
        .filter_map(|name| switchyard_proto::descriptor_pool().get_service_by_name(name))
        .flat_map(|service| service.methods().collect::<Vec<_>>())
        .filter(|m| !m.is_client_streaming() && !m.is_server_streaming())
        .map(|m| format!("/{}/{}", m.parent_service().full_name(), m.name()))
        .collect();
        let mut got: Vec<String> = table.paths().map(str::to_owned).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }
}
