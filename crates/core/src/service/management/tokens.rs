//! Personal access tokens of the context org's machine users.

use switchyard_proto::zitadel::management::v1 as pb;
use switchyard_proto::zitadel::user::v1 as user_v1;
use switchyard_proto::zitadel::v1 as zv1;
use tonic::{Request, Status};

use super::ManagementService;
use crate::command::Details;
use crate::domain::org::Permission;
use crate::service::convert::{details_v1, timestamp, timestamp_us};

pub(super) async fn list_personal_access_tokens(
    svc: &ManagementService,
    request: Request<pb::ListPersonalAccessTokensRequest>,
) -> Result<pb::ListPersonalAccessTokensResponse, Status> {
    let (_, ctx) = svc.context(&request, Permission::UserRead).await?;
    let req = request.get_ref();
    let tokens = svc.core.personal_access_tokens(&ctx, &req.user_id).await?;
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
}

pub(super) async fn add_personal_access_token(
    svc: &ManagementService,
    request: Request<pb::AddPersonalAccessTokenRequest>,
) -> Result<pb::AddPersonalAccessTokenResponse, Status> {
    let (caller, ctx) = svc.context(&request, Permission::UserWrite).await?;
    let req = request.get_ref();
    let expiration = req.expiration_date.as_ref().map(timestamp_us).transpose()?;
    let issued = svc
        .core
        .add_personal_access_token(&caller, &ctx, &req.user_id, expiration)
        .await?;
    Ok(pb::AddPersonalAccessTokenResponse {
        token_id: issued.token.id,
        token: issued.secret,
        details: Some(details_v1(&issued.details)),
    })
}

pub(super) async fn remove_personal_access_token(
    svc: &ManagementService,
    request: Request<pb::RemovePersonalAccessTokenRequest>,
) -> Result<pb::RemovePersonalAccessTokenResponse, Status> {
    let (caller, ctx) = svc.context(&request, Permission::UserWrite).await?;
    let req = request.get_ref();
    let details = svc
        .core
        .remove_personal_access_token(&caller, &ctx, &req.user_id, &req.token_id)
        .await?;
    Ok(pb::RemovePersonalAccessTokenResponse {
        details: Some(details_v1(&details)),
    })
}
