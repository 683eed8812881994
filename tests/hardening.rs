//! Hardening regressions through the real binary (issue 13): a hostile or careless client must
//! not starve the others, lock the instance out, or slip ambiguous input past the server.
#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use switchyard_proto::zitadel::user::v2 as user_v2;
use switchyard_proto::zitadel::user::v2::user_service_client::UserServiceClient;
use switchyard_tests::Server;
use tonic::Code;
use tonic::transport::Channel;

/// How long any awaited condition may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// Writes `text` as a configuration file in `dir`.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts a server on a fresh data directory with the configuration `text`.
fn start_with_config(text: &str) -> (Server, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), text);
    let data = tmp.path().join("data");
    (
        Server::start_in(&data, &["--config", config.to_str().unwrap()]),
        tmp,
    )
}

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

/// Reads until the peer closes (or [`DEADLINE`] passes).
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn stalled_bodies_are_answered_408_and_free_their_slots() {
    let (server, _tmp) =
        start_with_config("[limits]\nmax_connections = 4\nbody_read_timeout = \"1s\"\n");
    let started = Instant::now();
    // As many connections as the server takes, each with a body that stops after one byte.
    // With a valid token, since credentials are checked before the body is read (a caller
    // without one is answered 401 at once and never holds a slot).
    let head = format!(
        "POST /v2/users/human HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Authorization: {}\r\nContent-Length: 1000\r\n\r\n{{",
        server.bearer()
    );
    let stalled: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            stream.set_read_timeout(Some(DEADLINE)).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    // Another client is served once the stalled ones are cut off.
    let client = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let ok = client
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .expect("served while the stalled bodies hold every slot");
    assert_eq!(ok.status(), StatusCode::OK);
    for mut stream in stalled {
        let answer = tokio::task::spawn_blocking(move || read_to_close(&mut stream))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("request body not received in time"),
            "{answer}"
        );
    }
    assert!(started.elapsed() < DEADLINE);
    server.wait_for_log(4, |l| l.contains("request body stalled"));

    // h2c: HEADERS without END_STREAM, then nothing: DEADLINE_EXCEEDED.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let never = http_body_util::StreamBody::new(futures_never());
    let request = http::Request::post(format!(
        "{}/zitadel.user.v2.UserService/ListUsers",
        server.url()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("authorization", server.bearer())
    .body(never)
    .unwrap();
    let response = tokio::time::timeout(DEADLINE, sender.send_request(request))
        .await
        .expect("answered in time")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["grpc-status"],
        "4",
        "{:?}",
        response.headers()
    );
}

/// A body stream that never yields.
fn futures_never()
-> impl tokio_stream::Stream<Item = Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>> {
    tokio_stream::pending()
}

#[tokio::test]
async fn idle_timeout_spares_live_streams_and_shutdown_ends_them_with_trailers() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let (mut server, _tmp) =
        start_with_config("[limits]\nidle_timeout = \"1s\"\n[shutdown]\ngrace_period = \"1s\"\n");
    let mut health = HealthClient::new(channel(&server).await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().expect("the current status");
    assert_eq!(first.status, 1, "SERVING");
    // Well past the idle timeout the stream is still open: nothing arrives, nothing ends.
    let quiet = tokio::time::timeout(Duration::from_millis(2500), watch.message()).await;
    assert!(quiet.is_err(), "the live stream was cut: {quiet:?}");
    // At shutdown, once the grace period is over, the stream ends with trailers.
    server.signal("TERM");
    let end = tokio::time::timeout(DEADLINE, watch.message())
        .await
        .expect("the stream ends");
    let status = end.expect_err("ended with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "server shutting down", "{status:?}");
    let exit = server.wait_exit(DEADLINE).expect("exited");
    assert!(exit.success(), "{exit:?}");
}

/// The admin's user id, from the start-up line that announced its token file.
fn admin_id(server: &Server) -> String {
    server
        .log()
        .iter()
        .find_map(|line| {
            let value: Value = serde_json::from_str(line).ok()?;
            value["fields"]["admin_user_id"].as_str().map(str::to_owned)
        })
        .expect("the bootstrap line names the admin")
}

/// Sends `method path` with `token` and a JSON body; answers (status, body).
async fn call(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = client
        .request(method, format!("{}{path}", server.url()))
        .header("authorization", format!("Bearer {token}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_last_owner_cannot_lock_the_instance_out() {
    use reqwest::Method;
    let server = Server::start();
    let client = reqwest::Client::new();
    let admin = admin_id(&server);
    let token = server.token.clone();
    let refused = [
        (
            Method::POST,
            format!("/management/v1/users/{admin}/_deactivate"),
        ),
        (Method::POST, format!("/management/v1/users/{admin}/_lock")),
        (Method::DELETE, format!("/management/v1/users/{admin}")),
        (Method::POST, format!("/v2/users/{admin}/deactivate")),
        (Method::POST, format!("/v2/users/{admin}/lock")),
        (Method::DELETE, format!("/v2/users/{admin}")),
    ];
    for (method, path) in &refused {
        let (status, body) = call(
            &client,
            &server,
            &token,
            method.clone(),
            path,
            serde_json::json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {body}");
        assert_eq!(
            body["code"], 9,
            "FAILED_PRECONDITION for {method} {path}: {body}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("COMMAND-sy0wnr"),
            "{body}"
        );
    }
    // Its only token cannot be revoked either…
    let pats = format!("/management/v1/users/{admin}/pats");
    let (_, list) = call(
        &client,
        &server,
        &token,
        Method::POST,
        &format!("{pats}/_search"),
        serde_json::json!({}),
    )
    .await;
    let first = list["result"][0]["id"]
        .as_str()
        .expect("the bootstrap token")
        .to_owned();
    let (status, body) = call(
        &client,
        &server,
        &token,
        Method::DELETE,
        &format!("{pats}/{first}"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 9, "{body}");
    // …but with a second one, the first may go, and then the second is the last.
    let (status, added) = call(
        &client,
        &server,
        &token,
        Method::POST,
        &pats,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let second_id = added["tokenId"].as_str().expect("tokenId").to_owned();
    let second = added["token"].as_str().expect("token").to_owned();
    let (status, body) = call(
        &client,
        &server,
        &second,
        Method::DELETE,
        &format!("{pats}/{first}"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        &client,
        &server,
        &second,
        Method::DELETE,
        &format!("{pats}/{second_id}"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(body["code"], 9, "{status} {body}");
    // The admin still works after all of it.
    let (status, body) = call(
        &client,
        &server,
        &second,
        Method::POST,
        "/v2/users",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn admin_recover_issues_a_new_owner_token_offline() {
    use reqwest::Method;
    let mut first = Server::start();
    let tmp = first.take_tmp().expect("tmp");
    let data = tmp.path().to_owned();
    let old_admin = admin_id(&first);
    let old_token = first.token.clone();
    first.kill();
    // The token is lost.
    std::fs::remove_file(data.join("admin.pat")).unwrap();
    let run = switchyard_tests::run_with_deadline(
        std::process::Command::new(switchyard_tests::binary())
            .args(["admin", "recover", "--data-dir"])
            .arg(&data),
        "switchyard admin recover",
        DEADLINE,
    );
    assert!(run.success, "{}", run.stderr);
    assert!(run.stderr.contains("IAM_OWNER"), "{}", run.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("admin.pat"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let server = Server::start_in(&data, &[]);
    assert_ne!(server.token, old_token, "a new token");
    let client = reqwest::Client::new();
    let (status, body) = call(
        &client,
        &server,
        &server.token,
        Method::POST,
        "/v2/users",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the recovered token administers: {body}"
    );
    // With a second owner, the old admin may now be deactivated.
    let (status, body) = call(
        &client,
        &server,
        &server.token,
        Method::POST,
        &format!("/v2/users/{old_admin}/deactivate"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(server);
    drop(tmp);
}

#[tokio::test]
async fn json_with_a_duplicate_field_or_an_out_of_range_integer_is_invalid_argument() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let cases = [
        (
            r#"{"query":{"limit":1},"query":{"limit":2}}"#,
            "field query is given twice",
        ),
        (
            r#"{"sortingColumn":"USER_FIELD_NAME_USER_NAME","sorting_column":"USER_FIELD_NAME_EMAIL"}"#,
            r#"(as "sortingColumn" and "sorting_column")"#,
        ),
        (
            r#"{"query":{"offset":18446744073709551616}}"#,
            "field query.offset: 18446744073709552000 is out of range for uint64",
        ),
        (
            r#"{"query":{"limit":4294967296}}"#,
            "field query.limit: 4294967296 is out of range for uint32",
        ),
        (
            r#"{"queries":[{"userNameQuery":{"userName":"a"},"emailQuery":{"emailAddress":"b"}}]}"#,
            "are both set",
        ),
    ];
    for (body, want) in cases {
        // REST and Connect (JSON) share the reader.
        for (url, connect) in [
            (format!("{}/v2/users", server.url()), false),
            (
                format!("{}/zitadel.user.v2.UserService/ListUsers", server.url()),
                true,
            ),
        ] {
            let mut request = client
                .post(&url)
                .header("authorization", server.bearer())
                .header("content-type", "application/json")
                .body(body);
            if connect {
                request = request.header("connect-protocol-version", "1");
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url} {body}");
            let error: Value = response.json().await.unwrap();
            let code_ok = if connect {
                error["code"] == "invalid_argument"
            } else {
                error["code"] == 3
            };
            assert!(code_ok, "{url} {body}: {error}");
            let message = error["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(want),
                "{url} {body}: {message} lacks {want}"
            );
        }
    }
    // The same query once is fine.
    let response = client
        .post(format!("{}/v2/users", server.url()))
        .header("authorization", server.bearer())
        .json(&serde_json::json!({ "query": { "limit": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
