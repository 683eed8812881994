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
    log: Arc<Mutex<Vec<String>>>,
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
        let mut child = Command::new(binary())
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
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        // Keep draining stderr for the server's whole life so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.contains("listening").then(|| listen_addr(&line)).flatten() {
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(START_DEADLINE) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "switchyard did not start listening:\n{}",
                    log.lock().unwrap().join("\n")
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
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: no shutdown, no flush beyond what was already durable.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
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
