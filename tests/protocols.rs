//! REST, gRPC-Web and Connect against the real binary: every protocol reaches the same handler,
//! completes the same flow, and gets the same error for the same wrong call.

use base64::Engine as _;
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchyard_proto::zitadel::user::v2 as user_v2;
use switchyard_tests::Server;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn http1() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
}

fn h2c() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client")
}

/// POST JSON (or no body) with the admin token; returns status and parsed JSON.
async fn rest(
    client: &reqwest::Client,
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = client
        .request(method, format!("{}{path}", server.url()))
        .header("authorization", server.bearer())
        .header("accept", "application/json");
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let text = response.text().await.expect("body");
    let value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
    (status, value)
}

fn add_v1_body(user_name: &str) -> String {
    json!({
        "userName": user_name,
        "profile": {"firstName": "Rest", "lastName": "Caller"},
        "email": {"email": format!("{user_name}@example.com"), "isEmailVerified": true},
        "initialPassword": "Secret123!"
    })
    .to_string()
}

fn add_v2_body(username: &str) -> String {
    json!({
        "username": username,
        "profile": {"givenName": "Rest", "familyName": "Caller"},
        "email": {"email": format!("{username}@example.com"), "isVerified": true},
        "password": {"password": "Secret123!"}
    })
    .to_string()
}

async fn add_user_v1(server: &Server, user_name: &str) -> String {
    let (status, body) = rest(
        &http1(),
        server,
        reqwest::Method::POST,
        "/management/v1/users/human",
        Some(&add_v1_body(user_name)),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["userId"].as_str().expect("userId").to_owned()
}

fn not_inactive_v1() -> Value {
    json!({
        "code": 9,
        "message": "User is not inactive (COMMAND-6M0sf)",
        "details": [{
            "@type": "type.googleapis.com/zitadel.v1.ErrorDetail",
            "id": "COMMAND-6M0sf",
            "message": "User is not inactive"
        }]
    })
}

fn is_rfc3339(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() >= 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T')
}

#[tokio::test]
async fn rest_v1_reactivate_flow_matches_zitadels_documented_answers() {
    let server = Server::start();
    let client = http1();
    let id = add_user_v1(&server, "restv1").await;
    let path = |action: &str| format!("/management/v1/users/{id}/{action}");

    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        &path("_deactivate"),
        Some("{}"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["details"]["sequence"], "2",
        "64-bit integers are strings"
    );

    // The documented call, verbatim: body `{}`.
    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        &path("_reactivate"),
        Some("{}"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let details = &body["details"];
    assert_eq!(details["sequence"], "3");
    assert!(
        is_rfc3339(&details["creationDate"]) && is_rfc3339(&details["changeDate"]),
        "{body}"
    );
    assert!(
        details["resourceOwner"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "only details: {body}"
    );

    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        &path("_reactivate"),
        Some("{}"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, not_inactive_v1());

    // No body at all works like `{}`.
    let (status, _) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        &path("_deactivate"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::GET,
        &format!("/management/v1/users/{id}"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["state"], "USER_STATE_INACTIVE");
    assert_eq!(body["user"]["userName"], "restv1");
    assert_eq!(body["user"]["human"]["email"]["isEmailVerified"], true);
    assert!(
        body["user"]["human"]["profile"].get("nickName").is_none(),
        "zero values are omitted: {body}"
    );
}

#[tokio::test]
async fn rest_v2_flow_over_http2() {
    let server = Server::start();
    let client = h2c();
    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        "/v2/users/human",
        Some(&add_v2_body("restv2")),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["userId"].as_str().expect("userId").to_owned();
    for (action, sequence) in [("deactivate", "2"), ("reactivate", "3")] {
        let (status, body) = rest(
            &client,
            &server,
            reqwest::Method::POST,
            &format!("/v2/users/{id}/{action}"),
            Some("{}"),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
        assert_eq!(body["details"]["sequence"], sequence);
    }
    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::GET,
        &format!("/v2/users/{id}"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["state"], "USER_STATE_ACTIVE");
    assert_eq!(body["user"]["username"], "restv2");

    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        &format!("/v2/users/{id}/reactivate"),
        Some("{}"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 9);
    assert_eq!(body["message"], "User is not inactive (COMMAND-s5qqcz97hf)");
    assert_eq!(body["details"][0]["id"], "COMMAND-s5qqcz97hf");

    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::DELETE,
        &format!("/v2/users/{id}"),
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::GET,
        &format!("/v2/users/{id}"),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!(5))
    );
}

#[tokio::test]
async fn rest_errors_have_the_right_status_and_body() {
    let server = Server::start();
    let client = http1();
    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        "/management/v1/users/4242/_reactivate",
        Some("{}"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "User could not be found (COMMAND-4M0sd)");

    let id = add_user_v1(&server, "errs").await;
    let path = format!("/management/v1/users/{id}/_deactivate");
    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        &path,
        Some("{\"id\": "),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 3);
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("line 1 column"),
        "says where it broke: {message}"
    );

    // Unknown fields are ignored, as ZITADEL does.
    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        &path,
        Some(r#"{"unknownField": 1}"#),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for bearer in [None, Some("Bearer wrong")] {
        let mut request = client
            .post(format!("{}{path}", server.url()))
            .header("content-type", "application/json")
            .body("{}");
        if let Some(bearer) = bearer {
            request = request.header("authorization", bearer);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bearer:?}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], 16, "{bearer:?}");
    }

    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::GET,
        "/management/v1/orgs/me",
        None,
        &[("x-zitadel-orgid", "31337")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "Organisation doesn't exist (AUTH-Bs7Ds)");

    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::GET,
        "/management/v1/nowhere",
        None,
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!(5))
    );
}

#[tokio::test]
async fn rest_org_header_selects_a_second_org() {
    let server = Server::start();
    let client = http1();
    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        "/management/v1/orgs",
        Some(r#"{"name":"Second"}"#),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = body["id"].as_str().expect("org id").to_owned();
    let org = [("x-zitadel-orgid", second.as_str())];
    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        "/management/v1/users/human",
        Some(&add_v1_body("second")),
        &org,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["details"]["resourceOwner"], second.as_str());
    let id = body["userId"].as_str().expect("userId").to_owned();
    let path = format!("/management/v1/users/{id}/_deactivate");
    let (status, _) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        &path,
        Some("{}"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not in the default org");
    let (status, _) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        &path,
        Some("{}"),
        &org,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::GET,
        "/management/v1/orgs/me",
        None,
        &org,
    )
    .await;
    assert_eq!(
        (status, body["org"]["name"].clone()),
        (StatusCode::OK, json!("Second"))
    );
}

/// A gRPC frame: flag, big-endian length, message.
fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a gRPC-Web body into its message and its trailers.
fn parse_grpc_web(mut body: &[u8]) -> (Option<Vec<u8>>, Vec<(String, String)>) {
    let (mut message, mut trailers) = (None, Vec::new());
    while body.len() >= 5 {
        let flag = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = &body[5..5 + len];
        if flag & 0x80 != 0 {
            for line in String::from_utf8_lossy(payload)
                .split("\r\n")
                .filter(|l| !l.is_empty())
            {
                let (k, v) = line.split_once(':').expect("trailer line");
                trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        } else {
            message = Some(payload.to_vec());
        }
        body = &body[5 + len..];
    }
    (message, trailers)
}

fn trailer<'a>(trailers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    trailers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Decodes a grpc-web-text body. Each frame may be base64-encoded separately, padding and all,
/// so decode quad by quad as browsers' clients do, not the body as one string.
fn decode_text(body: &[u8]) -> Vec<u8> {
    let body: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    assert_eq!(body.len() % 4, 0, "base64 quads");
    body.chunks(4)
        .flat_map(|quad| B64.decode(quad).expect("base64 quad"))
        .collect()
}

/// One gRPC-Web unary call; `text` selects base64 mode.
async fn grpc_web(
    client: &reqwest::Client,
    server: &Server,
    method: &str,
    request: &impl prost::Message,
    text: bool,
) -> (Option<Vec<u8>>, Vec<(String, String)>) {
    let body = frame(0, &request.encode_to_vec());
    let (content_type, body) = if text {
        ("application/grpc-web-text", B64.encode(body).into_bytes())
    } else {
        ("application/grpc-web+proto", body)
    };
    let response = client
        .post(format!(
            "{}/zitadel.user.v2.UserService/{method}",
            server.url()
        ))
        .header("content-type", content_type)
        .header("x-grpc-web", "1")
        .header("authorization", server.bearer())
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    let got_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        got_type.starts_with(content_type.trim_end_matches("+proto")),
        "{got_type}"
    );
    let bytes = response.bytes().await.expect("body");
    let bytes = if text {
        decode_text(&bytes)
    } else {
        bytes.to_vec()
    };
    parse_grpc_web(&bytes)
}

#[tokio::test]
async fn grpc_web_binary_and_text_flow() {
    let server = Server::start();
    for (text, client) in [
        (false, http1()),
        (true, http1()),
        (false, h2c()),
        (true, h2c()),
    ] {
        let add = user_v2::AddHumanUserRequest {
            username: Some(format!("web{}{}", text, rand_suffix())),
            profile: Some(user_v2::SetHumanProfile {
                given_name: "Web".into(),
                family_name: "Client".into(),
                ..Default::default()
            }),
            email: Some(user_v2::SetHumanEmail {
                email: "web@example.com".into(),
                verification: Some(user_v2::set_human_email::Verification::IsVerified(true)),
            }),
            password_type: Some(user_v2::add_human_user_request::PasswordType::Password(
                user_v2::Password {
                    password: "Secret123!".into(),
                    change_required: false,
                },
            )),
            ..Default::default()
        };
        let (message, trailers) = grpc_web(&client, &server, "AddHumanUser", &add, text).await;
        assert_eq!(trailer(&trailers, "grpc-status"), Some("0"), "{trailers:?}");
        let id = user_v2::AddHumanUserResponse::decode(message.expect("message").as_slice())
            .expect("decode")
            .user_id;

        let (_, trailers) = grpc_web(
            &client,
            &server,
            "DeactivateUser",
            &user_v2::DeactivateUserRequest {
                user_id: id.clone(),
            },
            text,
        )
        .await;
        assert_eq!(trailer(&trailers, "grpc-status"), Some("0"));
        let (message, trailers) = grpc_web(
            &client,
            &server,
            "ReactivateUser",
            &user_v2::ReactivateUserRequest {
                user_id: id.clone(),
            },
            text,
        )
        .await;
        assert_eq!(trailer(&trailers, "grpc-status"), Some("0"));
        let details = user_v2::ReactivateUserResponse::decode(message.expect("message").as_slice())
            .expect("decode")
            .details;
        assert_eq!(details.map(|d| d.sequence), Some(3));
        let (message, _) = grpc_web(
            &client,
            &server,
            "GetUserByID",
            &user_v2::GetUserByIdRequest {
                user_id: id.clone(),
            },
            text,
        )
        .await;
        let user = user_v2::GetUserByIdResponse::decode(message.expect("message").as_slice())
            .expect("decode")
            .user;
        assert_eq!(
            user.map(|u| u.state),
            Some(user_v2::UserState::Active as i32)
        );

        let (_, trailers) = grpc_web(
            &client,
            &server,
            "ReactivateUser",
            &user_v2::ReactivateUserRequest { user_id: id },
            text,
        )
        .await;
        assert_eq!(trailer(&trailers, "grpc-status"), Some("9"), "{trailers:?}");
        assert_eq!(
            trailer(&trailers, "grpc-message"),
            Some("User%20is%20not%20inactive%20(COMMAND-s5qqcz97hf)"),
            "percent-encoded as gRPC requires"
        );
        assert!(trailer(&trailers, "grpc-status-details-bin").is_some());
    }
}

/// A short unique suffix so that user names don't collide within one server.
fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

async fn connect_json(server: &Server, method: &str, body: Value) -> (StatusCode, Value) {
    let response = http1()
        .post(format!(
            "{}/zitadel.user.v2.UserService/{method}",
            server.url()
        ))
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .header("authorization", server.bearer())
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn connect_json_and_proto_flow() {
    let server = Server::start();
    let (status, body) = connect_json(
        &server,
        "AddHumanUser",
        serde_json::from_str(&add_v2_body("connectjson")).expect("json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["userId"].as_str().expect("userId").to_owned();
    let (status, body) = connect_json(&server, "DeactivateUser", json!({"userId": id})).await;
    assert_eq!(
        (status, body["details"]["sequence"].clone()),
        (StatusCode::OK, json!("2"))
    );
    // Proto names are accepted too.
    let (status, body) = connect_json(&server, "ReactivateUser", json!({"user_id": id})).await;
    assert_eq!(
        (status, body["details"]["sequence"].clone()),
        (StatusCode::OK, json!("3"))
    );
    let (status, body) = connect_json(&server, "GetUserByID", json!({"userId": id})).await;
    assert_eq!(
        (status, body["user"]["state"].clone()),
        (StatusCode::OK, json!("USER_STATE_ACTIVE"))
    );

    let (status, body) = connect_json(&server, "ReactivateUser", json!({"userId": id})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "failed_precondition");
    assert_eq!(body["message"], "User is not inactive (COMMAND-s5qqcz97hf)");
    assert_eq!(body["details"][0]["type"], "zitadel.v1.ErrorDetail");
    let value = body["details"][0]["value"].as_str().expect("value");
    let detail = switchyard_proto::zitadel::v1::ErrorDetail::decode(
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(value)
            .expect("unpadded base64")
            .as_slice(),
    )
    .expect("ErrorDetail");
    assert_eq!(detail.id, "COMMAND-s5qqcz97hf");

    // Binary Connect: the same call, application/proto both ways; errors stay JSON.
    let call = |method: &str, message: Vec<u8>| {
        http1()
            .post(format!(
                "{}/zitadel.user.v2.UserService/{method}",
                server.url()
            ))
            .header("content-type", "application/proto")
            .header("authorization", server.bearer())
            .body(message)
            .send()
    };
    let response = call(
        "DeactivateUser",
        user_v2::DeactivateUserRequest {
            user_id: id.clone(),
        }
        .encode_to_vec(),
    )
    .await
    .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/proto");
    let details = user_v2::DeactivateUserResponse::decode(response.bytes().await.expect("body"))
        .expect("decode")
        .details;
    assert_eq!(details.map(|d| d.sequence), Some(4));
    let response = call(
        "DeactivateUser",
        user_v2::DeactivateUserRequest { user_id: id }.encode_to_vec(),
    )
    .await
    .expect("send");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("error json");
    assert_eq!(body["code"], "failed_precondition");
    assert_eq!(
        body["message"],
        "User already inactive (COMMAND-5gunjw0cd7)"
    );

    // A body that is not the input message is the caller's error, not the server's.
    let response = call("DeactivateUser", vec![0xff, 0xff, 0xff])
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("error json");
    assert_eq!(body["code"], "invalid_argument", "{body}");

    let response = http1()
        .post(format!(
            "{}/zitadel.user.v2.UserService/GetUserByID",
            server.url()
        ))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "unauthenticated");
}

/// The same wrong call — reactivating an active user through v2 — over every protocol: one
/// handler, one error, rendered in each protocol's own form.
#[tokio::test]
async fn every_protocol_gets_the_same_error_for_the_same_wrong_call() {
    let server = Server::start();
    let id = add_user_v1(&server, "same").await;
    let want_message = "User is not inactive (COMMAND-s5qqcz97hf)";

    let (status, body) = rest(
        &http1(),
        &server,
        reqwest::Method::POST,
        &format!("/v2/users/{id}/reactivate"),
        Some("{}"),
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].clone(), body["message"].clone()),
        (StatusCode::BAD_REQUEST, json!(9), json!(want_message))
    );

    let (status, body) = connect_json(&server, "ReactivateUser", json!({"userId": id})).await;
    assert_eq!(
        (status, body["code"].clone(), body["message"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("failed_precondition"),
            json!(want_message)
        )
    );

    for text in [false, true] {
        let (_, trailers) = grpc_web(
            &h2c(),
            &server,
            "ReactivateUser",
            &user_v2::ReactivateUserRequest {
                user_id: id.clone(),
            },
            text,
        )
        .await;
        assert_eq!(trailer(&trailers, "grpc-status"), Some("9"));
        let message = trailer(&trailers, "grpc-message")
            .expect("grpc-message")
            .replace("%20", " ");
        assert_eq!(message, want_message);
    }

    let channel = tonic::transport::Channel::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = user_v2::user_service_client::UserServiceClient::new(channel);
    let mut request = tonic::Request::new(user_v2::ReactivateUserRequest { user_id: id });
    request
        .metadata_mut()
        .insert("authorization", server.bearer().parse().expect("ascii"));
    let status = grpc.reactivate_user(request).await.expect_err("active");
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::FailedPrecondition, want_message)
    );

    // One handler served them all, and the call observer logged each call once: five access
    // lines in all, whatever the protocol.
    let is_call = |line: &str| {
        line.contains("switchyard::access")
            && line.contains("zitadel.user.v2.UserService")
            && line.contains("ReactivateUser")
            && line.contains("FAILED_PRECONDITION")
    };
    let calls = server.wait_for_log(5, is_call);
    assert_eq!(
        calls.len(),
        5,
        "one log line per call, whatever the protocol"
    );
}

/// REST as ZITADEL's grpc-gateway answers it: unknown query parameters (cache-busters, tracking)
/// are ignored, an empty path segment binds "" and reaches the handler, HEAD works on GET
/// routes, and a wrong method is still 405 with `Allow` (HEAD listed with GET).
#[tokio::test]
async fn rest_is_as_lenient_as_zitadels_gateway() {
    let server = Server::start();
    let client = http1();
    let id = add_user_v1(&server, "lenient").await;

    let path = format!("/management/v1/users/{id}?_=1733080000123&utm_source=mail");
    let (status, body) = rest(&client, &server, reqwest::Method::GET, &path, None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["id"], id.as_str(), "{body}");

    let (status, body) = rest(
        &client,
        &server,
        reqwest::Method::POST,
        "/management/v1/users//_reactivate",
        Some("{}"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 3, "{body}");
    assert_eq!(body["message"], "User ID missing (COMMAND-4M9ds)", "{body}");

    let head = client
        .head(format!("{}/management/v1/users/{id}", server.url()))
        .header("authorization", server.bearer())
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
    assert!(
        head.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("application/json"),
        "{:?}",
        head.headers()
    );
    assert!(head.bytes().await.expect("body").is_empty());

    let wrong = client
        .put(format!("{}/management/v1/users/{id}", server.url()))
        .header("authorization", server.bearer())
        .send()
        .await
        .expect("PUT");
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = wrong.headers()["allow"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        allow.contains("GET") && allow.contains("HEAD") && allow.contains("DELETE"),
        "Allow: {allow}"
    );
}
