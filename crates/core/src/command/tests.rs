//! The application layer end to end on a real SQLite store: bootstrap, org context, creation,
//! the lifecycle in both API generations, and scoping.

use std::sync::Arc;

use super::*;
use crate::domain::org::Permission;
use crate::domain::user::{Human, LifecycleCommand, UserState};
use crate::store::sqlite::SqliteStore;

struct Fixture {
    _dir: tempfile::TempDir,
    core: Core,
    admin: crate::auth::Caller,
    token: String,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("db.sqlite")).expect("open");
    let core = Core::new(Arc::new(store), "localhost");
    let BootstrapResult::Created { token, .. } = core
        .bootstrap(&Bootstrap::default())
        .await
        .expect("bootstrap")
    else {
        panic!("fresh store must bootstrap");
    };
    let admin = core
        .authenticate(Some(&format!("Bearer {token}")))
        .await
        .expect("admin token works");
    Fixture {
        _dir: dir,
        core,
        admin,
        token,
    }
}

fn alice(org_id: &str, password: Option<&str>) -> NewHuman {
    NewHuman {
        user_id: None,
        org_id: org_id.to_owned(),
        username: "alice".to_owned(),
        human: Human {
            first_name: "Alice".into(),
            last_name: "Doe".into(),
            email: "alice@example.com".into(),
            email_verified: true,
            ..Human::default()
        },
        password: password.map(|p| PasswordInput::Plain(p.to_owned())),
    }
}

#[tokio::test]
async fn bootstrap_runs_once_and_its_token_authenticates() {
    let f = fixture().await;
    assert_eq!(
        f.core
            .bootstrap(&Bootstrap::default())
            .await
            .expect("again"),
        BootstrapResult::AlreadyInitialized
    );
    assert!(f.admin.has_instance_permission(Permission::UserWrite));
    let wrong = f
        .core
        .authenticate(Some("Bearer nope"))
        .await
        .expect_err("wrong token");
    assert_eq!(wrong.kind, ErrorKind::Unauthenticated);
    let missing = f.core.authenticate(None).await.expect_err("no token");
    assert_eq!(missing.kind, ErrorKind::Unauthenticated);
    assert!(
        f.core.authenticate(Some(&f.token)).await.is_err(),
        "a token without 'Bearer' is refused"
    );
}

#[tokio::test]
async fn v1_lifecycle_reports_sequences_and_zitadel_errors() {
    let f = fixture().await;
    let ctx = f
        .core
        .org_context(&f.admin, None, Permission::UserWrite)
        .await
        .expect("ctx");
    let (user, details) = f
        .core
        .add_human(&f.admin, alice(&ctx.org.id, Some("Secret123!")))
        .await
        .expect("add");
    assert_eq!(user.state, UserState::Active);
    assert_eq!(details.sequence, 1);
    assert!(
        user.password_hash
            .as_deref()
            .is_some_and(|h| h.starts_with("$argon2id$"))
    );

    let scope = UserScope::V1(&ctx);
    let d = f
        .core
        .lifecycle(&f.admin, scope, LifecycleCommand::Deactivate, &user.id)
        .await
        .expect("deactivate");
    assert_eq!(d.sequence, 2);
    let d = f
        .core
        .lifecycle(&f.admin, scope, LifecycleCommand::Reactivate, &user.id)
        .await
        .expect("reactivate");
    assert_eq!(
        (d.sequence, d.resource_owner.as_str()),
        (3, ctx.org.id.as_str())
    );
    assert_eq!(d.created_us, d.changed_us);
    let err = f
        .core
        .lifecycle(&f.admin, scope, LifecycleCommand::Reactivate, &user.id)
        .await
        .expect_err("again");
    assert_eq!(err.to_string(), "User is not inactive (COMMAND-6M0sf)");
    let err = f
        .core
        .lifecycle(&f.admin, scope, LifecycleCommand::Reactivate, "")
        .await
        .expect_err("empty");
    assert_eq!(
        (err.kind, err.id),
        (ErrorKind::InvalidArgument, "COMMAND-4M9ds")
    );

    let read = f
        .core
        .get_user(&f.admin, scope, &user.id)
        .await
        .expect("get");
    assert_eq!((read.state, read.sequence), (UserState::Active, 3));
    let events = f.core.store().events(&user.id).await.expect("events");
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["user.human.added", "user.deactivated", "user.reactivated"]
    );
}

#[tokio::test]
async fn users_without_password_start_initial_and_names_are_unique() {
    let f = fixture().await;
    let ctx = f
        .core
        .org_context(&f.admin, None, Permission::UserWrite)
        .await
        .expect("ctx");
    let (user, _) = f
        .core
        .add_human(&f.admin, alice(&ctx.org.id, None))
        .await
        .expect("add");
    assert_eq!(user.state, UserState::Initial);
    let err = f
        .core
        .add_human(&f.admin, alice(&ctx.org.id, Some("Secret123!")))
        .await
        .expect_err("dup");
    assert_eq!((err.kind, err.id), (ErrorKind::AlreadyExists, "V3-DKcYh"));
    let err = f
        .core
        .add_human(&f.admin, alice(&ctx.org.id, Some("weak")))
        .await
        .expect_err("weak");
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    let err = f
        .core
        .lifecycle(
            &f.admin,
            UserScope::V1(&ctx),
            LifecycleCommand::Deactivate,
            &user.id,
        )
        .await
        .expect_err("initial");
    assert_eq!((err.kind, err.id), (ErrorKind::NotFound, "COMMAND-ke0fw"));
}

#[tokio::test]
async fn v1_scopes_users_to_the_org_context_and_v2_checks_permission() {
    let f = fixture().await;
    let (second, _) = f.core.add_org(&f.admin, "Second").await.expect("add org");
    // The admin is IAM_OWNER, and owner of the new org.
    let home = f
        .core
        .org_context(&f.admin, None, Permission::UserWrite)
        .await
        .expect("home");
    let other = f
        .core
        .org_context(&f.admin, Some(&second.id), Permission::UserWrite)
        .await
        .expect("other");
    let (user, _) = f
        .core
        .add_human(&f.admin, alice(&second.id, Some("Secret123!")))
        .await
        .expect("add");

    let err = f
        .core
        .lifecycle(
            &f.admin,
            UserScope::V1(&home),
            LifecycleCommand::Deactivate,
            &user.id,
        )
        .await
        .expect_err("other org");
    assert_eq!((err.kind, err.id), (ErrorKind::NotFound, "COMMAND-3M9ds"));
    f.core
        .lifecycle(
            &f.admin,
            UserScope::V1(&other),
            LifecycleCommand::Deactivate,
            &user.id,
        )
        .await
        .expect("in its org");
    f.core
        .lifecycle(
            &f.admin,
            UserScope::V2,
            LifecycleCommand::Reactivate,
            &user.id,
        )
        .await
        .expect("v2");

    let err = f
        .core
        .org_context(&f.admin, Some("404"), Permission::UserWrite)
        .await
        .expect_err("unknown org");
    assert_eq!(
        (err.kind, err.id),
        (ErrorKind::PermissionDenied, "AUTH-Bs7Ds")
    );

    // A caller without roles: v1 is refused before the handler, v2 after the state checks.
    let nobody = crate::auth::Caller {
        user_id: "x".into(),
        org_id: second.id.clone(),
        memberships: Vec::new().into(),
    };
    let err = f
        .core
        .org_context(&nobody, None, Permission::UserWrite)
        .await
        .expect_err("no role");
    assert_eq!(
        (err.kind, err.id),
        (ErrorKind::PermissionDenied, "AUTH-5mWD2")
    );
    let err = f
        .core
        .lifecycle(
            &nobody,
            UserScope::V2,
            LifecycleCommand::Reactivate,
            &user.id,
        )
        .await
        .expect_err("state first");
    assert_eq!(err.id, "COMMAND-s5qqcz97hf");
    let err = f
        .core
        .lifecycle(&nobody, UserScope::V2, LifecycleCommand::Lock, &user.id)
        .await
        .expect_err("then permission");
    assert_eq!(
        (err.kind, err.id),
        (ErrorKind::PermissionDenied, "AUTHZ-HKJD33")
    );
    let page = f
        .core
        .list_users(&nobody, UserScope::V2, Default::default())
        .await
        .expect("list");
    assert_eq!(page.total, 0, "a caller without roles sees nobody");
}

#[tokio::test]
async fn concurrent_reactivates_append_exactly_one_event() {
    let f = fixture().await;
    let ctx = f
        .core
        .org_context(&f.admin, None, Permission::UserWrite)
        .await
        .expect("ctx");
    let (user, _) = f
        .core
        .add_human(&f.admin, alice(&ctx.org.id, Some("Secret123!")))
        .await
        .expect("add");
    f.core
        .lifecycle(
            &f.admin,
            UserScope::V2,
            LifecycleCommand::Deactivate,
            &user.id,
        )
        .await
        .expect("deactivate");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let core = f.core.clone();
        let admin = f.admin.clone();
        let id = user.id.clone();
        tasks.push(tokio::spawn(async move {
            core.lifecycle(&admin, UserScope::V2, LifecycleCommand::Reactivate, &id)
                .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.id, "COMMAND-s5qqcz97hf", "losers see the serial answer"),
        }
    }
    assert_eq!(ok, 1);
    let sequences: Vec<u64> = f
        .core
        .store()
        .events(&user.id)
        .await
        .expect("events")
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(sequences, [1, 2, 3]);
}

#[tokio::test]
async fn an_owner_may_go_while_another_can_sign_in() {
    use crate::domain::org::{MemberScope, Membership};
    use crate::store::{Commit, ProjectionWrite};
    let f = fixture().await;
    let ctx = f
        .core
        .org_context(&f.admin, None, Permission::UserWrite)
        .await
        .expect("ctx");
    let admin_id = f.admin.user_id.clone();
    let refused = f
        .core
        .lifecycle(&f.admin, UserScope::V2, LifecycleCommand::Lock, &admin_id)
        .await
        .expect_err("the only owner");
    assert_eq!(refused.kind, ErrorKind::FailedPrecondition);
    assert_eq!(refused.id, "COMMAND-sy0wnr");
    // A second owner: a human (who signs in with a password or the identity provider).
    let (alice, _) = f
        .core
        .add_human(&f.admin, alice(&ctx.org.id, Some("Secret123!")))
        .await
        .expect("add");
    f.core
        .store()
        .commit(Commit {
            events: vec![],
            writes: vec![ProjectionWrite::Member(Membership {
                scope: MemberScope::Instance,
                user_id: alice.id.clone(),
                roles: vec!["IAM_OWNER".to_owned()],
            })],
        })
        .await
        .expect("make alice an owner");
    f.core
        .lifecycle(&f.admin, UserScope::V2, LifecycleCommand::Lock, &admin_id)
        .await
        .expect("alice remains");
    // Now alice is the last one that can sign in.
    let refused = f
        .core
        .lifecycle(
            &f.admin,
            UserScope::V2,
            LifecycleCommand::Deactivate,
            &alice.id,
        )
        .await
        .expect_err("alice is the last");
    assert_eq!(refused.id, "COMMAND-sy0wnr");
    // Unlocking (like reactivating) is never refused.
    assert!(
        f.core
            .lifecycle(
                &f.admin,
                UserScope::V1(&ctx),
                LifecycleCommand::Unlock,
                &admin_id
            )
            .await
            .is_ok()
    );
}

/// Two owners, each deactivated at the same moment, round after round: without the instance
/// aggregate in each commit both checks can pass (each sees the other standing) and the
/// instance is left without an owner; with it exactly one of the two goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_owner_losses_never_both_pass() {
    use crate::domain::org::{MemberScope, Membership};
    use crate::store::{Commit, ProjectionWrite};
    let f = fixture().await;
    let ctx = f
        .core
        .org_context(&f.admin, None, Permission::UserWrite)
        .await
        .expect("ctx");
    let (alice, _) = f
        .core
        .add_human(&f.admin, alice(&ctx.org.id, Some("Secret123!")))
        .await
        .expect("add");
    f.core
        .store()
        .commit(Commit {
            events: vec![],
            writes: vec![ProjectionWrite::Member(Membership {
                scope: MemberScope::Instance,
                user_id: alice.id.clone(),
                roles: vec!["IAM_OWNER".to_owned()],
            })],
        })
        .await
        .expect("make alice an owner");
    let owners = [f.admin.user_id.clone(), alice.id.clone()];
    for round in 0..40 {
        let tasks: Vec<_> = owners
            .iter()
            .map(|id| {
                let (core, admin, id) = (f.core.clone(), f.admin.clone(), id.clone());
                tokio::spawn(async move {
                    core.lifecycle(&admin, UserScope::V2, LifecycleCommand::Deactivate, &id)
                        .await
                })
            })
            .collect();
        let mut gone = Vec::new();
        for (task, id) in tasks.into_iter().zip(&owners) {
            match task.await.expect("join") {
                Ok(_) => gone.push(id.clone()),
                Err(e) => assert_eq!(e.id, "COMMAND-sy0wnr", "round {round}: {e:?}"),
            }
        }
        assert_eq!(
            gone.len(),
            1,
            "round {round}: exactly one owner may go, {gone:?} went"
        );
        f.core
            .lifecycle(
                &f.admin,
                UserScope::V2,
                LifecycleCommand::Reactivate,
                &gone[0],
            )
            .await
            .expect("reactivating is never refused");
    }
    let checked = f
        .core
        .store()
        .events("instance")
        .await
        .expect("instance events")
        .iter()
        .filter(|e| e.event_type == "instance.owners.checked")
        .count();
    assert_eq!(checked, 40, "one claim on the instance per owner that went");
}

#[test]
fn store_failures_say_whether_to_retry_or_free_space() {
    let cases = [
        (
            StoreError::Unavailable {
                context: "database connection".into(),
                source: None,
            },
            ErrorKind::Unavailable,
            "SY-STORE-DOWN",
        ),
        (
            StoreError::Full {
                context: "disk full".into(),
                source: None,
            },
            ErrorKind::ResourceExhausted,
            "SY-STORE-FULL",
        ),
        (
            StoreError::backend("corrupt"),
            ErrorKind::Internal,
            "SY-STORE",
        ),
    ];
    for (error, kind, id) in cases {
        let got = store_error(error);
        assert_eq!((got.kind, got.id), (kind, id), "{got}");
    }
}
