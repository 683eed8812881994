//! Black-box tests of `switchyard gateway`: the real binary in front of an echo upstream it has
//! never seen, driven only by `tests/conformance/conformance/v1/conformance.proto`.
//!
//! The echo upstream (an h2c server in this process, decoding with prost-reflect) records
//! every call it receives by its `x-case` header and answers with what it got. The REST cases
//! are data, `tests/vectors/conformance.json`: request → expected upstream request, status
//! and response.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, Value};
use serde_json::json;
use tonic::{Code, Status};

const START_DEADLINE: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn descriptor_bytes() -> Vec<u8> {
    let root = repo();
    let mut compiler =
        protox::Compiler::new([root.join("tests/conformance"), root.join("proto")]).unwrap();
    compiler.include_imports(true);
    compiler
        .open_file("conformance/v1/conformance.proto")
        .unwrap();
    compiler.encode_file_descriptor_set()
}

/// What the upstream received for one case.
#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    metadata: HeaderMap,
    requests: Vec<serde_json::Value>,
}

/// The echo upstream.
struct Upstream {
    addr: SocketAddr,
    calls: Arc<Mutex<HashMap<String, Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    out.freeze()
}

fn flagged_frame(flag: u8, message: &[u8]) -> Bytes {
    let mut out = BytesMut::from(&frame(message)[..]);
    out[0] = flag;
    out.freeze()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn frames(mut data: Bytes) -> Vec<(u8, Bytes)> {
    let mut out = Vec::new();
    while data.len() >= 5 {
        let flag = data.get_u8();
        let len = data.get_u32() as usize;
        out.push((flag, data.split_to(len.min(data.len()))));
    }
    out
}

fn grpc_response(
    messages: Vec<Bytes>,
    status: Status,
    headers: &[(&'static str, &'static str)],
) -> Response<tonic::body::Body> {
    let mut items: Vec<Result<Frame<Bytes>, Infallible>> =
        messages.iter().map(|m| Ok(Frame::data(frame(m)))).collect();
    let mut trailers = HeaderMap::new();
    status.add_header(&mut trailers).unwrap();
    trailers.insert("x-echo-trailer", HeaderValue::from_static("done"));
    items.push(Ok(Frame::trailers(trailers)));
    let mut response = Response::new(tonic::body::Body::new(StreamBody::new(
        futures_util_stream(items),
    )));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    for (k, v) in headers {
        response
            .headers_mut()
            .insert(*k, HeaderValue::from_static(v));
    }
    response
}

fn futures_util_stream<T>(items: Vec<T>) -> tokio_stream::Iter<std::vec::IntoIter<T>> {
    tokio_stream::iter(items)
}

/// `google.rpc.Status` for details.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

async fn echo(
    pool: DescriptorPool,
    calls: Arc<Mutex<HashMap<String, Recorded>>>,
    request: Request<hyper::body::Incoming>,
) -> Response<tonic::body::Body> {
    let path = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let Some(method) = pool
        .services()
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .find(|m| format!("/{}/{}", m.parent_service().full_name(), m.name()) == path)
    else {
        return Status::unimplemented(format!("no method {path}")).into_http();
    };
    if method.name() == "Hang" {
        std::future::pending::<()>().await;
    }
    let data = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let inputs: Vec<DynamicMessage> = frames(data)
        .into_iter()
        .filter_map(|(_, m)| DynamicMessage::decode(method.input(), m).ok())
        .collect();
    let opts = prost_reflect::SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(true);
    let requests = inputs
        .iter()
        .map(|m| {
            m.serialize_with_options(serde_json::value::Serializer, &opts)
                .unwrap()
        })
        .collect();
    let case = parts
        .headers
        .get("x-case")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    calls.lock().unwrap().insert(
        case,
        Recorded {
            path: path.clone(),
            metadata: parts.headers.clone(),
            requests,
        },
    );
    let first = inputs
        .first()
        .cloned()
        .unwrap_or_else(|| DynamicMessage::new(method.input()));
    let get_i32 = |m: &DynamicMessage, name: &str| {
        m.get_field_by_name(name)
            .and_then(|v| v.as_i32())
            .unwrap_or(0)
    };
    match method.name() {
        "Echo" | "EchoNested" | "Lookup" => {
            let mut reply = first;
            let mut seen = HashMap::new();
            for (name, value) in &parts.headers {
                let name = name.as_str();
                if (name.starts_with("x-") && name != "x-case") || name == "authorization" {
                    seen.insert(
                        MapKey::String(name.to_owned()),
                        Value::String(value.to_str().unwrap_or("").to_owned()),
                    );
                }
            }
            if !seen.is_empty() {
                reply.set_field_by_name("seen", Value::Map(seen));
            }
            if parts.headers.contains_key("x-compress") {
                // An upstream that compresses its answer (as if it were configured to).
                let mut response = grpc_response(vec![], Status::ok(""), &[]);
                let packed = gzip(&reply.encode_to_vec());
                let mut items: Vec<Result<Frame<Bytes>, Infallible>> =
                    vec![Ok(Frame::data(flagged_frame(1, &packed)))];
                let mut trailers = HeaderMap::new();
                Status::ok("").add_header(&mut trailers).unwrap();
                items.push(Ok(Frame::trailers(trailers)));
                *response.body_mut() =
                    tonic::body::Body::new(StreamBody::new(futures_util_stream(items)));
                response
                    .headers_mut()
                    .insert("grpc-encoding", HeaderValue::from_static("gzip"));
                return response;
            }
            grpc_response(
                vec![Bytes::from(reply.encode_to_vec())],
                Status::ok(""),
                &[("x-echo-header", "yes")],
            )
        }
        "Upload" => grpc_response(
            vec![Bytes::from(first.encode_to_vec())],
            Status::ok(""),
            &[],
        ),
        "Fail" => {
            let code = Code::from_i32(get_i32(&first, "code"));
            let message = first
                .get_field_by_name("message")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let detail_desc = pool.get_message_by_name("conformance.v1.Detail").unwrap();
            let mut detail = DynamicMessage::new(detail_desc);
            detail.set_field_by_name("id", Value::String("D-1".into()));
            let rpc = RpcStatus {
                code: code as i32,
                message: message.clone(),
                details: vec![
                    prost_types::Any {
                        type_url: "type.googleapis.com/conformance.v1.Detail".into(),
                        value: detail.encode_to_vec(),
                    },
                    prost_types::Any {
                        type_url: "type.googleapis.com/unknown.v1.Thing".into(),
                        value: vec![8, 1],
                    },
                ],
            };
            Status::with_details(code, message, Bytes::from(rpc.encode_to_vec())).into_http()
        }
        "ServerStream" => {
            let out_desc = method.output();
            let messages = (0..get_i32(&first, "count"))
                .map(|i| {
                    let mut m = DynamicMessage::new(out_desc.clone());
                    m.set_field_by_name("i32", Value::I32(i + 1));
                    Bytes::from(m.encode_to_vec())
                })
                .collect();
            let fail = get_i32(&first, "fail_code");
            let status = if fail == 0 {
                Status::ok("")
            } else {
                Status::new(Code::from_i32(fail), "stream failed")
            };
            grpc_response(messages, status, &[])
        }
        "Download" => {
            // HttpBody chunks; only the first one's content type counts.
            let out_desc = method.output();
            let messages = (0..get_i32(&first, "count"))
                .map(|i| {
                    let mut m = DynamicMessage::new(out_desc.clone());
                    let content_type = if i == 0 { "text/csv" } else { "text/plain" };
                    m.set_field_by_name("content_type", Value::String(content_type.into()));
                    let data = format!("chunk {}\n", i + 1).into_bytes();
                    m.set_field_by_name("data", Value::Bytes(data.into()));
                    Bytes::from(m.encode_to_vec())
                })
                .collect();
            let fail = get_i32(&first, "fail_code");
            let status = if fail == 0 {
                Status::ok("")
            } else {
                Status::new(Code::from_i32(fail), "download failed")
            };
            grpc_response(messages, status, &[("x-echo-header", "yes")])
        }
        "ClientStream" => {
            let mut reply = DynamicMessage::new(method.output());
            let nums = inputs
                .iter()
                .map(|m| Value::I32(get_i32(m, "i32")))
                .collect();
            reply.set_field_by_name("nums", Value::List(nums));
            grpc_response(
                vec![Bytes::from(reply.encode_to_vec())],
                Status::ok(""),
                &[],
            )
        }
        _ => Status::unimplemented("not in the echo").into_http(),
    }
}

async fn start_upstream(pool: DescriptorPool, with_reflection: bool) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let sink = Arc::clone(&calls);
    let reflection = with_reflection.then(|| {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(Box::leak(descriptor_bytes().into_boxed_slice()))
            .build_v1()
            .unwrap()
    });
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let pool = pool.clone();
            let calls = Arc::clone(&sink);
            let reflection = reflection.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let pool = pool.clone();
                    let calls = Arc::clone(&calls);
                    let reflection = reflection.clone();
                    async move {
                        if req.uri().path().starts_with("/grpc.reflection.v1.")
                            && let Some(r) = reflection
                        {
                            return Ok::<_, Infallible>(
                                call_once(r, req.map(tonic::body::Body::new)).await,
                            );
                        }
                        Ok::<_, Infallible>(echo(pool, calls, req).await)
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream { addr, calls, task }
}

/// Calls a tonic server once.
async fn call_once<S>(mut svc: S, req: Request<tonic::body::Body>) -> Response<tonic::body::Body>
where
    S: tonic::codegen::Service<
            Request<tonic::body::Body>,
            Response = Response<tonic::body::Body>,
            Error = Infallible,
        >,
{
    let _ = std::future::poll_fn(|cx| svc.poll_ready(cx)).await;
    match svc.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// A running `switchyard gateway`.
struct Gateway {
    addr: SocketAddr,
    child: Child,
    /// Its log (JSON lines, stderr) so far.
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The access log's entries so far (`fields` of each `switchyard::access` line).
    fn access_log(&self) -> Vec<serde_json::Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|entry| entry["target"] == "switchyard::access")
            .map(|entry| entry["fields"].clone())
            .collect()
    }
}

/// `config` (the configuration's tables, as JSON values) as a TOML file in `dir`.
fn write_config(dir: &Path, config: &serde_json::Value) -> PathBuf {
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
    path
}

/// Starts the gateway with `config` (the configuration's tables, written as TOML) and extra
/// arguments.
fn start_gateway(config: serde_json::Value, args: &[&str]) -> Gateway {
    start_gateway_with(config, args, &[])
}

/// [`start_gateway`] with environment variables.
fn start_gateway_with(config: serde_json::Value, args: &[&str], env: &[(&str, &str)]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &config);
    start_gateway_from(&config_path, args, env, dir)
}

/// Starts the gateway with the configuration file `config_path` (in `dir`, kept while it runs).
fn start_gateway_from(
    config_path: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    dir: tempfile::TempDir,
) -> Gateway {
    let mut child = Command::new(switchyard_tests::binary())
        .arg("gateway")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--log-format")
        .arg("json")
        .arg("--config")
        .arg(config_path)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("listening") {
                let addr = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["fields"]["addr"].as_str().and_then(|a| a.parse().ok()));
                if let Some(addr) = addr {
                    let _ = tx.send(Ok(addr));
                }
            }
            sink.lock().unwrap().push(line);
        }
        let _ = tx.send(Err(sink.lock().unwrap().join("\n")));
    });
    match rx.recv_timeout(START_DEADLINE) {
        Ok(Ok(addr)) => Gateway {
            addr,
            child,
            log,
            _dir: dir,
        },
        Ok(Err(log)) => panic!("gateway exited before listening:\n{log}"),
        Err(_) => {
            let _ = child.kill();
            panic!("gateway did not start listening");
        }
    }
}

/// The tests' configuration, as the TOML file's tables: the conformance protos, the echo
/// upstream, per-service options.
fn base_config(upstream: SocketAddr) -> serde_json::Value {
    let root = repo();
    json!({
        "rest_prefixes": {"conformance.v1.OptionsService": "/opts"},
        "gateway": {
            "protos": ["conformance/v1/conformance.proto"],
            "proto_paths": [root.join("tests/conformance"), root.join("proto")],
            "default_upstream": "echo",
            "forward_headers": ["x-allowed-*", "x-case"],
            "upstreams": {"echo": {"endpoints": [format!("http://{upstream}")]}},
            "services": {
                "conformance.v1.ConformanceService": {"strict_query": true, "openapi_headers": ["x-tenant"]},
                "conformance.v1.OptionsService": {
                    "json": {
                        "use_proto_field_names": true,
                        "emit_unpopulated": true,
                        "use_enum_numbers": true,
                        "ignore_unknown_fields": false
                    }
                }
            }
        }
    })
}

fn pool() -> DescriptorPool {
    DescriptorPool::decode(descriptor_bytes().as_slice()).unwrap()
}

/// Runs every case of `tests/vectors/conformance.json` through the real binary.
#[tokio::test(flavor = "multi_thread")]
async fn conformance_vectors_pass_through_the_binary() {
    let upstream = start_upstream(pool(), false).await;
    let gateway = start_gateway(base_config(upstream.addr), &[]);
    let text = std::fs::read_to_string(repo().join("tests/vectors/conformance.json")).unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let method =
            reqwest::Method::from_bytes(case["method"].as_str().unwrap().as_bytes()).unwrap();
        let mut req = client
            .request(method, gateway.url(case["path"].as_str().unwrap()))
            .header("x-case", name);
        if let Some(headers) = case["headers"].as_object() {
            for (k, v) in headers {
                req = req.header(k, v.as_str().unwrap());
            }
        }
        match &case["body"] {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) => req = req.body(s.clone()),
            other => {
                req = req
                    .header("content-type", "application/json")
                    .body(other.to_string());
            }
        }
        let response = req.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap();
        let mut problems = Vec::new();
        if let Some(want) = case["status"].as_u64()
            && u64::from(status) != want
        {
            problems.push(format!("status {status}, want {want}"));
        }
        if !case["response"].is_null() {
            let got: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            if got != case["response"] {
                problems.push(format!("response {got}, want {}", case["response"]));
            }
        }
        if let Some(want) = case["response_text"].as_str()
            && body != want.as_bytes()
        {
            problems.push(format!(
                "response text {:?}, want {want:?}",
                String::from_utf8_lossy(&body)
            ));
        }
        if let Some(want) = case["response_headers"].as_object() {
            for (k, v) in want {
                let got = headers.get(k).and_then(|h| h.to_str().ok());
                if got != v.as_str() {
                    problems.push(format!("header {k}: {got:?}, want {v}"));
                }
            }
        }
        let recorded = upstream.calls.lock().unwrap().get(name).cloned();
        match (&case["upstream"], recorded) {
            (serde_json::Value::Null, None) => {}
            (serde_json::Value::Null, Some(r)) => {
                problems.push(format!("unexpected upstream call {}", r.path))
            }
            (want, None) => problems.push(format!("no upstream call, want {want}")),
            (want, Some(r)) => {
                if want["method"].as_str() != Some(r.path.as_str()) {
                    problems.push(format!(
                        "upstream method {}, want {}",
                        r.path, want["method"]
                    ));
                }
                if !want["request"].is_null() && r.requests.first() != Some(&want["request"]) {
                    problems.push(format!(
                        "upstream request {:?}, want {}",
                        r.requests.first(),
                        want["request"]
                    ));
                }
                if let Some(md) = want["metadata"].as_object() {
                    for (k, v) in md {
                        let got = r.metadata.get(k).and_then(|h| h.to_str().ok());
                        if got != v.as_str() {
                            problems.push(format!("upstream metadata {k}: {got:?}, want {v}"));
                        }
                    }
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{name}: {}", problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// One request over h2c (prior knowledge); returns status, headers, body and trailers.
async fn h2c(
    url: String,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, HeaderMap, Bytes, HeaderMap) {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<Bytes>>();
    let mut builder = Request::builder().method("POST").uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .unwrap()
        .unwrap();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    (
        parts.status.as_u16(),
        parts.headers,
        collected.to_bytes(),
        trailers,
    )
}

/// What came back from one HTTP/1.1 exchange: status, headers, the whole body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    /// A header as text (`""` if absent).
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The body as JSON.
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One request over HTTP/1.1 (reqwest), with a deadline; an empty `body` sends none.
async fn http1(
    method: reqwest::Method,
    url: String,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .timeout(Duration::from_secs(10));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if !body.is_empty() {
        request = request.body(body);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap(),
    }
}

fn everything(pool: &DescriptorPool, fields: &[(&str, Value)]) -> Vec<u8> {
    let desc = pool
        .get_message_by_name("conformance.v1.Everything")
        .unwrap();
    let mut m = DynamicMessage::new(desc);
    for (k, v) in fields {
        m.set_field_by_name(k, v.clone());
    }
    m.encode_to_vec()
}

fn stream_request(pool: &DescriptorPool, count: i32) -> Vec<u8> {
    let desc = pool
        .get_message_by_name("conformance.v1.StreamRequest")
        .unwrap();
    let mut m = DynamicMessage::new(desc);
    m.set_field_by_name("count", Value::I32(count));
    m.encode_to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_grpc_web_and_connect_streaming_reach_the_upstream() {
    let pool = pool();
    let upstream = start_upstream(pool.clone(), false).await;
    let gateway = start_gateway(base_config(upstream.addr), &[]);

    // Native gRPC, passed through: unary and server streaming.
    let echo = everything(&pool, &[("s", Value::String("g".into()))]);
    let (status, _, body, trailers) = h2c(
        gateway.url("/conformance.v1.ConformanceService/Echo"),
        &[("content-type", "application/grpc"), ("te", "trailers")],
        frame(&echo).to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(frames(body).len(), 1);

    let (_, _, body, trailers) = h2c(
        gateway.url("/conformance.v1.ConformanceService/ServerStream"),
        &[("content-type", "application/grpc"), ("te", "trailers")],
        frame(&stream_request(&pool, 3)).to_vec(),
    )
    .await;
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(frames(body).len(), 3);

    // gRPC-Web server streaming over HTTP/1.1: three data frames, then the trailer frame.
    let answer = http1(
        reqwest::Method::POST,
        gateway.url("/conformance.v1.ConformanceService/ServerStream"),
        &[("content-type", "application/grpc-web+proto")],
        frame(&stream_request(&pool, 3)).to_vec(),
    )
    .await;
    let got = frames(answer.body);
    let flags: Vec<u8> = got.iter().map(|(f, _)| *f).collect();
    assert_eq!(flags, [0, 0, 0, 0x80]);
    assert!(String::from_utf8_lossy(&got[3].1).contains("grpc-status:0"));

    // Connect streaming, client side: three messages in, one out.
    let mut body = Vec::new();
    for i in 1..=3 {
        body.extend_from_slice(&frame(format!("{{\"i32\":{i}}}").as_bytes()));
    }
    let answer = http1(
        reqwest::Method::POST,
        gateway.url("/conformance.v1.ConformanceService/ClientStream"),
        &[("content-type", "application/connect+json")],
        body,
    )
    .await;
    assert_eq!(answer.status, 200);
    let got = frames(answer.body);
    assert_eq!(got.len(), 2);
    assert_eq!(&got[0].1[..], br#"{"nums":[1,2,3]}"#);
    assert_eq!(got[1].0, 2);

    // Connect unary, JSON, against the upstream's method.
    let answer = http1(
        reqwest::Method::POST,
        gateway.url("/conformance.v1.ConformanceService/Echo"),
        &[("content-type", "application/json")],
        br#"{"s":"c","i64":"7"}"#.to_vec(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, r#"{"s":"c","i64":"7"}"#);
}

/// Codecs and gzip in front of an upstream that knows neither: JSON frames and compressed
/// messages are decoded here and the upstream gets plain protobuf; an upstream's compressed
/// answer is inflated, and compressed again for a client that takes gzip.
#[tokio::test(flavor = "multi_thread")]
async fn json_codecs_and_gzip_through_the_gateway() {
    let pool = pool();
    let upstream = start_upstream(pool.clone(), false).await;
    let gateway = start_gateway(base_config(upstream.addr), &[]);
    let big = "z".repeat(3000);
    let json_request = serde_json::to_vec(&json!({ "s": big })).unwrap();
    let echoed = |bytes: &[u8]| -> String {
        let value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        value["s"].as_str().unwrap_or_default().to_owned()
    };

    // gRPC +json, gzip both ways.
    let (status, headers, body, trailers) = h2c(
        gateway.url("/conformance.v1.ConformanceService/Echo"),
        &[
            ("content-type", "application/grpc+json"),
            ("te", "trailers"),
            ("grpc-encoding", "gzip"),
            ("grpc-accept-encoding", "gzip"),
            ("x-case", "grpc-json-gzip"),
        ],
        flagged_frame(1, &gzip(&json_request)).to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(trailers.get("grpc-status").unwrap(), "0", "{trailers:?}");
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/grpc+json"
    );
    assert_eq!(headers.get("grpc-encoding").unwrap(), "gzip");
    let got = frames(body);
    assert_eq!(got[0].0, 1);
    assert_eq!(echoed(&gunzip(&got[0].1)), big);
    let recorded = upstream.calls.lock().unwrap()["grpc-json-gzip"].clone();
    assert_eq!(recorded.requests[0]["s"], big.as_str(), "protobuf upstream");
    assert!(!recorded.metadata.contains_key("grpc-encoding"));

    // gRPC-Web text +json, the upstream answering compressed, the client taking identity.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let answer = http1(
        reqwest::Method::POST,
        gateway.url("/conformance.v1.ConformanceService/Echo"),
        &[
            ("content-type", "application/grpc-web-text+json"),
            ("x-compress", "gzip"),
        ],
        b64.encode(frame(&json_request)).into_bytes(),
    )
    .await;
    assert_eq!(
        answer.header("content-type"),
        "application/grpc-web-text+json"
    );
    let got = frames(Bytes::from(b64.decode(&answer.body).unwrap()));
    assert_eq!(got[0].0, 0, "uncompressed for a client that did not ask");
    assert_eq!(echoed(&got[0].1), big);
    assert!(String::from_utf8_lossy(&got[1].1).contains("grpc-status:0"));

    // A gzipped body, a gzipped answer: Connect unary (the upstream answering compressed,
    // inflated here and compressed again) and REST.
    let cases = [
        (
            "Connect",
            "/conformance.v1.ConformanceService/Echo",
            Some("gzip"),
        ),
        ("REST", "/v1/echo", None),
    ];
    for (name, path, upstream_compresses) in cases {
        let mut headers = vec![
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("accept-encoding", "gzip"),
        ];
        if let Some(encoding) = upstream_compresses {
            headers.push(("x-compress", encoding));
        }
        let answer = http1(
            reqwest::Method::POST,
            gateway.url(path),
            &headers,
            gzip(&json_request),
        )
        .await;
        assert_eq!(answer.status, 200, "{name}");
        assert_eq!(answer.header("content-encoding"), "gzip", "{name}");
        assert_eq!(echoed(&gunzip(&answer.body)), big, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_down_is_unavailable_in_every_protocol() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gateway = start_gateway(base_config(port), &[]);
    // (protocol, method, path, headers, body, the error JSON's code); 503 for each.
    type Case<'a> = (
        &'a str,
        reqwest::Method,
        &'a str,
        &'a [(&'a str, &'a str)],
        &'a str,
        serde_json::Value,
    );
    let cases: [Case; 2] = [
        (
            "REST",
            reqwest::Method::GET,
            "/v1/echo/x",
            &[],
            "",
            json!(14),
        ),
        (
            "Connect",
            reqwest::Method::POST,
            "/conformance.v1.ConformanceService/Echo",
            &[("content-type", "application/json")],
            "{}",
            json!("unavailable"),
        ),
    ];
    for (name, method, path, headers, body, code) in cases {
        let answer = http1(method, gateway.url(path), headers, body.into()).await;
        assert_eq!(answer.status, 503, "{name}");
        assert_eq!(answer.json()["code"], code, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_skips_a_dead_endpoint() {
    let pool = pool();
    let upstream = start_upstream(pool, false).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = base_config(upstream.addr);
    config["gateway"]["upstreams"]["echo"]["endpoints"] = json!([
        format!("http://{dead}"),
        format!("http://{}", upstream.addr)
    ]);
    let gateway = start_gateway(config, &[]);
    let client = reqwest::Client::new();
    for i in 0..6 {
        let response = client
            .get(gateway.url(&format!("/v1/echo/r{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "call {i}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_provides_the_descriptors() {
    let upstream = start_upstream(pool(), true).await;
    let config = json!({});
    let url = format!("http://{}", upstream.addr);
    let gateway = start_gateway(config, &["--reflect", "--upstream", &url]);
    let response = reqwest::Client::new()
        .get(gateway.url("/v1/echo/refl?i64=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!((&body["s"], &body["i64"]), (&json!("refl"), &json!("5")));
    // The request id the gateway generated went upstream too, for correlation.
    assert_eq!(body["seen"]["x-request-id"], json!(request_id));
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_the_upstreams() {
    let upstream = start_upstream(pool(), false).await;
    let live = format!("http://{}", upstream.addr);
    // A port nothing listens on: bind, note, close.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let client = reqwest::Client::new();
    let gateway = start_gateway(base_config(upstream.addr), &[]);
    let ready = client.get(gateway.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let healthy = client.get(gateway.url("/healthz")).send().await.unwrap();
    assert_eq!(healthy.status().as_u16(), 200);
    let echoed = client.get(gateway.url("/v1/echo/m")).send().await.unwrap();
    assert_eq!(echoed.status().as_u16(), 200);
    // The call is counted once its response is done: poll /metrics with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = client
            .get(gateway.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let counted = metrics.lines().any(|l| {
            l.starts_with("switchyard_requests_total{") && l.contains("protocol=\"rest\"")
        });
        if counted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the REST call never reached /metrics:\n{metrics}"
        );
        tokio::task::yield_now().await;
    }

    let mut config = base_config(upstream.addr);
    config["gateway"]["upstreams"]["echo"]["endpoints"] = json!([live, dead.clone()]);
    let gateway = start_gateway(config, &[]);
    let ready = client.get(gateway.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let reason = ready.text().await.unwrap();
    assert!(
        reason.contains(dead.trim_start_matches("http://")),
        "{reason}"
    );
}

#[test]
fn invalid_rules_are_refused_at_start_up() {
    let root = repo();
    let cases = [
        (
            "bad/conflict.proto",
            "bound by both bad.v1.ConflictService.GetItem and bad.v1.ConflictService.FetchItem",
        ),
        (
            "bad/template.proto",
            "syntax error at column 14: expected '}'",
        ),
    ];
    for (file, want) in cases {
        let output = Command::new(switchyard_tests::binary())
            .args([
                "gateway",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "http://127.0.0.1:1",
            ])
            .arg("--proto")
            .arg(file)
            .arg("--proto-path")
            .arg(root.join("tests/conformance"))
            .arg("--proto-path")
            .arg(root.join("proto"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{file} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(want), "{file}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_is_served_and_printed() {
    let upstream = start_upstream(pool(), false).await;
    let gateway = start_gateway(base_config(upstream.addr), &[]);
    let served: serde_json::Value = reqwest::get(gateway.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    assert!(served["paths"]["/v1/echo/{s}"]["get"].is_object());
    assert!(served["paths"]["/opts/echo"]["post"].is_object());
    let echo_params = served["paths"]["/v1/echo/{s}"]["get"]["parameters"].to_string();
    assert!(echo_params.contains("\"x-tenant\""), "{echo_params}");
    assert!(
        !served["paths"]["/opts/echo"]["post"]["parameters"]
            .to_string()
            .contains("x-tenant")
    );
    assert_eq!(served["servers"][0]["url"], "/");
    let printed = Command::new(switchyard_tests::binary())
        .args(["openapi", "--proto", "conformance/v1/conformance.proto"])
        .arg("--proto-path")
        .arg(repo().join("tests/conformance"))
        .arg("--proto-path")
        .arg(repo().join("proto"))
        .output()
        .unwrap();
    assert!(printed.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&printed.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Validated by a standard validator, from the interop Python environment.
    let python = repo().join("tests/interop/python/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/interop/setup (it installs openapi-spec-validator)",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, &printed.stdout).unwrap();
    let out = Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TLS client offering `alpn` to `addr`, trusting `ca`.
async fn tls_connect(
    addr: SocketAddr,
    ca: &rcgen::Certificate,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_from_the_configuration_file_serves_every_call_over_h2_and_http1() {
    let upstream = start_upstream(pool(), false).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let mut config = base_config(upstream.addr);
    config["tls"] = json!({"cert_file": cert_path, "key_file": key_path, "cleartext": false});
    let gateway = start_gateway(config, &[]);

    // REST over h2, through TLS, to the upstream.
    let h2 = tls_connect(gateway.addr, &cert, b"h2").await;
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(h2))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::get("https://localhost/v1/echo/secure")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("\"secure\""),
        "{body:?}"
    );

    // Native gRPC over the same kind of connection.
    let h2 = tls_connect(gateway.addr, &cert, b"h2").await;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(h2))
            .await
            .unwrap();
    tokio::spawn(connection);
    let echo = everything(&pool(), &[("s", Value::String("tls".into()))]);
    let request = Request::post("https://localhost/conformance.v1.ConformanceService/Echo")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(frame(&echo)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(frames(collected.to_bytes()).len(), 1);

    // HTTP/1.1 over TLS.
    let h1 = tls_connect(gateway.addr, &cert, b"http/1.1").await;
    assert_eq!(h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(h1))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get("https://localhost/v1/echo/one")
        .header("host", "localhost")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_11);

    // `tls.cleartext = false`: a cleartext client gets no answer.
    let plain = reqwest::get(gateway.url("/healthz")).await;
    assert!(plain.is_err(), "cleartext answered: {plain:?}");
}

/// A REST body, a Connect body and a gRPC message of `size` bytes or so, each to the echo.
async fn send_sized(gateway: &Gateway, size: usize) -> (u16, String, u16, String) {
    let client = reqwest::Client::new();
    let body = format!("{{\"s\":\"{}\"}}", "x".repeat(size));
    let rest = client
        .post(gateway.url("/v1/echo"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let rest_status = rest.status().as_u16();
    let rest_body = rest.text().await.unwrap();
    let echo = everything(&pool(), &[("s", Value::String("x".repeat(size)))]);
    let (grpc_status, headers, _, trailers) = h2c(
        gateway.url("/conformance.v1.ConformanceService/Echo"),
        &[("content-type", "application/grpc"), ("te", "trailers")],
        frame(&echo).to_vec(),
    )
    .await;
    // In the trailers, or in the head of a trailers-only answer.
    let code = trailers
        .get("grpc-status")
        .or_else(|| headers.get("grpc-status"))
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (rest_status, rest_body, grpc_status, code)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_configured_limit_is_refused_in_every_protocol() {
    let upstream = start_upstream(pool(), false).await;
    let mut config = base_config(upstream.addr);
    config["limits"] = json!({"max_body_bytes": 2048});
    let gateway = start_gateway(config, &[]);

    let (rest, body, grpc, code) = send_sized(&gateway, 1000).await;
    assert_eq!((rest, grpc, code.as_str()), (200, 200, "0"), "{body}");

    let (rest, body, _, code) = send_sized(&gateway, 4000).await;
    assert_eq!(rest, 413, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["code"], 8, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("2048"),
        "the limit is named: {error}"
    );
    assert_eq!(code, "8", "gRPC: RESOURCE_EXHAUSTED");
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_overrides_the_file() {
    let upstream = start_upstream(pool(), false).await;
    let mut config = base_config(upstream.addr);
    config["limits"] = json!({"max_body_bytes": 1_000_000});
    let gateway = start_gateway_with(config, &[], &[("SWITCHYARD_LIMITS_MAX_BODY_BYTES", "2048")]);
    let (rest, body, _, code) = send_sized(&gateway, 4000).await;
    assert_eq!(rest, 413, "{body}");
    assert!(body.contains("2048"), "{body}");
    assert_eq!(code, "8");
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_preflight_is_answered_for_the_configured_origin_only() {
    let upstream = start_upstream(pool(), false).await;
    let mut config = base_config(upstream.addr);
    config["cors"] =
        json!({"allowed_origins": ["https://app.example"], "allowed_headers": ["x-tenant"]});
    let gateway = start_gateway(config, &[]);
    let client = reqwest::Client::new();
    for (origin, allowed) in [
        ("https://app.example", true),
        ("https://evil.example", false),
    ] {
        let response = client
            .request(
                reqwest::Method::OPTIONS,
                gateway.url("/conformance.v1.ConformanceService/Echo"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,connect-protocol-version,x-grpc-web,x-tenant",
            )
            .send()
            .await
            .unwrap();
        let allow_origin = response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned());
        if allowed {
            assert!(response.status().is_success(), "{}", response.status());
            assert_eq!(allow_origin.as_deref(), Some(origin));
            let headers = response.headers()["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .to_owned();
            for name in ["connect-protocol-version", "x-grpc-web", "x-tenant"] {
                assert!(headers.contains(name), "{name} not allowed: {headers}");
            }
        } else {
            assert!(!response.status().is_success(), "{}", response.status());
            assert_eq!(allow_origin, None);
        }
    }
    // A REST call from the allowed origin is answered with the CORS headers.
    let response = client
        .get(gateway.url("/v1/echo/cors"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_cors_origins_no_preflight_is_answered() {
    let upstream = start_upstream(pool(), false).await;
    let gateway = start_gateway(base_config(upstream.addr), &[]);
    let response = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            gateway.url("/conformance.v1.ConformanceService/Echo"),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin"),
        "{:?}",
        response.headers()
    );
}

/// Runs `switchyard` with `args`: (exit code, stdout, stderr).
fn run(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let output = Command::new(switchyard_tests::binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn config_check_validates_a_gateway_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let upstream: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let good = write_config(dir.path(), &base_config(upstream));
    let (code, stdout, stderr) = run(&[
        "config".as_ref(),
        "check".as_ref(),
        "--config".as_ref(),
        good.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
    assert!(stdout.contains("REST routes build"), "{stdout}");

    // `config print` shows the [gateway] tables.
    let (code, stdout, stderr) = run(&[
        "config".as_ref(),
        "print".as_ref(),
        "--config".as_ref(),
        good.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("[gateway.services.\"conformance.v1.ConformanceService\"]"),
        "{stdout}"
    );

    let mut config = base_config(upstream);
    config["gateway"]["services"]["conformance.v1.OptionsService"]["upstream"] = json!("nope");
    let bad_dir = tempfile::tempdir().unwrap();
    let bad = write_config(bad_dir.path(), &config);
    let want = [
        "gateway.services.\"conformance.v1.OptionsService\".upstream",
        "\"nope\"",
        "echo",
    ];
    let (code, _, stderr) = run(&[
        "config".as_ref(),
        "check".as_ref(),
        "--config".as_ref(),
        bad.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    for want in want {
        assert!(stderr.contains(want), "{stderr:?} lacks {want:?}");
    }
    // The gateway refuses it the same way, before listening.
    let (code, _, stderr) = run(&[
        "gateway".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--config".as_ref(),
        bad.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(want[0]), "{stderr}");

    // A service the descriptors lack is found by loading them.
    let mut config = base_config(upstream);
    config["gateway"]["services"]["conformance.v1.NoSuchService"] = json!({"strict_query": true});
    let missing_dir = tempfile::tempdir().unwrap();
    let missing = write_config(missing_dir.path(), &config);
    let (code, _, stderr) = run(&[
        "config".as_ref(),
        "check".as_ref(),
        "--config".as_ref(),
        missing.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("the descriptors have no service conformance.v1.NoSuchService"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_configuration_is_refused_with_its_toml_form_which_works() {
    let upstream = start_upstream(pool(), false).await;
    let root = repo();
    // The old JSON file, as the gateway read it before.
    let old = json!({
        "protos": ["conformance/v1/conformance.proto"],
        "proto_paths": [root.join("tests/conformance"), root.join("proto")],
        "upstreams": {"echo": {"endpoints": [format!("http://{}", upstream.addr)]}},
        "default_upstream": "echo",
        "services": {
            "conformance.v1.ConformanceService": {"strict_query": true},
            "conformance.v1.OptionsService": {"prefix": "/opts", "json": {"use_proto_field_names": true}}
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("gateway.json");
    std::fs::write(&json_path, serde_json::to_vec(&old).unwrap()).unwrap();
    let (code, _, stderr) = run(&[
        "gateway".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--config".as_ref(),
        json_path.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    for want in [
        "gateway.json is JSON",
        "same TOML file as `switchyard serve`",
        "[gateway.upstreams.echo]",
        "[gateway.services.\"conformance.v1.ConformanceService\"]",
        "strict_query = true",
        "[rest_prefixes]",
    ] {
        assert!(stderr.contains(want), "{stderr:?} lacks {want:?}");
    }

    // What it shows is a configuration that works as the JSON did.
    let (_, toml) = stderr.split_once("The same settings in TOML:").unwrap();
    let toml_path = dir.path().join("gateway.toml");
    std::fs::write(&toml_path, toml.trim()).unwrap();
    let gateway = start_gateway_from(&toml_path, &[], &[], dir);
    let client = reqwest::Client::new();
    let strict = client
        .get(gateway.url("/v1/echo/x?no_such_field=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(strict.status(), 400, "strict_query kept");
    let prefixed = client
        .get(gateway.url("/opts/echo/y"))
        .send()
        .await
        .unwrap();
    assert_eq!(prefixed.status(), 200, "the prefix kept");
}

#[test]
fn the_old_environment_variable_is_refused() {
    let output = Command::new(switchyard_tests::binary())
        .args([
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:1",
        ])
        .env("SWITCHYARD_GATEWAY_CONFIG", "gateway.json")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("SWITCHYARD_GATEWAY_CONFIG is no longer read"),
        "{stderr}"
    );
}

/// Connect GET (<https://connectrpc.com/docs/protocol>, "Unary-Get-Request") in gateway mode:
/// `Lookup` says `idempotency_level = NO_SIDE_EFFECTS`, so curl may call it with its message in
/// the query, JSON or base64 protobuf; the answer may be cached (`Vary`, no `no-store`); a
/// method without that option is 405 with `Allow: POST`; missing or bad parameters are
/// Connect errors.
#[tokio::test(flavor = "multi_thread")]
async fn connect_get_calls_a_method_without_side_effects() {
    use base64::Engine as _;
    let pool = pool();
    let upstream = start_upstream(pool.clone(), false).await;
    let gateway = start_gateway(base_config(upstream.addr), &[]);
    let lookup = gateway.url("/conformance.v1.ConformanceService/Lookup");

    // curl, as a browser or a CDN would send it: the message percent-encoded in the query.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-i",
            "--max-time",
            "10",
            "-H",
            "x-case: get-curl",
            "-G",
        ])
        .args([
            "--data-urlencode",
            "connect=v1",
            "--data-urlencode",
            "encoding=json",
        ])
        .args(["--data-urlencode", r#"message={"s":"from curl","i64":"7"}"#])
        .arg(&lookup)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert!(
        out.status.success(),
        "curl: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, body) = text.split_once("\n\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    assert!(!head.contains("no-store"), "{head}");
    assert_eq!(body, r#"{"s":"from curl","i64":"7"}"#);
    let recorded = upstream.calls.lock().unwrap()["get-curl"].clone();
    assert_eq!(recorded.path, "/conformance.v1.ConformanceService/Lookup");
    assert_eq!(recorded.requests, [json!({"s": "from curl", "i64": "7"})]);

    // Binary protobuf, URL-safe base64 without and with padding; the answer is protobuf.
    let message = everything(&pool, &[("s", Value::String("b?>".into()))]);
    let client = reqwest::Client::new();
    for engine in [
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        let encoded = engine.encode(&message);
        let response = client
            .get(format!(
                "{lookup}?connect=v1&encoding=proto&base64=1&message={encoded}"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{encoded}");
        assert_eq!(response.headers()["content-type"], "application/proto");
        assert_eq!(response.bytes().await.unwrap(), message, "{encoded}");
    }

    // Refusals: (path and query, HTTP status, Connect code, words of the message).
    let json = "%7B%22s%22%3A%22x%22%7D";
    let cases = [
        (
            "Lookup?encoding=json".to_owned(),
            400,
            "invalid_argument",
            "missing message",
        ),
        (
            format!("Lookup?message={json}"),
            400,
            "invalid_argument",
            "missing encoding",
        ),
        (
            format!("Lookup?connect=v2&encoding=json&message={json}"),
            400,
            "invalid_argument",
            "connect must be",
        ),
        (
            format!("Lookup?encoding=yaml&message={json}"),
            415,
            "invalid_argument",
            "unsupported encoding",
        ),
        (
            "Lookup?encoding=json&message=%7B".to_owned(),
            400,
            "invalid_argument",
            "",
        ),
        (
            "Lookup?encoding=proto&base64=1&message=%2B%2B%2B".to_owned(),
            400,
            "invalid_argument",
            "base64",
        ),
        (
            format!("Lookup?encoding=json&compression=br&message={json}"),
            501,
            "unimplemented",
            "supported compressions are gzip, identity",
        ),
        (
            format!("Echo?encoding=json&message={json}"),
            405,
            "unimplemented",
            "NO_SIDE_EFFECTS",
        ),
        (
            "ServerStream?encoding=json&message=%7B%7D".to_owned(),
            405,
            "unimplemented",
            "streaming",
        ),
    ];
    for (query, want_status, want_code, want_words) in cases {
        let url = gateway.url(&format!("/conformance.v1.ConformanceService/{query}"));
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), want_status, "{query}");
        if want_status == 405 {
            assert_eq!(response.headers()["allow"], "POST", "{query}");
        }
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], want_code, "{query}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(want_words), "{query}: {body}");
    }

    // A GET of a path no descriptor names is REST's business (404 there).
    let response = client
        .get(gateway.url("/conformance.v1.ConformanceService/Nope?encoding=json&message=%7B%7D"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

/// curl with `args` (a deadline, no retries): the answer's status, its head (lower case) and
/// its body as it came, whatever the status.
fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let mut command = Command::new("curl");
    command
        .args(["-sS", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args);
    let run = switchyard_tests::run_with_deadline(
        &mut command,
        &format!("curl {args:?}"),
        Duration::from_secs(30),
    );
    assert!(run.success, "curl {args:?}: {}", run.stderr);
    let head = std::fs::read_to_string(&head).unwrap().to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    (status, head, std::fs::read(&body).unwrap())
}

/// Connect GET with `compression=gzip` (<https://connectrpc.com/docs/protocol>,
/// "Unary-Get-Request"): the message gzipped, then URL-safe base64, inflated under
/// `limits.max_body_bytes` (a bomb in the query is refused as a POST body's is); the answer
/// gzipped from 1 KiB when `Accept-Encoding` takes gzip (or, without that header, when the
/// request was gzipped, as connect-go answers), `Vary: Accept-Encoding` always; an unknown
/// compression is 501 naming the ones we read. All with curl.
#[tokio::test(flavor = "multi_thread")]
async fn connect_get_with_gzip_both_ways() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let upstream = start_upstream(pool(), false).await;
    let mut config = base_config(upstream.addr);
    config["limits"] = json!({"max_body_bytes": 65536});
    let gateway = start_gateway(config, &[]);
    let lookup = gateway.url("/conformance.v1.ConformanceService/Lookup");
    let big = "z".repeat(3000);
    let big_json = json!({ "s": big }).to_string();
    let big_gzip = b64.encode(gzip(big_json.as_bytes()));
    let small_gzip = b64.encode(gzip(br#"{"s":"small"}"#));
    let echoed = |body: &[u8]| -> String {
        let value: serde_json::Value = serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
        value["s"].as_str().unwrap_or_default().to_owned()
    };

    struct Case {
        name: &'static str,
        message: String,
        /// The request's Accept-Encoding, if any.
        accept: Option<&'static str>,
        /// Whether the answer comes gzipped.
        gzipped: bool,
        /// What the upstream and the answer carry in `s`.
        want: String,
    }
    let cases = [
        Case {
            name: "gzip-asked",
            message: big_gzip.clone(),
            accept: Some("gzip"),
            gzipped: true,
            want: big.clone(),
        },
        // No Accept-Encoding: any coding is acceptable; the request's own is used.
        Case {
            name: "gzip-no-accept",
            message: big_gzip.clone(),
            accept: None,
            gzipped: true,
            want: big.clone(),
        },
        // Accept-Encoding present decides: identity only, so identity.
        Case {
            name: "gzip-identity-only",
            message: big_gzip.clone(),
            accept: Some("identity"),
            gzipped: false,
            want: big.clone(),
        },
        // Below 1 KiB the answer goes as it is.
        Case {
            name: "gzip-small",
            message: small_gzip,
            accept: Some("gzip"),
            gzipped: false,
            want: "small".into(),
        },
    ];
    for case in cases {
        let message = format!("message={}", case.message);
        let x_case = format!("x-case: {}", case.name);
        let accept = case.accept.map(|a| format!("accept-encoding: {a}"));
        let mut args = vec!["-G", "-H", x_case.as_str()];
        if let Some(accept) = &accept {
            args.extend(["-H", accept.as_str()]);
        }
        args.extend(["--data-urlencode", "connect=v1", "--data-urlencode"]);
        args.extend(["encoding=json", "--data-urlencode", "base64=1"]);
        args.extend(["--data-urlencode", "compression=gzip", "--data-urlencode"]);
        args.extend([message.as_str(), lookup.as_str()]);
        let (status, head, body) = curl(&args);
        assert_eq!(status, 200, "{}: {head}", case.name);
        assert!(
            head.contains("vary: accept-encoding"),
            "{}: {head}",
            case.name
        );
        assert!(head.contains("content-type: application/json"), "{head}");
        let gzipped = head.contains("content-encoding: gzip");
        assert_eq!(gzipped, case.gzipped, "{}: {head}", case.name);
        let body = if gzipped { gunzip(&body) } else { body };
        assert_eq!(echoed(&body), case.want, "{}", case.name);
        let recorded = upstream.calls.lock().unwrap()[case.name].clone();
        assert_eq!(
            recorded.requests[0]["s"],
            case.want.as_str(),
            "{}",
            case.name
        );
        assert!(
            !recorded.metadata.contains_key("grpc-encoding"),
            "{}",
            case.name
        );
    }

    // curl --compressed: asks for gzip and inflates, as a browser does.
    let url =
        format!("{lookup}?connect=v1&encoding=json&base64=1&compression=gzip&message={big_gzip}");
    let (status, head, body) = curl(&["--compressed", url.as_str()]);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(echoed(&body), big);

    // A bomb: about 1 KiB in the query that inflates to 1 MiB, past the 64 KiB limit.
    let bomb = gzip(&vec![0u8; 1 << 20]);
    assert!(bomb.len() < 1100, "a 1 KiB bomb: {} bytes", bomb.len());
    let url = format!(
        "{lookup}?encoding=proto&base64=1&compression=gzip&message={}",
        b64.encode(&bomb)
    );
    let (status, head, body) = curl(&["-H", "x-case: get-bomb", url.as_str()]);
    assert_eq!(status, 429, "{head}");
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["code"], "resource_exhausted", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("65536"),
        "the limit is named: {error}"
    );
    assert!(!upstream.calls.lock().unwrap().contains_key("get-bomb"));

    // Not gzip, and a compression we do not read.
    let url = format!(
        "{lookup}?encoding=json&base64=1&compression=gzip&message={}",
        b64.encode(&big_json)
    );
    let (status, _, body) = curl(&[url.as_str()]);
    assert_eq!(status, 400);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["code"], "invalid_argument", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("gzip"),
        "{error}"
    );
    let url = format!("{lookup}?encoding=json&base64=1&compression=br&message={big_gzip}");
    let (status, head, body) = curl(&[url.as_str()]);
    assert_eq!(status, 501, "{head}");
    assert!(head.contains("accept-encoding: gzip, identity"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["code"], "unimplemented", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("\"br\""),
        "{error}"
    );
}

/// connect-node's Connect transport with `useHttpGet: true` (tests/interop/node/connect_get.mjs)
/// in front of the echo upstream: `Lookup` (NO_SIDE_EFFECTS) goes as GET — JSON, binary, and
/// gzipped into the `compression` parameter — and `Echo` as POST. The script checks what it sent
/// and got; the gateway's access log shows the HTTP method each call arrived with, so a client
/// that fell back to POST fails here.
#[tokio::test(flavor = "multi_thread")]
async fn connect_node_calls_a_method_without_side_effects_with_get() {
    let node_dir = repo().join("tests/interop/node");
    let installed = node_dir.join("node_modules/@connectrpc/connect-node/package.json");
    assert!(
        installed.exists(),
        "{} is missing: run tests/interop/setup (it installs connect-node)",
        installed.display()
    );
    let upstream = start_upstream(pool(), false).await;
    let gateway = start_gateway(base_config(upstream.addr), &[]);
    let dir = tempfile::tempdir().unwrap();
    let descriptors = dir.path().join("conformance.binpb");
    std::fs::write(&descriptors, descriptor_bytes()).unwrap();
    let mut command = Command::new("node");
    command
        .arg("connect_get.mjs")
        .current_dir(&node_dir)
        .env("SWITCHYARD_URL", gateway.url(""))
        .env("SWITCHYARD_DESCRIPTORS", &descriptors)
        .env("NO_COLOR", "1");
    let run = tokio::task::spawn_blocking(move || {
        switchyard_tests::run_with_deadline(
            &mut command,
            "node tests/interop/node/connect_get.mjs (run tests/interop/setup if node is missing)",
            Duration::from_secs(120),
        )
    })
    .await
    .unwrap();
    let result = run
        .result
        .clone()
        .unwrap_or_else(|| panic!("no JSON result: {}{}", run.stdout, run.stderr));
    assert!(
        run.success && result["ok"] == true,
        "{result}\n{}\nthe gateway's access log: {:#?}",
        run.stderr,
        gateway.access_log()
    );
    let calls = result["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3, "{result}");
    let gzip_get = &calls[2]["requests"][0];
    assert!(
        gzip_get["path"]
            .as_str()
            .unwrap()
            .contains("compression=gzip"),
        "connect-node compressed its GET: {gzip_get}"
    );

    // What the gateway saw: three GETs of Lookup, three POSTs of Echo, nothing else. The access
    // line is written when the answer is done, which may be after the client has it: poll.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let seen: Vec<(String, String, String, String)> = gateway
            .access_log()
            .iter()
            .filter(|f| f["service"] == "conformance.v1.ConformanceService")
            .map(|f| {
                let text = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                (
                    text("method"),
                    text("http_method"),
                    text("protocol"),
                    text("code"),
                )
            })
            .collect();
        if seen.len() >= 6 || std::time::Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let count = |method: &str, http: &str| {
        seen.iter()
            .filter(|(m, h, p, c)| m == method && h == http && p == "connect" && c == "OK")
            .count()
    };
    assert_eq!(count("Lookup", "GET"), 3, "{seen:?}");
    assert_eq!(count("Echo", "POST"), 3, "{seen:?}");
    assert_eq!(seen.len(), 6, "{seen:?}");
}

/// A server stream of `google.api.HttpBody` over REST is the raw bytes of its chunks under the
/// first chunk's content type, as grpc-gateway and Envoy send it — not NDJSON; an error before
/// the first chunk is the REST error, one after it cuts the transfer short.
#[tokio::test(flavor = "multi_thread")]
async fn rest_http_body_stream_is_raw_chunks() {
    let upstream = start_upstream(pool(), false).await;
    let gateway = start_gateway(base_config(upstream.addr), &[]);
    let client = reqwest::Client::new();

    let response = client
        .get(gateway.url("/v1/download?count=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv");
    assert_eq!(response.headers()["grpc-metadata-x-echo-header"], "yes");
    assert_eq!(
        response.text().await.unwrap(),
        "chunk 1\nchunk 2\nchunk 3\n"
    );

    // Over HTTP/2 too (h2c).
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .get(gateway.url("/v1/download?count=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.headers()["content-type"], "text/csv");
    assert_eq!(response.text().await.unwrap(), "chunk 1\nchunk 2\n");

    // Failing before the first chunk: the REST error with the code's HTTP status.
    let response = client
        .get(gateway.url("/v1/download?count=0&fail_code=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], 5);
    assert_eq!(body["message"], "download failed");

    // Failing after it: the chunks so far, then a transfer that does not complete (the abort
    // may reach the client before the head does: the upstream sends everything at once).
    for client in [&client, &h2] {
        let sent = client
            .get(gateway.url("/v1/download?count=2&fail_code=13"))
            .send()
            .await;
        if let Ok(response) = sent {
            assert_eq!(response.status().as_u16(), 200);
            assert!(
                response.text().await.is_err(),
                "the body should end in error"
            );
        }
    }

    // No chunk at all: an empty body.
    let response = client
        .get(gateway.url("/v1/download?count=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(response.text().await.unwrap(), "");
}
