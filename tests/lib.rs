//! The black-box harness: starts the real `switchyard` binary on a free port with its own data
//! directory, waits (with a deadline, no sleeps) until it listens, and stops it on drop.
//!
//! The binary is `$SWITCHYARD_BIN`, or `target/<profile>/switchyard` next to the test
//! executable; `tests/run` builds it before running the tests.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a server may take to start listening.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A running `switchyard serve`.
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The admin's personal access token, read from `<data-dir>/admin.pat`.
    pub token: String,
    child: Option<Child>,
    log: Arc<(Mutex<Vec<String>>, std::sync::Condvar)>,
    _tmp: Option<tempfile::TempDir>,
}

/// The path of the `switchyard` binary under test.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHYARD_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test-exe> → target/<profile>/switchyard
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join("switchyard");
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build -p switchyard`, which tests/run does) or set SWITCHYARD_BIN",
        path.display()
    );
    path
}

impl Server {
    /// Starts a server on a fresh temporary data directory.
    pub fn start() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut server = Self::start_in(tmp.path(), &[]);
        server._tmp = Some(tmp);
        server
    }

    /// Starts a server on `data_dir` (kept), with extra command-line arguments.
    pub fn start_in(data_dir: &Path, extra_args: &[&str]) -> Self {
        Self::start_command(Command::new(binary()), data_dir, extra_args)
    }

    /// As [`Server::start_in`], with the process's file-creation mask set to `umask` (octal,
    /// e.g. `"000"`) by `sh` before it runs the binary.
    pub fn start_with_umask(data_dir: &Path, extra_args: &[&str], umask: &str) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(binary());
        Self::start_command(command, data_dir, extra_args)
    }

    /// Runs `command` (the binary, or a wrapper that execs it) with `serve` and the harness's
    /// arguments.
    fn start_command(mut command: Command, data_dir: &Path, extra_args: &[&str]) -> Self {
        let mut child = command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--log-format")
            .arg("json")
            .args(extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchyard");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new((Mutex::new(Vec::new()), std::sync::Condvar::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        // Keep draining stderr for the server's whole life so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line
                    .contains("listening")
                    .then(|| listen_addr(&line))
                    .flatten()
                {
                    let _ = tx.send(addr);
                }
                sink.0.lock().unwrap().push(line);
                sink.1.notify_all();
            }
        });
        let addr = match rx.recv_timeout(START_DEADLINE) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "switchyard did not start listening:\n{}",
                    log.0.lock().unwrap().join("\n")
                );
            }
        };
        let token = std::fs::read_to_string(data_dir.join("admin.pat"))
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        Self {
            addr,
            data_dir: data_dir.to_owned(),
            token,
            child: Some(child),
            log,
            _tmp: None,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `Bearer <admin token>`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.0.lock().unwrap().clone()
    }

    /// Waits until the server has logged at least `count` lines matching `matches` and returns
    /// all the matching lines; panics after [`START_DEADLINE`]. Log lines reach the test through
    /// a pipe, so a line about a call may arrive after the call's response: wait, don't peek.
    pub fn wait_for_log(&self, count: usize, matches: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + START_DEADLINE;
        let (lines, arrived) = &*self.log;
        let mut guard = lines.lock().unwrap();
        loop {
            let found: Vec<String> = guard.iter().filter(|l| matches(l)).cloned().collect();
            if found.len() >= count {
                return found;
            }
            let now = std::time::Instant::now();
            assert!(
                now < deadline,
                "waited for {count} matching log lines, saw {}",
                found.len()
            );
            guard = arrived.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// SIGKILL: no shutdown, no flush beyond what was already durable.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (`TERM`, `HUP`, …) to the server with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("server running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// Waits up to `deadline` for the server to exit on its own; `None` if it is still running.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let until = std::time::Instant::now() + deadline;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            // Polling a child's exit: there is no portable blocking wait with a deadline.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Hands the temporary data directory over (so that it outlives this server).
    pub fn take_tmp(&mut self) -> Option<tempfile::TempDir> {
        self._tmp.take()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Extracts `addr` from the JSON "listening" log line.
fn listen_addr(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value.get("fields")?.get("addr")?.as_str()?.parse().ok()
}

/// PostgreSQL for the multi-node and crash tests: a fresh database per test on the server
/// `SWITCHYARD_TEST_DATABASE_URL` names (tests/run provides one). Without it the tests fail
/// with a clear message rather than skip.
pub mod pg {
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The server the tests use.
    pub fn test_url() -> String {
        match std::env::var("SWITCHYARD_TEST_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => panic!(
                "SWITCHYARD_TEST_DATABASE_URL is not set: this test needs PostgreSQL \
                 (tests/run provides one; or e.g. postgres://postgres@127.0.0.1:5432/postgres)"
            ),
        }
    }

    /// `url` with its database name replaced by `name` (query parameters kept).
    pub fn with_database(url: &str, name: &str) -> String {
        let (scheme, rest) = url
            .split_once("://")
            .unwrap_or_else(|| panic!("SWITCHYARD_TEST_DATABASE_URL must be a postgres:// URL"));
        let (authority, query) = match rest.split_once('?') {
            Some((before, query)) => (before, format!("?{query}")),
            None => (rest, String::new()),
        };
        let host = authority
            .split_once('/')
            .map_or(authority, |(host, _)| host);
        format!("{scheme}://{host}/{name}{query}")
    }

    /// A database created for one test, dropped (with its connections) when this is dropped.
    pub struct TestDatabase {
        /// Its URL, for `--database-url`.
        pub url: String,
        name: String,
        server_url: String,
    }

    impl TestDatabase {
        /// Creates `sy_<prefix>_<pid>_<n>` on the test server.
        pub async fn create(prefix: &str) -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let server_url = test_url();
            let name = format!(
                "sy_{prefix}_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            execute(
                &server_url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
            execute(&server_url, &format!("CREATE DATABASE {name}")).await;
            Self {
                url: with_database(&server_url, &name),
                name,
                server_url,
            }
        }
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            let server_url = self.server_url.clone();
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            // Drop runs outside any runtime guarantee: use a thread with its own.
            let _ = std::thread::spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    runtime.block_on(execute(&server_url, &sql));
                }
            })
            .join();
        }
    }

    async fn execute(url: &str, sql: &str) {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at SWITCHYARD_TEST_DATABASE_URL ({url}): {e}"));
        tokio::spawn(connection);
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn with_database_replaces_only_the_name() {
            let cases = [
                ("postgres://u@h:5432/postgres", "x", "postgres://u@h:5432/x"),
                (
                    "postgres://u@h/db?sslmode=disable",
                    "x",
                    "postgres://u@h/x?sslmode=disable",
                ),
                ("postgres://u@h:1", "x", "postgres://u@h:1/x"),
            ];
            for (url, name, want) in cases {
                assert_eq!(with_database(url, name), want, "{url}");
            }
        }
    }
}

/// A client script run to completion: its exit status, output, and last JSON-object line.
pub struct ScriptRun {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
    /// The last stdout line that parses as a JSON object: the script's result.
    pub result: Option<serde_json::Value>,
}

impl ScriptRun {
    /// The result, after requiring exit status 0 and `"ok": true`; panics with the script's
    /// output and the tail of `server`'s log otherwise.
    pub fn expect_ok(self, what: &str, server: &Server) -> serde_json::Value {
        let ok = self.result.as_ref().and_then(|r| r["ok"].as_bool()) == Some(true);
        if !self.success || !ok {
            let log = server.log();
            let tail = &log[log.len().saturating_sub(40)..];
            panic!(
                "{what} failed (success={}, ok={ok})\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- server log (tail) ---\n{}",
                self.success,
                self.stdout,
                self.stderr,
                tail.join("\n")
            );
        }
        self.result.unwrap()
    }
}

/// Runs `command` (program, arguments, directory and environment set by the caller) with its
/// output piped; past `deadline` kills it — only that child, by its pid — and panics with what
/// it printed. The wait is on a channel fed by the waiting thread: no sleeps.
pub fn run_with_deadline(command: &mut Command, what: &str, deadline: Duration) -> ScriptRun {
    use std::io::Read as _;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    if rx.recv_timeout(deadline).is_err() {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        let _ = waiter.join();
        panic!(
            "{what} did not finish within {deadline:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out_thread.join().unwrap_or_default(),
            err_thread.join().unwrap_or_default()
        );
    }
    let status = waiter.join().expect("waiter").expect("wait");
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    let result = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok());
    ScriptRun {
        success: status.success(),
        stdout,
        stderr,
        result,
    }
}

/// Asks the server itself (tonic, native gRPC) whether the users a client created exist and are
/// active: `v2_users` as (id, user name) through v2 GetUserByID, `v1_users` through v1.
pub fn assert_active_on_server(
    server: &Server,
    v2_users: &[(String, String)],
    v1_users: &[String],
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Channel::from_shared(server.url())
            .unwrap()
            .connect()
            .await
            .expect("connect");
        let bearer: tonic::metadata::MetadataValue<_> = server.bearer().parse().unwrap();
        let mut users = switchyard_proto::zitadel::user::v2::user_service_client::UserServiceClient::new(channel.clone());
        for (user_id, username) in v2_users {
            let mut request = tonic::Request::new(switchyard_proto::zitadel::user::v2::GetUserByIdRequest {
                user_id: user_id.clone(),
            });
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            let user = users
                .get_user_by_id(request)
                .await
                .unwrap_or_else(|s| panic!("v2 GetUserByID {user_id}: {s:?}"))
                .into_inner()
                .user
                .expect("user");
            assert_eq!(&user.username, username);
            assert_eq!(
                user.state,
                switchyard_proto::zitadel::user::v2::UserState::Active as i32,
                "user {user_id}"
            );
        }
        let mut management = switchyard_proto::zitadel::management::v1::management_service_client::ManagementServiceClient::new(channel);
        for id in v1_users {
            let mut request = tonic::Request::new(switchyard_proto::zitadel::management::v1::GetUserByIdRequest { id: id.clone() });
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            let user = management
                .get_user_by_id(request)
                .await
                .unwrap_or_else(|s| panic!("v1 GetUserByID {id}: {s:?}"))
                .into_inner()
                .user
                .expect("user");
            assert_eq!(user.state, 1, "USER_STATE_ACTIVE, user {id}");
        }
    });
}
