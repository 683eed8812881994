//! gRPC-Web (<https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md>), binary and text
//! (base64), over HTTP/1.1 or HTTP/2: gRPC's frames in the body, the status as a final frame
//! with flag `0x80` holding `name:value\r\n` lines, since browsers cannot read trailers.
//!
//! The head, the deadline, the codecs (`+proto`, `+json`) and the compression (`grpc-encoding`,
//! `grpc-accept-encoding`, compressed-flag frames both ways; the trailer frame is never
//! compressed) are gRPC's (`protocol::grpc`). tonic-web does this framing only
//! as a layer over a gRPC `http` service, which is the in-process wire round trip the call
//! pipeline exists to avoid; the framing itself is a few lines over `call::frame`. CORS is
//! `crate::cors`'s.

use base64::Engine as _;
use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::{StreamExt as _, stream};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody};
use tonic::{Code, Status};

use super::grpc::{
    decode_call, encode_message, encoding_headers, message_encoder, request_messages,
    request_to_proto, status_trailers,
};
use super::{ClientProtocol, MessageEncoder, Refused, Stage, Wire};
use crate::BoxError;
use crate::call::compression::Encoding;
use crate::call::frame::{self, FRAME_HEADER_LEN, Side, too_large};
use crate::call::{Call, Item, MessageStream, Reply, StreamReply};
use crate::detect::Codec;
use crate::state::GatewayState;

/// The trailer frame's flag.
const FLAG_TRAILERS: u8 = 0x80;

/// gRPC-Web in one of its modes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrpcWeb {
    /// The request body is base64 text (`application/grpc-web-text`).
    pub(crate) text: bool,
    /// The answer is base64 text: the client accepts text, or accepts no gRPC-Web type and
    /// sent text.
    pub(crate) text_reply: bool,
    /// The codec the content type names (protobuf when it names none we know: the head is
    /// refused then, and the refusal is written as `+proto`).
    pub(crate) codec: Codec,
}

impl GrpcWeb {
    /// The mode of a request detected as gRPC-Web (`text` from its content type).
    pub(crate) fn new(text: bool, headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        let contains = |needle: &[u8]| {
            accept
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle))
        };
        let text_reply = if contains(b"application/grpc-web-text") {
            true
        } else if contains(b"application/grpc-web") {
            false
        } else {
            text
        };
        let codec = super::codec::grpc_codec(headers).unwrap_or(Codec::Proto);
        Self {
            text,
            text_reply,
            codec,
        }
    }

    fn content_type(self) -> &'static str {
        match (self.text_reply, self.codec) {
            (true, Codec::Proto) => "application/grpc-web-text+proto",
            (true, Codec::Json) => "application/grpc-web-text+json",
            (false, Codec::Proto) => "application/grpc-web+proto",
            (false, Codec::Json) => "application/grpc-web+json",
        }
    }

    /// A chunk of the answer: base64 on its own in text mode (padded, so that chunks can be
    /// concatenated and decoded in 4-character groups).
    fn chunk(self, bytes: Bytes) -> Bytes {
        if self.text_reply {
            Bytes::from(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            bytes
        }
    }

    fn response(
        self,
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
            HeaderValue::from_static(self.content_type()),
        );
        encoding_headers(headers, wire);
        *response.status_mut() = StatusCode::OK;
        response
    }
}

impl ClientProtocol for GrpcWeb {
    type Head = Wire;

    fn decode_head(
        &self,
        state: &GatewayState,
        parts: &Parts,
    ) -> Result<(Call, HeaderMap, Wire), Refused> {
        match decode_call(state, parts) {
            Ok(decoded) => Ok(decoded),
            Err(status) => Err(Refused {
                response: self.encode_error(state, Stage::Request, &status),
                status,
            }),
        }
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
        let limit = state.opts.max_message_bytes;
        let most = limit.saturating_add(FRAME_HEADER_LEN);
        // Base64 is 4 characters for every 3 bytes.
        let read_limit = if self.text { most / 3 * 4 + 4 } else { most };
        let data = match http_body_util::Limited::new(body, read_limit)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                return Err(too_large(Side::Request, most, limit));
            }
            Err(err) => {
                return Err(Status::cancelled(format!("cannot read the request: {err}")));
            }
        };
        let data = if self.text { decode_text(&data)? } else { data };
        let message = frame::parse_single_frame(data, limit, Side::Request, wire.request)?;
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
        if self.text {
            return Err(Status::unimplemented(format!(
                "{} streams requests; send it as application/grpc-web+proto, not text",
                call.method.full_name()
            )));
        }
        Ok(request_messages(state, call, *wire, body))
    }

    fn encode_response(
        &self,
        state: &GatewayState,
        call: &Call,
        wire: &Wire,
        reply: Reply,
    ) -> Result<Response<tonic::body::Body>, Status> {
        let mut encode = message_encoder(state, call, wire.codec);
        let message = encode(reply.message)?;
        let message = encode_message(wire.response, message)?;
        let trailers = status_trailers(&Status::new(Code::Ok, ""), reply.trailers);
        let mut body = BytesMut::with_capacity(FRAME_HEADER_LEN + message.len() + 64);
        body.extend_from_slice(&message);
        body.extend_from_slice(&trailer_frame(&trailers));
        let body = self.chunk(body.freeze());
        Ok(self.response(
            reply.headers,
            *wire,
            tonic::body::Body::new(http_body_util::Full::new(body)),
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
        let mode = *self;
        let encoding = wire.response;
        let chunks = reply.items.map(move |item| {
            let bytes = match item {
                Item::Message(message) => encode_message(encoding, message)?,
                Item::End(status, trailers) => trailer_frame(&status_trailers(&status, trailers)),
            };
            Ok::<_, Status>(Frame::data(mode.chunk(bytes)))
        });
        self.response(
            reply.headers,
            *wire,
            tonic::body::Body::new(StreamBody::new(chunks)),
        )
    }

    fn encode_error(
        &self,
        _state: &GatewayState,
        _stage: Stage,
        status: &Status,
    ) -> Response<tonic::body::Body> {
        // Always the trailer frame, never trailers-only: every gRPC-Web client reads it there.
        let body = self.chunk(trailer_frame(&status_trailers(status, HeaderMap::new())));
        let frames = stream::iter([Ok::<_, Status>(Frame::data(body))]);
        let wire = Wire {
            codec: self.codec,
            request: Encoding::Identity,
            response: Encoding::Identity,
        };
        self.response(
            status.metadata().clone().into_headers(),
            wire,
            tonic::body::Body::new(StreamBody::new(frames)),
        )
    }
}

/// The `0x80` frame: each trailer as `name:value\r\n`, names lower-case.
fn trailer_frame(trailers: &HeaderMap) -> Bytes {
    let mut lines = BytesMut::new();
    for (name, value) in trailers {
        lines.put_slice(name.as_str().as_bytes());
        lines.put_u8(b':');
        lines.put_slice(value.as_bytes());
        lines.put_slice(b"\r\n");
    }
    let mut frame = BytesMut::with_capacity(FRAME_HEADER_LEN + lines.len());
    frame.put_u8(FLAG_TRAILERS);
    frame.put_u32(u32::try_from(lines.len()).unwrap_or(u32::MAX));
    frame.put_slice(&lines);
    frame.freeze()
}

/// Decodes a text-mode body: base64, possibly several padded pieces one after another (each
/// piece a multiple of 4 characters), whitespace ignored.
///
/// # Errors
///
/// INVALID_ARGUMENT for anything that is not base64.
pub(crate) fn decode_text(data: &[u8]) -> Result<Bytes, Status> {
    let bad = |e: base64::DecodeSliceError| {
        Status::invalid_argument(format!("the grpc-web-text body is not base64: {e}"))
    };
    let clean: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let mut out = vec![0u8; clean.len() / 4 * 3 + 3];
    let mut written = 0;
    let mut rest = clean.as_slice();
    while !rest.is_empty() {
        // A piece ends after its padding; without padding, the rest is one piece.
        let end = match rest.iter().position(|&b| b == b'=') {
            Some(first_pad) => {
                let pad_end = rest
                    .get(first_pad..)
                    .map_or(0, |tail| tail.iter().take_while(|&&b| b == b'=').count());
                first_pad + pad_end
            }
            None => rest.len(),
        };
        let (piece, tail) = rest.split_at(end);
        let target = out.get_mut(written..).unwrap_or_default();
        written += base64::engine::general_purpose::STANDARD
            .decode_slice(piece, target)
            .map_err(bad)?;
        rest = tail;
    }
    out.truncate(written);
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bodies_decode_piece_by_piece() {
        let one = base64::engine::general_purpose::STANDARD.encode(b"\0\0\0\0\x01a");
        let two = base64::engine::general_purpose::STANDARD.encode(b"xy");
        let joined = format!("{one}{two}\r\n");
        assert_eq!(
            decode_text(joined.as_bytes()).ok().as_deref(),
            Some(&b"\0\0\0\0\x01axy"[..])
        );
        assert_eq!(
            decode_text(b"!!!!").err().map(|s| s.code()),
            Some(Code::InvalidArgument)
        );
    }

    #[test]
    fn trailer_frame_lines() {
        let trailers = status_trailers(&Status::new(Code::Ok, ""), HeaderMap::new());
        let frame = trailer_frame(&trailers);
        assert_eq!(&frame[..], b"\x80\x00\x00\x00\x0fgrpc-status:0\r\n");
    }

    #[test]
    fn reply_mode_follows_accept() {
        let mut headers = HeaderMap::new();
        assert!(GrpcWeb::new(true, &headers).text_reply);
        assert!(!GrpcWeb::new(false, &headers).text_reply);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("Application/gRPC-Web-Text"),
        );
        assert!(GrpcWeb::new(false, &headers).text_reply);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/grpc-web"),
        );
        assert!(!GrpcWeb::new(true, &headers).text_reply);
    }
}
