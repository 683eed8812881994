//! Operations against the real binary: configuration errors, metrics per protocol, request
//! ids and the access log, readiness while draining, TLS with ALPN on the cleartext port, body
//! limits, slow clients, CORS.
#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use reqwest::StatusCode;
use serde_json::Value;
use switchyard_proto::zitadel::user::v2 as user_v2;
use switchyard_tests::{Server, binary};

/// How long any awaited condition may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// Writes `text` as a configuration file in `dir`.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts a server on a fresh data directory with the configuration `text`.
fn start_with_config(text: &str, extra: &[&str]) -> (Server, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), text);
    let data = tmp.path().join("data");
    let mut args = vec!["--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    (Server::start_in(&data, &args), tmp)
}

/// Polls `check` until it returns `Some`, failing after [`DEADLINE`] with `what`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn bad_config_stops_start_up_naming_the_key() {
    struct Case {
        name: &'static str,
        file: &'static str,
        env: &'static [(&'static str, &'static str)],
        want: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "unknown key",
            file: "[limits]\nmax_body = 1\n",
            env: &[],
            want: &["unknown key `limits.max_body`", "max_body_bytes"],
        },
        Case {
            name: "unknown top-level key",
            file: "lisen = \"127.0.0.1:0\"\n",
            env: &[],
            want: &["unknown key `lisen`"],
        },
        Case {
            name: "bad value in the file",
            file: "[shutdown]\ngrace_period = \"soon\"\n",
            env: &[],
            want: &["shutdown.grace_period", "\"soon\"", "10s"],
        },
        Case {
            name: "bad value in the environment",
            file: "",
            env: &[("SWITCHYARD_LIMITS_MAX_CONNECTIONS", "many")],
            want: &[
                "SWITCHYARD_LIMITS_MAX_CONNECTIONS",
                "limits.max_connections",
                "integer",
            ],
        },
    ];
    for case in cases {
        let tmp = tempfile::tempdir().unwrap();
        let config = write_config(tmp.path(), case.file);
        let output = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .envs(case.env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{}: {stderr}", case.name);
        for want in case.want {
            assert!(
                stderr.contains(want),
                "{}: {stderr:?} lacks {want:?}",
                case.name
            );
        }
        // `config check` says the same without starting.
        let check = Command::new(binary())
            .args(["config", "check", "--config"])
            .arg(&config)
            .envs(case.env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(check.status.code(), Some(2), "{}", case.name);
        assert!(
            !tmp.path().join("data").exists(),
            "{}: started anyway",
            case.name
        );
    }
}

/// A gRPC-Web frame.
fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The `requests_total` count of one label set, if present.
fn count(metrics: &str, protocol: &str, method: &str, code: &str) -> Option<u64> {
    let labels = format!(
        "switchyard_requests_total{{protocol=\"{protocol}\",service=\"zitadel.user.v2.UserService\",method=\"{method}\",code=\"{code}\"}} "
    );
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&labels))
        .and_then(|n| n.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_each_protocol_under_its_labels() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let missing = "4242";

    // REST: GET /v2/users/{user_id}.
    let response = client
        .get(format!("{}/v2/users/{missing}", server.url()))
        .header("authorization", server.bearer())
        .header("x-request-id", "ops-test-rest")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()["x-request-id"],
        "ops-test-rest",
        "echoed"
    );

    // Connect JSON.
    let response = client
        .post(format!(
            "{}/zitadel.user.v2.UserService/GetUserByID",
            server.url()
        ))
        .header("authorization", server.bearer())
        .header("content-type", "application/json")
        .header("connect-protocol-version", "1")
        .body(format!("{{\"userId\":\"{missing}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(generated.len() >= 16, "a generated request id: {generated}");

    // gRPC-Web (binary).
    let message = user_v2::GetUserByIdRequest {
        user_id: missing.into(),
    }
    .encode_to_vec();
    let response = client
        .post(format!(
            "{}/zitadel.user.v2.UserService/GetUserByID",
            server.url()
        ))
        .header("authorization", server.bearer())
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(frame(0, &message))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.unwrap();
    assert!(
        String::from_utf8_lossy(&body).contains("grpc-status:5"),
        "{body:?}"
    );

    // gRPC.
    let channel = tonic::transport::Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = user_v2::user_service_client::UserServiceClient::new(channel);
    let mut request = tonic::Request::new(user_v2::GetUserByIdRequest {
        user_id: missing.into(),
    });
    request
        .metadata_mut()
        .insert("authorization", server.bearer().parse().unwrap());
    let status = grpc
        .get_user_by_id(request)
        .await
        .expect_err("no such user");
    assert_eq!(status.code(), tonic::Code::NotFound);

    let metrics_url = format!("{}/metrics", server.url());
    let metrics = eventually("all four protocols in /metrics", || {
        let client = client.clone();
        let url = metrics_url.clone();
        async move {
            let text = client.get(&url).send().await.ok()?.text().await.ok()?;
            ["rest", "connect", "grpc-web", "grpc"]
                .iter()
                .all(|p| count(&text, p, "GetUserByID", "NOT_FOUND") == Some(1))
                .then_some(text)
        }
    })
    .await;
    for family in [
        "switchyard_request_duration_seconds_bucket",
        "switchyard_requests_in_flight",
        "switchyard_connections_open",
        "switchyard_store_commit_duration_seconds",
    ] {
        assert!(metrics.contains(family), "{family} missing");
    }

    // One access line per call, with the request id; never the token.
    let access = server.wait_for_log(4, |l| {
        l.contains("switchyard::access") && l.contains("GetUserByID")
    });
    assert_eq!(access.len(), 4, "{access:#?}");
    let rest_line = access
        .iter()
        .find(|l| l.contains("ops-test-rest"))
        .expect("rest line");
    for want in [
        "\"protocol\":\"rest\"",
        "\"code\":\"NOT_FOUND\"",
        "\"http_status\":404",
        "\"peer\":\"127.0.0.1:",
    ] {
        assert!(rest_line.contains(want), "{want} not in {rest_line}");
    }
    assert!(
        !server.log().iter().any(|l| l.contains(&server.token)),
        "the token was logged"
    );
}

/// An HTTP/1.1 exchange on a raw socket: sends `head`, returns the stream.
fn raw(server: &Server, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

/// Reads until the peer closes (or the read deadline passes).
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The number after `name` (a counter or a histogram's `_count`) in the exposition.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn store_commits_are_measured() {
    let server = Server::start();
    let client = reqwest::Client::new();
    for name in ["Metered A", "Metered B"] {
        let response = client
            .post(format!("{}/management/v1/orgs", server.url()))
            .header("authorization", server.bearer())
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let url = format!("{}/metrics", server.url());
    let text = eventually("two store commits in /metrics", || {
        let client = client.clone();
        let url = url.clone();
        async move {
            let text = client.get(&url).send().await.ok()?.text().await.ok()?;
            (sample(&text, "switchyard_store_commit_duration_seconds_count")? >= 2.0)
                .then_some(text)
        }
    })
    .await;
    assert!(sample(&text, "switchyard_store_commit_batch_size_count").is_some_and(|n| n >= 2.0));
    assert!(sample(&text, "switchyard_store_commit_batch_size_sum").is_some_and(|n| n >= 2.0));
}

#[tokio::test]
async fn readyz_fails_while_draining_and_the_in_flight_call_completes() {
    let (mut server, _tmp) = start_with_config(
        "admin_listen = \"127.0.0.1:0\"\n[shutdown]\ngrace_period = \"20s\"\n",
        &[],
    );
    let admin = eventually("the admin port in the log", || {
        let log = server.log();
        async move {
            log.iter().find_map(|line| {
                let value: Value = serde_json::from_str(line).ok()?;
                value["fields"]["admin_addr"].as_str().map(str::to_owned)
            })
        }
    })
    .await;
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    // A call in flight: its body is still arriving.
    let mut stream = raw(
        &server,
        &format!(
            "POST /management/v1/users/_search HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{",
            server.bearer()
        ),
    );
    let metrics_url = format!("http://{admin}/metrics");
    eventually("the call in flight", || {
        let client = client.clone();
        let url = metrics_url.clone();
        async move {
            let text = client.get(&url).send().await.ok()?.text().await.ok()?;
            text.contains("switchyard_requests_in_flight{protocol=\"rest\"} 1")
                .then_some(())
        }
    })
    .await;

    server.signal("TERM");
    let reason = eventually("readyz to fail", || {
        let client = client.clone();
        let url = format!("http://{admin}/readyz");
        async move {
            let response = client.get(&url).send().await.ok()?;
            (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())?;
            response.text().await.ok()
        }
    })
    .await;
    assert!(reason.contains("draining"), "{reason}");

    // The call completes after draining started.
    stream.write_all(b"}").unwrap();
    let answer = read_to_close(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let status = server.wait_exit(DEADLINE).expect("exited");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn oversize_body_gets_413_with_a_json_error() {
    let (server, _tmp) = start_with_config("[limits]\nmax_body_bytes = 1024\n", &[]);
    let client = reqwest::Client::new();
    let body = format!("{{\"query\":{{\"limit\":\"{}\"}}}}", "1".repeat(2048));
    let response = client
        .post(format!("{}/management/v1/users/_search", server.url()))
        .header("authorization", server.bearer())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["code"], 8, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1024"),
        "the limit is named: {error}"
    );
}

#[tokio::test]
async fn slow_header_client_is_cut_off_while_others_are_served() {
    let (server, _tmp) = start_with_config("[limits]\nheader_read_timeout = \"1s\"\n", &[]);
    let started = Instant::now();
    // Half a request head, then nothing.
    let mut slow = raw(&server, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK, "others are served meanwhile");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(read_to_close(&mut slow));
    });
    let answer = rx
        .recv_timeout(DEADLINE)
        .expect("the slow client is cut off");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "no answer to half a head: {answer}"
    );
    assert!(started.elapsed() < DEADLINE);
    // A client that sends nothing at all is cut off too.
    let mut silent = raw(&server, "");
    assert_eq!(read_to_close(&mut silent), "");
}

#[tokio::test]
async fn cors_preflight_passes_from_an_allowed_origin_only() {
    let (server, _tmp) =
        start_with_config("[cors]\nallowed_origins = [\"https://app.example\"]\n", &[]);
    let client = reqwest::Client::new();
    let cases = [
        ("https://app.example", true),
        ("https://evil.example", false),
    ];
    for (origin, allowed) in cases {
        let response = client
            .request(
                reqwest::Method::OPTIONS,
                format!(
                    "{}/zitadel.user.v2.UserService/DeactivateUser",
                    server.url()
                ),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,connect-protocol-version,x-grpc-web",
            )
            .send()
            .await
            .unwrap();
        let allow_origin = response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned());
        if allowed {
            assert!(
                response.status().is_success(),
                "{origin}: {}",
                response.status()
            );
            assert_eq!(allow_origin.as_deref(), Some(origin));
            let headers = response.headers()["access-control-allow-headers"]
                .to_str()
                .unwrap();
            for name in [
                "authorization",
                "connect-protocol-version",
                "x-grpc-web",
                "x-zitadel-orgid",
            ] {
                assert!(headers.contains(name), "{name} not allowed: {headers}");
            }
            assert!(response.headers().contains_key("access-control-max-age"));
        } else {
            assert!(
                !response.status().is_success(),
                "{origin}: {}",
                response.status()
            );
            assert_eq!(allow_origin, None, "{origin}");
        }
    }
    // An actual call from the allowed origin exposes the gRPC status headers.
    let response = client
        .post(format!(
            "{}/zitadel.user.v2.UserService/GetUserByID",
            server.url()
        ))
        .header("origin", "https://app.example")
        .header("authorization", server.bearer())
        .header("content-type", "application/grpc-web+proto")
        .body(frame(0, &[]))
        .send()
        .await
        .unwrap();
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("x-request-id"),
        "{exposed}"
    );
}

/// A TLS client offering `alpn`; returns the negotiated protocol and the stream.
async fn tls_connect(
    server: &Server,
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
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

#[tokio::test]
async fn tls_negotiates_h2_and_http1_on_the_cleartext_port() {
    use http_body_util::BodyExt as _;
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cert_path = tmp.path().join("cert.pem");
    let key_path = tmp.path().join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let (server, _config_tmp) = start_with_config(
        &format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            cert_path.to_str().unwrap(),
            key_path.to_str().unwrap()
        ),
        &[],
    );
    let request = || {
        http::Request::get("https://localhost/healthz")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };

    let h2 = tls_connect(&server, &cert, b"h2").await;
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(h2),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request()).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);

    let h1 = tls_connect(&server, &cert, b"http/1.1").await;
    assert_eq!(h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(h1))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request()).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_11);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok\n");

    // Cleartext still works on the same port.
    let plain = reqwest::get(format!("{}/healthz", server.url()))
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);

    // SIGHUP reloads the certificate without stopping the server.
    server.signal("HUP");
    eventually("the reload in the log", || {
        let log = server.log();
        async move {
            log.iter()
                .any(|l| l.contains("TLS certificate reloaded"))
                .then_some(())
        }
    })
    .await;
    let again = tls_connect(&server, &cert, b"h2").await;
    assert_eq!(again.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
}

/// `/metrics` as Prometheus reads it, parsed by PyPI `prometheus-client`'s own parsers
/// (tests/interop/python/prom_scrape.py): the default scrape is text 0.0.4 whose counters the
/// classic parser types `counter` on their `_total` samples; Prometheus' scrape header gets
/// OpenMetrics, which the strict parser accepts; the `process_*` set and the build info are there.
#[tokio::test]
async fn prometheus_parsers_read_metrics() {
    let server = Server::start();
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/v2/users/no-such-user", server.url()))
        .header("authorization", server.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let metrics_url = format!("{}/metrics", server.url());
    eventually("the REST call in /metrics", || {
        let client = client.clone();
        let url = metrics_url.clone();
        async move {
            let text = client.get(&url).send().await.ok()?.text().await.ok()?;
            text.contains("switchyard_requests_total{protocol=\"rest\"")
                .then_some(())
        }
    })
    .await;

    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/python/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/interop/setup (it installs prometheus-client)",
        python.display()
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/python/prom_scrape.py");
    let parsed = switchyard_tests::run_with_deadline(
        Command::new(&python)
            .arg(&script)
            .env("SWITCHYARD_METRICS_URL", &metrics_url),
        "prom_scrape.py",
        DEADLINE,
    )
    .expect_ok("prom_scrape.py", &server);

    let text = &parsed["text"];
    let typed = |family: &str, want: &str| {
        assert_eq!(
            text[family]["type"], want,
            "classic parser: {family} is {}",
            text[family]
        );
    };
    typed("switchyard_requests", "counter");
    typed("switchyard_connections", "counter");
    typed("switchyard_request_duration_seconds", "histogram");
    typed("switchyard_connections_open", "gauge");
    typed("switchyard_build_info", "gauge");
    typed("process_cpu_seconds", "counter");
    for gauge in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        typed(gauge, "gauge");
    }
    assert!(
        text["switchyard_requests"]["samples"]["switchyard_requests_total"]
            .as_f64()
            .is_some_and(|n| n >= 1.0),
        "{}",
        text["switchyard_requests"]
    );
    assert!(
        text["process_resident_memory_bytes"]["samples"]["process_resident_memory_bytes"]
            .as_f64()
            .is_some_and(|n| n > 1e6)
    );
    assert!(
        text["process_open_fds"]["samples"]["process_open_fds"]
            .as_f64()
            .is_some_and(|n| n >= 3.0)
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        text["switchyard_build_info"]["samples"]["switchyard_build_info"], 1.0,
        "build info for {version}"
    );

    let om = &parsed["openmetrics"];
    assert_eq!(om["switchyard_requests"]["type"], "counter", "{om}");
    assert_eq!(om["switchyard_build"]["type"], "info", "{om}");
    assert_eq!(om["process_cpu_seconds"]["type"], "counter", "{om}");
    assert_eq!(om["process_start_time_seconds"]["type"], "gauge", "{om}");
}
