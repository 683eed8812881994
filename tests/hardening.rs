//! Hardening regressions through the real binary (issue 13): a hostile or careless client must
//! not starve the others, lock the instance out, or slip ambiguous input past the server.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::Value;
use switchyard_proto::zitadel::user::v2 as user_v2;
use switchyard_proto::zitadel::user::v2::user_service_client::UserServiceClient;
use switchyard_tests::Server;
use tonic::Code;
use tonic::transport::Channel;

async fn channel(server: &Server) -> Channel {
    Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn two_authorization_headers_are_unauthenticated() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let url = format!("{}/v2/users/me", server.url());
    // Sanity: the admin token alone works.
    let one = client
        .post(format!("{}/v2/users", server.url()))
        .header("authorization", server.bearer())
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_ne!(
        one.status(),
        StatusCode::UNAUTHORIZED,
        "one header authenticates"
    );
    for order in [
        [server.bearer(), "Bearer junk".to_owned()],
        ["Bearer junk".to_owned(), server.bearer()],
        [server.bearer(), server.bearer()],
    ] {
        let response = client
            .post(format!("{}/v2/users", server.url()))
            .header("authorization", &order[0])
            .header("authorization", &order[1])
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{url} {order:?}"
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], 16, "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains("more than one authorization header"),
            "{error}"
        );
    }
    // Native gRPC: two metadata values.
    let mut users = UserServiceClient::new(channel(&server).await);
    let mut request = tonic::Request::new(user_v2::GetUserByIdRequest {
        user_id: "x".into(),
    });
    request
        .metadata_mut()
        .append("authorization", server.bearer().parse().unwrap());
    request
        .metadata_mut()
        .append("authorization", "Bearer junk".parse().unwrap());
    let status = users.get_user_by_id(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn store_files_are_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // A data dir an older version (or an operator) left open to everyone.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let server = Server::start_with_umask(&data, &[], "000");
    // A write, so that the WAL and shared-memory files exist.
    let response = reqwest::Client::new()
        .post(format!("{}/management/v1/orgs", server.url()))
        .header("authorization", server.bearer())
        .json(&serde_json::json!({ "name": "Private" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mode = |name: &str| {
        let path = if name.is_empty() {
            data.clone()
        } else {
            data.join(name)
        };
        std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700, "the data dir");
    for file in [
        "switchyard.db",
        "switchyard.db-wal",
        "switchyard.db-shm",
        "admin.pat",
    ] {
        assert_eq!(mode(file), 0o600, "{file}: {:o}", mode(file));
    }
}
