//! Faults, through the real binary: what a client sees when what Switchyard depends on fails,
//! and that Switchyard recovers by itself once it is back, without a restart.
//!
//! - `faults/gateway.rs`: `switchyard gateway` with its upstream down, slow, and resetting or
//!   dropping a stream midway (an h2c upstream in this process that misbehaves on cue);
//! - `faults/postgres.rs`: `switchyard serve` on a PostgreSQL this test starts itself (initdb
//!   in a temporary directory, its own port), stopped and restarted under write load;
//! - `faults/sqlite.rs`: `switchyard serve` on SQLite in a small tmpfs the test mounts, fills
//!   and empties again.
//!
//! Each test is bounded (seconds): every wait has a deadline, and nothing sleeps for readiness.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

#[path = "faults/gateway.rs"]
mod gateway;
#[path = "faults/postgres.rs"]
mod postgres;
#[path = "faults/sqlite.rs"]
mod sqlite;

use std::time::{Duration, Instant};

/// How long any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `check` (every 50 ms) until it returns `Some`, for at most `within`; panics naming
/// `what` past it.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < until, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `program args` to completion, panicking with its output when it fails.
fn run(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether this process runs as root (mounting and `runuser` need it).
fn is_root() -> bool {
    run("id", &["-u"]).trim() == "0"
}
