//! The tower layer: [`GatewayLayer`], [`GatewayService`] and [`ResponseFuture`].
//!
//! [`GatewayService`] wraps the inner gRPC service (tonic `Routes`, or a client to a remote
//! upstream), asks `crate::detect` which protocol each request speaks, starts the call's
//! observer, and hands the request to `crate::protocol::serve` with that protocol's module.
//! It answers CORS preflights and adds CORS headers to browser-facing answers. It never fails:
//! every error is an HTTP response in the caller's protocol.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, header};
use tonic::Code;
use tower::{Layer, Service};

use crate::BoxError;
use crate::cors;
use crate::detect::{Protocol, detect};
use crate::ops::observer::Observer;
use crate::protocol::{self, connect, grpc, grpc_web, rest};
use crate::state::GatewayState;

/// A [`tower::Layer`] that puts a [`Gateway`] in front of a gRPC service.
#[derive(Debug, Clone)]
pub struct GatewayLayer {
    state: Arc<GatewayState>,
}

impl GatewayLayer {
    pub(crate) fn new(state: Arc<GatewayState>) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for GatewayLayer {
    type Service = GatewayService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GatewayService {
            inner,
            state: Arc::clone(&self.state),
        }
    }
}

/// Serves gRPC, gRPC-Web, Connect and REST in front of the gRPC service `S`.
///
/// `S` takes `http::Request<tonic::body::Body>` and answers `http::Response<B>` with any
/// body; `tonic::service::Routes` (whose error is `Infallible`) is the in-process case.
#[derive(Clone)]
pub struct GatewayService<S> {
    inner: S,
    state: Arc<GatewayState>,
}

impl<S> fmt::Debug for GatewayService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayService").finish_non_exhaustive()
    }
}

/// The future of a [`GatewayService`] call.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response<tonic::body::Body>, Infallible>> + Send>>,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<tonic::body::Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<S, B, ReqB> Service<Request<ReqB>> for GatewayService<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
{
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each call drives its own clone of the inner service to readiness (`oneshot`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let state = Arc::clone(&self.state);
        let inner = self.inner.clone();
        ResponseFuture {
            inner: Box::pin(async move { Ok(handle(&state, inner, request).await) }),
        }
    }
}

/// Classifies one request, starts its observer, and hands it to its protocol's pipeline; adds
/// CORS headers where browsers read them.
async fn handle<S, B, ReqB>(
    state: &GatewayState,
    inner: S,
    request: Request<ReqB>,
) -> Response<tonic::body::Body>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
{
    let protocol = detect(
        request.method(),
        request.uri().path(),
        request.headers(),
        &state.methods,
    );
    let cors = state.opts.cors.as_ref();
    let observer = Observer::start(state.metrics.as_ref(), protocol, &request);
    if let (Protocol::Preflight, Some(cors)) = (protocol, cors) {
        let response = cors::preflight(cors, request.headers());
        // No call: a refused preflight (403) is logged as what it is, an allowed one as OK.
        let code = if response.status().is_success() {
            Code::Ok
        } else {
            switchyard_transcode::status::code_from_http_status(response.status())
        };
        observer.finish(code, response.status());
        return response;
    }
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut response = match protocol {
        Protocol::Grpc if !state.methods.contains(request.uri().path()) => {
            // A method the descriptors do not name: the inner service answers it as it is.
            let mut observer = observer;
            let path: Arc<str> = Arc::from(request.uri().path());
            observer.set_method(&path, None);
            let response = grpc::passthrough(inner, request).await;
            // A trailers-only answer (tonic's UNIMPLEMENTED, say) shows its code in the headers;
            // a streamed one's code is in trailers this layer does not read.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map_or(Code::Ok, Code::from_i32);
            observer.finish(code, response.status());
            response
        }
        Protocol::Grpc => protocol::serve(&grpc::Grpc, state, inner, request, observer).await,
        Protocol::GrpcWeb { text } => {
            let web = grpc_web::GrpcWeb::new(text, request.headers());
            protocol::serve(&web, state, inner, request, observer).await
        }
        Protocol::Connect { codec } => {
            let connect = connect::ConnectUnary { codec };
            protocol::serve(&connect, state, inner, request, observer).await
        }
        Protocol::ConnectStreaming { codec } => {
            let connect = connect::stream::ConnectStream { codec };
            protocol::serve(&connect, state, inner, request, observer).await
        }
        Protocol::ConnectGet => {
            protocol::serve(&connect::get::ConnectGet, state, inner, request, observer).await
        }
        Protocol::ConnectUnsupportedMedia => {
            let response = connect::unsupported_media();
            observer.finish(Code::InvalidArgument, response.status());
            response
        }
        Protocol::Rest | Protocol::Preflight => {
            protocol::serve(&rest::Rest, state, inner, request, observer).await
        }
    };
    if let Some(cors) = cors {
        cors::decorate(cors, origin.as_ref(), &mut response);
    }
    response
}
