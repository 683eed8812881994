//! Interop: real ZITADEL SDKs and gRPC-Web/Connect clients against the real binary.
//!
//! Each test starts its own server, runs one client script from `tests/interop/` with the server's
//! URL and the admin's token in `SWITCHYARD_URL` / `SWITCHYARD_TOKEN`, requires exit status 0,
//! re-checks the key facts from the script's one-line JSON result, and finally asks the server
//! itself (native gRPC, tonic) whether the users the client created are there and active.
//!
//! The clients are installed by `tests/interop/setup` (which `tests/run` calls): a missing Node,
//! `node_modules` or Python venv fails the test with a message saying so; nothing is skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use switchyard_tests::{ScriptRun, Server, assert_active_on_server, run_with_deadline};

/// How long one client script may run (it makes a handful of calls on a local server).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

const SETUP_HINT: &str = "run tests/interop/setup (tests/run does) to install the interop clients";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Runs `program args…` in `dir` against `server` (its URL and token in the environment).
fn run_script(server: &Server, program: &Path, args: &[&str], dir: &Path) -> ScriptRun {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .env("SWITCHYARD_URL", server.url())
        .env("SWITCHYARD_TOKEN", &server.token)
        .env("NO_COLOR", "1");
    let what = format!(
        "{} {args:?} ({SETUP_HINT} if it is missing)",
        program.display()
    );
    run_with_deadline(&mut command, &what, SCRIPT_DEADLINE)
}

/// `node`, after checking that it is there and that `npm ci` has run in tests/interop/node.
fn node() -> (PathBuf, PathBuf) {
    let dir = interop_dir().join("node");
    let version = Command::new("node").arg("--version").output();
    match version {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`node --version` failed: {}; {SETUP_HINT}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("node is not on PATH ({e}): install Node >= 20, then {SETUP_HINT}"),
    }
    for package in [
        "@zitadel/client",
        "@zitadel/proto",
        "@connectrpc/connect",
        "@connectrpc/connect-node",
    ] {
        let path = dir.join("node_modules").join(package).join("package.json");
        assert!(path.exists(), "{} is missing; {SETUP_HINT}", path.display());
    }
    (PathBuf::from("node"), dir)
}

/// The venv's python, after checking that the venv exists and has the SDK.
fn venv_python() -> (PathBuf, PathBuf) {
    let dir = interop_dir().join("python");
    let python = dir.join(".venv").join("bin").join("python");
    assert!(
        python.exists(),
        "{} is missing; {SETUP_HINT}",
        python.display()
    );
    let probe = Command::new(&python)
        .args(["-c", "import zitadel_client"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {SETUP_HINT}", python.display()));
    assert!(
        probe.status.success(),
        "the venv has no zitadel_client ({}); {SETUP_HINT}",
        String::from_utf8_lossy(&probe.stderr)
    );
    (python, dir)
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}

/// The second ReactivateUser as a connect-es client saw it (code, message, ErrorDetail).
fn assert_connect_es_precondition(flow: &Value, id: &str) {
    assert_eq!(str_at(flow, "/secondReactivate/code"), "FailedPrecondition");
    assert_eq!(
        str_at(flow, "/secondReactivate/rawMessage"),
        format!("User is not inactive ({id})")
    );
    assert_eq!(str_at(flow, "/secondReactivate/errorDetail/id"), id);
    assert_eq!(
        str_at(flow, "/secondReactivate/errorDetail/message"),
        "User is not inactive"
    );
}

/// A v2 flow's result: state and sequences as the client saw them.
fn assert_v2_flow(flow: &Value) -> String {
    assert_eq!(str_at(flow, "/state"), "ACTIVE");
    assert_eq!(
        (
            str_at(flow, "/addSequence"),
            str_at(flow, "/deactivateSequence"),
            str_at(flow, "/reactivateSequence")
        ),
        ("1", "2", "3"),
        "details are the appended events"
    );
    assert_connect_es_precondition(flow, "COMMAND-s5qqcz97hf");
    str_at(flow, "/userId").to_owned()
}

/// A v1 flow's result.
fn assert_v1_flow(flow: &Value) -> String {
    assert_eq!(str_at(flow, "/state"), "ACTIVE");
    assert!(!str_at(flow, "/orgId").is_empty());
    assert_connect_es_precondition(flow, "COMMAND-6M0sf");
    str_at(flow, "/userId").to_owned()
}

/// ZITADEL's Node SDK (`@zitadel/client`): its own gRPC server transport with its bearer
/// interceptor, its v2 UserService and v1 ManagementService clients.
#[test]
fn node_sdk_grpc_flow() {
    let (node, dir) = node();
    let server = Server::start();
    let result = run_script(&server, &node, &["sdk_grpc.mjs"], &dir)
        .expect_ok("tests/interop/node/sdk_grpc.mjs", &server);

    let v2 = &result["v2"];
    let v2_user = assert_v2_flow(v2);
    let v1_user = assert_v1_flow(&result["v1"]);
    assert_active_on_server(
        &server,
        &[(v2_user, str_at(v2, "/username").to_owned())],
        &[v1_user],
    );
}

/// connect-node's gRPC-Web transport with `@zitadel/proto`'s descriptors, over HTTP/1.1 and h2c.
#[test]
fn grpc_web_client_flow() {
    let (node, dir) = node();
    let server = Server::start();
    let result = run_script(&server, &node, &["grpc_web.mjs"], &dir)
        .expect_ok("tests/interop/node/grpc_web.mjs", &server);

    let mut v2_users = Vec::new();
    for key in ["v2_http1", "v2_http2"] {
        let flow = &result[key];
        let user_id = assert_v2_flow(flow);
        v2_users.push((user_id, str_at(flow, "/username").to_owned()));
    }
    let v1_users: Vec<String> = ["v1_http1", "v1_http2"]
        .iter()
        .map(|key| assert_v1_flow(&result[*key]))
        .collect();
    assert_active_on_server(&server, &v2_users, &v1_users);
}

/// ZITADEL's Python SDK (`zitadel-client`): Connect with JSON bodies to the v2 UserService, PAT
/// authentication.
#[test]
fn python_sdk_flow() {
    let (python, dir) = venv_python();
    let server = Server::start();
    let result = run_script(
        &server,
        &python,
        &["-W", "ignore::DeprecationWarning", "sdk_flow.py"],
        &dir,
    )
    .expect_ok("tests/interop/python/sdk_flow.py", &server);

    assert_eq!(str_at(&result, "/state"), "USER_STATE_ACTIVE");
    assert_eq!(
        (
            str_at(&result, "/addSequence"),
            str_at(&result, "/deactivateSequence"),
            str_at(&result, "/reactivateSequence")
        ),
        ("1", "2", "3")
    );
    // Connect's error for FAILED_PRECONDITION: HTTP 400, code "failed_precondition".
    let second = &result["secondReactivate"];
    assert_eq!(second["httpStatus"], 400, "{second}");
    assert_eq!(str_at(second, "/body/code"), "failed_precondition");
    assert_eq!(
        str_at(second, "/body/message"),
        "User is not inactive (COMMAND-s5qqcz97hf)"
    );
    assert_eq!(
        str_at(second, "/body/details/0/type"),
        "zitadel.v1.ErrorDetail"
    );

    // What the SDK sent: Connect unary, JSON, to the v2 service paths, with the bearer token.
    let requests = result["requests"].as_array().expect("requests");
    let paths: Vec<&str> = requests.iter().map(|r| str_at(r, "/path")).collect();
    assert_eq!(
        paths,
        [
            "/zitadel.user.v2.UserService/AddHumanUser",
            "/zitadel.user.v2.UserService/DeactivateUser",
            "/zitadel.user.v2.UserService/ReactivateUser",
            "/zitadel.user.v2.UserService/GetUserByID",
            "/zitadel.user.v2.UserService/ReactivateUser",
        ]
    );
    for request in requests {
        assert_eq!(str_at(request, "/method"), "POST");
        assert_eq!(str_at(request, "/contentType"), "application/json");
        assert_eq!(request["bearer"], true);
    }

    let user_id = str_at(&result, "/userId").to_owned();
    let username = str_at(&result, "/username").to_owned();
    assert_active_on_server(&server, &[(user_id, username)], &[]);
}

/// A client driven by the served OpenAPI document (tests/interop/python/openapi_calls.py):
/// the document validates as OpenAPI 3.1, and every operation family is called by its
/// operationId with the path, header parameters (`x-zitadel-orgid` on management v1) and body
/// schemas (path-bound fields left out) it declares, each answer checked against its schema.
#[test]
fn openapi_document_drives_a_client() {
    let (python, dir) = venv_python();
    let server = Server::start();
    let result = run_script(&server, &python, &["openapi_calls.py"], &dir)
        .expect_ok("tests/interop/python/openapi_calls.py", &server);
    assert!(
        result["calls"].as_u64().is_some_and(|n| n >= 25),
        "{result}"
    );
    assert_eq!(
        result["title"], "Switchyard: ZITADEL management v1 and user v2",
        "{result}"
    );
}

/// `buf curl` (npm `@bufbuild/buf`), the path to it after checking it is installed.
fn buf() -> PathBuf {
    let (_, dir) = node();
    let buf = dir.join("node_modules/.bin/buf");
    assert!(buf.exists(), "{} is missing; {SETUP_HINT}", buf.display());
    buf
}

/// Runs `buf curl` with `args`.
fn buf_curl(buf: &Path, args: &[&str]) -> ScriptRun {
    let mut command = Command::new(buf);
    command.arg("curl").args(args);
    run_with_deadline(&mut command, &format!("buf curl {args:?}"), SCRIPT_DEADLINE)
}

/// `stdout` of a `buf curl` run that must succeed.
fn buf_ok(run: ScriptRun, args: &[&str]) -> String {
    assert!(
        run.success,
        "buf curl {args:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.stdout, run.stderr
    );
    run.stdout
}

/// `buf curl` with server reflection over each protocol, HTTP/2 without TLS (h2c, which
/// reflection's bidirectional stream needs): it lists every service, health and reflection
/// included, and every unary method it lists reaches its handler — `{}` gets the handler's
/// answer or its own validation error, never UNIMPLEMENTED or a schema error; health `Check`
/// answers SERVING and `Watch` streams SERVING.
#[test]
fn buf_curl_reaches_every_method_by_reflection_over_every_protocol() {
    let buf = buf();
    let server = Server::start();
    let url = server.url();
    let auth = format!("authorization: {}", server.bearer());
    for protocol in ["grpc", "grpcweb", "connect"] {
        let base = ["--protocol", protocol, "--http2-prior-knowledge"];
        let with = |extra: &[&str]| -> Vec<String> {
            base.iter().chain(extra).map(|s| (*s).to_owned()).collect()
        };
        let run = |extra: &[&str]| {
            let args = with(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            (buf_curl(&buf, &args), args.join(" "))
        };
        let (listed, what) = run(&["--list-services", &url]);
        let services = buf_ok(listed, &[&what]);
        for want in [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "zitadel.management.v1.ManagementService",
            "zitadel.user.v2.UserService",
        ] {
            assert!(
                services.lines().any(|l| l.trim() == want),
                "{protocol}: {want} not in\n{services}"
            );
        }
        let (listed, what) = run(&["--list-methods", &url]);
        let methods = buf_ok(listed, &[&what]);
        let methods: Vec<&str> = methods.lines().map(str::trim).collect();
        assert!(methods.len() >= 30, "{protocol}: {methods:?}");
        let streaming = [
            "grpc.health.v1.Health/Watch",
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ];
        for method in methods.iter().filter(|m| !streaming.contains(m)) {
            let target = format!("{url}/{method}");
            let (answer, what) = run(&["-H", &auth, "-d", "{}", &target]);
            let stderr = answer.stderr.to_ascii_lowercase();
            assert!(
                answer.success
                    || (stderr.contains("\"code\"")
                        && !stderr.contains("unimplemented")
                        && !stderr.contains("unknown")),
                "{what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                answer.stdout,
                answer.stderr
            );
        }
        let (health, what) = run(&[
            "-d",
            r#"{"service":""}"#,
            &format!("{url}/grpc.health.v1.Health/Check"),
        ]);
        let health: Value = serde_json::from_str(&buf_ok(health, &[&what])).expect("JSON");
        assert_eq!(health["status"], "SERVING", "{protocol}: {health}");
        let (org, what) = run(&[
            "-H",
            &auth,
            &format!("{url}/zitadel.management.v1.ManagementService/GetMyOrg"),
        ]);
        let org: Value = serde_json::from_str(&buf_ok(org, &[&what])).expect("JSON");
        assert_eq!(org["org"]["name"], "ZITADEL", "{protocol}: {org}");
        // A server stream: the first status arrives, then the stream stays open until buf's
        // own deadline ends it.
        let (watch, what) = run(&[
            "--timeout",
            "2s",
            &format!("{url}/grpc.health.v1.Health/Watch"),
        ]);
        assert!(
            watch.stdout.contains("SERVING"),
            "{what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            watch.stdout,
            watch.stderr
        );
    }
}

/// `buf curl` over HTTP/1.1, where Connect and gRPC-Web allow it (gRPC does not, and
/// reflection's bidirectional stream does not either), with the schema from a descriptor set
/// instead: unary calls to health and to ZITADEL's services.
#[test]
fn buf_curl_over_http1_with_a_schema() {
    use prost::Message as _;
    let buf = buf();
    let server = Server::start();
    let url = server.url();
    let auth = format!("authorization: {}", server.bearer());
    let mut pool = switchyard_proto::descriptor_pool().clone();
    pool.decode_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .expect("health descriptors");
    let set = prost_types::FileDescriptorSet {
        file: pool.file_descriptor_protos().cloned().collect(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = dir.path().join("schema.binpb");
    std::fs::write(&schema, set.encode_to_vec()).expect("write the schema");
    let schema = schema.to_str().expect("UTF-8 path");
    for protocol in ["grpcweb", "connect"] {
        let args = [
            "--protocol",
            protocol,
            "--schema",
            schema,
            "-d",
            r#"{"service":""}"#,
        ];
        let target = format!("{url}/grpc.health.v1.Health/Check");
        let mut all = args.to_vec();
        all.push(&target);
        let health: Value =
            serde_json::from_str(&buf_ok(buf_curl(&buf, &all), &all)).expect("JSON");
        assert_eq!(health["status"], "SERVING", "{protocol}: {health}");
        let target = format!("{url}/zitadel.management.v1.ManagementService/GetMyOrg");
        let all = [
            "--protocol",
            protocol,
            "--schema",
            schema,
            "-H",
            &auth,
            &target,
        ];
        let org: Value = serde_json::from_str(&buf_ok(buf_curl(&buf, &all), &all)).expect("JSON");
        assert_eq!(org["org"]["name"], "ZITADEL", "{protocol}: {org}");
    }
}

/// grpcio (`compression=grpc.Compression.Gzip` on the channel and every call): gzip-compressed
/// request frames, answers compressed back where they are worth it, through GetMyOrg,
/// AddHumanUser, GetUserByID, ListUsers and a NOT_FOUND.
#[test]
fn grpcio_gzip_flow() {
    let (python, dir) = venv_python();
    let probe = Command::new(&python)
        .args(["-c", "import grpc"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "the venv has no grpcio; {SETUP_HINT}"
    );
    let server = Server::start();
    let result = run_script(&server, &python, &["grpc_gzip.py"], &dir)
        .expect_ok("tests/interop/python/grpc_gzip.py", &server);
    assert!(
        result["listBytes"].as_u64().is_some_and(|n| n > 2048),
        "a list worth compressing: {result}"
    );
    assert!(
        str_at(&result, "/notFound").contains("could not be found"),
        "{result}"
    );
    let ids: Vec<String> = result["userIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 8);
    assert_active_on_server(&server, &[], &ids);
}

/// connect-node: its gRPC-Web transport with `useBinaryFormat: false` (gRPC-Web JSON) over
/// HTTP/1.1 and h2c, and its gRPC-Web and Connect transports with `sendCompression: gzip`; each
/// runs the v2 and v1 flows and a ListUsers the server answers compressed.
#[test]
fn connect_node_grpc_web_json_and_gzip() {
    let (node, dir) = node();
    let server = Server::start();
    let result = run_script(&server, &node, &["wire.mjs"], &dir)
        .expect_ok("tests/interop/node/wire.mjs", &server);
    let mut v2_users = Vec::new();
    let mut v1_users = Vec::new();
    for (key, want) in [
        (
            "grpcWebJsonHttp1",
            ("contentType", "application/grpc-web+json"),
        ),
        (
            "grpcWebJsonHttp2",
            ("contentType", "application/grpc-web+json"),
        ),
        ("grpcWebGzip", ("grpcEncoding", "gzip")),
        ("connectGzipJson", ("contentEncoding", "gzip")),
        ("connectGzipProto", ("contentEncoding", "gzip")),
    ] {
        let run = &result[key];
        let v2 = &run["v2"];
        v2_users.push((assert_v2_flow(v2), str_at(v2, "/username").to_owned()));
        v1_users.push(assert_v1_flow(&run["v1"]));
        let list = &run["listSeen"][0];
        assert_eq!(list[want.0], want.1, "{key}: {run}");
    }
    assert_active_on_server(&server, &v2_users, &v1_users);
}
