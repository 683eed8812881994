//! Codecs and compression through the real binary (issue 12 items 1 and 2): proto and JSON on
//! gRPC, gRPC-Web (binary and text) and Connect, gzip both ways on every protocol, unknown codecs
//! and encodings refused the way each spec asks, and gzip bombs refused while they inflate,
//! without the server's memory growing by what they would inflate to.
//!
//! Raw bytes over hyper (h2c) and reqwest (HTTP/1.1), curl for REST; the real clients
//! (connect-node, grpcio) are in tests/interop.rs.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use bytes::{Buf as _, Bytes, BytesMut};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use http::HeaderMap;
use http_body_util::{BodyExt as _, Full};
use prost::Message as _;
use serde_json::{Value, json};
use switchyard_proto::zitadel::management::v1 as mgmt;
use switchyard_tests::{Server, run_with_deadline};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const GET_MY_ORG: &str = "/zitadel.management.v1.ManagementService/GetMyOrg";
const LIST_USERS: &str = "/zitadel.management.v1.ManagementService/ListUsers";
/// How long any one exchange may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// What came back: status, headers, the whole body, trailers.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
    trailers: HeaderMap,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `grpc-status` from the trailers, or from the headers of a trailers-only answer.
    fn grpc_status(&self) -> Option<&str> {
        self.trailers
            .get("grpc-status")
            .or_else(|| self.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
    }
}

/// One request over h2c (prior knowledge), as gRPC clients send it.
async fn h2c(server: &Server, path: &str, headers: &[(&str, &str)], body: Bytes) -> Answer {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::post(format!("{}{path}", server.url()))
        .header("te", "trailers")
        .header("authorization", server.bearer());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).unwrap();
    let response = tokio::time::timeout(DEADLINE, sender.send_request(request))
        .await
        .expect("answered in time")
        .unwrap();
    let (parts, body) = response.into_parts();
    let collected = tokio::time::timeout(DEADLINE, body.collect())
        .await
        .expect("body in time")
        .unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

/// One POST over HTTP/1.1.
async fn http1(server: &Server, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let client = reqwest::Client::builder().http1_only().build().unwrap();
    let mut request = client
        .post(format!("{}{path}", server.url()))
        .header("authorization", server.bearer())
        .timeout(DEADLINE)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    Answer {
        status,
        headers,
        body,
        trailers: HeaderMap::new(),
    }
}

/// A length-prefixed frame (gRPC, gRPC-Web, Connect envelope).
fn frame(flag: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.extend_from_slice(&[flag]);
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(payload);
    out.freeze()
}

/// The frames of a body: (flag, payload).
fn frames(mut body: Bytes) -> Vec<(u8, Bytes)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        assert!(body.len() >= len, "truncated frame");
        out.push((flag, body.split_to(len)));
    }
    assert!(body.is_empty(), "trailing bytes");
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(data).read_to_end(&mut out).unwrap();
    out
}

/// `len` zero bytes, gzipped without ever holding them: a bomb.
fn bomb(len: usize) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        encoder.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    encoder.finish().unwrap()
}

/// Adds `count` users with long names over REST, so that a ListUsers answer is several KiB.
async fn add_users(server: &Server, prefix: &str, count: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let pad = "compressible-".repeat(12);
    let mut names = Vec::new();
    for i in 0..count {
        let name = format!("{prefix}-{i}-{pad}");
        let response = client
            .post(format!("{}/management/v1/users/human", server.url()))
            .header("authorization", server.bearer())
            .json(&json!({
                "userName": name,
                "profile": {"firstName": format!("Ada {pad}"), "lastName": "Lovelace"},
                "email": {"email": format!("{prefix}{i}@example.com"), "isEmailVerified": true},
                "initialPassword": "Secret123!"
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        names.push(name);
    }
    names
}

fn json_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// The `name:value` lines of a gRPC-Web trailer frame.
fn trailer_lines(frames: &[(u8, Bytes)]) -> String {
    frames
        .iter()
        .find(|(flag, _)| *flag == 0x80)
        .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn grpc_json_codec_answers_in_json() {
    let server = Server::start();
    let answer = h2c(
        &server,
        GET_MY_ORG,
        &[("content-type", "application/grpc+json")],
        frame(0, b"{}"),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.grpc_status(), Some("0"), "{:?}", answer.headers);
    assert_eq!(answer.header("content-type"), Some("application/grpc+json"));
    let all = frames(answer.body.clone());
    assert_eq!(all.len(), 1);
    assert_eq!(json_body(&all[0].1)["org"]["name"], "ZITADEL");

    // The same JSON rules as REST and Connect: malformed JSON is the caller's INVALID_ARGUMENT
    // (it used to be read as protobuf: INTERNAL "buffer underflow").
    let bad = h2c(
        &server,
        GET_MY_ORG,
        &[("content-type", "application/grpc+json")],
        frame(0, b"{\"x\":"),
    )
    .await;
    assert_eq!(bad.grpc_status(), Some("3"), "{:?}", bad.headers);

    // Protobuf stays the default, with or without `+proto`.
    for content_type in ["application/grpc", "application/grpc+proto"] {
        let answer = h2c(
            &server,
            GET_MY_ORG,
            &[("content-type", content_type)],
            frame(0, b""),
        )
        .await;
        assert_eq!(answer.grpc_status(), Some("0"));
        let all = frames(answer.body.clone());
        let org = mgmt::GetMyOrgResponse::decode(all[0].1.clone()).unwrap();
        assert_eq!(org.org.unwrap().name, "ZITADEL");
    }
}

#[tokio::test]
async fn grpc_web_json_binary_and_text() {
    let server = Server::start();
    for (content_type, text) in [
        ("application/grpc-web+json", false),
        ("application/grpc-web-text+json", true),
    ] {
        let request = frame(0, b"{}");
        let body = if text {
            B64.encode(&request).into_bytes()
        } else {
            request.to_vec()
        };
        let answer = http1(&server, GET_MY_ORG, &[("content-type", content_type)], body).await;
        assert_eq!(answer.status, 200, "{content_type}");
        assert_eq!(answer.header("content-type"), Some(content_type));
        let body = if text {
            Bytes::from(B64.decode(&answer.body).unwrap())
        } else {
            answer.body.clone()
        };
        let all = frames(body);
        assert_eq!(
            json_body(&all[0].1)["org"]["name"],
            "ZITADEL",
            "{content_type}"
        );
        assert!(
            trailer_lines(&all).contains("grpc-status:0"),
            "{content_type}: {all:?}"
        );
    }
}

#[tokio::test]
async fn unknown_codecs_are_refused_naming_what_we_take() {
    let server = Server::start();
    RefusedCase::new(
        "gRPC",
        Transport::H2c,
        GET_MY_ORG,
        &[("content-type", "application/grpc+cbor")],
        frame(0, b""),
        Refusal::Grpc("12"),
    )
    .message("cbor")
    .run(&server)
    .await;

    // Connect: 415 with Accept-Post, as connect-go answers.
    for content_type in ["application/cbor", "application/connect+cbor"] {
        let connect = http1(
            &server,
            GET_MY_ORG,
            &[("content-type", content_type)],
            vec![],
        )
        .await;
        assert_eq!(connect.status, 415, "{content_type}");
        let accept = connect.header("accept-post").unwrap_or_default();
        for want in [
            "application/json",
            "application/proto",
            "application/connect+json",
            "application/grpc-web+json",
        ] {
            assert!(accept.contains(want), "{want} not in {accept}");
        }
    }
}

#[tokio::test]
async fn grpc_gzip_both_ways() {
    let server = Server::start();
    let names = add_users(&server, "grpcgz", 6).await;
    let request = mgmt::ListUsersRequest::default().encode_to_vec();
    // An empty message gzips to 20 bytes: still a compressed frame the server must inflate.
    let answer = h2c(
        &server,
        LIST_USERS,
        &[
            ("content-type", "application/grpc"),
            ("grpc-encoding", "gzip"),
            ("grpc-accept-encoding", "gzip"),
        ],
        frame(1, &gzip(&request)),
    )
    .await;
    assert_eq!(answer.grpc_status(), Some("0"), "{:?}", answer.trailers);
    assert_eq!(answer.header("grpc-encoding"), Some("gzip"));
    assert!(
        answer
            .header("grpc-accept-encoding")
            .unwrap_or_default()
            .contains("gzip")
    );
    let all = frames(answer.body.clone());
    assert_eq!(all[0].0, 1, "a list of several KiB comes compressed");
    let inflated = gunzip(&all[0].1);
    assert!(inflated.len() > 2 * all[0].1.len(), "it is worth it");
    let listed = mgmt::ListUsersResponse::decode(inflated.as_slice()).unwrap();
    for name in &names {
        assert!(listed.result.iter().any(|u| &u.user_name == name), "{name}");
    }

    // A small answer is not worth compressing: flag 0, even though the client takes gzip.
    let small = h2c(
        &server,
        GET_MY_ORG,
        &[
            ("content-type", "application/grpc"),
            ("grpc-accept-encoding", "gzip"),
        ],
        frame(0, b""),
    )
    .await;
    assert_eq!(small.grpc_status(), Some("0"));
    assert_eq!(frames(small.body.clone())[0].0, 0);

    // gRPC-Web, binary over HTTP/1.1: the same frames, the trailer frame uncompressed.
    let web = http1(
        &server,
        LIST_USERS,
        &[
            ("content-type", "application/grpc-web+proto"),
            ("grpc-encoding", "gzip"),
            ("grpc-accept-encoding", "gzip"),
        ],
        frame(1, &gzip(&request)).to_vec(),
    )
    .await;
    assert_eq!(web.status, 200);
    assert_eq!(web.header("grpc-encoding"), Some("gzip"));
    let all = frames(web.body.clone());
    assert_eq!(all[0].0, 1);
    let listed = mgmt::ListUsersResponse::decode(gunzip(&all[0].1).as_slice()).unwrap();
    assert!(listed.result.len() >= names.len());
    assert!(trailer_lines(&all).contains("grpc-status:0"), "{all:?}");
}

/// Which connection a request goes over.
#[derive(Clone, Copy)]
enum Transport {
    /// h2c with prior knowledge, as gRPC clients send it ([`h2c`]).
    H2c,
    /// HTTP/1.1 ([`http1`]).
    Http1,
}

/// One POST to `server`, over `transport`.
async fn send(
    server: &Server,
    transport: Transport,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Answer {
    match transport {
        Transport::H2c => h2c(server, path, headers, body).await,
        Transport::Http1 => http1(server, path, headers, body.to_vec()).await,
    }
}

/// How each protocol shows a refused call, with the code expected there.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// gRPC: `grpc-status` in the trailers or a trailers-only head.
    Grpc(&'static str),
    /// gRPC-Web: `grpc-status` in the trailer frame.
    GrpcWeb(&'static str),
    /// Connect unary: the HTTP status and the error JSON's `code`.
    Connect(u16, &'static str),
    /// Connect streaming: HTTP 200, the code in the end-of-stream envelope (flag 2).
    ConnectStream(&'static str),
    /// REST: the HTTP status and the `google.rpc.Status` JSON's numeric `code`.
    Rest(u16, i64),
}

impl Refusal {
    /// Asserts that `answer` is this refusal; `what` names the case.
    fn check(self, answer: &Answer, what: &str) {
        match self {
            Self::Grpc(code) => {
                assert_eq!(
                    answer.grpc_status(),
                    Some(code),
                    "{what}: {:?}",
                    answer.headers
                );
            }
            Self::GrpcWeb(code) => {
                let trailers = trailer_lines(&frames(answer.body.clone()));
                assert!(
                    trailers.contains(&format!("grpc-status:{code}")),
                    "{what}: {trailers}"
                );
            }
            Self::Connect(status, code) => {
                assert_eq!(answer.status, status, "{what}");
                assert_eq!(json_body(&answer.body)["code"], code, "{what}");
            }
            Self::ConnectStream(code) => {
                assert_eq!(answer.status, 200, "{what}");
                let end = frames(answer.body.clone());
                assert_eq!(end[0].0, 2, "{what}: the end-of-stream envelope");
                assert_eq!(json_body(&end[0].1)["error"]["code"], code, "{what}");
            }
            Self::Rest(status, code) => {
                assert_eq!(answer.status, status, "{what}");
                assert_eq!(json_body(&answer.body)["code"], code, "{what}");
            }
        }
    }
}

/// A request one protocol refuses, and how.
struct RefusedCase {
    name: &'static str,
    transport: Transport,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Bytes,
    refusal: Refusal,
    /// A header of the answer and its value (`""`: none checked).
    header: (&'static str, &'static str),
    /// Words the status message (`grpc-message`) must contain (`""`: none checked).
    message: &'static str,
}

impl RefusedCase {
    /// A case that checks only the refusal.
    fn new(
        name: &'static str,
        transport: Transport,
        path: &'static str,
        headers: &'static [(&'static str, &'static str)],
        body: Bytes,
        refusal: Refusal,
    ) -> Self {
        Self {
            name,
            transport,
            path,
            headers,
            body,
            refusal,
            header: ("", ""),
            message: "",
        }
    }

    /// Also checks that the answer's header `name` is `value`.
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.header = (name, value);
        self
    }

    /// Also checks that the status message contains `words`.
    fn message(mut self, words: &'static str) -> Self {
        self.message = words;
        self
    }

    async fn run(&self, server: &Server) {
        let answer = send(
            server,
            self.transport,
            self.path,
            self.headers,
            self.body.clone(),
        )
        .await;
        self.refusal.check(&answer, self.name);
        let (name, want) = self.header;
        if !name.is_empty() {
            assert_eq!(answer.header(name), Some(want), "{}", self.name);
        }
        if !self.message.is_empty() {
            let message = answer.header("grpc-message").unwrap_or_default();
            assert!(message.contains(self.message), "{}: {message}", self.name);
        }
    }
}

#[tokio::test]
async fn unsupported_encodings_name_what_we_take() {
    let server = Server::start();
    let we_take = "gzip, identity";
    let cases = [
        RefusedCase::new(
            "gRPC",
            Transport::H2c,
            GET_MY_ORG,
            &[
                ("content-type", "application/grpc"),
                ("grpc-encoding", "br"),
            ],
            frame(1, b"xx"),
            Refusal::Grpc("12"),
        )
        .header("grpc-accept-encoding", we_take),
        RefusedCase::new(
            "gRPC-Web",
            Transport::Http1,
            GET_MY_ORG,
            &[
                ("content-type", "application/grpc-web+proto"),
                ("grpc-encoding", "br"),
            ],
            frame(1, b"xx"),
            Refusal::GrpcWeb("12"),
        )
        .header("grpc-accept-encoding", we_take),
        // Connect unary: unimplemented (HTTP 501), what we take in Accept-Encoding.
        RefusedCase::new(
            "Connect unary",
            Transport::Http1,
            GET_MY_ORG,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "br"),
            ],
            Bytes::from_static(b"xx"),
            Refusal::Connect(501, "unimplemented"),
        )
        .header("accept-encoding", we_take),
        // Connect streaming: the error in the end-of-stream envelope, HTTP 200.
        RefusedCase::new(
            "Connect streaming",
            Transport::Http1,
            GET_MY_ORG,
            &[
                ("content-type", "application/connect+json"),
                ("connect-content-encoding", "br"),
            ],
            frame(1, b"xx"),
            Refusal::ConnectStream("unimplemented"),
        )
        .header("connect-accept-encoding", we_take),
        // REST: 415 with Accept-Encoding (RFC 7694).
        RefusedCase::new(
            "REST",
            Transport::Http1,
            "/management/v1/users/_search",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "br"),
            ],
            Bytes::from_static(b"{}"),
            Refusal::Rest(415, 12),
        )
        .header("accept-encoding", we_take),
    ];
    for case in &cases {
        case.run(&server).await;
    }
}

#[tokio::test]
async fn connect_gzip_unary_and_streaming() {
    let server = Server::start();
    let names = add_users(&server, "connectgz", 6).await;
    let unary = http1(
        &server,
        LIST_USERS,
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("accept-encoding", "gzip"),
        ],
        gzip(b"{}"),
    )
    .await;
    assert_eq!(unary.status, 200, "{:?}", unary.body);
    assert_eq!(unary.header("content-encoding"), Some("gzip"));
    let listed = json_body(&gunzip(&unary.body));
    let got: Vec<&str> = listed["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["userName"].as_str())
        .collect();
    for name in &names {
        assert!(got.contains(&name.as_str()), "{name}");
    }

    // No Accept-Encoding: the same answer as it is.
    let plain = http1(
        &server,
        LIST_USERS,
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(json_body(&plain.body)["result"], listed["result"]);

    // Streaming: compressed envelopes both ways, announced in connect-content-encoding.
    let stream = http1(
        &server,
        LIST_USERS,
        &[
            ("content-type", "application/connect+proto"),
            ("connect-content-encoding", "gzip"),
            ("connect-accept-encoding", "gzip"),
        ],
        frame(1, &gzip(&mgmt::ListUsersRequest::default().encode_to_vec())).to_vec(),
    )
    .await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("connect-content-encoding"), Some("gzip"));
    let all = frames(stream.body.clone());
    assert_eq!(all.len(), 2, "one message and the end");
    assert_eq!(all[0].0, 1, "the message is compressed");
    let listed = mgmt::ListUsersResponse::decode(gunzip(&all[0].1).as_slice()).unwrap();
    assert!(listed.result.len() >= names.len());
    assert_eq!(all[1].0, 2);
    assert_eq!(json_body(&all[1].1), json!({}));
}

/// Runs curl with `args`; returns (response headers, body).
fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--fail-with-body", "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(args);
    let run = run_with_deadline(&mut command, &format!("curl {args:?}"), DEADLINE);
    assert!(run.success, "curl {args:?}: {}", run.stderr);
    (
        std::fs::read_to_string(&headers)
            .unwrap()
            .to_ascii_lowercase(),
        std::fs::read(&body).unwrap(),
    )
}

#[tokio::test]
async fn rest_gzip_with_curl() {
    let server = Server::start();
    let names = add_users(&server, "restgz", 6).await;
    let auth = format!("authorization: {}", server.bearer());
    let dir = tempfile::tempdir().unwrap();
    // A gzipped request body: a user added by a compressed POST.
    let user = "curl-gzip-user";
    let body: PathBuf = dir.path().join("add.json.gz");
    let add = json!({
        "userName": user,
        "profile": {"firstName": "Curl", "lastName": "Gzip"},
        "email": {"email": "curl-gzip@example.com", "isEmailVerified": true},
        "initialPassword": "Secret123!"
    });
    std::fs::write(&body, gzip(add.to_string().as_bytes())).unwrap();
    let data = format!("@{}", body.display());
    let url = format!("{}/management/v1/users/human", server.url());
    let (_, added) = tokio::task::spawn_blocking(move || {
        curl(&[
            "-H",
            &auth,
            "-H",
            "content-type: application/json",
            "-H",
            "content-encoding: gzip",
            "--data-binary",
            &data,
            &url,
        ])
    })
    .await
    .unwrap();
    let id = json_body(&added)["userId"].as_str().unwrap().to_owned();
    assert!(!id.is_empty());

    // curl --compressed asks for gzip and inflates; the headers show what came.
    let auth = format!("authorization: {}", server.bearer());
    let url = format!("{}/management/v1/users/_search", server.url());
    let (headers, listed) = tokio::task::spawn_blocking(move || {
        curl(&[
            "--compressed",
            "-H",
            &auth,
            "-H",
            "content-type: application/json",
            "-d",
            "{}",
            &url,
        ])
    })
    .await
    .unwrap();
    assert!(headers.contains("content-encoding: gzip"), "{headers}");
    assert!(headers.contains("vary: accept-encoding"), "{headers}");
    let listed = json_body(&listed);
    let got: Vec<&str> = listed["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["userName"].as_str())
        .collect();
    for name in names.iter().map(String::as_str).chain([user]) {
        assert!(got.contains(&name), "{name}");
    }

    // A small answer goes as it is.
    let auth = format!("authorization: {}", server.bearer());
    let url = format!("{}/management/v1/users/{id}", server.url());
    let (headers, got) =
        tokio::task::spawn_blocking(move || curl(&["--compressed", "-H", &auth, &url]))
            .await
            .unwrap();
    assert!(!headers.contains("content-encoding"), "{headers}");
    assert_eq!(json_body(&got)["user"]["userName"], user);
}

/// Resident memory and its peak, in KiB, from /proc/PID/status.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test]
async fn gzip_bombs_are_refused_while_they_inflate() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("switchyard.toml");
    // 256 KiB: a 1 KiB bomb inflates to four times that.
    std::fs::write(&config, "[limits]\nmax_body_bytes = 262144\n").unwrap();
    let server = Server::start_in(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let small = bomb(1 << 20);
    assert!(small.len() <= 1100, "a 1 KiB bomb: {} bytes", small.len());

    let cases = [
        RefusedCase::new(
            "gRPC",
            Transport::H2c,
            LIST_USERS,
            &[
                ("content-type", "application/grpc"),
                ("grpc-encoding", "gzip"),
            ],
            frame(1, &small),
            Refusal::Grpc("8"),
        )
        .message("262144"),
        RefusedCase::new(
            "gRPC-Web",
            Transport::Http1,
            LIST_USERS,
            &[
                ("content-type", "application/grpc-web+proto"),
                ("grpc-encoding", "gzip"),
            ],
            frame(1, &small),
            Refusal::GrpcWeb("8"),
        ),
        RefusedCase::new(
            "Connect unary",
            Transport::Http1,
            LIST_USERS,
            &[
                ("content-type", "application/proto"),
                ("content-encoding", "gzip"),
            ],
            Bytes::from(small.clone()),
            Refusal::Connect(429, "resource_exhausted"),
        ),
        RefusedCase::new(
            "Connect streaming",
            Transport::Http1,
            LIST_USERS,
            &[
                ("content-type", "application/connect+proto"),
                ("connect-content-encoding", "gzip"),
            ],
            frame(1, &small),
            Refusal::ConnectStream("resource_exhausted"),
        ),
        RefusedCase::new(
            "REST",
            Transport::Http1,
            "/management/v1/users/_search",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            Bytes::from(small.clone()),
            Refusal::Rest(413, 8),
        ),
    ];
    for case in &cases {
        case.run(&server).await;
    }

    // Memory: eight 96 MiB bombs at once (each about 96 KiB on the wire, under the body limit),
    // over REST and gRPC. Inflated whole they would take 768 MiB; held to the limit while they
    // inflate, the peak resident set barely moves.
    let pid = server.pid().unwrap();
    let (rss_before, peak_before) = memory_kib(pid);
    let big = Bytes::from(bomb(96 << 20));
    assert!(big.len() < 262_144, "{} bytes", big.len());
    let mut calls = Vec::new();
    for i in 0..8 {
        let big = big.clone();
        let server = &server;
        calls.push(async move {
            if i % 2 == 0 {
                let rest = http1(
                    server,
                    "/management/v1/users/_search",
                    &[
                        ("content-type", "application/json"),
                        ("content-encoding", "gzip"),
                    ],
                    big.to_vec(),
                )
                .await;
                assert_eq!(rest.status, 413);
            } else {
                let grpc = h2c(
                    server,
                    LIST_USERS,
                    &[
                        ("content-type", "application/grpc"),
                        ("grpc-encoding", "gzip"),
                    ],
                    frame(1, &big),
                )
                .await;
                assert_eq!(grpc.grpc_status(), Some("8"));
            }
        });
    }
    futures_join_all(calls).await;
    let (rss_after, peak_after) = memory_kib(pid);
    let grown_mib = peak_after.saturating_sub(peak_before) / 1024;
    eprintln!(
        "gzip bombs: 8 x {} KiB on the wire, 8 x 96 MiB inflated; VmRSS {rss_before} -> {rss_after} KiB, VmHWM {peak_before} -> {peak_after} KiB (+{grown_mib} MiB)",
        big.len() / 1024
    );
    assert!(
        grown_mib < 48,
        "the peak resident set grew by {grown_mib} MiB for bombs held to 256 KiB each"
    );

    // Still serving.
    let ok = h2c(
        &server,
        GET_MY_ORG,
        &[("content-type", "application/grpc")],
        frame(0, b""),
    )
    .await;
    assert_eq!(ok.grpc_status(), Some("0"));
}

/// Awaits every future, all at once on this task (they borrow the server, so they are not
/// spawned; the tests crate has no futures-util).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        pinned.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pinned.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
