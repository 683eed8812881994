//! The backend side of a call, the same for every protocol: what a protocol module decoded
//! ([`Call`] and the request message) goes to the handler, and what comes back ([`Reply`],
//! [`StreamReply`]) goes to the protocol module to render.
//!
//! Two backends:
//! - in-process ([`Handlers`], `switchyard serve`): a unary call hands the protobuf bytes to the
//!   typed handler directly — no `http::Request`, no framing, no routing, no status parsed back
//!   out of headers;
//! - a gRPC [`tower::Service`] (`call::upstream`): the remote upstream of `switchyard gateway`
//!   over HTTP/2, and in serve mode the streaming methods of the in-process tonic services
//!   (health `Watch`, reflection).
//!
//! The deadline and the message limit are applied here, once, for every protocol: when the
//! deadline passes the handler's future is dropped, so a command that has not committed never
//! commits.

pub(crate) mod compression;
pub(crate) mod frame;
pub(crate) mod handlers;
pub(crate) mod upstream;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, Request, Response};
use prost_reflect::MethodDescriptor;
use tonic::Status;
use tower::Service;

pub use handlers::{Authenticator, Handlers};

use crate::BoxError;
use crate::state::GatewayState;
use frame::{Side, too_large};

/// A call as every protocol module decodes it from a request head.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The method called.
    pub(crate) method: MethodDescriptor,
    /// Its gRPC path, `/pkg.Service/Method`.
    pub(crate) path: Arc<str>,
    /// The method's metric handles (see [`crate::metrics::MethodMetrics`]).
    pub(crate) metrics: Arc<crate::metrics::MethodMetrics>,
    /// Its in-process handler (serve's unary methods); `None`: the inner service answers.
    pub(crate) handler: Option<handlers::InProcess>,
    /// The deadline: the client's, else the service's or the server's default.
    pub(crate) timeout: Option<Duration>,
}

/// A successful unary answer.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// Response metadata.
    pub(crate) headers: HeaderMap,
    /// The encoded response message.
    pub(crate) message: Bytes,
    /// Trailing metadata (never the `grpc-*` status headers).
    pub(crate) trailers: HeaderMap,
}

/// One item of a streamed answer.
#[derive(Debug)]
pub(crate) enum Item {
    /// A response message, encoded.
    Message(Bytes),
    /// The end of the call: its status and trailing metadata. Always the last item.
    End(Status, HeaderMap),
}

/// A boxed stream of request messages (encoded), or the error that ended it.
pub(crate) type MessageStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

/// A streamed answer: response metadata, then the items as they arrive.
pub(crate) struct StreamReply {
    /// Response metadata.
    pub(crate) headers: HeaderMap,
    /// Messages, then exactly one [`Item::End`].
    pub(crate) items: Pin<Box<dyn Stream<Item = Item> + Send>>,
}

/// Runs a unary call with its deadline: in-process when a handler is registered for the
/// path (with `extensions`, what the authenticator found), else through `inner`.
///
/// # Errors
///
/// The handler's status; RESOURCE_EXHAUSTED for a message above `limits.max_body_bytes`;
/// DEADLINE_EXCEEDED when the deadline passes first.
pub(crate) async fn unary<S, B>(
    state: &GatewayState,
    inner: S,
    call: &Call,
    metadata: HeaderMap,
    extensions: tonic::Extensions,
    message: Bytes,
) -> Result<Reply, Status>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let limit = state.opts.max_message_bytes;
    if message.len() > limit {
        return Err(too_large(Side::Request, message.len(), limit));
    }
    let timeout = call.timeout;
    let work = async move {
        let reply = match &call.handler {
            Some(handler) => (handler.0)(metadata, extensions, message).await?,
            None => {
                upstream::unary(inner, &call.path, call.timeout, metadata, message, limit).await?
            }
        };
        if reply.message.len() > limit {
            return Err(too_large(Side::Response, reply.message.len(), limit));
        }
        Ok(reply)
    };
    match timeout {
        // Dropping `work` drops the handler's future: what has not committed never will.
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .unwrap_or_else(|_| Err(deadline_exceeded())),
        None => work.await,
    }
}

/// Runs a streaming call (any of client, server or bidirectional) through `inner`, with its
/// deadline over the whole call and the message limit on every message both ways.
///
/// # Errors
///
/// The status of a call that fails before its first response message can be awaited.
pub(crate) async fn streaming<S, B>(
    state: &GatewayState,
    inner: S,
    call: &Call,
    metadata: HeaderMap,
    requests: MessageStream,
) -> Result<StreamReply, Status>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    upstream::streaming(
        inner,
        call,
        metadata,
        requests,
        state.opts.max_message_bytes,
    )
    .await
}

/// The status of a call whose deadline passed.
pub(crate) fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("deadline exceeded")
}

/// Authenticates an in-process call before its body is read, when an authenticator is set:
/// the extensions its handler gets. Calls that go through the inner service authenticate there.
///
/// # Errors
///
/// The authenticator's status (UNAUTHENTICATED).
pub(crate) async fn authenticate(
    state: &GatewayState,
    call: &Call,
    metadata: &HeaderMap,
) -> Result<tonic::Extensions, Status> {
    match &state.authenticator {
        Some(authenticate) if call.handler.is_some() => (authenticate.0)(metadata).await,
        _ => Ok(tonic::Extensions::default()),
    }
}
