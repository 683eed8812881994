//! The store suite on SQLite, plus SQLite's own durability across reopen.

use super::*;
use crate::store::suite;

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("switchyard.db")).expect("open");
    (dir, store)
}

#[tokio::test]
async fn commit_then_read_back() {
    let (_dir, store) = open();
    suite::commit_then_read_back(&store).await;
}

#[tokio::test]
async fn taken_sequence_is_a_conflict_and_leaves_no_trace() {
    let (_dir, store) = open();
    suite::taken_sequence_is_a_conflict_and_leaves_no_trace(&store).await;
}

#[tokio::test]
async fn user_names_are_unique_until_removed() {
    let (_dir, store) = open();
    suite::user_names_are_unique_until_removed(&store).await;
}

#[tokio::test]
async fn list_users_filters_sorts_and_pages() {
    let (_dir, store) = open();
    suite::list_users_filters_sorts_and_pages(&store).await;
}

#[tokio::test]
async fn reopen_finds_everything_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("switchyard.db");
    {
        let store = SqliteStore::open(&path).expect("open");
        let user = suite::human("r1", "org1", "reopen", "Re", "re@example.com");
        store
            .commit(Commit {
                events: vec![suite::event(
                    "r1",
                    1,
                    crate::domain::event::EventType::HumanAdded,
                )],
                writes: vec![ProjectionWrite::User(user)],
            })
            .await
            .expect("commit");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(
        store.user("r1").await.expect("read").map(|u| u.username),
        Some("reopen".into())
    );
    assert_eq!(store.events("r1").await.expect("events").len(), 1);
}

#[tokio::test]
async fn concurrent_commits_fail_alone() {
    for group_commit in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open_with(
            &dir.path().join("switchyard.db"),
            SqliteOptions { group_commit },
        )
        .expect("open");
        suite::concurrent_commits_fail_alone(std::sync::Arc::new(store)).await;
    }
}

#[test]
fn failures_are_classified_by_result_code() {
    use rusqlite::ffi;
    let cases = [
        (ffi::SQLITE_FULL, "full"),
        (ffi::SQLITE_BUSY, "unavailable"),
        (ffi::SQLITE_LOCKED, "unavailable"),
        (ffi::SQLITE_IOERR, "backend"),
        (ffi::SQLITE_CORRUPT, "backend"),
    ];
    for (code, want) in cases {
        let error = rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
        let got = match backend(error) {
            StoreError::Full { .. } => "full",
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Backend { .. } => "backend",
            other => panic!("{code}: {other:?}"),
        };
        assert_eq!(got, want, "result code {code}");
    }
}
