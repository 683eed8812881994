//! The store test suite, written once against `dyn EventStore` so that every backend runs the
//! same cases.

use super::*;
use crate::domain::event::{AggregateType, EventType, NewEvent};
use crate::domain::org::{MemberScope, Membership, Org};
use crate::domain::token::{PersonalAccessToken, hash_secret};
use crate::domain::user::{Human, Machine, User, UserKind, UserState};

pub(crate) fn human(id: &str, org: &str, username: &str, first: &str, email: &str) -> User {
    User {
        id: id.to_owned(),
        resource_owner: org.to_owned(),
        username: username.to_owned(),
        state: UserState::Active,
        kind: UserKind::Human(Human {
            first_name: first.to_owned(),
            last_name: "Tester".to_owned(),
            display_name: format!("{first} Tester"),
            email: email.to_owned(),
            ..Human::default()
        }),
        password_hash: None,
        sequence: 1,
        created_us: 1_000,
        changed_us: 1_000,
    }
}

pub(crate) fn event(id: &str, sequence: u64, event_type: EventType) -> NewEvent {
    NewEvent {
        aggregate_type: AggregateType::User,
        aggregate_id: id.to_owned(),
        sequence,
        event_type,
        payload: serde_json::json!({}),
        resource_owner: "org1".to_owned(),
        creator: "tester".to_owned(),
        created_us: 1_000 + sequence as i64,
    }
}

fn add_user(user: &User) -> Commit {
    Commit {
        events: vec![event(&user.id, user.sequence, EventType::HumanAdded)],
        writes: vec![ProjectionWrite::User(user.clone())],
    }
}

pub(crate) async fn commit_then_read_back(store: &dyn EventStore) {
    let user = human("u1", "org1", "alice", "Alice", "alice@example.com");
    store.commit(add_user(&user)).await.expect("commit");
    assert_eq!(store.user("u1").await.expect("read"), Some(user.clone()));
    assert_eq!(store.user("nope").await.expect("read"), None);

    let org = Org {
        id: "org1".into(),
        name: "Acme".into(),
        primary_domain: "acme.localhost".into(),
        sequence: 1,
        created_us: 5,
        changed_us: 5,
    };
    let member = Membership {
        scope: MemberScope::Org("org1".into()),
        user_id: "u1".into(),
        roles: vec!["ORG_OWNER".into()],
    };
    let token = PersonalAccessToken {
        id: "t1".into(),
        user_id: "u1".into(),
        resource_owner: "org1".into(),
        hash: hash_secret("secret"),
        expiration_us: None,
        created_us: 7,
    };
    assert!(!store.has_orgs().await.expect("has_orgs"));
    store
        .commit(Commit {
            events: vec![],
            writes: vec![
                ProjectionWrite::Org(org.clone()),
                ProjectionWrite::Member(member.clone()),
                ProjectionWrite::Token(token.clone()),
            ],
        })
        .await
        .expect("commit");
    assert!(store.has_orgs().await.expect("has_orgs"));
    assert_eq!(store.org("org1").await.expect("org"), Some(org));
    assert_eq!(
        store.memberships("u1").await.expect("members"),
        vec![member]
    );
    assert_eq!(
        store
            .token_by_hash(&hash_secret("secret"))
            .await
            .expect("token"),
        Some(token)
    );
    assert_eq!(
        store
            .token_by_hash(&hash_secret("other"))
            .await
            .expect("token"),
        None
    );

    let events = store.events("u1").await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "user.human.added");
    assert_eq!(events[0].sequence, 1);
}

pub(crate) async fn taken_sequence_is_a_conflict_and_leaves_no_trace(store: &dyn EventStore) {
    let user = human("u2", "org1", "bob", "Bob", "bob@example.com");
    store.commit(add_user(&user)).await.expect("first");
    let mut deactivated = user.clone();
    deactivated.state = UserState::Inactive;
    deactivated.sequence = 2;
    store
        .commit(Commit {
            events: vec![event("u2", 2, EventType::UserDeactivated)],
            writes: vec![ProjectionWrite::User(deactivated.clone())],
        })
        .await
        .expect("second");
    // A writer that decided on sequence 1 loses: nothing it wrote is kept.
    let mut locked = user.clone();
    locked.state = UserState::Locked;
    locked.sequence = 2;
    let err = store
        .commit(Commit {
            events: vec![event("u2", 2, EventType::UserLocked)],
            writes: vec![ProjectionWrite::User(locked)],
        })
        .await
        .expect_err("conflict");
    assert!(
        matches!(err, StoreError::VersionConflict { ref aggregate_id, sequence: 2 } if aggregate_id == "u2"),
        "{err:?}"
    );
    assert_eq!(store.user("u2").await.expect("read"), Some(deactivated));
    assert_eq!(store.events("u2").await.expect("events").len(), 2);
}

pub(crate) async fn user_names_are_unique_until_removed(store: &dyn EventStore) {
    let first = human("u3", "org1", "Carol", "Carol", "c@example.com");
    store.commit(add_user(&first)).await.expect("first");
    let clash = human("u4", "org2", "carol", "Carol", "c2@example.com");
    let err = store.commit(add_user(&clash)).await.expect_err("taken");
    assert!(
        matches!(
            err,
            StoreError::UniqueViolation {
                constraint: Constraint::UserName
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.user("u4").await.expect("read"), None);
    assert!(
        store.events("u4").await.expect("events").is_empty(),
        "rejected events stay out"
    );

    // Removal writes only the state columns; the rest of the row stays as it was.
    store
        .commit(Commit {
            events: vec![event("u3", 2, EventType::UserRemoved)],
            writes: vec![ProjectionWrite::SetUserState {
                id: "u3".into(),
                state: UserState::Deleted,
                sequence: 2,
                changed_us: 2_002,
            }],
        })
        .await
        .expect("remove");
    let mut removed = first.clone();
    removed.state = UserState::Deleted;
    removed.sequence = 2;
    removed.changed_us = 2_002;
    assert_eq!(store.user("u3").await.expect("read"), Some(removed));
    let missing = store
        .commit(Commit {
            events: vec![event("u404", 1, EventType::UserLocked)],
            writes: vec![ProjectionWrite::SetUserState {
                id: "u404".into(),
                state: UserState::Locked,
                sequence: 1,
                changed_us: 2_003,
            }],
        })
        .await
        .expect_err("no row to update");
    assert!(matches!(missing, StoreError::Backend { .. }), "{missing:?}");
    assert!(store.events("u404").await.expect("events").is_empty());
    store
        .commit(add_user(&clash))
        .await
        .expect("name is free again");
}

pub(crate) async fn list_users_filters_sorts_and_pages(store: &dyn EventStore) {
    let mut users = vec![
        human("l1", "orgA", "anna", "Anna", "anna@a.example"),
        human("l2", "orgA", "ben", "Ben", "ben@a.example"),
        human("l3", "orgB", "anton", "Anton", "anton@b.example"),
    ];
    users[1].state = UserState::Locked;
    users[2].created_us = 2_000;
    let mut machine = human("l4", "orgA", "robot", "", "");
    machine.kind = UserKind::Machine(Machine {
        name: "Robot".into(),
        ..Machine::default()
    });
    users.push(machine);
    for user in &users {
        store.commit(add_user(user)).await.expect("add");
    }
    // orgA exists (its users' login names carry its domain); orgB does not.
    store
        .commit(Commit {
            events: vec![],
            writes: vec![ProjectionWrite::Org(Org {
                id: "orgA".into(),
                name: "A".into(),
                primary_domain: "a.test".into(),
                sequence: 1,
                created_us: 1,
                changed_us: 1,
            })],
        })
        .await
        .expect("org");
    let ids = |page: UserPage| page.users.into_iter().map(|u| u.id).collect::<Vec<_>>();
    let m = |method, ignore_case, value: &str| TextMatch {
        method,
        ignore_case,
        value: value.into(),
    };
    let list = |filters: Vec<UserFilter>| UserQuery {
        filters,
        sort: UserSort::UserName,
        asc: true,
        ..UserQuery::default()
    };
    struct Case {
        name: &'static str,
        query: UserQuery,
        want: Vec<&'static str>,
        total: u64,
    }
    let cases = vec![
        Case {
            name: "all",
            query: list(vec![]),
            want: vec!["l1", "l3", "l2", "l4"],
            total: 4,
        },
        Case {
            name: "org",
            query: list(vec![UserFilter::Org("orgA".into())]),
            want: vec!["l1", "l2", "l4"],
            total: 3,
        },
        Case {
            name: "starts with",
            query: list(vec![UserFilter::UserName(m(
                TextMethod::StartsWith,
                false,
                "an",
            ))]),
            want: vec!["l1", "l3"],
            total: 2,
        },
        Case {
            name: "case-sensitive equals misses",
            query: list(vec![UserFilter::FirstName(m(
                TextMethod::Equals,
                false,
                "anna",
            ))]),
            want: vec![],
            total: 0,
        },
        Case {
            name: "ignore-case equals hits",
            query: list(vec![UserFilter::FirstName(m(
                TextMethod::Equals,
                true,
                "anna",
            ))]),
            want: vec!["l1"],
            total: 1,
        },
        Case {
            name: "contains and ends with",
            query: list(vec![
                UserFilter::Email(m(TextMethod::Contains, false, "@a.")),
                UserFilter::Email(m(TextMethod::EndsWith, false, "example")),
            ]),
            want: vec!["l1", "l2"],
            total: 2,
        },
        Case {
            name: "state",
            query: list(vec![UserFilter::State(UserState::Locked)]),
            want: vec!["l2"],
            total: 1,
        },
        Case {
            name: "machines",
            query: list(vec![UserFilter::IsHuman(false)]),
            want: vec!["l4"],
            total: 1,
        },
        Case {
            name: "or / not / in",
            query: list(vec![
                UserFilter::Or(vec![
                    UserFilter::InIds(vec!["l1".into(), "l2".into()]),
                    UserFilter::DisplayName(m(TextMethod::Equals, false, "Robot")),
                ]),
                UserFilter::Not(Box::new(UserFilter::State(UserState::Locked))),
            ]),
            want: vec!["l1", "l4"],
            total: 2,
        },
        Case {
            name: "login name carries the org domain",
            query: list(vec![UserFilter::LoginName(m(
                TextMethod::Equals,
                true,
                "ANNA@a.test",
            ))]),
            want: vec!["l1"],
            total: 1,
        },
        Case {
            name: "login name without an org is the user name",
            query: list(vec![UserFilter::LoginName(m(
                TextMethod::EndsWith,
                false,
                "ton",
            ))]),
            want: vec!["l3"],
            total: 1,
        },
        Case {
            name: "paging keeps the total",
            query: UserQuery {
                offset: 1,
                limit: 2,
                ..list(vec![])
            },
            want: vec!["l3", "l2"],
            total: 4,
        },
        Case {
            name: "creation date descending",
            query: UserQuery {
                sort: UserSort::CreationDate,
                asc: false,
                limit: 1,
                ..UserQuery::default()
            },
            want: vec!["l3"],
            total: 4,
        },
    ];
    for case in cases {
        let page = store.list_users(&case.query).await.expect(case.name);
        assert_eq!(page.total, case.total, "{}", case.name);
        assert_eq!(ids(page), case.want, "{}", case.name);
    }
}

/// The export reads: the log in position order with each event's aggregate type, and every
/// projection row, users, orgs, members and tokens, each table by creation time then id (members
/// by scope then user), text bytewise.
pub(crate) async fn export_reads_the_log_and_every_row_in_order(store: &dyn EventStore) {
    let mut late = human("x_b", "org1", "late", "Late", "late@example.com");
    late.created_us = 2_000;
    late.password_hash = Some("$argon2id$hash".into());
    let early = human("x_a", "org1", "early", "Early", "early@example.com");
    // Same creation time as `early`: the id breaks the tie, bytewise ("X" < "x").
    let tie = human("X_c", "org1", "tie", "Tie", "tie@example.com");
    let mut added = event("x_b", 1, EventType::HumanAdded);
    added.payload = serde_json::json!({"userName": "late", "nested": {"n": 1}});
    let org = Org {
        id: "org1".into(),
        name: "Acme".into(),
        primary_domain: "acme.localhost".into(),
        sequence: 3,
        created_us: 5,
        changed_us: 6,
    };
    let member = |scope: MemberScope, user_id: &str| Membership {
        scope,
        user_id: user_id.to_owned(),
        roles: vec!["ORG_OWNER".into(), "ORG_USER_MANAGER".into()],
    };
    let members = vec![
        member(MemberScope::Instance, "x_a"),
        member(MemberScope::Org("org1".into()), "X_c"),
        member(MemberScope::Org("org1".into()), "x_a"),
    ];
    let token = PersonalAccessToken {
        id: "t1".into(),
        user_id: "x_a".into(),
        resource_owner: "org1".into(),
        hash: hash_secret("secret"),
        expiration_us: Some(9_000),
        created_us: 7,
    };
    let mut writes = vec![
        ProjectionWrite::User(late.clone()),
        ProjectionWrite::User(early.clone()),
        ProjectionWrite::User(tie.clone()),
        ProjectionWrite::Org(org.clone()),
        ProjectionWrite::Token(token.clone()),
    ];
    writes.extend(members.iter().rev().cloned().map(ProjectionWrite::Member));
    store
        .commit(Commit {
            events: vec![
                added.clone(),
                event("x_a", 1, EventType::HumanAdded),
                event("x_b", 2, EventType::UserLocked),
            ],
            writes,
        })
        .await
        .expect("commit");

    let log = store.log(0, 10).await.expect("log");
    let seen: Vec<(&str, &str, u64)> = log
        .iter()
        .map(|e| {
            (
                e.aggregate_type.as_str(),
                e.event.aggregate_id.as_str(),
                e.event.sequence,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![("user", "x_b", 1), ("user", "x_a", 1), ("user", "x_b", 2)]
    );
    assert_eq!(log[0].event.payload, added.payload);
    assert_eq!(log[0].event.event_type, "user.human.added");
    assert_eq!(log[0].event.created_us, added.created_us);
    assert!(log[0].event.position < log[1].event.position);
    let after_first = store.log(log[0].event.position, 1).await.expect("log");
    assert_eq!(after_first, log[1..2].to_vec());

    let mut want = vec![
        ProjectionWrite::User(tie),
        ProjectionWrite::User(early),
        ProjectionWrite::User(late),
        ProjectionWrite::Org(org),
    ];
    want.extend(members.into_iter().map(ProjectionWrite::Member));
    want.push(ProjectionWrite::Token(token));
    assert_eq!(store.projections().await.expect("projections"), want);
}

/// The member search: filters over the member's user (one of each kind the API sends, empty
/// values included), a member whose user row is missing or deleted listed with no user and
/// compared as an empty profile, the total against the page, offset and limit.
pub(crate) async fn list_members_filters_and_pages(store: &dyn EventStore) {
    use crate::store::query::{MemberQuery, TextMatch, TextMethod};
    let anna = human("m1", "org1", "anna_m", "Anna", "anna@a.example");
    let ben = human("m2", "org1", "ben_m", "Ben", "ben@B.example");
    let robot = User {
        kind: UserKind::Machine(Machine {
            name: "Robot".into(),
            description: String::new(),
            access_token_type: 0,
        }),
        ..human("m3", "org1", "robot_m", "", "")
    };
    let gone = User {
        state: UserState::Deleted,
        ..human("m5", "org1", "gone_m", "Gone", "gone@a.example")
    };
    let org1 = MemberScope::Org("org1".into());
    let member = |scope: &MemberScope, user_id: &str| {
        ProjectionWrite::Member(Membership {
            scope: scope.clone(),
            user_id: user_id.to_owned(),
            roles: vec!["ORG_OWNER".into()],
        })
    };
    let mut writes: Vec<ProjectionWrite> = [&anna, &ben, &robot, &gone]
        .into_iter()
        .cloned()
        .map(ProjectionWrite::User)
        .collect();
    // m4 has no user row at all; m1 is also an instance member, m2 a member of org2.
    for id in ["m5", "m4", "m3", "m2", "m1"] {
        writes.push(member(&org1, id));
    }
    writes.push(member(&MemberScope::Instance, "m1"));
    writes.push(member(&MemberScope::Org("org2".into()), "m2"));
    store
        .commit(Commit {
            events: vec![],
            writes,
        })
        .await
        .expect("commit");

    let search = |filters: Vec<UserFilter>, offset: u64, limit: u32| MemberQuery {
        scope: org1.clone(),
        filters,
        offset,
        limit,
    };
    let text = |method: TextMethod, ignore_case: bool, value: &str| TextMatch {
        method,
        ignore_case,
        value: value.to_owned(),
    };
    let ids = |page: &MemberPage| -> Vec<String> {
        page.members
            .iter()
            .map(|(m, _)| m.user_id.clone())
            .collect()
    };

    let all = store
        .list_members(&search(vec![], 0, 0))
        .await
        .expect("list");
    assert_eq!(all.total, 5);
    assert_eq!(ids(&all), ["m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(all.members[0].1, Some(anna.clone()));
    assert_eq!(all.members[0].0.roles, vec!["ORG_OWNER".to_owned()]);
    assert_eq!(all.members[2].1, Some(robot.clone()));
    assert_eq!(all.members[3].1, None, "no user row");
    assert_eq!(
        all.members[4].1, None,
        "a deleted user is listed without its row"
    );

    let cases: Vec<(&str, UserFilter, Vec<&str>)> = vec![
        (
            "by user id, a member without a user too",
            UserFilter::InIds(vec!["m2".into(), "m4".into(), "m9".into()]),
            vec!["m2", "m4"],
        ),
        (
            "email contains, ignoring case",
            UserFilter::Email(text(TextMethod::Contains, true, "B.EXAMPLE")),
            vec!["m2"],
        ),
        (
            "email ends with, by case",
            UserFilter::Email(text(TextMethod::EndsWith, false, "a.example")),
            vec!["m1"],
        ),
        (
            "first name starts with",
            UserFilter::FirstName(text(TextMethod::StartsWith, false, "Be")),
            vec!["m2"],
        ),
        (
            "first name equals, ignoring case",
            UserFilter::FirstName(text(TextMethod::Equals, true, "anna")),
            vec!["m1"],
        ),
        (
            "last name equals: the machine and the missing have none",
            UserFilter::LastName(text(TextMethod::Equals, false, "Tester")),
            vec!["m1", "m2"],
        ),
        (
            "an empty email equals the empty profiles and the machine's",
            UserFilter::Email(text(TextMethod::Equals, false, "")),
            vec!["m3", "m4", "m5"],
        ),
        (
            "an empty value is contained in every name",
            UserFilter::FirstName(text(TextMethod::Contains, false, "")),
            vec!["m1", "m2", "m3", "m4", "m5"],
        ),
        (
            "an empty suffix ends every name",
            UserFilter::LastName(text(TextMethod::EndsWith, true, "")),
            vec!["m1", "m2", "m3", "m4", "m5"],
        ),
    ];
    for (what, filter, want) in cases {
        let page = store
            .list_members(&search(vec![filter], 0, 0))
            .await
            .expect(what);
        assert_eq!(ids(&page), want, "{what}");
        assert_eq!(page.total, want.len() as u64, "{what}");
    }

    let page = store
        .list_members(&search(vec![], 1, 2))
        .await
        .expect("page");
    assert_eq!(
        (page.total, ids(&page)),
        (5, vec!["m2".into(), "m3".into()])
    );
    let last = store
        .list_members(&search(vec![], 4, 0))
        .await
        .expect("offset, no limit");
    assert_eq!((last.total, ids(&last)), (5, vec!["m5".into()]));
    let filtered = store
        .list_members(&search(
            vec![UserFilter::LastName(text(
                TextMethod::Equals,
                false,
                "Tester",
            ))],
            0,
            1,
        ))
        .await
        .expect("filtered page");
    assert_eq!((filtered.total, ids(&filtered)), (2, vec!["m1".into()]));
    let instance = store
        .list_members(&MemberQuery {
            scope: MemberScope::Instance,
            filters: vec![],
            offset: 0,
            limit: 0,
        })
        .await
        .expect("instance");
    assert_eq!(ids(&instance), ["m1"]);
}

/// Many commits at once: of those that take the same sequence exactly one wins and the rest
/// conflict, and the others (distinct aggregates) all succeed — a failing commit fails alone,
/// also when a backend batches them into one transaction.
pub(crate) async fn concurrent_commits_fail_alone(store: std::sync::Arc<dyn EventStore>) {
    let base = human("c0", "org1", "racer", "Race", "race@example.com");
    store.commit(add_user(&base)).await.expect("add");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16u64 {
        let racer_store = std::sync::Arc::clone(&store);
        let mut racer = base.clone();
        racer.sequence = 2;
        racer.changed_us = 2_000 + i as i64;
        tasks.spawn(async move {
            let result = racer_store
                .commit(Commit {
                    events: vec![event("c0", 2, EventType::UserLocked)],
                    writes: vec![ProjectionWrite::User(racer)],
                })
                .await;
            (None, result)
        });
        let other_store = std::sync::Arc::clone(&store);
        let other = human(
            &format!("c{}", i + 1),
            "org1",
            &format!("other{i}"),
            "Other",
            "o@example.com",
        );
        tasks.spawn(async move {
            (
                Some(other.id.clone()),
                other_store.commit(add_user(&other)).await,
            )
        });
    }
    let mut winners = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task") {
            (None, Ok(())) => winners += 1,
            (None, Err(StoreError::VersionConflict { sequence: 2, .. })) => {}
            (None, Err(e)) => panic!("racer: {e:?}"),
            (Some(id), result) => result.unwrap_or_else(|e| panic!("{id}: {e:?}")),
        }
    }
    assert_eq!(winners, 1, "exactly one racer appends sequence 2");
    assert_eq!(store.events("c0").await.expect("events").len(), 2);
    assert_eq!(
        store.user("c0").await.expect("read").map(|u| u.sequence),
        Some(2)
    );
    for i in 0..16 {
        assert!(
            store
                .user(&format!("c{}", i + 1))
                .await
                .expect("read")
                .is_some(),
            "c{}",
            i + 1
        );
    }
}
