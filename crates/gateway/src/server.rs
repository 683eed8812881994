//! The listener loop: HTTP/1.1 and HTTP/2 on one TCP listener — h2c (prior knowledge) and,
//! with [`ServerOptions::tls`], TLS with ALPN `h2`/`http/1.1` on the same port (a connection
//! whose first byte is a TLS handshake record is TLS; any other is cleartext unless
//! [`ServerOptions::cleartext`] is off) — with connection limits, timeouts and graceful
//! shutdown.
//!
//! Shutdown: when the `shutdown` future completes the listener closes, every connection is
//! told to finish (HTTP/2 GOAWAY; HTTP/1.1 closes after the response in flight), and
//! [`serve_with`] returns once all connections are gone or the grace period is over; streams
//! still open then are ended with their protocol's trailers (UNAVAILABLE), not cut.
//! An idle connection (no call in flight — a streaming call is in flight until its response
//! ends — and no traffic) gets GOAWAY too.
//!
//! Slow clients: request heads must arrive within `header_read_timeout`, request bodies by a
//! deadline ([`RequestBody`]); a stalled body is answered 408 / DEADLINE_EXCEEDED by the server
//! itself and logged. Application layers (gateway, metrics, access log) are the caller's: wrap
//! the service.

mod request_body;
mod response_body;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::BoxError;
use crate::metrics::Metrics;
use crate::tls::TlsAcceptor;
pub use request_body::RequestBody;
use request_body::{BodyDeadline, Covered, Stall};
pub use response_body::ResponseBody;
use response_body::{RequestInfo, StreamEnd};

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

/// Connection-level settings of [`serve_with`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Time a client has to send its first bytes (and, on HTTP/1.1, each request's headers).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no traffic for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// Time a request body (a stream: its first message) has to arrive, plus a second per
    /// `body_min_rate` bytes received, before the server answers 408 / DEADLINE_EXCEEDED;
    /// zero disables.
    pub body_read_timeout: Duration,
    /// Bytes per second of body that extend its deadline by a second; zero: none do.
    pub body_min_rate: u64,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Most open connections; the accept loop waits while there are this many.
    pub max_connections: usize,
    /// How long in-flight calls may take to finish after shutdown starts.
    pub grace_period: Duration,
    /// TLS on this listener.
    pub tls: Option<TlsAcceptor>,
    /// With `tls`: still serve cleartext HTTP/1.1 and h2c on the same port.
    pub cleartext: bool,
    /// Where connections are counted.
    pub metrics: Option<Arc<Metrics>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(120)),
            body_read_timeout: Duration::from_secs(5),
            body_min_rate: 1024,
            max_concurrent_streams: 200,
            max_connections: 10_000,
            grace_period: Duration::from_secs(30),
            tls: None,
            cleartext: true,
            metrics: None,
        }
    }
}

/// [`serve_with`] with the default [`ServerOptions`].
///
/// # Errors
///
/// As [`serve_with`].
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: tower::Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    serve_with(listener, service, shutdown, ServerOptions::default()).await
}

/// Accepts connections on `listener` and serves each with `service` until `shutdown`
/// completes; then stops accepting and lets open connections finish their in-flight requests
/// for up to [`ServerOptions::grace_period`]. Each request carries a [`PeerAddr`] extension.
///
/// # Errors
///
/// None at present: accept errors (e.g. too many open files) are logged and retried, and a
/// failing connection only ends itself. The `io::Result` leaves room for listener-fatal errors.
pub async fn serve_with<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    options: ServerOptions,
) -> std::io::Result<()>
where
    S: tower::Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.max_concurrent_streams);
    let builder = Arc::new(builder);
    let options = Arc::new(options);
    let max_connections = options.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = watch::channel(Stage::Serving);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Per-connection failures (reset before accept) and resource exhaustion
                    // (EMFILE) are not fatal; back off briefly so EMFILE does not spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, %peer, "cannot set TCP_NODELAY");
        }
        let service = service.clone();
        let builder = Arc::clone(&builder);
        let options = Arc::clone(&options);
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = options.metrics.as_ref().map(|m| {
                m.connections.inc();
                OpenConnection::new(Arc::clone(m))
            });
            serve_connection(stream, peer, service, &builder, &options, stop).await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(Stage::Draining);
    let open = max_connections - slots.available_permits();
    if open > 0 {
        tracing::info!(
            connections = open,
            grace_period = ?options.grace_period,
            "draining open connections"
        );
    }
    let all_closed = slots.acquire_many(u32::try_from(max_connections).unwrap_or(u32::MAX));
    let mut all_closed = std::pin::pin!(all_closed);
    if tokio::time::timeout(options.grace_period, all_closed.as_mut())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = max_connections - slots.available_permits(),
            "grace period over: ending the streams still open, closing their connections"
        );
        // Streams end with their protocol's trailers; give the connections a moment to write
        // them and close (HTTP/2 already has GOAWAY) before the caller tears everything down.
        let _ = stop_tx.send(Stage::Closing);
        let flush = options
            .grace_period
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        let _ = tokio::time::timeout(flush, all_closed).await;
    }
    Ok(())
}

/// Where the server is in its life, as the connections see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Accepting and serving.
    Serving,
    /// Shutdown started: finish what is in flight, take no more.
    Draining,
    /// The grace period is over: end open streams now.
    Closing,
}

/// Counts an open connection in the gauge while alive.
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.connections_open.inc();
        Self(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}

/// TLS or cleartext, as the first byte said.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Serves one connection to the end: TLS detection, HTTP, idle and shutdown handling.
async fn serve_connection<S, B>(
    stream: TcpStream,
    peer: SocketAddr,
    service: S,
    builder: &auto::Builder<TokioExecutor>,
    options: &ServerOptions,
    mut stop: watch::Receiver<Stage>,
) where
    S: tower::Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let io: Box<dyn Io> = match &options.tls {
        None => Box::new(stream),
        Some(tls) => {
            let mut first = [0u8; 1];
            let peeked =
                tokio::time::timeout(options.header_read_timeout, stream.peek(&mut first)).await;
            match peeked {
                Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => {
                    let handshake = tls.acceptor().accept(stream);
                    match tokio::time::timeout(options.header_read_timeout, handshake).await {
                        Ok(Ok(tls_stream)) => Box::new(tls_stream),
                        Ok(Err(err)) => {
                            tracing::debug!(error = %err, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
                Ok(Ok(1)) if options.cleartext => Box::new(stream),
                Ok(Ok(_)) => {
                    tracing::debug!(%peer, "cleartext connection refused: TLS only");
                    return;
                }
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, %peer, "connection failed before a byte");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "connection sent nothing in time: closed");
                    return;
                }
            }
        }
    };
    let activity = Arc::new(Activity::new());
    let io = ActivityIo {
        inner: io,
        activity: Arc::clone(&activity),
    };
    let service = InFlight {
        inner: service,
        activity: Arc::clone(&activity),
        peer,
        deadline: BodyDeadline {
            timeout: options.body_read_timeout,
            min_rate: options.body_min_rate,
        },
        stop: stop.clone(),
    };
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    let check_every = options
        .header_read_timeout
        .min(options.idle_timeout.unwrap_or(Duration::MAX))
        .max(Duration::from_millis(100))
        / 2;
    let mut ticker = tokio::time::interval(check_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = *stop.borrow() != Stage::Serving;
    if stopping {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, %peer, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
            _ = ticker.tick() => {
                let quiet = activity.quiet_for();
                if activity.read_nothing() && quiet >= options.header_read_timeout {
                    tracing::debug!(%peer, "connection sent nothing in time: closed");
                    return;
                }
                if let Some(idle) = options.idle_timeout
                    && !stopping
                    && activity.in_flight.load(Ordering::SeqCst) == 0
                    && quiet >= idle
                {
                    // GOAWAY (HTTP/2) rather than a bare close; the connection then ends at
                    // once, as nothing is in flight.
                    tracing::debug!(%peer, "idle connection: closing");
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// When a connection last moved bytes, and how many requests it has in flight.
struct Activity {
    born: Instant,
    /// Milliseconds after `born` of the last read or write.
    last_ms: AtomicU64,
    read_bytes: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            born: Instant::now(),
            last_ms: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let now = self.born.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    fn read_nothing(&self) -> bool {
        self.read_bytes.load(Ordering::Relaxed) == 0
    }
}

/// The connection's I/O, noting activity.
struct ActivityIo {
    inner: Box<dyn Io>,
    activity: Arc<Activity>,
}

impl AsyncRead for ActivityIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.activity
                .read_bytes
                .fetch_add(read as u64, Ordering::Relaxed);
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for ActivityIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Counts the connection's calls from request headers to the end of the response body (idle
/// detection), puts the deadline on request bodies and answers for a stalled one.
#[derive(Clone)]
struct InFlight<S> {
    inner: S,
    activity: Arc<Activity>,
    peer: SocketAddr,
    deadline: BodyDeadline,
    stop: watch::Receiver<Stage>,
}

impl<S, B> tower::Service<Request<Incoming>> for InFlight<S>
where
    S: tower::Service<Request<RequestBody>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<ResponseBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let guard = InFlightGuard::new(Arc::clone(&self.activity));
        let info = RequestInfo::of(&request);
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let stall = Arc::new(Stall::default());
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(PeerAddr(self.peer));
        let covered = Covered::of(&parts.headers);
        let body = RequestBody::new(body, self.deadline, covered, Arc::clone(&stall));
        let future = self.inner.call(Request::from_parts(parts, body));
        let stop = self.stop.clone();
        let peer = self.peer;
        let timeout = self.deadline.timeout;
        Box::pin(async move {
            let response = future.await?;
            if stall.happened() {
                // Whatever the application made of the body's error, the client hears the
                // deadline; the response ends the call, which frees its slot.
                tracing::warn!(
                    %peer, %method, path, ?timeout,
                    "request body stalled: answered DEADLINE_EXCEEDED (408)"
                );
                return Ok(response_body::stalled(&info, guard));
            }
            let (parts, body) = response.into_parts();
            let end = StreamEnd::of(&parts.headers);
            let closing = (end != StreamEnd::Plain).then(|| {
                let mut stop = stop;
                Box::pin(async move {
                    let _ = stop.wait_for(|stage| *stage == Stage::Closing).await;
                }) as response_body::Closing
            });
            Ok(Response::from_parts(
                parts,
                ResponseBody::inner(body, guard, closing, end),
            ))
        })
    }
}

/// One call in flight; dropped when its response body ends or it is abandoned.
pub(crate) struct InFlightGuard(Arc<Activity>);

impl InFlightGuard {
    fn new(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(activity)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}
