//! REST for server-streaming methods: each response message as it arrives, as
//! newline-delimited JSON (`{"result": ...}` per line, `{"error": ...}` as the last line on
//! failure, grpc-gateway's shape) or, when the client sends `Accept: text/event-stream`, as
//! Server-Sent Events (`data: <message>` per event, `event: error` with the error body at the
//! end on failure).
//!
//! Decoding the request and rendering each message as JSON are `rest`'s; running the call is
//! `crate::call`'s.

use std::convert::Infallible;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, Response, header};
use http_body::Frame;
use http_body_util::StreamBody;
use prost_reflect::DescriptorPool;
use switchyard_transcode::rest_error_body;

use crate::call::{Item, StreamReply};
use crate::protocol::rest::metadata_headers;

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
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(framing.content_type()),
    );
    // Proxies must not buffer the stream.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    metadata_headers(response.headers_mut(), reply.headers, "grpc-metadata-");
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
