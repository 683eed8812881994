//! Members of the context org: listing (filtered and paged by the store's member search) and
//! role changes.

use switchyard_proto::zitadel::management::v1 as pb;
use switchyard_proto::zitadel::member::v1 as member_v1;
use switchyard_proto::zitadel::user::v1 as user_v1;
use switchyard_proto::zitadel::v1 as zv1;
use tonic::{Request, Status};

use super::ManagementService;
use crate::command::{Details, MemberChange};
use crate::domain::org::Permission;
use crate::domain::user::UserKind;
use crate::service::convert::{details_v1, text_match, timestamp};
use crate::store::UserFilter;

pub(super) async fn list_org_members(
    svc: &ManagementService,
    request: Request<pb::ListOrgMembersRequest>,
) -> Result<pb::ListOrgMembersResponse, Status> {
    use switchyard_proto::zitadel::member::v1::search_query::Query;
    let (_, ctx) = svc.context(&request, Permission::OrgMemberRead).await?;
    let req = request.get_ref();
    let filters = req
        .queries
        .iter()
        .filter_map(|q| q.query.as_ref())
        .map(|q| {
            Ok(match q {
                Query::UserIdQuery(x) => UserFilter::InIds(vec![x.user_id.clone()]),
                Query::EmailQuery(x) => UserFilter::Email(text_match(&x.email, x.method)?),
                Query::FirstNameQuery(x) => {
                    UserFilter::FirstName(text_match(&x.first_name, x.method)?)
                }
                Query::LastNameQuery(x) => {
                    UserFilter::LastName(text_match(&x.last_name, x.method)?)
                }
            })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    let list = req.query.unwrap_or_default();
    let page = svc
        .core
        .org_members(&ctx, filters, list.offset, list.limit)
        .await?;
    let details = details_v1(&Details {
        sequence: ctx.org.sequence,
        created_us: ctx.org.created_us,
        changed_us: ctx.org.changed_us,
        resource_owner: ctx.org.id.clone(),
    });
    let result = page
        .members
        .into_iter()
        .map(|(member, user)| {
            let human = user.as_ref().and_then(|u| match &u.kind {
                UserKind::Human(h) => Some(h),
                UserKind::Machine(_) => None,
            });
            member_v1::Member {
                user_id: member.user_id,
                details: Some(details.clone()),
                roles: member.roles,
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
            }
        })
        .collect();
    Ok(pb::ListOrgMembersResponse {
        details: Some(zv1::ListDetails {
            total_result: page.total,
            processed_sequence: ctx.org.sequence,
            view_timestamp: Some(timestamp(crate::domain::now_us())),
        }),
        result,
    })
}

pub(super) async fn add_org_member(
    svc: &ManagementService,
    request: Request<pb::AddOrgMemberRequest>,
) -> Result<pb::AddOrgMemberResponse, Status> {
    let (caller, ctx) = svc.context(&request, Permission::OrgMemberWrite).await?;
    let req = request.into_inner();
    let details = svc
        .core
        .set_org_member(&caller, &ctx, &req.user_id, MemberChange::Add(req.roles))
        .await?;
    Ok(pb::AddOrgMemberResponse {
        details: Some(details_v1(&details)),
    })
}

pub(super) async fn update_org_member(
    svc: &ManagementService,
    request: Request<pb::UpdateOrgMemberRequest>,
) -> Result<pb::UpdateOrgMemberResponse, Status> {
    let (caller, ctx) = svc.context(&request, Permission::OrgMemberWrite).await?;
    let req = request.into_inner();
    let details = svc
        .core
        .set_org_member(&caller, &ctx, &req.user_id, MemberChange::Update(req.roles))
        .await?;
    Ok(pb::UpdateOrgMemberResponse {
        details: Some(details_v1(&details)),
    })
}

pub(super) async fn remove_org_member(
    svc: &ManagementService,
    request: Request<pb::RemoveOrgMemberRequest>,
) -> Result<pb::RemoveOrgMemberResponse, Status> {
    let (caller, ctx) = svc.context(&request, Permission::OrgMemberDelete).await?;
    let req = request.into_inner();
    let details = svc
        .core
        .set_org_member(&caller, &ctx, &req.user_id, MemberChange::Remove)
        .await?;
    Ok(pb::RemoveOrgMemberResponse {
        details: Some(details_v1(&details)),
    })
}
