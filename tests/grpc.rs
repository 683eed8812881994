//! Native gRPC against the real binary, with tonic clients for v1 and v2: the user lifecycle,
//! ZITADEL's errors with their `ErrorDetail`, authentication, durability across SIGKILL,
//! reflection and health.

use prost::Message as _;
use switchyard_proto::google::rpc::Status as RpcStatus;
use switchyard_proto::zitadel::management::v1 as mgmt;
use switchyard_proto::zitadel::management::v1::management_service_client::ManagementServiceClient;
use switchyard_proto::zitadel::object::v2 as object_v2;
use switchyard_proto::zitadel::user::v2 as user_v2;
use switchyard_proto::zitadel::user::v2::user_service_client::UserServiceClient;
use switchyard_proto::zitadel::v1::ErrorDetail;
use switchyard_tests::Server;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

async fn channel(server: &Server) -> Channel {
    Channel::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

/// A request with `authorization` (and optionally `x-zitadel-orgid`) metadata.
fn authed<T>(message: T, bearer: &str, org: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer.parse().expect("ascii"));
    if let Some(org) = org {
        request
            .metadata_mut()
            .insert("x-zitadel-orgid", org.parse().expect("ascii"));
    }
    request
}

fn human_v1(user_name: &str) -> mgmt::AddHumanUserRequest {
    mgmt::AddHumanUserRequest {
        user_name: user_name.to_owned(),
        profile: Some(mgmt::add_human_user_request::Profile {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            ..Default::default()
        }),
        email: Some(mgmt::add_human_user_request::Email {
            email: format!("{user_name}@example.com"),
            is_email_verified: true,
        }),
        phone: None,
        initial_password: "Secret123!".into(),
    }
}

fn human_v2(username: &str) -> user_v2::AddHumanUserRequest {
    user_v2::AddHumanUserRequest {
        username: Some(username.to_owned()),
        profile: Some(user_v2::SetHumanProfile {
            given_name: "Grace".into(),
            family_name: "Hopper".into(),
            ..Default::default()
        }),
        email: Some(user_v2::SetHumanEmail {
            email: format!("{username}@example.com"),
            verification: Some(user_v2::set_human_email::Verification::IsVerified(true)),
        }),
        password_type: Some(user_v2::add_human_user_request::PasswordType::Password(
            user_v2::Password {
                password: "Secret123!".into(),
                change_required: false,
            },
        )),
        ..Default::default()
    }
}

/// The `zitadel.v1.ErrorDetail` in a status's `grpc-status-details-bin`.
fn error_detail(status: &Status) -> ErrorDetail {
    let rpc = RpcStatus::decode(status.details())
        .expect("grpc-status-details-bin is a google.rpc.Status");
    assert_eq!(rpc.code, status.code() as i32);
    let any = rpc.details.first().expect("one detail");
    assert_eq!(any.type_url, "type.googleapis.com/zitadel.v1.ErrorDetail");
    ErrorDetail::decode(any.value.as_slice()).expect("ErrorDetail")
}

#[tokio::test]
async fn v1_lifecycle_create_deactivate_reactivate_get() {
    let server = Server::start();
    let mut client = ManagementServiceClient::new(channel(&server).await);
    let bearer = server.bearer();

    let org = client
        .get_my_org(authed(mgmt::GetMyOrgRequest {}, &bearer, None))
        .await
        .expect("org");
    let org_id = org.into_inner().org.expect("org").id;
    let added = client
        .add_human_user(authed(human_v1("ada"), &bearer, None))
        .await
        .expect("add")
        .into_inner();
    assert_eq!(
        added
            .details
            .as_ref()
            .map(|d| (d.sequence, d.resource_owner.as_str())),
        Some((1, org_id.as_str()))
    );
    let id = added.user_id;

    let deactivated = client
        .deactivate_user(authed(
            mgmt::DeactivateUserRequest { id: id.clone() },
            &bearer,
            None,
        ))
        .await
        .expect("deactivate")
        .into_inner();
    assert_eq!(deactivated.details.map(|d| d.sequence), Some(2));
    let reactivated = client
        .reactivate_user(authed(
            mgmt::ReactivateUserRequest { id: id.clone() },
            &bearer,
            Some(&org_id),
        ))
        .await
        .expect("reactivate")
        .into_inner()
        .details
        .expect("details");
    assert_eq!(reactivated.sequence, 3);
    assert_eq!(reactivated.resource_owner, org_id);
    assert_eq!(
        reactivated.creation_date, reactivated.change_date,
        "details are the appended event's"
    );

    let user = client
        .get_user_by_id(authed(
            mgmt::GetUserByIdRequest { id: id.clone() },
            &bearer,
            None,
        ))
        .await
        .expect("get")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(user.state, 1, "USER_STATE_ACTIVE");
    assert_eq!(user.user_name, "ada");
    let details = user.details.expect("details");
    assert_eq!(details.sequence, 3);
    assert_eq!(
        details.change_date, reactivated.change_date,
        "change date is the last event's"
    );
    assert_ne!(
        details.creation_date, details.change_date,
        "creation date is the first event's"
    );

    // The same call again: ZITADEL's error, with its ErrorDetail.
    let status = client
        .reactivate_user(authed(
            mgmt::ReactivateUserRequest { id: id.clone() },
            &bearer,
            None,
        ))
        .await
        .expect_err("not inactive");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "User is not inactive (COMMAND-6M0sf)");
    let detail = error_detail(&status);
    assert_eq!(
        (detail.id.as_str(), detail.message.as_str()),
        ("COMMAND-6M0sf", "User is not inactive")
    );
}

#[tokio::test]
async fn v2_lifecycle_and_its_error_ids() {
    let server = Server::start();
    let mut client = UserServiceClient::new(channel(&server).await);
    let bearer = server.bearer();
    let added = client
        .add_human_user(authed(human_v2("grace"), &bearer, None))
        .await
        .expect("add")
        .into_inner();
    let id = added.user_id;
    for (step, want_sequence) in [
        ("deactivate", 2),
        ("reactivate", 3),
        ("lock", 4),
        ("unlock", 5),
    ] {
        let details = match step {
            "deactivate" => client
                .deactivate_user(authed(
                    user_v2::DeactivateUserRequest {
                        user_id: id.clone(),
                    },
                    &bearer,
                    None,
                ))
                .await
                .map(|r| r.into_inner().details),
            "reactivate" => client
                .reactivate_user(authed(
                    user_v2::ReactivateUserRequest {
                        user_id: id.clone(),
                    },
                    &bearer,
                    None,
                ))
                .await
                .map(|r| r.into_inner().details),
            "lock" => client
                .lock_user(authed(
                    user_v2::LockUserRequest {
                        user_id: id.clone(),
                    },
                    &bearer,
                    None,
                ))
                .await
                .map(|r| r.into_inner().details),
            _ => client
                .unlock_user(authed(
                    user_v2::UnlockUserRequest {
                        user_id: id.clone(),
                    },
                    &bearer,
                    None,
                ))
                .await
                .map(|r| r.into_inner().details),
        }
        .unwrap_or_else(|e| panic!("{step}: {e:?}"));
        assert_eq!(details.map(|d| d.sequence), Some(want_sequence), "{step}");
    }
    let got = client
        .get_user_by_id(authed(
            user_v2::GetUserByIdRequest {
                user_id: id.clone(),
            },
            &bearer,
            None,
        ))
        .await
        .expect("get")
        .into_inner();
    let user = got.user.expect("user");
    assert_eq!(user.state, user_v2::UserState::Active as i32);
    assert_eq!(user.username, "grace");

    let status = client
        .reactivate_user(authed(
            user_v2::ReactivateUserRequest {
                user_id: id.clone(),
            },
            &bearer,
            None,
        ))
        .await
        .expect_err("active");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_detail(&status).id, "COMMAND-s5qqcz97hf");

    let list = client
        .list_users(authed(user_v2::ListUsersRequest::default(), &bearer, None))
        .await
        .expect("list")
        .into_inner();
    // The bootstrap admin and grace.
    assert_eq!(list.details.map(|d| d.total_result), Some(2));

    let deleted = client
        .delete_user(authed(
            user_v2::DeleteUserRequest {
                user_id: id.clone(),
            },
            &bearer,
            None,
        ))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.details.map(|d| d.sequence), Some(6));
    let status = client
        .get_user_by_id(authed(
            user_v2::GetUserByIdRequest { user_id: id },
            &bearer,
            None,
        ))
        .await
        .expect_err("deleted");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn unknown_and_empty_ids_are_not_found_and_invalid() {
    let server = Server::start();
    let mut v1 = ManagementServiceClient::new(channel(&server).await);
    let mut v2 = UserServiceClient::new(channel(&server).await);
    let bearer = server.bearer();

    let status = v1
        .reactivate_user(authed(
            mgmt::ReactivateUserRequest {
                id: "123456".into(),
            },
            &bearer,
            None,
        ))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "User could not be found (COMMAND-4M0sd)");
    assert_eq!(error_detail(&status).id, "COMMAND-4M0sd");

    let status = v2
        .reactivate_user(authed(
            user_v2::ReactivateUserRequest {
                user_id: "123456".into(),
            },
            &bearer,
            None,
        ))
        .await
        .expect_err("unknown");
    assert_eq!(
        (status.code(), error_detail(&status).id.as_str()),
        (Code::NotFound, "COMMAND-9hy5kzbuk6")
    );

    let status = v1
        .reactivate_user(authed(
            mgmt::ReactivateUserRequest { id: String::new() },
            &bearer,
            None,
        ))
        .await
        .expect_err("empty");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "User ID missing (COMMAND-4M9ds)");

    let status = v2
        .deactivate_user(authed(
            user_v2::DeactivateUserRequest {
                user_id: " ".into(),
            },
            &bearer,
            None,
        ))
        .await
        .expect_err("blank");
    assert_eq!(
        (status.code(), error_detail(&status).id.as_str()),
        (Code::InvalidArgument, "COMMAND-78iiirat8y")
    );
}

#[tokio::test]
async fn missing_or_wrong_tokens_are_unauthenticated() {
    let server = Server::start();
    let mut client = ManagementServiceClient::new(channel(&server).await);
    let status = client
        .get_my_org(Request::new(mgmt::GetMyOrgRequest {}))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    for bearer in ["Bearer wrong-token", "Basic abc", "Bearer "] {
        let status = client
            .get_my_org(authed(mgmt::GetMyOrgRequest {}, bearer, None))
            .await
            .expect_err(bearer);
        assert_eq!(status.code(), Code::Unauthenticated, "{bearer}");
    }
    // The server keeps serving, and never logs the token.
    client
        .get_my_org(authed(mgmt::GetMyOrgRequest {}, &server.bearer(), None))
        .await
        .expect("valid token");
    assert!(
        server
            .log()
            .iter()
            .all(|line| !line.contains(&server.token)),
        "the token must never be logged"
    );
    assert!(
        server.log().iter().any(|line| line.contains("admin.pat")),
        "the token's path is logged"
    );
}

#[tokio::test]
async fn org_context_header_scopes_v1_users() {
    let server = Server::start();
    let mut client = ManagementServiceClient::new(channel(&server).await);
    let bearer = server.bearer();
    let second = client
        .add_org(authed(
            mgmt::AddOrgRequest {
                name: "Second Org".into(),
            },
            &bearer,
            None,
        ))
        .await
        .expect("add org")
        .into_inner()
        .id;
    let id = client
        .add_human_user(authed(human_v1("scoped"), &bearer, Some(&second)))
        .await
        .expect("add in second org")
        .into_inner()
        .user_id;
    // In the default org context the user does not exist.
    let status = client
        .deactivate_user(authed(
            mgmt::DeactivateUserRequest { id: id.clone() },
            &bearer,
            None,
        ))
        .await
        .expect_err("other org");
    assert_eq!(
        (status.code(), status.message()),
        (Code::NotFound, "User could not be found (COMMAND-3M9ds)")
    );
    client
        .deactivate_user(authed(
            mgmt::DeactivateUserRequest { id: id.clone() },
            &bearer,
            Some(&second),
        ))
        .await
        .expect("in its org");
    let status = client
        .get_my_org(authed(mgmt::GetMyOrgRequest {}, &bearer, Some("999999")))
        .await
        .expect_err("unknown org");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "Organisation doesn't exist (AUTH-Bs7Ds)");
}

#[tokio::test]
async fn duplicate_user_names_and_bad_input_get_clear_errors() {
    let server = Server::start();
    let mut client = ManagementServiceClient::new(channel(&server).await);
    let bearer = server.bearer();
    client
        .add_human_user(authed(human_v1("dup"), &bearer, None))
        .await
        .expect("first");
    let status = client
        .add_human_user(authed(human_v1("dup"), &bearer, None))
        .await
        .expect_err("dup");
    assert_eq!(
        (status.code(), status.message()),
        (Code::AlreadyExists, "User already exists (V3-DKcYh)")
    );

    let mut weak = human_v1("weak");
    weak.initial_password = "short".into();
    let status = client
        .add_human_user(authed(weak, &bearer, None))
        .await
        .expect_err("weak");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("Password"),
        "{}",
        status.message()
    );

    let mut nameless = human_v1("x");
    nameless.user_name.clear();
    let status = client
        .add_human_user(authed(nameless, &bearer, None))
        .await
        .expect_err("no name");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("UserName"),
        "{}",
        status.message()
    );

    // No password: the user starts INITIAL, and v1 refuses to deactivate it as ZITADEL does.
    let mut initial = human_v1("initial");
    initial.initial_password.clear();
    let id = client
        .add_human_user(authed(initial, &bearer, None))
        .await
        .expect("initial")
        .into_inner()
        .user_id;
    let user = client
        .get_user_by_id(authed(
            mgmt::GetUserByIdRequest { id: id.clone() },
            &bearer,
            None,
        ))
        .await
        .expect("get")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(user.state, 6, "USER_STATE_INITIAL");
    let status = client
        .deactivate_user(authed(mgmt::DeactivateUserRequest { id }, &bearer, None))
        .await
        .expect_err("initial");
    assert_eq!(
        status.message(),
        "User with state initial can only be deleted not deactivated (COMMAND-ke0fw)"
    );
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_and_restart() {
    let mut server = Server::start();
    let tmp = server.take_tmp().expect("temporary data dir");
    let bearer = server.bearer();
    let id = {
        let mut client = UserServiceClient::new(channel(&server).await);
        let id = client
            .add_human_user(authed(human_v2("durable"), &bearer, None))
            .await
            .expect("add")
            .into_inner()
            .user_id;
        client
            .deactivate_user(authed(
                user_v2::DeactivateUserRequest {
                    user_id: id.clone(),
                },
                &bearer,
                None,
            ))
            .await
            .expect("deactivate");
        id
    };
    // Killed right after the acknowledgement: no graceful shutdown.
    server.kill();

    let server = Server::start_in(tmp.path(), &[]);
    assert_eq!(
        server.token,
        bearer.trim_start_matches("Bearer "),
        "the admin token is not re-issued"
    );
    let mut client = UserServiceClient::new(channel(&server).await);
    let user = client
        .get_user_by_id(authed(
            user_v2::GetUserByIdRequest {
                user_id: id.clone(),
            },
            &bearer,
            None,
        ))
        .await
        .expect("the user survived")
        .into_inner();
    assert_eq!(
        user.user.map(|u| u.state),
        Some(user_v2::UserState::Inactive as i32)
    );
    assert_eq!(user.details.map(|d| d.sequence), Some(2));
    let details = client
        .reactivate_user(authed(
            user_v2::ReactivateUserRequest { user_id: id },
            &bearer,
            None,
        ))
        .await
        .expect("reactivate after restart")
        .into_inner()
        .details;
    assert_eq!(details.map(|d: object_v2::Details| d.sequence), Some(3));
}

#[tokio::test]
async fn reflection_lists_the_zitadel_services_and_health_serves() {
    use tokio_stream::StreamExt as _;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = Server::start();
    let mut reflection = ServerReflectionClient::new(channel(&server).await);
    let ask = |message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    // An unknown symbol is answered in-stream (grpc-go's behaviour), and the same stream goes on.
    let requests = vec![
        ask(MessageRequest::FileContainingSymbol(
            "no.such.Service".into(),
        )),
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "grpc.health.v1.Health".into(),
        )),
    ];
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection")
        .into_inner();
    let unknown = responses.next().await.expect("an answer").expect("ok");
    let Some(MessageResponse::ErrorResponse(error)) = unknown.message_response else {
        panic!("expected an error_response, got {unknown:?}");
    };
    assert_eq!(error.error_code, tonic::Code::NotFound as i32, "{error:?}");
    assert!(error.error_message.contains("no.such.Service"), "{error:?}");
    let response = responses.next().await.expect("one response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "zitadel.management.v1.ManagementService",
        "zitadel.user.v2.UserService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let health_file = responses.next().await.expect("a third answer").expect("ok");
    let Some(MessageResponse::FileDescriptorResponse(files)) = health_file.message_response else {
        panic!("expected the health descriptor, got {health_file:?}");
    };
    let file = prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice())
        .expect("a FileDescriptorProto");
    assert_eq!(file.package(), "grpc.health.v1");

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(&server).await);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "zitadel.user.v2.UserService".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}
