//! The HTTP/2 load generator of `bench/run`, and its set-up and report steps.
//!
//! - `loadgen setup` creates the pool of machine users the benchmark deactivates and
//!   reactivates (over gRPC) and writes their ids, one a line.
//! - `loadgen run` drives ReactivateUser work over REST on HTTP/2, gRPC, gRPC-Web or Connect
//!   (JSON or proto): `connections` HTTP/2 connections with `streams` concurrent calls each;
//!   every call slot owns one user and alternates DeactivateUser and ReactivateUser on it, so
//!   every call must succeed (h2load cycles one URI list for all clients, which cannot keep
//!   that order: hence this program). After `warmup` seconds it measures for `duration`
//!   seconds and prints one JSON line: requests/s, p50/p99 latency, errors, and the server's
//!   CPU time per request from `/proc/<pid>/stat`. HTTP/1.1 is wrk's job.
//! - `loadgen report` reads those lines and prints the medians and ratios as Markdown.
//! - `loadgen soak` is the long open-loop run of `bench/soak` (see `soak.rs`).
//!
//! It runs on one thread (tokio's current-thread runtime): `bench/run` pins it to the core
//! the server does not use.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message as _;
use switchyard_proto::zitadel::management::v1::{
    AddMachineUserRequest, AddMachineUserResponse, ReactivateUserRequest,
};

#[path = "loadgen/soak.rs"]
mod soak;

const SERVICE: &str = "/zitadel.management.v1.ManagementService";

/// The protocols this generator speaks (all over h2c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    RestH2,
    Grpc,
    GrpcWeb,
    ConnectJson,
    ConnectProto,
}

impl Protocol {
    fn parse(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "rest-h2" => Self::RestH2,
            "grpc" => Self::Grpc,
            "grpc-web" => Self::GrpcWeb,
            "connect-json" => Self::ConnectJson,
            "connect-proto" => Self::ConnectProto,
            other => bail!(
                "unknown protocol {other:?}: rest-h2, grpc, grpc-web, connect-json, connect-proto"
            ),
        })
    }
}

/// A gRPC frame: flag 0, big-endian length, message.
fn frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out.into()
}

/// One call: DeactivateUser (`deactivate`) or ReactivateUser of `user` in `protocol`.
fn request(
    protocol: Protocol,
    authority: &str,
    token: &HeaderValue,
    user: &str,
    deactivate: bool,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let method = if deactivate {
        "DeactivateUser"
    } else {
        "ReactivateUser"
    };
    let proto = || {
        ReactivateUserRequest {
            id: user.to_owned(),
        }
        .encode_to_vec()
    };
    let (path, content_type, body): (String, &str, Bytes) = match protocol {
        Protocol::RestH2 => {
            let verb = if deactivate {
                "_deactivate"
            } else {
                "_reactivate"
            };
            (
                format!("/management/v1/users/{user}/{verb}"),
                "application/json",
                Bytes::from_static(b"{}"),
            )
        }
        Protocol::Grpc => (
            format!("{SERVICE}/{method}"),
            "application/grpc",
            frame(&proto()),
        ),
        Protocol::GrpcWeb => (
            format!("{SERVICE}/{method}"),
            "application/grpc-web+proto",
            frame(&proto()),
        ),
        Protocol::ConnectJson => (
            format!("{SERVICE}/{method}"),
            "application/json",
            serde_json::to_vec(&serde_json::json!({ "id": user }))?.into(),
        ),
        Protocol::ConnectProto => (
            format!("{SERVICE}/{method}"),
            "application/proto",
            proto().into(),
        ),
    };
    let mut builder = Request::post(format!("http://{authority}{path}"))
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::AUTHORIZATION, token.clone());
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

/// Sends one call and reads the whole answer; `Ok(true)` when it succeeded in its protocol.
async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    protocol: Protocol,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<bool> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let trailers_only = response.headers().get("grpc-status").cloned();
    let collected = response.into_body().collect().await?;
    if status != StatusCode::OK {
        return Ok(false);
    }
    Ok(match protocol {
        Protocol::Grpc => {
            let trailer = collected
                .trailers()
                .and_then(|t| t.get("grpc-status"))
                .cloned();
            trailer.or(trailers_only).is_some_and(|v| v == "0")
        }
        Protocol::GrpcWeb => {
            // The last frame is the trailer frame (flag 0x80) with `grpc-status:0`.
            let body = collected.to_bytes();
            let needle = b"grpc-status:0\r\n";
            body.windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle))
        }
        _ => true,
    })
}

async fn connect(addr: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(connection);
    Ok(sender)
}

fn token(path: &PathBuf) -> anyhow::Result<HeaderValue> {
    let secret =
        std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    Ok(HeaderValue::from_str(&format!("Bearer {}", secret.trim()))?)
}

/// `utime + stime` of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unreadable /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let get = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i - 3)
            .context("short /proc/<pid>/stat")?
            .parse()?)
    };
    Ok(get(14)? + get(15)?)
}

struct Args(BTreeMap<String, String>);

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let mut map = BTreeMap::new();
        let mut args = args.peekable();
        while let Some(key) = args.next() {
            let key = key
                .strip_prefix("--")
                .with_context(|| format!("expected --flag, got {key:?}"))?
                .to_owned();
            let value = args
                .next()
                .with_context(|| format!("--{key} needs a value"))?;
            map.insert(key, value);
        }
        Ok(Self(map))
    }

    fn get(&self, key: &str) -> anyhow::Result<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("missing --{key}"))
    }

    fn or(&self, key: &str, default: &str) -> String {
        self.0
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    fn num<T: std::str::FromStr>(&self, key: &str, default: &str) -> anyhow::Result<T>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        self.or(key, default)
            .parse()
            .with_context(|| format!("--{key}"))
    }
}

/// `setup --addr A --token-file F --users N --out FILE`.
async fn setup(args: &Args) -> anyhow::Result<()> {
    let addr = args.get("addr")?.to_owned();
    let token = token(&PathBuf::from(args.get("token-file")?))?;
    let users: usize = args.num("users", "256")?;
    let prefix = args.or("prefix", "bench");
    let sender = connect(&addr).await?;
    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..32 {
        let (mut sender, token, addr, prefix, next) = (
            sender.clone(),
            token.clone(),
            addr.clone(),
            prefix.clone(),
            Arc::clone(&next),
        );
        tasks.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= users {
                    return anyhow::Ok(ids);
                }
                let message = AddMachineUserRequest {
                    user_name: format!("{prefix}-{i}"),
                    name: format!("Bench {i}"),
                    ..AddMachineUserRequest::default()
                };
                let request = Request::post(format!("http://{addr}{SERVICE}/AddMachineUser"))
                    .header(http::header::CONTENT_TYPE, "application/grpc")
                    .header(http::header::TE, "trailers")
                    .header(http::header::AUTHORIZATION, token.clone())
                    .body(Full::new(frame(&message.encode_to_vec())))?;
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let body = response.into_body().collect().await?;
                let status = body.trailers().and_then(|t| t.get("grpc-status")).cloned();
                let bytes = body.to_bytes();
                if status.as_ref().is_none_or(|s| s != "0") || bytes.len() < 5 {
                    bail!("AddMachineUser {i} failed: grpc-status {status:?}");
                }
                ids.push((i, AddMachineUserResponse::decode(&bytes[5..])?.user_id));
            }
        });
    }
    let mut ids = Vec::with_capacity(users);
    while let Some(done) = tasks.join_next().await {
        ids.extend(done??);
    }
    ids.sort();
    let text: String = ids.into_iter().map(|(_, id)| id + "\n").collect();
    std::fs::write(args.get("out")?, text)?;
    Ok(())
}

/// `run --addr A --protocol P --token-file F --ids FILE [--connections 16] [--streams 8]
/// [--warmup 1] [--duration 5] [--server-pid PID[,PID]] [--clk-tck 100] [--label L]`.
async fn run(args: &Args) -> anyhow::Result<()> {
    let addr = args.get("addr")?.to_owned();
    let protocol = Protocol::parse(args.get("protocol")?)?;
    let token = token(&PathBuf::from(args.get("token-file")?))?;
    let ids: Vec<String> = std::fs::read_to_string(args.get("ids")?)?
        .lines()
        .map(str::to_owned)
        .collect();
    let connections: usize = args.num("connections", "16")?;
    let streams: usize = args.num("streams", "8")?;
    let warmup = Duration::from_secs_f64(args.num("warmup", "1")?);
    let duration = Duration::from_secs_f64(args.num("duration", "5")?);
    // `--server-pid A,B`: the CPU of every process serving the calls (a gateway and its upstream).
    let pids: Vec<u32> = match args.0.get("server-pid") {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let pid = (!pids.is_empty()).then_some(&pids);
    let clk_tck: f64 = args.num("clk-tck", "100")?;
    if ids.len() < connections * streams {
        bail!(
            "{} user ids for {} call slots: run setup with more users",
            ids.len(),
            connections * streams
        );
    }

    let start = Instant::now();
    let measure_from = start + warmup;
    let measure_until = measure_from + duration;
    let mut workers = tokio::task::JoinSet::new();
    for c in 0..connections {
        let sender = connect(&addr).await?;
        for s in 0..streams {
            let user = ids[c * streams + s].clone();
            let (mut sender, token, addr) = (sender.clone(), token.clone(), addr.clone());
            workers.spawn(async move {
                let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
                let (mut ok, mut errors) = (0u64, 0u64);
                let mut deactivate = true;
                loop {
                    let sent = Instant::now();
                    if sent >= measure_until {
                        break;
                    }
                    let request = request(protocol, &addr, &token, &user, deactivate)?;
                    deactivate = !deactivate;
                    let success = call(&mut sender, protocol, request).await?;
                    let done = Instant::now();
                    if sent >= measure_from && done <= measure_until {
                        if success {
                            ok += 1;
                            let micros = done.duration_since(sent).as_micros();
                            latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                        } else {
                            errors += 1;
                        }
                    }
                }
                anyhow::Ok((ok, errors, latencies))
            });
        }
    }
    // The server's CPU time over exactly the measured window.
    tokio::time::sleep_until(measure_from.into()).await;
    let ticks = |pids: &Vec<u32>| {
        pids.iter()
            .map(|&p| cpu_ticks(p))
            .sum::<anyhow::Result<u64>>()
    };
    let cpu_before = pid.map(ticks).transpose()?;
    tokio::time::sleep_until(measure_until.into()).await;
    let cpu_after = pid.map(ticks).transpose()?;

    let (mut ok, mut errors, mut latencies) = (0u64, 0u64, Vec::new());
    while let Some(done) = workers.join_next().await {
        let (o, e, l) = done??;
        ok += o;
        errors += e;
        latencies.extend(l);
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> u32 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    let cpu_us = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if ok > 0 => (b - a) as f64 / clk_tck * 1e6 / ok as f64,
        _ => 0.0,
    };
    let line = serde_json::json!({
        "rps": ok as f64 / duration.as_secs_f64(),
        "requests": ok,
        "errors": errors,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "cpu_us": (cpu_us * 10.0).round() / 10.0,
    });
    println!("{line}");
    Ok(())
}

/// One measured run, as `bench/run` records it.
#[derive(Debug, Clone)]
struct Sample {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
    rss_kib: f64,
    errors: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// `report --results FILE`: medians per target, and each target's ratio to its reference as
/// the median of per-round ratios (runs of one round ran back to back, under the same load).
fn report(args: &Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(args.get("results")?)?;
    // target → round → sample
    let mut runs: BTreeMap<String, BTreeMap<u64, Sample>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let f = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(f64::NAN)
        };
        let target = v.get("target").and_then(|t| t.as_str()).unwrap_or("?");
        let round = v
            .get("round")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        runs.entry(target.to_owned()).or_default().insert(
            round,
            Sample {
                rps: f("rps"),
                p50_us: f("p50_us"),
                p99_us: f("p99_us"),
                cpu_us: f("cpu_us"),
                rss_kib: f("rss_kib"),
                errors: f("errors"),
            },
        );
    }
    // (target, what it is, reference, target ratio)
    const ROWS: &[(&str, &str, &str, &str)] = &[
        (
            "hyper-h1",
            "raw hyper, REST HTTP/1.1 (wrk, 16 conns)",
            "",
            "ceiling",
        ),
        (
            "hyper-h2",
            "raw hyper, REST HTTP/2 (16 conns x 8 streams)",
            "",
            "ceiling",
        ),
        (
            "tonic-grpc",
            "raw tonic, gRPC (16 conns x 8 streams)",
            "",
            "ceiling",
        ),
        (
            "sy-rest-h1",
            "Switchyard REST HTTP/1.1 (wrk, 16 conns)",
            "hyper-h1",
            ">= 0.5",
        ),
        (
            "sy-rest-h1-sqlite",
            "Switchyard REST HTTP/1.1, SQLite store (wrk, 16 conns)",
            "sy-rest-h1",
            ">= 0.6, CPU <= 1.5",
        ),
        ("sy-rest-h2", "Switchyard REST HTTP/2", "hyper-h2", ">= 0.5"),
        ("sy-grpc", "Switchyard gRPC", "tonic-grpc", ">= 0.8"),
        (
            "sy-grpc-web",
            "Switchyard gRPC-Web (h2)",
            "sy-grpc",
            ">= 0.95",
        ),
        (
            "sy-connect-json",
            "Switchyard Connect JSON (h2)",
            "sy-rest-h2",
            ">= 0.9",
        ),
        (
            "sy-connect-proto",
            "Switchyard Connect proto (h2)",
            "sy-grpc",
            "—",
        ),
        (
            "gw-grpc",
            "switchyard gateway + raw tonic, gRPC passthrough (CPU: both)",
            "tonic-grpc",
            ">= 0.5",
        ),
        (
            "gw-rest-h1",
            "switchyard gateway + raw tonic, REST HTTP/1.1 (CPU: both)",
            "hyper-h1",
            ">= 0.2",
        ),
    ];
    println!(
        "| target | server, protocol | requests/s | p50 µs | p99 µs | CPU µs/req | peak RSS MiB | errors | ratio (to) | target | p99 ratio | CPU ratio |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (target, what, reference, goal) in ROWS {
        let Some(rounds) = runs.get(*target) else {
            continue;
        };
        let all = |f: fn(&Sample) -> f64| median(rounds.values().map(f).collect());
        let ratio = |f: fn(&Sample) -> f64| -> Option<f64> {
            let refs = runs.get(*reference)?;
            let ratios: Vec<f64> = rounds
                .iter()
                .filter_map(|(r, s)| refs.get(r).map(|base| f(s) / f(base)))
                .collect();
            (!ratios.is_empty()).then(|| median(ratios))
        };
        let rps_ratio =
            ratio(|s| s.rps).map_or("1.00".to_owned(), |r| format!("{r:.2} ({reference})"));
        let p99_ratio = ratio(|s| s.p99_us).map_or("—".to_owned(), |r| format!("{r:.2}"));
        let cpu_ratio = ratio(|s| s.cpu_us).map_or("—".to_owned(), |r| format!("{r:.2}"));
        let max_rss = rounds.values().map(|s| s.rss_kib).fold(0.0, f64::max);
        let errors: f64 = rounds.values().map(|s| s.errors).sum();
        println!(
            "| {target} | {what} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {errors:.0} | {rps_ratio} | {goal} | {p99_ratio} | {cpu_ratio} |",
            all(|s| s.rps),
            all(|s| s.p50_us),
            all(|s| s.p99_us),
            all(|s| s.cpu_us),
            max_rss / 1024.0,
        );
    }
    let rounds = runs.values().map(BTreeMap::len).max().unwrap_or(0);
    println!(
        "\nMedians of {rounds} interleaved rounds; ratios are medians of per-round ratios; peak RSS is the largest VmHWM of any round."
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    let args = Args::parse(argv)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match command.as_str() {
        "setup" => runtime.block_on(setup(&args)),
        "run" => runtime.block_on(run(&args)),
        "report" => report(&args),
        "soak" => runtime.block_on(soak::soak(&args)),
        _ => bail!(
            "usage: loadgen setup|run|report|soak --flag value …  (see bench/run, bench/soak)"
        ),
    }
}
