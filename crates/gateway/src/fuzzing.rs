//! The gateway's wire parsers, reachable from outside the crate for the fuzz targets
//! (`crates/fuzz-targets`, `fuzz/`) and nothing else: gRPC-Web body decoding, the
//! length-prefixed frames (gRPC, gRPC-Web, Connect envelopes), Connect's message conversion,
//! and the `grpc-timeout` and `connect-timeout-ms` headers.
//!
//! Hidden from the docs and not part of the gateway's API: each function is a thin wrapper
//! over the `pub(crate)` one the protocol modules call, so that a fuzzer drives the very code
//! that reads requests off the network. The parsers themselves stay where they are.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt as _, StreamExt as _, stream};
use http::HeaderValue;
use http::header::HeaderName;
use prost_reflect::MessageDescriptor;
use switchyard_transcode::JsonOptions;
use tonic::Status;

use crate::call::compression::Encoding;
use crate::call::frame::{self, Envelope, Side};
use crate::detect::Codec;
use crate::protocol::{self, connect, grpc_web};

/// A unary gRPC-Web request body as the server reads it: base64 text decoded when `text`,
/// then exactly one message frame of at most `max` bytes.
///
/// # Errors
///
/// The status the client would get.
pub fn grpc_web_unary(body: &[u8], text: bool, max: usize) -> Result<Bytes, Status> {
    let data = if text {
        grpc_web::decode_text(body)?
    } else {
        Bytes::copy_from_slice(body)
    };
    // Identity: a compressed frame is refused (its inflation is `call::compression`'s, and
    // tested there), so an accepted frame is exactly its payload.
    frame::parse_single_frame(data, max, Side::Request, Encoding::Identity)
}

/// One item read from a framed request body: a message frame's flag and payload, or the
/// status that ended the stream.
pub type EnvelopeItem = Result<(u8, Bytes), Status>;

/// Reads a request body that arrives in `chunks` as frames of at most `max` bytes each (the
/// reader of gRPC and gRPC-Web streams and Connect envelopes), to its end.
///
/// Returns `None` if the reader did not finish with every chunk at hand (it would hang).
pub fn envelopes(chunks: Vec<Bytes>, max: usize) -> Option<Vec<EnvelopeItem>> {
    let frames = chunks
        .into_iter()
        .map(|chunk| Ok::<_, std::convert::Infallible>(http_body::Frame::data(chunk)));
    let body = http_body_util::StreamBody::new(stream::iter(frames));
    frame::envelopes(body, max, Side::Request, None)
        .filter_map(|item| {
            std::future::ready(match item {
                Ok(Envelope::Message { flag, data }) => Some(Ok((flag, data))),
                Ok(Envelope::Trailers(_)) => None,
                Err(status) => Some(Err(status)),
            })
        })
        .collect::<Vec<_>>()
        .now_or_never()
}

/// A Connect request message in JSON (`json`) or binary protobuf, as the protobuf bytes the
/// handler gets; a binary one is checked to decode as `input`.
///
/// # Errors
///
/// INVALID_ARGUMENT for a message that is not an `input`.
pub fn connect_message(
    input: &MessageDescriptor,
    json: bool,
    data: Bytes,
    opts: &JsonOptions,
) -> Result<Bytes, Status> {
    let codec = if json { Codec::Json } else { Codec::Proto };
    connect::to_proto(input, codec, data, opts, true)
}

/// A `grpc-timeout` header value.
///
/// # Errors
///
/// INVALID_ARGUMENT for a malformed value.
pub fn grpc_timeout(value: &HeaderValue) -> Result<Duration, Status> {
    protocol::parse_grpc_timeout(value)
}

/// A `connect-timeout-ms` header value.
///
/// # Errors
///
/// INVALID_ARGUMENT for a malformed value.
pub fn connect_timeout(value: &HeaderValue) -> Result<Duration, Status> {
    let mut headers = http::HeaderMap::new();
    headers.insert(HeaderName::from_static("connect-timeout-ms"), value.clone());
    connect::parse_timeout(&headers)?
        .ok_or_else(|| Status::internal("connect-timeout-ms was set but not read"))
}
