//! The store suite on the in-memory backend, plus what only it must get right by hand:
//! undoing a commit that fails half-way, and the compact event log reading back.

use super::*;
use crate::domain::event::EventType;
use crate::store::suite;

#[tokio::test]
async fn commit_then_read_back() {
    suite::commit_then_read_back(&MemoryStore::new()).await;
}

#[tokio::test]
async fn taken_sequence_is_a_conflict_and_leaves_no_trace() {
    suite::taken_sequence_is_a_conflict_and_leaves_no_trace(&MemoryStore::new()).await;
}

#[tokio::test]
async fn user_names_are_unique_until_removed() {
    suite::user_names_are_unique_until_removed(&MemoryStore::new()).await;
}

#[tokio::test]
async fn list_users_filters_sorts_and_pages() {
    suite::list_users_filters_sorts_and_pages(&MemoryStore::new()).await;
}

#[tokio::test]
async fn export_reads_the_log_and_every_row_in_order() {
    suite::export_reads_the_log_and_every_row_in_order(&MemoryStore::new()).await;
}

#[tokio::test]
async fn list_members_filters_and_pages() {
    suite::list_members_filters_and_pages(&MemoryStore::new()).await;
}

#[tokio::test]
async fn concurrent_commits_fail_alone() {
    suite::concurrent_commits_fail_alone(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn a_failing_write_undoes_the_earlier_ones() {
    let store = MemoryStore::new();
    let first = suite::human("m1", "org1", "dora", "Dora", "d@example.com");
    store
        .commit(Commit {
            events: vec![suite::event("m1", 1, EventType::HumanAdded)],
            writes: vec![ProjectionWrite::User(first.clone())],
        })
        .await
        .expect("first");
    // One commit: rename m1 (freeing `dora`), add m3, add m2 as `DORA` (free by then), and
    // add m4 as `dorothy`, which the rename took: the last write fails, so all of it goes.
    let mut renamed = first.clone();
    renamed.username = "dorothy".into();
    renamed.sequence = 2;
    let err = store
        .commit(Commit {
            events: vec![suite::event("m1", 2, EventType::UserLocked)],
            writes: vec![
                ProjectionWrite::User(renamed),
                ProjectionWrite::User(suite::human("m3", "org1", "eve", "Eve", "e@x")),
                ProjectionWrite::User(suite::human("m2", "org1", "DORA", "Dora", "d2@x")),
                ProjectionWrite::User(suite::human("m4", "org1", "dorothy", "D", "x@x")),
            ],
        })
        .await;
    assert!(
        matches!(
            err,
            Err(StoreError::UniqueViolation {
                constraint: crate::store::Constraint::UserName
            })
        ),
        "{err:?}"
    );
    assert_eq!(store.user("m1").await.expect("read"), Some(first));
    for id in ["m2", "m3", "m4"] {
        assert_eq!(store.user(id).await.expect("read"), None, "{id}");
    }
    assert_eq!(store.events("m1").await.expect("events").len(), 1);
    // The names are as before the commit: `dora` taken, `dorothy` free.
    let taken = suite::human("m5", "org1", "Dora", "Dora", "d5@x");
    assert!(
        store
            .commit(Commit {
                events: vec![],
                writes: vec![ProjectionWrite::User(taken)]
            })
            .await
            .is_err()
    );
    let free = suite::human("m6", "org1", "dorothy", "Dot", "d6@x");
    store
        .commit(Commit {
            events: vec![],
            writes: vec![ProjectionWrite::User(free)],
        })
        .await
        .expect("dorothy is free");
}

#[tokio::test]
async fn log_and_import_round_trip() {
    let store = MemoryStore::new();
    let user = suite::human("i1", "org1", "ivy", "Ivy", "i@example.com");
    let mut added = suite::event("i1", 1, EventType::HumanAdded);
    added.payload = serde_json::json!({"userName": "ivy"});
    store
        .commit(Commit {
            events: vec![added, suite::event("i1", 2, EventType::UserLocked)],
            writes: vec![ProjectionWrite::User(user)],
        })
        .await
        .expect("commit");
    let log = store.log(0, 10).await.expect("log");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].aggregate_type, "user");
    assert_eq!(log[0].event.payload, serde_json::json!({"userName": "ivy"}));
    assert_eq!(log[1].event.payload, serde_json::json!({}));
    assert_eq!(log[1].event.position, 2);
    assert_eq!(store.log(1, 10).await.expect("log").len(), 1);

    let copy = MemoryStore::new();
    let rows = store.projections().await.expect("projections");
    copy.import(&log, &rows).await.expect("import");
    assert_eq!(copy.log(0, 10).await.expect("log"), log);
    assert_eq!(copy.projections().await.expect("projections"), rows);
    // Importing the same log again conflicts and keeps nothing.
    assert!(matches!(
        copy.import(&log, &[]).await,
        Err(StoreError::VersionConflict { .. })
    ));
    assert_eq!(copy.log(0, 10).await.expect("log").len(), 2);
}
