//! `switchyard serve` on a PostgreSQL of the test's own (initdb in a temporary directory, a
//! free port, the machine's server untouched), stopped and started again under write load:
//! while it is down every call fails UNAVAILABLE — REST 503, gRPC code 14, with a message —,
//! once it is back calls succeed again without restarting Switchyard, and every write that was
//! acknowledged is in the database afterwards.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use switchyard_tests::Server;

use super::{DEADLINE, eventually, is_root, run};

/// Concurrent writers.
const WORKERS: usize = 8;
/// Acknowledged writes wanted before the stop, and again after the restart.
const ACKS_PER_PHASE: usize = 40;
/// Failed calls wanted while the server is down.
const FAILURES_WHILE_DOWN: usize = 40;

/// A PostgreSQL server in a temporary directory, stopped (and removed) on drop.
struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// `runuser -u postgres --` when running as root: initdb refuses root.
    prefix: Vec<String>,
}

impl PrivatePostgres {
    /// initdb and start on a free port; panics (with how to fix it) when PostgreSQL's server
    /// programs are not installed.
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()
            .unwrap_or_else(|| {
                panic!(
                    "PostgreSQL's server programs are not installed (/usr/lib/postgresql/*/bin/initdb): \
                     apt-get install postgresql (tests/run does when it needs to)"
                )
            });
        let dir = tempfile::Builder::new()
            .prefix("switchyard-faults-pg.")
            .tempdir()
            .unwrap();
        let prefix: Vec<String> = if is_root() {
            run("chown", &["postgres", dir.path().to_str().unwrap()]);
            ["runuser", "-u", "postgres", "--"]
                .map(str::to_owned)
                .to_vec()
        } else {
            Vec::new()
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Self {
            bin,
            dir,
            port,
            prefix,
        };
        let data = server.data();
        server.pg(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"],
        );
        server.pg_ctl_start();
        server
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_str().unwrap().to_owned()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs one of PostgreSQL's programs (as the postgres user when root).
    fn pg(&self, program: &str, args: &[&str]) -> String {
        let path = self.bin.join(program);
        let mut all: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
        all.push(path.to_str().unwrap());
        all.extend_from_slice(args);
        run(all[0], &all[1..])
    }

    fn pg_ctl_start(&self) {
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// `pg_ctl stop -m fast`: rolls back open transactions and closes every connection.
    fn stop(&self) {
        self.pg("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let mut all: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
        all.extend([
            path.to_str().unwrap(),
            "-D",
            &data,
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
        let _ = std::process::Command::new(all[0])
            .args(&all[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// What the writers saw.
#[derive(Default)]
struct Tally {
    /// (user id, user name) of every acknowledged AddHumanUser.
    acked: Mutex<Vec<(String, String)>>,
    /// Failed calls as (HTTP status, body), while `down` was set.
    failed_down: Mutex<Vec<(u16, String)>>,
    /// Failed calls at any other time (the stop and the start themselves).
    failed_other: Mutex<Vec<(u16, String)>>,
    acks: AtomicUsize,
}

/// Adds users until `stop`; each acknowledged one is recorded.
async fn writer(
    client: reqwest::Client,
    base: String,
    bearer: String,
    worker: usize,
    tally: Arc<Tally>,
    down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let name = format!("pgfault-{worker}-{i}");
        let was_down = down.load(Ordering::SeqCst);
        let sent = client
            .post(format!("{base}/v2/users/human"))
            .header("authorization", &bearer)
            .json(&json!({
                "username": name,
                "profile": {"givenName": "Fault", "familyName": "Test"},
                "email": {"email": format!("{name}@example.com"), "isVerified": true}
            }))
            .send()
            .await
            .expect("Switchyard itself answers (it is not the one that is down)");
        let status = sent.status().as_u16();
        let body = sent.text().await.unwrap_or_default();
        if status == 200 {
            let value: Value = serde_json::from_str(&body).unwrap();
            let id = value["userId"].as_str().expect("userId").to_owned();
            tally.acked.lock().unwrap().push((id, name));
            tally.acks.fetch_add(1, Ordering::SeqCst);
        } else if was_down && down.load(Ordering::SeqCst) {
            tally.failed_down.lock().unwrap().push((status, body));
        } else {
            tally.failed_other.lock().unwrap().push((status, body));
        }
    }
}

/// A gRPC call (v2 GetUserByID) and its code; an error must say what it is.
async fn grpc_get_user(server: &Server, user_id: &str) -> tonic::Code {
    use switchyard_proto::zitadel::user::v2;
    let channel = tonic::transport::Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = v2::user_service_client::UserServiceClient::new(channel);
    let mut request = tonic::Request::new(v2::GetUserByIdRequest {
        user_id: user_id.to_owned(),
    });
    request
        .metadata_mut()
        .insert("authorization", server.bearer().parse().unwrap());
    match client.get_user_by_id(request).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => {
            assert!(
                status.code() == tonic::Code::Ok || !status.message().is_empty(),
                "{status:?}"
            );
            status.code()
        }
    }
}

fn data_dir(tmp: &Path) -> PathBuf {
    tmp.join("data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_and_restarted_under_load_is_unavailable_then_recovers_losing_nothing() {
    let pg = PrivatePostgres::start();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(&data_dir(tmp.path()), &["--database-url", &pg.url()]);
    let client = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let tally = Arc::new(Tally::default());
    let down = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        writers.spawn(writer(
            client.clone(),
            server.url(),
            server.bearer(),
            worker,
            Arc::clone(&tally),
            Arc::clone(&down),
            Arc::clone(&stop),
        ));
    }
    let acks = |tally: &Tally| tally.acks.load(Ordering::SeqCst);
    eventually("writes before the stop", DEADLINE, || async {
        (acks(&tally) >= ACKS_PER_PHASE).then_some(())
    })
    .await;
    let user_id = tally.acked.lock().unwrap()[0].0.clone();

    // Stop PostgreSQL under the load.
    tokio::task::block_in_place(|| pg.stop());
    down.store(true, Ordering::SeqCst);
    let acked_before_down = acks(&tally);
    eventually("failed calls while down", DEADLINE, || async {
        (tally.failed_down.lock().unwrap().len() >= FAILURES_WHILE_DOWN).then_some(())
    })
    .await;
    // Reads fail the same way, over REST and gRPC, and readiness says so.
    let read = client
        .get(format!("{}/v2/users/{user_id}", server.url()))
        .header("authorization", server.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.status().as_u16(),
        503,
        "a read while PostgreSQL is down"
    );
    assert_eq!(
        grpc_get_user(&server, &user_id).await,
        tonic::Code::Unavailable
    );
    assert_eq!(
        acks(&tally),
        acked_before_down,
        "nothing is acknowledged while the database is down"
    );

    // Start it again: Switchyard serves again by itself.
    tokio::task::block_in_place(|| pg.pg_ctl_start());
    down.store(false, Ordering::SeqCst);
    let acked_at_restart = acks(&tally);
    eventually("writes after the restart", DEADLINE, || async {
        (acks(&tally) >= acked_at_restart + ACKS_PER_PHASE).then_some(())
    })
    .await;
    assert_eq!(grpc_get_user(&server, &user_id).await, tonic::Code::Ok);
    stop.store(true, Ordering::SeqCst);
    while let Some(joined) = writers.join_next().await {
        joined.unwrap();
    }

    // While down, every call failed UNAVAILABLE with ZITADEL-style details, nothing else.
    let failed_down = tally.failed_down.lock().unwrap().clone();
    for (status, body) in &failed_down {
        let value: Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(
            (*status, value["code"].as_i64()),
            (503, Some(14)),
            "a call while PostgreSQL was down: {body}"
        );
        assert!(
            value["message"]
                .as_str()
                .is_some_and(|m| m.contains("unavailable")),
            "{body}"
        );
    }
    // Calls in flight while it stopped or started may fail too, but only as UNAVAILABLE.
    let failed_other = tally.failed_other.lock().unwrap().clone();
    for (status, body) in &failed_other {
        assert_eq!(
            *status, 503,
            "a call while PostgreSQL stopped or started: {body}"
        );
    }

    // Every acknowledged user is in the database, and served.
    let acked = tally.acked.lock().unwrap().clone();
    let (db, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = db
        .query("SELECT id, username FROM users", &[])
        .await
        .unwrap();
    let stored: std::collections::HashMap<String, String> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (id, name) in &acked {
        assert_eq!(
            stored.get(id),
            Some(name),
            "acknowledged user {name} ({id}) was lost"
        );
    }
    let events: i64 = db
        .query_one(
            "SELECT count(DISTINCT aggregate_id) FROM events WHERE event_type = 'user.human.added'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(events >= acked.len() as i64, "{events} added events");
    let (id, name) = acked.last().unwrap();
    let served = client
        .get(format!("{}/v2/users/{id}", server.url()))
        .header("authorization", server.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(served.status().as_u16(), 200, "{name}");
    println!(
        "postgres fault: {} acknowledged writes, {} failed while down (all UNAVAILABLE), {} failed at the stop/start",
        acked.len(),
        failed_down.len(),
        failed_other.len()
    );
    drop(server);
}
