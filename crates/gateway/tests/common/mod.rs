//! Shared pieces of the gateway's socket tests: the example descriptors, a hand-written gRPC
//! service for `example.v1.EchoService`, a running server and a raw hyper client.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, Value};
use switchyard_gateway::{Gateway, GatewayOptions};
use tonic::{Code, Status};
use tower::Layer as _;

/// The pool of `testdata/example/v1/echo.proto`.
pub fn pool() -> DescriptorPool {
    let dir = env!("CARGO_MANIFEST_DIR");
    let includes = [format!("{dir}/testdata"), format!("{dir}/../../proto")];
    let compiled = protox::Compiler::new(includes).and_then(|mut c| {
        c.include_imports(true);
        c.open_file("example/v1/echo.proto")?;
        Ok(c.encode_file_descriptor_set())
    });
    match compiled.map(|bytes| DescriptorPool::decode(bytes.as_slice())) {
        Ok(Ok(pool)) => pool,
        other => panic!("cannot compile the test proto: {other:?}"),
    }
}

/// A message of type `name` built from `(field, value)` pairs.
pub fn message(pool: &DescriptorPool, name: &str, fields: Vec<(&str, Value)>) -> DynamicMessage {
    let Some(desc) = pool.get_message_by_name(name) else {
        panic!("no message {name}");
    };
    let mut msg = DynamicMessage::new(desc);
    for (field, value) in fields {
        msg.set_field_by_name(field, value);
    }
    msg
}

/// Decodes `bytes` as message `name`.
pub fn decode(pool: &DescriptorPool, name: &str, bytes: &[u8]) -> DynamicMessage {
    let Some(desc) = pool.get_message_by_name(name) else {
        panic!("no message {name}");
    };
    match DynamicMessage::decode(desc, bytes) {
        Ok(msg) => msg,
        Err(e) => panic!("not a {name}: {e}"),
    }
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

/// Wraps a message in a gRPC frame.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&u32::try_from(message.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(message);
    out.freeze()
}

/// Splits gRPC(-Web) frames: `(flag, payload)` in order.
pub fn frames(mut data: Bytes) -> Vec<(u8, Bytes)> {
    let mut out = Vec::new();
    while data.len() >= 5 {
        let flag = data.get_u8();
        let len = data.get_u32() as usize;
        if data.len() < len {
            panic!("truncated frame");
        }
        out.push((flag, data.split_to(len)));
    }
    assert!(data.is_empty(), "trailing bytes after frames");
    out
}

/// Metadata keys the echo service reports back in `seen_metadata`.
const ECHOED_METADATA: [&str; 3] = ["authorization", "x-zitadel-orgid", "x-custom"];

/// The hand-written `example.v1.EchoService`: Echo answers with a message, a response header
/// and a trailer; Fail answers FAILED_PRECONDITION with an `example.v1.ErrorDetail`.
pub async fn echo_service(
    pool: DescriptorPool,
    request: Request<tonic::body::Body>,
) -> Result<Response<tonic::body::Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let data = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(status) => return Ok(status.into_http()),
    };
    let input = match frames(data).into_iter().next() {
        Some((0, payload)) => payload,
        _ => return Ok(Status::internal("expected one frame").into_http()),
    };
    match path.as_str() {
        "/example.v1.EchoService/Echo" => {
            let req = decode(&pool, "example.v1.EchoRequest", &input);
            let mut reply = message(&pool, "example.v1.EchoResponse", vec![]);
            for field in ["message", "big_number", "tags"] {
                if let Some(value) = req.get_field_by_name(field) {
                    reply.set_field_by_name(field, value.into_owned());
                }
            }
            let mut seen = std::collections::HashMap::new();
            for key in ECHOED_METADATA {
                if let Some(v) = parts.headers.get(key).and_then(|v| v.to_str().ok()) {
                    seen.insert(MapKey::String(key.into()), Value::String(v.into()));
                }
            }
            reply.set_field_by_name("seen_metadata", Value::Map(seen));
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            trailers.insert("x-echo-trailer", HeaderValue::from_static("done"));
            Ok(grpc_response(Some(frame(&reply.encode_to_vec())), trailers))
        }
        "/example.v1.EchoService/Fail" => {
            let req = decode(&pool, "example.v1.FailRequest", &input);
            let mode = req
                .get_field_by_name("mode")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let detail = message(
                &pool,
                "example.v1.ErrorDetail",
                vec![
                    ("id", Value::String("E-42".into())),
                    ("message", Value::String("user is locked".into())),
                ],
            );
            let rpc = RpcStatus {
                code: Code::FailedPrecondition as i32,
                message: "user is locked".into(),
                details: vec![prost_types::Any {
                    type_url: "type.googleapis.com/example.v1.ErrorDetail".into(),
                    value: detail.encode_to_vec(),
                }],
            };
            let status = Status::with_details(
                Code::FailedPrecondition,
                "user is locked",
                Bytes::from(rpc.encode_to_vec()),
            );
            if mode == "trailers" {
                let mut trailers = HeaderMap::new();
                if status.add_header(&mut trailers).is_err() {
                    return Ok(Status::internal("bad status").into_http());
                }
                Ok(grpc_response(None, trailers))
            } else {
                Ok(status.into_http())
            }
        }
        "/example.v1.EchoService/Stream" => {
            let req = decode(&pool, "example.v1.EchoRequest", &input);
            let text = req
                .get_field_by_name("message")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let tags: Vec<String> = req
                .get_field_by_name("tags")
                .and_then(|v| {
                    v.as_list().map(|l| {
                        l.iter()
                            .filter_map(|t| t.as_str().map(str::to_owned))
                            .collect()
                    })
                })
                .unwrap_or_default();
            let mut items: Vec<Result<Frame<Bytes>, Infallible>> = tags
                .iter()
                .map(|tag| {
                    let reply = message(
                        &pool,
                        "example.v1.EchoResponse",
                        vec![("message", Value::String(format!("{text}:{tag}")))],
                    );
                    Ok(Frame::data(frame(&reply.encode_to_vec())))
                })
                .collect();
            let mut trailers = HeaderMap::new();
            let status = if text == "fail" {
                Status::not_found("no more")
            } else {
                Status::ok("")
            };
            if status.add_header(&mut trailers).is_err() {
                return Ok(Status::internal("bad status").into_http());
            }
            items.push(Ok(Frame::trailers(trailers)));
            let mut response =
                Response::new(tonic::body::Body::new(StreamBody::new(stream::iter(items))));
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            Ok(response)
        }
        _ => Ok(Status::unimplemented(format!("no method {path}")).into_http()),
    }
}

/// A gRPC response: headers, optional data, trailers.
fn grpc_response(data: Option<Bytes>, trailers: HeaderMap) -> Response<tonic::body::Body> {
    let mut items: Vec<Result<Frame<Bytes>, Infallible>> = Vec::new();
    if let Some(data) = data {
        items.push(Ok(Frame::data(data)));
    }
    items.push(Ok(Frame::trailers(trailers)));
    let mut response = Response::new(tonic::body::Body::new(StreamBody::new(stream::iter(items))));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    headers.insert("x-echo-header", HeaderValue::from_static("yes"));
    response
}

/// A running gateway in front of the echo service.
pub struct TestServer {
    pub addr: SocketAddr,
    pub pool: DescriptorPool,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts the gateway on 127.0.0.1:0 and waits until it answers.
    pub async fn start(opts: GatewayOptions) -> Self {
        let pool = pool();
        let gateway = match Gateway::new(pool.clone(), opts) {
            Ok(g) => g,
            Err(e) => panic!("gateway: {e}"),
        };
        let service_pool = pool.clone();
        let inner = tower::service_fn(move |req| echo_service(service_pool.clone(), req));
        let service = gateway.layer().layer(inner);
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("local_addr: {e}"),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(switchyard_gateway::serve(listener, service, async move {
            let _ = rx.await;
        }));
        let server = Self {
            addr,
            pool,
            shutdown: Some(tx),
            task: Some(task),
        };
        server.wait_ready().await;
        server
    }

    /// Polls with a deadline until an HTTP/1.1 request gets any answer.
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = http1_client();
        loop {
            let request = Request::get(self.url("/")).body(Full::new(Bytes::new()));
            let Ok(request) = request else {
                panic!("bad request")
            };
            let attempt =
                tokio::time::timeout(Duration::from_secs(1), client.request(request)).await;
            if matches!(attempt, Ok(Ok(_))) {
                return;
            }
            assert!(Instant::now() < deadline, "server did not become ready");
            tokio::task::yield_now().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Triggers graceful shutdown and waits for `serve` to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(Ok(result)) => result,
                Ok(Err(e)) => panic!("serve task failed: {e}"),
                Err(_) => panic!("serve did not return after shutdown"),
            },
            None => Ok(()),
        }
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn http1_client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2c_client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Both transports, named for assertion messages.
pub fn clients() -> [(&'static str, TestClient); 2] {
    [("http1", http1_client()), ("h2c", h2c_client())]
}

/// A collected answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)),
        }
    }
}

/// Sends one request and collects the answer.
pub async fn send(
    client: &TestClient,
    method: &str,
    url: String,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let mut builder = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = match builder.body(Full::new(body.into())) {
        Ok(r) => r,
        Err(e) => panic!("bad request: {e}"),
    };
    let response =
        match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!("request failed: {e}"),
            Err(_) => panic!("request timed out"),
        };
    let (parts, body) = response.into_parts();
    let collected = match body.collect().await {
        Ok(c) => c,
        Err(e) => panic!("body failed: {e}"),
    };
    let trailers = collected.trailers().cloned();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}
