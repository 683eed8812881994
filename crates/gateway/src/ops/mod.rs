//! The operations layer in front of the gateway: `/healthz`, `/readyz` and `/metrics`, and the
//! request id of every call.
//!
//! [`OpsLayer`] goes outside the [`crate::GatewayService`]. It answers the ops endpoints and
//! accepts or generates `x-request-id` (forwarded as metadata, echoed in the response).
//! Recording each call — the access line, the metrics, the in-flight gauge — is
//! [`observer`]'s, inside the gateway, where the protocol and the method are known.

pub(crate) mod observer;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use tower::{Layer, Service};

use crate::BoxError;
use crate::metrics::Metrics;

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
    /// `/metrics` renders `metrics`; `/readyz` asks `health`.
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

/// Ops endpoints and request ids around a gateway service.
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

impl<S, B, ReqB> Service<Request<ReqB>> for OpsService<S>
where
    S: Service<Request<ReqB>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
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
        let path = request.uri().path();
        if matches!(path, "/healthz" | "/readyz" | "/metrics") {
            let metrics = Arc::clone(&self.metrics);
            let health = Arc::clone(&self.health);
            let method = request.method().clone();
            let uri = request.uri().clone();
            let accept = request.headers().get(header::ACCEPT).cloned();
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            return ResponseFuture {
                inner: Box::pin(async move {
                    match ops_endpoint(&metrics, &health, &method, uri.path(), accept.as_ref())
                        .await
                    {
                        Some(response) => Ok(response),
                        None => inner
                            .call(request)
                            .await
                            .map(|r| r.map(tonic::body::Body::new)),
                    }
                }),
            };
        }
        let request_id = request
            .headers()
            .get(REQUEST_ID)
            .filter(|v| valid_request_id(v))
            .cloned()
            .unwrap_or_else(new_request_id);
        request.headers_mut().insert(REQUEST_ID, request_id.clone());
        // The clone that was made ready goes to this call (tower's usual dance).
        let clone = self.inner.clone();
        let future = std::mem::replace(&mut self.inner, clone).call(request);
        ResponseFuture {
            inner: Box::pin(async move {
                let mut response = future.await?;
                response.headers_mut().insert(REQUEST_ID, request_id);
                Ok(response.map(tonic::body::Body::new))
            }),
        }
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
    // Written digit by digit: `format!` was 1.6k instructions of every request (callgrind).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    let words = [a.finish(), b.finish()];
    for (i, digit) in text.iter_mut().enumerate() {
        let word = words.get(i / 16).copied().unwrap_or_default();
        let nibble = (word >> (60 - 4 * (i % 16))) & 0xf;
        *digit = HEX
            .get(usize::try_from(nibble).unwrap_or_default())
            .copied()
            .unwrap_or(b'0');
    }
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
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
        let id = new_request_id();
        assert_eq!(id.len(), 32, "{id:?}");
        assert!(
            id.as_bytes()
                .iter()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(valid_request_id(&new_request_id()));
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
