//! v2 users: creation, reads, searches and the lifecycle commands.

use switchyard_proto::zitadel::object::v2 as object_v2;
use switchyard_proto::zitadel::user::v2 as pb;
use tonic::{Request, Status};

use super::UserService;
use crate::command::{NewHuman, PasswordInput, UserScope};
use crate::domain::DomainError;
use crate::domain::org::Permission;
use crate::domain::user::{Human, LifecycleCommand};
use crate::service::convert::{details_v2, filter_v2, timestamp, user_query, user_v2};
use crate::service::{caller, invalid_field, org_domains};

pub(super) async fn add_human_user(
    svc: &UserService,
    request: Request<pb::AddHumanUserRequest>,
) -> Result<pb::AddHumanUserResponse, Status> {
    use object_v2::organization::Org;
    use pb::add_human_user_request::PasswordType;
    use pb::set_human_email::Verification;
    let caller = caller(&svc.core, &request).await?;
    let req = request.into_inner();
    const MSG: &str = "AddHumanUserRequest";
    if !req.metadata.is_empty() || !req.idp_links.is_empty() || req.totp_secret.is_some() {
        return Err(Status::unimplemented(
            "metadata, IDP links and TOTP secrets are not supported yet",
        ));
    }
    // Without an organization the user joins the caller's own org.
    let org_id = match req.organization.and_then(|o| o.org) {
        None => caller.org_id.clone(),
        Some(Org::OrgId(id)) => id,
        Some(Org::OrgDomain(_)) => {
            return Err(Status::unimplemented(
                "organization.orgDomain is not supported yet; use orgId",
            ));
        }
    };
    if !caller.has_permission(Permission::UserWrite, &org_id) {
        return Err(DomainError::permission_denied(
            "AUTHZ-HKJD33",
            "No matching permissions found",
        )
        .into());
    }
    if svc
        .core
        .store()
        .org(&org_id)
        .await
        .map_err(crate::command::store_error)?
        .is_none()
    {
        return Err(DomainError::not_found("COMMAND-4M0sd", "Organisation not found").into());
    }
    let profile = req
        .profile
        .ok_or_else(|| invalid_field(MSG, "Profile", "value is required"))?;
    let email = req
        .email
        .ok_or_else(|| invalid_field(MSG, "Email", "value is required"))?;
    let email_verified = match email.verification {
        Some(Verification::IsVerified(v)) => v,
        Some(Verification::ReturnCode(_)) => {
            return Err(Status::unimplemented(
                "returning email codes is not supported yet",
            ));
        }
        // Sending a code needs a mail server; the address stays unverified.
        Some(Verification::SendCode(_)) | None => false,
    };
    let (phone, phone_verified) = match req.phone {
        Some(p) => (
            p.phone,
            matches!(
                p.verification,
                Some(pb::set_human_phone::Verification::IsVerified(true))
            ),
        ),
        None => (String::new(), false),
    };
    let (password, change_required) = match req.password_type {
        Some(PasswordType::Password(p)) => {
            (Some(PasswordInput::Plain(p.password)), p.change_required)
        }
        Some(PasswordType::HashedPassword(p)) => {
            (Some(PasswordInput::Hashed(p.hash)), p.change_required)
        }
        None => (None, false),
    };
    let human = Human {
        first_name: profile.given_name,
        last_name: profile.family_name,
        nick_name: profile.nick_name.unwrap_or_default(),
        display_name: profile.display_name.unwrap_or_default(),
        preferred_language: profile.preferred_language.unwrap_or_default(),
        gender: profile.gender.unwrap_or_default(),
        email: email.email,
        email_verified,
        phone,
        phone_verified,
        password_change_required: change_required,
        password_changed_us: None,
    };
    let new = NewHuman {
        user_id: req.user_id,
        org_id,
        username: req.username.unwrap_or_default(),
        human,
        password,
    };
    let (user, details) = svc.core.add_human(&caller, new).await?;
    Ok(pb::AddHumanUserResponse {
        user_id: user.id,
        details: Some(details_v2(&details)),
        email_code: None,
        phone_code: None,
    })
}

pub(super) async fn get_user_by_id(
    svc: &UserService,
    request: Request<pb::GetUserByIdRequest>,
) -> Result<pb::GetUserByIdResponse, Status> {
    let caller = caller(&svc.core, &request).await?;
    let user = svc
        .core
        .get_user(&caller, UserScope::V2, &request.get_ref().user_id)
        .await?;
    let domains = org_domains(&svc.core, [&user]).await?;
    let domain = domains
        .get(&user.resource_owner)
        .cloned()
        .unwrap_or_default();
    let details = crate::command::read_details(&user);
    Ok(pb::GetUserByIdResponse {
        details: Some(details_v2(&details)),
        user: Some(user_v2(&user, &domain)),
    })
}

pub(super) async fn list_users(
    svc: &UserService,
    request: Request<pb::ListUsersRequest>,
) -> Result<pb::ListUsersResponse, Status> {
    let caller = caller(&svc.core, &request).await?;
    let req = request.get_ref();
    let list = req.query.unwrap_or_default();
    let query = user_query(
        &req.queries,
        filter_v2,
        req.sorting_column,
        (list.offset, list.limit, list.asc),
    )?;
    let page = svc.core.list_users(&caller, UserScope::V2, query).await?;
    let domains = org_domains(&svc.core, &page.users).await?;
    Ok(pb::ListUsersResponse {
        details: Some(object_v2::ListDetails {
            total_result: page.total,
            processed_sequence: 0,
            timestamp: Some(timestamp(crate::domain::now_us())),
        }),
        sorting_column: req.sorting_column,
        result: page
            .users
            .iter()
            .map(|u| user_v2(u, domains.get(&u.resource_owner).map_or("", String::as_str)))
            .collect(),
    })
}

pub(super) async fn deactivate_user(
    svc: &UserService,
    request: Request<pb::DeactivateUserRequest>,
) -> Result<pb::DeactivateUserResponse, Status> {
    let details = svc
        .lifecycle(request.map(|r| r.user_id), LifecycleCommand::Deactivate)
        .await?;
    Ok(pb::DeactivateUserResponse {
        details: Some(details),
    })
}

pub(super) async fn reactivate_user(
    svc: &UserService,
    request: Request<pb::ReactivateUserRequest>,
) -> Result<pb::ReactivateUserResponse, Status> {
    let details = svc
        .lifecycle(request.map(|r| r.user_id), LifecycleCommand::Reactivate)
        .await?;
    Ok(pb::ReactivateUserResponse {
        details: Some(details),
    })
}

pub(super) async fn lock_user(
    svc: &UserService,
    request: Request<pb::LockUserRequest>,
) -> Result<pb::LockUserResponse, Status> {
    let details = svc
        .lifecycle(request.map(|r| r.user_id), LifecycleCommand::Lock)
        .await?;
    Ok(pb::LockUserResponse {
        details: Some(details),
    })
}

pub(super) async fn unlock_user(
    svc: &UserService,
    request: Request<pb::UnlockUserRequest>,
) -> Result<pb::UnlockUserResponse, Status> {
    let details = svc
        .lifecycle(request.map(|r| r.user_id), LifecycleCommand::Unlock)
        .await?;
    Ok(pb::UnlockUserResponse {
        details: Some(details),
    })
}

pub(super) async fn delete_user(
    svc: &UserService,
    request: Request<pb::DeleteUserRequest>,
) -> Result<pb::DeleteUserResponse, Status> {
    let details = svc
        .lifecycle(request.map(|r| r.user_id), LifecycleCommand::Remove)
        .await?;
    Ok(pb::DeleteUserResponse {
        details: Some(details),
    })
}
