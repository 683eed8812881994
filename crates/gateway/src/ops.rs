//! The operations layer in front of the gateway: `/healthz`, `/readyz`, `/metrics`, request
//! ids, one access line and one metrics observation per call.
//!
//! Two tower layers cooperate:
//! - [`OpsLayer`] goes outside the [`crate::GatewayService`]. It answers the ops endpoints,
//!   accepts or generates `x-request-id` (forwarded as metadata, echoed in the response), and
//!   when the response body ends (or is dropped) logs the access line at target
//!   `switchyard::access` and counts the call.
//! - [`CallObserverLayer`] goes around the inner gRPC service. Whatever protocol the caller
//!   spoke, the gateway ends in one gRPC call there: the observer notes its path and its
//!   `grpc-status` in the per-request slot the outer layer opened (a task-local, since REST and
//!   Connect build a new inner request). Without an inner call (a REST 404, a 413 before
//!   dispatch) the code is inferred from the HTTP status.
//!
//! Never logged: headers, bodies, query strings (tokens travel in all three).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};

use crate::BoxError;
use crate::metrics::{CallLabels, MethodLabels, Metrics, ProtocolLabels};
use crate::server::PeerAddr;

/// The request id header, accepted from the client or generated.
pub const REQUEST_ID: &str = "x-request-id";

/// How long `/readyz` waits for the readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Something `/readyz` asks: `Err(reason)` when not ready (e.g. the store is unreachable).
pub type ReadinessProbe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Liveness and readiness: draining flag and the readiness probe.
pub struct Health {
    draining: AtomicBool,
    probe: Option<ReadinessProbe>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("draining", &self.is_draining())
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Readiness answered by `probe` (and by the draining flag).
    pub fn new(probe: Option<ReadinessProbe>) -> Self {
        Self {
            draining: AtomicBool::new(false),
            probe,
        }
    }

    /// Marks the server as draining: `/readyz` fails from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// `Ok` when ready; otherwise why not.
    ///
    /// # Errors
    ///
    /// `draining`, or the probe's reason (or its timeout).
    pub async fn ready(&self) -> Result<(), String> {
        if self.is_draining() {
            return Err("draining: shutting down".into());
        }
        if let Some(probe) = &self.probe {
            match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(result) => result?,
                Err(_) => return Err(format!("probe timed out after {PROBE_TIMEOUT:?}")),
            }
        }
        Ok(())
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics`, or `None` for other paths.
pub(crate) async fn ops_endpoint(
    metrics: &Metrics,
    health: &Health,
    method: &Method,
    path: &str,
    accept: Option<&HeaderValue>,
) -> Option<Response<tonic::body::Body>> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return None;
    }
    let (status, content_type, body) = match path {
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" => match health.ready().await {
            Ok(()) => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
            Err(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {reason}\n"),
            ),
        },
        "/metrics" => {
            let (content_type, body) = metrics.render_for(accept);
            (StatusCode::OK, content_type, body)
        }
        _ => return None,
    };
    let mut response = Response::new(tonic::body::Body::new(http_body_util::Full::new(
        Bytes::from(body),
    )));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}

/// The [`tower::Layer`] of [`OpsService`].
#[derive(Debug, Clone)]
pub struct OpsLayer {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl OpsLayer {
    /// Counts into `metrics`; `/readyz` asks `health`.
    pub fn new(metrics: Arc<Metrics>, health: Arc<Health>) -> Self {
        Self { metrics, health }
    }
}

impl<S> Layer<S> for OpsLayer {
    type Service = OpsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OpsService {
            inner,
            metrics: Arc::clone(&self.metrics),
            health: Arc::clone(&self.health),
        }
    }
}

/// Ops endpoints, request ids, access log and metrics around a gateway service.
#[derive(Clone)]
pub struct OpsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl<S> fmt::Debug for OpsService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpsService").finish_non_exhaustive()
    }
}

/// The future of an [`OpsService`] call.
pub struct ResponseFuture<E> {
    inner: BoxFuture<'static, Result<Response<tonic::body::Body>, E>>,
}

impl<E> fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response<tonic::body::Body>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

tokio::task_local! {
    /// The slot of the call being served, filled by [`CallObserverService`].
    static CALL: Arc<CallSlot>;
}

/// What the inner gRPC call reported, for the outer layer.
#[derive(Debug, Default)]
struct CallSlot {
    inner: Mutex<SlotData>,
}

#[derive(Debug, Default)]
struct SlotData {
    /// `/pkg.Service/Method`.
    path: Option<String>,
    /// The `grpc-status` of the answer.
    code: Option<i32>,
}

impl CallSlot {
    fn set_path(&self, path: &str) {
        if let Ok(mut data) = self.inner.lock() {
            data.path = Some(path.to_owned());
        }
    }

    fn set_code(&self, code: i32) {
        if let Ok(mut data) = self.inner.lock() {
            data.code = Some(code);
        }
    }

    fn get(&self) -> (Option<String>, Option<i32>) {
        self.inner
            .lock()
            .map(|d| (d.path.clone(), d.code))
            .unwrap_or_default()
    }
}

/// The protocol of a request, as the metrics and the access log name it.
fn protocol_of<B>(request: &Request<B>) -> &'static str {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .filter(|v| v.to_str().is_ok())
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    // Case-insensitive prefix tests, without lower-casing a copy per request.
    let starts_with = |prefix: &[u8]| {
        content_type
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    if starts_with(b"application/grpc-web") {
        "grpc-web"
    } else if starts_with(b"application/grpc") {
        "grpc"
    } else if starts_with(b"application/connect+")
        || request.headers().contains_key("connect-protocol-version")
    {
        "connect"
    } else if request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        "preflight"
    } else {
        // REST or Connect without its version header: told apart once the call is known.
        "rest"
    }
}

/// A request id worth keeping: 1 to 128 visible ASCII characters.
fn valid_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// A new request id: 32 hex digits, unique per process and unpredictable across processes.
fn new_request_id() -> HeaderValue {
    use std::hash::{BuildHasher as _, Hasher as _};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let seed = SEED.get_or_init(std::collections::hash_map::RandomState::new);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut a = seed.build_hasher();
    a.write_u64(n);
    let mut b = seed.build_hasher();
    b.write_u64(!n);
    HeaderValue::from_str(&format!("{:016x}{:016x}", a.finish(), b.finish()))
        .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// The gRPC code's canonical name.
fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// The code of an answer that no gRPC call produced (a REST 404, a 413 before dispatch, a
/// preflight): the HTTP status read back through the usual mapping.
fn code_from_http(status: StatusCode) -> i32 {
    match status.as_u16() {
        200..=299 => 0,  // OK
        400 => 3,        // INVALID_ARGUMENT
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        404 => 5,        // NOT_FOUND
        405 | 501 => 12, // UNIMPLEMENTED
        409 => 10,       // ABORTED
        413 | 429 => 8,  // RESOURCE_EXHAUSTED
        499 => 1,        // CANCELLED
        503 => 14,       // UNAVAILABLE
        504 => 4,        // DEADLINE_EXCEEDED
        _ => 2,          // UNKNOWN
    }
}

impl<S, B, ReqB> Service<Request<ReqB>> for OpsService<S>
where
    S: Service<Request<ReqB>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
    ReqB: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let metrics = Arc::clone(&self.metrics);
        let health = Arc::clone(&self.health);
        // The clone that was made ready goes to this call (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let http_method = request.method().clone();
        // A clone of the URI shares its buffer: no copy of the path per request.
        let uri = request.uri().clone();
        let is_ops = matches!(uri.path(), "/healthz" | "/readyz" | "/metrics");
        ResponseFuture {
            inner: Box::pin(async move {
                if is_ops
                    && let Some(response) = ops_endpoint(
                        &metrics,
                        &health,
                        &http_method,
                        uri.path(),
                        request.headers().get(header::ACCEPT),
                    )
                    .await
                {
                    return Ok(response);
                }
                let started = Instant::now();
                let request_id = request
                    .headers()
                    .get(REQUEST_ID)
                    .filter(|v| valid_request_id(v))
                    .cloned()
                    .unwrap_or_else(new_request_id);
                request.headers_mut().insert(REQUEST_ID, request_id.clone());
                let mut protocol = protocol_of(&request);
                let peer = request.extensions().get::<PeerAddr>().map(|p| p.0);
                let in_flight = metrics
                    .in_flight
                    .get_or_create(&ProtocolLabels { protocol })
                    .clone();
                in_flight.inc();
                let slot = Arc::new(CallSlot::default());
                let result = CALL.scope(Arc::clone(&slot), inner.call(request)).await;
                let mut response = match result {
                    Ok(response) => response,
                    Err(err) => {
                        in_flight.dec();
                        return Err(err);
                    }
                };
                // A call the gateway served as Connect reached the method at the request's
                // own path; REST reaches it under a route of its own.
                if protocol == "rest" && slot.get().0.as_deref() == Some(uri.path()) {
                    protocol = "connect";
                }
                response
                    .headers_mut()
                    .insert(REQUEST_ID, request_id.clone());
                let finish = Finish {
                    metrics,
                    slot,
                    protocol,
                    http_status: response.status(),
                    http_method,
                    uri,
                    peer,
                    request_id,
                    started,
                    grpc_code_header: response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok()),
                    in_flight_protocol: in_flight,
                };
                Ok(response.map(|body| {
                    tonic::body::Body::new(ObservedBody {
                        inner: body,
                        finish: Some(finish),
                    })
                }))
            }),
        }
    }
}

/// Everything the access line and the metrics need once the response is over.
struct Finish {
    metrics: Arc<Metrics>,
    slot: Arc<CallSlot>,
    protocol: &'static str,
    http_status: StatusCode,
    http_method: Method,
    uri: http::Uri,
    peer: Option<SocketAddr>,
    request_id: HeaderValue,
    started: Instant,
    grpc_code_header: Option<i32>,
    in_flight_protocol: prometheus_client::metrics::gauge::Gauge,
}

impl Finish {
    fn run(self, trailer_code: Option<i32>) {
        self.in_flight_protocol.dec();
        let (grpc_path, inner_code) = self.slot.get();
        let code = trailer_code
            .or(self.grpc_code_header)
            .or(inner_code)
            .unwrap_or_else(|| code_from_http(self.http_status));
        let (service, method) = grpc_path
            .as_deref()
            .and_then(|p| p.trim_start_matches('/').split_once('/'))
            .unwrap_or_default();
        let code = code_name(code);
        let took = self.started.elapsed();
        // The method's labels, then the call's from them (one String each for the two names).
        let labels = MethodLabels {
            protocol: self.protocol,
            service: service.to_owned(),
            method: method.to_owned(),
        };
        self.metrics
            .duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        self.metrics
            .requests
            .get_or_create(&CallLabels {
                protocol: labels.protocol,
                service: labels.service,
                method: labels.method,
                code,
            })
            .inc();
        tracing::info!(
            target: "switchyard::access",
            protocol = self.protocol,
            service = %service,
            method = %method,
            code,
            http_status = self.http_status.as_u16(),
            http_method = %self.http_method,
            path = %self.uri.path(),
            duration_ms = took.as_secs_f64() * 1000.0,
            peer = %self.peer.map(|p| p.to_string()).unwrap_or_default(),
            request_id = %self.request_id.to_str().unwrap_or_default(),
            "access"
        );
    }
}

/// The response body, passed through; finishes the call's record when it ends or is dropped.
struct ObservedBody<B> {
    inner: B,
    finish: Option<Finish>,
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        if let Some(finish) = self.finish.take() {
            finish.run(None);
        }
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame
                    .trailers_ref()
                    .and_then(|t| t.get("grpc-status"))
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    && let Some(finish) = self.finish.take()
                {
                    finish.run(Some(code));
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(finish) = self.finish.take() {
                    finish.run(None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The [`tower::Layer`] of [`CallObserverService`]; put it around the inner gRPC service.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallObserverLayer;

impl<S> Layer<S> for CallObserverLayer {
    type Service = CallObserverService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallObserverService { inner }
    }
}

/// Notes each gRPC call's path and status for [`OpsService`]; otherwise passes through.
#[derive(Debug, Clone)]
pub struct CallObserverService<S> {
    inner: S,
}

impl<S, B, ReqB> Service<Request<ReqB>> for CallObserverService<S>
where
    S: Service<Request<ReqB>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let slot = CALL.try_with(Arc::clone).ok();
        if let Some(slot) = &slot {
            slot.set_path(request.uri().path());
        }
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            let Some(slot) = slot else {
                return Ok(response.map(tonic::body::Body::new));
            };
            if let Some(code) = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
            {
                slot.set_code(code);
            }
            Ok(response.map(|body| tonic::body::Body::new(TrailerWatch { inner: body, slot })))
        })
    }
}

/// Passes a gRPC response body through, noting the `grpc-status` of its trailers.
struct TrailerWatch<B> {
    inner: B,
    slot: Arc<CallSlot>,
}

impl<B> Body for TrailerWatch<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(code) = frame
                .trailers_ref()
                .and_then(|t| t.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        {
            self.slot.set_code(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane_and_generated_otherwise() {
        let cases: [(&[u8], bool); 5] = [
            (b"abc-123", true),
            (b"", false),
            (b"has space", false),
            (&[b'x'; 129], false),
            (&[b'x'; 128], true),
        ];
        for (value, want) in cases {
            let value = HeaderValue::from_bytes(value).expect("header");
            assert_eq!(valid_request_id(&value), want, "{value:?}");
        }
        assert_ne!(new_request_id(), new_request_id());
        assert!(valid_request_id(&new_request_id()));
    }

    #[test]
    fn protocols_are_named_from_the_request() {
        let cases = [
            ("POST", Some("application/grpc"), None, "grpc"),
            ("POST", Some("application/grpc+proto"), None, "grpc"),
            ("POST", Some("application/grpc-web-text"), None, "grpc-web"),
            ("POST", Some("application/json"), Some("1"), "connect"),
            ("POST", Some("application/connect+json"), None, "connect"),
            ("POST", Some("application/json"), None, "rest"),
            ("GET", None, None, "rest"),
        ];
        for (method, content_type, version, want) in cases {
            let mut builder = Request::builder().method(method).uri("/x");
            if let Some(ct) = content_type {
                builder = builder.header("content-type", ct);
            }
            if let Some(v) = version {
                builder = builder.header("connect-protocol-version", v);
            }
            let request = builder.body(()).expect("request");
            assert_eq!(protocol_of(&request), want, "{method} {content_type:?}");
        }
    }

    #[test]
    fn http_statuses_map_back_to_codes() {
        let cases = [
            (200, "OK"),
            (404, "NOT_FOUND"),
            (405, "UNIMPLEMENTED"),
            (413, "RESOURCE_EXHAUSTED"),
            (503, "UNAVAILABLE"),
            (500, "UNKNOWN"),
        ];
        for (status, want) in cases {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(code_name(code_from_http(status)), want);
        }
    }

    #[tokio::test]
    async fn readiness_fails_with_a_reason() {
        let health = Health::new(Some(Arc::new(|| {
            Box::pin(async { Err("store: unreachable".to_owned()) }) as BoxFuture<'static, _>
        })));
        assert_eq!(health.ready().await, Err("store: unreachable".to_owned()));
        let ok = Health::new(None);
        assert_eq!(ok.ready().await, Ok(()));
        ok.start_draining();
        assert!(ok.ready().await.expect_err("draining").contains("draining"));
    }
}
