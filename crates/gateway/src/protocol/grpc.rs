//! Native gRPC (<https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md>): framed
//! messages in the body, the status in HTTP/2 trailers, `grpc-timeout` as the deadline.
//!
//! Requests for a method the descriptors do not name are passed through to the inner service
//! unchanged ([`passthrough`]): in serve mode tonic answers them, in gateway mode the upstream.

use bytes::Bytes;
use futures_util::{StreamExt as _, stream};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody};
use tonic::{Code, Status};
use tower::{Service, ServiceExt};

use super::{
    ClientProtocol, MessageEncoder, Refused, Stage, forwarded_metadata, grpc_timeout_header,
    identity_only, proto_encoder,
};
use crate::BoxError;
use crate::call::frame::{self, Envelope, FLAG_COMPRESSED, FRAME_HEADER_LEN, Side, too_large};
use crate::call::{Call, Item, MessageStream, Reply, StreamReply};
use crate::state::GatewayState;

/// The content type of every gRPC answer we write.
const CONTENT_TYPE: &str = "application/grpc";

/// Native gRPC.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grpc;

impl ClientProtocol for Grpc {
    type Head = ();

    fn decode_head(
        &self,
        state: &GatewayState,
        parts: &Parts,
    ) -> Result<(Call, HeaderMap, ()), Refused> {
        let refuse = |status: Status| Refused {
            response: status.clone().into_http(),
            status,
        };
        let (call, metadata) = decode_call(state, parts).map_err(refuse)?;
        Ok((call, metadata, ()))
    }

    async fn decode_request<B>(
        &self,
        state: &GatewayState,
        _call: &Call,
        _head: &(),
        _parts: &Parts,
        body: B,
    ) -> Result<Bytes, Status>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        read_single_frame(body, state.opts.max_message_bytes).await
    }

    fn decode_stream<B>(
        &self,
        state: &GatewayState,
        _call: &Call,
        _head: &(),
        body: B,
    ) -> Result<MessageStream, Status>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Ok(request_messages(frame::envelopes(
            body,
            state.opts.max_message_bytes,
            Side::Request,
            None,
        )))
    }

    fn encode_response(
        &self,
        _state: &GatewayState,
        _call: &Call,
        _head: &(),
        reply: Reply,
    ) -> Result<Response<tonic::body::Body>, Status> {
        let message = frame::encode_frame(0, &reply.message)?;
        let trailers = status_trailers(&Status::new(Code::Ok, ""), reply.trailers);
        let frames = [
            Ok::<_, Status>(Frame::data(message)),
            Ok(Frame::trailers(trailers)),
        ];
        Ok(response(
            reply.headers,
            tonic::body::Body::new(StreamBody::new(stream::iter(frames))),
        ))
    }

    fn message_encoder(&self, _state: &GatewayState, _call: &Call, _head: &()) -> MessageEncoder {
        proto_encoder()
    }

    fn encode_stream(
        &self,
        _state: &GatewayState,
        _call: &Call,
        _head: &(),
        reply: StreamReply,
    ) -> Response<tonic::body::Body> {
        let frames = reply.items.map(|item| match item {
            Item::Message(message) => frame::encode_frame(0, &message).map(Frame::data),
            Item::End(status, trailers) => Ok(Frame::trailers(status_trailers(&status, trailers))),
        });
        response(
            reply.headers,
            tonic::body::Body::new(StreamBody::new(frames)),
        )
    }

    fn encode_error(
        &self,
        _state: &GatewayState,
        _stage: Stage,
        status: &Status,
    ) -> Response<tonic::body::Body> {
        // Trailers-only: the status in the headers of an empty 200.
        status.clone().into_http()
    }
}

/// The call a gRPC or gRPC-Web request head names: a known method, its metadata (every header
/// but the transport ones) and its deadline (`grpc-timeout`, else the configured default).
///
/// # Errors
///
/// UNIMPLEMENTED for an unknown method or a `grpc-encoding` we do not read, INVALID_ARGUMENT
/// for a malformed `grpc-timeout`.
pub(crate) fn decode_call(
    state: &GatewayState,
    parts: &Parts,
) -> Result<(Call, HeaderMap), Status> {
    let entry = state.method(parts.uri.path())?;
    identity_only(&parts.headers, "grpc-encoding")?;
    let asked = grpc_timeout_header(&parts.headers)?;
    Ok((
        state.call(entry, asked),
        forwarded_metadata(&parts.headers, None),
    ))
}

/// Reads a unary request body: exactly one uncompressed frame of at most `limit` bytes.
///
/// # Errors
///
/// RESOURCE_EXHAUSTED above the limit (without reading further), INVALID_ARGUMENT for a
/// malformed frame, CANCELLED when the body cannot be read.
pub(crate) async fn read_single_frame<B>(body: B, limit: usize) -> Result<Bytes, Status>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let most = limit.saturating_add(FRAME_HEADER_LEN);
    let data = match http_body_util::Limited::new(body, most).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return Err(too_large(Side::Request, most, limit));
        }
        Err(err) => return Err(Status::cancelled(format!("cannot read the request: {err}"))),
    };
    frame::parse_single_frame(data, limit, Side::Request)
}

/// The messages of a framed request body: flag 0 frames; a compressed frame is UNIMPLEMENTED,
/// any other flag INVALID_ARGUMENT; trailers end it.
pub(crate) fn request_messages(envelopes: frame::EnvelopeStream) -> MessageStream {
    Box::pin(envelopes.filter_map(|envelope| {
        std::future::ready(match envelope {
            Ok(Envelope::Message { flag: 0, data }) => Some(Ok(data)),
            Ok(Envelope::Message { flag, .. }) if flag & FLAG_COMPRESSED != 0 => Some(Err(
                Status::unimplemented("compressed messages are not supported; send identity"),
            )),
            Ok(Envelope::Message { flag, .. }) => Some(Err(Status::invalid_argument(format!(
                "unknown message frame flag {flag:#04x}"
            )))),
            Ok(Envelope::Trailers(_)) => None,
            Err(status) => Some(Err(status)),
        })
    }))
}

/// The trailers that end a call: its status, then its trailing metadata.
pub(crate) fn status_trailers(status: &Status, metadata: HeaderMap) -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(metadata.len() + 3);
    if status.add_header(&mut trailers).is_err() {
        trailers.insert("grpc-status", HeaderValue::from(Code::Internal as i32));
    }
    for (name, value) in super::visible_metadata(metadata) {
        trailers.append(name, value);
    }
    trailers
}

/// A 200 gRPC answer with `metadata` as headers and `body`.
fn response(metadata: HeaderMap, body: tonic::body::Body) -> Response<tonic::body::Body> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    for (name, value) in super::visible_metadata(metadata) {
        headers.append(name, value);
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    *response.status_mut() = StatusCode::OK;
    response
}

/// Calls the inner service with the request as is: for methods the descriptors do not know.
pub(crate) async fn passthrough<S, B, ReqB>(
    service: S,
    request: Request<ReqB>,
) -> Response<tonic::body::Body>
where
    S: Service<Request<tonic::body::Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
{
    match service.oneshot(request.map(tonic::body::Body::new)).await {
        Ok(response) => response.map(tonic::body::Body::new),
        Err(err) => Status::from_error(err.into()).into_http(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn single_frame_limit_and_shape() {
        let ok = read_single_frame(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")), 2).await;
        assert_eq!(ok.ok().as_deref(), Some(&b"hi"[..]));
        let big = read_single_frame(Full::new(Bytes::from_static(b"\0\0\0\0\x03abc")), 2).await;
        assert_eq!(big.err().map(|s| s.code()), Some(Code::ResourceExhausted));
        let short = read_single_frame(Full::new(Bytes::from_static(b"\0\0\0\0\x03a")), 8).await;
        assert_eq!(short.err().map(|s| s.code()), Some(Code::InvalidArgument));
    }

    #[test]
    fn trailers_carry_status_then_metadata() {
        let mut metadata = HeaderMap::new();
        metadata.insert("x-t", HeaderValue::from_static("1"));
        metadata.insert("content-type", HeaderValue::from_static("application/grpc"));
        let trailers = status_trailers(&Status::new(Code::NotFound, "no such user"), metadata);
        assert_eq!(
            trailers.get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"5"[..])
        );
        assert!(trailers.contains_key("grpc-message"));
        assert!(trailers.contains_key("x-t"));
        assert!(!trailers.contains_key("content-type"));
    }
}
