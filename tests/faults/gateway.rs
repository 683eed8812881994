//! `switchyard gateway` in front of an upstream that fails: down (nothing listens), slow (never
//! answers), and breaking a server stream midway, by an HTTP/2 reset of the stream or by
//! dropping the whole connection. Every protocol's client must get an error, never a hang, and
//! the gateway must go on serving.
//!
//! The gateway is configured by command-line flags only (descriptors from
//! `tests/conformance`); the upstream is an h2c server in this process that answers
//! `conformance.v1.ConformanceService` by hand: `Echo` returns its request, `Hang` never
//! answers (counting the calls it holds), `ServerStream` sends two messages and then waits for
//! the test's cue to fail as the request's `x-fault` header says (`reset`, `drop`; anything
//! else: never).

use std::convert::Infallible;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Buf as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Notify;

use super::{DEADLINE, eventually};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type UpstreamBody = BoxBody<Bytes, BoxError>;

const SERVICE: &str = "/conformance.v1.ConformanceService";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A gRPC message frame: flag 0, big-endian length, the message.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    out.freeze()
}

/// The whole frames at the start of `data` as (flag, payload); a partial one is left out.
fn frames(data: &[u8]) -> Vec<(u8, Bytes)> {
    let mut data = Bytes::copy_from_slice(data);
    let mut out = Vec::new();
    while data.len() >= 5 {
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        if data.len() < 5 + len {
            break;
        }
        let flag = data.get_u8();
        data.advance(4);
        out.push((flag, data.split_to(len)));
    }
    out
}

/// `conformance.v1.Everything { i32: n }`.
fn everything_i32(n: u8) -> Vec<u8> {
    vec![0x10, n]
}

// --- the upstream ---------------------------------------------------------------------------

/// The misbehaving upstream.
struct Upstream {
    addr: SocketAddr,
    /// `Hang` calls it holds right now (the gateway dropping one ends it).
    hanging: Arc<AtomicUsize>,
    /// The cue for a waiting `ServerStream` to fail.
    fault: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Decrements its counter when the call holding it is dropped.
struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn grpc_response(body: UpstreamBody) -> Response<UpstreamBody> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    response
}

fn ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers
}

impl Upstream {
    async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_on(addr: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hanging = Arc::new(AtomicUsize::new(0));
        let fault = Arc::new(Notify::new());
        let (h, f) = (Arc::clone(&hanging), Arc::clone(&fault));
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (hanging, fault) = (Arc::clone(&h), Arc::clone(&f));
                // Dropping this connection (the `drop` fault) is a crash as the gateway sees
                // it: the TCP connection closes under every stream on it.
                let kill = Arc::new(Notify::new());
                connections.spawn(async move {
                    let on_kill = Arc::clone(&kill);
                    let svc = hyper::service::service_fn(move |req| {
                        let (hanging, fault, kill) =
                            (Arc::clone(&hanging), Arc::clone(&fault), Arc::clone(&kill));
                        async move { Ok::<_, Infallible>(answer(req, hanging, fault, kill).await) }
                    });
                    let serve = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = serve => {}
                        () = on_kill.notified() => {}
                    }
                });
            }
        });
        Self {
            addr,
            hanging,
            fault,
            task,
        }
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    hanging: Arc<AtomicUsize>,
    fault: Arc<Notify>,
    kill: Arc<Notify>,
) -> Response<UpstreamBody> {
    let path = request.uri().path().to_owned();
    let mode = request
        .headers()
        .get("x-fault")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let Some(method) = path.strip_prefix(SERVICE) else {
        return tonic::Status::unimplemented(path).into_http();
    };
    match method {
        "/Echo" => {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let message = frames(&body).first().map(|(_, m)| m.clone());
            let items: Vec<Result<Frame<Bytes>, BoxError>> = vec![
                Ok(Frame::data(frame(&message.unwrap_or_default()))),
                Ok(Frame::trailers(ok_trailers())),
            ];
            grpc_response(StreamBody::new(tokio_stream::iter(items)).boxed())
        }
        "/Hang" => {
            hanging.fetch_add(1, Ordering::SeqCst);
            let _held = Held(hanging);
            std::future::pending::<()>().await;
            unreachable!()
        }
        "/ServerStream" => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
            tokio::spawn(async move {
                for i in 1..=2 {
                    let _ = tx.send(Ok(Frame::data(frame(&everything_i32(i))))).await;
                }
                tokio::select! {
                    () = fault.notified() => {}
                    // The gateway gave up on the stream (its deadline): nothing to break.
                    () = tx.closed() => return,
                }
                match mode.as_str() {
                    // A body error makes hyper reset the stream (RST_STREAM INTERNAL_ERROR).
                    "reset" => {
                        let _ = tx.send(Err("upstream broke the stream".into())).await;
                    }
                    "drop" => kill.notify_one(),
                    _ => {
                        let _ = tx.send(Ok(Frame::trailers(ok_trailers()))).await;
                    }
                }
            });
            let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
            grpc_response(body.boxed())
        }
        _ => tonic::Status::unimplemented(path).into_http(),
    }
}

// --- the gateway ----------------------------------------------------------------------------

/// A running `switchyard gateway`, killed on drop.
struct Gateway {
    addr: SocketAddr,
    child: Child,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Starts the gateway in front of `upstream` with the conformance descriptors and `extra`
    /// flags.
    fn start(upstream: SocketAddr, extra: &[&str]) -> Self {
        let root = repo();
        let mut child = Command::new(switchyard_tests::binary())
            .arg("gateway")
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--upstream", &format!("http://{upstream}")])
            .args(["--proto", "conformance/v1/conformance.proto"])
            .arg("--proto-path")
            .arg(root.join("tests/conformance"))
            .arg("--proto-path")
            .arg(root.join("proto"))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchyard gateway");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keep draining stderr for the gateway's whole life.
        std::thread::spawn(move || {
            let mut log = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening")
                    && let Some(addr) = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|v| v["fields"]["addr"].as_str().and_then(|a| a.parse().ok()))
                {
                    let _ = tx.send(Ok(addr));
                }
                log.push(line);
            }
            let _ = tx.send(Err(log.join("\n")));
        });
        match rx.recv_timeout(DEADLINE) {
            Ok(Ok(addr)) => Self { addr, child },
            Ok(Err(log)) => panic!("gateway exited before listening:\n{log}"),
            Err(_) => {
                let _ = child.kill();
                panic!("gateway did not start listening");
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

// --- the clients, one per protocol ----------------------------------------------------------

/// The protocols a client can call the gateway with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    GrpcWeb,
    Connect,
    Rest,
}

const PROTOCOLS: [Protocol; 4] = [
    Protocol::Grpc,
    Protocol::GrpcWeb,
    Protocol::Connect,
    Protocol::Rest,
];

/// How a call ended, as its client saw it.
#[derive(Debug)]
struct Outcome {
    /// The HTTP status of the response head.
    http: u16,
    /// The gRPC code, by name as gRPC spells it (`UNAVAILABLE`); "reset" for a stream the
    /// gateway reset instead of answering.
    code: String,
    /// The error message, if any.
    message: String,
    /// Response messages received before the end.
    messages: usize,
    /// How long the call took.
    took: Duration,
}

fn code_name(code: i64) -> String {
    let name = format!(
        "{:?}",
        tonic::Code::from_i32(i32::try_from(code).unwrap_or(2))
    );
    // `DeadlineExceeded` -> `DEADLINE_EXCEEDED`.
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `grpc-message` as sent: percent-encoded (gRPC over HTTP/2, "Responses").
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status in gRPC-Web's trailer frame (`grpc-status:N\r\ngrpc-message:...`).
fn web_trailer_status(block: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(block);
    let mut code = String::from("none");
    let mut message = String::new();
    for line in text.split("\r\n") {
        if let Some(v) = line.strip_prefix("grpc-status:") {
            code = code_name(v.trim().parse().unwrap_or(2));
        }
        if let Some(v) = line.strip_prefix("grpc-message:") {
            message = percent_decode(v.trim());
        }
    }
    (code, message)
}

fn header_status(headers: &HeaderMap) -> Option<(String, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = percent_decode(
        headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    Some((code_name(code), message))
}

/// One call of `method` with `request` (encoded protobuf; `rest_path` for REST) over
/// `protocol`. `headers` go with it. After `cue_after` response messages, `cue` is called
/// once (the test makes the upstream fail then). The whole call has [`DEADLINE`]: a client
/// that would wait longer fails the test.
#[allow(clippy::too_many_arguments)] // one call's every part, each test case spells them out
async fn call(
    gateway: &Gateway,
    protocol: Protocol,
    method: &str,
    request: &[u8],
    rest_path: &str,
    headers: &[(&str, &str)],
    cue_after: usize,
    cue: &(dyn Fn() + Sync),
) -> Outcome {
    let started = Instant::now();
    let work = async {
        match protocol {
            Protocol::Grpc => grpc_call(gateway, method, request, headers, cue_after, cue).await,
            Protocol::GrpcWeb | Protocol::Connect => {
                let content_type = if protocol == Protocol::GrpcWeb {
                    "application/grpc-web+proto"
                } else if method == "ServerStream" {
                    "application/connect+proto"
                } else {
                    "application/proto"
                };
                let body = if content_type == "application/proto" {
                    Bytes::copy_from_slice(request)
                } else {
                    frame(request)
                };
                let mut builder = reqwest::Client::new()
                    .post(gateway.url(&format!("{SERVICE}/{method}")))
                    .header("content-type", content_type)
                    .body(body);
                for (k, v) in headers {
                    builder = builder.header(*k, *v);
                }
                let response = builder.send().await;
                http1_outcome(protocol, method, response, cue_after, cue).await
            }
            Protocol::Rest => {
                let mut builder = reqwest::Client::new().get(gateway.url(rest_path));
                for (k, v) in headers {
                    builder = builder.header(*k, *v);
                }
                let response = builder.send().await;
                http1_outcome(protocol, method, response, cue_after, cue).await
            }
        }
    };
    let mut outcome = tokio::time::timeout(DEADLINE, work)
        .await
        .unwrap_or_else(|_| panic!("{protocol:?} {method}: the client hangs"));
    outcome.took = started.elapsed();
    outcome
}

async fn grpc_call(
    gateway: &Gateway,
    method: &str,
    request: &[u8],
    headers: &[(&str, &str)],
    cue_after: usize,
    cue: &(dyn Fn() + Sync),
) -> Outcome {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let mut builder = Request::builder()
        .method("POST")
        .uri(gateway.url(&format!("{SERVICE}/{method}")))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = client
        .request(builder.body(Full::new(frame(request))).unwrap())
        .await;
    let mut outcome = Outcome {
        http: 0,
        code: String::new(),
        message: String::new(),
        messages: 0,
        took: Duration::ZERO,
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            outcome.code = "reset".into();
            outcome.message = e.to_string();
            return outcome;
        }
    };
    outcome.http = response.status().as_u16();
    if let Some((code, message)) = header_status(response.headers()) {
        (outcome.code, outcome.message) = (code, message);
        return outcome;
    }
    let mut body = response.into_body();
    let mut data = BytesMut::new();
    let mut cued = false;
    while let Some(next) = body.frame().await {
        match next {
            Ok(f) if f.is_data() => {
                data.extend_from_slice(&f.into_data().unwrap());
                outcome.messages = frames(&data).len();
                if !cued && outcome.messages >= cue_after {
                    cued = true;
                    cue();
                }
            }
            Ok(f) => {
                let trailers = f.into_trailers().unwrap();
                (outcome.code, outcome.message) = header_status(&trailers)
                    .unwrap_or_else(|| ("none".into(), format!("{trailers:?}")));
                return outcome;
            }
            Err(e) => {
                outcome.code = "reset".into();
                outcome.message = e.to_string();
                return outcome;
            }
        }
    }
    outcome.code = "none".into();
    outcome
}

/// Reads a gRPC-Web, Connect or REST answer to its end over HTTP/1.1.
async fn http1_outcome(
    protocol: Protocol,
    method: &str,
    response: reqwest::Result<reqwest::Response>,
    cue_after: usize,
    cue: &(dyn Fn() + Sync),
) -> Outcome {
    let mut outcome = Outcome {
        http: 0,
        code: String::new(),
        message: String::new(),
        messages: 0,
        took: Duration::ZERO,
    };
    let mut response = match response {
        Ok(r) => r,
        Err(e) => {
            outcome.code = "reset".into();
            outcome.message = e.to_string();
            return outcome;
        }
    };
    outcome.http = response.status().as_u16();
    let streaming = method == "ServerStream";
    if let Some((code, message)) = header_status(response.headers()) {
        // gRPC-Web trailers-only: the status in the head.
        (outcome.code, outcome.message) = (code, message);
        return outcome;
    }
    let mut data = BytesMut::new();
    let mut cued = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => data.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                outcome.code = "reset".into();
                outcome.message = e.to_string();
                return outcome;
            }
        }
        outcome.messages = match protocol {
            Protocol::Rest if streaming => String::from_utf8_lossy(&data)
                .lines()
                .filter(|l| l.starts_with("{\"result\""))
                .count(),
            Protocol::Rest => 0,
            _ if streaming || protocol == Protocol::GrpcWeb => {
                frames(&data).iter().filter(|(flag, _)| *flag == 0).count()
            }
            _ => 0,
        };
        if streaming && !cued && outcome.messages >= cue_after {
            cued = true;
            cue();
        }
    }
    // The end of the call, each protocol its own way.
    let json_error = |value: &serde_json::Value| -> (String, String) {
        let code = match &value["code"] {
            serde_json::Value::Number(n) => code_name(n.as_i64().unwrap_or(2)),
            serde_json::Value::String(s) => s.to_uppercase(),
            _ => "none".into(),
        };
        (code, value["message"].as_str().unwrap_or("").to_owned())
    };
    (outcome.code, outcome.message) = match protocol {
        Protocol::GrpcWeb => frames(&data)
            .iter()
            .find(|(flag, _)| flag & 0x80 != 0)
            .map_or(("none".into(), String::new()), |(_, block)| {
                web_trailer_status(block)
            }),
        Protocol::Connect if streaming => frames(&data)
            .iter()
            .find(|(flag, _)| flag & 0x02 != 0)
            .map_or(("none".into(), String::new()), |(_, end)| {
                let end: serde_json::Value = serde_json::from_slice(end).unwrap();
                if end.get("error").is_some() {
                    json_error(&end["error"])
                } else {
                    ("OK".into(), String::new())
                }
            }),
        // A REST stream that fails before its first message is a plain error answer.
        Protocol::Rest if streaming && outcome.http == 200 => {
            let text = String::from_utf8_lossy(&data).into_owned();
            match text.lines().last() {
                Some(line) if line.starts_with("{\"error\"") => {
                    let last: serde_json::Value = serde_json::from_str(line).unwrap();
                    json_error(&last["error"])
                }
                Some(_) => ("OK".into(), String::new()),
                None => ("none".into(), String::new()),
            }
        }
        // Unary Connect and REST: an error is a JSON body with a non-200 status.
        Protocol::Connect | Protocol::Rest => {
            if outcome.http == 200 {
                ("OK".into(), String::new())
            } else {
                let value: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
                json_error(&value)
            }
        }
        Protocol::Grpc => unreachable!("gRPC is read over HTTP/2"),
    };
    outcome
}

/// An Echo call over `protocol` that must succeed.
async fn echo_works(gateway: &Gateway, protocol: Protocol) {
    let request = everything_i32(7);
    let outcome = call(
        gateway,
        protocol,
        "Echo",
        &request,
        "/v1/echo/x",
        &[],
        usize::MAX,
        &|| {},
    )
    .await;
    assert_eq!(
        (outcome.http, outcome.code.as_str()),
        (200, "OK"),
        "{protocol:?} Echo after the fault: {outcome:?}"
    );
}

/// `StreamRequest { count: 2 }`.
const STREAM_REQUEST: [u8; 2] = [0x08, 0x02];

// --- the tests ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn upstream_down_is_unavailable_then_served_again_once_it_is_back() {
    // A port that was free a moment ago: nothing listens there (yet).
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let gateway = Gateway::start(addr, &[]);
    for protocol in PROTOCOLS {
        for (method, request, rest_path) in [
            ("Echo", &everything_i32(1)[..], "/v1/echo/x"),
            ("ServerStream", &STREAM_REQUEST[..], "/v1/stream?count=2"),
        ] {
            let outcome = call(
                &gateway,
                protocol,
                method,
                request,
                rest_path,
                &[],
                usize::MAX,
                &|| {},
            )
            .await;
            let want_http = match (protocol, method) {
                // REST and unary Connect carry the code in the HTTP status; gRPC, gRPC-Web and
                // Connect streams answer 200 with the status at the end.
                (Protocol::Rest, _) | (Protocol::Connect, "Echo") => 503,
                _ => 200,
            };
            assert_eq!(
                (outcome.http, outcome.code.as_str()),
                (want_http, "UNAVAILABLE"),
                "{protocol:?} {method} with the upstream down: {outcome:?}"
            );
            assert!(
                outcome.message.contains("upstream unavailable"),
                "{protocol:?} {method}: the message says why: {outcome:?}"
            );
            assert!(outcome.took < Duration::from_secs(5), "{outcome:?}");
        }
    }

    // The upstream comes up on that port: the gateway finds it by itself (after the failed
    // endpoint's back-off), without a restart.
    let _upstream = Upstream::start_on(addr).await;
    eventually("the gateway serves again", DEADLINE, || async {
        let outcome = call(
            &gateway,
            Protocol::Rest,
            "Echo",
            &[],
            "/v1/echo/x",
            &[],
            usize::MAX,
            &|| {},
        )
        .await;
        (outcome.http == 200).then_some(())
    })
    .await;
    for protocol in PROTOCOLS {
        echo_works(&gateway, protocol).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstream_meets_the_deadline_and_the_gateway_stays_responsive() {
    let upstream = Upstream::start().await;
    // A default deadline for calls whose client sets none.
    let gateway = Gateway::start(upstream.addr, &["--timeout-ms", "400"]);
    let empty: [u8; 0] = [];

    // Each protocol, the gateway's default deadline: DEADLINE_EXCEEDED, 504 where HTTP says it.
    for protocol in PROTOCOLS {
        let outcome = call(
            &gateway,
            protocol,
            "Hang",
            &empty,
            "/v1/hang",
            &[],
            usize::MAX,
            &|| {},
        )
        .await;
        let want_http = match protocol {
            Protocol::Rest | Protocol::Connect => 504,
            _ => 200,
        };
        assert_eq!(
            (outcome.http, outcome.code.as_str()),
            (want_http, "DEADLINE_EXCEEDED"),
            "{protocol:?} Hang: {outcome:?}"
        );
        assert!(
            outcome.took >= Duration::from_millis(400) && outcome.took < Duration::from_secs(3),
            "{protocol:?}: answered at the deadline, not before, not much after: {outcome:?}"
        );
    }

    // A stream that stalls after two messages ends at the deadline, the two delivered.
    for protocol in PROTOCOLS {
        let outcome = call(
            &gateway,
            protocol,
            "ServerStream",
            &STREAM_REQUEST,
            "/v1/stream?count=2",
            &[("x-fault", "stall")],
            usize::MAX,
            &|| {},
        )
        .await;
        assert_eq!(
            (outcome.code.as_str(), outcome.messages),
            ("DEADLINE_EXCEEDED", 2),
            "{protocol:?} stalled stream: {outcome:?}"
        );
    }

    // Many slow calls at once, with the clients' own (longer) deadline: meanwhile the gateway
    // answers everything else at once, and when their deadline passes, each is answered and
    // let go upstream too (the upstream holds none of them any more).
    const SLOW: usize = 32;
    let slow_deadline = Duration::from_millis(2500);
    let mut slow = tokio::task::JoinSet::new();
    let gateway = Arc::new(gateway);
    for i in 0..SLOW {
        let gateway = Arc::clone(&gateway);
        let protocol = PROTOCOLS[i % PROTOCOLS.len()];
        slow.spawn(async move {
            let timeout = [("grpc-timeout", "2500m"), ("connect-timeout-ms", "2500")];
            let headers: &[(&str, &str)] = match protocol {
                Protocol::Connect => &timeout[1..],
                Protocol::Rest => &[("grpc-timeout", "2500m")],
                _ => &timeout[..1],
            };
            let outcome = call(
                &gateway,
                protocol,
                "Hang",
                &[],
                "/v1/hang",
                headers,
                usize::MAX,
                &|| {},
            )
            .await;
            (protocol, outcome)
        });
    }
    eventually("the upstream holds every slow call", DEADLINE, || async {
        (upstream.hanging.load(Ordering::SeqCst) == SLOW).then_some(())
    })
    .await;
    for protocol in PROTOCOLS {
        let started = Instant::now();
        echo_works(&gateway, protocol).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{protocol:?} Echo beside {SLOW} slow calls took {:?}",
            started.elapsed()
        );
    }
    while let Some(joined) = slow.join_next().await {
        let (protocol, outcome) = joined.unwrap();
        assert_eq!(
            outcome.code, "DEADLINE_EXCEEDED",
            "{protocol:?} slow call: {outcome:?}"
        );
        assert!(
            outcome.took >= slow_deadline - Duration::from_millis(100),
            "{protocol:?}: the client's deadline, not the gateway's default: {outcome:?}"
        );
    }
    eventually(
        "the gateway lets go of the slow calls upstream",
        DEADLINE,
        || async { (upstream.hanging.load(Ordering::SeqCst) == 0).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_breaking_a_stream_midway_is_an_error_and_the_gateway_keeps_serving() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(upstream.addr, &[]);
    let fault = Arc::clone(&upstream.fault);
    let cue = move || fault.notify_one();
    // A reset stream is INTERNAL (RST_STREAM INTERNAL_ERROR, gRPC's HTTP/2 table). A lost
    // connection is UNAVAILABLE when hyper reports the broken body, INTERNAL ("stream ended
    // without grpc-status") when it reports the body as ended: which one depends on which
    // side of the connection notices first. Either is an error the client gets at once.
    for (mode, want) in [
        ("reset", &["INTERNAL"][..]),
        ("drop", &["UNAVAILABLE", "INTERNAL"][..]),
    ] {
        for protocol in PROTOCOLS {
            let outcome = call(
                &gateway,
                protocol,
                "ServerStream",
                &STREAM_REQUEST,
                "/v1/stream?count=2",
                &[("x-fault", mode)],
                2,
                &cue,
            )
            .await;
            assert!(
                outcome.http == 200
                    && want.contains(&outcome.code.as_str())
                    && outcome.messages == 2,
                "{protocol:?}, upstream {mode} after two messages: want 200, {want:?} and the \
                 two messages, got {outcome:?}"
            );
            // The gateway goes on serving, over every protocol.
            for protocol in PROTOCOLS {
                echo_works(&gateway, protocol).await;
            }
        }
    }
}
