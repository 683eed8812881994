//! `zitadel.management.v1.ManagementService`: v1 calls act in the org context
//! (`x-zitadel-orgid`, default the caller's org), whose permission is checked before the
//! handler runs, as ZITADEL's `auth_option` does.

use switchyard_proto::zitadel::change::v1 as change_v1;
use switchyard_proto::zitadel::management::v1 as pb;
use switchyard_proto::zitadel::management::v1::management_service_server::ManagementService as Api;
use switchyard_proto::zitadel::member::v1 as member_v1;
use switchyard_proto::zitadel::org::v1 as org_v1;
use switchyard_proto::zitadel::user::v1 as user_v1;
use switchyard_proto::zitadel::v1 as zv1;
use tonic::{Request, Response, Status};

use super::convert::{details_v1, filter_v1, timestamp, timestamp_us, user_query, user_v1};
use super::{caller, invalid_field, observe, org_domains, org_header};
use crate::auth::Caller;
use crate::command::{
    Core, Details, MemberChange, NewHuman, NewMachine, OrgContext, PasswordInput, UserScope,
};
use crate::domain::org::Permission;
use crate::domain::user::{Human, LifecycleCommand, UserKind};

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

/// Whether `value` matches `query` under a `TextQueryMethod`.
fn text_matches(value: &str, query: &str, method: i32) -> bool {
    use crate::store::TextMethod;
    let Ok(m) = super::convert::text_match(query, method) else {
        return false;
    };
    let (value, query) = if m.ignore_case {
        (value.to_lowercase(), m.value.to_lowercase())
    } else {
        (value.to_owned(), m.value)
    };
    match m.method {
        TextMethod::Equals => value == query,
        TextMethod::StartsWith => value.starts_with(&query),
        TextMethod::Contains => value.contains(&query),
        TextMethod::EndsWith => value.ends_with(&query),
    }
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
                let domain = ctx.org.primary_domain.clone();
                Ok(pb::GetUserByIdResponse {
                    user: Some(user_v1(&user, &domain)),
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
            let list = req.query.unwrap_or_default();
            let query = user_query(
                &req.queries,
                filter_v1,
                req.sorting_column,
                (list.offset, list.limit, list.asc),
            )?;
            let page = self
                .core
                .list_users(&caller, UserScope::V1(&ctx), query)
                .await?;
            let domains = org_domains(&self.core, &page.users).await?;
            Ok(pb::ListUsersResponse {
                details: Some(zv1::ListDetails {
                    total_result: page.total,
                    processed_sequence: 0,
                    view_timestamp: Some(timestamp(crate::domain::now_us())),
                }),
                sorting_column: req.sorting_column,
                result: page
                    .users
                    .iter()
                    .map(|u| user_v1(u, domains.get(&u.resource_owner).map_or("", String::as_str)))
                    .collect(),
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

    async fn list_user_changes(
        &self,
        request: Request<pb::ListUserChangesRequest>,
    ) -> Result<Response<pb::ListUserChangesResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/ListUserChanges",
            async {
                let (_, ctx) = self.context(&request, Permission::UserRead).await?;
                let req = request.get_ref();
                let query = req.query.unwrap_or_default();
                let events = self
                    .core
                    .user_changes(&ctx, &req.user_id, query.sequence, query.limit, query.asc)
                    .await?;
                let mut editors = std::collections::HashMap::new();
                let mut result = Vec::with_capacity(events.len());
                for event in events {
                    if !editors.contains_key(&event.creator) {
                        let editor = self
                            .core
                            .store()
                            .user(&event.creator)
                            .await
                            .map_err(crate::command::store_error)?;
                        editors.insert(event.creator.clone(), editor);
                    }
                    let editor = editors.get(&event.creator).and_then(Option::as_ref);
                    result.push(change_v1::Change {
                        change_date: Some(timestamp(event.created_us)),
                        event_type: Some(zv1::LocalizedMessage {
                            key: format!("EventTypes.{}", event.event_type),
                            localized_message: event.event_type.clone(),
                        }),
                        sequence: event.sequence,
                        editor_id: event.creator.clone(),
                        editor_display_name: editor
                            .map(|u| u.display_name().to_owned())
                            .unwrap_or_default(),
                        resource_owner_id: event.resource_owner.clone(),
                        editor_preferred_login_name: editor
                            .map(|u| u.username.clone())
                            .unwrap_or_default(),
                        editor_avatar_url: String::new(),
                    });
                }
                Ok(pb::ListUserChangesResponse { result })
            },
        )
        .await
    }

    async fn add_machine_user(
        &self,
        request: Request<pb::AddMachineUserRequest>,
    ) -> Result<Response<pb::AddMachineUserResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/AddMachineUser",
            async {
                let (caller, ctx) = self.context(&request, Permission::UserWrite).await?;
                let req = request.into_inner();
                require_user_name("AddMachineUserRequest", &req.user_name)?;
                if !(1..=200).contains(&req.name.trim().chars().count()) {
                    return Err(invalid_field(
                        "AddMachineUserRequest",
                        "Name",
                        "value length must be between 1 and 200 runes, inclusive",
                    ));
                }
                let new = NewMachine {
                    user_id: req.user_id,
                    username: req.user_name,
                    name: req.name,
                    description: req.description,
                    access_token_type: req.access_token_type,
                };
                let (user, details) = self.core.add_machine(&caller, &ctx, new).await?;
                Ok(pb::AddMachineUserResponse {
                    user_id: user.id,
                    details: Some(details_v1(&details)),
                })
            },
        )
        .await
    }

    async fn list_personal_access_tokens(
        &self,
        request: Request<pb::ListPersonalAccessTokensRequest>,
    ) -> Result<Response<pb::ListPersonalAccessTokensResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/ListPersonalAccessTokens",
            async {
                let (_, ctx) = self.context(&request, Permission::UserRead).await?;
                let req = request.get_ref();
                let tokens = self.core.personal_access_tokens(&ctx, &req.user_id).await?;
                let list = req.query.unwrap_or_default();
                let total = tokens.len() as u64;
                let limit = if list.limit == 0 {
                    usize::MAX
                } else {
                    list.limit as usize
                };
                let result = tokens
                    .iter()
                    .skip(usize::try_from(list.offset).unwrap_or(usize::MAX))
                    .take(limit)
                    .map(|t| user_v1::PersonalAccessToken {
                        id: t.id.clone(),
                        details: Some(details_v1(&Details {
                            sequence: 0,
                            created_us: t.created_us,
                            changed_us: t.created_us,
                            resource_owner: t.resource_owner.clone(),
                        })),
                        expiration_date: t.expiration_us.map(timestamp),
                        scopes: vec!["openid".to_owned()],
                    })
                    .collect();
                Ok(pb::ListPersonalAccessTokensResponse {
                    details: Some(zv1::ListDetails {
                        total_result: total,
                        processed_sequence: 0,
                        view_timestamp: Some(timestamp(crate::domain::now_us())),
                    }),
                    result,
                })
            },
        )
        .await
    }

    async fn add_personal_access_token(
        &self,
        request: Request<pb::AddPersonalAccessTokenRequest>,
    ) -> Result<Response<pb::AddPersonalAccessTokenResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/AddPersonalAccessToken",
            async {
                let (caller, ctx) = self.context(&request, Permission::UserWrite).await?;
                let req = request.get_ref();
                let expiration = req.expiration_date.as_ref().map(timestamp_us).transpose()?;
                let issued = self
                    .core
                    .add_personal_access_token(&caller, &ctx, &req.user_id, expiration)
                    .await?;
                Ok(pb::AddPersonalAccessTokenResponse {
                    token_id: issued.token.id,
                    token: issued.secret,
                    details: Some(details_v1(&issued.details)),
                })
            },
        )
        .await
    }

    async fn remove_personal_access_token(
        &self,
        request: Request<pb::RemovePersonalAccessTokenRequest>,
    ) -> Result<Response<pb::RemovePersonalAccessTokenResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/RemovePersonalAccessToken",
            async {
                let (caller, ctx) = self.context(&request, Permission::UserWrite).await?;
                let req = request.get_ref();
                let details = self
                    .core
                    .remove_personal_access_token(&caller, &ctx, &req.user_id, &req.token_id)
                    .await?;
                Ok(pb::RemovePersonalAccessTokenResponse {
                    details: Some(details_v1(&details)),
                })
            },
        )
        .await
    }

    async fn list_org_members(
        &self,
        request: Request<pb::ListOrgMembersRequest>,
    ) -> Result<Response<pb::ListOrgMembersResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/ListOrgMembers",
            async {
                use switchyard_proto::zitadel::member::v1::search_query::Query;
                let (_, ctx) = self.context(&request, Permission::OrgMemberRead).await?;
                let req = request.get_ref();
                let members = self.core.org_members(&ctx).await?;
                let mut result = Vec::new();
                for (member, user) in members {
                    let human = user.as_ref().and_then(|u| match &u.kind {
                        UserKind::Human(h) => Some(h),
                        UserKind::Machine(_) => None,
                    });
                    let item = member_v1::Member {
                        user_id: member.user_id.clone(),
                        details: Some(details_v1(&Details {
                            sequence: ctx.org.sequence,
                            created_us: ctx.org.created_us,
                            changed_us: ctx.org.changed_us,
                            resource_owner: ctx.org.id.clone(),
                        })),
                        roles: member.roles.clone(),
                        preferred_login_name: user
                            .as_ref()
                            .map(|u| u.username.clone())
                            .unwrap_or_default(),
                        email: human.map(|h| h.email.clone()).unwrap_or_default(),
                        first_name: human.map(|h| h.first_name.clone()).unwrap_or_default(),
                        last_name: human.map(|h| h.last_name.clone()).unwrap_or_default(),
                        display_name: user
                            .as_ref()
                            .map(|u| u.display_name().to_owned())
                            .unwrap_or_default(),
                        avatar_url: String::new(),
                        user_type: match user.as_ref().map(|u| &u.kind) {
                            Some(UserKind::Human(_)) => user_v1::Type::Human as i32,
                            Some(UserKind::Machine(_)) => user_v1::Type::Machine as i32,
                            None => user_v1::Type::Unspecified as i32,
                        },
                        user_resource_owner: user
                            .as_ref()
                            .map(|u| u.resource_owner.clone())
                            .unwrap_or_default(),
                    };
                    let keep = req.queries.iter().all(|q| match &q.query {
                        Some(Query::UserIdQuery(x)) => item.user_id == x.user_id,
                        Some(Query::EmailQuery(x)) => text_matches(&item.email, &x.email, x.method),
                        Some(Query::FirstNameQuery(x)) => {
                            text_matches(&item.first_name, &x.first_name, x.method)
                        }
                        Some(Query::LastNameQuery(x)) => {
                            text_matches(&item.last_name, &x.last_name, x.method)
                        }
                        None => true,
                    });
                    if keep {
                        result.push(item);
                    }
                }
                let total = result.len() as u64;
                let list = req.query.unwrap_or_default();
                let limit = if list.limit == 0 {
                    usize::MAX
                } else {
                    list.limit as usize
                };
                let result = result
                    .into_iter()
                    .skip(usize::try_from(list.offset).unwrap_or(usize::MAX))
                    .take(limit)
                    .collect();
                Ok(pb::ListOrgMembersResponse {
                    details: Some(zv1::ListDetails {
                        total_result: total,
                        processed_sequence: ctx.org.sequence,
                        view_timestamp: Some(timestamp(crate::domain::now_us())),
                    }),
                    result,
                })
            },
        )
        .await
    }

    async fn add_org_member(
        &self,
        request: Request<pb::AddOrgMemberRequest>,
    ) -> Result<Response<pb::AddOrgMemberResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/AddOrgMember",
            async {
                let (caller, ctx) = self.context(&request, Permission::OrgMemberWrite).await?;
                let req = request.into_inner();
                let details = self
                    .core
                    .set_org_member(&caller, &ctx, &req.user_id, MemberChange::Add(req.roles))
                    .await?;
                Ok(pb::AddOrgMemberResponse {
                    details: Some(details_v1(&details)),
                })
            },
        )
        .await
    }

    async fn update_org_member(
        &self,
        request: Request<pb::UpdateOrgMemberRequest>,
    ) -> Result<Response<pb::UpdateOrgMemberResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/UpdateOrgMember",
            async {
                let (caller, ctx) = self.context(&request, Permission::OrgMemberWrite).await?;
                let req = request.into_inner();
                let details = self
                    .core
                    .set_org_member(&caller, &ctx, &req.user_id, MemberChange::Update(req.roles))
                    .await?;
                Ok(pb::UpdateOrgMemberResponse {
                    details: Some(details_v1(&details)),
                })
            },
        )
        .await
    }

    async fn remove_org_member(
        &self,
        request: Request<pb::RemoveOrgMemberRequest>,
    ) -> Result<Response<pb::RemoveOrgMemberResponse>, Status> {
        observe(
            "zitadel.management.v1.ManagementService/RemoveOrgMember",
            async {
                let (caller, ctx) = self.context(&request, Permission::OrgMemberDelete).await?;
                let req = request.into_inner();
                let details = self
                    .core
                    .set_org_member(&caller, &ctx, &req.user_id, MemberChange::Remove)
                    .await?;
                Ok(pb::RemoveOrgMemberResponse {
                    details: Some(details_v1(&details)),
                })
            },
        )
        .await
    }
}
