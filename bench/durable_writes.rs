//! Durable writes per second: group commit vs one transaction per command, on SQLite and on
//! PostgreSQL, with 64 concurrent writers. Not a test: run it with `bench/durable_writes.sh`
//! (or `cargo bench -p switchyard-core --bench durable_writes`) and copy the table into
//! BENCHMARKS.md.
//!
//! Each writer owns one user and appends lifecycle events to it (lock, unlock, …) as a command
//! does: one event plus the user's projection row per commit, acknowledged only once durable
//! (SQLite: WAL with `synchronous=FULL`; PostgreSQL: a normal commit, `synchronous_commit` as
//! the server has it). PostgreSQL is `$SWITCHYARD_BENCH_DATABASE_URL`, else
//! `$SWITCHYARD_TEST_DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`; each
//! run uses a schema of its own and drops it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_core::domain::event::{AggregateType, EventType, NewEvent};
use switchyard_core::domain::user::{Human, User, UserKind, UserState};
use switchyard_core::store::postgres::{PostgresOptions, PostgresStore};
use switchyard_core::store::sqlite::{SqliteOptions, SqliteStore};
use switchyard_core::store::{Commit, EventStore, ProjectionWrite};

const CLIENTS: usize = 64;
const DURATION: Duration = Duration::from_secs(5);

fn user(id: &str, sequence: u64, state: UserState) -> User {
    User {
        id: id.to_owned(),
        resource_owner: "bench-org".to_owned(),
        username: id.to_owned(),
        state,
        kind: UserKind::Human(Human {
            first_name: "Bench".to_owned(),
            last_name: "Writer".to_owned(),
            email: format!("{id}@example.com"),
            ..Human::default()
        }),
        password_hash: None,
        sequence,
        created_us: 1,
        changed_us: sequence as i64,
    }
}

fn commit(id: &str, sequence: u64) -> Commit {
    let (event_type, state) = match sequence {
        1 => (EventType::HumanAdded, UserState::Active),
        n if n % 2 == 0 => (EventType::UserLocked, UserState::Locked),
        _ => (EventType::UserUnlocked, UserState::Active),
    };
    Commit {
        events: vec![NewEvent {
            aggregate_type: AggregateType::User,
            aggregate_id: id.to_owned(),
            sequence,
            event_type,
            payload: serde_json::json!({}),
            resource_owner: "bench-org".to_owned(),
            creator: "bench".to_owned(),
            created_us: sequence as i64,
        }],
        writes: vec![ProjectionWrite::User(user(id, sequence, state))],
    }
}

/// Runs `CLIENTS` writers for `DURATION`; returns acknowledged commits per second.
async fn measure(store: Arc<dyn EventStore>) -> f64 {
    let start = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let store = Arc::clone(&store);
        writers.spawn(async move {
            let id = format!("bench{client}");
            let mut sequence = 0;
            while start.elapsed() < DURATION {
                sequence += 1;
                store.commit(commit(&id, sequence)).await.expect("commit");
            }
            sequence
        });
    }
    let mut total = 0;
    while let Some(done) = writers.join_next().await {
        total += done.expect("writer");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn sqlite(group_commit: bool) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_with(
        &dir.path().join("switchyard.db"),
        SqliteOptions { group_commit },
    )
    .expect("open");
    measure(Arc::new(store)).await
}

async fn postgres(url: &str, group_commit: bool) -> f64 {
    let schema = format!("sy_bench_{}_{}", std::process::id(), u8::from(group_commit));
    let options = PostgresOptions {
        pool_size: 16,
        group_commit,
        schema: Some(schema.clone()),
    };
    let store = PostgresStore::connect_with(url, options)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e}"));
    let rate = measure(Arc::new(store)).await;
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop schema");
    rate
}

#[tokio::main]
async fn main() {
    let url = std::env::var("SWITCHYARD_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("SWITCHYARD_TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    println!("| backend | commit mode | durable writes/s ({CLIENTS} clients, {DURATION:?}) |");
    println!("| --- | --- | ---: |");
    for group_commit in [true, false] {
        let mode = if group_commit {
            "group commit"
        } else {
            "one transaction per command"
        };
        let rate = sqlite(group_commit).await;
        println!("| SQLite (WAL, synchronous=FULL) | {mode} | {rate:.0} |");
    }
    for group_commit in [true, false] {
        let mode = if group_commit {
            "group commit"
        } else {
            "one transaction per command"
        };
        let rate = postgres(&url, group_commit).await;
        println!("| PostgreSQL | {mode} | {rate:.0} |");
    }
}
