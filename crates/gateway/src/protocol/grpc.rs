//! Native gRPC (<https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md>): framed
//! messages in the body, the status in HTTP/2 trailers, `grpc-timeout` as the deadline. The
//! codec is the content type's (`application/grpc[+proto]`, `+json`), the compression
//! `grpc-encoding` / `grpc-accept-encoding`
//! (<https://github.com/grpc/grpc/blob/master/doc/compression.md>): gzip frames are inflated
//! coming in, and going out when the client accepts gzip and a message is worth it.
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

use super::codec::{self, from_proto, json_for, to_proto};
use super::{
    ClientProtocol, MessageEncoder, Refused, Stage, Wire, forwarded_metadata, grpc_timeout_header,
};
use crate::BoxError;
use crate::call::compression::{self, ACCEPTED, Encoding};
use crate::call::frame::{self, Envelope, FLAG_COMPRESSED, FRAME_HEADER_LEN, Side, too_large};
use crate::call::{Call, Item, MessageStream, Reply, StreamReply};
use crate::detect::Codec;
use crate::state::GatewayState;

/// The request's message compression.
pub(crate) const ENCODING: &str = "grpc-encoding";
/// What the client accepts for the answer's messages, and what we take.
pub(crate) const ACCEPT_ENCODING: &str = "grpc-accept-encoding";

/// The content type of a gRPC answer in `codec`.
fn content_type(codec: Codec) -> &'static str {
    match codec {
        Codec::Proto => "application/grpc",
        Codec::Json => "application/grpc+json",
    }
}

/// Native gRPC.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grpc;

impl ClientProtocol for Grpc {
    type Head = Wire;

    fn decode_head(
        &self,
        state: &GatewayState,
        parts: &Parts,
    ) -> Result<(Call, HeaderMap, Wire), Refused> {
        let refuse = |status: Status| Refused {
            response: self.encode_error(state, Stage::Request, &status),
            status,
        };
        decode_call(state, parts).map_err(refuse)
    }

    async fn decode_request<B>(
        &self,
        state: &GatewayState,
        call: &Call,
        wire: &Wire,
        _parts: &Parts,
        body: B,
    ) -> Result<Bytes, Status>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let message = read_single_frame(body, state.opts.max_message_bytes, wire.request).await?;
        request_to_proto(state, call, wire.codec, message)
    }

    fn decode_stream<B>(
        &self,
        state: &GatewayState,
        call: &Call,
        wire: &Wire,
        body: B,
    ) -> Result<MessageStream, Status>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Ok(request_messages(state, call, *wire, body))
    }

    fn encode_response(
        &self,
        state: &GatewayState,
        call: &Call,
        wire: &Wire,
        reply: Reply,
    ) -> Result<Response<tonic::body::Body>, Status> {
        let message = response_from_proto(state, call, wire.codec, reply.message)?;
        let message = encode_message(wire.response, message)?;
        let trailers = status_trailers(&Status::new(Code::Ok, ""), reply.trailers);
        let frames = [
            Ok::<_, Status>(Frame::data(message)),
            Ok(Frame::trailers(trailers)),
        ];
        Ok(response(
            reply.headers,
            *wire,
            tonic::body::Body::new(StreamBody::new(stream::iter(frames))),
        ))
    }

    fn message_encoder(&self, state: &GatewayState, call: &Call, wire: &Wire) -> MessageEncoder {
        message_encoder(state, call, wire.codec)
    }

    async fn encode_stream(
        &self,
        _state: &GatewayState,
        _call: &Call,
        wire: &Wire,
        reply: StreamReply,
    ) -> Response<tonic::body::Body> {
        let encoding = wire.response;
        let frames = reply.items.map(move |item| match item {
            Item::Message(message) => encode_message(encoding, message).map(Frame::data),
            Item::End(status, trailers) => Ok(Frame::trailers(status_trailers(&status, trailers))),
        });
        response(
            reply.headers,
            *wire,
            tonic::body::Body::new(StreamBody::new(frames)),
        )
    }

    fn encode_error(
        &self,
        _state: &GatewayState,
        _stage: Stage,
        status: &Status,
    ) -> Response<tonic::body::Body> {
        // Trailers-only: the status in the headers of an empty 200, with what we take (a client
        // refused for its grpc-encoding learns what to send instead).
        let mut response = status.clone().into_http();
        response
            .headers_mut()
            .insert(ACCEPT_ENCODING, HeaderValue::from_static(ACCEPTED));
        response
    }
}

/// The call a gRPC or gRPC-Web request head names: a known method, its metadata (every header
/// but the transport ones), its deadline (`grpc-timeout`, else the configured default) and its
/// wire (the content type's codec, `grpc-encoding`, `grpc-accept-encoding`).
///
/// # Errors
///
/// UNIMPLEMENTED for an unknown method, a codec or a `grpc-encoding` we do not read,
/// INVALID_ARGUMENT for a malformed `grpc-timeout`.
pub(crate) fn decode_call(
    state: &GatewayState,
    parts: &Parts,
) -> Result<(Call, HeaderMap, Wire), Status> {
    let entry = state.method(parts.uri.path())?;
    let codec = codec::grpc_codec(&parts.headers)?;
    let wire = Wire::from_headers(codec, &parts.headers, ENCODING, ACCEPT_ENCODING)?;
    let asked = grpc_timeout_header(&parts.headers)?;
    Ok((
        state.call(entry, asked),
        forwarded_metadata(&parts.headers, None),
        wire,
    ))
}

/// A request message in `codec` as the handler's protobuf (binary passes as it is: the
/// handler or upstream decodes it).
///
/// # Errors
///
/// INVALID_ARGUMENT for JSON that is not the method's input.
pub(crate) fn request_to_proto(
    state: &GatewayState,
    call: &Call,
    codec: Codec,
    message: Bytes,
) -> Result<Bytes, Status> {
    to_proto(
        &call.method.input(),
        codec,
        message,
        json_for(state, call),
        false,
    )
}

fn response_from_proto(
    state: &GatewayState,
    call: &Call,
    codec: Codec,
    message: Bytes,
) -> Result<Bytes, Status> {
    from_proto(&call.method.output(), codec, message, json_for(state, call))
}

/// What renders each streamed response message in `codec`.
pub(crate) fn message_encoder(state: &GatewayState, call: &Call, codec: Codec) -> MessageEncoder {
    match codec {
        Codec::Proto => super::proto_encoder(),
        Codec::Json => {
            let output = call.method.output();
            let json = json_for(state, call).clone();
            Box::new(move |message| from_proto(&output, codec, message, &json))
        }
    }
}

/// One response message as a frame, gzipped when `encoding` is and the message is worth it.
///
/// # Errors
///
/// RESOURCE_EXHAUSTED above 4 GiB; INTERNAL if the compressor fails.
pub(crate) fn encode_message(encoding: Encoding, message: Bytes) -> Result<Bytes, Status> {
    let (flag, payload) = compression::deflate(encoding, message)?;
    frame::encode_frame(flag, &payload)
}

/// Reads a unary request body: exactly one frame of at most `limit` bytes, inflated (to at
/// most `limit` bytes) when it is compressed.
///
/// # Errors
///
/// RESOURCE_EXHAUSTED above the limit (without reading or inflating further),
/// INVALID_ARGUMENT for a malformed frame, CANCELLED when the body cannot be read.
pub(crate) async fn read_single_frame<B>(
    body: B,
    limit: usize,
    encoding: Encoding,
) -> Result<Bytes, Status>
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
    frame::parse_single_frame(data, limit, Side::Request, encoding)
}

/// The messages of a framed request body as protobuf: each frame inflated when its flag says
/// so, then converted from the wire's codec; an unknown flag is INVALID_ARGUMENT; trailers end
/// it.
pub(crate) fn request_messages<B>(
    state: &GatewayState,
    call: &Call,
    wire: Wire,
    body: B,
) -> MessageStream
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let limit = state.opts.max_message_bytes;
    let input = call.method.input();
    let json = json_for(state, call).clone();
    let envelopes = frame::envelopes(body, limit, Side::Request, None);
    Box::pin(envelopes.filter_map(move |envelope| {
        std::future::ready(match envelope {
            Ok(Envelope::Message { flag, data }) if flag & !FLAG_COMPRESSED == 0 => Some(
                compression::decode_payload(flag, data, wire.request, limit, Side::Request)
                    .and_then(|data| to_proto(&input, wire.codec, data, &json, false)),
            ),
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

/// The `grpc-encoding` and `grpc-accept-encoding` of an answer on `wire`.
pub(crate) fn encoding_headers(headers: &mut HeaderMap, wire: Wire) {
    if wire.response != Encoding::Identity {
        headers.insert(ENCODING, HeaderValue::from_static(wire.response.name()));
    }
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(ACCEPTED));
}

/// A 200 gRPC answer with `metadata` as headers and `body`.
fn response(
    metadata: HeaderMap,
    wire: Wire,
    body: tonic::body::Body,
) -> Response<tonic::body::Body> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    for (name, value) in super::visible_metadata(metadata) {
        headers.append(name, value);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(wire.codec)),
    );
    encoding_headers(headers, wire);
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
        let read = |bytes: &'static [u8], limit, encoding| {
            read_single_frame(Full::new(Bytes::from_static(bytes)), limit, encoding)
        };
        let ok = read(b"\0\0\0\0\x02hi", 2, Encoding::Identity).await;
        assert_eq!(ok.ok().as_deref(), Some(&b"hi"[..]));
        let big = read(b"\0\0\0\0\x03abc", 2, Encoding::Identity).await;
        assert_eq!(big.err().map(|s| s.code()), Some(Code::ResourceExhausted));
        let short = read(b"\0\0\0\0\x03a", 8, Encoding::Identity).await;
        assert_eq!(short.err().map(|s| s.code()), Some(Code::InvalidArgument));
    }

    #[tokio::test]
    async fn compressed_frames_inflate_within_the_limit() {
        let frame_of =
            |payload: &[u8]| frame::encode_frame(FLAG_COMPRESSED, payload).unwrap_or_default();
        let hi = frame_of(&compression::gzip(b"hi").unwrap_or_default());
        let ok = read_single_frame(Full::new(hi.clone()), 64, Encoding::Gzip).await;
        assert_eq!(ok.ok().as_deref(), Some(&b"hi"[..]));
        // The flag without a grpc-encoding is the client's protocol error.
        let bare = read_single_frame(Full::new(hi), 64, Encoding::Identity).await;
        assert_eq!(bare.err().map(|s| s.code()), Some(Code::InvalidArgument));
        // 1 MiB of zeros in about 1 KiB: refused at the 64 KiB limit, not inflated whole.
        let bomb = frame_of(&compression::gzip(&vec![0; 1 << 20]).unwrap_or_default());
        assert!(bomb.len() < 2048, "{} bytes", bomb.len());
        let big = read_single_frame(Full::new(bomb), 64 << 10, Encoding::Gzip).await;
        assert_eq!(big.err().map(|s| s.code()), Some(Code::ResourceExhausted));
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
