//! `zitadel.management.v1.ManagementService`: v1 calls act in the org context
//! (`x-zitadel-orgid`, default the caller's org), whose permission is checked before the
//! handler runs, as ZITADEL's `auth_option` does.

use switchyard_proto::zitadel::management::v1 as pb;
use switchyard_proto::zitadel::management::v1::management_service_server::ManagementService as Api;
use switchyard_proto::zitadel::org::v1 as org_v1;
use switchyard_proto::zitadel::v1 as zv1;
use tonic::{Request, Response, Status};

use super::convert::{details_v1, filter_v1, sort, timestamp, user_v1};
use super::{caller, invalid_field, observe, org_header};
use crate::auth::Caller;
use crate::command::{Core, Details, NewHuman, OrgContext, PasswordInput, UserScope};
use crate::domain::org::Permission;
use crate::domain::user::{Human, LifecycleCommand};
use crate::store::UserQuery;

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

/// A human's data from the v1 creation messages (AddHumanUser and ImportHumanUser share it).
fn human_from(
    message: &str,
    profile: Option<(String, String, String, String, String, i32)>,
    email: Option<(String, bool)>,
    phone: Option<(String, bool)>,
) -> Result<Human, Status> {
    let (first_name, last_name, nick_name, display_name, preferred_language, gender) =
        profile.ok_or_else(|| invalid_field(message, "Profile", "value is required"))?;
    let (email, email_verified) =
        email.ok_or_else(|| invalid_field(message, "Email", "value is required"))?;
    let (phone, phone_verified) = phone.unwrap_or_default();
    Ok(Human {
        first_name,
        last_name,
        nick_name,
        display_name,
        preferred_language,
        gender,
        email,
        email_verified,
        phone,
        phone_verified,
        ..Human::default()
    })
}

fn require_user_name(message: &str, user_name: &str) -> Result<(), Status> {
    let len = user_name.chars().count();
    if !(1..=200).contains(&len) {
        return Err(invalid_field(
            message,
            "UserName",
            "value length must be between 1 and 200 runes, inclusive",
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl Api for ManagementService {
    async fn get_my_org(
        &self,
        request: Request<pb::GetMyOrgRequest>,
    ) -> Result<Response<pb::GetMyOrgResponse>, Status> {
        observe("zitadel.management.v1.ManagementService/GetMyOrg", async {
            let (_, ctx) = self.context(&request, Permission::OrgRead).await?;
            let org = ctx.org;
            Ok(pb::GetMyOrgResponse {
                org: Some(org_v1::Org {
                    details: Some(details_v1(&Details {
                        sequence: org.sequence,
                        created_us: org.created_us,
                        changed_us: org.changed_us,
                        resource_owner: org.id.clone(),
                    })),
                    id: org.id,
                    state: org_v1::OrgState::Active as i32,
                    name: org.name,
                    primary_domain: org.primary_domain,
                }),
            })
        })
        .await
    }

    async fn add_org(
        &self,
        request: Request<pb::AddOrgRequest>,
    ) -> Result<Response<pb::AddOrgResponse>, Status> {
        observe("zitadel.management.v1.ManagementService/AddOrg", async {
            // Any authenticated user may create an org, and becomes its owner.
            let caller = caller(&self.core, &request).await?;
            let name = &request.get_ref().name;
            if !(1..=200).contains(&name.trim().chars().count()) {
                return Err(invalid_field(
                    "AddOrgRequest",
                    "Name",
                    "value length must be between 1 and 200 runes, inclusive",
                ));
            }
            let (org, details) = self.core.add_org(&caller, name).await?;
            Ok(pb::AddOrgResponse {
                id: org.id,
                details: Some(details_v1(&details)),
            })
        })
        .await
    }

    async fn get_user_by_id(
        &self,
        request: Request<pb::GetUserByIdRequest>,
    ) -> Result<Response<pb::GetUserByIdResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/GetUserByID",
            async {
                let (caller, ctx) = self.context(&request, Permission::UserRead).await?;
                let user = self
                    .core
                    .get_user(&caller, UserScope::V1(&ctx), &request.get_ref().id)
                    .await?;
                Ok(pb::GetUserByIdResponse {
                    user: Some(user_v1(&user)),
                })
            },
        )
        .await
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        observe("zitadel.management.v1.ManagementService/ListUsers", async {
            let (caller, ctx) = self.context(&request, Permission::UserRead).await?;
            let req = request.get_ref();
            let list = req.query.clone().unwrap_or_default();
            let query = UserQuery {
                filters: req
                    .queries
                    .iter()
                    .map(|q| filter_v1(q, 0))
                    .collect::<Result<_, _>>()?,
                sort: sort(req.sorting_column)?,
                asc: list.asc,
                offset: list.offset,
                limit: list.limit,
            };
            let page = self
                .core
                .list_users(&caller, UserScope::V1(&ctx), query)
                .await?;
            Ok(pb::ListUsersResponse {
                details: Some(zv1::ListDetails {
                    total_result: page.total,
                    processed_sequence: 0,
                    view_timestamp: Some(timestamp(crate::domain::now_us())),
                }),
                sorting_column: req.sorting_column,
                result: page.users.iter().map(user_v1).collect(),
            })
        })
        .await
    }

    async fn add_human_user(
        &self,
        request: Request<pb::AddHumanUserRequest>,
    ) -> Result<Response<pb::AddHumanUserResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/AddHumanUser",
            async {
                let (caller, ctx) = self.context(&request, Permission::UserWrite).await?;
                let req = request.into_inner();
                require_user_name("AddHumanUserRequest", &req.user_name)?;
                let human = human_from(
                    "AddHumanUserRequest",
                    req.profile.map(|p| {
                        (
                            p.first_name,
                            p.last_name,
                            p.nick_name,
                            p.display_name,
                            p.preferred_language,
                            p.gender,
                        )
                    }),
                    req.email.map(|e| (e.email, e.is_email_verified)),
                    req.phone.map(|p| (p.phone, p.is_phone_verified)),
                )?;
                let password = (!req.initial_password.is_empty())
                    .then_some(PasswordInput::Plain(req.initial_password));
                let new = NewHuman {
                    user_id: None,
                    org_id: ctx.org.id.clone(),
                    username: req.user_name,
                    human,
                    password,
                };
                let (user, details) = self.core.add_human(&caller, new).await?;
                Ok(pb::AddHumanUserResponse {
                    user_id: user.id,
                    details: Some(details_v1(&details)),
                })
            },
        )
        .await
    }

    async fn import_human_user(
        &self,
        request: Request<pb::ImportHumanUserRequest>,
    ) -> Result<Response<pb::ImportHumanUserResponse>, Status> {
        observe("zitadel.management.v1.ManagementService/ImportHumanUser", async {
            let (caller, ctx) = self.context(&request, Permission::UserWrite).await?;
            let req = request.into_inner();
            require_user_name("ImportHumanUserRequest", &req.user_name)?;
            if !req.idps.is_empty() || req.request_passwordless_registration || !req.otp_code.is_empty() {
                return Err(Status::unimplemented(
                    "importing IDP links, passwordless registration or OTP codes is not supported",
                ));
            }
            let mut human = human_from(
                "ImportHumanUserRequest",
                req.profile.map(|p| {
                    (p.first_name, p.last_name, p.nick_name, p.display_name, p.preferred_language, p.gender)
                }),
                req.email.map(|e| (e.email, e.is_email_verified)),
                req.phone.map(|p| (p.phone, p.is_phone_verified)),
            )?;
            human.password_change_required = req.password_change_required;
            let password = match (req.password.is_empty(), req.hashed_password) {
                (false, _) => Some(PasswordInput::Plain(req.password)),
                (true, Some(hashed)) if !hashed.value.is_empty() => Some(PasswordInput::Hashed(hashed.value)),
                _ => None,
            };
            let new = NewHuman { user_id: None, org_id: ctx.org.id.clone(), username: req.user_name, human, password };
            let (user, details) = self.core.add_human(&caller, new).await?;
            Ok(pb::ImportHumanUserResponse {
                user_id: user.id,
                details: Some(details_v1(&details)),
                passwordless_registration: None,
            })
        })
        .await
    }

    async fn deactivate_user(
        &self,
        request: Request<pb::DeactivateUserRequest>,
    ) -> Result<Response<pb::DeactivateUserResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/DeactivateUser",
            async {
                let request = request.map(|r| r.id);
                let details = self
                    .lifecycle(request, LifecycleCommand::Deactivate, Permission::UserWrite)
                    .await?;
                Ok(pb::DeactivateUserResponse {
                    details: Some(details_v1(&details)),
                })
            },
        )
        .await
    }

    async fn reactivate_user(
        &self,
        request: Request<pb::ReactivateUserRequest>,
    ) -> Result<Response<pb::ReactivateUserResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/ReactivateUser",
            async {
                let request = request.map(|r| r.id);
                let details = self
                    .lifecycle(request, LifecycleCommand::Reactivate, Permission::UserWrite)
                    .await?;
                Ok(pb::ReactivateUserResponse {
                    details: Some(details_v1(&details)),
                })
            },
        )
        .await
    }

    async fn lock_user(
        &self,
        request: Request<pb::LockUserRequest>,
    ) -> Result<Response<pb::LockUserResponse>, Status> {
        observe("zitadel.management.v1.ManagementService/LockUser", async {
            let request = request.map(|r| r.id);
            let details = self
                .lifecycle(request, LifecycleCommand::Lock, Permission::UserWrite)
                .await?;
            Ok(pb::LockUserResponse {
                details: Some(details_v1(&details)),
            })
        })
        .await
    }

    async fn unlock_user(
        &self,
        request: Request<pb::UnlockUserRequest>,
    ) -> Result<Response<pb::UnlockUserResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/UnlockUser",
            async {
                let request = request.map(|r| r.id);
                let details = self
                    .lifecycle(request, LifecycleCommand::Unlock, Permission::UserWrite)
                    .await?;
                Ok(pb::UnlockUserResponse {
                    details: Some(details_v1(&details)),
                })
            },
        )
        .await
    }

    async fn remove_user(
        &self,
        request: Request<pb::RemoveUserRequest>,
    ) -> Result<Response<pb::RemoveUserResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/RemoveUser",
            async {
                let request = request.map(|r| r.id);
                let details = self
                    .lifecycle(request, LifecycleCommand::Remove, Permission::UserDelete)
                    .await?;
                Ok(pb::RemoveUserResponse {
                    details: Some(details_v1(&details)),
                })
            },
        )
        .await
    }
}
