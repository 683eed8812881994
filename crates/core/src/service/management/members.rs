//! Members of the context org: listing (filtered and paged) and role changes.

use switchyard_proto::zitadel::management::v1 as pb;
use switchyard_proto::zitadel::member::v1 as member_v1;
use switchyard_proto::zitadel::user::v1 as user_v1;
use switchyard_proto::zitadel::v1 as zv1;
use tonic::{Request, Status};

use super::ManagementService;
use crate::command::{Details, MemberChange};
use crate::domain::org::Permission;
use crate::domain::user::UserKind;
use crate::service::convert::{details_v1, timestamp};

/// Whether `value` matches `query` under a `TextQueryMethod`.
fn text_matches(value: &str, query: &str, method: i32) -> bool {
    use crate::store::TextMethod;
    let Ok(m) = crate::service::convert::text_match(query, method) else {
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

pub(super) async fn list_org_members(
    svc: &ManagementService,
    request: Request<pb::ListOrgMembersRequest>,
) -> Result<pb::ListOrgMembersResponse, Status> {
    use switchyard_proto::zitadel::member::v1::search_query::Query;
    let (_, ctx) = svc.context(&request, Permission::OrgMemberRead).await?;
    let req = request.get_ref();
    let members = svc.core.org_members(&ctx).await?;
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
            Some(Query::LastNameQuery(x)) => text_matches(&item.last_name, &x.last_name, x.method),
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
