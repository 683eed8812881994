//! The call pipeline through the real binary: deadlines (`grpc-timeout`) end slow calls on
//! gRPC and gRPC-Web before they commit, abandoned calls are counted and logged once on every
//! protocol and leave the in-flight gauge, and `limits.max_body_bytes` bounds gRPC-family
//! messages.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use prost::Message as _;
use reqwest::StatusCode;
use switchyard_proto::zitadel::user::v2 as user_v2;
use switchyard_tests::Server;

/// How long any awaited condition may take.
const DEADLINE: Duration = Duration::from_secs(20);

const ADD_HUMAN: &str = "/zitadel.user.v2.UserService/AddHumanUser";

fn h2c() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

/// A v2 AddHumanUser with a password (hashing it makes the call slow enough to time out).
fn add_human(username: &str, padding: usize) -> user_v2::AddHumanUserRequest {
    user_v2::AddHumanUserRequest {
        username: Some(username.to_owned()),
        profile: Some(user_v2::SetHumanProfile {
            given_name: "Slow".into(),
            family_name: "x".repeat(padding.max(1)),
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

/// A length-prefixed gRPC frame.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The gRPC status of an answer: trailers-only (headers), or gRPC-Web's trailer frame.
async fn grpc_status(response: reqwest::Response) -> (Option<String>, String) {
    if let Some(code) = response.headers().get("grpc-status") {
        let message = response
            .headers()
            .get("grpc-message")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        return (Some(code.to_str().unwrap().to_owned()), message);
    }
    let web = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web"));
    let body = response.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body).into_owned();
    let code = if web {
        text.split("grpc-status:")
            .nth(1)
            .and_then(|rest| rest.split("\r\n").next())
            .map(str::to_owned)
    } else {
        // gRPC's status is in the HTTP/2 trailers, which reqwest does not show; a message
        // frame is only ever sent by a call that succeeded.
        (body.first() == Some(&0) && body.len() > 5).then(|| "0".to_owned())
    };
    (code, text)
}

/// Sends `message` to `path` over gRPC (h2c) or gRPC-Web (HTTP/1.1), with extra headers.
async fn call(
    server: &Server,
    web: bool,
    path: &str,
    message: &[u8],
    headers: &[(&str, &str)],
) -> (Option<String>, String) {
    let client = if web { reqwest::Client::new() } else { h2c() };
    let content_type = if web {
        "application/grpc-web+proto"
    } else {
        "application/grpc"
    };
    let mut request = client
        .post(format!("{}{path}", server.url()))
        .header("authorization", server.bearer())
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(frame(message));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    grpc_status(request.send().await.unwrap()).await
}

#[tokio::test]
async fn grpc_timeout_ends_a_slow_call_before_it_commits_on_grpc_and_grpc_web() {
    let server = Server::start();
    for web in [false, true] {
        let name = format!("deadline-{}", if web { "web" } else { "grpc" });
        let message = add_human(&name, 1).encode_to_vec();
        // `1m` is one millisecond: long before the password is hashed and the user committed.
        let (code, text) = call(&server, web, ADD_HUMAN, &message, &[("grpc-timeout", "1m")]).await;
        assert_eq!(
            code.as_deref(),
            Some("4"),
            "web={web}: DEADLINE_EXCEEDED: {text}"
        );
        // Nothing was written: the same user name is still free.
        let (code, text) = call(&server, web, ADD_HUMAN, &message, &[]).await;
        assert_eq!(
            code.as_deref(),
            Some("0"),
            "web={web}: created afterwards: {text}"
        );
    }
}

#[tokio::test]
async fn a_malformed_grpc_timeout_is_the_same_clear_error_everywhere() {
    let server = Server::start();
    let message = add_human("bad-timeout", 1).encode_to_vec();
    for web in [false, true] {
        let (code, text) = call(
            &server,
            web,
            ADD_HUMAN,
            &message,
            &[("grpc-timeout", "abc")],
        )
        .await;
        assert_eq!(
            code.as_deref(),
            Some("3"),
            "web={web}: INVALID_ARGUMENT: {text}"
        );
        assert!(
            text.contains("grpc-timeout"),
            "web={web}: names the header: {text}"
        );
    }
    let response = reqwest::Client::new()
        .post(format!("{}/v2/users/human", server.url()))
        .header("authorization", server.bearer())
        .header("grpc-timeout", "abc")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("grpc-timeout"));
}

#[tokio::test]
async fn over_limit_messages_are_resource_exhausted_on_grpc_and_grpc_web() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("switchyard.toml");
    std::fs::write(&config, "[limits]\nmax_body_bytes = 4096\n").unwrap();
    let server = Server::start_in(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    // 192 KiB under a 4 KiB limit, and one just under the limit that is served.
    let big = add_human("big", 192 * 1024).encode_to_vec();
    let small = add_human("small", 16).encode_to_vec();
    for web in [false, true] {
        let (code, text) = call(&server, web, ADD_HUMAN, &big, &[]).await;
        assert_eq!(
            code.as_deref(),
            Some("8"),
            "web={web}: RESOURCE_EXHAUSTED: {text}"
        );
        assert!(text.contains("4096"), "web={web}: names the limit: {text}");
    }
    let (code, text) = call(&server, false, ADD_HUMAN, &small, &[]).await;
    assert_eq!(code.as_deref(), Some("0"), "small message served: {text}");
}

/// A sample of `/metrics` whose line starts with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|rest| rest.trim().split(' ').next())
        .and_then(|n| n.parse().ok())
}

/// The `switchyard::access` lines of AddHumanUser calls, by protocol.
fn access_lines(server: &Server, protocol: &str) -> usize {
    server
        .log()
        .iter()
        .filter(|line| line.contains("switchyard::access"))
        .filter(|line| line.contains("AddHumanUser"))
        .filter(|line| line.contains(&format!("\"protocol\":\"{protocol}\"")))
        .count()
}

/// The sum of `switchyard_requests_total` over codes for AddHumanUser over `protocol`, and the
/// in-flight gauge of `protocol`.
fn counts(metrics: &str, protocol: &str) -> (f64, Option<f64>) {
    let total = metrics
        .lines()
        .filter(|l| l.starts_with("switchyard_requests_total{"))
        .filter(|l| l.contains(&format!("protocol=\"{protocol}\"")))
        .filter(|l| l.contains("method=\"AddHumanUser\""))
        .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()))
        .sum();
    let in_flight = sample(
        metrics,
        &format!("switchyard_requests_in_flight{{protocol=\"{protocol}\"}}"),
    );
    (total, in_flight)
}

#[tokio::test]
async fn abandoned_calls_are_counted_and_logged_once_and_leave_the_gauge() {
    let server = Server::start();
    let url = server.url();
    let bearer = server.bearer();
    let json = |name: &str| {
        format!(
            r#"{{"username":"{name}","profile":{{"givenName":"G","familyName":"F"}},"email":{{"email":"{name}@example.com","isVerified":true}},"password":{{"password":"Secret123!"}}}}"#
        )
    };
    let metrics = || async {
        reqwest::get(format!("{}/metrics", server.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let attempts = [
        (
            "grpc",
            h2c()
                .post(format!("{url}{ADD_HUMAN}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(frame(&add_human("gone-grpc", 1).encode_to_vec())),
        ),
        (
            "grpc-web",
            reqwest::Client::new()
                .post(format!("{url}{ADD_HUMAN}"))
                .header("content-type", "application/grpc-web+proto")
                .body(frame(&add_human("gone-web", 1).encode_to_vec())),
        ),
        (
            "connect",
            reqwest::Client::new()
                .post(format!("{url}{ADD_HUMAN}"))
                .header("content-type", "application/json")
                .header("connect-protocol-version", "1")
                .body(json("gone-connect")),
        ),
        (
            "rest",
            reqwest::Client::new()
                .post(format!("{url}/v2/users/human"))
                .header("content-type", "application/json")
                .body(json("gone-rest")),
        ),
    ];
    for (protocol, request) in attempts {
        let request = request.header("authorization", &bearer);
        let client = tokio::spawn(async move { request.send().await });
        // Give up as soon as the server has the call (or, if it was quicker, has answered it).
        let until = Instant::now() + DEADLINE;
        loop {
            let (total, in_flight) = counts(&metrics().await, protocol);
            if in_flight == Some(1.0) || total >= 1.0 {
                break;
            }
            assert!(Instant::now() < until, "{protocol}: the call never arrived");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        client.abort();
        let _ = client.await;
    }
    let until = Instant::now() + DEADLINE;
    loop {
        let text = metrics().await;
        let settled = ["grpc", "grpc-web", "connect", "rest"]
            .iter()
            .all(|protocol| {
                counts(&text, protocol) == (1.0, Some(0.0)) && access_lines(&server, protocol) == 1
            });
        if settled {
            break;
        }
        assert!(
            Instant::now() < until,
            "every abandoned call counted once, logged once, out of flight:\n{text}\n{}",
            server.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn credentials_are_checked_before_the_body_is_parsed() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let url = server.url();
    for token in [None, Some("Bearer not-a-token")] {
        // REST and Connect JSON: a body that is not JSON, without a valid token.
        for (path, connect) in [("/v2/users/human", false), (ADD_HUMAN, true)] {
            let mut request = client
                .post(format!("{url}{path}"))
                .header("content-type", "application/json")
                .body("{not json");
            if connect {
                request = request.header("connect-protocol-version", "1");
            }
            if let Some(token) = token {
                request = request.header("authorization", token);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {token:?}: {body}");
            assert!(
                !body.contains("JSON"),
                "{path}: the body was not parsed: {body}"
            );
        }
        // gRPC: a frame that is not the message.
        let mut request = h2c()
            .post(format!("{url}{ADD_HUMAN}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(frame(b"\xff\xff\xff"));
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        let (code, text) = grpc_status(request.send().await.unwrap()).await;
        assert_eq!(
            code.as_deref(),
            Some("16"),
            "gRPC {token:?}: UNAUTHENTICATED: {text}"
        );
    }
    // With the token, the same malformed body is the caller's INVALID_ARGUMENT.
    let response = client
        .post(format!("{url}/v2/users/human"))
        .header("authorization", server.bearer())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
