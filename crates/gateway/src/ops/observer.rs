//! [`Observer`]: the one place that records a call — one access line at target
//! `switchyard::access`, the request counter and latency histogram, the in-flight gauge.
//!
//! It is a guard. The gateway starts one when it has classified a request, tells it the method
//! when the protocol module has decoded the head, and finishes it with the call's code and
//! HTTP status. A streamed answer carries it in its body and finishes it at the last item. If
//! the client goes away first (the request future or the response body is dropped), `Drop`
//! records the call as CANCELLED (HTTP 499 in the log), so every call leaves the in-flight
//! gauge and is counted and logged exactly once.
//!
//! Never logged: headers, bodies, query strings (tokens travel in all three).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, Request, StatusCode};
use prometheus_client::metrics::gauge::Gauge;
use tonic::Code;

use crate::detect::Protocol;
use crate::metrics::{MethodMetrics, Metrics, ProtocolLabels};
use crate::ops::REQUEST_ID;
use crate::server::PeerAddr;

/// nginx's "client closed request": what the log says of a call whose client went away.
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Records one call when it is finished or dropped.
pub(crate) struct Observer {
    metrics: Option<Arc<Metrics>>,
    protocol: &'static str,
    http_method: Method,
    /// A clone of the request URI shares its buffer: no copy of the path per request.
    uri: http::Uri,
    peer: Option<SocketAddr>,
    request_id: Option<HeaderValue>,
    started: Instant,
    /// The service and method names once the protocol module has found the method.
    method: Option<(Arc<str>, usize)>,
    /// That method's metric handles, when the descriptors know it.
    method_metrics: Option<Arc<MethodMetrics>>,
    in_flight: Option<Gauge>,
    /// The outcome known so far: for a stream, its HTTP status until the last item's code.
    code: Option<Code>,
    http_status: Option<StatusCode>,
    finished: bool,
}

impl Observer {
    /// Starts observing `request`, classified as `protocol`: the call is in flight from now.
    pub(crate) fn start<B>(
        metrics: Option<&Arc<Metrics>>,
        protocol: Protocol,
        request: &Request<B>,
    ) -> Self {
        let protocol = protocol.name();
        let in_flight = metrics.map(|m| {
            let gauge = m
                .in_flight
                .get_or_create(&ProtocolLabels { protocol })
                .clone();
            gauge.inc();
            gauge
        });
        Self {
            metrics: metrics.cloned(),
            protocol,
            http_method: request.method().clone(),
            uri: request.uri().clone(),
            peer: request.extensions().get::<PeerAddr>().map(|p| p.0),
            request_id: request.headers().get(REQUEST_ID).cloned(),
            started: Instant::now(),
            method: None,
            method_metrics: None,
            in_flight,
            code: None,
            http_status: None,
            finished: false,
        }
    }

    /// The method the call reached, by its gRPC path `/pkg.Service/Method`, and its metric
    /// handles when the descriptors know it.
    pub(crate) fn set_method(&mut self, path: &Arc<str>, metrics: Option<&Arc<MethodMetrics>>) {
        if let Some(slash) = path.get(1..).and_then(|p| p.find('/')) {
            self.method = Some((Arc::clone(path), slash + 1));
            self.method_metrics = metrics.cloned();
        }
    }

    /// Notes the HTTP status of a response whose code comes later (a stream).
    pub(crate) fn set_http_status(&mut self, status: StatusCode) {
        self.http_status = Some(status);
    }

    /// Notes the call's code (a stream's last item).
    pub(crate) fn set_code(&mut self, code: Code) {
        self.code = Some(code);
    }

    /// Records the call as answered with `code` and `http_status`.
    pub(crate) fn finish(mut self, code: Code, http_status: StatusCode) {
        self.code = Some(code);
        self.http_status = Some(http_status);
        self.record();
    }

    fn record(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let (code, http_status) = match (self.code, self.http_status) {
            (Some(code), Some(status)) => (code, status.as_u16()),
            // Gone before the last item of a stream, or before any answer at all.
            (_, status) => (
                Code::Cancelled,
                status.map_or(CLIENT_CLOSED_REQUEST, |s| s.as_u16()),
            ),
        };
        let (service, method) = match &self.method {
            Some((path, slash)) => (
                path.get(1..*slash).unwrap_or_default(),
                path.get(slash + 1..).unwrap_or_default(),
            ),
            None => ("", ""),
        };
        let code_name = switchyard_transcode::status::grpc_code_name(code);
        let took = self.started.elapsed();
        if let Some(gauge) = &self.in_flight {
            gauge.dec();
        }
        if let Some(metrics) = &self.metrics {
            metrics.record_call(
                self.method_metrics.as_deref(),
                self.protocol,
                (service, method),
                code,
                took.as_secs_f64(),
            );
        }
        tracing::info!(
            target: "switchyard::access",
            protocol = self.protocol,
            service,
            method,
            code = code_name,
            http_status,
            http_method = %self.http_method,
            path = %self.uri.path(),
            duration_ms = took.as_secs_f64() * 1000.0,
            peer = %self.peer.map(|p| p.to_string()).unwrap_or_default(),
            request_id = %self
                .request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
            "access"
        );
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.record();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::CallLabels;

    fn request() -> Request<()> {
        let mut request = Request::new(());
        *request.uri_mut() = http::Uri::from_static("/a.B/C");
        request
    }

    fn count(metrics: &Metrics, code: &'static str) -> u64 {
        metrics
            .requests
            .get_or_create(&CallLabels {
                protocol: "grpc",
                service: "a.B".into(),
                method: "C".into(),
                code,
            })
            .get()
    }

    #[test]
    fn finished_call_is_counted_once_and_leaves_the_gauge() {
        let metrics = Arc::new(Metrics::new());
        let mut observer = Observer::start(Some(&metrics), Protocol::Grpc, &request());
        let gauge = metrics
            .in_flight
            .get_or_create(&ProtocolLabels { protocol: "grpc" })
            .get();
        assert_eq!(gauge, 1);
        observer.set_method(&Arc::from("/a.B/C"), None);
        observer.finish(Code::NotFound, StatusCode::OK);
        assert_eq!(count(&metrics, "NOT_FOUND"), 1);
        assert_eq!(
            metrics
                .in_flight
                .get_or_create(&ProtocolLabels { protocol: "grpc" })
                .get(),
            0
        );
    }

    #[test]
    fn dropped_call_is_cancelled() {
        let metrics = Arc::new(Metrics::new());
        let mut observer = Observer::start(Some(&metrics), Protocol::Grpc, &request());
        observer.set_method(&Arc::from("/a.B/C"), None);
        drop(observer);
        assert_eq!(count(&metrics, "CANCELLED"), 1);
        assert_eq!(
            metrics
                .in_flight
                .get_or_create(&ProtocolLabels { protocol: "grpc" })
                .get(),
            0
        );
    }

    #[test]
    fn stream_code_comes_from_its_end() {
        let metrics = Arc::new(Metrics::new());
        let mut observer = Observer::start(Some(&metrics), Protocol::Grpc, &request());
        observer.set_method(&Arc::from("/a.B/C"), None);
        observer.set_http_status(StatusCode::OK);
        observer.set_code(Code::Internal);
        drop(observer);
        assert_eq!(count(&metrics, "INTERNAL"), 1);
    }
}
