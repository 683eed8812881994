//! The tower layer: [`GatewayLayer`], [`GatewayService`] and [`ResponseFuture`].
//!
//! [`GatewayService`] wraps the inner gRPC service (tonic `Routes`, or a client to a remote
//! upstream), asks `crate::detect` which protocol each request speaks, and hands the request
//! to that protocol's module. It also runs the REST glue (route lookup, 404/405, body limit)
//! and adds CORS headers to browser-facing answers. It never fails: every error is an HTTP
//! response in the caller's protocol.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use tonic::Status;
use tower::{Layer, Service};

use crate::BoxError;
use crate::cors;
use crate::detect::{Protocol, detect};
use crate::dispatch::{self, UnaryCall};
use crate::gateway::{Gateway, GatewayState};
use crate::protocol::rest_stream::{self, Framing};
use crate::protocol::{self, connect, connect_stream, grpc, grpc_web, read_body, rest};
use crate::stream::{self as streaming, StreamCall};

/// A [`tower::Layer`] that puts a [`Gateway`] in front of a gRPC service.
#[derive(Debug, Clone)]
pub struct GatewayLayer {
    state: Arc<GatewayState>,
}

impl GatewayLayer {
    pub(crate) fn new(gateway: Gateway) -> Self {
        Self {
            state: gateway.state,
        }
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

/// Routes one request to its protocol and adds CORS headers where browsers read them.
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
    tracing::debug!(?protocol, method = %request.method(), path = request.uri().path(), "gateway request");
    let cors = state.opts.cors.as_ref();
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut response = match (protocol, cors) {
        (Protocol::Grpc, _) => return grpc::serve(inner, request).await,
        (Protocol::Preflight, Some(cors)) => return cors::preflight(cors, request.headers()),
        (Protocol::GrpcWeb { text }, _) => grpc_web::serve(inner, text, request).await,
        (Protocol::Connect { codec }, _) => connect::serve(state, inner, codec, request).await,
        (Protocol::ConnectStreaming { codec }, _) => {
            connect_stream::serve(state, inner, codec, request).await
        }
        (Protocol::ConnectUnsupportedMedia, _) => connect::unsupported_media(),
        (Protocol::Rest | Protocol::Preflight, _) => serve_rest(state, inner, request).await,
    };
    if let Some(cors) = cors {
        cors::decorate(cors, origin.as_ref(), &mut response);
    }
    response
}

/// The REST glue: route lookup (404/405), bounded body, transcoding by `protocol::rest`,
/// the unary call by `crate::dispatch`.
async fn serve_rest<S, B, ReqB>(
    state: &GatewayState,
    inner: S,
    request: Request<ReqB>,
) -> Response<tonic::body::Body>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ReqB: http_body::Body<Data = Bytes>,
    ReqB::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    if let Some(doc) = &state.openapi
        && parts.method == http::Method::GET
        && parts.uri.path() == "/openapi.json"
    {
        return protocol::full_response(StatusCode::OK, "application/json", doc.clone());
    }
    // Look the route up before reading the body: a 404 or 405 need not wait for it.
    // The one route lookup of the request: its match is used again below.
    let found = match state.routes.find(&parts.method, parts.uri.path()) {
        Ok(found) => found,
        Err(err) => return rest::route_error(&err, &parts.method, parts.uri.path(), &state.pool),
    };
    let limit = state.opts.max_message_bytes;
    let outcome = async {
        let body = match read_body(body, limit).await {
            Ok(body) => body,
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                let mut response = rest::encode_error(&status, &state.pool);
                *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                return Ok(response);
            }
            Err(status) => return Err(status),
        };
        let json = state.json_for(found.route().grpc_path());
        let mut call = rest::decode_matched(&found, json, &parts, body)?;
        let method = call.route().method().clone();
        if method.is_client_streaming() {
            return Err(Status::unimplemented(format!(
                "{} is a client-streaming method; REST cannot call it (use gRPC, gRPC-Web or Connect streaming)",
                method.full_name()
            )));
        }
        // `Grpc-Timeout` (grpc-gateway's REST header) or the service's default.
        let asked = parts
            .headers
            .get("grpc-timeout")
            .map(dispatch::parse_grpc_timeout)
            .transpose()?;
        let timeout = state.timeout_for(&call.grpc_path, asked);
        let metadata =
            protocol::forwarded_metadata(&parts.headers, state.opts.forward_headers.as_deref());
        if method.is_server_streaming() {
            let frame = dispatch::encode_frame(&call.message)?;
            let stream_call = StreamCall {
                path: call.grpc_path.clone(),
                metadata,
                body: tonic::body::Body::new(http_body_util::Full::new(frame)),
                timeout,
            };
            let reply = streaming::call(inner, stream_call, limit).await?;
            return Ok(rest_stream::encode_stream(
                Arc::clone(call.route()),
                json.clone(),
                Framing::from_accept(&parts.headers),
                reply,
                state.pool.clone(),
            ));
        }
        let unary = UnaryCall {
            path: std::mem::take(&mut call.grpc_path),
            metadata,
            message: std::mem::take(&mut call.message),
            timeout,
        };
        let reply = dispatch::unary(inner, unary, limit).await?;
        let mut response = rest::encode_response(&call, json, reply.message)?;
        rest::metadata_headers(response.headers_mut(), reply.headers, "grpc-metadata-");
        rest::metadata_headers(response.headers_mut(), reply.trailers, "grpc-trailer-");
        Ok(response)
    }
    .await;
    outcome.unwrap_or_else(|status| {
        let mut response = rest::encode_error(&status, &state.pool);
        rest::metadata_headers(
            response.headers_mut(),
            status.metadata().clone().into_headers(),
            "grpc-metadata-",
        );
        response
    })
}
