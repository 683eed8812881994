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
async fn export_reads_the_log_and_every_row_in_order() {
    let (_dir, store) = open();
    suite::export_reads_the_log_and_every_row_in_order(&store).await;
}

#[tokio::test]
async fn list_members_filters_and_pages() {
    let (_dir, store) = open();
    suite::list_members_filters_and_pages(&store).await;
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

fn set_state(id: &str, sequence: u64, state: crate::domain::user::UserState) -> Commit {
    Commit {
        events: vec![suite::event(
            id,
            sequence,
            crate::domain::event::EventType::UserDeactivated,
        )],
        writes: vec![ProjectionWrite::SetUserState {
            id: id.to_owned(),
            state,
            sequence,
            changed_us: 2_000,
        }],
    }
}

/// The write model (`cache`) and another process on the same file: a second store on it
/// stands in for one (`switchyard admin recover` opens the file without group commit).
#[tokio::test]
async fn another_processs_commit_reaches_the_cached_reads() {
    use crate::domain::user::UserState;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("switchyard.db");
    let server = SqliteStore::open(&path).expect("open");
    let user = suite::human("x1", "org1", "other", "Ot", "ot@example.com");
    server
        .commit(Commit {
            events: vec![suite::event(
                "x1",
                1,
                crate::domain::event::EventType::HumanAdded,
            )],
            writes: vec![ProjectionWrite::User(user)],
        })
        .await
        .expect("add");
    assert_eq!(
        server.user("x1").await.expect("read").map(|u| u.state),
        Some(UserState::Active)
    );
    let other = SqliteStore::open_with(
        &path,
        SqliteOptions {
            group_commit: false,
        },
    )
    .expect("open a second time");
    other
        .commit(set_state("x1", 2, UserState::Inactive))
        .await
        .expect("the other process's commit");

    // A command deciding on the cached row loses the race on (aggregate, sequence) and its
    // retry reads the other process's row at once.
    let lost = server.commit(set_state("x1", 2, UserState::Locked)).await;
    assert!(
        matches!(lost, Err(StoreError::VersionConflict { sequence: 2, .. })),
        "{lost:?}"
    );
    let seen = server.user("x1").await.expect("read").expect("user");
    assert_eq!((seen.state, seen.sequence), (UserState::Inactive, 2));

    // Without a command of its own, the idle writer's look finds the next one.
    other
        .commit(set_state("x1", 3, UserState::Active))
        .await
        .expect("the other process's second commit");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = server.user("x1").await.expect("read").expect("user");
        if seen.sequence == 3 {
            assert_eq!(seen.state, UserState::Active);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server still reads sequence {} after 10 s",
            seen.sequence
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_file_with_the_partial_user_name_index_is_migrated() {
    use crate::domain::user::UserState;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("switchyard.db");
    let add = |id: &str| Commit {
        events: vec![suite::event(
            id,
            1,
            crate::domain::event::EventType::HumanAdded,
        )],
        writes: vec![ProjectionWrite::User(suite::human(
            id,
            "org1",
            "Same",
            "Sa",
            "same@example.com",
        ))],
    };
    {
        let store = SqliteStore::open(&path).expect("open");
        store.commit(add("m1")).await.expect("add m1");
        store
            .commit(set_state("m1", 2, UserState::Deleted))
            .await
            .expect("remove m1");
        store.commit(add("m2")).await.expect("m1's name is free");
    }
    // Back to the old form: the partial index, removed users keyed by their name, version 0.
    let conn = Connection::open(&path).expect("open raw");
    conn.execute_batch(
        "DROP INDEX users_username_key; UPDATE users SET username_key = lower(username); \
         CREATE UNIQUE INDEX users_username_key ON users (username_key) WHERE state <> 'deleted'; \
         PRAGMA user_version = 0;",
    )
    .expect("make the file old");
    drop(conn);

    let store = SqliteStore::open(&path).expect("reopen and migrate");
    let taken = store.commit(add("m3")).await;
    assert!(
        matches!(
            taken,
            Err(StoreError::UniqueViolation {
                constraint: Constraint::UserName
            })
        ),
        "{taken:?}"
    );
    let conn = Connection::open(&path).expect("open raw");
    let (version, index): (i64, String) = conn
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), sql FROM sqlite_master \
             WHERE name = 'users_username_key'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("schema");
    assert_eq!(version, 1);
    assert!(!index.contains("WHERE"), "{index}");
    // Removing m2 frees the name again, in the new form.
    store
        .commit(set_state("m2", 2, UserState::Deleted))
        .await
        .expect("remove m2");
    store.commit(add("m3")).await.expect("the name is free");
}
