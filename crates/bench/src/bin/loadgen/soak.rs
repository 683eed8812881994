//! `loadgen soak`: a long, open-loop run of mixed protocols and commands (issue 13, item 6).
//!
//! First a short closed-loop probe measures the peak rate of the mix; then calls are *scheduled*
//! at `--load` × that peak for `--duration` seconds, whether or not earlier ones have answered
//! (open loop: a slow server shows up as latency, not as a lower offered rate). Latency counts from
//! the scheduled instant, not the send, so a stall is not hidden by the calls it delayed
//! (coordinated omission). Every `--window` seconds one JSON line reports the window: calls,
//! errors, calls that could not even be sent because every call slot was busy (`shed`), p50/p99/max
//! latency, the server's CPU share and its resident memory (VmRSS). At the end a Markdown table.
//!
//! The mix, per ten calls: four DeactivateUser/ReactivateUser (alternating on a user the call owns
//! for its duration, so every one must succeed), three GetUserByID, two ListUsers (first page of
//! 20), and — every 40th call, in place of a ListUsers — AddMachineUser with a fresh name, so
//! the store grows during the run. New users go to an org of their own (`x-zitadel-orgid`), so
//! the listed org keeps its size: ListUsers counts and sorts the users of one org, which costs in
//! proportion to that org, and a soak should show drift, not that known growth. The protocol rotates over REST (h2), gRPC, gRPC-Web, Connect
//! JSON and Connect proto, so every command goes over every protocol.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::Full;
use hyper::client::conn::http2::SendRequest;
use prost::Message as _;
use switchyard_proto::zitadel::management::v1::{
    AddMachineUserRequest, GetUserByIdRequest, ListUsersRequest, ReactivateUserRequest,
};
use switchyard_proto::zitadel::v1::ListQuery;

use super::{Args, Protocol, SERVICE, call, connect, cpu_ticks, frame, token};

const PROTOCOLS: [Protocol; 5] = [
    Protocol::RestH2,
    Protocol::Grpc,
    Protocol::GrpcWeb,
    Protocol::ConnectJson,
    Protocol::ConnectProto,
];

/// One command of the mix.
#[derive(Debug, Clone)]
enum Op {
    Lifecycle { user: String, deactivate: bool },
    Get { user: String },
    List,
    AddMachine { name: String },
}

impl Op {
    fn method(&self) -> &'static str {
        match self {
            Op::Lifecycle {
                deactivate: true, ..
            } => "DeactivateUser",
            Op::Lifecycle { .. } => "ReactivateUser",
            Op::Get { .. } => "GetUserByID",
            Op::List => "ListUsers",
            Op::AddMachine { .. } => "AddMachineUser",
        }
    }

    /// The REST route: method, path, JSON body (None: no body).
    fn rest(&self) -> (http::Method, String, Option<serde_json::Value>) {
        match self {
            Op::Lifecycle { user, deactivate } => {
                let verb = if *deactivate {
                    "_deactivate"
                } else {
                    "_reactivate"
                };
                let path = format!("/management/v1/users/{user}/{verb}");
                (http::Method::POST, path, Some(serde_json::json!({})))
            }
            Op::Get { user } => (
                http::Method::GET,
                format!("/management/v1/users/{user}"),
                None,
            ),
            Op::List => (
                http::Method::POST,
                "/management/v1/users/_search".to_owned(),
                Some(self.json()),
            ),
            Op::AddMachine { .. } => (
                http::Method::POST,
                "/management/v1/users/machine".to_owned(),
                Some(self.json()),
            ),
        }
    }

    /// The request message as protojson (Connect JSON; REST bodies).
    fn json(&self) -> serde_json::Value {
        match self {
            Op::Lifecycle { user, .. } | Op::Get { user } => serde_json::json!({ "id": user }),
            Op::List => serde_json::json!({ "query": { "limit": 20 } }),
            Op::AddMachine { name } => serde_json::json!({ "userName": name, "name": name }),
        }
    }

    /// The request message as protobuf.
    fn proto(&self) -> Vec<u8> {
        match self {
            // DeactivateUserRequest has ReactivateUserRequest's shape (field 1, `id`).
            Op::Lifecycle { user, .. } => {
                ReactivateUserRequest { id: user.clone() }.encode_to_vec()
            }
            Op::Get { user } => GetUserByIdRequest { id: user.clone() }.encode_to_vec(),
            Op::List => ListUsersRequest {
                query: Some(ListQuery {
                    limit: 20,
                    ..ListQuery::default()
                }),
                ..ListUsersRequest::default()
            }
            .encode_to_vec(),
            Op::AddMachine { name } => AddMachineUserRequest {
                user_name: name.clone(),
                name: name.clone(),
                ..AddMachineUserRequest::default()
            }
            .encode_to_vec(),
        }
    }

    fn request(
        &self,
        protocol: Protocol,
        authority: &str,
        token: &HeaderValue,
        tenant: &HeaderValue,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let rpc_path = format!("{SERVICE}/{}", self.method());
        let (method, path, content_type, body): (http::Method, String, Option<&str>, Bytes) =
            match protocol {
                Protocol::RestH2 => {
                    let (method, path, body) = self.rest();
                    match body {
                        Some(json) => (
                            method,
                            path,
                            Some("application/json"),
                            serde_json::to_vec(&json)?.into(),
                        ),
                        None => (method, path, None, Bytes::new()),
                    }
                }
                Protocol::Grpc => (
                    http::Method::POST,
                    rpc_path,
                    Some("application/grpc"),
                    frame(&self.proto()),
                ),
                Protocol::GrpcWeb => (
                    http::Method::POST,
                    rpc_path,
                    Some("application/grpc-web+proto"),
                    frame(&self.proto()),
                ),
                Protocol::ConnectJson => (
                    http::Method::POST,
                    rpc_path,
                    Some("application/json"),
                    serde_json::to_vec(&self.json())?.into(),
                ),
                Protocol::ConnectProto => (
                    http::Method::POST,
                    rpc_path,
                    Some("application/proto"),
                    self.proto().into(),
                ),
            };
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{authority}{path}"))
            .header(http::header::AUTHORIZATION, token.clone());
        if let Some(content_type) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
        }
        if let Op::AddMachine { .. } = self {
            builder = builder.header("x-zitadel-orgid", tenant.clone());
        }
        builder = match protocol {
            Protocol::Grpc => builder.header(http::header::TE, "trailers"),
            Protocol::GrpcWeb => builder.header("x-grpc-web", "1"),
            Protocol::ConnectJson | Protocol::ConnectProto => {
                builder.header("connect-protocol-version", "1")
            }
            Protocol::RestH2 => builder,
        };
        Ok(builder.body(Full::new(body))?)
    }
}

/// A user of the pool and what its next lifecycle call is.
struct Slot {
    user: String,
    deactivate: bool,
}

/// The command of the `n`-th call, on the user of `slot` where it needs one (a lifecycle call
/// flips the user's next one). Without a slot (none was free) it lists instead.
fn op_for(n: u64, slot: &mut Option<Slot>, run: u64) -> Op {
    let kind = n % 10;
    if n % 40 == 39 {
        return Op::AddMachine {
            name: format!("soak-{run}-{n}"),
        };
    }
    match (kind, slot.as_mut()) {
        (0..=3, Some(slot)) => {
            let op = Op::Lifecycle {
                user: slot.user.clone(),
                deactivate: slot.deactivate,
            };
            slot.deactivate = !slot.deactivate;
            op
        }
        (4..=6, Some(slot)) => Op::Get {
            user: slot.user.clone(),
        },
        _ => Op::List,
    }
}

/// Whether the `n`-th call works on a user of the pool (lifecycle and get calls).
fn needs_slot(n: u64) -> bool {
    n % 40 != 39 && n % 10 <= 6
}

#[derive(Default)]
struct Window {
    ok: u64,
    errors: u64,
    shed: u64,
    latencies: Vec<u32>,
    first_error: Option<String>,
}

struct Shared {
    window: Mutex<Window>,
    free: Mutex<VecDeque<Slot>>,
    /// The org id new users are added to.
    tenant: HeaderValue,
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?
        .parse()
        .context("VmRSS")
}

/// Sends the `n`-th call, scheduled for `due`, and records it in the current window.
#[allow(clippy::too_many_arguments)]
fn launch(
    n: u64,
    due: Instant,
    run: u64,
    sender: &SendRequest<Full<Bytes>>,
    authority: &str,
    token: &HeaderValue,
    shared: &Arc<Shared>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<()> {
    let mut slot = None;
    if needs_slot(n) {
        slot = shared.free.lock().expect("pool lock").pop_front();
        if slot.is_none() {
            // Every user is in a call: the server is that far behind. Count it, send nothing.
            shared.window.lock().expect("window lock").shed += 1;
            return Ok(());
        }
    }
    let protocol = PROTOCOLS[((n / 10) % PROTOCOLS.len() as u64) as usize];
    let op = op_for(n, &mut slot, run);
    let request = op.request(protocol, authority, token, &shared.tenant)?;
    let (mut sender, shared) = (sender.clone(), Arc::clone(shared));
    tasks.spawn(async move {
        let outcome = call(&mut sender, protocol, request).await;
        let micros = due.elapsed().as_micros();
        if let Some(slot) = slot {
            shared.free.lock().expect("pool lock").push_back(slot);
        }
        let mut window = shared.window.lock().expect("window lock");
        match outcome {
            Ok(true) => {
                window.ok += 1;
                window
                    .latencies
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Ok(false) => {
                window.errors += 1;
                window
                    .first_error
                    .get_or_insert_with(|| format!("{} over {protocol:?} failed", op.method()));
            }
            Err(error) => {
                window.errors += 1;
                window
                    .first_error
                    .get_or_insert_with(|| format!("{} over {protocol:?}: {error:#}", op.method()));
            }
        }
    });
    Ok(())
}

/// Creates the org new users go to (Connect JSON AddOrg) and returns its id.
async fn add_org(
    sender: &mut SendRequest<Full<Bytes>>,
    authority: &str,
    token: &HeaderValue,
    name: &str,
) -> anyhow::Result<String> {
    let request = Request::post(format!("http://{authority}{SERVICE}/AddOrg"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::AUTHORIZATION, token.clone())
        .header("connect-protocol-version", "1")
        .body(Full::new(
            serde_json::to_vec(&serde_json::json!({ "name": name }))?.into(),
        ))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body).with_context(|| {
        format!(
            "AddOrg answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    answer["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("AddOrg answered {status} without an id: {answer}"))
}

/// Closed loop for `seconds`: `slots` calls always in flight; returns the calls per second.
async fn probe(
    senders: &[SendRequest<Full<Bytes>>],
    authority: &str,
    token: &HeaderValue,
    shared: &Arc<Shared>,
    seconds: f64,
) -> anyhow::Result<f64> {
    let slots = shared.free.lock().expect("pool lock").len().min(128);
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..slots {
        let (mut sender, authority, token, counter, shared) = (
            senders[w % senders.len()].clone(),
            authority.to_owned(),
            token.clone(),
            Arc::clone(&counter),
            Arc::clone(shared),
        );
        workers.spawn(async move {
            let mut done = 0u64;
            while Instant::now() < until {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut slot = None;
                if needs_slot(n) {
                    slot = shared.free.lock().expect("pool lock").pop_front();
                }
                let protocol = PROTOCOLS[((n / 10) % PROTOCOLS.len() as u64) as usize];
                let op = op_for(n, &mut slot, 0);
                let request = op.request(protocol, &authority, &token, &shared.tenant)?;
                let ok = call(&mut sender, protocol, request).await?;
                if let Some(slot) = slot {
                    shared.free.lock().expect("pool lock").push_back(slot);
                }
                if !ok {
                    bail!("probe: {} over {protocol:?} failed", op.method());
                }
                done += 1;
            }
            anyhow::Ok(done)
        });
    }
    let mut total = 0;
    while let Some(done) = workers.join_next().await {
        total += done??;
    }
    Ok(total as f64 / seconds)
}

/// `soak --addr A --token-file F --ids FILE --server-pid PID [--connections 8] [--probe 10]
/// [--load 0.7] [--rate R] [--duration 600] [--window 30] [--clk-tck 100]`.
/// `--rate` skips the probe and offers R calls/s.
pub(super) async fn soak(args: &Args) -> anyhow::Result<()> {
    let addr = args.get("addr")?.to_owned();
    let token = token(&PathBuf::from(args.get("token-file")?))?;
    let pid: u32 = args.get("server-pid")?.parse().context("--server-pid")?;
    let connections: usize = args.num("connections", "8")?;
    let load: f64 = args.num("load", "0.7")?;
    let duration = Duration::from_secs_f64(args.num("duration", "600")?);
    let window_len = Duration::from_secs_f64(args.num("window", "30")?);
    let clk_tck: f64 = args.num("clk-tck", "100")?;
    let free: VecDeque<Slot> = std::fs::read_to_string(args.get("ids")?)?
        .lines()
        .map(|user| Slot {
            user: user.to_owned(),
            deactivate: true,
        })
        .collect();
    if free.is_empty() {
        bail!("no user ids: run setup first");
    }
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(&addr).await?);
    }
    let run = u64::from(std::process::id());
    let tenant = add_org(&mut senders[0], &addr, &token, &format!("soak-{run}")).await?;
    let shared = Arc::new(Shared {
        window: Mutex::default(),
        free: Mutex::new(free),
        tenant: HeaderValue::from_str(&tenant)?,
    });

    let (peak, rate) = match args.0.get("rate") {
        Some(rate) => (f64::NAN, rate.parse::<f64>().context("--rate")?),
        None => {
            let peak = probe(&senders, &addr, &token, &shared, args.num("probe", "10")?).await?;
            (peak, peak * load)
        }
    };
    if !(rate.is_finite() && rate >= 1.0) {
        bail!("offered rate {rate:.1}/s: nothing to do");
    }
    eprintln!("soak: peak {peak:.0} calls/s (closed loop), offering {rate:.0} calls/s");

    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = tokio::task::JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut n, mut window_start, mut window_index) = (0u64, start, 0u32);
    let mut cpu_before = cpu_ticks(pid)?;
    let mut rows = Vec::new();
    loop {
        ticker.tick().await;
        let now = Instant::now();
        // Every call whose instant has come, each with its own scheduled time.
        loop {
            let due = start + interval.mul_f64(n as f64);
            if due > now || due >= start + duration {
                break;
            }
            let sender = &senders[(n as usize) % senders.len()];
            launch(n, due, run, sender, &addr, &token, &shared, &mut tasks)?;
            n += 1;
        }
        while tasks.try_join_next().is_some() {}
        let ended = now >= start + duration;
        if now >= window_start + window_len || ended {
            if ended {
                // The calls of the last window answer (or fail) before it is reported.
                while tasks.join_next().await.is_some() {}
            }
            let window = std::mem::take(&mut *shared.window.lock().expect("window lock"));
            let cpu_after = cpu_ticks(pid)?;
            let seconds = window_start.elapsed().as_secs_f64();
            let mut latencies = window.latencies;
            latencies.sort_unstable();
            window_index += 1;
            let line = serde_json::json!({
                "window": window_index,
                "t_s": (start.elapsed().as_secs_f64()).round(),
                "offered_per_s": rate.round(),
                "ok_per_s": (window.ok as f64 / seconds).round(),
                "ok": window.ok,
                "errors": window.errors,
                "shed": window.shed,
                "p50_us": percentile(&latencies, 0.50),
                "p99_us": percentile(&latencies, 0.99),
                "max_us": latencies.last().copied().unwrap_or(0),
                "server_cpu_pct": ((cpu_after - cpu_before) as f64 / clk_tck / seconds * 100.0).round(),
                "rss_kib": rss_kib(pid)?,
                "first_error": window.first_error,
            });
            println!("{line}");
            rows.push(line);
            cpu_before = cpu_after;
            window_start = Instant::now();
            if ended {
                break;
            }
        }
    }

    println!();
    println!(
        "Peak (closed loop, the same mix): {peak:.0} calls/s; offered {rate:.0} calls/s for {:.0} s.",
        duration.as_secs_f64()
    );
    println!();
    println!(
        "| window end (s) | answered/s | errors | shed | p50 ms | p99 ms | max ms | server CPU % | RSS MiB |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let ms = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(0.0) / 1000.0;
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {:.1} |",
            row["t_s"],
            row["ok_per_s"],
            row["errors"],
            row["shed"],
            ms(row, "p50_us"),
            ms(row, "p99_us"),
            ms(row, "max_us"),
            row["server_cpu_pct"],
            row["rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        );
    }
    Ok(())
}
