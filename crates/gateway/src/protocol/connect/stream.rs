//! Connect streaming (<https://connectrpc.com/docs/protocol>, "Streaming RPCs"):
//! `application/connect+json|proto`, enveloped messages both ways, and a final end-of-stream
//! envelope (flag `0x02`) carrying the error and trailing metadata as JSON. Every failure is
//! an end-of-stream error with HTTP 200, as the protocol asks.
//!
//! Messages are converted one at a time as they arrive (JSON ⇄ protobuf for `+json`), so
//! client, server and bidirectional streams flow without buffering. A unary method called
//! this way takes exactly one request envelope and answers one message and the end.

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt as _, stream};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::StreamBody;
use prost_reflect::DescriptorPool;
use tonic::Status;

use super::error::error_json;
use super::{from_proto, in_process, json_for, parse_timeout, to_proto};
use crate::BoxError;
use crate::call::compression::{self, ACCEPTED, Encoding};
use crate::call::frame::{self, Envelope, FLAG_COMPRESSED, Side};
use crate::call::{Call, Item, MessageStream, Reply, StreamReply};
use crate::detect::Codec;
use crate::protocol::{
    ClientProtocol, MessageEncoder, Refused, Stage, Wire, forwarded_metadata, visible_metadata,
};
use crate::state::GatewayState;

/// Envelope flag: the end-of-stream message.
const FLAG_END_STREAM: u8 = 0x02;
/// The request's envelope compression.
const CONTENT_ENCODING: &str = "connect-content-encoding";
/// What the client accepts for the answer's envelopes, and what we take.
const ACCEPT_ENCODING: &str = "connect-accept-encoding";

/// Connect streaming in one codec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectStream {
    pub(crate) codec: Codec,
}

impl ConnectStream {
    /// The request messages in protobuf, one per envelope as it arrives, each inflated (at
    /// most the message limit) when its flag says it is compressed.
    fn messages<B>(self, state: &GatewayState, call: &Call, wire: Wire, body: B) -> MessageStream
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let input = call.method.input();
        let json = json_for(state, call).clone();
        let codec = self.codec;
        let check = !in_process(call);
        let limit = state.opts.max_message_bytes;
        let envelopes = frame::envelopes(body, limit, Side::Request, None);
        Box::pin(envelopes.filter_map(move |envelope| {
            std::future::ready(match envelope {
                // A client may end its half with an end-of-stream envelope of its own.
                Ok(Envelope::Message { flag, .. }) if flag & FLAG_END_STREAM != 0 => None,
                Ok(Envelope::Message { flag, .. }) if flag & !FLAG_COMPRESSED != 0 => Some(Err(
                    Status::invalid_argument(format!("unknown envelope flag {flag:#04x}")),
                )),
                Ok(Envelope::Message { flag, data }) => Some(
                    compression::decode_payload(flag, data, wire.request, limit, Side::Request)
                        .and_then(|data| to_proto(&input, codec, data, &json, check)),
                ),
                Ok(Envelope::Trailers(_)) => None,
                Err(status) => Some(Err(status)),
            })
        }))
    }

    fn response(
        self,
        metadata: HeaderMap,
        encoding: Encoding,
        body: tonic::body::Body,
    ) -> Response<tonic::body::Body> {
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        for (name, value) in visible_metadata(metadata) {
            headers.append(name, value);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.codec.streaming_content_type()),
        );
        if encoding != Encoding::Identity {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding.name()));
        }
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(ACCEPTED));
        *response.status_mut() = StatusCode::OK;
        response
    }
}

impl ClientProtocol for ConnectStream {
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
        let entry = state.method(parts.uri.path()).map_err(refuse)?;
        let wire = Wire::from_headers(
            self.codec,
            &parts.headers,
            CONTENT_ENCODING,
            ACCEPT_ENCODING,
        )
        .map_err(refuse)?;
        let asked = parse_timeout(&parts.headers).map_err(refuse)?;
        let call = state.call(entry, asked);
        let metadata = forwarded_metadata(&parts.headers, state.opts.forward_headers.as_deref());
        Ok((call, metadata, wire))
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
        let mut messages = self.messages(state, call, *wire, body);
        let first = messages.next().await.transpose()?;
        let Some(message) = first else {
            return Err(Status::invalid_argument(format!(
                "{} takes one request message; the stream had none",
                call.method.full_name()
            )));
        };
        if messages.next().await.transpose()?.is_some() {
            return Err(Status::invalid_argument(format!(
                "{} takes one request message; the stream had more",
                call.method.full_name()
            )));
        }
        Ok(message)
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
        Ok(self.messages(state, call, *wire, body))
    }

    fn encode_response(
        &self,
        state: &GatewayState,
        call: &Call,
        wire: &Wire,
        reply: Reply,
    ) -> Result<Response<tonic::body::Body>, Status> {
        let message = from_proto(
            &call.method.output(),
            self.codec,
            reply.message,
            json_for(state, call),
        )?;
        let (flag, payload) = compression::deflate(wire.response, message)?;
        let mut body = BytesMut::from(&envelope(flag, &payload)[..]);
        body.extend_from_slice(&end_stream(&Status::ok(""), reply.trailers, &state.pool));
        Ok(self.response(
            reply.headers,
            wire.response,
            tonic::body::Body::new(http_body_util::Full::new(body.freeze())),
        ))
    }

    fn message_encoder(&self, state: &GatewayState, call: &Call, _head: &Wire) -> MessageEncoder {
        let output = call.method.output();
        let json = json_for(state, call).clone();
        let codec = self.codec;
        Box::new(move |message| from_proto(&output, codec, message, &json))
    }

    async fn encode_stream(
        &self,
        state: &GatewayState,
        _call: &Call,
        wire: &Wire,
        reply: StreamReply,
    ) -> Response<tonic::body::Body> {
        let pool = state.pool.clone();
        let encoding = wire.response;
        let frames = reply.items.map(move |item| {
            Ok::<_, Status>(Frame::data(match item {
                Item::Message(message) => {
                    let (flag, payload) = compression::deflate(encoding, message)?;
                    envelope(flag, &payload)
                }
                Item::End(status, trailers) => end_stream(&status, trailers, &pool),
            }))
        });
        self.response(
            reply.headers,
            encoding,
            tonic::body::Body::new(StreamBody::new(frames)),
        )
    }

    fn encode_error(
        &self,
        state: &GatewayState,
        _stage: Stage,
        status: &Status,
    ) -> Response<tonic::body::Body> {
        let end = end_stream(status, HeaderMap::new(), &state.pool);
        let frames = stream::iter([Ok::<_, Status>(Frame::data(end))]);
        self.response(
            HeaderMap::new(),
            Encoding::Identity,
            tonic::body::Body::new(StreamBody::new(frames)),
        )
    }
}

/// One envelope; a payload above 4 GiB cannot occur (messages are held to the limit).
fn envelope(flag: u8, payload: &[u8]) -> Bytes {
    frame::encode_frame(flag, payload).unwrap_or_default()
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
