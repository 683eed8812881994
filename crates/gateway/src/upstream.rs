//! The inner service of `switchyard gateway`: an HTTP/2 (h2c) client to remote gRPC upstreams.
//!
//! [`Upstream`] is one upstream with one or more endpoints, picked round robin; an endpoint
//! whose connection fails is skipped until its back-off ends, then tried again (it has
//! "recovered" when a call gets through). [`UpstreamRouter`] sends each call to the upstream
//! configured for its service (the first segment of `/pkg.Service/Method`), or to a default.
//! Neither ever fails as a tower service: an unreachable upstream is answered with a
//! trailers-only gRPC UNAVAILABLE, which every protocol module renders in its own way (503 for
//! REST and Connect). What the gateway does with the answer is `crate::layer`'s business.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tonic::Status;

/// How long a failed endpoint is skipped before it is tried again.
const BACKOFF: Duration = Duration::from_secs(2);
/// How long connecting to an endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request body kept for a retry on another endpoint.
const REPLAY_LIMIT: u64 = 4 * 1024 * 1024;

/// The response body of an upstream call.
pub type UpstreamBody = tonic::body::Body;

/// Why an upstream could not be configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// An endpoint is not an `http://host:port` URI.
    #[error("invalid upstream endpoint '{endpoint}': {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An upstream without endpoints.
    #[error("an upstream needs at least one endpoint")]
    NoEndpoints,
}

#[derive(Debug)]
struct Endpoint {
    scheme: Scheme,
    authority: http::uri::Authority,
    /// When the last failure happened; `None` while healthy.
    failed_at: Mutex<Option<Instant>>,
}

impl Endpoint {
    fn parse(raw: &str) -> Result<Self, UpstreamError> {
        let invalid = |reason: &str| UpstreamError::InvalidEndpoint {
            endpoint: raw.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = raw.parse().map_err(|_| invalid("not a URI"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| invalid("no scheme"))?;
        if scheme != Scheme::HTTP {
            return Err(invalid("only http:// (cleartext HTTP/2) is supported"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        Ok(Self {
            scheme,
            authority,
            failed_at: Mutex::new(None),
        })
    }

    fn is_available(&self, now: Instant) -> bool {
        let failed = self.failed_at.lock().map(|f| *f).unwrap_or(None);
        failed.is_none_or(|at| now.duration_since(at) >= BACKOFF)
    }

    fn mark(&self, failed: bool) {
        if let Ok(mut f) = self.failed_at.lock() {
            *f = failed.then(Instant::now);
        }
    }
}

/// One upstream: endpoints picked round robin, a failed one skipped until it recovers.
#[derive(Clone)]
pub struct Upstream {
    endpoints: Arc<Vec<Endpoint>>,
    next: Arc<AtomicUsize>,
    client: Client<HttpConnector, tonic::body::Body>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| format!("{}://{}", e.scheme, e.authority))
            .collect();
        f.debug_struct("Upstream")
            .field("endpoints", &names)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// An upstream over `endpoints` (`http://host:port`), spoken to over h2c.
    ///
    /// # Errors
    ///
    /// [`UpstreamError`] for an endpoint that is not `http://host[:port]`, or none at all.
    pub fn new<I, E>(endpoints: I) -> Result<Self, UpstreamError>
    where
        I: IntoIterator<Item = E>,
        E: AsRef<str>,
    {
        let endpoints = endpoints
            .into_iter()
            .map(|e| Endpoint::parse(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(UpstreamError::NoEndpoints);
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Ok(Self {
            endpoints: Arc::new(endpoints),
            next: Arc::new(AtomicUsize::new(0)),
            client,
        })
    }

    /// The endpoints to try for one call, in order: available ones round robin, then (as a
    /// last resort) the ones still backing off.
    fn order(&self) -> Vec<usize> {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = Instant::now();
        let (mut up, down): (Vec<usize>, Vec<usize>) = (0..n)
            .map(|i| (start + i) % n)
            .partition(|&i| self.endpoints.get(i).is_some_and(|e| e.is_available(now)));
        up.extend(down);
        up
    }

    async fn call(self, request: Request<tonic::body::Body>) -> Response<UpstreamBody> {
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        // The client speaks HTTP/2 only; hop-by-hop headers have no place there.
        parts.version = Version::HTTP_2;
        for name in [
            header::HOST,
            header::CONNECTION,
            header::TRANSFER_ENCODING,
            header::UPGRADE,
        ] {
            parts.headers.remove(name);
        }
        parts.headers.remove("keep-alive");
        parts.headers.remove("proxy-connection");
        // A body of known, bounded size (every REST and Connect unary call) is kept so that
        // the call can go to the next endpoint when a connection cannot be made; a streamed
        // body goes to one endpoint only.
        let (replayable, mut body) = match http_body::Body::size_hint(&body).exact() {
            Some(n) if n <= REPLAY_LIMIT => {
                use http_body_util::BodyExt as _;
                match body.collect().await {
                    Ok(c) => (Some(c.to_bytes()), None),
                    Err(e) => {
                        return Status::internal(format!("cannot read the request: {e}"))
                            .into_http();
                    }
                }
            }
            _ => (None, Some(body)),
        };
        let mut last_error = String::from("no endpoint");
        for index in self.order() {
            let Some(endpoint) = self.endpoints.get(index) else {
                continue;
            };
            let this_body = match (&replayable, body.take()) {
                (Some(bytes), _) => {
                    tonic::body::Body::new(http_body_util::Full::new(bytes.clone()))
                }
                (None, Some(body)) => body,
                (None, None) => break,
            };
            let uri = Uri::builder()
                .scheme(endpoint.scheme.clone())
                .authority(endpoint.authority.clone())
                .path_and_query(path.clone())
                .build();
            let Ok(uri) = uri else {
                return Status::internal("cannot build the upstream URI").into_http();
            };
            let mut request = Request::from_parts(parts.clone(), this_body);
            *request.uri_mut() = uri;
            match self.client.request(request).await {
                Ok(response) => {
                    endpoint.mark(false);
                    return response.map(tonic::body::Body::new);
                }
                Err(err) => {
                    endpoint.mark(true);
                    last_error = format!("{}: {err}", endpoint.authority);
                    tracing::warn!(endpoint = %endpoint.authority, error = %err, "upstream call failed");
                    // Only a call that never reached the upstream may be tried elsewhere.
                    if !err.is_connect() {
                        break;
                    }
                }
            }
        }
        Status::unavailable(format!("upstream unavailable: {last_error}")).into_http()
    }
}

impl tower::Service<Request<tonic::body::Body>> for Upstream {
    type Response = Response<UpstreamBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.call(request).await) })
    }
}

/// Sends each call to the upstream of its service, or to the default upstream.
#[derive(Debug, Clone)]
pub struct UpstreamRouter {
    by_service: Arc<HashMap<String, Upstream>>,
    default: Option<Upstream>,
}

impl UpstreamRouter {
    /// A router with an optional default upstream and upstreams per service full name.
    pub fn new(default: Option<Upstream>, by_service: HashMap<String, Upstream>) -> Self {
        Self {
            by_service: Arc::new(by_service),
            default,
        }
    }

    fn pick(&self, path: &str) -> Option<&Upstream> {
        let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
        self.by_service.get(service).or(self.default.as_ref())
    }
}

impl tower::Service<Request<tonic::body::Body>> for UpstreamRouter {
    type Response = Response<UpstreamBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        match self.pick(request.uri().path()).cloned() {
            Some(upstream) => Box::pin(async move { Ok(upstream.call(request).await) }),
            None => {
                let status = Status::unimplemented(format!(
                    "no upstream configured for {}",
                    request.uri().path()
                ));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let cases = [
            ("http://127.0.0.1:50051", true),
            ("http://upstream", true),
            ("https://x:1", false),
            ("127.0.0.1:1", false),
            ("not a uri", false),
        ];
        for (input, ok) in cases {
            assert_eq!(Endpoint::parse(input).is_ok(), ok, "{input}");
        }
        assert!(matches!(
            Upstream::new(Vec::<String>::new()),
            Err(UpstreamError::NoEndpoints)
        ));
    }

    #[tokio::test]
    async fn round_robin_skips_failed_endpoints() {
        let Ok(up) = Upstream::new(["http://a:1", "http://b:1", "http://c:1"]) else {
            panic!("valid endpoints");
        };
        let firsts: Vec<usize> = (0..3).map(|_| up.order()[0]).collect();
        assert_eq!(firsts, [0, 1, 2]);
        up.endpoints[1].mark(true);
        let firsts: Vec<usize> = (0..3).map(|_| up.order()[0]).collect();
        assert!(!firsts.contains(&1), "{firsts:?}");
        // Still tried last, so a single broken upstream is not unreachable forever.
        assert_eq!(up.order().last(), Some(&1));
        up.endpoints[1].mark(false);
        assert!((0..3).any(|_| up.order()[0] == 1));
    }

    #[tokio::test]
    async fn unreachable_upstream_is_unavailable() {
        // Port 9 (discard) on localhost: nothing listens in the test environment.
        let listener = std::net::TcpListener::bind("127.0.0.1:0");
        let port = listener
            .as_ref()
            .ok()
            .and_then(|l| l.local_addr().ok())
            .map_or(9, |a| a.port());
        drop(listener);
        let Ok(up) = Upstream::new([format!("http://127.0.0.1:{port}")]) else {
            panic!("valid endpoint");
        };
        let mut request = Request::new(tonic::body::Body::empty());
        *request.uri_mut() = Uri::from_static("/a.B/C");
        let response = up.call(request).await;
        assert_eq!(
            response.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"14"[..])
        );
    }
}
