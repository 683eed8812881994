//! The store suite on PostgreSQL, with and without group commit, each test in a fresh schema
//! of the database `SWITCHYARD_TEST_DATABASE_URL` names (tests/run provides one). Without that
//! variable, or without a server answering there, the tests fail: they never skip silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::store::suite;

/// The database the tests use.
fn test_url() -> String {
    match std::env::var("SWITCHYARD_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "SWITCHYARD_TEST_DATABASE_URL is not set: the PostgreSQL store tests need a server \
             (tests/run provides one; or e.g. postgres://postgres@127.0.0.1:5432/postgres)"
        ),
    }
}

/// A store in a schema of its own, dropped by [`Fixture::finish`].
struct Fixture {
    store: PostgresStore,
    schema: String,
    url: String,
}

impl Fixture {
    async fn open(group_commit: bool) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let url = test_url();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let schema = format!(
            "sy_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let options = PostgresOptions {
            pool_size: 4,
            group_commit,
            schema: Some(schema.clone()),
        };
        let store = PostgresStore::connect_with(&url, options)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at SWITCHYARD_TEST_DATABASE_URL ({url}): {e}"));
        Self { store, schema, url }
    }

    async fn finish(self) {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("connect for clean-up");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .expect("drop test schema");
    }
}

/// One test per suite case and commit mode.
macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {
        mod group_commit {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let fixture = Fixture::open(true).await;
                    suite::$name(&fixture.store).await;
                    fixture.finish().await;
                }
            )*
        }
        mod one_transaction_per_commit {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let fixture = Fixture::open(false).await;
                    suite::$name(&fixture.store).await;
                    fixture.finish().await;
                }
            )*
        }
    };
}

suite_tests!(
    commit_then_read_back,
    taken_sequence_is_a_conflict_and_leaves_no_trace,
    user_names_are_unique_until_removed,
    list_users_filters_sorts_and_pages,
    export_reads_the_log_and_every_row_in_order,
    list_members_filters_and_pages,
);

#[tokio::test]
async fn concurrent_commits_fail_alone() {
    for group_commit in [true, false] {
        let fixture = Fixture::open(group_commit).await;
        suite::concurrent_commits_fail_alone(Arc::new(fixture.store.clone())).await;
        fixture.finish().await;
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_race_free() {
    let fixture = Fixture::open(true).await;
    // Nodes starting at once on the same schema: every start succeeds, each migration once.
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let url = fixture.url.clone();
        let schema = fixture.schema.clone();
        starts.spawn(async move {
            PostgresStore::connect_with(
                &url,
                PostgresOptions {
                    pool_size: 2,
                    group_commit: false,
                    schema: Some(schema),
                },
            )
            .await
            .map(|_| ())
        });
    }
    while let Some(joined) = starts.join_next().await {
        joined.expect("task").expect("concurrent start");
    }
    let client = fixture.store.client().await.expect("client");
    let applied: i64 = client
        .query_one("SELECT count(*) FROM switchyard_migrations", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(applied, super::migrate::MIGRATIONS.len() as i64);
    drop(client);
    fixture.finish().await;
}

#[tokio::test]
async fn unreachable_server_is_a_clear_error() {
    let cases = [
        ("not a url", "database URL"),
        (
            "postgres://postgres@127.0.0.1:1/postgres",
            "database connection",
        ),
    ];
    for (url, want) in cases {
        let err = PostgresStore::connect(url).await.err().expect(url);
        assert!(err.to_string().contains(want), "{url}: {err}");
    }
}
