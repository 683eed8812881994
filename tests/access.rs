//! Identity and access through the real binary: two orgs with an org-scoped user manager each,
//! machine users and their personal access tokens, state gating access, member management and
//! a user's history.

use serde_json::Value;
use switchyard_proto::zitadel::management::v1 as mgmt;
use switchyard_proto::zitadel::management::v1::management_service_client::ManagementServiceClient;
use switchyard_proto::zitadel::user::v2 as user_v2;
use switchyard_proto::zitadel::user::v2::user_service_client::UserServiceClient;
use switchyard_tests::Server;
use tonic::transport::Channel;
use tonic::{Code, Request};

fn authed<T>(message: T, token: &str, org: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    if let Some(org) = org {
        request
            .metadata_mut()
            .insert("x-zitadel-orgid", org.parse().expect("ascii"));
    }
    request
}

struct Org {
    id: String,
    manager_id: String,
    manager_token: String,
    user_id: String,
}

async fn clients(
    server: &Server,
) -> (ManagementServiceClient<Channel>, UserServiceClient<Channel>) {
    let channel = Channel::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    (
        ManagementServiceClient::new(channel.clone()),
        UserServiceClient::new(channel),
    )
}

/// An org with a machine user that is its ORG_USER_MANAGER (with a PAT) and one human user.
async fn org_with_manager(
    mgmt: &mut ManagementServiceClient<Channel>,
    admin: &str,
    name: &str,
) -> Org {
    let id = mgmt
        .add_org(authed(
            mgmt::AddOrgRequest { name: name.into() },
            admin,
            None,
        ))
        .await
        .expect("org")
        .into_inner()
        .id;
    let ctx = Some(id.as_str());
    let manager_id = mgmt
        .add_machine_user(authed(
            mgmt::AddMachineUserRequest {
                user_name: format!("{name}-manager"),
                name: format!("{name} manager"),
                ..Default::default()
            },
            admin,
            ctx,
        ))
        .await
        .expect("machine user")
        .into_inner()
        .user_id;
    mgmt.add_org_member(authed(
        mgmt::AddOrgMemberRequest {
            user_id: manager_id.clone(),
            roles: vec!["ORG_USER_MANAGER".into()],
        },
        admin,
        ctx,
    ))
    .await
    .expect("member");
    let pat = mgmt
        .add_personal_access_token(authed(
            mgmt::AddPersonalAccessTokenRequest {
                user_id: manager_id.clone(),
                expiration_date: None,
            },
            admin,
            ctx,
        ))
        .await
        .expect("pat")
        .into_inner();
    assert!(!pat.token.is_empty() && !pat.token_id.is_empty());
    let user_id = mgmt
        .add_human_user(authed(
            mgmt::AddHumanUserRequest {
                user_name: format!("{name}-human"),
                profile: Some(mgmt::add_human_user_request::Profile {
                    first_name: "Org".into(),
                    last_name: "Member".into(),
                    ..Default::default()
                }),
                email: Some(mgmt::add_human_user_request::Email {
                    email: format!("{name}@example.com"),
                    is_email_verified: true,
                }),
                phone: None,
                initial_password: "Secret123!".into(),
            },
            admin,
            ctx,
        ))
        .await
        .expect("human")
        .into_inner()
        .user_id;
    Org {
        id,
        manager_id,
        manager_token: pat.token,
        user_id,
    }
}

#[tokio::test]
async fn org_scoped_managers_stay_inside_their_org() {
    let server = Server::start();
    let admin = server.token.clone();
    let (mut mgmt, mut v2) = clients(&server).await;
    let a = org_with_manager(&mut mgmt, &admin, "alpha").await;
    let b = org_with_manager(&mut mgmt, &admin, "beta").await;

    for org in [&a, &b] {
        let token = &org.manager_token;
        // Its own org (the default context: the manager's own org) works, v1 and v2.
        mgmt.deactivate_user(authed(
            mgmt::DeactivateUserRequest {
                id: org.user_id.clone(),
            },
            token,
            None,
        ))
        .await
        .expect("own org v1");
        v2.reactivate_user(authed(
            user_v2::ReactivateUserRequest {
                user_id: org.user_id.clone(),
            },
            token,
            None,
        ))
        .await
        .expect("own org v2");
    }

    // The other org's user: NOT_FOUND in v1 (outside the context org), PERMISSION_DENIED in v2.
    let status = mgmt
        .deactivate_user(authed(
            mgmt::DeactivateUserRequest {
                id: b.user_id.clone(),
            },
            &a.manager_token,
            None,
        ))
        .await
        .expect_err("other org v1");
    assert_eq!(status.code(), Code::NotFound);
    let status = v2
        .lock_user(authed(
            user_v2::LockUserRequest {
                user_id: b.user_id.clone(),
            },
            &a.manager_token,
            None,
        ))
        .await
        .expect_err("other org v2");
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::PermissionDenied,
            "No matching permissions found (AUTHZ-HKJD33)"
        )
    );
    // Naming the other org as context: no role there.
    let status = mgmt
        .deactivate_user(authed(
            mgmt::DeactivateUserRequest {
                id: b.user_id.clone(),
            },
            &a.manager_token,
            Some(&b.id),
        ))
        .await
        .expect_err("other org context");
    assert_eq!(
        (status.code(), status.message()),
        (
            Code::PermissionDenied,
            "No matching permissions found (AUTH-5mWD2)"
        )
    );
    // A user manager cannot manage members.
    let status = mgmt
        .add_org_member(authed(
            mgmt::AddOrgMemberRequest {
                user_id: a.user_id.clone(),
                roles: vec!["ORG_OWNER".into()],
            },
            &a.manager_token,
            None,
        ))
        .await
        .expect_err("no org.member.write");
    assert_eq!(status.code(), Code::PermissionDenied);

    // The instance owner reaches both.
    for org in [&a, &b] {
        mgmt.lock_user(authed(
            mgmt::LockUserRequest {
                id: org.user_id.clone(),
            },
            &admin,
            Some(&org.id),
        ))
        .await
        .expect("admin v1");
        v2.unlock_user(authed(
            user_v2::UnlockUserRequest {
                user_id: org.user_id.clone(),
            },
            &admin,
            None,
        ))
        .await
        .expect("admin v2");
    }

    let members = mgmt
        .list_org_members(authed(
            mgmt::ListOrgMembersRequest::default(),
            &admin,
            Some(&a.id),
        ))
        .await
        .expect("members")
        .into_inner();
    let mut roles: Vec<(String, Vec<String>)> = members
        .result
        .into_iter()
        .map(|m| (m.user_id, m.roles))
        .collect();
    roles.sort();
    let mut want = vec![
        (a.manager_id.clone(), vec!["ORG_USER_MANAGER".to_owned()]),
        (
            first_admin_id(&server, &mut mgmt).await,
            vec!["ORG_OWNER".to_owned()],
        ),
    ];
    want.sort();
    assert_eq!(
        roles, want,
        "the org's creator is its owner; the manager was added"
    );
}

async fn first_admin_id(server: &Server, mgmt: &mut ManagementServiceClient<Channel>) -> String {
    let users = mgmt
        .list_users(authed(
            mgmt::ListUsersRequest {
                queries: vec![switchyard_proto::zitadel::user::v1::SearchQuery {
                    query: Some(
                        switchyard_proto::zitadel::user::v1::search_query::Query::UserNameQuery(
                            switchyard_proto::zitadel::user::v1::UserNameQuery {
                                user_name: "zitadel-admin-sa".into(),
                                method: 0,
                            },
                        ),
                    ),
                }],
                ..Default::default()
            },
            &server.token,
            None,
        ))
        .await
        .expect("list")
        .into_inner();
    users.result.into_iter().next().expect("the admin").id
}

/// Calls GetMyOrg over REST, gRPC and Connect with `token`; returns the three outcomes as
/// HTTP-ish codes (REST status, gRPC code, Connect status).
async fn probe(server: &Server, token: &str) -> (u16, Code, u16) {
    let http = reqwest::Client::new();
    let rest = http
        .get(format!("{}/management/v1/orgs/me", server.url()))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("rest")
        .status()
        .as_u16();
    let (mut mgmt, _) = clients(server).await;
    let grpc = match mgmt
        .get_my_org(authed(mgmt::GetMyOrgRequest {}, token, None))
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    let connect = http
        .post(format!(
            "{}/zitadel.management.v1.ManagementService/GetMyOrg",
            server.url()
        ))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("connect");
    let connect_status = connect.status().as_u16();
    if connect_status != 200 {
        let body: Value = connect.json().await.expect("connect error json");
        assert_eq!(body["code"], "unauthenticated");
    }
    (rest, grpc, connect_status)
}

#[tokio::test]
async fn deactivated_or_locked_machine_users_lose_access_until_restored() {
    let server = Server::start();
    let admin = server.token.clone();
    let (mut mgmt, _) = clients(&server).await;
    let a = org_with_manager(&mut mgmt, &admin, "gamma").await;
    let ctx = Some(a.id.as_str());
    assert_eq!(probe(&server, &a.manager_token).await, (200, Code::Ok, 200));

    mgmt.deactivate_user(authed(
        mgmt::DeactivateUserRequest {
            id: a.manager_id.clone(),
        },
        &admin,
        ctx,
    ))
    .await
    .expect("deactivate");
    assert_eq!(
        probe(&server, &a.manager_token).await,
        (401, Code::Unauthenticated, 401)
    );
    mgmt.reactivate_user(authed(
        mgmt::ReactivateUserRequest {
            id: a.manager_id.clone(),
        },
        &admin,
        ctx,
    ))
    .await
    .expect("reactivate");
    assert_eq!(
        probe(&server, &a.manager_token).await,
        (200, Code::Ok, 200),
        "the token works again"
    );

    mgmt.lock_user(authed(
        mgmt::LockUserRequest {
            id: a.manager_id.clone(),
        },
        &admin,
        ctx,
    ))
    .await
    .expect("lock");
    assert_eq!(
        probe(&server, &a.manager_token).await,
        (401, Code::Unauthenticated, 401)
    );
    mgmt.unlock_user(authed(
        mgmt::UnlockUserRequest {
            id: a.manager_id.clone(),
        },
        &admin,
        ctx,
    ))
    .await
    .expect("unlock");
    assert_eq!(probe(&server, &a.manager_token).await, (200, Code::Ok, 200));

    // A removed token fails on the next request; the others keep working.
    let tokens = mgmt
        .list_personal_access_tokens(authed(
            mgmt::ListPersonalAccessTokensRequest {
                user_id: a.manager_id.clone(),
                query: None,
            },
            &admin,
            ctx,
        ))
        .await
        .expect("list pats")
        .into_inner();
    assert_eq!(tokens.result.len(), 1);
    mgmt.remove_personal_access_token(authed(
        mgmt::RemovePersonalAccessTokenRequest {
            user_id: a.manager_id.clone(),
            token_id: tokens.result[0].id.clone(),
        },
        &admin,
        ctx,
    ))
    .await
    .expect("remove pat");
    assert_eq!(
        probe(&server, &a.manager_token).await,
        (401, Code::Unauthenticated, 401)
    );
    assert_eq!(probe(&server, &admin).await, (200, Code::Ok, 200));

    // An expiration in the past is refused; PATs are for machine users only.
    let status = mgmt
        .add_personal_access_token(authed(
            mgmt::AddPersonalAccessTokenRequest {
                user_id: a.manager_id.clone(),
                expiration_date: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: 0,
                }),
            },
            &admin,
            ctx,
        ))
        .await
        .expect_err("past");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = mgmt
        .add_personal_access_token(authed(
            mgmt::AddPersonalAccessTokenRequest {
                user_id: a.user_id.clone(),
                expiration_date: None,
            },
            &admin,
            ctx,
        ))
        .await
        .expect_err("human");
    assert_eq!(status.code(), Code::FailedPrecondition);

    // No secret appears in the log.
    let log = server.log().join("\n");
    assert!(
        !log.contains(&a.manager_token) && !log.contains(&admin),
        "tokens stay out of the log"
    );
}

#[tokio::test]
async fn user_changes_list_the_history_newest_first_with_its_editor() {
    let server = Server::start();
    let admin = server.token.clone();
    let (mut mgmt, _) = clients(&server).await;
    let a = org_with_manager(&mut mgmt, &admin, "delta").await;
    let ctx = Some(a.id.as_str());
    mgmt.deactivate_user(authed(
        mgmt::DeactivateUserRequest {
            id: a.user_id.clone(),
        },
        &a.manager_token,
        None,
    ))
    .await
    .expect("deactivate");
    mgmt.reactivate_user(authed(
        mgmt::ReactivateUserRequest {
            id: a.user_id.clone(),
        },
        &admin,
        ctx,
    ))
    .await
    .expect("reactivate");
    let changes = mgmt
        .list_user_changes(authed(
            mgmt::ListUserChangesRequest {
                user_id: a.user_id.clone(),
                query: None,
            },
            &admin,
            ctx,
        ))
        .await
        .expect("changes")
        .into_inner()
        .result;
    let summary: Vec<(u64, String)> = changes
        .iter()
        .map(|c| {
            (
                c.sequence,
                c.event_type
                    .as_ref()
                    .map(|e| e.localized_message.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (3, "user.reactivated".to_owned()),
            (2, "user.deactivated".to_owned()),
            (1, "user.human.added".to_owned())
        ]
    );
    assert_eq!(
        changes[1].editor_id, a.manager_id,
        "the manager deactivated it"
    );
    assert_eq!(changes[1].editor_display_name, "delta manager");

    let page = mgmt
        .list_user_changes(authed(
            mgmt::ListUserChangesRequest {
                user_id: a.user_id.clone(),
                query: Some(switchyard_proto::zitadel::change::v1::ChangeQuery {
                    sequence: 1,
                    limit: 1,
                    asc: true,
                }),
            },
            &admin,
            ctx,
        ))
        .await
        .expect("page")
        .into_inner()
        .result;
    assert_eq!(
        page.iter().map(|c| c.sequence).collect::<Vec<_>>(),
        vec![2],
        "after sequence 1, one entry"
    );
}

#[tokio::test]
async fn member_roles_are_validated_and_members_can_be_changed_and_removed() {
    let server = Server::start();
    let admin = server.token.clone();
    let (mut mgmt, _) = clients(&server).await;
    let a = org_with_manager(&mut mgmt, &admin, "epsilon").await;
    let ctx = Some(a.id.as_str());
    for roles in [
        vec![],
        vec!["IAM_OWNER".to_owned()],
        vec!["NOPE".to_owned()],
    ] {
        let status = mgmt
            .add_org_member(authed(
                mgmt::AddOrgMemberRequest {
                    user_id: a.user_id.clone(),
                    roles: roles.clone(),
                },
                &admin,
                ctx,
            ))
            .await
            .expect_err("bad roles");
        assert_eq!(status.code(), Code::InvalidArgument, "{roles:?}");
    }
    let status = mgmt
        .add_org_member(authed(
            mgmt::AddOrgMemberRequest {
                user_id: a.manager_id.clone(),
                roles: vec!["ORG_OWNER".into()],
            },
            &admin,
            ctx,
        ))
        .await
        .expect_err("already a member");
    assert_eq!(status.code(), Code::AlreadyExists);
    // Promote the manager to owner: it may then manage members.
    mgmt.update_org_member(authed(
        mgmt::UpdateOrgMemberRequest {
            user_id: a.manager_id.clone(),
            roles: vec!["ORG_OWNER".into()],
        },
        &admin,
        ctx,
    ))
    .await
    .expect("update");
    mgmt.add_org_member(authed(
        mgmt::AddOrgMemberRequest {
            user_id: a.user_id.clone(),
            roles: vec!["ORG_OWNER_VIEWER".into()],
        },
        &a.manager_token,
        None,
    ))
    .await
    .expect("the new owner adds a viewer");
    mgmt.remove_org_member(authed(
        mgmt::RemoveOrgMemberRequest {
            user_id: a.manager_id.clone(),
        },
        &admin,
        ctx,
    ))
    .await
    .expect("remove");
    let status = mgmt
        .get_my_org(authed(mgmt::GetMyOrgRequest {}, &a.manager_token, None))
        .await
        .expect_err("no role left");
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = mgmt
        .remove_org_member(authed(
            mgmt::RemoveOrgMemberRequest {
                user_id: a.manager_id.clone(),
            },
            &admin,
            ctx,
        ))
        .await
        .expect_err("not a member");
    assert_eq!(status.code(), Code::NotFound);
}
