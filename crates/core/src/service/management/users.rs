//! Users of the context org: reads, searches, creation (human, import, machine), the lifecycle
//! commands and the change history.

use switchyard_proto::zitadel::change::v1 as change_v1;
use switchyard_proto::zitadel::management::v1 as pb;
use switchyard_proto::zitadel::v1 as zv1;
use tonic::{Request, Status};

use super::ManagementService;
use crate::command::{NewHuman, NewMachine, PasswordInput, UserScope};
use crate::domain::org::Permission;
use crate::domain::user::{Human, LifecycleCommand};
use crate::service::convert::{details_v1, filter_v1, timestamp, user_query, user_v1};
use crate::service::{invalid_field, org_domains};

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

/// The user name rule of the v1 creation messages: 1 to 200 characters.
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

pub(super) async fn get_user_by_id(
    svc: &ManagementService,
    request: Request<pb::GetUserByIdRequest>,
) -> Result<pb::GetUserByIdResponse, Status> {
    let (caller, ctx) = svc.context(&request, Permission::UserRead).await?;
    let user = svc
        .core
        .get_user(&caller, UserScope::V1(&ctx), &request.get_ref().id)
        .await?;
    let domain = ctx.org.primary_domain.clone();
    Ok(pb::GetUserByIdResponse {
        user: Some(user_v1(&user, &domain)),
    })
}

pub(super) async fn list_users(
    svc: &ManagementService,
    request: Request<pb::ListUsersRequest>,
) -> Result<pb::ListUsersResponse, Status> {
    let (caller, ctx) = svc.context(&request, Permission::UserRead).await?;
    let req = request.get_ref();
    let list = req.query.unwrap_or_default();
    let query = user_query(
        &req.queries,
        filter_v1,
        req.sorting_column,
        (list.offset, list.limit, list.asc),
    )?;
    let page = svc
        .core
        .list_users(&caller, UserScope::V1(&ctx), query)
        .await?;
    let domains = org_domains(&svc.core, &page.users).await?;
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
}

pub(super) async fn add_human_user(
    svc: &ManagementService,
    request: Request<pb::AddHumanUserRequest>,
) -> Result<pb::AddHumanUserResponse, Status> {
    let (caller, ctx) = svc.context(&request, Permission::UserWrite).await?;
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
    let password =
        (!req.initial_password.is_empty()).then_some(PasswordInput::Plain(req.initial_password));
    let new = NewHuman {
        user_id: None,
        org_id: ctx.org.id.clone(),
        username: req.user_name,
        human,
        password,
    };
    let (user, details) = svc.core.add_human(&caller, new).await?;
    Ok(pb::AddHumanUserResponse {
        user_id: user.id,
        details: Some(details_v1(&details)),
    })
}

pub(super) async fn import_human_user(
    svc: &ManagementService,
    request: Request<pb::ImportHumanUserRequest>,
) -> Result<pb::ImportHumanUserResponse, Status> {
    let (caller, ctx) = svc.context(&request, Permission::UserWrite).await?;
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
    human.password_change_required = req.password_change_required;
    let password = match (req.password.is_empty(), req.hashed_password) {
        (false, _) => Some(PasswordInput::Plain(req.password)),
        (true, Some(hashed)) if !hashed.value.is_empty() => {
            Some(PasswordInput::Hashed(hashed.value))
        }
        _ => None,
    };
    let new = NewHuman {
        user_id: None,
        org_id: ctx.org.id.clone(),
        username: req.user_name,
        human,
        password,
    };
    let (user, details) = svc.core.add_human(&caller, new).await?;
    Ok(pb::ImportHumanUserResponse {
        user_id: user.id,
        details: Some(details_v1(&details)),
        passwordless_registration: None,
    })
}

pub(super) async fn deactivate_user(
    svc: &ManagementService,
    request: Request<pb::DeactivateUserRequest>,
) -> Result<pb::DeactivateUserResponse, Status> {
    let request = request.map(|r| r.id);
    let details = svc
        .lifecycle(request, LifecycleCommand::Deactivate, Permission::UserWrite)
        .await?;
    Ok(pb::DeactivateUserResponse {
        details: Some(details_v1(&details)),
    })
}

pub(super) async fn reactivate_user(
    svc: &ManagementService,
    request: Request<pb::ReactivateUserRequest>,
) -> Result<pb::ReactivateUserResponse, Status> {
    let request = request.map(|r| r.id);
    let details = svc
        .lifecycle(request, LifecycleCommand::Reactivate, Permission::UserWrite)
        .await?;
    Ok(pb::ReactivateUserResponse {
        details: Some(details_v1(&details)),
    })
}

pub(super) async fn lock_user(
    svc: &ManagementService,
    request: Request<pb::LockUserRequest>,
) -> Result<pb::LockUserResponse, Status> {
    let request = request.map(|r| r.id);
    let details = svc
        .lifecycle(request, LifecycleCommand::Lock, Permission::UserWrite)
        .await?;
    Ok(pb::LockUserResponse {
        details: Some(details_v1(&details)),
    })
}

pub(super) async fn unlock_user(
    svc: &ManagementService,
    request: Request<pb::UnlockUserRequest>,
) -> Result<pb::UnlockUserResponse, Status> {
    let request = request.map(|r| r.id);
    let details = svc
        .lifecycle(request, LifecycleCommand::Unlock, Permission::UserWrite)
        .await?;
    Ok(pb::UnlockUserResponse {
        details: Some(details_v1(&details)),
    })
}

pub(super) async fn remove_user(
    svc: &ManagementService,
    request: Request<pb::RemoveUserRequest>,
) -> Result<pb::RemoveUserResponse, Status> {
    let request = request.map(|r| r.id);
    let details = svc
        .lifecycle(request, LifecycleCommand::Remove, Permission::UserDelete)
        .await?;
    Ok(pb::RemoveUserResponse {
        details: Some(details_v1(&details)),
    })
}

pub(super) async fn list_user_changes(
    svc: &ManagementService,
    request: Request<pb::ListUserChangesRequest>,
) -> Result<pb::ListUserChangesResponse, Status> {
    let (_, ctx) = svc.context(&request, Permission::UserRead).await?;
    let req = request.get_ref();
    let query = req.query.unwrap_or_default();
    let events = svc
        .core
        .user_changes(&ctx, &req.user_id, query.sequence, query.limit, query.asc)
        .await?;
    let mut editors = std::collections::HashMap::new();
    let mut result = Vec::with_capacity(events.len());
    for event in events {
        if !editors.contains_key(&event.creator) {
            let editor = svc
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
            editor_preferred_login_name: editor.map(|u| u.username.clone()).unwrap_or_default(),
            editor_avatar_url: String::new(),
        });
    }
    Ok(pb::ListUserChangesResponse { result })
}

pub(super) async fn add_machine_user(
    svc: &ManagementService,
    request: Request<pb::AddMachineUserRequest>,
) -> Result<pb::AddMachineUserResponse, Status> {
    let (caller, ctx) = svc.context(&request, Permission::UserWrite).await?;
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
    let (user, details) = svc.core.add_machine(&caller, &ctx, new).await?;
    Ok(pb::AddMachineUserResponse {
        user_id: user.id,
        details: Some(details_v1(&details)),
    })
}
