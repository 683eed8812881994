//! Socket tests: the gateway in front of a hand-written `example.v1.EchoService`, served by
//! `switchyard_gateway::serve` on 127.0.0.1:0 and spoken to with a raw hyper client over
//! HTTP/1.1 and h2c, in every protocol.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use bytes::Bytes;
use common::{
    Answer, TestServer, clients, decode, frame, frames, h2c_client, http1_client, message, send,
};
use prost::Message as _;
use prost_reflect::Value;
use switchyard_gateway::GatewayOptions;

const ECHO: &str = "/example.v1.EchoService/Echo";
const FAIL: &str = "/example.v1.EchoService/Fail";

fn echo_request(server: &TestServer, text: &str) -> Vec<u8> {
    message(
        &server.pool,
        "example.v1.EchoRequest",
        vec![
            ("message", Value::String(text.into())),
            ("big_number", Value::I64(42)),
        ],
    )
    .encode_to_vec()
}

/// The gRPC-Web trailer frame (flag 0x80) as `name:value` lines.
fn trailer_frame(answer: &Answer, text: bool) -> (Vec<(u8, Bytes)>, String) {
    let body = if text {
        // Text mode: every chunk is base64 on its own, so decode 4-character groups.
        Bytes::from(
            answer
                .body
                .chunks(4)
                .filter_map(|g| STANDARD.decode(g).ok())
                .flatten()
                .collect::<Vec<u8>>(),
        )
    } else {
        answer.body.clone()
    };
    let all = frames(body);
    let trailer = all
        .iter()
        .find(|(flag, _)| *flag == 0x80)
        .map(|(_, payload)| String::from_utf8_lossy(payload).to_string())
        .unwrap_or_default();
    (all, trailer)
}

#[tokio::test]
async fn grpc_unary_passes_through_over_h2c() {
    let server = TestServer::start(GatewayOptions::default()).await;
    let answer = send(
        &h2c_client(),
        "POST",
        server.url(ECHO),
        &[
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("x-custom", "c"),
        ],
        frame(&echo_request(&server, "hi")),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-echo-header"), Some("yes"));
    let trailers = answer.trailers.clone().unwrap_or_default();
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    let all = frames(answer.body.clone());
    assert_eq!(all.len(), 1);
    let reply = decode(&server.pool, "example.v1.EchoResponse", &all[0].1);
    assert_eq!(
        reply
            .get_field_by_name("message")
            .and_then(|v| v.as_str().map(str::to_owned)),
        Some("hi".into())
    );
    let seen = reply.get_field_by_name("seen_metadata");
    let seen = seen.as_ref().and_then(|v| v.as_map());
    assert!(
        seen.is_some_and(|m| m.len() == 1),
        "x-custom reached the handler: {seen:?}"
    );
    assert!(server.stop().await.is_ok());
}

#[tokio::test]
async fn grpc_error_passes_through_trailers_only() {
    let server = TestServer::start(GatewayOptions::default()).await;
    let answer = send(
        &h2c_client(),
        "POST",
        server.url(FAIL),
        &[("content-type", "application/grpc")],
        frame(&[]),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("grpc-status"), Some("9"));
    assert!(answer.header("grpc-status-details-bin").is_some());
}

#[tokio::test]
async fn grpc_web_binary_and_text_over_http1_and_h2c() {
    let server = TestServer::start(GatewayOptions::default()).await;
    for (name, client) in clients() {
        for text in [false, true] {
            let request = frame(&echo_request(&server, "web"));
            let (content_type, body) = if text {
                (
                    "application/grpc-web-text",
                    Bytes::from(STANDARD.encode(&request)),
                )
            } else {
                ("application/grpc-web+proto", request)
            };
            let answer = send(
                &client,
                "POST",
                server.url(ECHO),
                &[("content-type", content_type), ("x-grpc-web", "1")],
                body,
            )
            .await;
            assert_eq!(answer.status, 200, "{name} text={text}");
            let want_type = if text {
                "application/grpc-web-text+proto"
            } else {
                "application/grpc-web+proto"
            };
            assert_eq!(answer.header("content-type"), Some(want_type), "{name}");
            assert_eq!(answer.header("x-echo-header"), Some("yes"), "{name}");
            let (all, trailer) = trailer_frame(&answer, text);
            assert_eq!(all.len(), 2, "{name} text={text}: message then trailers");
            assert_eq!(all[0].0, 0);
            let reply = decode(&server.pool, "example.v1.EchoResponse", &all[0].1);
            assert_eq!(
                reply
                    .get_field_by_name("message")
                    .and_then(|v| v.as_str().map(str::to_owned)),
                Some("web".into())
            );
            assert_eq!(all[1].0, 0x80, "{name}: trailers are the final frame");
            assert!(trailer.contains("grpc-status:0\r\n"), "{name}: {trailer}");
            assert!(
                trailer.contains("x-echo-trailer:done\r\n"),
                "{name}: {trailer}"
            );
        }
    }
}

#[tokio::test]
async fn grpc_web_error_travels_in_trailer_frame() {
    let server = TestServer::start(GatewayOptions::default()).await;
    let answer = send(
        &http1_client(),
        "POST",
        server.url(FAIL),
        &[
            ("content-type", "application/grpc-web"),
            ("origin", "https://app.example"),
        ],
        frame(&[]),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let (_, trailer) = trailer_frame(&answer, false);
    assert!(trailer.contains("grpc-status:9\r\n"), "{trailer}");
    assert!(trailer.contains("grpc-status-details-bin:"), "{trailer}");
}

#[tokio::test]
async fn connect_json_unary_over_http1_and_h2c() {
    let server = TestServer::start(GatewayOptions::default()).await;
    for (name, client) in clients() {
        let answer = send(
            &client,
            "POST",
            server.url(ECHO),
            &[
                ("content-type", "application/json"),
                ("connect-protocol-version", "1"),
                ("connect-timeout-ms", "5000"),
                ("authorization", "Bearer t"),
            ],
            r#"{"message":"hi","big_number":"42","tags":["a"],"unknownField":true}"#,
        )
        .await;
        assert_eq!(answer.status, 200, "{name}: {:?}", answer.body);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(answer.header("x-echo-header"), Some("yes"), "{name}");
        assert_eq!(
            answer.header("trailer-x-echo-trailer"),
            Some("done"),
            "{name}"
        );
        assert_eq!(
            answer.json(),
            serde_json::json!({
                "message": "hi",
                "bigNumber": "42",
                "tags": ["a"],
                "seenMetadata": {"authorization": "Bearer t"}
            }),
            "{name}: lowerCamelCase, 64-bit as string, zero values omitted"
        );
    }
}

#[tokio::test]
async fn connect_proto_unary() {
    let server = TestServer::start(GatewayOptions::default()).await;
    let answer = send(
        &h2c_client(),
        "POST",
        server.url(ECHO),
        &[("content-type", "application/proto")],
        echo_request(&server, "bin"),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/proto"));
    let reply = decode(&server.pool, "example.v1.EchoResponse", &answer.body);
    assert_eq!(
        reply
            .get_field_by_name("big_number")
            .and_then(|v| v.as_i64()),
        Some(42)
    );
}

#[tokio::test]
async fn connect_error_json_with_details_both_status_placements() {
    let server = TestServer::start(GatewayOptions::default()).await;
    for mode in ["trailers-only", "trailers"] {
        let answer = send(
            &http1_client(),
            "POST",
            server.url(FAIL),
            &[("content-type", "application/json")],
            format!(r#"{{"mode":"{mode}"}}"#),
        )
        .await;
        assert_eq!(answer.status, 400, "{mode}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        let json = answer.json();
        assert_eq!(json["code"], "failed_precondition", "{mode}");
        assert_eq!(json["message"], "user is locked", "{mode}");
        let detail = &json["details"][0];
        assert_eq!(detail["type"], "example.v1.ErrorDetail", "{mode}");
        assert_eq!(
            detail["debug"],
            serde_json::json!({"id": "E-42", "message": "user is locked"})
        );
        let value = detail["value"].as_str().unwrap_or_default();
        let raw = STANDARD_NO_PAD.decode(value).unwrap_or_default();
        let decoded = decode(&server.pool, "example.v1.ErrorDetail", &raw);
        assert_eq!(
            decoded
                .get_field_by_name("id")
                .and_then(|v| v.as_str().map(str::to_owned)),
            Some("E-42".into())
        );
        assert!(
            answer.header("grpc-status").is_none(),
            "no gRPC headers leak into Connect"
        );
    }
}

#[tokio::test]
async fn connect_streaming_and_bad_requests_are_refused_clearly() {
    let server = TestServer::start(GatewayOptions::default()).await;
    let client = http1_client();
    let streaming = send(
        &client,
        "POST",
        server.url(ECHO),
        &[("content-type", "application/connect+xml")],
        "",
    )
    .await;
    assert_eq!(streaming.status, 415);

    let media = send(
        &client,
        "POST",
        server.url(ECHO),
        &[("content-type", "text/plain")],
        "x",
    )
    .await;
    assert_eq!(media.status, 415);

    let bad_json = send(
        &client,
        "POST",
        server.url(ECHO),
        &[("content-type", "application/json")],
        "{\"message\":",
    )
    .await;
    assert_eq!(bad_json.status, 400);
    assert_eq!(bad_json.json()["code"], "invalid_argument");

    let version = send(
        &client,
        "POST",
        server.url(ECHO),
        &[
            ("content-type", "application/json"),
            ("connect-protocol-version", "2"),
        ],
        "{}",
    )
    .await;
    assert_eq!(version.json()["code"], "invalid_argument");

    let stream_method = send(
        &client,
        "POST",
        server.url("/example.v1.EchoService/Stream"),
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(stream_method.status, 501);
}

/// Connect envelopes: (flag, payload).
fn envelope(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn connect_streaming_json_and_proto() {
    let server = TestServer::start(GatewayOptions::default()).await;
    let url = server.url("/example.v1.EchoService/Stream");
    for (name, client) in clients() {
        // JSON: one request envelope, two response envelopes, then end-of-stream.
        let body = envelope(0, br#"{"message":"hi","tags":["a","b"]}"#);
        let answer = send(
            &client,
            "POST",
            url.clone(),
            &[("content-type", "application/connect+json")],
            body,
        )
        .await;
        assert_eq!(answer.status, 200, "{name}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/connect+json"),
            "{name}"
        );
        let got: Vec<(u8, String)> = frames(answer.body.clone())
            .into_iter()
            .map(|(f, b)| (f, String::from_utf8_lossy(&b).into_owned()))
            .collect();
        assert_eq!(
            got,
            [
                (0, r#"{"message":"hi:a"}"#.to_owned()),
                (0, r#"{"message":"hi:b"}"#.to_owned()),
                (2, "{}".to_owned()),
            ],
            "{name}"
        );

        // Errors travel in the end-of-stream message, with HTTP 200.
        let body = envelope(0, br#"{"message":"fail","tags":["a"]}"#);
        let answer = send(
            &client,
            "POST",
            url.clone(),
            &[("content-type", "application/connect+json")],
            body,
        )
        .await;
        assert_eq!(answer.status, 200, "{name}");
        let got = frames(answer.body.clone());
        assert_eq!(got.len(), 2, "{name}");
        let end: serde_json::Value =
            serde_json::from_slice(&got[1].1).unwrap_or(serde_json::Value::Null);
        assert_eq!(got[1].0, 2);
        assert_eq!(end["error"]["code"], "not_found", "{name}");

        // Proto: the envelopes carry the binary messages as they are.
        let req = message(
            &server.pool,
            "example.v1.EchoRequest",
            vec![
                ("message", Value::String("p".into())),
                ("tags", Value::List(vec![Value::String("x".into())])),
            ],
        );
        let answer = send(
            &client,
            "POST",
            url.clone(),
            &[("content-type", "application/connect+proto")],
            envelope(0, &req.encode_to_vec()),
        )
        .await;
        let got = frames(answer.body.clone());
        assert_eq!(got.len(), 2, "{name}");
        let first = decode(&server.pool, "example.v1.EchoResponse", &got[0].1);
        assert_eq!(
            first
                .get_field_by_name("message")
                .and_then(|v| v.as_str().map(str::to_owned)),
            Some("p:x".to_owned())
        );
    }
}

#[tokio::test]
async fn rest_server_streaming_ndjson_and_sse() {
    let server = TestServer::start(GatewayOptions::default()).await;
    let client = http1_client();
    let url = server.url("/v1/stream/hi?tags=a&tags=b");
    let ndjson = send(&client, "GET", url.clone(), &[], "").await;
    assert_eq!(ndjson.status, 200);
    assert_eq!(ndjson.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        String::from_utf8_lossy(&ndjson.body),
        "{\"result\":{\"message\":\"hi:a\"}}\n{\"result\":{\"message\":\"hi:b\"}}\n"
    );
    let sse = send(&client, "GET", url, &[("accept", "text/event-stream")], "").await;
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    assert_eq!(
        String::from_utf8_lossy(&sse.body),
        "data: {\"message\":\"hi:a\"}\n\ndata: {\"message\":\"hi:b\"}\n\n"
    );
    let failing = send(
        &client,
        "GET",
        server.url("/v1/stream/fail?tags=a"),
        &[],
        "",
    )
    .await;
    assert_eq!(failing.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&failing.body),
        "{\"result\":{\"message\":\"fail:a\"}}\n{\"error\":{\"code\":5,\"message\":\"no more\",\"details\":[]}}\n"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let opts = GatewayOptions {
        max_message_bytes: 1024,
        ..GatewayOptions::default()
    };
    let server = TestServer::start(opts).await;
    let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(4096));
    let connect = send(
        &http1_client(),
        "POST",
        server.url(ECHO),
        &[("content-type", "application/json")],
        big.clone(),
    )
    .await;
    assert_eq!(connect.status, 429);
    assert_eq!(connect.json()["code"], "resource_exhausted");
    let rest = send(
        &http1_client(),
        "POST",
        server.url("/v1/echo"),
        &[("content-type", "application/json")],
        big,
    )
    .await;
    assert_eq!(rest.status, 413);
    assert_eq!(rest.json()["code"], 8);
}

#[tokio::test]
async fn rest_post_and_get_over_http1_and_h2c() {
    let server = TestServer::start(GatewayOptions::default()).await;
    for (name, client) in clients() {
        let post = send(
            &client,
            "POST",
            server.url("/v1/echo"),
            &[
                ("content-type", "application/json"),
                ("x-zitadel-orgid", "o1"),
            ],
            r#"{"message":"rest","bigNumber":"7"}"#,
        )
        .await;
        assert_eq!(post.status, 200, "{name}: {:?}", post.body);
        assert_eq!(
            post.json(),
            serde_json::json!({"message": "rest", "bigNumber": "7", "seenMetadata": {"x-zitadel-orgid": "o1"}}),
            "{name}"
        );
        let get = send(
            &client,
            "GET",
            server.url("/v1/echo/hello%20there"),
            &[],
            "",
        )
        .await;
        assert_eq!(get.status, 200, "{name}");
        assert_eq!(get.json()["message"], "hello there", "{name}");
    }
}

#[tokio::test]
async fn rest_unknown_route_is_404_and_wrong_method_405() {
    let server = TestServer::start(GatewayOptions::default()).await;
    let client = http1_client();
    let missing = send(&client, "GET", server.url("/x"), &[], "").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], 5);
    assert_eq!(missing.json()["message"], "no route for GET /x");
    let wrong = send(&client, "DELETE", server.url("/v1/echo"), &[], "").await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("POST"));
}

#[tokio::test]
async fn rest_error_renders_google_rpc_status() {
    let server = TestServer::start(GatewayOptions::default()).await;
    let answer = send(
        &http1_client(),
        "POST",
        server.url("/v1/fail"),
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(answer.status, 400);
    let json = answer.json();
    assert_eq!(json["code"], 9);
    assert_eq!(json["message"], "user is locked");
    assert_eq!(
        json["details"][0]["@type"],
        "type.googleapis.com/example.v1.ErrorDetail"
    );
    assert_eq!(json["details"][0]["id"], "E-42");
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let server = TestServer::start(GatewayOptions::default()).await;
    let answer = send(
        &http1_client(),
        "OPTIONS",
        server.url(ECHO),
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type,x-grpc-web"),
        ],
        "",
    )
    .await;
    assert_eq!(answer.status, 204);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let allowed = answer
        .header("access-control-allow-headers")
        .unwrap_or_default();
    assert!(
        allowed.contains("x-grpc-web") && allowed.contains("x-zitadel-orgid"),
        "{allowed}"
    );
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let server = TestServer::start(GatewayOptions::default()).await;
    let addr = server.addr;
    assert!(server.stop().await.is_ok());
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn tonic_routes_fit_as_the_inner_service() {
    // The in-process case the binary wires: `tonic::service::Routes` behind the gateway.
    let gateway = match switchyard_gateway::Gateway::new(common::pool(), GatewayOptions::default())
    {
        Ok(g) => g,
        Err(e) => panic!("gateway: {e}"),
    };
    let service = tower::Layer::layer(&gateway.layer(), tonic::service::Routes::default());
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let Ok(addr) = listener.local_addr() else {
        panic!("no local addr")
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(switchyard_gateway::serve(listener, service, async move {
        let _ = rx.await;
    }));
    // No services are registered: tonic answers UNIMPLEMENTED, which Connect renders as 501.
    let answer = send(
        &http1_client(),
        "POST",
        format!("http://{addr}{ECHO}"),
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(answer.status, 501, "{:?}", answer.body);
    assert_eq!(answer.json()["code"], "unimplemented");
    let _ = tx.send(());
    assert!(matches!(task.await, Ok(Ok(()))));
}
