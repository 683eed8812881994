//! [`Metrics`]: the Prometheus registry of the server and the gateway — calls by protocol,
//! service, method and code, latency, in-flight calls, open connections — plus the store's
//! hook ([`Metrics::observe_store_commit`]).
//!
//! Counting is done by `crate::ops` (calls) and `crate::server` (connections); `crate::ops`
//! serves `GET /metrics` with [`Metrics::render_for`], which picks the exposition format from
//! the scraper's `Accept` header: Prometheus text 0.0.4 by default (what Prometheus' classic
//! parser and most tools read), OpenMetrics 1.0 when asked for. Both are prometheus-client's
//! encoders over the same registry, which also holds the `process_*` collector
//! ([`process`]) and `switchyard_build_info`.

mod process;

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http::HeaderValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tonic::Code;

/// The `Content-Type` of the OpenMetrics text format, as Prometheus asks for it.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of `switchyard_build_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    /// The crate version of this build.
    version: &'static str,
}

/// Labels of a finished call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    /// `rest`, `grpc`, `grpc-web`, `connect` (or `preflight`).
    pub(crate) protocol: &'static str,
    /// The gRPC service's full name; empty when no method was reached (e.g. REST 404).
    pub(crate) service: String,
    /// The gRPC method's name; empty when none was reached.
    pub(crate) method: String,
    /// The gRPC code's name (`OK`, `NOT_FOUND`, …).
    pub(crate) code: &'static str,
}

/// Labels of a latency observation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MethodLabels {
    pub(crate) protocol: &'static str,
    pub(crate) service: String,
    pub(crate) method: String,
}

/// Labels of the in-flight gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProtocolLabels {
    pub(crate) protocol: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric Switchyard exports, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<CallLabels, Counter>,
    pub(crate) duration: HistogramFamily<MethodLabels>,
    pub(crate) in_flight: Family<ProtocolLabels, Gauge>,
    pub(crate) connections_open: Gauge,
    pub(crate) connections: Counter,
    store_commit: Histogram,
    store_batch: Histogram,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry: Switchyard's metrics under the `switchyard_` prefix, the `process_*`
    /// collector and `switchyard_build_info`.
    pub fn new() -> Self {
        let mut root = Registry::default();
        root.sub_registry_with_prefix("process")
            .register_collector(Box::new(process::ProcessCollector::new()));
        let registry = root.sub_registry_with_prefix("switchyard");
        registry.register(
            "build",
            "The running build (value 1; the version in the labels)",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let requests = Family::<CallLabels, Counter>::default();
        registry.register(
            "requests",
            "Finished calls by protocol, gRPC service, method and gRPC code",
            requests.clone(),
        );
        let duration = HistogramFamily::<MethodLabels>::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Call latency from request headers to the end of the response",
            duration.clone(),
        );
        let in_flight = Family::<ProtocolLabels, Gauge>::default();
        registry.register(
            "requests_in_flight",
            "Calls started and not yet finished",
            in_flight.clone(),
        );
        let connections_open = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        registry.register(
            "connections_open",
            "Open client connections",
            connections_open.clone(),
        );
        let connections = Counter::<u64, AtomicU64>::default();
        registry.register(
            "connections",
            "Client connections accepted",
            connections.clone(),
        );
        let store_commit = latency_histogram();
        registry.register(
            "store_commit_duration_seconds",
            "Time of one durable commit of the event store",
            store_commit.clone(),
        );
        // 1 to 512 commands per durable transaction.
        let store_batch = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "store_commit_batch_size",
            "Commands per durable transaction (group commit)",
            store_batch.clone(),
        );
        Self {
            registry: root,
            requests,
            duration,
            in_flight,
            connections_open,
            connections,
            store_commit,
            store_batch,
        }
    }

    /// The hook for the event store: one durable commit of `batch` commands took `took`.
    pub fn observe_store_commit(&self, took: Duration, batch: usize) {
        self.store_commit.observe(took.as_secs_f64());
        // Batch sizes are small: the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        self.store_batch.observe(batch as f64);
    }

    /// Every metric in the format the scraper's `Accept` header asks for, and that format's
    /// `Content-Type`: OpenMetrics 1.0 when `application/openmetrics-text` is acceptable and
    /// preferred at least as much as `text/plain`, else Prometheus text 0.0.4.
    pub fn render_for(&self, accept: Option<&HeaderValue>) -> (&'static str, String) {
        if accept
            .and_then(|v| v.to_str().ok())
            .is_some_and(prefers_openmetrics)
        {
            (OPENMETRICS_CONTENT_TYPE, self.render_openmetrics())
        } else {
            (
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                self.render(),
            )
        }
    }

    /// The Prometheus text exposition (0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %err, "cannot render metrics");
        }
        out
    }

    /// The OpenMetrics 1.0 text exposition of every metric, `# EOF` included.
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %err, "cannot render metrics");
        }
        out
    }
}

/// Every value of the `protocol` label ([`crate::Protocol::name`]).
const PROTOCOL_LABELS: [&str; 5] = ["grpc", "grpc-web", "connect", "rest", "preflight"];

/// gRPC codes, OK (0) to UNAUTHENTICATED (16).
const CODES: usize = 17;

/// The metric handles of one method, taken from the families on a call's first use of each
/// protocol and code and kept: a call is then counted without building a label set (two
/// `String`s) or hashing one three times — about 2,000 instructions of every call under
/// callgrind before. The families keep the same series, so `/metrics` is unchanged.
#[derive(Debug, Default)]
pub(crate) struct MethodMetrics {
    by_protocol: [OnceLock<CallHandles>; PROTOCOL_LABELS.len()],
}

#[derive(Debug)]
struct CallHandles {
    duration: Histogram,
    requests: [OnceLock<Counter>; CODES],
}

impl Metrics {
    /// Counts one finished call of `service`/`method` (both empty when no method was reached)
    /// and its latency; `cached` holds the method's handles when the call reached a known one.
    pub(crate) fn record_call(
        &self,
        cached: Option<&MethodMetrics>,
        protocol: &'static str,
        (service, method): (&str, &str),
        code: Code,
        seconds: f64,
    ) {
        let labels = || MethodLabels {
            protocol,
            service: service.to_owned(),
            method: method.to_owned(),
        };
        let counter_for = |labels: MethodLabels| {
            self.requests
                .get_or_create(&CallLabels {
                    protocol: labels.protocol,
                    service: labels.service,
                    method: labels.method,
                    code: switchyard_transcode::status::grpc_code_name(code),
                })
                .clone()
        };
        let slot = PROTOCOL_LABELS.iter().position(|p| *p == protocol);
        let (Some(cached), Some(slot)) = (cached, slot) else {
            self.duration.get_or_create(&labels()).observe(seconds);
            counter_for(labels()).inc();
            return;
        };
        let Some(handles) = cached.by_protocol.get(slot) else {
            return;
        };
        let handles = handles.get_or_init(|| CallHandles {
            duration: self.duration.get_or_create(&labels()).clone(),
            requests: Default::default(),
        });
        handles.duration.observe(seconds);
        // Every `Code` is 0..=16.
        let index = usize::try_from(code as i32).unwrap_or(CODES);
        match handles.requests.get(index) {
            Some(counter) => counter.get_or_init(|| counter_for(labels())).inc(),
            None => counter_for(labels()).inc(),
        };
    }
}

/// Whether an `Accept` header prefers OpenMetrics over the classic text format: the highest
/// `q` of an `application/openmetrics-text` range against that of `text/plain`, `text/*` or
/// `*/*` (a tie goes to OpenMetrics, which was named). Hand-written because the only other
/// choice is a web framework's negotiation: this is the one header and two formats.
fn prefers_openmetrics(accept: &str) -> bool {
    let (mut openmetrics, mut text) = (0.0_f64, 0.0_f64);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .find_map(|q| q.parse::<f64>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    openmetrics > 0.0 && openmetrics >= text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_every_family() {
        let metrics = Metrics::new();
        metrics
            .requests
            .get_or_create(&CallLabels {
                protocol: "rest",
                service: "a.B".into(),
                method: "C".into(),
                code: "OK",
            })
            .inc();
        metrics.observe_store_commit(Duration::from_millis(3), 4);
        let text = metrics.render();
        for want in [
            "switchyard_requests_total{protocol=\"rest\",service=\"a.B\",method=\"C\",code=\"OK\"} 1",
            "switchyard_connections_open",
            "switchyard_connections_total",
            "switchyard_store_commit_duration_seconds_count 1",
            "switchyard_store_commit_batch_size_sum 4.0",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }

    /// Metrics with one call counted (an empty family writes no `# TYPE` line).
    fn one_call() -> Metrics {
        let metrics = Metrics::new();
        metrics
            .requests
            .get_or_create(&CallLabels {
                protocol: "grpc",
                service: "a.B".into(),
                method: "C".into(),
                code: "OK",
            })
            .inc();
        metrics
    }

    #[test]
    fn classic_text_types_counters_on_their_total_samples() {
        let text = one_call().render();
        assert!(
            text.contains("# TYPE switchyard_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE switchyard_connections_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE switchyard_build_info gauge\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "switchyard_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[cfg(target_os = "linux")]
    /// Calls counted through a method's cached handles land in the same series as calls
    /// counted by label, per protocol and per code.
    #[test]
    fn cached_handles_count_into_the_labelled_series() {
        let metrics = Metrics::new();
        let cached = MethodMetrics::default();
        let names = ("a.v1.S", "M");
        for _ in 0..3 {
            metrics.record_call(Some(&cached), "grpc", names, Code::Ok, 0.001);
        }
        metrics.record_call(None, "grpc", names, Code::Ok, 0.001);
        metrics.record_call(Some(&cached), "grpc", names, Code::NotFound, 0.001);
        metrics.record_call(Some(&cached), "rest", names, Code::Ok, 0.001);
        let count = |protocol: &'static str, code: &'static str| {
            metrics
                .requests
                .get_or_create(&CallLabels {
                    protocol,
                    service: names.0.to_owned(),
                    method: names.1.to_owned(),
                    code,
                })
                .get()
        };
        assert_eq!(count("grpc", "OK"), 4);
        assert_eq!(count("grpc", "NOT_FOUND"), 1);
        assert_eq!(count("rest", "OK"), 1);
        let text = metrics.render();
        let observed = text
            .lines()
            .find(|l| {
                l.starts_with("switchyard_request_duration_seconds_count")
                    && l.contains("protocol=\"grpc\"")
            })
            .expect("grpc latency series");
        assert!(observed.ends_with(" 5"), "{observed}");
    }

    #[test]
    fn process_metrics_come_from_proc() {
        let text = Metrics::new().render();
        for want in [
            "# TYPE process_cpu_seconds_total counter\n",
            "# TYPE process_resident_memory_bytes gauge\n",
            "# TYPE process_open_fds gauge\n",
            "# TYPE process_max_fds gauge\n",
            "# TYPE process_start_time_seconds gauge\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no {name} sample in\n{text}"))
        };
        assert!(value("process_resident_memory_bytes") > 1_000_000.0);
        assert!(value("process_open_fds") >= 3.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "start {start}, now {now}"
        );
    }

    #[test]
    fn openmetrics_when_asked() {
        let metrics = one_call();
        let om = |accept: &'static str| {
            metrics
                .render_for(Some(&HeaderValue::from_static(accept)))
                .0
                .starts_with("application/openmetrics-text")
        };
        // Prometheus 3's default scrape header.
        assert!(om(
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        ));
        assert!(om("application/openmetrics-text"));
        assert!(!om(
            "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"
        ));
        assert!(!om("*/*"));
        assert!(!om("application/openmetrics-text;q=0"));
        let (content_type, body) = metrics.render_for(None);
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(!body.contains("# EOF"));
        let (_, body) = metrics.render_for(Some(&HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0",
        )));
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(
            body.contains("# TYPE switchyard_requests counter\n"),
            "{body}"
        );
        assert!(body.contains("# TYPE switchyard_build info\n"), "{body}");
    }
}
