//! [`Metrics`]: the Prometheus registry of the server and the gateway — calls by protocol,
//! service, method and code, latency, in-flight calls, open connections — plus the store's
//! hook ([`Metrics::observe_store_commit`]).
//!
//! Counting is done by `crate::ops` (calls) and `crate::server` (connections); rendering the
//! text exposition format at `GET /metrics` is `crate::ops`'s too.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
    /// A fresh registry with every metric registered under the `switchyard_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("switchyard");
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
            registry,
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

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %err, "cannot render metrics");
        }
        out
    }
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
}
