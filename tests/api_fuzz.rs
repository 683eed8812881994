//! API fuzzing from outside: `tests/interop/api-fuzz` runs schemathesis against the real
//! binary's own `/openapi.json`, authenticated as the admin, for a bounded time. It must find
//! nothing — no 5xx, every status, content type and body as the document declares them —,
//! the server must not have panicked, and the admin must still work afterwards: whatever the
//! fuzzer did to it (deactivate, lock, remove, revoke its token), the last-owner rule keeps the
//! instance from being locked out.
//!
//! The time budget is `API_FUZZ_SECONDS` (the script's default, 60 s, in the test command); the
//! schemathesis venv is installed by `tests/interop/setup`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::{Server, run_with_deadline};

const SETUP_HINT: &str = "run tests/interop/setup (tests/run does) to install schemathesis";

#[test]
fn schemathesis_finds_nothing_and_the_admin_still_works() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/api-fuzz");
    let venv_st =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/python/.venv/bin/schemathesis");
    assert!(
        venv_st.exists(),
        "{} is missing; {SETUP_HINT}",
        venv_st.display()
    );
    let seconds: u64 = std::env::var("API_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = Server::start();
    let report = tempfile::tempdir().unwrap();
    let mut command = Command::new(&script);
    command
        .env("SWITCHYARD_URL", server.url())
        .env("SWITCHYARD_TOKEN", &server.token)
        .env("API_FUZZ_SECONDS", seconds.to_string())
        .env("API_FUZZ_REPORT_DIR", report.path())
        .env("NO_COLOR", "1");
    // The run's own budget, plus start-up and the report.
    let deadline = Duration::from_secs(seconds + 90);
    let run = run_with_deadline(&mut command, "tests/interop/api-fuzz", deadline);
    let result = run.expect_ok("schemathesis", &server);
    let operations = result["operations"].as_u64().unwrap_or(0);
    let cases = result["cases"].as_u64().unwrap_or(0);
    println!("schemathesis: {operations} operations, {cases} cases, no failure");
    assert!(
        operations >= 20,
        "every operation family was fuzzed: {result}"
    );

    // Nothing panicked.
    let panics: Vec<String> = server
        .log()
        .into_iter()
        .filter(|l| l.contains("panicked"))
        .collect();
    assert!(panics.is_empty(), "the server panicked: {panics:?}");

    // The admin still works: it is active, and it reads and writes, over REST and native
    // gRPC.
    let admin = admin_id(&server);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let added = rt.block_on(async {
        let client = reqwest::Client::new();
        let me = client
            .get(format!("{}/v2/users/{admin}", server.url()))
            .header("authorization", server.bearer())
            .send()
            .await
            .unwrap();
        let status = me.status().as_u16();
        let body: Value = me.json().await.unwrap_or_default();
        assert_eq!(status, 200, "the admin can still read: {body}");
        assert_eq!(body["user"]["state"], "USER_STATE_ACTIVE", "{body}");
        let added = client
            .post(format!("{}/v2/users/human", server.url()))
            .header("authorization", server.bearer())
            .json(&json!({
                "username": "after-the-fuzzer",
                "profile": {"givenName": "After", "familyName": "Fuzz"},
                "email": {"email": "after@example.com", "isVerified": true},
                "password": {"password": "Secret123!"}
            }))
            .send()
            .await
            .unwrap();
        let status = added.status().as_u16();
        let body: Value = added.json().await.unwrap_or_default();
        assert_eq!(status, 200, "the admin can still write: {body}");
        body["userId"].as_str().unwrap().to_owned()
    });
    // And over native gRPC: the admin reads the user it just added.
    rt.block_on(async {
        use switchyard_proto::zitadel::user::v2;
        let channel = tonic::transport::Channel::from_shared(server.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut users = v2::user_service_client::UserServiceClient::new(channel);
        let mut request = tonic::Request::new(v2::GetUserByIdRequest {
            user_id: added.clone(),
        });
        request
            .metadata_mut()
            .insert("authorization", server.bearer().parse().unwrap());
        let user = users
            .get_user_by_id(request)
            .await
            .unwrap_or_else(|s| panic!("gRPC GetUserByID {added}: {s:?}"))
            .into_inner()
            .user
            .expect("user");
        assert_eq!(
            (user.username.as_str(), user.state),
            ("after-the-fuzzer", v2::UserState::Active as i32),
            "{user:?}"
        );
    });
}

/// The admin's user id, from the start-up line that announced its token file.
fn admin_id(server: &Server) -> String {
    server
        .log()
        .iter()
        .find_map(|line| {
            let value: Value = serde_json::from_str(line).ok()?;
            value["fields"]["admin_user_id"].as_str().map(str::to_owned)
        })
        .expect("the bootstrap line names the admin")
}
