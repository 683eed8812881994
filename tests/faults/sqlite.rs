//! `switchyard serve` on SQLite whose disk fills up: the data directory is on a small tmpfs
//! this test mounts, then fills with a file of its own. Writes must fail cleanly —
//! RESOURCE_EXHAUSTED (REST 429) saying the store is out of space, nothing of them kept —,
//! reads go on, and once the file is gone writes succeed again without a restart; after a
//! restart the store holds exactly the acknowledged writes.
//!
//! Mounting needs root (CI runs as root); elsewhere the test says why it does not run.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use switchyard_core::store::EventStore as _;
use switchyard_core::store::sqlite::{SqliteOptions, SqliteStore};
use switchyard_core::store::{UserFilter, UserQuery};
use switchyard_tests::Server;

use super::is_root;

/// Size of the tmpfs: room for the store and its WAL, little enough to fill in a moment.
const TMPFS_SIZE: &str = "16m";
/// At most this many writes are tried before one must fail on the full disk.
const MAX_WRITES_TO_FULL: usize = 200;

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one, or says why it cannot.
    fn mount() -> Result<Self, String> {
        if !is_root() {
            return Err("mounting a tmpfs needs root (CI runs as root)".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("switchyard-faults-full.")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE},mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: whatever still has a file open there, the mount goes.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system under `path` with one file until a write fails for lack of space.
fn fill(path: &Path) -> PathBuf {
    let filler = path.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
    // The last partial block too.
    loop {
        match file.write(&[0u8; 512]) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    filler
}

/// AddHumanUser over REST: (HTTP status, body).
async fn add_user(client: &reqwest::Client, server: &Server, name: &str) -> (u16, Value) {
    let response = client
        .post(format!("{}/v2/users/human", server.url()))
        .header("authorization", server.bearer())
        .json(&json!({
            "username": name,
            "profile": {"givenName": "Full", "familyName": "Disk"},
            "email": {"email": format!("{name}@example.com"), "isVerified": true}
        }))
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// How many users named `name` the server finds.
async fn count_named(client: &reqwest::Client, server: &Server, name: &str) -> u64 {
    let response = client
        .post(format!("{}/v2/users", server.url()))
        .header("authorization", server.bearer())
        .json(&json!({"queries": [{"userNameQuery": {"userName": name}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "a search on the full disk");
    let body: Value = response.json().await.unwrap();
    body["details"]["totalResult"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_on_a_full_disk_fails_writes_cleanly_and_recovers_when_space_returns() {
    let tmpfs = match Tmpfs::mount() {
        Ok(tmpfs) => tmpfs,
        Err(reason) => {
            println!("skipped: SQLite on a full disk needs a tmpfs of its own: {reason}");
            return;
        }
    };
    let data = tmpfs.path().join("data");
    let server = Server::start_in(&data, &[]);
    let client = reqwest::Client::new();
    let mut acked: Vec<(String, String)> = Vec::new();
    for i in 0..3 {
        let name = format!("before-{i}");
        let (status, body) = add_user(&client, &server, &name).await;
        assert_eq!(status, 200, "{body}");
        acked.push((body["userId"].as_str().unwrap().to_owned(), name));
    }

    // The disk fills up.
    let filler = fill(tmpfs.path());
    let mut refused: Vec<String> = Vec::new();
    for i in 0..MAX_WRITES_TO_FULL {
        let name = format!("full-{i}");
        let (status, body) = add_user(&client, &server, &name).await;
        if status == 200 {
            // The WAL still had room for this one.
            acked.push((body["userId"].as_str().unwrap().to_owned(), name));
            continue;
        }
        assert_eq!(
            (status, body["code"].as_i64()),
            (429, Some(8)),
            "a write on the full disk is RESOURCE_EXHAUSTED: {body}"
        );
        let message = body["message"].as_str().unwrap_or("");
        assert!(
            message.contains("out of disk space") && message.contains("SY-STORE-FULL"),
            "the message says why: {body}"
        );
        refused.push(name);
        if refused.len() == 5 {
            break;
        }
    }
    assert_eq!(
        refused.len(),
        5,
        "writes kept succeeding on a full disk ({} acknowledged)",
        acked.len()
    );
    // Reads go on; the refused writes left nothing behind.
    let (id, name) = &acked[0];
    let read = client
        .get(format!("{}/v2/users/{id}", server.url()))
        .header("authorization", server.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.status().as_u16(),
        200,
        "reading {name} on the full disk"
    );
    for name in &refused {
        assert_eq!(count_named(&client, &server, name).await, 0, "{name}");
    }

    // Space returns: writes succeed again, the refused names are free to take.
    std::fs::remove_file(&filler).unwrap();
    for name in &refused {
        let (status, body) = add_user(&client, &server, name).await;
        assert_eq!(status, 200, "{name} once space returned: {body}");
        acked.push((body["userId"].as_str().unwrap().to_owned(), name.clone()));
    }

    // After a restart the store holds exactly the acknowledged users, each once.
    server.kill();
    let server = Server::start_in(&data, &[]);
    for (id, name) in &acked {
        let read = client
            .get(format!("{}/v2/users/{id}", server.url()))
            .header("authorization", server.bearer())
            .send()
            .await
            .unwrap();
        assert_eq!(read.status().as_u16(), 200, "{name} after the restart");
    }
    drop(server);
    let store = SqliteStore::open_with(
        &data.join("switchyard.db"),
        SqliteOptions {
            group_commit: false,
        },
    )
    .unwrap();
    let page = store
        .list_users(&UserQuery {
            filters: vec![UserFilter::IsHuman(true)],
            limit: 1000,
            ..UserQuery::default()
        })
        .await
        .unwrap();
    let mut stored: Vec<String> = page.users.iter().map(|u| u.username.clone()).collect();
    stored.sort();
    let mut want: Vec<String> = acked.iter().map(|(_, n)| n.clone()).collect();
    // The bootstrap's human admin is there too.
    let admins: Vec<String> = stored
        .iter()
        .filter(|n| !want.contains(n))
        .cloned()
        .collect();
    assert!(
        admins.len() <= 1,
        "users that were never acknowledged: {admins:?}"
    );
    want.extend(admins);
    want.sort();
    assert_eq!(stored, want);
    for (id, _) in &acked {
        let events = store.events(id).await.unwrap();
        assert_eq!(events.len(), 1, "{id}: exactly its one add event");
    }
    println!(
        "sqlite full disk: {} writes acknowledged, {} refused RESOURCE_EXHAUSTED then accepted once space returned",
        acked.len(),
        refused.len()
    );
}
