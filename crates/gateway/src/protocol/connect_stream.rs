//! Connect streaming (<https://connectrpc.com/docs/protocol>, "Streaming RPCs"):
//! `application/connect+json|proto`, enveloped messages both ways, and a final end-of-stream
//! envelope (flag `0x02`) carrying the error and trailing metadata as JSON.
//!
//! Messages are converted one at a time as they arrive (JSON ⇄ protobuf for `+json`), in
//! both directions, so client, server and bidirectional streams all flow without buffering.
//! Running the call is `crate::stream`'s; the error JSON is shared with `connect`.

use std::convert::Infallible;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::StreamBody;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor};
use switchyard_transcode::JsonOptions;
use switchyard_transcode::json::{encode_message, parse_message};
use tonic::Status;
use tower::Service;

use crate::BoxError;
use crate::detect::Codec;
use crate::dispatch::encode_frame;
use crate::gateway::GatewayState;
use crate::protocol::connect::{error_json, parse_timeout};
use crate::protocol::{forwarded_metadata, visible_metadata};
use crate::stream::{self as streaming, Envelope, Item, StreamCall};

/// Envelope flag: the payload is compressed (we never negotiate compression).
const FLAG_COMPRESSED: u8 = 0x01;
/// Envelope flag: the end-of-stream message.
const FLAG_END_STREAM: u8 = 0x02;

/// Serves one Connect streaming call end to end; every failure ends the stream with an
/// end-of-stream error (HTTP 200, as the protocol asks).
pub(crate) async fn serve<S, B, ReqB>(
    state: &GatewayState,
    service: S,
    codec: Codec,
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
    let limit = state.opts.max_message_bytes;
    let (parts, body) = request.into_parts();
    let pool = state.pool.clone();
    let Some(method) = state.methods.get(parts.uri.path()).cloned() else {
        let status = Status::unimplemented(format!("unknown method {}", parts.uri.path()));
        return end_only(codec, &status, &pool);
    };
    if let Some(encoding) = parts.headers.get("connect-content-encoding")
        && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
    {
        let status = Status::unimplemented("only identity connect-content-encoding is accepted");
        return end_only(codec, &status, &pool);
    }
    let timeout = match parse_timeout(&parts.headers) {
        Ok(t) => state.timeout_for(parts.uri.path(), t),
        Err(status) => return end_only(codec, &status, &pool),
    };
    let json = state.json_for(parts.uri.path()).clone();
    let input = method.input();
    let req_json = json.clone();
    let requests = streaming::envelopes(body, limit, None).filter_map(move |item| {
        let out = match item {
            Ok(Envelope::Message { flag, .. }) if flag & FLAG_COMPRESSED != 0 => Some(Err(
                Status::unimplemented("compressed messages are not supported"),
            )),
            Ok(Envelope::Message { data, .. }) => Some(
                to_proto(&input, codec, data, &req_json)
                    .and_then(|m| encode_frame(&m))
                    .map(Frame::data),
            ),
            Ok(Envelope::Trailers(_)) => None,
            Err(status) => Some(Err(status)),
        };
        std::future::ready(out)
    });
    let call = StreamCall {
        path: format!("/{}/{}", method.parent_service().full_name(), method.name()),
        metadata: forwarded_metadata(&parts.headers, state.opts.forward_headers.as_deref()),
        body: tonic::body::Body::new(StreamBody::new(requests)),
        timeout,
    };
    let reply = match streaming::call(service, call, limit).await {
        Ok(reply) => reply,
        Err(status) => return end_only(codec, &status, &pool),
    };
    let mut done = false;
    let frames = reply.items.map(move |item| {
        if done {
            return None;
        }
        let bytes = match item {
            Item::Message(data) => match to_wire(&method, codec, data, &json) {
                Ok(message) => envelope(0, &message),
                Err(status) => {
                    done = true;
                    end_stream(&status, HeaderMap::new(), &pool)
                }
            },
            Item::End(status, trailers) => {
                done = true;
                end_stream(&status, trailers, &pool)
            }
        };
        Some(Ok::<_, Infallible>(Frame::data(bytes)))
    });
    let frames = frames.take_while(|f| std::future::ready(f.is_some()));
    let frames = frames.filter_map(std::future::ready);
    let mut response = Response::new(tonic::body::Body::new(StreamBody::new(frames)));
    let headers = response.headers_mut();
    for (name, value) in visible_metadata(reply.headers) {
        headers.append(name, value);
    }
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(codec.streaming_content_type()),
    );
    response
}

/// A stream that is only its end: the error as the end-of-stream message.
fn end_only(codec: Codec, status: &Status, pool: &DescriptorPool) -> Response<tonic::body::Body> {
    let body = end_stream(status, HeaderMap::new(), pool);
    let mut response = Response::new(tonic::body::Body::new(http_body_util::Full::new(body)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(codec.streaming_content_type()),
    );
    response
}

fn to_proto(
    input: &MessageDescriptor,
    codec: Codec,
    data: Bytes,
    json: &JsonOptions,
) -> Result<Bytes, Status> {
    match codec {
        Codec::Proto => Ok(data),
        Codec::Json => Ok(Bytes::from(
            parse_message(input.clone(), &data, json)?.encode_to_vec(),
        )),
    }
}

fn to_wire(
    method: &MethodDescriptor,
    codec: Codec,
    data: Bytes,
    json: &JsonOptions,
) -> Result<Bytes, Status> {
    match codec {
        Codec::Proto => Ok(data),
        Codec::Json => {
            let message = DynamicMessage::decode(method.output(), data)
                .map_err(|e| Status::internal(format!("bad response message: {e}")))?;
            Ok(Bytes::from(encode_message(&message, json)?))
        }
    }
}

fn envelope(flag: u8, payload: &[u8]) -> Bytes {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.extend_from_slice(&[flag]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out.freeze()
}

/// The end-of-stream envelope: `{"error": {...}, "metadata": {"name": ["value"]}}`, either
/// key left out when empty.
fn end_stream(status: &Status, trailers: HeaderMap, pool: &DescriptorPool) -> Bytes {
    let mut end = serde_json::Map::new();
    if status.code() != tonic::Code::Ok {
        end.insert("error".into(), error_json(status, pool));
    }
    let mut metadata: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    let all = visible_metadata(trailers)
        .chain(visible_metadata(status.metadata().clone().into_headers()));
    for (name, value) in all {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let entry = metadata
            .entry(name.as_str().to_owned())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let Some(list) = entry.as_array_mut() {
            list.push(value.into());
        }
    }
    if !metadata.is_empty() {
        end.insert("metadata".into(), serde_json::Value::Object(metadata));
    }
    let payload = serde_json::to_vec(&serde_json::Value::Object(end)).unwrap_or_default();
    envelope(FLAG_END_STREAM, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_stream_carries_error_and_metadata() {
        let pool = crate::testutil::pool();
        let mut trailers = HeaderMap::new();
        trailers.append("x-t", http::HeaderValue::from_static("1"));
        trailers.append("x-t", http::HeaderValue::from_static("2"));
        let cases = [
            (Status::ok(""), HeaderMap::new(), "{}"),
            (
                Status::not_found("gone"),
                trailers,
                r#"{"error":{"code":"not_found","message":"gone"},"metadata":{"x-t":["1","2"]}}"#,
            ),
        ];
        for (status, trailers, want) in cases {
            let bytes = end_stream(&status, trailers, &pool);
            assert_eq!(bytes.first(), Some(&FLAG_END_STREAM));
            assert_eq!(String::from_utf8_lossy(&bytes[5..]), want);
        }
    }
}
