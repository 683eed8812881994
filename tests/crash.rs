//! Crash safety: a node is killed with SIGKILL in the middle of a concurrent write load,
//! restarted on the same store, and every write it had acknowledged is there — on SQLite (with
//! group commit: one fsync per batch) and on PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use serde_json::{Value, json};
use switchyard_core::store::EventStore;
use switchyard_core::store::postgres::{PostgresOptions, PostgresStore};
use switchyard_core::store::sqlite::{SqliteOptions, SqliteStore};
use switchyard_tests::Server;
use switchyard_tests::pg::TestDatabase;

const USERS: usize = 4;
const WORKERS: usize = 16;
/// Each worker stops after this many calls if the kill has not stopped it first.
const MAX_CALLS_PER_WORKER: usize = 400;
/// The node is killed once this many writes were acknowledged.
const KILL_AFTER_ACKS: usize = 60;
const DEADLINE: Duration = Duration::from_secs(60);

/// Which backend a case runs on.
enum Backend {
    Sqlite,
    Postgres(TestDatabase),
}

async fn add_user(client: &reqwest::Client, node: &Server, name: &str) -> String {
    // No password: the user starts INITIAL, from where lock works (and unlock makes it ACTIVE).
    let response = client
        .post(format!("{}/management/v1/users/human", node.url()))
        .header("authorization", node.bearer())
        .json(&json!({
            "userName": name,
            "profile": {"firstName": "Crash", "lastName": "Test"},
            "email": {"email": format!("{name}@example.com"), "isEmailVerified": true}
        }))
        .send()
        .await
        .expect("add user");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    body["userId"].as_str().expect("userId").to_owned()
}

/// Calls lock/unlock on `users` until the node goes away; returns (user, sequence) of every
/// acknowledged call.
async fn write_load(
    client: reqwest::Client,
    base: String,
    bearer: String,
    users: Vec<String>,
    worker: usize,
    acked: Arc<AtomicUsize>,
    enough: Arc<Notify>,
) -> Vec<(String, u64)> {
    let mut acks = Vec::new();
    for i in 0..MAX_CALLS_PER_WORKER {
        // Lock then unlock the same user, then the next one: half of the calls race others.
        let user = &users[(worker + i / 2) % users.len()];
        let path = if i % 2 == 0 { "_lock" } else { "_unlock" };
        let sent = client
            .post(format!("{base}/management/v1/users/{user}/{path}"))
            .header("authorization", &bearer)
            .json(&json!({}))
            .send()
            .await;
        // The node was killed: unacknowledged calls may or may not have landed.
        let Ok(response) = sent else { break };
        let ok = response.status() == 200;
        let Ok(body) = response.json::<Value>().await else {
            break;
        };
        if ok {
            let sequence = body["details"]["sequence"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no sequence in {body}"));
            acks.push((user.clone(), sequence));
            if acked.fetch_add(1, Ordering::Relaxed) + 1 == KILL_AFTER_ACKS {
                enough.notify_one();
            }
        }
    }
    acks
}

async fn run_case(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = match &backend {
        Backend::Sqlite => None,
        Backend::Postgres(db) => Some(db.url.clone()),
    };
    let args: Vec<&str> = match &url {
        Some(url) => vec!["--database-url", url],
        None => vec![],
    };
    let node = Server::start_in(dir.path(), &args);
    let client = reqwest::Client::new();
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(add_user(&client, &node, &format!("crash{i}")).await);
    }
    let acked = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        workers.spawn(write_load(
            client.clone(),
            node.url(),
            node.bearer(),
            users.clone(),
            worker,
            Arc::clone(&acked),
            Arc::clone(&enough),
        ));
    }
    tokio::time::timeout(DEADLINE, enough.notified())
        .await
        .expect("the write load reached its kill point");
    let bearer = node.bearer();
    node.kill();
    let mut acks = Vec::new();
    while let Some(joined) = workers.join_next().await {
        acks.extend(joined.expect("worker"));
    }
    assert!(acks.len() >= KILL_AFTER_ACKS);

    // Restart on the same store: it finds the instance and serves the acknowledged state.
    let node = Server::start_in(dir.path(), &args);
    assert_eq!(node.bearer(), bearer, "the admin token is not re-issued");
    let store: Box<dyn EventStore> = match &url {
        Some(url) => Box::new(
            PostgresStore::connect_with(
                url,
                PostgresOptions {
                    pool_size: 2,
                    group_commit: false,
                    schema: None,
                },
            )
            .await
            .expect("open"),
        ),
        None => Box::new(
            SqliteStore::open_with(
                &dir.path().join("switchyard.db"),
                SqliteOptions {
                    group_commit: false,
                },
            )
            .expect("open"),
        ),
    };
    for user in &users {
        let events = store.events(user).await.expect("events");
        let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
        for (acked_user, sequence) in acks.iter().filter(|(u, _)| u == user) {
            assert!(
                sequences.contains(sequence),
                "{acked_user}: acknowledged sequence {sequence} was lost ({} acks, log {sequences:?})",
                acks.len()
            );
        }
        let response = client
            .get(format!("{}/management/v1/users/{user}", node.url()))
            .header("authorization", node.bearer())
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        let served: u64 = body["user"]["details"]["sequence"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no sequence in {body}"));
        assert_eq!(served, events.len() as u64, "{user}: served after restart");
    }
    drop(node);
    drop(backend);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_node_killed_under_load_keeps_every_acknowledged_write() {
    run_case(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_node_killed_under_load_keeps_every_acknowledged_write() {
    run_case(Backend::Postgres(TestDatabase::create("crash").await)).await;
}
