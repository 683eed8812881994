//! Property test: any sequence of lifecycle commands, on either API generation, leaves a user in
//! the state, and answers the errors, of the reference table (README "Identity and access"),
//! written here independently of [`LifecycleCommand::decide`]. Runs through [`Core`] on the
//! memory store: the commit path, projections and retries included.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::domain::org::Permission;
use crate::domain::user::{Api, Human, LifecycleCommand, UserState};
use crate::store::memory::MemoryStore;

/// The reference: the state after `command` from `state`, or the kind of error.
fn model(command: LifecycleCommand, api: Api, state: UserState) -> Result<UserState, ErrorKind> {
    use LifecycleCommand::*;
    use UserState::*;
    match (command, state) {
        (_, Deleted) => Err(ErrorKind::NotFound),
        // ZITADEL v1 answers NOT_FOUND for deactivating an initial user.
        (Deactivate, Initial) if matches!(api, Api::V1) => Err(ErrorKind::NotFound),
        (Deactivate, Initial | Inactive) => Err(ErrorKind::FailedPrecondition),
        (Deactivate, _) => Ok(Inactive),
        (Reactivate, Inactive) => Ok(Active),
        (Lock, Active | Initial) => Ok(Locked),
        (Unlock, Locked) => Ok(Active),
        (Remove, _) => Ok(Deleted),
        (Reactivate | Lock | Unlock, _) => Err(ErrorKind::FailedPrecondition),
    }
}

fn command() -> impl Strategy<Value = (LifecycleCommand, Api)> {
    let command = prop_oneof![
        Just(LifecycleCommand::Deactivate),
        Just(LifecycleCommand::Reactivate),
        Just(LifecycleCommand::Lock),
        Just(LifecycleCommand::Unlock),
        Just(LifecycleCommand::Remove),
    ];
    let api = prop_oneof![Just(Api::V1), Just(Api::V2)];
    (command, api)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn lifecycle_follows_the_reference_table(
        initial in any::<bool>(),
        commands in proptest::collection::vec(command(), 1..12),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let core = Core::new(Arc::new(MemoryStore::new()), "localhost");
            let BootstrapResult::Created { token, .. } =
                core.bootstrap(&Bootstrap::default()).await.expect("bootstrap")
            else {
                panic!("fresh store");
            };
            let admin = core
                .authenticate(Some(&format!("Bearer {token}")))
                .await
                .expect("admin");
            let ctx = core
                .org_context(&admin, None, Permission::UserWrite)
                .await
                .expect("ctx");
            let new = NewHuman {
                user_id: None,
                org_id: ctx.org.id.clone(),
                username: "model".to_owned(),
                human: Human {
                    first_name: "M".into(),
                    last_name: "D".into(),
                    email: "m@example.com".into(),
                    email_verified: true,
                    ..Human::default()
                },
                // A hash given as is: no argon2 per case.
                password: (!initial).then(|| PasswordInput::Hashed(
                    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
                )),
            };
            let (user, _) = core.add_human(&admin, new).await.expect("add");
            let mut state = if initial { UserState::Initial } else { UserState::Active };
            prop_assert_eq!(user.state, state);
            for (command, api) in commands {
                let scope = match api {
                    Api::V1 => UserScope::V1(&ctx),
                    Api::V2 => UserScope::V2,
                };
                let got = core.lifecycle(&admin, scope, command, &user.id).await;
                match (model(command, api, state), got) {
                    (Ok(next), Ok(_)) => state = next,
                    (Err(want), Err(e)) => prop_assert_eq!(e.kind, want, "{:?} {:?} from {:?}: {}", command, api, state, e),
                    (want, got) => prop_assert!(false, "{:?} {:?} from {:?}: want {:?}, got {:?}", command, api, state, want, got),
                }
                let stored = core.store().user(&user.id).await.expect("read");
                prop_assert_eq!(stored.map(|u| u.state), Some(state));
            }
            Ok(())
        })?;
    }
}
