//! A real browser against the real binary: headless Chromium loads a page from another origin
//! that calls the v2 UserService with `@connectrpc/connect-web` over gRPC-Web and over Connect,
//! and the same page from an origin that `[cors] allowed_origins` does not list is refused.
//!
//! The pieces:
//! - `tests/interop/node/page/` — the page (`index.html`, `app.mjs`). `node browser.mjs --bundle
//!   DIR` bundles `app.mjs` with esbuild (npm) into `DIR/app.js`, a temporary directory here.
//! - Two tiny static file servers in this process (tokio), one per origin
//!   (`http://127.0.0.1:<port>`), serving that directory.
//! - `switchyard serve --config F` on its own port, with `F` allowing only the first origin.
//! - `tests/interop/node/browser.mjs URL…` — drives Debian's `/usr/bin/chromium` with npm's
//!   `playwright-core`, waits (with a deadline) for the page's `<pre id="result" data-done>` and
//!   prints its JSON with the page's console messages (where Chromium reports CORS refusals).
//!   The API's URL, the admin's token and a run id go to the page in the URL fragment.
//!
//! Chromium and the npm packages are installed by `tests/interop/setup` (which `tests/run`
//! calls): when either is missing the test fails saying so; it is never skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use switchyard_tests::{Server, assert_active_on_server, run_with_deadline};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long one `node browser.mjs` run may take (bundling, or launching Chromium and two pages).
const DRIVER_DEADLINE: Duration = Duration::from_secs(180);
/// How long the server's access lines may take to reach its log after the calls returned.
const LOG_DEADLINE: Duration = Duration::from_secs(10);
/// Debian's Chromium: playwright cannot download a browser of its own here.
const CHROMIUM: &str = "/usr/bin/chromium";

const SETUP_HINT: &str =
    "run tests/interop/setup (tests/run does) to install Chromium and the Node packages";

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("interop")
        .join("node")
}

/// Fails (never skips) unless node, Chromium and the page's and driver's npm packages are there.
fn require_setup() {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`node --version` failed: {}; {SETUP_HINT}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("node is not on PATH ({e}): install Node >= 20, then {SETUP_HINT}"),
    }
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing (Debian package chromium); {SETUP_HINT}"
    );
    for package in [
        "@bufbuild/protobuf",
        "@connectrpc/connect",
        "@connectrpc/connect-web",
        "@zitadel/proto",
        "esbuild",
        "playwright-core",
    ] {
        let path = node_dir()
            .join("node_modules")
            .join(package)
            .join("package.json");
        assert!(path.exists(), "{} is missing; {SETUP_HINT}", path.display());
    }
}

/// Runs `node browser.mjs args…` with a deadline; returns its JSON result line, after requiring
/// exit status 0 and `"ok": true`.
fn browser_mjs(args: &[&str], server: &Server) -> Value {
    let mut command = Command::new("node");
    command
        .arg("browser.mjs")
        .args(args)
        .current_dir(node_dir())
        .env("NO_COLOR", "1");
    let what = format!(
        "node browser.mjs {:?} ({SETUP_HINT} if it is missing)",
        args.first()
    );
    run_with_deadline(&mut command, &what, DRIVER_DEADLINE).expect_ok(&what, server)
}

/// A static file server for `dir` on `listener`: GET only, files directly in `dir` only,
/// `/` is `index.html`; one request per connection. It stops when this is dropped.
struct StaticSite {
    origin: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl StaticSite {
    fn start(dir: &Path) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr: SocketAddr = listener.local_addr().expect("local_addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let dir = dir.to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("from_std");
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(serve_file(stream, dir.clone()));
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Self {
            origin: format!("http://{addr}"),
            _stop: stop,
        }
    }
}

async fn serve_file(mut stream: tokio::net::TcpStream, dir: PathBuf) {
    let mut head = Vec::new();
    let mut buf = [0_u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut first = head.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let path = target.split(['?', '#']).next().unwrap_or("");
    let name = match path.trim_start_matches('/') {
        "" => "index.html",
        name => name,
    };
    let file = (method == "GET" && !name.contains('/') && !name.contains(".."))
        .then(|| std::fs::read(dir.join(name)).ok())
        .flatten();
    let (status, content_type, body) = match file {
        Some(body) if name.ends_with(".html") => ("200 OK", "text/html; charset=utf-8", body),
        Some(body) if name.ends_with(".js") => ("200 OK", "text/javascript; charset=utf-8", body),
        Some(body) => ("200 OK", "application/octet-stream", body),
        None => ("404 Not Found", "text/plain", b"not found".to_vec()),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(header.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}

/// The page's URL: the API, the token and the run id in the fragment (never sent to the site).
fn page_url(site: &StaticSite, server: &Server, run: &str) -> String {
    format!(
        "{}/index.html#api={}&token={}&run={run}",
        site.origin,
        server.url(),
        server.token
    )
}

/// Access lines (`switchyard::access`) of `server` as their `fields` objects.
fn access_lines(server: &Server) -> Vec<Value> {
    server
        .log()
        .iter()
        .filter(|l| l.contains("switchyard::access"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| v["fields"].clone())
        .collect()
}

/// The lifecycle one protocol ran on the allowed origin; returns (user id, user name).
fn assert_lifecycle(flow: &Value, protocol: &str, username: &str) -> (String, String) {
    assert_eq!(flow["ok"], true, "{protocol}: {flow:#}");
    assert_eq!(str_at(flow, "/protocol"), protocol);
    assert_eq!(
        flow["steps"],
        serde_json::json!([
            "AddHumanUser",
            "DeactivateUser",
            "ReactivateUser",
            "GetUserByID",
            "ReactivateUser (again)"
        ]),
        "{protocol}: {flow:#}"
    );
    assert_eq!(
        (
            str_at(flow, "/addSequence"),
            str_at(flow, "/deactivateSequence"),
            str_at(flow, "/reactivateSequence"),
        ),
        ("1", "2", "3"),
        "{protocol}: create → deactivate → reactivate are the user's events 1, 2, 3"
    );
    assert_eq!(str_at(flow, "/username"), username);
    assert_eq!(str_at(flow, "/gotUsername"), username);
    assert_eq!(str_at(flow, "/state"), "ACTIVE", "{protocol}");
    // access-control-expose-headers lets the page read the response's x-request-id.
    assert!(
        flow["exposedRequestId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{protocol}: the page could not read x-request-id (not exposed?): {flow:#}"
    );
    // The error path through CORS too: gRPC-Web's status (a trailer, or headers when
    // trailers-only) and Connect's JSON error body, with zitadel's ErrorDetail.
    let second = &flow["secondReactivate"];
    assert_eq!(
        str_at(second, "/code"),
        "FailedPrecondition",
        "{protocol}: {second:#}"
    );
    assert_eq!(
        str_at(second, "/rawMessage"),
        "User is not inactive (COMMAND-s5qqcz97hf)"
    );
    assert_eq!(str_at(second, "/errorDetail/id"), "COMMAND-s5qqcz97hf");
    assert_eq!(
        str_at(second, "/errorDetail/message"),
        "User is not inactive"
    );
    (str_at(flow, "/userId").to_owned(), username.to_owned())
}

#[test]
fn connect_web_from_another_origin_and_cors_enforced() {
    require_setup();
    let work = tempfile::tempdir().expect("tempdir");
    let site_dir = work.path().join("site");
    let data_dir = work.path().join("data");

    // Two origins serving the same page; only the first is allowed by the server.
    let allowed = StaticSite::start(&site_dir);
    let blocked = StaticSite::start(&site_dir);
    let config = work.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!("[cors]\nallowed_origins = [\"{}\"]\n", allowed.origin),
    )
    .expect("write config");
    let server = Server::start_in(&data_dir, &["--config", config.to_str().unwrap()]);
    assert!(!server.token.is_empty(), "no admin token in {data_dir:?}");

    browser_mjs(&["--bundle", site_dir.to_str().unwrap()], &server);

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let run = format!("{}-{nanos}", std::process::id());
    let blocked_run = format!("{run}-blocked");
    let result = browser_mjs(
        &[
            &page_url(&allowed, &server, &run),
            &page_url(&blocked, &server, &blocked_run),
        ],
        &server,
    );
    let pages = result["pages"].as_array().expect("pages");
    assert_eq!(pages.len(), 2, "{result:#}");

    // --- The allowed origin: both protocols ran the whole lifecycle, no CORS complaint. -------
    let page = &pages[0];
    let page_result = &page["result"];
    assert_eq!(str_at(page_result, "/origin"), allowed.origin, "{page:#}");
    assert_eq!(page_result["ok"], true, "allowed origin: {page:#}");
    let flows = &page_result["flows"];
    let users = [
        assert_lifecycle(
            &flows["grpcWeb"],
            "grpc-web",
            &format!("browser-grpcweb-{run}"),
        ),
        assert_lifecycle(
            &flows["connect"],
            "connect",
            &format!("browser-connect-{run}"),
        ),
    ];
    let console = page["console"].as_array().expect("console");
    assert!(
        console.iter().all(|m| {
            let text = str_at(m, "/text");
            m["type"] != "pageerror" && !text.contains("CORS") && !text.contains("blocked")
        }),
        "allowed origin: the browser complained: {console:#?}"
    );
    assert_eq!(
        page["failedRequests"],
        serde_json::json!([]),
        "allowed origin: {page:#}"
    );
    assert_active_on_server(&server, &users, &[]);

    // --- The origin not allowed: the browser refused both protocols' first call. -------------
    let page = &pages[1];
    let page_result = &page["result"];
    assert_eq!(str_at(page_result, "/origin"), blocked.origin, "{page:#}");
    assert_eq!(page_result["ok"], false, "blocked origin: {page:#}");
    for (key, protocol) in [("grpcWeb", "grpc-web"), ("connect", "connect")] {
        let flow = &page_result["flows"][key];
        assert_eq!(flow["ok"], false, "{protocol}: {flow:#}");
        assert_eq!(str_at(flow, "/protocol"), protocol);
        assert_eq!(str_at(flow, "/failedStep"), "AddHumanUser", "{flow:#}");
        assert_eq!(flow["steps"], serde_json::json!([]), "{flow:#}");
        // What page code sees of a CORS refusal: fetch's TypeError, wrapped by connect-es.
        assert_eq!(str_at(flow, "/error/name"), "ConnectError", "{flow:#}");
        assert_eq!(str_at(flow, "/error/code"), "Unknown", "{flow:#}");
        assert_eq!(str_at(flow, "/error/cause/name"), "TypeError", "{flow:#}");
    }
    // Why, as only the browser knows: one CORS refusal per protocol, for this origin.
    let refusal = format!(
        "Access to fetch at '{}/zitadel.user.v2.UserService/AddHumanUser' from origin '{}' has been blocked by CORS policy",
        server.url(),
        blocked.origin
    );
    let console = page["console"].as_array().expect("console");
    let refusals = console
        .iter()
        .filter(|m| str_at(m, "/text").starts_with(&refusal))
        .count();
    assert_eq!(
        refusals, 2,
        "blocked origin: expected two CORS refusals ({refusal} …): {console:#?}"
    );

    // The server's side: it refused the two preflights (403), so the browser never sent the
    // calls — the only AddHumanUser calls it saw are the allowed page's two.
    let until = Instant::now() + LOG_DEADLINE;
    let lines = loop {
        let lines = access_lines(&server);
        let refused = lines
            .iter()
            .filter(|f| f["protocol"] == "preflight" && f["http_status"] == 403)
            .count();
        if refused >= 2 || Instant::now() >= until {
            break lines;
        }
        // Polling another thread's log: there is nothing to block on.
        std::thread::sleep(Duration::from_millis(20));
    };
    let refused: Vec<&Value> = lines
        .iter()
        .filter(|f| f["protocol"] == "preflight" && f["http_status"] == 403)
        .collect();
    assert_eq!(refused.len(), 2, "refused preflights: {lines:#?}");
    for f in &refused {
        assert_eq!(
            f["path"], "/zitadel.user.v2.UserService/AddHumanUser",
            "{f}"
        );
    }
    let added: Vec<&str> = lines
        .iter()
        .filter(|f| f["method"] == "AddHumanUser")
        .map(|f| f["protocol"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        added,
        ["grpc-web", "connect"],
        "AddHumanUser calls: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .filter(|f| f["protocol"] == "preflight")
            .all(|f| f["http_status"] == 204 || f["http_status"] == 403),
        "{lines:#?}"
    );
}
