//! Three `serve` processes on one PostgreSQL database, driven concurrently with lifecycle calls
//! on a shared set of users: afterwards every user's event sequence is contiguous, the
//! projection equals a replay of the events, and every acknowledged call is in the log exactly
//! once (and nothing else is).
//!
//! Bootstrap across nodes: the first node to start on the empty database creates the instance
//! and writes `admin.pat` into its own data directory; nodes that find the instance created
//! write none (the token is shown once and only its hash is stored), so every node is called
//! with the first node's token.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use switchyard_core::store::EventStore as _;
use switchyard_core::store::postgres::{PostgresOptions, PostgresStore};
use switchyard_core::store::replay::replay_user;
use switchyard_tests::Server;
use switchyard_tests::pg::TestDatabase;

const USERS: usize = 6;
const WORKERS_PER_NODE: usize = 4;
const CALLS_PER_WORKER: usize = 25;

/// The lifecycle calls and the event each appends when accepted.
const COMMANDS: [(&str, &str); 4] = [
    ("_deactivate", "user.deactivated"),
    ("_reactivate", "user.reactivated"),
    ("_lock", "user.locked"),
    ("_unlock", "user.unlocked"),
];

/// An acknowledged call: the user, the sequence its details named, the event it implies.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    user: String,
    sequence: u64,
    event_type: &'static str,
}

/// What became of one call.
enum Outcome {
    Ack(Ack),
    /// FAILED_PRECONDITION: the state forbade it (after losing a race, as if serial).
    Rejected,
    /// UNAVAILABLE: it lost every retry; nothing was appended.
    Busy,
}

async fn add_user(client: &reqwest::Client, node: &Server, bearer: &str, name: &str) -> String {
    let response = client
        .post(format!("{}/management/v1/users/human", node.url()))
        .header("authorization", bearer)
        .json(&json!({
            "userName": name,
            "profile": {"firstName": "Multi", "lastName": "Node"},
            "email": {"email": format!("{name}@example.com"), "isEmailVerified": true},
            "initialPassword": "Secret123!"
        }))
        .send()
        .await
        .expect("add user");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    body["userId"].as_str().expect("userId").to_owned()
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    bearer: &str,
    user: &str,
    (path, event_type): (&str, &'static str),
) -> Outcome {
    let response = client
        .post(format!("{base}/management/v1/users/{user}/{path}"))
        .header("authorization", bearer)
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    match status.as_u16() {
        200 => {
            let sequence = &body["details"]["sequence"];
            let sequence = sequence
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| sequence.as_u64())
                .unwrap_or_else(|| panic!("no sequence in {body}"));
            Outcome::Ack(Ack {
                user: user.to_owned(),
                sequence,
                event_type,
            })
        }
        // FAILED_PRECONDITION (code 9).
        400 if body["code"] == 9 => Outcome::Rejected,
        // UNAVAILABLE (code 14).
        503 if body["code"] == 14 => Outcome::Busy,
        _ => panic!("{path} {user}: {status} {body}"),
    }
}

/// A small deterministic generator: each worker its own sequence, no extra dependency.
fn xorshift(state: &mut u64) -> usize {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_on_one_database_keep_every_user_consistent() {
    let db = TestDatabase::create("multinode").await;
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let args = ["--database-url", db.url.as_str()];
    let first = Server::start_in(dirs[0].path(), &args);
    assert!(
        !first.token.is_empty(),
        "the first node bootstraps and writes admin.pat"
    );
    // The other two start at once, on the initialized database.
    let others: Vec<Server> = std::thread::scope(|scope| {
        let handles: Vec<_> = dirs[1..]
            .iter()
            .map(|dir| scope.spawn(|| Server::start_in(dir.path(), &args)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("start node"))
            .collect()
    });
    for node in &others {
        assert!(
            !node.data_dir.join("admin.pat").exists(),
            "a node that finds the instance created writes no token"
        );
    }
    let bearer = first.bearer();
    let client = reqwest::Client::new();
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(add_user(&client, &first, &bearer, &format!("multi{i}")).await);
    }

    let bases: Vec<String> = std::iter::once(&first)
        .chain(&others)
        .map(Server::url)
        .collect();
    let mut workers = tokio::task::JoinSet::new();
    for (n, base) in bases.iter().enumerate() {
        for w in 0..WORKERS_PER_NODE {
            let (client, base, bearer, users) =
                (client.clone(), base.clone(), bearer.clone(), users.clone());
            workers.spawn(async move {
                let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ ((n * 64 + w + 1) as u64);
                let mut outcomes = Vec::new();
                for _ in 0..CALLS_PER_WORKER {
                    let user = &users[xorshift(&mut seed) % users.len()];
                    let command = COMMANDS[xorshift(&mut seed) % COMMANDS.len()];
                    outcomes.push((n, call(&client, &base, &bearer, user, command).await));
                }
                outcomes
            });
        }
    }
    let mut acks = Vec::new();
    let (mut rejected, mut busy) = (0, 0);
    let mut acks_per_node = [0usize; 3];
    while let Some(joined) = workers.join_next().await {
        for (node, outcome) in joined.expect("worker") {
            match outcome {
                Outcome::Ack(ack) => {
                    acks_per_node[node] += 1;
                    acks.push(ack);
                }
                Outcome::Rejected => rejected += 1,
                Outcome::Busy => busy += 1,
            }
        }
    }
    eprintln!("acknowledged {acks_per_node:?}, rejected {rejected}, busy {busy}");
    assert!(
        acks_per_node.iter().all(|&n| n > 0),
        "every node appended: {acks_per_node:?}"
    );
    drop(others);
    drop(first);

    let store = PostgresStore::connect_with(
        &db.url,
        PostgresOptions {
            pool_size: 2,
            group_commit: false,
            schema: None,
        },
    )
    .await
    .expect("open the database");
    let mut acked: BTreeMap<&str, BTreeMap<u64, &str>> = BTreeMap::new();
    for ack in &acks {
        let previous = acked
            .entry(&ack.user)
            .or_default()
            .insert(ack.sequence, ack.event_type);
        assert!(
            previous.is_none(),
            "two calls acknowledged with {} sequence {}",
            ack.user,
            ack.sequence
        );
    }
    for user in &users {
        let events = store.events(user).await.expect("events");
        let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
        let contiguous: Vec<u64> = (1..=events.len() as u64).collect();
        assert_eq!(sequences, contiguous, "{user}: sequences are contiguous");

        let logged: BTreeMap<u64, &str> = events[1..]
            .iter()
            .map(|e| (e.sequence, e.event_type.as_str()))
            .collect();
        assert_eq!(
            logged,
            acked.remove(user.as_str()).unwrap_or_default(),
            "{user}: the log holds exactly the acknowledged calls"
        );

        let replayed = replay_user(&events).expect("replay").expect("user");
        let projected = store.user(user).await.expect("read").expect("projection");
        let view = |u: &switchyard_core::domain::user::User| {
            (
                u.id.clone(),
                u.resource_owner.clone(),
                u.username.clone(),
                u.state,
                u.sequence,
                u.created_us,
                u.changed_us,
            )
        };
        assert_eq!(
            view(&projected),
            view(&replayed),
            "{user}: projection equals replay"
        );
    }
}

/// Runs `switchyard <args>` to completion; panics with its stderr if it fails.
fn run_binary(args: &[&str]) -> String {
    let output = std::process::Command::new(switchyard_tests::binary())
        .args(args)
        .output()
        .expect("run switchyard");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "switchyard {args:?}: {stderr}");
    stderr
}

async fn users_by_id(client: &reqwest::Client, node: &Server) -> BTreeMap<String, Value> {
    let response = client
        .post(format!("{}/management/v1/users/_search", node.url()))
        .header("authorization", node.bearer())
        .json(&json!({}))
        .send()
        .await
        .expect("search");
    let body: Value = response.json().await.expect("json");
    body["result"]
        .as_array()
        .unwrap_or_else(|| panic!("no result in {body}"))
        .iter()
        .map(|u| {
            let mut u = u.clone();
            // Dates are the events' and must survive too; only nothing else is compared.
            let view = json!({
                "userName": u["userName"].take(),
                "state": u["state"].take(),
                "details": u["details"].take(),
            });
            (u["id"].as_str().expect("id").to_owned(), view)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_moves_to_postgres_with_export_and_import() {
    let client = reqwest::Client::new();
    let sqlite_dir = tempfile::tempdir().expect("tempdir");
    let node = Server::start_in(sqlite_dir.path(), &[]);
    let bearer = node.bearer();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(add_user(&client, &node, &bearer, &format!("moved{i}")).await);
    }
    let base = node.url();
    assert!(matches!(
        call(&client, &base, &bearer, &ids[0], COMMANDS[0]).await,
        Outcome::Ack(_)
    ));
    assert!(matches!(
        call(&client, &base, &bearer, &ids[1], COMMANDS[2]).await,
        Outcome::Ack(_)
    ));
    let before = users_by_id(&client, &node).await;
    node.kill();

    let export = sqlite_dir.path().join("export.jsonl");
    let data_dir = sqlite_dir.path().to_str().expect("utf-8 path");
    let export_path = export.to_str().expect("utf-8 path");
    run_binary(&["export", "--data-dir", data_dir, "--output", export_path]);
    let db = TestDatabase::create("import").await;
    run_binary(&["import", export_path, "--database-url", &db.url]);
    // Importing again is refused: the store is no longer empty.
    let again = std::process::Command::new(switchyard_tests::binary())
        .args(["import", export_path, "--database-url", &db.url])
        .output()
        .expect("run switchyard");
    assert!(!again.status.success(), "a second import is refused");

    let pg_dir = tempfile::tempdir().expect("tempdir");
    let mut node = Server::start_in(pg_dir.path(), &["--database-url", &db.url]);
    assert!(
        node.token.is_empty(),
        "the imported instance is initialized: no new admin token"
    );
    node.token = bearer.trim_start_matches("Bearer ").to_owned();
    assert_eq!(
        users_by_id(&client, &node).await,
        before,
        "every user, state and sequence"
    );
    // The moved users go on where they were: the next event takes the next sequence.
    match call(&client, &node.url(), &bearer, &ids[0], COMMANDS[1]).await {
        Outcome::Ack(ack) => assert_eq!(ack.sequence, 3),
        _ => panic!("reactivate after the move"),
    }
}

/// Status of `GET /management/v1/orgs/me` on `node` with `token`.
async fn whoami_status(client: &reqwest::Client, node: &Server, token: &str) -> u16 {
    client
        .get(format!("{}/management/v1/orgs/me", node.url()))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

/// A token removed, or its user deactivated, through one node stops working on the other node
/// on the very next request; reactivating through the other node restores it there at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_changes_on_one_node_hold_on_the_next_request_on_another() {
    let db = TestDatabase::create("crossnode").await;
    let dirs: Vec<_> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let args = ["--database-url", db.url.as_str()];
    let a = Server::start_in(dirs[0].path(), &args);
    let b = Server::start_in(dirs[1].path(), &args);
    let admin = a.bearer();
    let client = reqwest::Client::new();
    let post = |node: &Server, path: &str, body: Value| {
        client
            .post(format!("{}{path}", node.url()))
            .header("authorization", admin.clone())
            .json(&body)
            .send()
    };
    let machine: Value = post(
        &a,
        "/management/v1/users/machine",
        json!({"userName": "crossnode", "name": "Cross"}),
    )
    .await
    .expect("machine")
    .json()
    .await
    .expect("json");
    let user = machine["userId"].as_str().expect("userId").to_owned();
    post(
        &a,
        "/management/v1/orgs/me/members",
        json!({"userId": user, "roles": ["ORG_OWNER_VIEWER"]}),
    )
    .await
    .expect("member");
    let pat: Value = post(&a, &format!("/management/v1/users/{user}/pats"), json!({}))
        .await
        .expect("pat")
        .json()
        .await
        .expect("json");
    let token = pat["token"].as_str().expect("token").to_owned();
    // Warm both nodes with the token (so a cache, were there one, would hold it).
    assert_eq!(whoami_status(&client, &a, &token).await, 200);
    assert_eq!(whoami_status(&client, &b, &token).await, 200);

    post(
        &a,
        &format!("/management/v1/users/{user}/_deactivate"),
        json!({}),
    )
    .await
    .expect("deactivate");
    assert_eq!(
        whoami_status(&client, &b, &token).await,
        401,
        "deactivated through A, refused by B"
    );
    post(
        &b,
        &format!("/management/v1/users/{user}/_reactivate"),
        json!({}),
    )
    .await
    .expect("reactivate");
    assert_eq!(
        whoami_status(&client, &a, &token).await,
        200,
        "reactivated through B, accepted by A"
    );

    let token_id = pat["tokenId"].as_str().expect("tokenId");
    let removed = client
        .delete(format!(
            "{}/management/v1/users/{user}/pats/{token_id}",
            b.url()
        ))
        .header("authorization", admin.clone())
        .send()
        .await
        .expect("remove");
    assert_eq!(removed.status().as_u16(), 200);
    assert_eq!(
        whoami_status(&client, &a, &token).await,
        401,
        "removed through B, refused by A"
    );
}
