//! Organizations: the caller's org (GetMyOrg) and AddOrg.

use switchyard_proto::zitadel::management::v1 as pb;
use switchyard_proto::zitadel::org::v1 as org_v1;
use tonic::{Request, Status};

use super::ManagementService;
use crate::command::Details;
use crate::domain::org::Permission;
use crate::service::convert::details_v1;
use crate::service::{caller, invalid_field};

pub(super) async fn get_my_org(
    svc: &ManagementService,
    request: Request<pb::GetMyOrgRequest>,
) -> Result<pb::GetMyOrgResponse, Status> {
    let (_, ctx) = svc.context(&request, Permission::OrgRead).await?;
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
}

pub(super) async fn add_org(
    svc: &ManagementService,
    request: Request<pb::AddOrgRequest>,
) -> Result<pb::AddOrgResponse, Status> {
    // Any authenticated user may create an org, and becomes its owner.
    let caller = caller(&svc.core, &request).await?;
    let name = &request.get_ref().name;
    if !(1..=200).contains(&name.trim().chars().count()) {
        return Err(invalid_field(
            "AddOrgRequest",
            "Name",
            "value length must be between 1 and 200 runes, inclusive",
        ));
    }
    let (org, details) = svc.core.add_org(&caller, name).await?;
    Ok(pb::AddOrgResponse {
        id: org.id,
        details: Some(details_v1(&details)),
    })
}
