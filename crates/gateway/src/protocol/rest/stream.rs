//! REST for server-streaming methods: each response message as it arrives, as
//! newline-delimited JSON (`{"result": ...}` per line, `{"error": ...}` as the last line on
//! failure, grpc-gateway's shape) or, when the client sends `Accept: text/event-stream`, as
//! Server-Sent Events (`data: <message>` per event, `event: error` with the error body at the
//! end on failure).
//!
//! A stream of `google.api.HttpBody` is the body itself, as grpc-gateway and Envoy's
//! transcoder send it: each chunk's bytes raw, under the first chunk's `content_type`
//! ([`encode_http_body`]).
//!
//! Decoding the request and rendering each message as JSON are `rest`'s; running the call is
//! `crate::call`'s.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt as _, stream};
use http::{HeaderMap, HeaderValue, Response, header};
use http_body::Frame;
use http_body_util::StreamBody;
use prost_reflect::{DescriptorPool, DynamicMessage};
use switchyard_transcode::{JsonOptions, Route, encode_http_response, rest_error_body};
use tonic::Status;

use crate::call::{Item, StreamReply};
use crate::protocol::MessageEncoder;
use crate::protocol::rest::{encode_error, metadata_headers};

/// How the stream is framed for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `application/x-ndjson`.
    Ndjson,
    /// `text/event-stream`.
    Sse,
}

impl Framing {
    /// SSE when the client accepts `text/event-stream`, else NDJSON.
    pub(crate) fn from_accept(headers: &HeaderMap) -> Self {
        let sse = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/event-stream"));
        if sse { Self::Sse } else { Self::Ndjson }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => "application/x-ndjson",
            Self::Sse => "text/event-stream",
        }
    }

    fn message(self, json: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(json.len() + 16);
        match self {
            Self::Ndjson => {
                out.extend_from_slice(b"{\"result\":");
                out.extend_from_slice(json);
                out.extend_from_slice(b"}\n");
            }
            Self::Sse => {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(json);
                out.extend_from_slice(b"\n\n");
            }
        }
        out.freeze()
    }

    fn error(self, body: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(body.len() + 24);
        match self {
            Self::Ndjson => {
                out.extend_from_slice(b"{\"error\":");
                out.extend_from_slice(body);
                out.extend_from_slice(b"}\n");
            }
            Self::Sse => {
                out.extend_from_slice(b"event: error\ndata: ");
                out.extend_from_slice(body);
                out.extend_from_slice(b"\n\n");
            }
        }
        out.freeze()
    }
}

/// Renders the stream: 200, then one chunk per message (already JSON), flushed as it comes,
/// and on failure the error as the last chunk.
pub(crate) fn encode_stream(
    framing: Framing,
    reply: StreamReply,
    pool: DescriptorPool,
) -> Response<tonic::body::Body> {
    let chunks = reply
        .items
        .filter_map(move |item| {
            std::future::ready(match item {
                Item::Message(json) => Some(framing.message(&json)),
                Item::End(status, _trailers) if status.code() == tonic::Code::Ok => None,
                Item::End(status, _trailers) => {
                    Some(framing.error(&rest_error_body(&status, &pool)))
                }
            })
        })
        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut response = Response::new(tonic::body::Body::new(StreamBody::new(chunks)));
    stream_headers(
        &mut response,
        HeaderValue::from_static(framing.content_type()),
        reply.headers,
    );
    response
}

/// The headers of a streamed answer: its content type, no buffering by proxies, and the
/// response metadata under grpc-gateway's names.
fn stream_headers(
    response: &mut Response<tonic::body::Body>,
    content_type: HeaderValue,
    metadata: HeaderMap,
) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    // Proxies must not buffer the stream.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    metadata_headers(response.headers_mut(), metadata, "grpc-metadata-");
}

/// The encoder of a `google.api.HttpBody` stream: each message (protobuf) becomes a chunk,
/// its content type and its bytes packed as `u16` length (big-endian), content type, data —
/// only [`encode_http_body`] reads them. A message that is not an HttpBody ends the stream
/// with INTERNAL, recorded as any stream's end.
pub(crate) fn http_body_encoder(route: Arc<Route>, json: JsonOptions) -> MessageEncoder {
    Box::new(move |message| {
        let decoded = DynamicMessage::decode(route.method().output(), message)
            .map_err(|e| Status::internal(format!("bad response message: {e}")))?;
        let (content_type, data) = encode_http_response(&route, &decoded, &json)?;
        let content_type = content_type.as_bytes();
        let len = u16::try_from(content_type.len()).map_err(|_| {
            Status::internal(format!(
                "HttpBody content_type of {} bytes is too long",
                content_type.len()
            ))
        })?;
        let mut chunk = BytesMut::with_capacity(2 + content_type.len() + data.len());
        chunk.extend_from_slice(&len.to_be_bytes());
        chunk.extend_from_slice(content_type);
        chunk.extend_from_slice(&data);
        Ok(chunk.freeze())
    })
}

/// A chunk of [`http_body_encoder`]: its content type and its data.
fn unpack_chunk(mut chunk: Bytes) -> (Bytes, Bytes) {
    let len = match chunk.get(..2) {
        Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
        _ => return (Bytes::new(), Bytes::new()),
    };
    let mut rest = chunk.split_off(2.min(chunk.len()));
    let data = rest.split_off(len.min(rest.len()));
    (rest, data)
}

/// Renders a stream of `google.api.HttpBody`: waits for the first item, then answers 200
/// with the first chunk's `content_type` and each chunk's bytes as they come.
///
/// An error before the first chunk is the REST error with its HTTP status, as grpc-gateway
/// answers it. An error after it cannot be told in raw bytes (a JSON error would be read as
/// part of the body), so the body ends with an error: hyper aborts the response (HTTP/1.1: the
/// connection closes without the last chunk; HTTP/2: `RST_STREAM`), and the client sees a
/// truncated transfer, as behind Envoy's transcoder. A stream with no chunk at all is an
/// empty `application/octet-stream` body.
pub(crate) async fn encode_http_body(
    mut reply: StreamReply,
    pool: &DescriptorPool,
) -> Response<tonic::body::Body> {
    let (content_type, first) = match reply.items.next().await {
        Some(Item::Message(chunk)) => {
            let (content_type, data) = unpack_chunk(chunk);
            (
                HeaderValue::from_maybe_shared(content_type).ok(),
                Some(data),
            )
        }
        Some(Item::End(status, _)) if status.code() != tonic::Code::Ok => {
            let mut response = encode_error(&status, pool);
            metadata_headers(response.headers_mut(), reply.headers, "grpc-metadata-");
            return response;
        }
        Some(Item::End(..)) | None => (None, None),
    };
    let first = stream::iter(first.map(|data| Ok(Frame::data(data))));
    let rest = reply.items.filter_map(|item| {
        std::future::ready(match item {
            Item::Message(chunk) => Some(Ok(Frame::data(unpack_chunk(chunk).1))),
            Item::End(status, _) if status.code() == tonic::Code::Ok => None,
            Item::End(status, _) => Some(Err(status)),
        })
    });
    let mut response = Response::new(tonic::body::Body::new(StreamBody::new(first.chain(rest))));
    let content_type =
        content_type.unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    stream_headers(&mut response, content_type, reply.headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_table() {
        let cases = [
            (Framing::Ndjson, true, "{\"result\":{\"a\":1}}\n"),
            (Framing::Sse, true, "data: {\"a\":1}\n\n"),
            (Framing::Ndjson, false, "{\"error\":{\"a\":1}}\n"),
            (Framing::Sse, false, "event: error\ndata: {\"a\":1}\n\n"),
        ];
        for (framing, ok, want) in cases {
            let got = if ok {
                framing.message(b"{\"a\":1}")
            } else {
                framing.error(b"{\"a\":1}")
            };
            assert_eq!(String::from_utf8_lossy(&got), want, "{framing:?}");
        }
        let mut headers = HeaderMap::new();
        assert_eq!(Framing::from_accept(&headers), Framing::Ndjson);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("Text/Event-Stream"),
        );
        assert_eq!(Framing::from_accept(&headers), Framing::Sse);
    }
}
